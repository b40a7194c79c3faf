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
//!   GetClassification, ListReviewQueue, Reclassify, GetTaxonomy; Retrain, ListModels,
//!   Rollback (learning from specialists, `retrain`, `models`, `live`).
//!
//! The engine (taxonomy, rules, severity, text model) is the `redress-classifier` crate.

pub mod api;
pub mod config;
pub mod engine;
pub mod handlers;
pub mod live;
pub mod models;
pub mod retrain;
pub mod store;

use std::sync::Arc;

use redress_proto::{
    classification::v1::classification_service_server::ClassificationServiceServer,
    events::v1::ComplaintReceived,
};
use redress_runtime::{Consumer, Exit, Running, Service, StartError, jobs::Queue};
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub const SERVICE: &str = "classification";

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The binary's entry: the service, or one of its commands.
pub async fn main(config: Config, shutdown: CancellationToken) -> Result<Exit, StartError> {
    match config.command {
        None => run(config, shutdown).await.map(Exit::Serving),
        Some(config::Command::ExportExamples { ref out }) => {
            let out = out.clone();
            let service =
                Service::start(SERVICE, SERVICE, config.runtime, &MIGRATIONS, shutdown).await?;
            let written = store::export_examples(service.db.pool(), &out)
                .await
                .map_err(|e| StartError::config("--out", e))?;
            println!("wrote {written} labelled examples to {}", out.display());
            Ok(Exit::Done)
        }
    }
}

/// Starts classification and returns once it is serving; cancel `shutdown` to stop it.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let settings = config.classification;
    let configured =
        engine::Engine::load(&settings).map_err(|e| StartError::config("classifier data", e))?;
    if let Some(path) = &settings.retrain.base_data {
        for &slot in &settings.retrain.slots {
            retrain::base_examples(path, slot)
                .map_err(|e| StartError::config("REDRESS_CLASSIFICATION_RETRAIN_BASE_DATA", e))?;
        }
    }
    let mut service =
        Service::start(SERVICE, SERVICE, config.runtime, &MIGRATIONS, shutdown).await?;
    // The active models learnt from specialists, installed before the first complaint.
    let live = Arc::new(live::Live::new(configured, service.db.clone()));
    live.refresh()
        .await
        .map_err(|e| StartError::config("active models (classification.models)", e))?;
    service.spawn(
        live.clone()
            .watch(settings.retrain.model_poll, service.shutdown_token()),
    );
    let retrainer = Arc::new(retrain::Retrainer {
        live: live.clone(),
        target_precision: settings.target_precision,
        schema: service.db.schema().to_owned(),
        config: settings.retrain.clone(),
    });
    if !settings.retrain.interval.is_zero() {
        let schedule = async {
            let mut conn = service.db.pool().acquire().await?;
            retrain::schedule_next(&mut conn, settings.retrain.interval).await
        };
        schedule
            .await
            .map_err(|e| StartError::config("scheduling retraining", e))?;
        service.run_jobs(Queue::new(
            retrain::QUEUE,
            retrain::Scheduled(retrainer.clone()),
        ));
    }
    service.consume(
        Consumer::durable("classification-received").on::<ComplaintReceived>(handlers::Received {
            engine: live.clone(),
        }),
    )?;
    let api = api::Api {
        live,
        retrainer,
        db: service.db.clone(),
        pager: service.pager(),
    };
    service.serve(ClassificationServiceServer::new(api)).await
}
