//! How a case ends: decision, review (核查), follow-up (回访), escalation, merge, withdrawal
//! and closing.

use chrono::Utc;
use redress_proto::{
    Violations,
    cases::v1 as api,
    events::v1::{DecisionOutcome, EscalationTarget, Satisfaction},
};
use redress_runtime::{Role, ServiceId, grpc};
use tonic::{Request, Response, Status};

use super::{Api, Caller, WORKERS, respond, text};
use crate::{
    domain::{Action, CaseError, rules},
    store,
};

/// Tags naming the root causes a decision feeds (溯源整改): short, several, none repeated.
fn root_cause_tags(tags: &[String]) -> Result<Vec<String>, CaseError> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = grpc::text(
            "rootCauseTags",
            tag,
            64,
            redress_proto::vocab::TextKind::Line,
            true,
        )?;
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

pub(super) async fn record_decision(
    api: &Api,
    request: Request<api::RecordDecisionRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        async {
            let outcome = match grpc::enum_value::<DecisionOutcome>("outcome", r.outcome)? {
                Some(o) => o,
                None => {
                    return Err(CaseError::invalid(
                        "outcome",
                        "upheld, partly upheld or not upheld",
                    ));
                }
            };
            let explanation = text("explanation", &r.explanation, true)?;
            let root_cause_tags = root_cause_tags(&r.root_cause_tags)?;
            let mut remedy = r.remedy.unwrap_or_default();
            remedy.action = text("remedy.action", &remedy.action, false)?;
            if let Some(amount) = &remedy.amount {
                amount.check("remedy.amount")?;
            }
            let (mut tx, mut case) = api
                .begin(
                    &caller,
                    &r.case_id,
                    r.expected_version,
                    Action::RecordDecision,
                )
                .await?;
            let open = store::open_inputs(&mut tx, case.id).await?;
            let decision = rules::Decision {
                outcome,
                remedy,
                explanation,
                root_cause_tags,
            };
            let change = rules::decide(&mut case, decision, &open, caller.actor(), Utc::now())?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn request_review(
    api: &Api,
    request: Request<api::RequestReviewRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        async {
            let reason = text("reason", &r.reason, true)?;
            let (mut tx, mut case) = api
                .begin(
                    &caller,
                    &r.case_id,
                    r.expected_version,
                    Action::RequestReview,
                )
                .await?;
            let deadlines = api.deadlines(&mut tx, &case).await?;
            let article = api
                .shared
                .clocks
                .regime
                .review
                .as_ref()
                .map(|r| r.window.article.clone())
                .unwrap_or_default();
            let changes =
                rules::request_review(&mut case, &deadlines, reason, Utc::now(), &article)?;
            api.finish(tx, case, &caller, changes).await
        }
        .await,
    )
}

pub(super) async fn record_satisfaction(
    api: &Api,
    request: Request<api::RecordSatisfactionRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(
        &request,
        &[
            Role::Handler,
            Role::Specialist,
            Role::Service(ServiceId::Notification),
        ],
    )?;
    let r = request.into_inner();
    respond(
        async {
            let comment = text("comment", &r.comment, false)?;
            let Some(satisfaction) =
                grpc::enum_value::<Satisfaction>("satisfaction", r.satisfaction)?
            else {
                return Err(CaseError::invalid(
                    "satisfaction",
                    "satisfied, neutral, dissatisfied or no answer",
                ));
            };
            let (tx, mut case) = api
                .begin(
                    &caller,
                    &r.case_id,
                    r.expected_version,
                    Action::RecordSatisfaction,
                )
                .await?;
            let change = rules::record_satisfaction(&mut case, satisfaction, comment)?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn escalate(
    api: &Api,
    request: Request<api::EscalateRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(
        &request,
        &[Role::Handler, Role::Specialist, Role::Compliance],
    )?;
    let r = request.into_inner();
    respond(
        async {
            let mut v = Violations::default();
            let target = v.check(grpc::enum_value::<EscalationTarget>("target", r.target));
            let reference = v.check(grpc::text(
                "externalReference",
                &r.external_reference,
                128,
                redress_proto::vocab::TextKind::Line,
                true,
            ));
            let (Some(Some(target)), Some(reference)) = (target, reference) else {
                if v.is_empty() {
                    v.add(
                        "target",
                        redress_proto::vocab::code::REQUIRED,
                        "mediation or regulator",
                    );
                }
                return Err(CaseError::Invalid(v));
            };
            let note = text("note", &r.note, false)?;
            let (mut tx, mut case) = api
                .begin(&caller, &r.case_id, r.expected_version, Action::Escalate)
                .await?;
            let deadlines = api.deadlines(&mut tx, &case).await?;
            let change =
                rules::escalate(&mut case, &deadlines, target, reference, note, Utc::now())?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn merge(
    api: &Api,
    request: Request<api::MergeRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, &[Role::Specialist])?;
    let r = request.into_inner();
    respond(
        async {
            let reason = text("reason", &r.reason, false)?;
            let survivor_id =
                redress_proto::vocab::parse_id("survivorCaseId", &r.survivor_case_id)?;
            let (mut tx, mut case) = api
                .begin(&caller, &r.case_id, r.expected_version, Action::Merge)
                .await?;
            let survivor = store::load(&mut tx, survivor_id, false)
                .await?
                .ok_or_else(|| CaseError::invalid("survivorCaseId", "no such case"))?;
            let change = rules::merge(&mut case, &survivor, reason)?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn withdraw(
    api: &Api,
    request: Request<api::WithdrawRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        async {
            let reason = text("reason", &r.reason, true)?;
            let (tx, mut case) = api
                .begin(&caller, &r.case_id, r.expected_version, Action::Withdraw)
                .await?;
            let change = rules::withdraw(&mut case, reason)?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn close(
    api: &Api,
    request: Request<api::CloseRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        async {
            let note = text("note", &r.note, false)?;
            let (tx, mut case) = api
                .begin(&caller, &r.case_id, r.expected_version, Action::Close)
                .await?;
            let change = rules::close(&mut case, note)?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}
