//! `redress.complaint.v1.received` → classify → `redress.complaint.v1.classified`.
//!
//! A complaint below the review threshold is still published as classified (with
//! `needsReview`), so its case opens and its deadline runs while a specialist looks at it; the
//! specialist's decision follows as `reclassified`.

use std::sync::Arc;

use redress_proto::events::v1::{ComplaintClassified, event::Payload};
use redress_runtime::{
    Delivery, HandleError, Handler, OutboxMessage,
    event::{new_event, service_actor},
};
use sqlx::PgConnection;

use crate::{
    SERVICE,
    engine::{Engine, input_of},
    store,
};

pub struct Received {
    pub engine: Arc<Engine>,
}

impl Handler for Received {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        let event = delivery.event()?;
        let Some(Payload::ComplaintReceived(received)) = event.payload else {
            return Ok(());
        };
        let input = input_of(&received);
        let classification = self.engine.classify(&input);
        let needs_review = classification.needs_review;
        let complaint = ComplaintClassified {
            complaint_id: received.complaint_id.clone(),
            reference: received.reference.clone(),
            classification: Some(classification),
            channel: received.channel,
            kind: received.kind,
            received_at: received.received_at,
            consumer_ref: received.consumer_ref.clone(),
            regulator_ref: received.regulator_ref.clone(),
            title: received.title.clone(),
            description: received.description.clone(),
            amount_in_dispute: received.amount_in_dispute.clone(),
            vulnerability: received.vulnerability,
            preferred_contact: received.preferred_contact.clone(),
            language: received.language.clone(),
            recent_complaints: received.recent_complaints,
        };
        let actor = service_actor(SERVICE);
        if !store::insert(conn, &complaint, &input.text, &actor).await? {
            return Ok(());
        }
        let event = new_event(
            SERVICE,
            &received.complaint_id,
            1,
            actor,
            Payload::ComplaintClassified(complaint),
        );
        redress_runtime::outbox::enqueue(
            conn,
            &[OutboxMessage::event(
                "redress.complaint.v1.classified",
                &event,
            )],
        )
        .await?;
        tracing::info!(complaint_id = %received.complaint_id, needs_review, "complaint classified");
        Ok(())
    }
}
