//! The consumers: one durable consumer per stream (NATS 2.9 has no multi-filter consumers),
//! each handing every batch it reads to the same write path as a rebuild, in one call.

use std::{future::Future, sync::Arc};

use redress_proto::{
    EventPayload,
    bus::{CASE_EVENTS, COMPLAINT_EVENTS, INTAKE_REJECTED, NOTIFICATION_EVENTS, headers},
    events::v1::{
        CaseAssigned, CaseClockResumed, CaseCreated, CaseDecided, CaseEscalated, CaseExtended,
        CaseNewFacts, CaseReclassified, CaseReopened, CaseReviewRequested,
        CaseSatisfactionRecorded, CaseWorkStarted, ComplaintClassified, ComplaintReceived,
        ComplaintReclassified, ComplaintRejected, ComplaintWithdrawn, DuplicateSuspected,
        NotificationFailed, NotificationSent,
    },
};
use redress_runtime::{Consumer, Delivery, HandleError, Handler};
use sqlx::PgConnection;

use crate::{
    cells::Context,
    events::{Ev, from_event},
    store::{self, StoreError},
};

/// Applies a batch's events through one [`store::apply`] in the consumer's transaction: the
/// facts of the batch loaded and written in one statement each and the aggregates' changes
/// upserted in one per grain, whatever the batch size.
#[derive(Clone)]
pub struct Ingest {
    pub ctx: Arc<Context>,
}

impl From<StoreError> for HandleError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(e) => HandleError::Database(e),
            StoreError::Fact(e) => HandleError::Permanent(format!("stored fact: {e}")),
            StoreError::Measure(e) => HandleError::Permanent(e.to_string()),
        }
    }
}

/// The event types analytics counts; the consumers read their streams whole and skip the
/// rest without an inbox row.
const COUNTED: &[&str] = &[
    ComplaintReceived::EVENT_TYPE,
    DuplicateSuspected::EVENT_TYPE,
    ComplaintWithdrawn::EVENT_TYPE,
    ComplaintClassified::EVENT_TYPE,
    ComplaintReclassified::EVENT_TYPE,
    ComplaintRejected::EVENT_TYPE,
    CaseCreated::EVENT_TYPE,
    CaseAssigned::EVENT_TYPE,
    CaseWorkStarted::EVENT_TYPE,
    CaseExtended::EVENT_TYPE,
    CaseClockResumed::EVENT_TYPE,
    CaseNewFacts::EVENT_TYPE,
    CaseDecided::EVENT_TYPE,
    CaseReviewRequested::EVENT_TYPE,
    CaseEscalated::EVENT_TYPE,
    CaseSatisfactionRecorded::EVENT_TYPE,
    CaseReopened::EVENT_TYPE,
    CaseReclassified::EVENT_TYPE,
    NotificationSent::EVENT_TYPE,
    NotificationFailed::EVENT_TYPE,
];

/// The analytics view of one delivery; `None` for an event no figure depends on.
fn decode(delivery: &Delivery) -> Result<Option<Ev>, HandleError> {
    let event = delivery.event()?;
    if event.payload.is_none() {
        return Err(HandleError::Permanent("an event with no payload".into()));
    }
    if event.occurred_at.is_none() {
        return Err(HandleError::Permanent(
            "the event has no occurred_at".into(),
        ));
    }
    // Carries nothing a figure uses (e.g. a case event without its complaint id): None.
    Ok(from_event(&event))
}

impl Handler for Ingest {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        let events: Vec<Ev> = decode(delivery)?.into_iter().collect();
        store::apply(conn, &self.ctx, &events).await?;
        Ok(())
    }

    fn wants(&self, delivery: &Delivery) -> bool {
        // Without the header (a hand-published event) decode to find out.
        delivery
            .header(headers::EVENT_TYPE)
            .is_none_or(|kind| COUNTED.contains(&kind))
    }

    // The trait's own signature (a `Send` future borrowing the batch), spelled as it does.
    #[allow(clippy::manual_async_fn)]
    fn handle_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        deliveries: Vec<&'a Delivery>,
    ) -> impl Future<Output = Result<(), HandleError>> + Send + 'a {
        async move {
            let mut events = Vec::with_capacity(deliveries.len());
            for delivery in deliveries {
                events.extend(decode(delivery)?);
            }
            store::apply(conn, &self.ctx, &events).await?;
            Ok(())
        }
    }
}

/// The durable consumers, one per stream, each reading its stream whole.
pub fn consumers(prefix: &str, ingest: &Ingest) -> Vec<Consumer> {
    [
        ("complaints", COMPLAINT_EVENTS),
        ("rejections", INTAKE_REJECTED),
        ("cases", CASE_EVENTS),
        ("notifications", NOTIFICATION_EVENTS),
    ]
    .into_iter()
    .map(|(suffix, stream)| {
        let filter = stream.subjects.first().copied().unwrap_or(">");
        Consumer::raw(format!("{prefix}-{suffix}"), stream, filter, ingest.clone())
    })
    .collect()
}
