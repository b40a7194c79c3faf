//! `redress dev`: the whole suite in one process, each service with its own schema, consumers
//! and ports, against the NATS and Postgres that `make deps` found or started.
//!
//! It reads every variable of the configuration table, as the services do, and overrides only
//! what one process running them all must: the listen addresses (each service takes the next
//! port after the configured one, in the order below) and, unless keys are configured, the
//! development keys. Listeners bind to 127.0.0.1 unless an address is given explicitly: the
//! development keys are public. The first three services also take their settings as flags;
//! notification, analytics and compliance-audit read theirs from the environment only, since
//! several of their flags share names with the first three's (`--regime`, `--time-zone`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use clap::parser::ValueSource;
use redress_runtime::{Role, Running, RuntimeConfig, auth};
use tokio_util::sync::CancellationToken;

/// The services in the order they take ports: the configured port, then the next ones.
pub const SERVICES: [&str; 6] = [
    "intake",
    "classification",
    "case-coordination",
    "notification",
    "analytics",
    "compliance-audit",
];

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub runtime: RuntimeConfig,
    #[command(flatten)]
    pub intake: redress_intake::config::IntakeConfig,
    #[command(flatten)]
    pub classification: redress_classification::config::ClassificationConfig,
    #[command(flatten)]
    pub cases: redress_case_coordination::config::CasesConfig,
}

/// Whether the user gave `id` (flag or variable) rather than leaving its default.
pub type Given = Box<dyn Fn(&str) -> bool>;

pub fn given(matches: &clap::ArgMatches) -> Given {
    let sources: Vec<(String, bool)> = matches
        .ids()
        .map(|id| {
            let explicit = !matches!(
                matches.value_source(id.as_str()),
                Some(ValueSource::DefaultValue) | None
            );
            (id.as_str().to_owned(), explicit)
        })
        .collect();
    Box::new(move |id: &str| sources.iter().any(|(i, explicit)| i == id && *explicit))
}

/// The address of service number `slot`: the configured one's port + `slot`, on loopback
/// unless the address was given.
fn slot(addr: SocketAddr, explicit: bool, slot: u16) -> SocketAddr {
    let ip = if explicit {
        addr.ip()
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let port = if addr.port() == 0 {
        0
    } else {
        addr.port().saturating_add(slot)
    };
    SocketAddr::new(ip, port)
}

pub async fn run(mut args: Args, given: Given) -> anyhow::Result<()> {
    let _telemetry = redress_runtime::telemetry::init("dev", args.runtime.log_format);
    let dev_keys = std::env::temp_dir().join(format!("redress-dev-{}", std::process::id()));
    if args.runtime.auth.jwt_public_keys.is_empty() && args.runtime.auth.jwt_jwks_url.is_none() {
        let key = auth::dev::write_public_key(&dev_keys)
            .with_context(|| format!("writing the development key into {}", dev_keys.display()))?;
        args.runtime.auth.jwt_public_keys = vec![key];
    }
    let intake_keys = &mut args.intake;
    if intake_keys.keys.is_none() {
        intake_keys.keys = Some(redress_intake::vault::dev::KEYS.into());
        intake_keys.active_key = Some(redress_intake::vault::dev::ACTIVE.into());
    }
    if intake_keys.pseudonym_key.is_none() {
        intake_keys.pseudonym_key = Some(redress_intake::vault::dev::PSEUDONYM.into());
    }
    let runtime = |n: u16| {
        let mut r = args.runtime.clone();
        r.grpc_addr = slot(args.runtime.grpc_addr, given("grpc_addr"), n);
        r.http_addr = slot(args.runtime.http_addr, given("http_addr"), n);
        r
    };
    let shutdown = CancellationToken::new();
    redress_runtime::shutdown::cancel_on_signal(shutdown.clone());

    let intake = redress_intake::run(
        redress_intake::Config {
            runtime: runtime(0),
            intake: args.intake.clone(),
            command: None,
        },
        shutdown.clone(),
    )
    .await
    .context("starting intake")?;
    let classification = redress_classification::run(
        redress_classification::Config {
            runtime: runtime(1),
            classification: args.classification.clone(),
            command: None,
        },
        shutdown.clone(),
    )
    .await
    .context("starting classification")?;
    let cases = redress_case_coordination::run(
        redress_case_coordination::Config {
            runtime: runtime(2),
            cases: args.cases.clone(),
        },
        shutdown.clone(),
    )
    .await
    .context("starting case-coordination")?;

    let newer = start_newer(
        &runtime,
        &dev_keys,
        intake.endpoints.grpc,
        cases.endpoints.grpc,
        &shutdown,
    )
    .await?;
    let running: Vec<Running> = [intake, classification, cases]
        .into_iter()
        .chain(newer)
        .collect();
    banner(&args, &running);
    for service in running {
        service.stopped().await?;
    }
    let _ = std::fs::remove_dir_all(&dev_keys);
    Ok(())
}

/// Notification, analytics and compliance-audit, in their slots after the first three, with
/// development keys where none is configured: notification signs its calls to intake and
/// case-coordination with the development key, compliance-audit signs checkpoints with a key
/// made for this run.
async fn start_newer(
    runtime: &dyn Fn(u16) -> RuntimeConfig,
    dev_keys: &std::path::Path,
    intake_grpc: SocketAddr,
    cases_grpc: SocketAddr,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<Running>> {
    let mut notification: redress_notification::Config = from_env("redress-notification")?;
    notification.runtime = runtime(3);
    let n = &mut notification.notification;
    if n.service_key.is_none() {
        // The key id is the file's stem: `dev`, as the development public key's.
        let path = dev_keys
            .join("service")
            .join(format!("{}.pem", auth::dev::KID));
        write(&path, auth::dev::PRIVATE_PEM)?;
        n.service_key = Some(path);
    }
    if std::env::var_os("REDRESS_INTAKE_URL").is_none() {
        n.intake_url = format!("http://{intake_grpc}");
    }
    // Survey answers (回访) go to this run's case-coordination.
    if std::env::var_os("REDRESS_CASES_URL").is_none() {
        n.cases_url = format!("http://{cases_grpc}");
    }
    let notification = redress_notification::run(notification, shutdown.clone())
        .await
        .context("starting notification")?;

    let mut analytics: redress_analytics::Config = from_env("redress-analytics")?;
    analytics.runtime = runtime(4);
    let analytics = match redress_analytics::run(analytics, shutdown.clone())
        .await
        .context("starting analytics")?
    {
        redress_runtime::app::Exit::Serving(running) => running,
        redress_runtime::app::Exit::Done => {
            anyhow::bail!("analytics ran a command instead of serving")
        }
    };

    let mut audit: redress_compliance_audit::Config = from_env("redress-compliance-audit")?;
    audit.runtime = runtime(5);
    if audit.audit.signing_key_file.is_none() {
        let signer = redress_compliance_audit::NoteSigner::generate("audit.redress.dev")
            .context("making a checkpoint signing key")?;
        let path = dev_keys.join("audit-signing.key");
        write(&path, &signer.encode())?;
        audit.audit.signing_key_file = Some(path);
    }
    let audit = redress_compliance_audit::run(audit, shutdown.clone())
        .await
        .context("starting compliance-audit")?;
    Ok(vec![notification, analytics, audit])
}

/// A service's settings from the environment and defaults alone.
fn from_env<C: clap::Parser>(binary: &str) -> anyhow::Result<C> {
    C::try_parse_from([binary]).with_context(|| format!("reading {binary}'s settings"))
}

fn write(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn banner(args: &Args, running: &[Running]) {
    println!("\nRedress is running (development keys: never use them in production)\n");
    println!(
        "  {:<20} {:<22} HTTP (/healthz /readyz /metrics)",
        "service", "gRPC"
    );
    for (name, service) in SERVICES.iter().zip(running) {
        println!(
            "  {:<20} {:<22} {}",
            name, service.endpoints.grpc, service.endpoints.http
        );
    }
    println!("\n  NATS      {}", args.runtime.nats_url);
    println!("  Postgres  {}", args.runtime.database_url_for_display());
    println!(
        "  namespace {}",
        if args.runtime.bus_namespace.is_empty() {
            "(none)"
        } else {
            &args.runtime.bus_namespace
        }
    );
    println!("  regime    {}", args.cases.regime);
    match crate::token::dev_token("dev-specialist", &[Role::Specialist], None) {
        Ok(token) => println!("\nA specialist's token (12 h):\n  {token}\n"),
        Err(error) => println!("\n(no development token: {error})\n"),
    }
    println!("Try: redress submit --channel web --file services/intake/examples/zh-valid.json\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_take_consecutive_ports_on_loopback_unless_given() {
        let configured: SocketAddr = ([0, 0, 0, 0], 50051).into();
        assert_eq!(slot(configured, false, 2), ([127, 0, 0, 1], 50053).into());
        assert_eq!(slot(configured, true, 1), ([0, 0, 0, 0], 50052).into());
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        assert_eq!(slot(any, true, 2).port(), 0);
    }
}
