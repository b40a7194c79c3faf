//! `redress dev`: the whole suite in one process, each service with its own schema,
//! consumers and ports, against the NATS and Postgres that `make deps` found or started.

use std::net::SocketAddr;

use anyhow::Context;
use redress_runtime::RuntimeConfig;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct Args {
    #[arg(
        long,
        env = "REDRESS_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    #[arg(
        long,
        env = "REDRESS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/redress"
    )]
    database_url: String,
    #[arg(long, env = "REDRESS_BUS_NAMESPACE", default_value = "")]
    namespace: String,
    /// Host the services listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// gRPC ports: intake listens here, classification on the next, case-coordination after.
    #[arg(long, default_value_t = 50051)]
    grpc_base_port: u16,
    /// HTTP (/healthz /readyz /metrics) ports, in the same order.
    #[arg(long, default_value_t = 9091)]
    http_base_port: u16,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let key_path = std::env::temp_dir().join("redress-dev.pem");
    std::fs::write(&key_path, redress_runtime::auth::dev::PUBLIC_PEM)
        .with_context(|| format!("writing {}", key_path.display()))?;
    let _telemetry =
        redress_runtime::telemetry::init("dev", redress_runtime::config::LogFormat::Pretty);
    let shutdown = CancellationToken::new();
    redress_runtime::shutdown::cancel_on_signal(shutdown.clone());

    let runtime = |slot: u16| RuntimeConfig {
        nats_url: args.nats_url.clone(),
        nats_creds: None,
        bus_namespace: args.namespace.clone(),
        stream_replicas: 1,
        database_url: args.database_url.clone(),
        db_max_connections: 8,
        grpc_addr: SocketAddr::new(args.host, args.grpc_base_port + slot),
        http_addr: SocketAddr::new(args.host, args.http_base_port + slot),
        jwt_public_keys: vec![key_path.clone()],
        jwt_issuer: "redress".into(),
        jwt_audience: "redress".into(),
        log_format: redress_runtime::config::LogFormat::Pretty,
        shutdown_grace: std::time::Duration::from_secs(10),
        consumer: Default::default(),
    };

    let intake = redress_intake::run(
        redress_intake::Config {
            runtime: runtime(0),
            intake: redress_intake::config::IntakeConfig {
                keys: redress_intake::vault::dev::KEYS.into(),
                active_key: redress_intake::vault::dev::ACTIVE.into(),
                pseudonym_key: redress_intake::vault::dev::PSEUDONYM.into(),
                settings: Default::default(),
            },
        },
        shutdown.clone(),
    )
    .await
    .context("starting intake")?;

    let classification = redress_classification::run(
        redress_classification::Config {
            runtime: runtime(1),
            classification: Default::default(),
        },
        shutdown.clone(),
    )
    .await
    .context("starting classification")?;

    let cases = redress_case_coordination::run(
        redress_case_coordination::Config {
            runtime: runtime(2),
            cases: Default::default(),
        },
        shutdown.clone(),
    )
    .await
    .context("starting case-coordination")?;

    let services = [
        ("intake", &intake),
        ("classification", &classification),
        ("case-coordination", &cases),
    ];
    println!("\nRedress is running (development keys: never use them in production)\n");
    println!(
        "  {:<20} {:<22} HTTP (/healthz /readyz /metrics)",
        "service", "gRPC"
    );
    for (name, running) in services {
        println!(
            "  {:<20} {:<22} {}",
            name, running.endpoints.grpc, running.endpoints.http
        );
    }
    println!("\n  NATS      {}", args.nats_url);
    println!(
        "  namespace {}",
        if args.namespace.is_empty() {
            "(none)"
        } else {
            &args.namespace
        }
    );
    println!(
        "\nA specialist's token (12 h):\n  {}\n",
        crate::token::dev_token(&["specialist"])
    );
    println!("Try: redress submit --channel web --file services/intake/examples/zh-valid.json\n");

    intake.stopped().await?;
    classification.stopped().await?;
    cases.stopped().await?;
    Ok(())
}
