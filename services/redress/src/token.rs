//! `redress token`: development bearer tokens.

use std::time::Duration;

use anyhow::Context;
use redress_runtime::{auth, config::parse_duration};

#[derive(clap::Args)]
pub struct Args {
    /// Role(s): specialist, analyst, educator, compliance, product, handler, admin, service:<name>.
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
    /// The department a handler works in.
    #[arg(long)]
    department: Option<String>,
    /// Token subject (who).
    #[arg(long, default_value = "dev-user")]
    subject: String,
    /// Lifetime.
    #[arg(long, default_value = "12h", value_parser = parse_duration)]
    ttl: Duration,
    /// Private key (PEM, Ed25519 or RSA) to sign with instead of the development key.
    #[arg(long)]
    key: Option<std::path::PathBuf>,
    /// Key id to put in the token header (the public key's file stem where it is checked).
    #[arg(long, default_value = auth::dev::KID)]
    kid: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let roles: Vec<&str> = args.roles.iter().map(String::as_str).collect();
    if roles.contains(&"handler") && args.department.is_none() {
        anyhow::bail!("--department is required for the handler role");
    }
    let claims = auth::claims(&args.subject, &roles, args.department.as_deref(), args.ttl);
    let pem = match &args.key {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => auth::dev::PRIVATE_PEM.as_bytes().to_vec(),
    };
    println!("{}", auth::mint(&pem, &args.kid, &claims)?);
    Ok(())
}

/// A development token, for `redress dev`'s banner.
pub fn dev_token(roles: &[&str]) -> String {
    let claims = auth::claims("dev-user", roles, None, Duration::from_secs(12 * 3600));
    auth::mint(auth::dev::PRIVATE_PEM.as_bytes(), auth::dev::KID, &claims).unwrap_or_default()
}
