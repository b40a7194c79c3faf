//! # Intake
//!
//! Owns step 投诉接收与登记: receive complaints from every channel, check they are complete,
//! register each exactly once, give the channel a receipt, and keep personal data safe.
//!
//! - **Consumes** `redress.intake.v1.submit.<channel>` (stream `INTAKE`; core requests are
//!   answered with a receipt).
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
//! handlers   — the INTAKE stream's durable consumer
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
use redress_runtime::{
    ConsumerSpec, Running, Service,
    bus::{self},
    serve::GrpcSurface,
    service::StartError,
};
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub const SERVICE: &str = "intake";

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
}

/// Starts intake and returns once it is serving; cancel `shutdown` to stop it.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Running, Error> {
    let vault = vault::Vault::new(
        &config.intake.keys,
        &config.intake.active_key,
        &config.intake.pseudonym_key,
    )?;
    let mut service = Service::start(
        SERVICE,
        SERVICE,
        config.runtime.clone(),
        &MIGRATIONS,
        shutdown.clone(),
    )
    .await?;
    service
        .bus
        .ensure_streams(&[
            bus::INTAKE,
            bus::INTAKE_REJECTED,
            bus::COMPLAINT_EVENTS,
            bus::DLQ,
        ])
        .await
        .map_err(StartError::from)?;

    let references = service.db.side_pool(2).await.map_err(StartError::from)?;
    let shared = Arc::new(registrar::Shared {
        db: service.db.clone(),
        references,
        bus: service.bus.clone(),
        vault: Arc::new(vault),
        settings: config.intake.settings.clone(),
    });
    let (registrar, batches) = registrar::Registrar::start(shared.clone(), shutdown.clone());
    let requests = registrar
        .clone()
        .serve_requests(service.bus.clone(), shutdown.clone());
    service.spawn(async move {
        if let Err(error) = requests.await {
            tracing::error!(%error, "cannot subscribe to submission requests");
        }
    });
    service.spawn(async move {
        let _ = batches.await;
    });
    service.spawn_consumer(
        ConsumerSpec {
            service: SERVICE.into(),
            durable: "intake-submissions".into(),
            stream: bus::INTAKE,
            filter_subject: "redress.intake.v1.submit.>".into(),
            inbox: false,
            settle: config.intake.settings.request_grace,
            tuning: config.runtime.consumer.clone(),
        },
        Arc::new(handlers::Submissions {
            shared: shared.clone(),
        }),
    );

    let api = api::Api { shared, registrar };
    let interceptor = service.auth.interceptor();
    let mut surface = GrpcSurface::new().map_err(StartError::from)?;
    surface.add(IntakeServiceServer::with_interceptor(api, interceptor));
    Ok(service.serve(surface).await?)
}
