//! `redress audit …`: fetch an export or a case's evidence bundle from compliance-audit, and
//! verify either offline against the log's public key (nothing of the service's database is
//! used; the formats are in services/compliance-audit/README.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use redress_compliance_audit::{
    NoteVerifier, client,
    verify::{self, Bundle, Export, WITNESS_FORMAT, Witness},
};
use redress_proto::audit::v1::audit_service_client::AuditServiceClient;

use crate::grpc::{Target, failure};

/// Where compliance-audit listens by default (`redress dev`).
const DEFAULT_ADDR: &str = "http://127.0.0.1:50056";

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check a bundle or an export against the log's verifier key, and remember its
    /// checkpoints in a witness file.
    Verify {
        /// The evidence bundle or full export (JSON).
        file: PathBuf,
        /// The log's verifier key (`name+keyid+base64`), or a file holding it.
        #[arg(long)]
        key: String,
        /// Checkpoints accepted before (created when missing, updated on success).
        #[arg(long)]
        witness: Option<PathBuf>,
    },
    /// Write every entry and signed checkpoint to a file.
    Export {
        #[command(flatten)]
        target: Target,
        out: PathBuf,
    },
    /// Write a case's evidence bundle (with consistency proofs from the witness's checkpoints).
    Bundle {
        #[command(flatten)]
        target: Target,
        case: String,
        out: PathBuf,
        /// The log's verifier key (else the one the service states).
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        witness: Option<PathBuf>,
    },
}

fn key(text: &str) -> anyhow::Result<NoteVerifier> {
    // A file holding the key, else the key itself.
    let text = std::fs::read_to_string(text).unwrap_or_else(|_| text.to_owned());
    NoteVerifier::parse(&text).context("--key")
}

fn read_witness(path: Option<&Path>) -> anyhow::Result<Witness> {
    let Some(path) = path else {
        return Ok(Witness::default());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("witness file {} is not a witness", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Witness::default()),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

async fn connect(
    target: &Target,
) -> anyhow::Result<(
    AuditServiceClient<tonic::transport::Channel>,
    Box<client::Authorize>,
)> {
    let channel = target.channel(DEFAULT_ADDR).await?;
    let authorization = target.request(())?.metadata().get("authorization").cloned();
    let authorize = move |metadata: &mut tonic::metadata::MetadataMap| {
        if let Some(value) = authorization.clone() {
            metadata.insert("authorization", value);
        }
    };
    Ok((AuditServiceClient::new(channel), Box::new(authorize)))
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Verify {
            file,
            key: k,
            witness,
        } => {
            let verifier = key(&k)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let mut seen = read_witness(witness.as_deref())?;
            let report = match json.get("format").and_then(|f| f.as_str()) {
                Some(verify::BUNDLE_FORMAT) => {
                    let bundle: Bundle = serde_json::from_value(json)?;
                    verify::verify_bundle(&bundle, &verifier, &seen.checkpoints)
                }
                Some(verify::EXPORT_FORMAT) => {
                    let export: Export = serde_json::from_value(json)?;
                    verify::verify_export(&export, &verifier, &seen.checkpoints)
                }
                other => bail!("{}: unknown format {other:?}", file.display()),
            };
            let report = match report {
                Ok(report) => report,
                Err(problem) => bail!("{}: NOT VERIFIED: {problem}", file.display()),
            };
            println!(
                "verified: {} entries; checkpoints {:?} signed by {}",
                report.entries,
                report.checkpoints,
                verifier.encode()
            );
            if !report.unchecked.is_empty() {
                println!(
                    "not checked against this input (larger trees): {:?}",
                    report.unchecked
                );
            }
            if let Some(path) = witness {
                seen.format = WITNESS_FORMAT.into();
                seen.checkpoints = report.seen;
                write_json(&path, &seen)?;
            }
            Ok(())
        }
        Command::Export { target, out } => {
            let (mut api, authorize) = connect(&target).await?;
            let export = client::export(&mut api, authorize.as_ref())
                .await
                .map_err(failure)?;
            write_json(&out, &export)?;
            println!(
                "{} entries, {} checkpoints → {}",
                export.entries.len(),
                export.checkpoints.len(),
                out.display()
            );
            Ok(())
        }
        Command::Bundle {
            target,
            case,
            out,
            key: k,
            witness,
        } => {
            let (mut api, authorize) = connect(&target).await?;
            let verifier = match k {
                Some(k) => key(&k)?,
                None => key(&client::verifier_key(&mut api, authorize.as_ref())
                    .await
                    .map_err(failure)?)?,
            };
            let seen = read_witness(witness.as_deref())?;
            let bundle = client::bundle(
                &mut api,
                authorize.as_ref(),
                &case,
                &verifier,
                &seen.checkpoints,
            )
            .await
            .map_err(failure)?;
            write_json(&out, &bundle)?;
            println!(
                "{} entries of case {case} → {}",
                bundle.entries.len(),
                out.display()
            );
            Ok(())
        }
    }
}
