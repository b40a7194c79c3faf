//! Assign, StartWork and DeclareConflict: who works the case (首问负责制, 回避).

use redress_proto::{cases::v1 as api, vocab::TextKind};
use redress_runtime::{Role, grpc};
use tonic::{Request, Response, Status};

use super::{Api, Caller, WORKERS, respond, text};
use crate::{
    domain::{Action, CaseError, CaseRecord, rules},
    routing::{Destination, Queue, Subject, TRIAGE},
    store,
};

pub(super) async fn assign(
    api: &Api,
    request: Request<api::AssignRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, &[Role::Specialist, Role::Admin, Role::Handler])?;
    let r = request.into_inner();
    respond(
        async {
            let reason = text("reason", &r.reason, false)?;
            let wanted = grpc::slug("department", &r.department, false)?;
            let handler = grpc::text("handler", &r.handler, 128, TextKind::Line, false)?;
            let handler = Some(handler).filter(|h| !h.is_empty());
            let (mut tx, mut case) = api
                .begin(&caller, &r.case_id, r.expected_version, Action::Assign)
                .await?;
            let destination = destination(api, &caller, &case, &wanted)?;
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
                api.shared.routing.version(),
                &reason,
            )
            .await?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

/// Where an assignment sends the case. 首问负责制: a handler cannot pass a case to another
/// department — routing between departments is the triage desk's (specialists, admins); with
/// no department named, the routing rules decide.
fn destination(
    api: &Api,
    caller: &Caller,
    case: &CaseRecord,
    wanted: &str,
) -> Result<Destination, CaseError> {
    if caller.is_handler() {
        if !wanted.is_empty() && wanted != case.department {
            return Err(CaseError::Forbidden(format!(
                "a handler may reassign only within {}; ask a specialist to re-route",
                case.department
            )));
        }
        return Ok(current_destination(case));
    }
    if wanted.is_empty() {
        let s = &case.snapshot;
        let complaint = s.complaint.clone().unwrap_or_default();
        let subject = Subject {
            category: &s.category_code,
            cause: &s.cause_code,
            product: &s.product,
            severity: case.severity,
            channel: complaint.channel(),
            regulator_ref: &complaint.regulator_ref,
            needs_review: false,
        };
        return api
            .shared
            .routing
            .route(&subject)
            .ok_or_else(|| CaseError::Refused("no routing rule applies".into()));
    }
    if wanted == TRIAGE {
        return Err(CaseError::invalid(
            "department",
            "a department slug such as `lending` (not triage)",
        ));
    }
    let mut d = current_destination(case);
    if wanted != case.department {
        d.department = wanted.to_owned();
        d.rule = "manual".into();
        d.partner = None;
        if d.queue == Queue::Partner {
            d.queue = Queue::Standard;
        }
    }
    Ok(d)
}

pub(super) async fn start_work(
    api: &Api,
    request: Request<api::StartWorkRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(&request, WORKERS)?;
    let r = request.into_inner();
    respond(
        async {
            let (mut tx, mut case) = api
                .begin(&caller, &r.case_id, r.expected_version, Action::StartWork)
                .await?;
            let handler = caller.is_handler().then(|| caller.subject().to_owned());
            let conflicted = match &handler {
                Some(me) => store::is_conflicted(&mut tx, case.id, me).await?,
                None => false,
            };
            let change = rules::start_work(&mut case, handler.as_deref(), conflicted)?;
            api.finish(tx, case, &caller, vec![change]).await
        }
        .await,
    )
}

pub(super) async fn declare_conflict(
    api: &Api,
    request: Request<api::DeclareConflictRequest>,
) -> Result<Response<api::Case>, Status> {
    let caller = Caller::of(
        &request,
        &[Role::Handler, Role::Specialist, Role::Compliance],
    )?;
    let r = request.into_inner();
    respond(
        async {
            let reason = text("reason", &r.reason, true)?;
            let named = grpc::text("handler", &r.handler, 128, TextKind::Line, false)?;
            let handler = if named.is_empty() {
                caller.subject().to_owned()
            } else {
                named
            };
            if caller.is_handler() && handler != caller.subject() {
                return Err(CaseError::Forbidden(
                    "a handler declares only their own interest; a specialist records one found"
                        .into(),
                ));
            }
            let (mut tx, mut case) = api
                .begin(
                    &caller,
                    &r.case_id,
                    r.expected_version,
                    Action::DeclareConflict,
                )
                .await?;
            store::insert_conflict(&mut tx, case.id, &handler, &reason, &caller.actor()).await?;
            let mut changes = vec![rules::conflict_declared(handler.clone(), reason)];
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
                            api.shared.routing.version(),
                            "回避: the handler declared a conflict of interest",
                        )
                        .await?,
                    );
                } else {
                    case.handler = None;
                }
            }
            api.finish(tx, case, &caller, changes).await
        }
        .await,
    )
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
