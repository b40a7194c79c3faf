//! # Intake
//!
//! Owns step 投诉接收与登记: receive complaints from every channel, check they are complete,
//! register each exactly once, give the channel a receipt, and keep personal data safe.
//!
//! - **Consumes** `redress.intake.v1.submit.<channel>` (stream `INTAKE`; core requests are
//!   answered with a receipt) and `redress.intake.v1.durable.<channel>` (stream
//!   `INTAKE_DURABLE`; the PubAck means stored).
//! - **Publishes** `redress.complaint.v1.received`, `…duplicate_suspected`, `…contact_read`
//!   and `redress.intake.v1.rejected.<channel>`.
//! - **Owns** schema `intake`: complaints with personal data sealed (AES-256-GCM).
//! - **API** gRPC `redress.intake.v1.IntakeService`: SubmitComplaint, GetComplaint,
//!   ListComplaints, GetContact.
//!
//! ```text
//! domain     — validation, redaction, similarity: pure rules
//! vault      — encryption keys and pseudonyms
//! register   — one submission → one outcome, in the caller's transaction
//! registrar  — batched request paths (NATS requests, gRPC)
//! handlers   — the submission streams' durable consumers
//! store      — reads, audited contact reads, key rotation
//! api        — gRPC
//! ```

pub mod api;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod register;
pub mod registrar;
pub mod store;
pub mod vault;

use std::sync::Arc;

use redress_proto::intake::v1::intake_service_server::IntakeServiceServer;
use redress_runtime::{Consumer, Exit, Running, Service, StartError, bus};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub const SERVICE: &str = "intake";

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The binary's entry: the service, or one of its commands.
pub async fn main(config: Config, shutdown: CancellationToken) -> Result<Exit, StartError> {
    match config.command {
        None => run(config, shutdown).await.map(Exit::Serving),
        Some(config::Command::RotateKey) => {
            let vault = vault(&config.intake)?;
            let service =
                Service::start(SERVICE, SERVICE, config.runtime, &MIGRATIONS, shutdown).await?;
            let changed = store::rotate_keys(service.db.pool(), &vault)
                .await
                .map_err(|e| StartError::config("rotate-key", e))?;
            println!(
                "re-sealed {changed} records under key {}",
                vault.active_key()
            );
            Ok(Exit::Done)
        }
    }
}

fn vault(config: &config::IntakeConfig) -> Result<vault::Vault, StartError> {
    let missing =
        |name: &str| StartError::config(name, "required: see `redress keys generate intake`");
    let keys = config
        .keys
        .as_ref()
        .ok_or_else(|| missing("REDRESS_INTAKE_KEYS"))?;
    let active = config
        .active_key
        .as_ref()
        .ok_or_else(|| missing("REDRESS_INTAKE_ACTIVE_KEY"))?;
    let pseudonym = config
        .pseudonym_key
        .as_ref()
        .ok_or_else(|| missing("REDRESS_INTAKE_PSEUDONYM_KEY"))?;
    vault::Vault::new(keys.expose_secret(), active, pseudonym.expose_secret())
        .map_err(|e| StartError::config("REDRESS_INTAKE_KEYS", e))
}

/// Starts intake and returns once it is serving; cancel `shutdown` to stop it.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let vault = Arc::new(vault(&config.intake)?);
    let mut service = Service::start(
        SERVICE,
        SERVICE,
        config.runtime,
        &MIGRATIONS,
        shutdown.clone(),
    )
    .await?;
    let references = service.db.side_pool(2).await?;
    let shared = Arc::new(registrar::Shared {
        db: service.db.clone(),
        references,
        bus: service.bus.clone(),
        vault: vault.clone(),
        settings: config.intake.settings.clone(),
    });
    let (registrar, batches) = registrar::Registrar::start(shared.clone(), shutdown.clone());
    let requests = registrar
        .clone()
        .serve_requests(service.bus.clone(), shutdown);
    service.spawn(async move {
        if let Err(error) = requests.await {
            tracing::error!(%error, "cannot subscribe to submission requests");
        }
    });
    service.spawn(async move {
        let _ = batches.await;
    });
    // Both submission streams: registration is idempotent by channel:channelRef, so no inbox;
    // a submission that can never be registered is dead-lettered sealed, never raw.
    let seal = handlers::sealer(vault);
    let submissions = handlers::Submissions {
        shared: shared.clone(),
    };
    service.consume(
        Consumer::raw(
            "intake-submissions",
            bus::INTAKE,
            "redress.intake.v1.submit.>",
            submissions.clone(),
        )
        .without_inbox()
        .settle(config.intake.settings.request_grace)
        .seal_dead_letters(seal.clone()),
    )?;
    service.consume(
        Consumer::raw(
            "intake-durable",
            bus::INTAKE_DURABLE,
            "redress.intake.v1.durable.>",
            submissions,
        )
        .without_inbox()
        .seal_dead_letters(seal),
    )?;
    let api = api::Api {
        shared,
        registrar,
        pager: service.pager(),
    };
    service.serve(IntakeServiceServer::new(api)).await
}
