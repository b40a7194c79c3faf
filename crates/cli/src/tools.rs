//! Operations on a service's own schema are commands of that service's binary (the CLI never
//! touches another service's tables): `redress intake rotate-key` runs
//! `redress-intake rotate-key`, found beside this binary or on PATH, with this environment.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// Runs `binary args…` and fails with its exit status.
pub fn run_service_command(binary: &str, args: &[&str]) -> anyhow::Result<()> {
    let path = locate(binary);
    let status = std::process::Command::new(&path)
        .args(args)
        .status()
        .with_context(|| {
            format!(
                "cannot run {}: build it with `cargo build -p {binary}` or put it on PATH",
                path.display()
            )
        })?;
    if !status.success() {
        bail!("{binary} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The binary beside the running `redress`, else by name on PATH.
fn locate(binary: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(binary)))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from(binary))
}
