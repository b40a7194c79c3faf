//! # Case coordination
//!
//! Owns step 协调处理 and the case side of 反馈与跟踪: one case per classified complaint,
//! routed to the department that must act, worked by its handlers, decided and answered within
//! the deadline the configured regulatory regime sets, reviewed when the consumer disputes the
//! decision, followed up for satisfaction, and closed.
//!
//! - **Consumes** (stream `COMPLAINT_EVENTS`, one durable consumer each, with an inbox)
//!   `redress.complaint.v1.classified` (opens the case), `…reclassified`,
//!   `…duplicate_suspected` (links cases a specialist may merge) and `…withdrawn`.
//! - **Publishes** (stream `CASE_EVENTS`, through the outbox, in the transaction of the change)
//!   `redress.case.v1.<department>.<event>` — `triage` before routing — for created, assigned,
//!   work_started, input_requested (on the asked department's subject), input_answered,
//!   extended, clock_paused, clock_resumed, new_facts, deadline_warning, deadline_breached,
//!   decided, review_requested, escalated, satisfaction_recorded, closed, reopened,
//!   note_added, merged, withdrawn, conflict_declared, reclassified.
//! - **Owns** schema `cases`: cases, their timeline (`case_events`, which is also
//!   the clock history every deadline is derived from), input requests, conflicts (回避),
//!   handlers, duplicate links and deadline timers.
//! - **API** gRPC `redress.cases.v1.CaseService`: GetCase, ListCases, Assign, StartWork,
//!   AddNote, RequestInput, AnswerInput, Extend, ApproveExtension, PauseClock, ResumeClock,
//!   RecordNewFacts, RecordDecision, RequestReview, RecordSatisfaction, Escalate, Merge,
//!   Withdraw, Close, DeclareConflict.
//! - **Rules as data**: `rules/routing-v1.toml` and `rules/roster-v1.toml` here; deadlines and
//!   calendars in `services/regime` (`REDRESS_REGIME`, default `cn-nfra`).
//!
//! ```text
//! domain     — the state machine: which action from which state, and the errors
//! routing    — routing rules and roster files
//! deadlines  — clock history ⇄ redress-regime, timers that follow from the deadlines
//! store      — load/lock a case, commit changes with their events, read cases
//! handlers   — the complaint-event consumers
//! timers     — firing due deadline timers exactly once across replicas
//! api        — gRPC
//! ```

pub mod api;
pub mod config;
pub mod deadlines;
pub mod domain;
pub mod handlers;
pub mod routing;
pub mod store;
pub mod timers;

use std::{sync::Arc, time::Duration};

use redress_proto::cases::v1::case_service_server::CaseServiceServer;
use redress_runtime::{
    ConsumerSpec, Running, Service, bus, serve::GrpcSurface, service::StartError,
};
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub const SERVICE: &str = "case-coordination";

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("REDRESS_REGIME: {0}")]
    Regime(#[from] redress_regime::LoadError),
    #[error(transparent)]
    Rules(#[from] routing::RulesError),
    #[error("cannot load the handler roster: {0}")]
    Roster(#[from] domain::CaseError),
}

/// Starts case coordination and returns once it is serving; cancel `shutdown` to stop it.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Running, Error> {
    let clocks = deadlines::Clocks::new(&config.cases.regime)?;
    let routing = match &config.cases.routing {
        Some(path) => routing::Routing::from_path(path)?,
        None => routing::Routing::shipped()?,
    };
    let roster = match &config.cases.roster {
        Some(path) => routing::roster_from_path(path)?,
        None => routing::roster("rules/roster-v1.toml", routing::ROSTER_V1)?,
    };
    let mut service = Service::start(
        SERVICE,
        "cases",
        config.runtime.clone(),
        &MIGRATIONS,
        shutdown.clone(),
    )
    .await?;
    service
        .bus
        .ensure_streams(&[bus::COMPLAINT_EVENTS, bus::CASE_EVENTS, bus::DLQ])
        .await
        .map_err(StartError::from)?;
    {
        let mut conn = service
            .db
            .pool()
            .acquire()
            .await
            .map_err(domain::CaseError::from)?;
        for entry in &roster {
            store::add_handler(&mut conn, &entry.department, &entry.id, entry.senior).await?;
        }
    }

    let shared = Arc::new(store::Shared {
        db: service.db.clone(),
        clocks: Arc::new(clocks),
        routing: Arc::new(routing),
    });
    for kind in handlers::Kind::ALL {
        service.spawn_consumer(
            ConsumerSpec {
                service: SERVICE.into(),
                durable: format!("case-coordination-{}", kind.event().replace('_', "-")),
                stream: bus::COMPLAINT_EVENTS,
                filter_subject: format!("redress.complaint.v1.{}", kind.event()),
                inbox: true,
                settle: Duration::ZERO,
                tuning: config.runtime.consumer.clone(),
            },
            Arc::new(handlers::Complaints {
                shared: shared.clone(),
                kind,
            }),
        );
    }
    service.spawn(timers::run(
        shared.clone(),
        config.cases.timer_poll,
        shutdown.clone(),
    ));

    let api = api::Api { shared };
    let interceptor = service.auth.interceptor();
    let mut surface = GrpcSurface::new().map_err(StartError::from)?;
    surface.add(CaseServiceServer::with_interceptor(api, interceptor));
    Ok(service.serve(surface).await?)
}
