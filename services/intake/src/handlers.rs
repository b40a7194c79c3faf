//! The submission streams' durable consumers (`INTAKE`, `INTAKE_DURABLE`): every stored
//! submission is registered, whether or not someone asked for a receipt. Idempotent by
//! `channel:channelRef` (a registration) and by the message digest (a rejection), so they
//! need no inbox.

use std::sync::Arc;

use redress_runtime::{Delivery, HandleError, Handler, bus::headers, consumer::Sealer};
use sqlx::PgConnection;

use crate::{
    register::{Context, Incoming, Origin, register},
    registrar::Shared,
    vault::Vault,
};

/// The additional data dead letters are sealed with: a sealed submission opens only as one.
pub const DEAD_LETTER_RECORD: &str = "intake-dead-letter";

#[derive(Clone)]
pub struct Submissions {
    pub shared: Arc<Shared>,
}

/// The `<channel>` of `redress.intake.v1.{submit,durable}.<channel>` (possibly not a channel:
/// registration refuses it with a violation that says so).
pub fn subject_channel(subject: &str) -> Option<&str> {
    subject
        .strip_prefix("redress.intake.v1.submit.")
        .or_else(|| subject.strip_prefix("redress.intake.v1.durable."))
}

impl Handler for Submissions {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        let ctx = Context {
            vault: &self.shared.vault,
            settings: &self.shared.settings,
            now: chrono::Utc::now(),
            pool: &self.shared.references,
        };
        let json = delivery
            .header(headers::CONTENT_TYPE)
            .is_some_and(|v| v.starts_with(headers::JSON));
        let incoming = Incoming {
            payload: &delivery.payload,
            json,
            subject_channel: subject_channel(&delivery.subject),
            origin: Origin::Stream,
            arrived_at: ctx.now,
        };
        register(conn, &ctx, incoming).await?;
        Ok(())
    }
}

/// Seals a raw submission before it may go to the dead-letter queue: it holds names, phone
/// numbers and ID numbers, which must never sit in plain text on the bus.
pub fn sealer(vault: Arc<Vault>) -> Sealer {
    Arc::new(move |body: &[u8]| {
        let sealed = vault.seal(body, DEAD_LETTER_RECORD);
        Ok((sealed.bytes, sealed.key_id))
    })
}
