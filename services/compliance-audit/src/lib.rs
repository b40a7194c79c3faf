//! Compliance audit: a tamper-evident record of everything on the bus.
//!
//! Every event of every logged stream is appended once to a Merkle log (RFC 9162) in this
//! service's schema ([`ingest`], [`store`], [`merkle`]); signed checkpoints (C2SP
//! tlog-checkpoint in a signed note, [`note`]) are published and served ([`checkpoints`]);
//! [`api`] serves proofs and evidence bundles, which [`verify`] checks offline.
//!
//! Over the log: the compliance [`rules`] (data, cited) judged as events are logged and on
//! timers, raising [`violations`] onto the [`worklist`]; [`reconcile`] compares the streams
//! with the log; [`inspection`] draws the monthly sample from a checkpoint root.

pub mod api;
pub mod checkpoints;
pub mod client;
pub mod config;
pub mod ingest;
pub mod inspection;
pub mod merkle;
pub mod note;
pub mod reconcile;
pub mod rules;
pub mod store;
pub mod verify;
pub mod violations;
pub mod worklist;

use redress_proto::audit::v1::audit_service_server::AuditServiceServer;
use std::{sync::Arc, time::Duration};

use redress_runtime::{Running, Service, StartError, jobs::Queue};
use tokio_util::sync::CancellationToken;

pub use config::{AuditConfig, Config};
pub use note::{NoteSigner, NoteVerifier};

pub const SERVICE: &str = "compliance-audit";
/// The service's migrations (public for the benchmark, which builds a log without the service).
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Reads the signer key file the configuration names.
pub fn load_signer(config: &AuditConfig) -> Result<NoteSigner, StartError> {
    let setting = "REDRESS_AUDIT_SIGNING_KEY_FILE";
    let path = config.signing_key_file.as_ref().ok_or_else(|| {
        StartError::config(
            setting,
            "is required: the file `redress-compliance-audit keygen <name> <file>` writes",
        )
    })?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| StartError::config(setting, format!("cannot read {}: {e}", path.display())))?;
    NoteSigner::parse(&text)
        .map_err(|e| StartError::config(setting, format!("{}: {e}", path.display())))
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let signer = load_signer(&config.audit)?;
    let mut service = Service::start(
        SERVICE,
        "compliance_audit",
        config.runtime,
        &MIGRATIONS,
        shutdown,
    )
    .await?;
    let rules = rules::Rules::shipped().map_err(|e| StartError::config("rules", e))?;
    let inspection =
        inspection::Inspection::shipped().map_err(|e| StartError::config("inspection", e))?;
    let judge = Arc::new(violations::Judge {
        rules,
        settle: config.audit.rules_settle,
    });
    let judging = config.audit.rules.then(|| judge.clone());
    for consumer in ingest::consumers(judging) {
        service.consume(consumer)?;
    }
    if config.audit.rules {
        service.run_jobs(
            Queue::new(violations::QUEUE, violations::Timers(judge.clone()))
                .poll(Duration::from_secs(1)),
        );
        let reconciling = reconcile::every(
            service.bus.clone(),
            service.db.clone(),
            judge.clone(),
            config.audit.reconcile_interval,
            service.shutdown_token(),
        );
        service.spawn(reconciling);
    }
    let cadence = checkpoints::Cadence {
        interval: config.audit.checkpoint_interval,
        entries: config.audit.checkpoint_entries,
    };
    let signing = checkpoints::run(
        service.db.clone(),
        signer.clone(),
        cadence,
        service.shutdown_token(),
    );
    service.spawn(signing);
    let api = api::Api {
        db: service.db.clone(),
        signer,
        bus: service.bus.clone(),
        pager: service.pager(),
        judge,
        inspection: Arc::new(inspection),
        reviewers: config.audit.reviewers.clone(),
    };
    service.serve(AuditServiceServer::new(api)).await
}
