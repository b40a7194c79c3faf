//! `redress.complaint.v1.received` → classify → `redress.complaint.v1.classified`.
//!
//! A complaint below the review threshold is still published as classified (with
//! `needsReview`), so its case opens and its deadline runs while a specialist looks at it; the
//! specialist's decision follows as `reclassified`.

use std::sync::Arc;

use redress_proto::events::v1::{ComplaintClassified, ComplaintReceived};
use redress_runtime::{
    EventHandler, HandleError, Incoming, OutboxMessage,
    event::{new_event, service_actor},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{SERVICE, engine::input_of, live::Live, store};

pub struct Received {
    pub engine: Arc<Live>,
}

impl EventHandler<ComplaintReceived> for Received {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<ComplaintReceived>,
    ) -> Result<(), HandleError> {
        let Some(complaint) = event.payload.complaint else {
            return Err(HandleError::Permanent(
                "a received event with no complaint".into(),
            ));
        };
        let id = Uuid::parse_str(&complaint.complaint_id)
            .map_err(|_| HandleError::Permanent("complaintId is not an id".into()))?;
        let input = input_of(&complaint);
        // One engine for the whole decision, even if the active model changes meanwhile.
        let classification = self.engine.current().classify(&input);
        let needs_review = classification.needs_review;
        let actor = service_actor(SERVICE);
        if !store::insert(conn, id, &complaint, &classification, &input.text, &actor).await? {
            return Ok(());
        }
        let classified = new_event(
            SERVICE,
            id.to_string(),
            1,
            actor,
            ComplaintClassified {
                complaint: Some(complaint),
                classification: Some(classification),
            },
        );
        redress_runtime::outbox::enqueue(conn, &[OutboxMessage::event(&classified)]).await?;
        tracing::info!(complaint_id = %id, needs_review, "complaint classified");
        Ok(())
    }
}
