//! # Classification
//!
//! Owns step 初步分析与分类: judges what each complaint is about (JR/T 0169-2018 business
//! category and cause, extended for internet finance and mapped to CFPB) and how serious it is,
//! honestly about its confidence, and corrected by specialists.
//!
//! - **Consumes** `redress.complaint.v1.received`.
//! - **Publishes** `redress.complaint.v1.classified` (every complaint, with `needsReview` when
//!   below the threshold) and `redress.complaint.v1.reclassified` (a specialist's override).
//! - **Owns** schema `classification`: current classifications, their history, the review
//!   queue, labelled examples for retraining.
//! - **API** gRPC `redress.classification.v1.ClassificationService`: Classify (dry run),
//!   GetClassification, ListReviewQueue, Reclassify, GetTaxonomy.
//!
//! The engine (taxonomy, rules, severity, text model) is the `redress-classifier` crate.

pub mod api;
pub mod config;
pub mod engine;
pub mod handlers;
pub mod store;

use std::sync::Arc;

use redress_proto::classification::v1::classification_service_server::ClassificationServiceServer;
use redress_runtime::{
    ConsumerSpec, Running, Service, bus, serve::GrpcSurface, service::StartError,
};
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub const SERVICE: &str = "classification";

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("classifier data: {0}")]
    Engine(#[from] redress_classifier::Error),
}

/// Starts classification and returns once it is serving; cancel `shutdown` to stop it.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Running, Error> {
    let engine = Arc::new(engine::Engine::load(&config.classification)?);
    let mut service = Service::start(
        SERVICE,
        SERVICE,
        config.runtime.clone(),
        &MIGRATIONS,
        shutdown,
    )
    .await?;
    service
        .bus
        .ensure_streams(&[bus::COMPLAINT_EVENTS, bus::DLQ])
        .await
        .map_err(StartError::from)?;
    service.spawn_consumer(
        ConsumerSpec {
            service: SERVICE.into(),
            durable: "classification-received".into(),
            stream: bus::COMPLAINT_EVENTS,
            filter_subject: "redress.complaint.v1.received".into(),
            inbox: true,
            settle: std::time::Duration::ZERO,
            tuning: config.runtime.consumer.clone(),
        },
        Arc::new(handlers::Received {
            engine: engine.clone(),
        }),
    );
    let api = api::Api {
        engine,
        db: service.db.clone(),
    };
    let mut surface = GrpcSurface::new().map_err(StartError::from)?;
    surface.add(ClassificationServiceServer::with_interceptor(
        api,
        service.auth.interceptor(),
    ));
    Ok(service.serve(surface).await?)
}
