//! Every case event, matched against the endpoints' filters: one message per matching
//! endpoint, recorded once per (endpoint, event) with its body as it will be signed and sent.
//! A disabled endpoint's messages are kept `skipped`, so a replay after it is fixed finds them.

use redress_runtime::consumer::{Delivery, HandleError, Handler};
use sqlx::PgConnection;

use super::{matches, store};

pub struct Fanout;

impl Handler for Fanout {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        let endpoints = store::filters(conn).await?;
        let wanted: Vec<_> = endpoints
            .into_iter()
            .filter(|(_, _, subjects)| subjects.iter().any(|f| matches(f, &delivery.subject)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let event = delivery.event()?;
        // The event in proto3 JSON, as the receiver gets it.
        let body = serde_json::to_string(&event)
            .map_err(|e| HandleError::Permanent(format!("event as JSON: {e}")))?;
        let occurred_at = event
            .occurred_at
            .as_ref()
            .and_then(|t| {
                chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
            })
            .unwrap_or(delivery.published);
        for (endpoint_id, state, _) in wanted {
            let message = store::NewMessage {
                endpoint_id,
                event_id: &event.id,
                subject: &delivery.subject,
                body: &body,
                occurred_at,
                send: state == "enabled",
            };
            store::insert_message(conn, &message).await?;
        }
        Ok(())
    }
}
