//! The offline verifier: checks an evidence bundle or a full export against the log's public
//! key, using nothing but what it is given (and the witness file of checkpoints it has seen).
//!
//! Trust comes only from signatures and recomputation: every checkpoint must carry the key's
//! signature; a full export's leaves are re-hashed and the tree rebuilt, and its root at each
//! checkpoint's size must be the signed one; a bundle's entries must prove into its signed
//! checkpoint. Two signed checkpoints of one size with different roots are a fork. The leaf
//! hashes an export records are used only to name the first entry that was changed.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use serde::{Deserialize, Serialize};

use crate::{
    merkle::{Appender, Hash, leaf_hash},
    note::{Checkpoint, NoteVerifier},
};

pub const BUNDLE_FORMAT: &str = "redress-audit-bundle/1";
pub const EXPORT_FORMAT: &str = "redress-audit-export/1";
pub const WITNESS_FORMAT: &str = "redress-audit-witness/1";

/// One logged entry as bundles and exports carry it (bytes in standard base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryJson {
    pub index: u64,
    pub entry_key: String,
    pub stream: String,
    pub subject: String,
    pub leaf: String,
    /// Export only: the leaf hash the log recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_hash: Option<String>,
    /// Bundle only: the inclusion proof against the bundle's checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Vec<String>>,
}

/// A proof that an earlier checkpoint's tree is a prefix of the bundle's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyJson {
    pub old_checkpoint: String,
    pub proof: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    pub case_id: String,
    pub checkpoint: String,
    pub entries: Vec<EntryJson>,
    #[serde(default)]
    pub consistency: Vec<ConsistencyJson>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub format: String,
    pub checkpoints: Vec<String>,
    pub entries: Vec<EntryJson>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    pub format: String,
    pub checkpoints: Vec<String>,
}

/// What is wrong, first problem first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("not a {expected} document: {reason}")]
    Format {
        expected: &'static str,
        reason: String,
    },
    #[error("checkpoint #{position}: {reason}")]
    Checkpoint { position: usize, reason: String },
    #[error("fork: two signed checkpoints of size {size} with different roots")]
    Fork { size: u64 },
    #[error("entry {index}: {reason}")]
    Entry { index: u64, reason: String },
    #[error(
        "checkpoint of size {size}: the tree rebuilt from the entries has another root \
         (an entry in [{from}, {size}) was changed, removed or reordered)"
    )]
    RootMismatch { size: u64, from: u64 },
    #[error("consistency from size {old} to {new}: {reason}")]
    Consistency { old: u64, new: u64, reason: String },
}

/// What was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub entries: u64,
    /// Sizes of the checkpoints verified (signature and root), smallest first.
    pub checkpoints: Vec<u64>,
    /// Witness checkpoints the input could not be checked against (larger than an export).
    pub unchecked: Vec<u64>,
    /// Every checkpoint seen, for the witness file.
    pub seen: Vec<String>,
}

fn b64(text: &str, what: &str) -> Result<Vec<u8>, String> {
    B64.decode(text)
        .map_err(|e| format!("{what} is not base64: {e}"))
}

fn hash(text: &str, what: &str) -> Result<Hash, String> {
    Hash::try_from(b64(text, what)?).map_err(|_| format!("{what} is not 32 bytes"))
}

/// Opens every note; refuses a bad signature and finds forks. Returns size → (root, note).
fn open_all(
    notes: &[String],
    verifier: &NoteVerifier,
) -> Result<BTreeMap<u64, (Hash, String)>, Problem> {
    let mut seen: BTreeMap<u64, (Hash, String)> = BTreeMap::new();
    for (position, note) in notes.iter().enumerate() {
        let checkpoint = Checkpoint::open(note, verifier).map_err(|e| Problem::Checkpoint {
            position,
            reason: e.to_string(),
        })?;
        match seen.get(&checkpoint.size) {
            Some((root, _)) if *root != checkpoint.root => {
                return Err(Problem::Fork {
                    size: checkpoint.size,
                });
            }
            Some(_) => {}
            None => {
                seen.insert(checkpoint.size, (checkpoint.root, note.clone()));
            }
        }
    }
    Ok(seen)
}

/// Checks a full export: every entry re-hashed, the tree rebuilt, each checkpoint's root.
pub fn verify_export(
    export: &Export,
    verifier: &NoteVerifier,
    witness: &[String],
) -> Result<Report, Problem> {
    if export.format != EXPORT_FORMAT {
        return Err(Problem::Format {
            expected: EXPORT_FORMAT,
            reason: format!("format is `{}`", export.format),
        });
    }
    let all: Vec<String> = witness.iter().chain(&export.checkpoints).cloned().collect();
    let checkpoints = open_all(&all, verifier)?;
    let mut appender = Appender::new(0, Vec::new());
    let mut report = Report::default();
    let mut last_good = 0;
    let mut pending = checkpoints.iter().peekable();
    for (position, entry) in export.entries.iter().enumerate() {
        let index = position as u64;
        let fail = |reason: String| Problem::Entry { index, reason };
        if entry.index != index {
            return Err(fail(format!(
                "missing or out of order: the export's entry at this position has index {}",
                entry.index
            )));
        }
        let leaf = b64(&entry.leaf, "leaf").map_err(fail)?;
        let computed = leaf_hash(&leaf);
        let recorded = match &entry.leaf_hash {
            Some(recorded) => Some(hash(recorded, "leaf_hash").map_err(fail)?),
            None => None,
        };
        if recorded.is_some_and(|recorded| recorded != computed) {
            return Err(fail(
                "its leaf does not hash to the leaf hash the log recorded (changed, or moved \
                 from another index)"
                    .into(),
            ));
        }
        appender.push(computed);
        while let Some((size, signed)) = pending.peek() {
            let (size, root) = (**size, signed.0);
            if size > appender.size() {
                break;
            }
            if size == appender.size() {
                if appender.root() != root {
                    return Err(Problem::RootMismatch {
                        size,
                        from: last_good,
                    });
                }
                last_good = size;
                report.checkpoints.push(size);
            }
            pending.next();
        }
    }
    report.entries = appender.size();
    report.unchecked = pending.map(|(size, _)| *size).collect();
    report.seen = checkpoints.into_values().map(|(_, note)| note).collect();
    Ok(report)
}

/// Checks an evidence bundle: its checkpoint's signature, each entry's inclusion proof, and
/// the consistency proofs from earlier checkpoints (the witness's) it carries.
pub fn verify_bundle(
    bundle: &Bundle,
    verifier: &NoteVerifier,
    witness: &[String],
) -> Result<Report, Problem> {
    if bundle.format != BUNDLE_FORMAT {
        return Err(Problem::Format {
            expected: BUNDLE_FORMAT,
            reason: format!("format is `{}`", bundle.format),
        });
    }
    let checkpoint =
        Checkpoint::open(&bundle.checkpoint, verifier).map_err(|e| Problem::Checkpoint {
            position: 0,
            reason: e.to_string(),
        })?;
    let signed = RootHash::<sha2::Sha256>::new(checkpoint.root.into(), checkpoint.size);
    for entry in &bundle.entries {
        let fail = |reason: String| Problem::Entry {
            index: entry.index,
            reason,
        };
        let leaf = b64(&entry.leaf, "leaf").map_err(fail)?;
        let proof = entry
            .proof
            .as_ref()
            .ok_or_else(|| fail("no inclusion proof".into()))?
            .iter()
            .map(|h| hash(h, "proof hash"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        let proof = InclusionProof::<sha2::Sha256>::from_digests(
            proof.iter().map(Into::into).collect::<Vec<_>>(),
        );
        signed
            .verify_inclusion(&leaf, entry.index, &proof)
            .map_err(|e| fail(format!("not included in the checkpoint's tree: {e}")))?;
    }
    let mut all: Vec<String> = witness.to_vec();
    all.push(bundle.checkpoint.clone());
    all.extend(bundle.consistency.iter().map(|c| c.old_checkpoint.clone()));
    let seen = open_all(&all, verifier)?;
    let mut report = Report {
        entries: bundle.entries.len() as u64,
        checkpoints: vec![checkpoint.size],
        ..Report::default()
    };
    for link in &bundle.consistency {
        let old =
            Checkpoint::open(&link.old_checkpoint, verifier).map_err(|e| Problem::Checkpoint {
                position: 0,
                reason: e.to_string(),
            })?;
        let fail = |reason: String| Problem::Consistency {
            old: old.size,
            new: checkpoint.size,
            reason,
        };
        let proof = link
            .proof
            .iter()
            .map(|h| hash(h, "proof hash"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        let proof = ConsistencyProof::<sha2::Sha256>::from_digests(
            proof.iter().map(Into::into).collect::<Vec<_>>(),
        );
        let old_root = RootHash::<sha2::Sha256>::new(old.root.into(), old.size);
        signed
            .verify_consistency(&old_root, &proof)
            .map_err(|e| fail(e.to_string()))?;
        report.checkpoints.push(old.size);
    }
    report.checkpoints.sort_unstable();
    report.unchecked = seen
        .keys()
        .filter(|size| !report.checkpoints.contains(size))
        .copied()
        .collect();
    report.seen = seen.into_values().map(|(_, note)| note).collect();
    Ok(report)
}
