//! The consumers: one durable consumer per stream (NATS 2.9 has no multi-filter consumers),
//! each handing every event it reads to the same write path as a rebuild.

use std::sync::Arc;

use redress_proto::{
    EventPayload,
    events::v1::{
        CaseAssigned, CaseClockResumed, CaseCreated, CaseDecided, CaseEscalated, CaseExtended,
        CaseNewFacts, CaseReclassified, CaseReopened, CaseReviewRequested,
        CaseSatisfactionRecorded, CaseWorkStarted, ComplaintClassified, ComplaintReceived,
        ComplaintReclassified, ComplaintRejected, ComplaintWithdrawn, DuplicateSuspected,
        NotificationFailed, NotificationSent,
    },
};
use redress_runtime::{Consumer, EventHandler, HandleError, Incoming};
use sqlx::PgConnection;

use crate::{
    cells::Context,
    events::{Ev, body},
    store::{self, StoreError},
};

/// Applies one event through [`store::apply`] in the consumer's transaction.
#[derive(Clone)]
pub struct Ingest {
    pub ctx: Arc<Context>,
}

impl From<StoreError> for HandleError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(e) => HandleError::Database(e),
            StoreError::Fact(e) => HandleError::Permanent(format!("stored fact: {e}")),
        }
    }
}

impl<E: EventPayload> EventHandler<E> for Ingest {
    async fn handle(&self, conn: &mut PgConnection, event: Incoming<E>) -> Result<(), HandleError> {
        let Some(at) = event
            .occurred_at
            .and_then(|t| chrono::DateTime::from_timestamp_micros(t.timestamp_micros()))
        else {
            return Err(HandleError::Permanent(
                "the event has no occurred_at".into(),
            ));
        };
        let Some(body) = body(&event.payload.into_payload()) else {
            // Carries nothing a figure uses (e.g. a case event without its complaint id).
            return Ok(());
        };
        let ev = Ev {
            id: event.id,
            at,
            body,
        };
        store::apply(conn, &self.ctx, std::slice::from_ref(&ev)).await?;
        Ok(())
    }
}

/// The durable consumers, one per stream.
pub fn consumers(prefix: &str, ingest: &Ingest) -> Vec<Consumer> {
    let i = || ingest.clone();
    vec![
        Consumer::durable(format!("{prefix}-complaints"))
            .on::<ComplaintReceived>(i())
            .on::<DuplicateSuspected>(i())
            .on::<ComplaintWithdrawn>(i())
            .on::<ComplaintClassified>(i())
            .on::<ComplaintReclassified>(i()),
        Consumer::durable(format!("{prefix}-rejections")).on::<ComplaintRejected>(i()),
        Consumer::durable(format!("{prefix}-cases"))
            .on::<CaseCreated>(i())
            .on::<CaseAssigned>(i())
            .on::<CaseWorkStarted>(i())
            .on::<CaseExtended>(i())
            .on::<CaseClockResumed>(i())
            .on::<CaseNewFacts>(i())
            .on::<CaseDecided>(i())
            .on::<CaseReviewRequested>(i())
            .on::<CaseEscalated>(i())
            .on::<CaseSatisfactionRecorded>(i())
            .on::<CaseReopened>(i())
            .on::<CaseReclassified>(i()),
        Consumer::durable(format!("{prefix}-notifications"))
            .on::<NotificationSent>(i())
            .on::<NotificationFailed>(i()),
    ]
}
