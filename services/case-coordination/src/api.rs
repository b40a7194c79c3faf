//! gRPC `redress.cases.v1.CaseService`.
//!
//! Every change: authorise the caller, lock the case, check the department (a `handler` only
//! touches its own department's cases — others look absent), the version (stale → ABORTED)
//! and the state (wrong → FAILED_PRECONDITION naming it), apply, and commit the events
//! through the outbox in the same transaction. Every event records the caller as its actor.

use std::sync::Arc;

use chrono::Utc;
use redress_proto::{
    cases::v1::{self as api, case_service_server::CaseService},
    common::v1::{Actor, Money, Severity},
    events::v1::{
        CaseClockPaused, CaseClockResumed, CaseClosed, CaseConflictDeclared, CaseDecided,
        CaseEscalated, CaseExtended, CaseInputAnswered, CaseInputRequested, CaseMerged,
        CaseNewFacts, CaseNoteAdded, CaseReopened, CaseReviewRequested, CaseSatisfactionRecorded,
        CaseState, CaseWorkStarted, ClockPauseReason, DecisionOutcome, EscalationTarget,
        Satisfaction, event::Payload,
    },
};
use redress_regime::{Approver, CaseStatus, Deadlines};
use redress_runtime::{
    Principal,
    event::{from_timestamp, timestamp},
    require,
};
use sqlx::{PgConnection, Postgres, Transaction};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    deadlines::{self, Clock},
    domain::{Action, CaseError, State},
    handlers::withdrawn_change,
    routing::{Destination, Queue, is_slug},
    store::{self, CaseRecord, Change, Shared},
};

/// Who may read cases (and every service identity).
const READERS: &[&str] = &[
    "specialist",
    "compliance",
    "analyst",
    "product",
    "admin",
    "handler",
];
/// Who works cases.
const WORKERS: &[&str] = &["handler", "specialist"];
/// Who may approve an extension that needs approval (cn-nfra tier 2): the platform's
/// compliance reviewers and senior management (regime README, reading 5).
const APPROVERS: &[&str] = &["compliance", "senior_management"];
/// Longest free text accepted.
const MAX_TEXT: usize = 4000;

pub struct Api {
    pub shared: Arc<Shared>,
}

/// The authenticated caller, in the role they act in.
struct Caller {
    principal: Principal,
    role: String,
}

impl Caller {
    fn actor(&self) -> Actor {
        self.principal.actor(&self.role)
    }

    fn is_handler(&self) -> bool {
        self.role == "handler"
    }

    fn department(&self) -> &str {
        self.principal.department.as_deref().unwrap_or_default()
    }
}

fn caller<T>(request: &Request<T>, roles: &[&str]) -> Result<Caller, Status> {
    let (principal, role) = require(request, roles)?;
    Ok(Caller { principal, role })
}

/// Readers, or any service identity (`service:<name>`).
fn reader<T>(request: &Request<T>) -> Result<Caller, Status> {
    if let Some(p) = request.extensions().get::<Principal>()
        && let Some(role) = p.roles.iter().find(|r| r.starts_with("service:"))
    {
        return Ok(Caller {
            principal: p.clone(),
            role: role.clone(),
        });
    }
    caller(request, READERS)
}

fn status(error: CaseError) -> Status {
    match error {
        CaseError::NotFound(_) => Status::not_found(error.to_string()),
        CaseError::WrongState { .. } | CaseError::Refused(_) => {
            Status::failed_precondition(error.to_string())
        }
        CaseError::StaleVersion { .. } => Status::aborted(error.to_string()),
        CaseError::Invalid { .. } => Status::invalid_argument(error.to_string()),
        CaseError::Forbidden(_) => Status::permission_denied(error.to_string()),
        CaseError::Database(ref e) => {
            tracing::error!(error = %e, "case store");
            Status::unavailable("the case store could not complete the call; retry")
        }
        CaseError::Corrupt(ref m) => {
            tracing::error!(message = %m, "case store");
            Status::internal("the case could not be read; it has been logged")
        }
    }
}

fn case_id(text: &str) -> Result<Uuid, CaseError> {
    Uuid::parse_str(text.trim()).map_err(|_| CaseError::invalid("caseId", "not a case id"))
}

fn text(field: &'static str, value: &str, required: bool) -> Result<String, CaseError> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(CaseError::invalid(field, "required"));
    }
    if value.chars().count() > MAX_TEXT {
        return Err(CaseError::invalid(
            field,
            format!("longer than {MAX_TEXT} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Whether a handler of `department` has an open input request on the case.
async fn asked(conn: &mut PgConnection, case: Uuid, department: &str) -> Result<bool, CaseError> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM input_requests WHERE case_id = $1 AND to_department = $2 AND answered_at IS NULL)",
    )
    .bind(case)
    .bind(department)
    .fetch_one(conn)
    .await?)
}

/// A handler sees only its department's cases (and those its department was asked about);
/// to anyone else's handler a case looks absent.
async fn may_see(
    conn: &mut PgConnection,
    caller: &Caller,
    case: &CaseRecord,
    include_asked: bool,
) -> Result<(), CaseError> {
    if !caller.is_handler() || caller.department() == case.department {
        return Ok(());
    }
    if include_asked
        && !caller.department().is_empty()
        && asked(conn, case.id, caller.department()).await?
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
        let id = case_id(id)?;
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

    fn track(&self) -> Result<&redress_regime::Track, CaseError> {
        let regime = &self.shared.clocks.regime;
        regime.track(&regime.default_track).ok_or_else(|| {
            CaseError::Corrupt(format!("regime {} has no default track", regime.name))
        })
    }

    async fn extend(
        &self,
        caller: &Caller,
        case_id: &str,
        expected_version: u64,
        reason: &str,
        approver: Option<Approver>,
    ) -> Result<api::Case, CaseError> {
        let reason = text("reason", reason, true)?;
        let (mut tx, mut case) = self
            .begin(caller, case_id, expected_version, Action::Extend)
            .await?;
        let d = self.deadlines(&mut tx, &case).await?;
        if d.is_overdue(Utc::now()) {
            return Err(CaseError::Refused(format!(
                "the deadline passed on {}: an extension cannot hide a breach",
                d.decision_due
                    .map(|x| x.date.to_string())
                    .unwrap_or_default()
            )));
        }
        let ctx = d.extension_context();
        let tier = ctx.current_tier.saturating_add(1);
        let track = self.track()?;
        track
            .can_extend(ctx, tier, approver.as_ref())
            .map_err(|refused| {
                CaseError::Refused(if approver.is_none() {
                    format!("{refused} (ApproveExtension)")
                } else {
                    refused.to_string()
                })
            })?;
        let notice = track
            .extensions
            .iter()
            .find(|t| t.tier == tier)
            .is_some_and(|t| t.consumer_notice);
        if case.state != State::AwaitingInput {
            case.state = State::Extended;
        }
        let approved_by = approver.as_ref().map(|_| caller.actor());
        let change = Change::new(
            "extended",
            Payload::CaseExtended(CaseExtended {
                tier: u32::from(tier),
                reason,
                approved_by,
                consumer_notice_required: notice,
                ..Default::default()
            }),
        )
        .clock(Clock::Extended {
            tier,
            approver_role: approver.as_ref().map(|a| a.role.as_str().to_owned()),
            approver_id: approver.map(|a| a.id),
        });
        self.finish(tx, case, caller, vec![change]).await
    }
}

fn respond(result: Result<api::Case, CaseError>) -> Result<Response<api::Case>, Status> {
    result.map(Response::new).map_err(status)
}

fn validate_money(money: &Money) -> Result<(), CaseError> {
    let currency_ok = money.currency_code.len() == 3
        && money.currency_code.chars().all(|c| c.is_ascii_uppercase());
    if !currency_ok {
        return Err(CaseError::invalid(
            "remedy.amount.currencyCode",
            "an ISO 4217 code such as CNY",
        ));
    }
    if money.nanos.abs() >= 1_000_000_000
        || (money.units > 0 && money.nanos < 0)
        || (money.units < 0 && money.nanos > 0)
    {
        return Err(CaseError::invalid(
            "remedy.amount.nanos",
            "out of range or of the wrong sign",
        ));
    }
    if money.units < 0 || money.nanos < 0 {
        return Err(CaseError::invalid(
            "remedy.amount",
            "a remedy cannot be negative",
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl CaseService for Api {
    async fn get_case(
        &self,
        request: Request<api::GetCaseRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = reader(&request)?;
        let result = async {
            let id = case_id(&request.get_ref().case_id)?;
            let mut conn = self.shared.db.pool().acquire().await?;
            let case = store::load(&mut conn, id, false)
                .await?
                .ok_or_else(|| CaseError::NotFound(id.to_string()))?;
            may_see(&mut conn, &caller, &case, true).await?;
            store::view(&mut conn, &self.shared.clocks, &case, true).await
        }
        .await;
        respond(result)
    }

    async fn list_cases(
        &self,
        request: Request<api::ListCasesRequest>,
    ) -> Result<Response<api::ListCasesResponse>, Status> {
        let caller = reader(&request)?;
        let r = request.into_inner();
        let mut department = Some(r.department.trim().to_owned()).filter(|d| !d.is_empty());
        if caller.is_handler() {
            let own = caller.department().to_owned();
            if department.as_ref().is_some_and(|d| *d != own) {
                return Err(Status::permission_denied(format!(
                    "a handler lists only its own department's cases ({own})"
                )));
            }
            department = Some(own);
        }
        let state = match CaseState::try_from(r.state) {
            Ok(CaseState::Unspecified) => None,
            Ok(s) => State::from_proto(s),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "state: unknown value {}",
                    r.state
                )));
            }
        };
        let severity = match Severity::try_from(r.severity) {
            Ok(Severity::Unspecified) => None,
            Ok(s) => Some(s),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "severity: unknown value {}",
                    r.severity
                )));
            }
        };
        let due_before = r
            .due_before
            .as_ref()
            .map(|t| {
                from_timestamp(t)
                    .ok_or_else(|| Status::invalid_argument("dueBefore: not a valid timestamp"))
            })
            .transpose()?;
        let page = r.page.unwrap_or_default();
        let size = redress_runtime::paging::page_size(page.page_size);
        let after = match page.page_token.trim() {
            "" => None,
            token => Some(Uuid::parse_str(token).map_err(|_| {
                Status::invalid_argument("page.pageToken: not a token this service issued")
            })?),
        };
        let filter = store::Filter {
            department,
            state,
            severity,
            due_before,
            breached: r.breached,
        };
        let result = async {
            let mut conn = self.shared.db.pool().acquire().await?;
            let records = store::list(&mut conn, &filter, after, size + 1).await?;
            let more = records.len() > size as usize;
            let mut cases = Vec::with_capacity(records.len());
            for record in records.iter().take(size as usize) {
                cases.push(store::view(&mut conn, &self.shared.clocks, record, false).await?);
            }
            let next_page_token = if more {
                cases.last().map(|c| c.id.clone()).unwrap_or_default()
            } else {
                String::new()
            };
            Ok::<_, CaseError>(api::ListCasesResponse {
                cases,
                next_page_token,
            })
        }
        .await;
        result.map(Response::new).map_err(status)
    }

    async fn assign(
        &self,
        request: Request<api::AssignRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, &["specialist", "admin", "handler"])?;
        let r = request.into_inner();
        respond(
            async {
                let reason = text("reason", &r.reason, false)?;
                let wanted = r.department.trim();
                let handler = Some(r.handler.trim().to_owned()).filter(|h| !h.is_empty());
                if let Some(h) = &handler {
                    text("handler", h, true)?;
                }
                let (mut tx, mut case) = self.begin(&caller, &r.case_id, r.expected_version, Action::Assign).await?;
                // 首问负责制: a handler cannot pass a case to another department; routing
                // between departments is the triage desk's (specialists, admins).
                let destination = if caller.is_handler() {
                    if !wanted.is_empty() && wanted != case.department {
                        return Err(CaseError::Forbidden(format!(
                            "a handler may reassign only within {}; ask a specialist to re-route",
                            case.department
                        )));
                    }
                    current_destination(&case)
                } else if wanted.is_empty() {
                    let s = &case.snapshot;
                    let subject = crate::routing::Subject {
                        category: &s.category_code,
                        cause: &s.cause_code,
                        product: &s.product,
                        severity: case.severity,
                        channel: s.channel(),
                        regulator_ref: &s.regulator_ref,
                        needs_review: false,
                    };
                    self.shared
                        .routing
                        .route(&subject)
                        .ok_or_else(|| CaseError::Refused("no routing rule applies".into()))?
                } else {
                    if !is_slug(wanted) || wanted == crate::routing::TRIAGE {
                        return Err(CaseError::invalid("department", "a department slug such as `lending`"));
                    }
                    let mut d = current_destination(&case);
                    if wanted != case.department {
                        d.department = wanted.to_owned();
                        d.rule = "manual".into();
                        d.partner = None;
                        if d.queue == Queue::Partner {
                            d.queue = Queue::Standard;
                        }
                    }
                    d
                };
                if let Some(h) = &handler {
                    if store::is_conflicted(&mut tx, case.id, h).await? {
                        return Err(CaseError::Refused(format!(
                            "回避: {h} has a conflict of interest on this case and may not handle it"
                        )));
                    }
                    store::add_handler(&mut tx, &destination.department, h, false).await?;
                }
                let change = store::assign(
                    &mut tx,
                    &mut case,
                    &destination,
                    handler,
                    &caller.actor(),
                    self.shared.routing.version(),
                    &reason,
                )
                .await?;
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn start_work(
        &self,
        request: Request<api::StartWorkRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            async {
                let (mut tx, mut case) = self
                    .begin(&caller, &r.case_id, r.expected_version, Action::StartWork)
                    .await?;
                if caller.is_handler() {
                    let me = caller.principal.subject.clone();
                    match &case.handler {
                        Some(h) if *h != me => {
                            return Err(CaseError::Refused(format!(
                                "the case is assigned to {h}; ask for it to be reassigned"
                            )));
                        }
                        Some(_) => {}
                        None => {
                            // Taking a case from the department queue.
                            if store::is_conflicted(&mut tx, case.id, &me).await? {
                                return Err(CaseError::Refused(format!(
                                    "回避: {me} has a conflict of interest on this case"
                                )));
                            }
                            case.handler = Some(me);
                        }
                    }
                }
                case.state = State::InProgress;
                let change = Change::new(
                    "work_started",
                    Payload::CaseWorkStarted(CaseWorkStarted { header: None }),
                );
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn add_note(
        &self,
        request: Request<api::AddNoteRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, &["handler", "specialist", "compliance", "admin"])?;
        let r = request.into_inner();
        respond(
            async {
                let note = text("text", &r.text, true)?;
                let (tx, case) = self
                    .begin(&caller, &r.case_id, r.expected_version, Action::AddNote)
                    .await?;
                let change = Change::new(
                    "note_added",
                    Payload::CaseNoteAdded(CaseNoteAdded {
                        header: None,
                        text: note,
                    }),
                );
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn request_input(
        &self,
        request: Request<api::RequestInputRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            async {
                let question = text("question", &r.question, true)?;
                let to = r.to_department.trim().to_owned();
                if !is_slug(&to) || to == crate::routing::TRIAGE {
                    return Err(CaseError::invalid("toDepartment", "a department slug such as `risk-control`"));
                }
                let due_at = r
                    .due_at
                    .as_ref()
                    .and_then(from_timestamp)
                    .ok_or_else(|| CaseError::invalid("dueAt", "required: when the answer is needed"))?;
                if due_at <= Utc::now() {
                    return Err(CaseError::invalid("dueAt", "must be in the future"));
                }
                let (mut tx, mut case) = self.begin(&caller, &r.case_id, r.expected_version, Action::RequestInput).await?;
                if to == case.department {
                    return Err(CaseError::invalid("toDepartment", "the case's own department; ask another one"));
                }
                let id = Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO input_requests (id, case_id, to_department, question, due_at, requested_by, requested_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, now())",
                )
                .bind(id)
                .bind(case.id)
                .bind(&to)
                .bind(&question)
                .bind(due_at)
                .bind(store::actor_json(&caller.actor()))
                .execute(&mut *tx)
                .await?;
                case.state = State::AwaitingInput;
                let change = Change::new(
                    "input_requested",
                    Payload::CaseInputRequested(CaseInputRequested {
                        header: None,
                        request_id: id.to_string(),
                        to_department: to.clone(),
                        question,
                        due_at: Some(timestamp(due_at)),
                    }),
                )
                .on(&to);
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn answer_input(
        &self,
        request: Request<api::AnswerInputRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            async {
                let answer = text("answer", &r.answer, !r.r#override)?;
                let request_id = Uuid::parse_str(r.request_id.trim())
                    .map_err(|_| CaseError::invalid("requestId", "not an input request id"))?;
                if r.r#override && caller.role != "specialist" {
                    return Err(CaseError::Forbidden("only a specialist may override an input request".into()));
                }
                let (mut tx, mut case) = self.begin(&caller, &r.case_id, r.expected_version, Action::AnswerInput).await?;
                let open: Option<String> = sqlx::query_scalar(
                    "SELECT to_department FROM input_requests WHERE id = $1 AND case_id = $2 AND answered_at IS NULL FOR UPDATE",
                )
                .bind(request_id)
                .bind(case.id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(to) = open else {
                    return Err(CaseError::Refused(format!("input request {request_id} is not open on this case")));
                };
                if caller.is_handler() && caller.department() != to {
                    return Err(CaseError::Forbidden(format!("only {to} answers this request")));
                }
                sqlx::query(
                    "UPDATE input_requests SET answered_at = now(), answer = $2, answered_by = $3, overridden = $4 WHERE id = $1",
                )
                .bind(request_id)
                .bind(&answer)
                .bind(store::actor_json(&caller.actor()))
                .bind(r.r#override)
                .execute(&mut *tx)
                .await?;
                let still_open: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM input_requests WHERE case_id = $1 AND answered_at IS NULL)",
                )
                .bind(case.id)
                .fetch_one(&mut *tx)
                .await?;
                if !still_open {
                    let d = self.deadlines(&mut tx, &case).await?;
                    case.state = if d.limit.tier > 0 { State::Extended } else { State::InProgress };
                }
                let change = Change::new(
                    "input_answered",
                    Payload::CaseInputAnswered(CaseInputAnswered {
                        header: None,
                        request_id: request_id.to_string(),
                        from_department: to,
                        answer,
                        overridden: r.r#override,
                    }),
                );
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn extend(
        &self,
        request: Request<api::ExtendRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            self.extend(&caller, &r.case_id, r.expected_version, &r.reason, None)
                .await,
        )
    }

    async fn approve_extension(
        &self,
        request: Request<api::ApproveExtensionRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, APPROVERS)?;
        let r = request.into_inner();
        let approver = deadlines::approver_role_of(&caller.role).map(|role| Approver {
            role,
            id: caller.principal.subject.clone(),
        });
        respond(
            self.extend(&caller, &r.case_id, r.expected_version, &r.reason, approver)
                .await,
        )
    }

    async fn pause_clock(
        &self,
        request: Request<api::PauseClockRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            async {
                let note = text("note", &r.note, false)?;
                let reason =
                    ClockPauseReason::try_from(r.reason).unwrap_or(ClockPauseReason::Unspecified);
                let regime_reason = deadlines::pause_reason(reason)
                    .ok_or_else(|| CaseError::invalid("reason", "required: why the clock stops"))?;
                let (mut tx, case) = self
                    .begin(&caller, &r.case_id, r.expected_version, Action::PauseClock)
                    .await?;
                let d = self.deadlines(&mut tx, &case).await?;
                if matches!(d.status, CaseStatus::Paused { .. }) {
                    return Err(CaseError::Refused("the clock is already paused".into()));
                }
                let stops = self
                    .shared
                    .clocks
                    .regime
                    .pause_rule(regime_reason)
                    .is_some();
                let change = Change::new(
                    "clock_paused",
                    Payload::CaseClockPaused(CaseClockPaused {
                        header: None,
                        reason: reason as i32,
                        note,
                        stops_clock: stops,
                    }),
                )
                .clock(Clock::Paused {
                    reason: regime_reason.as_str().to_owned(),
                });
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn resume_clock(
        &self,
        request: Request<api::ResumeClockRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            async {
                let (mut tx, case) = self
                    .begin(&caller, &r.case_id, r.expected_version, Action::ResumeClock)
                    .await?;
                let d = self.deadlines(&mut tx, &case).await?;
                if !matches!(d.status, CaseStatus::Paused { .. }) {
                    return Err(CaseError::Refused("the clock is not paused".into()));
                }
                let change = Change::new(
                    "clock_resumed",
                    Payload::CaseClockResumed(CaseClockResumed::default()),
                )
                .clock(Clock::Resumed);
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn record_new_facts(
        &self,
        request: Request<api::RecordNewFactsRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            async {
                let summary = text("summary", &r.summary, true)?;
                let (tx, mut case) = self
                    .begin(
                        &caller,
                        &r.case_id,
                        r.expected_version,
                        Action::RecordNewFacts,
                    )
                    .await?;
                // The period restarts with the base limit: earlier extensions no longer apply.
                if case.state == State::Extended {
                    case.state = State::InProgress;
                }
                let change = Change::new(
                    "new_facts",
                    Payload::CaseNewFacts(CaseNewFacts {
                        header: None,
                        summary,
                        decision_due: None,
                    }),
                )
                .clock(Clock::NewFacts);
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn record_decision(
        &self,
        request: Request<api::RecordDecisionRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            async {
                let outcome = match DecisionOutcome::try_from(r.outcome) {
                    Ok(DecisionOutcome::Unspecified) | Err(_) => {
                        return Err(CaseError::invalid("outcome", "upheld, partly upheld or not upheld"));
                    }
                    Ok(o) => o,
                };
                let explanation = text("explanation", &r.explanation, true)?;
                let mut tags = Vec::new();
                for tag in &r.root_cause_tags {
                    let tag = tag.trim();
                    if tag.is_empty() || tag.chars().count() > 64 {
                        return Err(CaseError::invalid("rootCauseTags", "each tag 1–64 characters"));
                    }
                    if !tags.iter().any(|t: &String| t == tag) {
                        tags.push(tag.to_owned());
                    }
                }
                if tags.is_empty() {
                    return Err(CaseError::invalid(
                        "rootCauseTags",
                        "required: every decided case feeds root-cause remediation (溯源整改)",
                    ));
                }
                let mut remedy = r.remedy.unwrap_or_default();
                remedy.action = text("remedy.action", &remedy.action, false)?;
                if let Some(amount) = &remedy.amount {
                    validate_money(amount)?;
                }
                let (mut tx, mut case) = self.begin(&caller, &r.case_id, r.expected_version, Action::RecordDecision).await?;
                let open: Vec<String> = sqlx::query_scalar(
                    "SELECT to_department FROM input_requests WHERE case_id = $1 AND answered_at IS NULL ORDER BY requested_at",
                )
                .bind(case.id)
                .fetch_all(&mut *tx)
                .await?;
                if !open.is_empty() {
                    return Err(CaseError::Refused(format!(
                        "input requested from {} is still open: it must be answered or overridden first",
                        open.join(", ")
                    )));
                }
                let review = case.state == State::UnderReview;
                case.state = State::Decided;
                case.snapshot.satisfaction = Satisfaction::Unspecified as i32;
                case.snapshot.decision = Some(api::Decision {
                    outcome: outcome as i32,
                    remedy: Some(remedy.clone()),
                    explanation: explanation.clone(),
                    root_cause_tags: tags.clone(),
                    decided_at: Some(timestamp(Utc::now())),
                    decided_by: Some(caller.actor()),
                });
                let change = Change::new(
                    "decided",
                    Payload::CaseDecided(CaseDecided {
                        header: None,
                        outcome: outcome as i32,
                        remedy: Some(remedy),
                        explanation,
                        root_cause_tags: tags,
                        review,
                        review_window_ends: None,
                    }),
                )
                .clock(if review { Clock::ReviewDecided } else { Clock::Decided });
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn request_review(
        &self,
        request: Request<api::RequestReviewRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            async {
                let reason = text("reason", &r.reason, true)?;
                let (mut tx, mut case) = self
                    .begin(
                        &caller,
                        &r.case_id,
                        r.expected_version,
                        Action::RequestReview,
                    )
                    .await?;
                let d = self.deadlines(&mut tx, &case).await?;
                if !matches!(d.status, CaseStatus::Decided { .. }) {
                    return Err(CaseError::Refused(
                        "only a first decision can be reviewed (a review was already decided)"
                            .into(),
                    ));
                }
                match d.review_window_ends {
                    Some(window) if Utc::now() >= window.ends_at => {
                        return Err(CaseError::Refused(format!(
                            "the review window closed on {} ({})",
                            window.date,
                            self.shared
                                .clocks
                                .regime
                                .review
                                .as_ref()
                                .map(|r| r.window.article.as_str())
                                .unwrap_or_default()
                        )));
                    }
                    None => return Err(CaseError::Refused("this regime has no review".into())),
                    Some(_) => {}
                }
                let mut changes = Vec::new();
                if case.state == State::Closed {
                    changes.push(Change::new(
                        "reopened",
                        Payload::CaseReopened(CaseReopened {
                            header: None,
                            reason: reason.clone(),
                        }),
                    ));
                }
                case.state = State::UnderReview;
                changes.push(
                    Change::new(
                        "review_requested",
                        Payload::CaseReviewRequested(CaseReviewRequested {
                            header: None,
                            reason,
                            review_due: None,
                        }),
                    )
                    .clock(Clock::ReviewRequested),
                );
                self.finish(tx, case, &caller, changes).await
            }
            .await,
        )
    }

    async fn record_satisfaction(
        &self,
        request: Request<api::RecordSatisfactionRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, &["handler", "specialist", "service:notification"])?;
        let r = request.into_inner();
        respond(
            async {
                let comment = text("comment", &r.comment, false)?;
                let satisfaction = match Satisfaction::try_from(r.satisfaction) {
                    Ok(Satisfaction::Unspecified) | Err(_) => {
                        return Err(CaseError::invalid(
                            "satisfaction",
                            "satisfied, neutral, dissatisfied or no answer",
                        ));
                    }
                    Ok(s) => s,
                };
                let (tx, mut case) = self
                    .begin(
                        &caller,
                        &r.case_id,
                        r.expected_version,
                        Action::RecordSatisfaction,
                    )
                    .await?;
                case.snapshot.satisfaction = satisfaction as i32;
                let change = Change::new(
                    "satisfaction_recorded",
                    Payload::CaseSatisfactionRecorded(CaseSatisfactionRecorded {
                        header: None,
                        satisfaction: satisfaction as i32,
                        comment,
                    }),
                );
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn escalate(
        &self,
        request: Request<api::EscalateRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, &["handler", "specialist", "compliance"])?;
        let r = request.into_inner();
        respond(
            async {
                let target = match EscalationTarget::try_from(r.target) {
                    Ok(EscalationTarget::Unspecified) | Err(_) => {
                        return Err(CaseError::invalid("target", "mediation or regulator"));
                    }
                    Ok(t) => t,
                };
                let reference = text("externalReference", &r.external_reference, true)?;
                let note = text("note", &r.note, false)?;
                let (mut tx, mut case) = self
                    .begin(&caller, &r.case_id, r.expected_version, Action::Escalate)
                    .await?;
                let d = self.deadlines(&mut tx, &case).await?;
                let mut change = Change::new(
                    "escalated",
                    Payload::CaseEscalated(CaseEscalated {
                        header: None,
                        target: target as i32,
                        external_reference: reference.clone(),
                        note: note.clone(),
                    }),
                );
                // Mediation time does not count (cn-nfra Art. 23): the clock stops while the
                // decision is still to be made.
                if target == EscalationTarget::Mediation && matches!(d.status, CaseStatus::Open) {
                    change = change.clock(Clock::Paused {
                        reason: redress_regime::PauseReason::Mediation.as_str().to_owned(),
                    });
                }
                case.state = State::Escalated;
                case.snapshot.escalation = Some(api::Escalation {
                    target: target as i32,
                    external_reference: reference,
                    note,
                    escalated_at: Some(timestamp(Utc::now())),
                });
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn merge(
        &self,
        request: Request<api::MergeRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, &["specialist"])?;
        let r = request.into_inner();
        respond(
            async {
                let reason = text("reason", &r.reason, false)?;
                let survivor_id = Uuid::parse_str(r.survivor_case_id.trim())
                    .map_err(|_| CaseError::invalid("survivorCaseId", "not a case id"))?;
                let (mut tx, mut case) = self
                    .begin(&caller, &r.case_id, r.expected_version, Action::Merge)
                    .await?;
                if survivor_id == case.id {
                    return Err(CaseError::invalid(
                        "survivorCaseId",
                        "a case cannot merge into itself",
                    ));
                }
                let survivor = store::load(&mut tx, survivor_id, false)
                    .await?
                    .ok_or_else(|| CaseError::invalid("survivorCaseId", "no such case"))?;
                if survivor.state.is_terminal() {
                    return Err(CaseError::Refused(format!(
                        "the surviving case is {}: merge into an open case",
                        survivor.state.as_str()
                    )));
                }
                case.state = State::Merged;
                case.snapshot.merged_into = survivor.id.to_string();
                let change = Change::new(
                    "merged",
                    Payload::CaseMerged(CaseMerged {
                        header: None,
                        survivor_case_id: survivor.id.to_string(),
                        survivor_reference: survivor.snapshot.reference.clone(),
                        reason,
                    }),
                );
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn withdraw(
        &self,
        request: Request<api::WithdrawRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            async {
                let reason = text("reason", &r.reason, true)?;
                let (tx, mut case) = self
                    .begin(&caller, &r.case_id, r.expected_version, Action::Withdraw)
                    .await?;
                case.state = State::Withdrawn;
                self.finish(tx, case, &caller, vec![withdrawn_change(&reason)])
                    .await
            }
            .await,
        )
    }

    async fn close(
        &self,
        request: Request<api::CloseRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, WORKERS)?;
        let r = request.into_inner();
        respond(
            async {
                let note = text("note", &r.note, false)?;
                let (tx, mut case) = self.begin(&caller, &r.case_id, r.expected_version, Action::Close).await?;
                if case.state == State::Decided && case.snapshot.satisfaction == Satisfaction::Unspecified as i32 {
                    return Err(CaseError::Refused(
                        "record the follow-up (回访) first: RecordSatisfaction, with no_answer if the consumer could not be reached"
                            .into(),
                    ));
                }
                case.state = State::Closed;
                let change = Change::new("closed", Payload::CaseClosed(CaseClosed { header: None, note }));
                self.finish(tx, case, &caller, vec![change]).await
            }
            .await,
        )
    }

    async fn declare_conflict(
        &self,
        request: Request<api::DeclareConflictRequest>,
    ) -> Result<Response<api::Case>, Status> {
        let caller = caller(&request, &["handler", "specialist", "compliance"])?;
        let r = request.into_inner();
        respond(
            async {
                let reason = text("reason", &r.reason, true)?;
                let named = r.handler.trim();
                let handler = if named.is_empty() { caller.principal.subject.clone() } else { named.to_owned() };
                if caller.is_handler() && handler != caller.principal.subject {
                    return Err(CaseError::Forbidden(
                        "a handler declares only their own interest; a specialist records one found".into(),
                    ));
                }
                let (mut tx, mut case) = self
                    .begin(&caller, &r.case_id, r.expected_version, Action::DeclareConflict)
                    .await?;
                sqlx::query(
                    "INSERT INTO conflicts (case_id, handler, reason, declared_by) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(case.id)
                .bind(&handler)
                .bind(&reason)
                .bind(store::actor_json(&caller.actor()))
                .execute(&mut *tx)
                .await?;
                let mut changes = vec![Change::new(
                    "conflict_declared",
                    Payload::CaseConflictDeclared(CaseConflictDeclared {
                        header: None,
                        conflicted_handler: handler.clone(),
                        reason,
                    }),
                )];
                // The conflicted handler gives the case up at once.
                if case.handler.as_deref() == Some(handler.as_str()) {
                    if Action::Assign.check(case.state).is_ok() {
                        let destination = current_destination(&case);
                        changes.push(
                            store::assign(
                                &mut tx,
                                &mut case,
                                &destination,
                                None,
                                &caller.actor(),
                                self.shared.routing.version(),
                                "回避: the handler declared a conflict of interest",
                            )
                            .await?,
                        );
                    } else {
                        case.handler = None;
                    }
                }
                self.finish(tx, case, &caller, changes).await
            }
            .await,
        )
    }
}

/// Where the case is now, as a routing destination (for reassignment inside a department).
fn current_destination(case: &CaseRecord) -> Destination {
    let s = &case.snapshot;
    Destination {
        department: case.department.clone(),
        queue: Queue::parse(&s.queue),
        partner: Some(s.partner.clone()).filter(|p| !p.is_empty()),
        tags: s.tags.clone(),
        rule: if s.routing_rule.is_empty() {
            "manual".into()
        } else {
            s.routing_rule.clone()
        },
    }
}
