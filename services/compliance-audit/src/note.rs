//! C2SP `signed-note` with Ed25519 and the `tlog-checkpoint` body it carries.
//!
//! A checkpoint note is `<origin>\n<tree size>\n<base64 root>\n`, then a blank line, then
//! `— <key name> <base64(key id ‖ signature)>\n` (U+2014 and a space). The signature covers the
//! body with its final newline. Key id = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]; the
//! verifier key is `<name>+<hex key id>+<base64(0x01 ‖ public key)>` and the signer key
//! `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>` (the Go `sumdb/note` encodings).

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

const ED25519: u8 = 0x01;
const DASH: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("key: {0}")]
    Key(String),
    #[error("note: {0}")]
    Malformed(String),
    #[error("no signature by {0} on the note")]
    Unsigned(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("checkpoint body: {0}")]
    Body(String),
}

/// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4].
pub fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ED25519]);
    hasher.update(public);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::Key(format!(
            "key name `{name}` must be non-empty, without spaces or `+`"
        )));
    }
    Ok(())
}

fn hex4(id: [u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The log's signing key and its name (the checkpoint origin).
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish()
    }
}

impl NoteSigner {
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// A fresh key from the operating system's randomness.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NoteError::Key(e.to_string()))?;
        Self::from_seed(name, seed)
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| NoteError::Key("a signer key starts with PRIVATE+KEY+".into()))?;
        let (name, id, key) = split_key(rest)?;
        let seed: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::Key("the seed must be 32 bytes".into()))?;
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id() != id {
            return Err(NoteError::Key("the key id does not match the key".into()));
        }
        Ok(signer)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, self.key.verifying_key().as_bytes())
    }

    pub fn encode(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex4(self.key_id()),
            B64.encode(key)
        )
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (which must end in a newline) into a signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') || text.contains("\n\n") {
            return Err(NoteError::Malformed(
                "the text must end with one newline and hold no blank line".into(),
            ));
        }
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.key_id().to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{DASH}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

/// `<name>+<hex id>+<base64(type ‖ key)>` → (name, id, key bytes).
fn split_key(text: &str) -> Result<(&str, [u8; 4], Vec<u8>), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::Key("expected <name>+<key id>+<key>".into()));
    };
    check_name(name)?;
    let id = u32::from_str_radix(id, 16)
        .ok()
        .filter(|_| id.len() == 8)
        .ok_or_else(|| NoteError::Key("the key id must be 8 hex digits".into()))?
        .to_be_bytes();
    let key = B64
        .decode(key)
        .map_err(|e| NoteError::Key(format!("the key is not base64: {e}")))?;
    match key.split_first() {
        Some((&ED25519, rest)) => Ok((name, id, rest.to_vec())),
        _ => Err(NoteError::Key(
            "only Ed25519 keys (type byte 0x01) are supported".into(),
        )),
    }
}

/// A log's public key, as a verifier holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<hex id>+<base64(0x01 ‖ public key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = split_key(text.trim())?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::Key("the public key must be 32 bytes".into()))?;
        if key_id(name, &key) != id {
            return Err(NoteError::Key("the key id does not match the key".into()));
        }
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|e| NoteError::Key(format!("not an Ed25519 public key: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn encode(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex4(key_id(&self.name, self.key.as_bytes())),
            B64.encode(key)
        )
    }

    /// Checks this key's signature on a signed note; returns the signed text. Signatures by
    /// other keys are ignored, as the spec says.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        let id = key_id(&self.name, self.key.as_bytes());
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix(DASH) else {
                return Err(NoteError::Malformed(format!("signature line `{line}`")));
            };
            let Some((name, blob)) = rest.split_once(' ') else {
                return Err(NoteError::Malformed(format!("signature line `{line}`")));
            };
            let blob = B64
                .decode(blob)
                .map_err(|e| NoteError::Malformed(format!("signature is not base64: {e}")))?;
            if name != self.name || blob.len() < 4 || blob[..4] != id {
                continue;
            }
            let signature = Signature::from_slice(&blob[4..])
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            return self
                .key
                .verify(text.as_bytes(), &signature)
                .map(|()| text)
                .map_err(|_| NoteError::BadSignature(self.name.clone()));
        }
        Err(NoteError::Unsigned(self.name.clone()))
    }
}

/// A tlog-checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a body (extension lines after the root are allowed and ignored).
    pub fn parse(body: &str) -> Result<Self, NoteError> {
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty());
        let (Some(origin), Some(size), Some(root)) = (origin, lines.next(), lines.next()) else {
            return Err(NoteError::Body(
                "expected origin, size and root lines".into(),
            ));
        };
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| !size.starts_with('+') && (size == "0" || !size.starts_with('0')))
            .ok_or_else(|| NoteError::Body(format!("tree size `{size}` is not a decimal")))?;
        let root = B64
            .decode(root)
            .ok()
            .and_then(|r| <Hash>::try_from(r).ok())
            .ok_or_else(|| NoteError::Body("root hash is not 32 base64 bytes".into()))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Opens a signed checkpoint note with `verifier`; the origin must be the key's name.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Self, NoteError> {
        let checkpoint = Self::parse(verifier.open(note)?)?;
        if checkpoint.origin != verifier.name() {
            return Err(NoteError::Body(format!(
                "origin `{}` is not the key's name `{}`",
                checkpoint.origin,
                verifier.name()
            )));
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    // The example of Go's golang.org/x/mod/sumdb/note documentation.
    const GO_SIGNER: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
        then you don't know what your problem is.\n\
        \n\
        \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn go_sumdb_note_vectors() {
        let signer = NoteSigner::parse(GO_SIGNER).unwrap();
        assert_eq!(signer.encode(), GO_SIGNER);
        assert_eq!(signer.verifier().encode(), GO_VERIFIER);
        let verifier = NoteVerifier::parse(GO_VERIFIER).unwrap();
        let text = verifier.open(GO_NOTE).unwrap();
        assert!(text.starts_with("If you think"));
        // Ed25519 is deterministic: signing the text again gives the same note.
        assert_eq!(signer.sign(text).unwrap(), GO_NOTE);
    }

    #[test]
    fn checkpoints_round_trip_and_tampering_is_refused() {
        let signer = NoteSigner::generate("redress.example/audit").unwrap();
        let verifier = NoteVerifier::parse(&signer.verifier().encode()).unwrap();
        let checkpoint = Checkpoint {
            origin: "redress.example/audit".into(),
            size: 42,
            root: [7; 32],
        };
        let note = signer.sign(&checkpoint.body()).unwrap();
        assert_eq!(Checkpoint::open(&note, &verifier).unwrap(), checkpoint);
        let forged = note.replace("\n42\n", "\n43\n");
        assert_eq!(
            Checkpoint::open(&forged, &verifier),
            Err(NoteError::BadSignature("redress.example/audit".into()))
        );
        let other = NoteSigner::generate("redress.example/audit").unwrap();
        assert!(matches!(
            Checkpoint::open(&note, &other.verifier()),
            Err(NoteError::Unsigned(_))
        ));
        assert!(Checkpoint::parse("o\n042\nAAAA\n").is_err());
        assert!(NoteVerifier::parse("a+b+c").is_err());
    }
}
