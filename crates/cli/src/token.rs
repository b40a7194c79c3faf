//! `redress token`: bearer tokens, signed with the development key or a key of yours.

use std::time::Duration;

use anyhow::{Context, bail};
use redress_runtime::{Role, auth, config::parse_duration};

#[derive(clap::Args)]
pub struct Args {
    /// Role(s): specialist, analyst, educator, compliance, product, handler, department_head,
    /// senior_management, admin, service:<service>, service:channel-<channel>.
    #[arg(long = "role", required = true, value_parser = role)]
    roles: Vec<Role>,
    /// The department a handler or department head works in.
    #[arg(long)]
    department: Option<String>,
    /// Token subject (who); a service or channel identity's own name by default.
    #[arg(long)]
    subject: Option<String>,
    /// Lifetime.
    #[arg(long, default_value = "12h", value_parser = parse_duration)]
    ttl: Duration,
    /// Private key (PEM, Ed25519 or RSA) to sign with instead of the development key; its key
    /// id is the file stem without `.key` (`ops.key.pem` → `ops`), as services read it from the
    /// public key's file name (`ops.pem`).
    #[arg(long)]
    key: Option<std::path::PathBuf>,
}

/// A role name, or an error listing every role.
pub fn role(name: &str) -> Result<Role, String> {
    Role::parse(name).ok_or_else(|| {
        let people: Vec<String> = Role::PEOPLE.iter().map(|r| r.name()).collect();
        format!(
            "`{name}` is not a role; the roles are {}, service:<service> and service:channel-<channel>",
            people.join(", ")
        )
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let scoped = args
        .roles
        .iter()
        .any(|r| matches!(r, Role::Handler | Role::DepartmentHead));
    if scoped && args.department.is_none() {
        bail!("--department is required for the handler and department_head roles");
    }
    let identity = args
        .roles
        .iter()
        .find(|r| matches!(r, Role::Service(_) | Role::Channel(_)))
        .map(|r| r.name());
    let subject = args
        .subject
        .or(identity)
        .unwrap_or_else(|| "dev-user".to_owned());
    let claims = auth::claims(&subject, &args.roles, args.department.as_deref(), args.ttl);
    let token = match &args.key {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            // `keys generate jwt --name N` writes N.key.pem beside N.pem, and services take
            // the key id from the public key's stem: both name the key N.
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let kid = stem.strip_suffix(".key").unwrap_or(&stem).to_owned();
            auth::mint(&pem, &kid, &claims)?
        }
        None => auth::dev::token(&subject, &args.roles, args.department.as_deref(), args.ttl)?,
    };
    println!("{token}");
    Ok(())
}

/// A development token, for `redress dev`'s banner and the CLI's `--as`.
pub fn dev_token(
    subject: &str,
    roles: &[Role],
    department: Option<&str>,
) -> Result<String, auth::AuthError> {
    auth::dev::token(subject, roles, department, Duration::from_secs(12 * 3600))
}
