//! The INTAKE stream's durable consumer: every stored submission is registered, whether or
//! not someone asked for a receipt. Idempotent by `channel:channelRef` (a registration) and by
//! the message digest (a rejection), so it needs no inbox.

use std::sync::Arc;

use redress_runtime::{Delivery, HandleError, Handler, bus::headers};
use sqlx::PgConnection;

use crate::{
    register::{Context, Incoming, Origin, register},
    registrar::Shared,
};

pub struct Submissions {
    pub shared: Arc<Shared>,
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
            subject_channel: delivery.subject.strip_prefix("redress.intake.v1.submit."),
            origin: Origin::Stream,
            arrived_at: ctx.now,
        };
        register(conn, &ctx, incoming).await?;
        Ok(())
    }
}
