//! The complaint events case-coordination consumes, one durable consumer each (all with an
//! inbox, so a redelivery has no second effect):
//!
//! - `classified` opens one case per complaint (idempotent by complaint id) and routes it;
//! - `reclassified` updates the classification and routes a case still waiting in triage;
//! - `duplicate_suspected` links the two complaints (a specialist may merge their cases);
//! - `withdrawn` ends the case at once (or, arriving first, when the case opens).

use std::sync::Arc;

use chrono::Utc;
use redress_proto::{
    cases::v1 as api,
    common::v1::{Actor, Severity},
    events::v1::{
        CaseCreated, CaseReclassified, CaseWithdrawn, ComplaintClassified, event::Payload,
    },
};
use redress_runtime::{
    Delivery, HandleError, Handler,
    event::{from_timestamp, service_actor},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    SERVICE,
    deadlines::Clock,
    domain::{CaseError, State},
    routing::{Subject, TRIAGE, channel_token},
    store::{self, CaseRecord, Change, Shared},
};

/// Which complaint event a consumer handles.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Classified,
    Reclassified,
    DuplicateSuspected,
    Withdrawn,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Classified,
        Kind::Reclassified,
        Kind::DuplicateSuspected,
        Kind::Withdrawn,
    ];

    /// The `<event>` of `redress.complaint.v1.<event>`.
    pub fn event(self) -> &'static str {
        match self {
            Kind::Classified => "classified",
            Kind::Reclassified => "reclassified",
            Kind::DuplicateSuspected => "duplicate_suspected",
            Kind::Withdrawn => "withdrawn",
        }
    }
}

pub struct Complaints {
    pub shared: Arc<Shared>,
    pub kind: Kind,
}

impl Handler for Complaints {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        let event = delivery.event()?;
        let actor = event
            .actor
            .clone()
            .unwrap_or_else(|| service_actor("unknown"));
        let result = match (self.kind, event.payload) {
            (Kind::Classified, Some(Payload::ComplaintClassified(c))) => {
                open(conn, &self.shared, &c).await.map(|_| ())
            }
            (Kind::Reclassified, Some(Payload::ComplaintReclassified(r))) => {
                reclassify(conn, &self.shared, &r, &actor).await
            }
            (Kind::DuplicateSuspected, Some(Payload::DuplicateSuspected(d))) => {
                link(conn, &d).await
            }
            (Kind::Withdrawn, Some(Payload::ComplaintWithdrawn(w))) => {
                withdraw(conn, &self.shared, &w.complaint_id, &w.reason, &actor).await
            }
            (kind, other) => Err(CaseError::Corrupt(format!(
                "a {} consumer got {}",
                kind.event(),
                other.map(|_| "another payload").unwrap_or("no payload")
            ))),
        };
        result.map_err(|error| match error {
            CaseError::Database(e) => HandleError::Database(e),
            // The case may simply not be open yet (events of one complaint travel on separate
            // consumers): retry with backoff, dead-letter if it never appears.
            CaseError::NotFound(m) => HandleError::Transient(m),
            other => HandleError::Permanent(other.to_string()),
        })
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
    c: &ComplaintClassified,
) -> Result<Option<CaseRecord>, CaseError> {
    let complaint_id = complaint_id(&c.complaint_id)?;
    let received_at = c
        .received_at
        .as_ref()
        .and_then(from_timestamp)
        .ok_or_else(|| CaseError::invalid("receivedAt", "required: every deadline starts there"))?;
    let classification = c.classification.clone().unwrap_or_default();
    let category = classification
        .category
        .as_ref()
        .map(|l| l.code.clone())
        .unwrap_or_default();
    let cause = classification
        .cause
        .as_ref()
        .map(|l| l.code.clone())
        .unwrap_or_default();
    let severity = Severity::try_from(classification.severity).unwrap_or(Severity::Unspecified);
    let channel = c.channel();
    let snapshot = api::Case {
        reference: c.reference.clone(),
        first_receiver: format!("channel:{}", channel_token(channel)),
        category_code: category.clone(),
        cause_code: cause.clone(),
        product: classification.product.clone(),
        channel: c.channel,
        consumer_ref: c.consumer_ref.clone(),
        regulator_ref: c.regulator_ref.clone(),
        title: c.title.clone(),
        description: c.description.clone(),
        amount_in_dispute: c.amount_in_dispute.clone(),
        vulnerability: c.vulnerability,
        needs_classification_review: classification.needs_review,
        queue: "triage".into(),
        ..Default::default()
    };
    let now = Utc::now();
    let mut case = CaseRecord {
        id: Uuid::now_v7(),
        complaint_id,
        version: 0,
        state: State::Registered,
        department: TRIAGE.into(),
        handler: None,
        severity,
        received_at,
        breached_at: None,
        created_at: now,
        updated_at: now,
        snapshot,
    };
    if !store::insert(conn, &case).await? {
        return Ok(None);
    }
    let actor = service_actor(SERVICE);
    let mut changes = vec![Change::new(
        "created",
        Payload::CaseCreated(CaseCreated {
            category_code: category.clone(),
            cause_code: cause.clone(),
            product: classification.product.clone(),
            channel: c.channel,
            received_at: c.received_at,
            regulator_ref: c.regulator_ref.clone(),
            title: c.title.clone(),
            description: c.description.clone(),
            amount_in_dispute: c.amount_in_dispute.clone(),
            vulnerability: c.vulnerability,
            ..Default::default()
        }),
    )];
    let subject = Subject {
        category: &category,
        cause: &cause,
        product: &classification.product,
        severity,
        channel,
        regulator_ref: &c.regulator_ref,
        needs_review: classification.needs_review,
    };
    if let Some(destination) = shared.routing.route(&subject) {
        let assigned = store::assign(
            conn,
            &mut case,
            &destination,
            None,
            &actor,
            shared.routing.version(),
            "routing rules",
        )
        .await?;
        changes.push(assigned);
    }
    fill_created(&mut changes[0], &case);
    // A withdrawal that overtook the classification ends the case as soon as it opens.
    let early: Option<String> = sqlx::query_scalar(
        "DELETE FROM early_withdrawals WHERE complaint_id = $1 RETURNING reason",
    )
    .bind(complaint_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(reason) = early {
        case.state = State::Withdrawn;
        changes.push(withdrawn_change(&reason));
    }
    store::commit(conn, &shared.clocks, &mut case, &actor, changes).await?;
    Ok(Some(case))
}

fn fill_created(change: &mut Change, case: &CaseRecord) {
    if let Payload::CaseCreated(p) = &mut change.payload {
        p.queue = case.snapshot.queue.clone();
        p.partner = case.snapshot.partner.clone();
        p.tags = case.snapshot.tags.clone();
    }
}

pub fn withdrawn_change(reason: &str) -> Change {
    Change::new(
        "withdrawn",
        Payload::CaseWithdrawn(CaseWithdrawn {
            header: None,
            reason: reason.to_owned(),
        }),
    )
    .clock(Clock::Withdrawn)
}

async fn reclassify(
    conn: &mut PgConnection,
    shared: &Shared,
    r: &redress_proto::events::v1::ComplaintReclassified,
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
    let mut changes = vec![Change::new(
        "reclassified",
        Payload::CaseReclassified(CaseReclassified {
            header: None,
            category_code: case.snapshot.category_code.clone(),
            cause_code: case.snapshot.cause_code.clone(),
            product: case.snapshot.product.clone(),
        }),
    )];
    // A case still with the triage desk is routed now; one already routed stays where it is
    // (首问负责制: no passing between departments on a reclassification alone).
    if case.state == State::Registered {
        let category = case.snapshot.category_code.clone();
        let cause = case.snapshot.cause_code.clone();
        let product = case.snapshot.product.clone();
        let regulator_ref = case.snapshot.regulator_ref.clone();
        let subject = Subject {
            category: &category,
            cause: &cause,
            product: &product,
            severity: case.severity,
            channel: case.snapshot.channel(),
            regulator_ref: &regulator_ref,
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

async fn link(
    conn: &mut PgConnection,
    d: &redress_proto::events::v1::DuplicateSuspected,
) -> Result<(), CaseError> {
    let id = complaint_id(&d.complaint_id)?;
    let earlier = complaint_id(&d.earlier_complaint_id)?;
    sqlx::query(
        "INSERT INTO duplicate_links (complaint_id, earlier_complaint_id, similarity) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(earlier)
    .bind(if d.similarity.is_finite() { d.similarity } else { 0.0 })
    .execute(conn)
    .await?;
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
        sqlx::query(
            "INSERT INTO early_withdrawals (complaint_id, reason, received_at) VALUES ($1, $2, now()) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(reason)
        .execute(conn)
        .await?;
        return Ok(());
    };
    if case.state.is_terminal() {
        return Ok(());
    }
    case.state = State::Withdrawn;
    store::commit(
        conn,
        &shared.clocks,
        &mut case,
        actor,
        vec![withdrawn_change(reason)],
    )
    .await?;
    Ok(())
}
