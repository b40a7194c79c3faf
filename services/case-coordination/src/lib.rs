//! # Case coordination
//!
//! Owns step 协调处理 and the case side of 反馈与跟踪: one case per classified complaint,
//! routed to the department that must act, worked by its handlers, decided and answered within
//! the deadline the configured regulatory regime sets, reviewed when the consumer disputes the
//! decision, followed up for satisfaction, and closed.
//!
//! - **Consumes** (stream `COMPLAINT_EVENTS`, one durable consumer in stream order, with an
//!   inbox) `redress.complaint.v1.classified` (opens the case), `…reclassified`,
//!   `…duplicate_suspected` (links cases a specialist may merge) and `…withdrawn`; and
//!   (stream `NOTIFICATION_EVENTS`, durable `case-coordination-notifications`)
//!   `redress.notification.v1.sent` for a decision: the consumer was told, and the review
//!   window runs from then.
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
//!   calendars in `crates/regime` (`REDRESS_REGIME`, default `cn-nfra`).
//!
//! ```text
//! domain     — the case, its state machine, and the rule of each change (no database)
//! routing    — routing rules and roster files
//! deadlines  — clock history ⇄ redress-regime, timers that follow from the deadlines
//! store      — all SQL: load/lock a case, commit changes with their events, read cases
//! handlers   — the complaint events
//! timers     — deadline timers as due work (runtime::jobs), fired once across replicas
//! api        — gRPC, one module per concern
//! ```

pub mod api;
pub mod config;
pub mod deadlines;
pub mod domain;
pub mod handlers;
pub mod routing;
pub mod store;
pub mod timers;

use std::sync::Arc;

use redress_proto::{
    cases::v1::case_service_server::CaseServiceServer,
    events::v1::{
        ComplaintClassified, ComplaintReclassified, ComplaintWithdrawn, DuplicateSuspected,
        NotificationSent,
    },
};
use redress_runtime::{Consumer, Running, Service, StartError, jobs::Queue};
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub const SERVICE: &str = "case-coordination";

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Starts case coordination and returns once it is serving; cancel `shutdown` to stop it.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let cases = &config.cases;
    let clocks = deadlines::Clocks::new(&cases.regime)
        .map_err(|e| StartError::config("REDRESS_REGIME", e))?;
    let routing = match &cases.routing {
        Some(path) => routing::Routing::from_path(path),
        None => routing::Routing::shipped(),
    }
    .map_err(|e| StartError::config("REDRESS_CASES_ROUTING", e))?;
    let roster = match &cases.roster {
        Some(path) => routing::roster_from_path(path),
        None => routing::roster("rules/roster-v1.toml", routing::ROSTER_V1),
    }
    .map_err(|e| StartError::config("REDRESS_CASES_ROSTER", e))?;
    let mut service =
        Service::start(SERVICE, "cases", config.runtime, &MIGRATIONS, shutdown).await?;
    {
        let mut conn = service
            .db
            .pool()
            .acquire()
            .await
            .map_err(|e| StartError::config("roster", e))?;
        for entry in &roster {
            store::add_handler(&mut conn, &entry.department, &entry.id, entry.senior)
                .await
                .map_err(|e| StartError::config("REDRESS_CASES_ROSTER", e))?;
        }
    }
    let shared = Arc::new(store::Shared {
        db: service.db.clone(),
        clocks: Arc::new(clocks),
        routing: Arc::new(routing),
    });
    let complaints = handlers::Complaints {
        shared: shared.clone(),
    };
    service.consume(
        Consumer::durable("case-coordination")
            .on::<ComplaintClassified>(complaints.clone())
            .on::<ComplaintReclassified>(complaints.clone())
            .on::<DuplicateSuspected>(complaints.clone())
            .on::<ComplaintWithdrawn>(complaints),
    )?;
    // Notification's stream has its own consumer (NATS 2.9: one filter set per stream).
    service.consume(
        Consumer::durable("case-coordination-notifications").on::<NotificationSent>(
            handlers::Notifications {
                shared: shared.clone(),
            },
        ),
    )?;
    service.run_jobs(
        Queue::new(
            store::TIMERS,
            timers::Deadlines {
                shared: shared.clone(),
            },
        )
        .poll(cases.timer_poll),
    );
    let api = api::Api {
        shared,
        pager: service.pager(),
    };
    service.serve(CaseServiceServer::new(api)).await
}
