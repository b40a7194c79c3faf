//! gRPC `redress.cases.v1.CaseService`.
//!
//! Every change: authorise the caller, lock the case, check the department (a `handler` only
//! touches its own department's cases — others look absent), the version (stale → ABORTED)
//! and the state (wrong → FAILED_PRECONDITION naming it), apply the rule (`domain::rules`),
//! and commit the events through the outbox in the same transaction. Every event records the
//! caller as its actor. The RPCs live by concern:
//!
//! ```text
//! read     — GetCase, ListCases
//! route    — Assign, StartWork, DeclareConflict
//! work     — AddNote, RequestInput, AnswerInput, Extend, ApproveExtension, PauseClock,
//!            ResumeClock, RecordNewFacts
//! outcome  — RecordDecision, RequestReview, RecordSatisfaction, Escalate, Merge, Withdraw, Close
//! ```

mod outcome;
mod read;
mod route;
mod work;

use std::sync::Arc;

use redress_proto::{
    cases::v1::{self as api, case_service_server::CaseService},
    common::v1::Actor,
    vocab::TextKind,
};
use redress_regime::Deadlines;
use redress_runtime::{Principal, Role, ServiceId, grpc, paging::Pager};
use sqlx::{PgConnection, Postgres, Transaction};
use tonic::{Request, Response, Status};

use crate::{
    domain::{Action, CaseError, CaseRecord, Change},
    store::{self, Shared},
};

/// Who may read cases.
const READERS: &[Role] = &[
    Role::Specialist,
    Role::Compliance,
    Role::Analyst,
    Role::Product,
    Role::Admin,
    Role::Handler,
    Role::DepartmentHead,
    Role::Service(ServiceId::Notification),
    Role::Service(ServiceId::Analytics),
    Role::Service(ServiceId::Audit),
];
/// Who works cases.
const WORKERS: &[Role] = &[Role::Handler, Role::Specialist];
/// Longest free text accepted.
const MAX_TEXT: usize = 4000;

pub struct Api {
    pub shared: Arc<Shared>,
    pub pager: Pager,
}

/// The authenticated caller, in the role they act in.
pub(crate) struct Caller {
    principal: Principal,
    role: Role,
}

impl Caller {
    fn of<T>(request: &Request<T>, roles: &[Role]) -> Result<Self, Status> {
        let principal = Principal::of(request)?.clone();
        let role = principal.require(roles)?;
        Ok(Self { principal, role })
    }

    fn actor(&self) -> Actor {
        self.principal.actor(self.role)
    }

    /// Handlers (and department heads) see only their department's cases.
    fn department_scoped(&self) -> bool {
        matches!(self.role, Role::Handler | Role::DepartmentHead)
    }

    fn is_handler(&self) -> bool {
        self.role == Role::Handler
    }

    fn department(&self) -> &str {
        self.principal.department()
    }

    fn subject(&self) -> &str {
        &self.principal.subject
    }
}

fn status(error: CaseError) -> Status {
    match error {
        CaseError::NotFound(_) => Status::not_found(error.to_string()),
        CaseError::WrongState { .. } | CaseError::Refused(_) => {
            Status::failed_precondition(error.to_string())
        }
        CaseError::StaleVersion { .. } => Status::aborted(error.to_string()),
        CaseError::Invalid(violations) => grpc::invalid(violations),
        CaseError::Forbidden(_) => Status::permission_denied(error.to_string()),
        CaseError::Database(ref e) => grpc::database("case store", e),
        CaseError::Corrupt(ref m) => {
            tracing::error!(message = %m, "case store");
            Status::internal("the case could not be read; it has been logged")
        }
    }
}

fn respond(result: Result<api::Case, CaseError>) -> Result<Response<api::Case>, Status> {
    result.map(Response::new).map_err(status)
}

/// A free-text field of a request.
fn text(field: &str, value: &str, required: bool) -> Result<String, CaseError> {
    Ok(grpc::text(
        field,
        value,
        MAX_TEXT,
        TextKind::Prose,
        required,
    )?)
}

/// A handler sees only its department's cases (and those its department was asked about);
/// to anyone else's handler a case looks absent.
async fn may_see(
    conn: &mut PgConnection,
    caller: &Caller,
    case: &CaseRecord,
    include_asked: bool,
) -> Result<(), CaseError> {
    if !caller.department_scoped() || caller.department() == case.department {
        return Ok(());
    }
    if include_asked
        && !caller.department().is_empty()
        && store::asked(conn, case.id, caller.department()).await?
    {
        return Ok(());
    }
    Err(CaseError::NotFound(case.id.to_string()))
}

impl Api {
    /// Opens a change: locks the case and checks department, version and state.
    async fn begin(
        &self,
        caller: &Caller,
        id: &str,
        expected_version: u64,
        action: Action,
    ) -> Result<(Transaction<'static, Postgres>, CaseRecord), CaseError> {
        let id = redress_proto::vocab::parse_id("caseId", id)?;
        if expected_version == 0 {
            return Err(CaseError::invalid(
                "expectedVersion",
                "required: the version of the case you last read",
            ));
        }
        let mut tx = self.shared.db.pool().begin().await?;
        let case = store::load(&mut tx, id, true)
            .await?
            .ok_or_else(|| CaseError::NotFound(id.to_string()))?;
        may_see(&mut tx, caller, &case, action == Action::AnswerInput).await?;
        if case.version != expected_version {
            return Err(CaseError::StaleVersion {
                expected: expected_version,
                current: case.version,
            });
        }
        action.check(case.state)?;
        Ok((tx, case))
    }

    /// Commits the change and answers with the case as it now is.
    async fn finish(
        &self,
        mut tx: Transaction<'static, Postgres>,
        mut case: CaseRecord,
        caller: &Caller,
        changes: Vec<Change>,
    ) -> Result<api::Case, CaseError> {
        store::commit(
            &mut tx,
            &self.shared.clocks,
            &mut case,
            &caller.actor(),
            changes,
        )
        .await?;
        let view = store::view(&mut tx, &self.shared.clocks, &case, false).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn deadlines(
        &self,
        conn: &mut PgConnection,
        case: &CaseRecord,
    ) -> Result<Deadlines, CaseError> {
        store::derive(conn, &self.shared.clocks, case)
            .await?
            .ok_or_else(|| {
                CaseError::Refused("the case's deadlines cannot be derived; see the logs".into())
            })
    }
}

/// Each RPC is in the module of its concern; this only dispatches.
#[tonic::async_trait]
impl CaseService for Api {
    async fn get_case(
        &self,
        request: Request<api::GetCaseRequest>,
    ) -> Result<Response<api::Case>, Status> {
        read::get_case(self, request).await
    }

    async fn list_cases(
        &self,
        request: Request<api::ListCasesRequest>,
    ) -> Result<Response<api::ListCasesResponse>, Status> {
        read::list_cases(self, request).await
    }

    async fn assign(
        &self,
        request: Request<api::AssignRequest>,
    ) -> Result<Response<api::Case>, Status> {
        route::assign(self, request).await
    }

    async fn start_work(
        &self,
        request: Request<api::StartWorkRequest>,
    ) -> Result<Response<api::Case>, Status> {
        route::start_work(self, request).await
    }

    async fn add_note(
        &self,
        request: Request<api::AddNoteRequest>,
    ) -> Result<Response<api::Case>, Status> {
        work::add_note(self, request).await
    }

    async fn request_input(
        &self,
        request: Request<api::RequestInputRequest>,
    ) -> Result<Response<api::Case>, Status> {
        work::request_input(self, request).await
    }

    async fn answer_input(
        &self,
        request: Request<api::AnswerInputRequest>,
    ) -> Result<Response<api::Case>, Status> {
        work::answer_input(self, request).await
    }

    async fn extend(
        &self,
        request: Request<api::ExtendRequest>,
    ) -> Result<Response<api::Case>, Status> {
        work::extend(self, request).await
    }

    async fn approve_extension(
        &self,
        request: Request<api::ApproveExtensionRequest>,
    ) -> Result<Response<api::Case>, Status> {
        work::approve_extension(self, request).await
    }

    async fn pause_clock(
        &self,
        request: Request<api::PauseClockRequest>,
    ) -> Result<Response<api::Case>, Status> {
        work::pause_clock(self, request).await
    }

    async fn resume_clock(
        &self,
        request: Request<api::ResumeClockRequest>,
    ) -> Result<Response<api::Case>, Status> {
        work::resume_clock(self, request).await
    }

    async fn record_new_facts(
        &self,
        request: Request<api::RecordNewFactsRequest>,
    ) -> Result<Response<api::Case>, Status> {
        work::record_new_facts(self, request).await
    }

    async fn record_decision(
        &self,
        request: Request<api::RecordDecisionRequest>,
    ) -> Result<Response<api::Case>, Status> {
        outcome::record_decision(self, request).await
    }

    async fn request_review(
        &self,
        request: Request<api::RequestReviewRequest>,
    ) -> Result<Response<api::Case>, Status> {
        outcome::request_review(self, request).await
    }

    async fn record_satisfaction(
        &self,
        request: Request<api::RecordSatisfactionRequest>,
    ) -> Result<Response<api::Case>, Status> {
        outcome::record_satisfaction(self, request).await
    }

    async fn escalate(
        &self,
        request: Request<api::EscalateRequest>,
    ) -> Result<Response<api::Case>, Status> {
        outcome::escalate(self, request).await
    }

    async fn merge(
        &self,
        request: Request<api::MergeRequest>,
    ) -> Result<Response<api::Case>, Status> {
        outcome::merge(self, request).await
    }

    async fn withdraw(
        &self,
        request: Request<api::WithdrawRequest>,
    ) -> Result<Response<api::Case>, Status> {
        outcome::withdraw(self, request).await
    }

    async fn close(
        &self,
        request: Request<api::CloseRequest>,
    ) -> Result<Response<api::Case>, Status> {
        outcome::close(self, request).await
    }

    async fn declare_conflict(
        &self,
        request: Request<api::DeclareConflictRequest>,
    ) -> Result<Response<api::Case>, Status> {
        route::declare_conflict(self, request).await
    }
}
