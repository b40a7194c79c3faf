//! The complaint events case-coordination reacts to, read by one durable consumer over the
//! complaint stream in stream order (with an inbox, so a redelivery has no second effect):
//!
//! - `classified` opens one case per complaint (idempotent by complaint id) and routes it;
//! - `reclassified` updates the classification and routes a case still waiting in triage;
//! - `duplicate_suspected` links the two complaints (a specialist may merge their cases);
//! - `withdrawn` ends the case at once (or, arriving first, when the case opens).
//!
//! Several replicas split the stream between them, so one complaint's `withdrawn` may be
//! handled before its `classified` has committed on another replica: the withdrawal is kept
//! and applied when the case opens (docs/decisions.md, 13).

use std::sync::Arc;

use chrono::Utc;
use redress_proto::{
    cases::v1 as api,
    common::v1::{Actor, Channel, Severity},
    events::v1::{
        CaseCreated, CaseReclassified, Classification, ComplaintClassified, ComplaintReclassified,
        ComplaintSummary, ComplaintWithdrawn, DuplicateSuspected, TaxonomyLabel,
    },
};
use redress_runtime::{
    EventHandler, HandleError, Incoming,
    event::{from_timestamp, service_actor},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    SERVICE,
    domain::{CaseError, CaseRecord, Change, State, rules},
    routing::{Subject, TRIAGE},
    store::{self, Shared},
};

/// The complaint events' handler (one per event type, sharing the service's state).
#[derive(Clone)]
pub struct Complaints {
    pub shared: Arc<Shared>,
}

/// A case that may simply not be open yet is worth retrying; a malformed event is not.
fn handle_error(error: CaseError) -> HandleError {
    match error {
        CaseError::Database(e) => HandleError::Database(e),
        CaseError::NotFound(m) => HandleError::Transient(m),
        other => HandleError::Permanent(other.to_string()),
    }
}

fn actor_of<E>(event: &Incoming<E>) -> Actor {
    if event.actor.subject.is_empty() {
        service_actor("unknown")
    } else {
        event.actor.clone()
    }
}

impl EventHandler<ComplaintClassified> for Complaints {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<ComplaintClassified>,
    ) -> Result<(), HandleError> {
        open(conn, &self.shared, event.payload)
            .await
            .map(|_| ())
            .map_err(handle_error)
    }
}

impl EventHandler<ComplaintReclassified> for Complaints {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<ComplaintReclassified>,
    ) -> Result<(), HandleError> {
        let actor = actor_of(&event);
        reclassify(conn, &self.shared, &event.payload, &actor)
            .await
            .map_err(handle_error)
    }
}

impl EventHandler<DuplicateSuspected> for Complaints {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<DuplicateSuspected>,
    ) -> Result<(), HandleError> {
        let d = &event.payload;
        let link = async {
            let id = complaint_id(&d.complaint_id)?;
            let earlier = complaint_id(&d.earlier_complaint_id)?;
            store::link_duplicates(conn, id, earlier, d.similarity).await
        };
        link.await.map_err(handle_error)
    }
}

impl EventHandler<ComplaintWithdrawn> for Complaints {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<ComplaintWithdrawn>,
    ) -> Result<(), HandleError> {
        let actor = actor_of(&event);
        let w = &event.payload;
        withdraw(conn, &self.shared, &w.complaint_id, &w.reason, &actor)
            .await
            .map_err(handle_error)
    }
}

fn complaint_id(text: &str) -> Result<Uuid, CaseError> {
    Uuid::parse_str(text.trim()).map_err(|_| CaseError::invalid("complaintId", "not a UUID"))
}

/// Opens the case of a classified complaint and routes it; returns it, or `None` when the
/// complaint already has one.
pub async fn open(
    conn: &mut PgConnection,
    shared: &Shared,
    c: ComplaintClassified,
) -> Result<Option<CaseRecord>, CaseError> {
    let complaint = c
        .complaint
        .ok_or_else(|| CaseError::invalid("complaint", "required"))?;
    let classification = c.classification.unwrap_or_default();
    let mut case = new_case(&complaint, &classification)?;
    let (category, cause) = (
        case.snapshot.category_code.clone(),
        case.snapshot.cause_code.clone(),
    );
    let (severity, channel) = (case.severity, complaint.channel());
    if !store::insert(conn, &case).await? {
        return Ok(None);
    }
    let actor = service_actor(SERVICE);
    let subject = Subject {
        category: &category,
        cause: &cause,
        product: &classification.product,
        severity,
        channel,
        regulator_ref: &complaint.regulator_ref,
        needs_review: classification.needs_review,
    };
    let assigned = match shared.routing.route(&subject) {
        Some(destination) => Some(
            store::assign(
                conn,
                &mut case,
                &destination,
                None,
                &actor,
                shared.routing.version(),
                "routing rules",
            )
            .await?,
        ),
        None => None,
    };
    let mut changes = vec![Change::new(CaseCreated {
        header: None,
        complaint: Some(complaint),
        category_code: category,
        cause_code: cause,
        queue: case.snapshot.queue.clone(),
        partner: case.snapshot.partner.clone(),
        tags: case.snapshot.tags.clone(),
        ..Default::default()
    })];
    changes.extend(assigned);
    // A withdrawal that overtook the classification ends the case as soon as it opens.
    if let Some(reason) = store::take_early_withdrawal(conn, case.complaint_id).await? {
        case.state = State::Withdrawn;
        changes.push(rules::withdrawn(reason));
    }
    store::commit(conn, &shared.clocks, &mut case, &actor, changes).await?;
    Ok(Some(case))
}

/// The case a classified complaint opens with: registered, with the triage desk.
fn new_case(
    complaint: &ComplaintSummary,
    classification: &Classification,
) -> Result<CaseRecord, CaseError> {
    let complaint_id = complaint_id(&complaint.complaint_id)?;
    let received_at = complaint
        .received_at
        .as_ref()
        .and_then(from_timestamp)
        .ok_or_else(|| CaseError::invalid("receivedAt", "required: every deadline starts there"))?;
    let code = |l: &Option<TaxonomyLabel>| l.as_ref().map(|l| l.code.clone()).unwrap_or_default();
    let snapshot = api::Case {
        first_receiver: format!("channel:{}", complaint.channel().token()),
        category_code: code(&classification.category),
        cause_code: code(&classification.cause),
        product: classification.product.clone(),
        needs_classification_review: classification.needs_review,
        queue: TRIAGE.into(),
        complaint: Some(complaint.clone()),
        ..Default::default()
    };
    let now = Utc::now();
    Ok(CaseRecord {
        id: Uuid::now_v7(),
        complaint_id,
        version: 0,
        state: State::Registered,
        department: TRIAGE.into(),
        handler: None,
        severity: Severity::try_from(classification.severity).unwrap_or(Severity::Unspecified),
        received_at,
        breached_at: None,
        created_at: now,
        updated_at: now,
        snapshot,
    })
}

async fn reclassify(
    conn: &mut PgConnection,
    shared: &Shared,
    r: &ComplaintReclassified,
    actor: &Actor,
) -> Result<(), CaseError> {
    let id = complaint_id(&r.complaint_id)?;
    let Some(mut case) = store::load_by_complaint(conn, id).await? else {
        return Err(CaseError::NotFound(format!(
            "complaint {id} has no case yet"
        )));
    };
    if case.state.is_terminal() {
        return Ok(());
    }
    let classification = r.classification.clone().unwrap_or_default();
    let s = &mut case.snapshot;
    s.category_code = classification
        .category
        .as_ref()
        .map(|l| l.code.clone())
        .unwrap_or_default();
    s.cause_code = classification
        .cause
        .as_ref()
        .map(|l| l.code.clone())
        .unwrap_or_default();
    s.product = classification.product.clone();
    s.needs_classification_review = false;
    case.severity = Severity::try_from(classification.severity).unwrap_or(case.severity);
    let mut changes = vec![Change::new(CaseReclassified {
        header: None,
        category_code: case.snapshot.category_code.clone(),
        cause_code: case.snapshot.cause_code.clone(),
        product: case.snapshot.product.clone(),
    })];
    // A case still with the triage desk is routed now; one already routed stays where it is
    // (首问负责制: no passing between departments on a reclassification alone).
    if case.state == State::Registered {
        let category = case.snapshot.category_code.clone();
        let cause = case.snapshot.cause_code.clone();
        let product = case.snapshot.product.clone();
        let complaint = case.snapshot.complaint.clone().unwrap_or_default();
        let subject = Subject {
            category: &category,
            cause: &cause,
            product: &product,
            severity: case.severity,
            channel: Channel::try_from(complaint.channel).unwrap_or_default(),
            regulator_ref: &complaint.regulator_ref,
            needs_review: false,
        };
        if let Some(destination) = shared.routing.route(&subject) {
            changes.push(
                store::assign(
                    conn,
                    &mut case,
                    &destination,
                    None,
                    actor,
                    shared.routing.version(),
                    "routing rules after reclassification",
                )
                .await?,
            );
        }
    }
    store::commit(conn, &shared.clocks, &mut case, actor, changes).await?;
    Ok(())
}

/// Ends the complaint's case (the procedure ends on receipt of the withdrawal).
pub async fn withdraw(
    conn: &mut PgConnection,
    shared: &Shared,
    complaint: &str,
    reason: &str,
    actor: &Actor,
) -> Result<(), CaseError> {
    let id = complaint_id(complaint)?;
    let Some(mut case) = store::load_by_complaint(conn, id).await? else {
        return store::keep_early_withdrawal(conn, id, reason).await;
    };
    if case.state.is_terminal() {
        return Ok(());
    }
    let change = rules::withdraw(&mut case, reason.to_owned())?;
    store::commit(conn, &shared.clocks, &mut case, actor, vec![change]).await?;
    Ok(())
}

/// Notification's events: `sent` for a decision records when the consumer was told, and the
/// review window runs from then (read by its own durable consumer on the notification stream).
#[derive(Clone)]
pub struct Notifications {
    pub shared: Arc<Shared>,
}

impl redress_runtime::EventHandler<redress_proto::events::v1::NotificationSent> for Notifications {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<redress_proto::events::v1::NotificationSent>,
    ) -> Result<(), HandleError> {
        use redress_proto::events::v1::{Event, NoticeKind, event::Payload};
        let sent = &event.payload;
        let Some(header) = sent.header.as_ref() else {
            return Err(HandleError::Permanent(
                "the event has no notice header".into(),
            ));
        };
        if header.kind != NoticeKind::Decision as i32 {
            return Ok(());
        }
        let case_id = Uuid::parse_str(&header.case_id)
            .map_err(|e| HandleError::Permanent(format!("caseId `{}`: {e}", header.case_id)))?;
        // Locked: the notice lands in the history between two changes, never inside one.
        let Some(case) = store::load(conn, case_id, true)
            .await
            .map_err(handle_error)?
        else {
            return Err(HandleError::Transient(format!("no case {case_id} yet")));
        };
        // Clock events stay in order: a notice recorded late counts from the last known step.
        let history = store::history(conn, case.id).await.map_err(handle_error)?;
        let last = history
            .last()
            .map(|(at, _)| *at)
            .unwrap_or(case.received_at);
        let sent_at = sent
            .sent_at
            .as_ref()
            .and_then(from_timestamp)
            .or(event.occurred_at)
            .unwrap_or_else(Utc::now)
            .max(last);
        let envelope = Event {
            id: event.id.clone(),
            occurred_at: event.occurred_at.map(redress_runtime::event::timestamp),
            source: event.source.clone(),
            aggregate_id: event.aggregate_id.clone(),
            aggregate_version: event.aggregate_version,
            actor: Some(event.actor.clone()),
            payload: Some(Payload::NotificationSent(sent.clone())),
        };
        store::record_event(
            conn,
            case.id,
            case.version,
            "notification_sent",
            sent_at,
            Some(&crate::deadlines::Clock::ConsumerNotified),
            &envelope,
        )
        .await
        .map_err(handle_error)
    }
}
