//! Working a case: notes, input from other departments, extensions and the clock.

use chrono::Utc;
use redress_proto::{cases::v1 as api, events::v1::ClockPauseReason};
use redress_regime::Approver;
use redress_runtime::{Role, grpc};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{Api, Caller, WORKERS, respond, text};
use crate::{
    deadlines,
    domain::{Action, CaseError, rules},
    routing::TRIAGE,
    store,
};

/// Who may approve an extension that needs approval (cn-nfra tier 2): the platform's
/// compliance reviewers and senior management (regime README, "open points").
const APPROVERS: &[Role] = &[Role::Compliance, Role::SeniorManagement];

pub(super) async fn add_note(
    api: &Api,
    request: Request<api::AddNoteRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(
        &request,
        &[
            Role::Handler,
            Role::Specialist,
            Role::Compliance,
            Role::Admin,
        ],
    )?;
    let r = request.into_inner();
    respond(
        async {
            let note = text("text", &r.text, true)?;
            let (tx, case) = api
                .begin(&caller, &r.case_id, r.expected_version, Action::AddNote)
                .await?;
            let change = rules::add_note(&case, note)?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn request_input(
    api: &Api,
    request: Request<api::RequestInputRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        async {
            let question = text("question", &r.question, true)?;
            let to = grpc::slug("toDepartment", &r.to_department, true)?;
            if to == TRIAGE {
                return Err(CaseError::invalid(
                    "toDepartment",
                    "a department slug such as `risk-control`",
                ));
            }
            let due_at = grpc::time("dueAt", r.due_at.as_ref())?.ok_or_else(|| {
                CaseError::invalid("dueAt", "required: when the answer is needed")
            })?;
            let (mut tx, mut case) = api
                .begin(
                    &caller,
                    &r.case_id,
                    r.expected_version,
                    Action::RequestInput,
                )
                .await?;
            let id = Uuid::now_v7();
            let change = rules::request_input(
                &mut case,
                id,
                to.clone(),
                question.clone(),
                due_at,
                Utc::now(),
            )?;
            store::insert_input_request(
                &mut tx,
                id,
                case.id,
                &to,
                &question,
                due_at,
                &caller.actor(),
            )
            .await?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn answer_input(
    api: &Api,
    request: Request<api::AnswerInputRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        async {
            let answer = text("answer", &r.answer, !r.r#override)?;
            let request_id = redress_proto::vocab::parse_id("requestId", &r.request_id)?;
            if r.r#override && caller.role != Role::Specialist {
                return Err(CaseError::Forbidden(
                    "only a specialist may override an input request".into(),
                ));
            }
            let (mut tx, mut case) = api
                .begin(&caller, &r.case_id, r.expected_version, Action::AnswerInput)
                .await?;
            let Some(asked) = store::open_input_request(&mut tx, case.id, request_id).await? else {
                return Err(CaseError::Refused(format!(
                    "input request {request_id} is not open on this case"
                )));
            };
            let handler_department = caller.is_handler().then(|| caller.department());
            if handler_department.is_some_and(|d| d != asked) {
                return Err(CaseError::Forbidden(format!(
                    "only {asked} answers this request"
                )));
            }
            store::answer_input_request(
                &mut tx,
                request_id,
                &answer,
                &caller.actor(),
                r.r#override,
            )
            .await?;
            let still_open = !store::open_inputs(&mut tx, case.id).await?.is_empty();
            let deadlines = api.deadlines(&mut tx, &case).await?;
            let answer = rules::InputAnswer {
                request_id,
                asked,
                handler_department: handler_department.map(str::to_owned),
                answer,
                overridden: r.r#override,
            };
            let change = rules::answer_input(&mut case, answer, still_open, &deadlines)?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn extend(
    api: &Api,
    request: Request<api::ExtendRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        extension(
            api,
            &caller,
            &r.case_id,
            r.expected_version,
            &r.reason,
            None,
        )
        .await,
    )
}

pub(super) async fn approve_extension(
    api: &Api,
    request: Request<api::ApproveExtensionRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, APPROVERS)?;
    let r = request.into_inner();
    let approver = deadlines::approver_role_of(&caller.role.name()).map(|role| Approver {
        role,
        id: caller.subject().to_owned(),
    });
    respond(
        extension(
            api,
            &caller,
            &r.case_id,
            r.expected_version,
            &r.reason,
            approver,
        )
        .await,
    )
}

async fn extension(
    api: &Api,
    caller: &Caller,
    case_id: &str,
    expected_version: u64,
    reason: &str,
    approver: Option<Approver>,
) -> Result<api::Case, CaseError> {
    let reason = text("reason", reason, true)?;
    let (mut tx, mut case) = api
        .begin(caller, case_id, expected_version, Action::Extend)
        .await?;
    let deadlines = api.deadlines(&mut tx, &case).await?;
    let regime = &api.shared.clocks.regime;
    let track = regime.track(&regime.default_track).ok_or_else(|| {
        CaseError::Corrupt(format!("regime {} has no default track", regime.name))
    })?;
    let approved_by = approver.as_ref().map(|_| caller.actor());
    let change = rules::extend(
        &mut case,
        &deadlines,
        track,
        approver,
        approved_by,
        reason,
        Utc::now(),
    )?;
    api.finish(tx, case, caller, vec![change]).await
}

pub(super) async fn pause_clock(
    api: &Api,
    request: Request<api::PauseClockRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        async {
            let note = text("note", &r.note, false)?;
            let reason = grpc::enum_value::<ClockPauseReason>("reason", r.reason)?
                .unwrap_or(ClockPauseReason::Unspecified);
            let regime_reason = deadlines::pause_reason(reason)
                .ok_or_else(|| CaseError::invalid("reason", "required: why the clock stops"))?;
            let (mut tx, case) = api
                .begin(&caller, &r.case_id, r.expected_version, Action::PauseClock)
                .await?;
            let deadlines = api.deadlines(&mut tx, &case).await?;
            let stops = api.shared.clocks.regime.pause_rule(regime_reason).is_some();
            let change = rules::pause(&case, &deadlines, reason, regime_reason, stops, note)?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn resume_clock(
    api: &Api,
    request: Request<api::ResumeClockRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        async {
            let (mut tx, case) = api
                .begin(&caller, &r.case_id, r.expected_version, Action::ResumeClock)
                .await?;
            let deadlines = api.deadlines(&mut tx, &case).await?;
            let change = rules::resume(&case, &deadlines)?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn record_new_facts(
    api: &Api,
    request: Request<api::RecordNewFactsRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        async {
            let summary = text("summary", &r.summary, true)?;
            let (tx, mut case) = api
                .begin(
                    &caller,
                    &r.case_id,
                    r.expected_version,
                    Action::RecordNewFacts,
                )
                .await?;
            let change = rules::new_facts(&mut case, summary)?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}
