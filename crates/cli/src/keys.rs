//! `redress keys generate`: the keys a deployment needs, made on this machine.
//!
//! - `jwt`: an Ed25519 key pair that signs bearer tokens (`<name>.key.pem`, private) and
//!   checks them (`<name>.pem`, public: list it in `REDRESS_JWT_PUBLIC_KEYS`; its key id is the
//!   file stem). Also the pair a service signs its own calls with (`REDRESS_SERVICE_KEY`).
//! - `intake`: a data key for personal data and the pseudonym key, as environment lines.

use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make keys.
    Generate {
        #[command(subcommand)]
        what: What,
    },
}

#[derive(clap::Subcommand)]
pub enum What {
    /// An Ed25519 key pair for signing tokens: <dir>/<name>.pem and <dir>/<name>.key.pem.
    Jwt {
        /// The key id tokens will name (the file stem).
        #[arg(long)]
        name: String,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// A personal-data key and a pseudonym key, printed as REDRESS_INTAKE_* lines.
    Intake {
        /// Id of the new data key (keep ids unique: old keys stay listed until rotated).
        #[arg(long)]
        id: Option<String>,
    },
}

fn random32() -> anyhow::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(bytes)
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let Command::Generate { what } = command;
    match what {
        What::Jwt { name, dir } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                bail!(
                    "--name: letters, digits, `-` and `_` only (it becomes the key id and the file name)"
                );
            }
            let key = SigningKey::from_bytes(&random32()?);
            let private = key
                .to_pkcs8_pem(LineEnding::LF)
                .context("encoding the private key")?;
            let public = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .context("encoding the public key")?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let private_path = dir.join(format!("{name}.key.pem"));
            let public_path = dir.join(format!("{name}.pem"));
            if private_path.exists() || public_path.exists() {
                bail!(
                    "{} or {} exists: not overwriting a key",
                    private_path.display(),
                    public_path.display()
                );
            }
            write_private(&private_path, private.as_bytes())?;
            std::fs::write(&public_path, public.as_bytes())
                .with_context(|| format!("writing {}", public_path.display()))?;
            println!("private (keep secret): {}", private_path.display());
            println!(
                "public (REDRESS_JWT_PUBLIC_KEYS, kid `{name}`): {}",
                public_path.display()
            );
        }
        What::Intake { id } => {
            let id = id.unwrap_or_else(|| format!("k{}", chrono::Utc::now().format("%Y%m%d")));
            println!("REDRESS_INTAKE_KEYS={id}:{}", B64.encode(random32()?));
            println!("REDRESS_INTAKE_ACTIVE_KEY={id}");
            println!("REDRESS_INTAKE_PSEUDONYM_KEY={}", B64.encode(random32()?));
        }
    }
    Ok(())
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}
