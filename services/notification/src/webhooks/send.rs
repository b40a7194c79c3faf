//! Sending one message (queue `webhook`): one attempt, then — by the receiver's answer —
//! delivered, disabled (410 Gone, or a day of nothing but failures: the owner is told by
//! `redress.notification.v1.webhook_disabled`), or tried again on the schedule, never before
//! the receiver's `Retry-After`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redress_outbound::webhook::{Endpoint, Message, MessageId, Outcome as Answer};
use redress_proto::events::v1::WebhookEndpointDisabled;
use redress_runtime::{
    OutboxMessage,
    event::{new_event, service_actor, timestamp},
    jobs::{Job, JobError, JobHandler, Outcome},
    outbox,
};
use sqlx::PgConnection;

use super::{signer, store};
use crate::{SERVICE, Shared};

pub struct Send {
    pub shared: Arc<Shared>,
}

/// One attempt's answer, as recorded.
pub struct Attempt {
    pub outcome: &'static str,
    pub status: u16,
    pub detail: String,
    pub retry_after: Option<std::time::Duration>,
}

/// Signs and sends `body` to the endpoint once.
pub async fn attempt(
    shared: &Shared,
    endpoint: &store::Endpoint,
    id: &str,
    body: &str,
) -> Result<Attempt, String> {
    let webhooks = &shared.webhooks;
    let url = reqwest::Url::parse(&endpoint.url).map_err(|e| format!("url: {e}"))?;
    let signer = signer(&endpoint.keys, Utc::now()).map_err(|e| format!("keys: {e}"))?;
    let id = MessageId::parse(id).map_err(|e| format!("message id: {e}"))?;
    let message = Message {
        id,
        body: body.as_bytes().to_vec(),
    };
    let answer = webhooks
        .deliverer
        .deliver(&Endpoint { url, signer }, &message)
        .await;
    Ok(match answer {
        Answer::Delivered { status } => Attempt {
            outcome: "delivered",
            status,
            detail: String::new(),
            retry_after: None,
        },
        Answer::Disable { status } => Attempt {
            outcome: "gone",
            status,
            detail: "410 Gone: the receiver wants no more".into(),
            retry_after: None,
        },
        Answer::Retry {
            status,
            reason,
            retry_after,
        } => Attempt {
            outcome: "retry",
            status: status.unwrap_or(0),
            detail: reason,
            retry_after,
        },
        Answer::Refused(e) => Attempt {
            outcome: "refused",
            status: 0,
            detail: e.to_string(),
            retry_after: None,
        },
    })
}

impl JobHandler for Send {
    async fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<Outcome, JobError> {
        // Replays run under `<id>#<n>`: the message is the same.
        let id = job.key.split('#').next().unwrap_or(&job.key);
        let Some(message) = store::message_by_id(conn, id).await? else {
            return Err(JobError::Permanent(format!("no webhook message {id}")));
        };
        if message.state != "pending" {
            return Ok(Outcome::Done);
        }
        let Some(endpoint) = store::endpoint_by_id(conn, message.endpoint_id).await? else {
            return Err(JobError::Permanent(format!("no endpoint for {id}")));
        };
        if endpoint.state != "enabled" {
            store::set_message_state(conn, id, "skipped").await?;
            return Ok(Outcome::Done);
        }
        let a = attempt(&self.shared, &endpoint, id, &message.body)
            .await
            .map_err(JobError::Permanent)?;
        let now = Utc::now();
        match a.outcome {
            "delivered" => {
                store::attempted(conn, &message, a.outcome, a.status, "", "delivered").await?;
                store::succeeded(conn, endpoint.id).await?;
                Ok(Outcome::Done)
            }
            "gone" => {
                store::attempted(conn, &message, a.outcome, a.status, &a.detail, "failed").await?;
                disable(conn, &endpoint, "gone", &a.detail, None).await?;
                Ok(Outcome::Done)
            }
            _ => {
                self.failed_attempt(conn, &endpoint, &message, &a, now, job.id)
                    .await
            }
        }
    }
}

impl Send {
    async fn failed_attempt(
        &self,
        conn: &mut PgConnection,
        endpoint: &store::Endpoint,
        message: &store::Message,
        a: &Attempt,
        now: DateTime<Utc>,
        seed: i64,
    ) -> Result<Outcome, JobError> {
        let webhooks = &self.shared.webhooks;
        let since = store::failing(conn, endpoint.id).await?;
        if webhooks.policy.should_disable(Some(since), now) {
            store::attempted(conn, message, a.outcome, a.status, &a.detail, "failed").await?;
            let reason = format!("every attempt failed since {since}; the last: {}", a.detail);
            disable(conn, endpoint, "failing", &reason, Some(since)).await?;
            return Ok(Outcome::Done);
        }
        let failures = u32::try_from(message.round_failures + 1).unwrap_or(u32::MAX);
        // The jitter's draw, spread by the job id so messages that failed together part.
        let unit = (seed.unsigned_abs().wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
        match webhooks.policy.next_delay(failures, a.retry_after, unit) {
            Some(delay) => {
                store::attempted(conn, message, a.outcome, a.status, &a.detail, "pending").await?;
                let delay =
                    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(10));
                Ok(Outcome::Later(now + delay))
            }
            None => {
                store::attempted(conn, message, a.outcome, a.status, &a.detail, "failed").await?;
                Ok(Outcome::Done)
            }
        }
    }
}

/// Disables an endpoint and tells its owner (and its department) on the bus.
pub async fn disable(
    conn: &mut PgConnection,
    endpoint: &store::Endpoint,
    cause: &str,
    reason: &str,
    failing_since: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    store::set_state(conn, endpoint.id, "disabled", reason).await?;
    let payload = WebhookEndpointDisabled {
        endpoint_id: endpoint.id.to_string(),
        department: endpoint.department.clone(),
        owner: endpoint.owner.clone(),
        cause: cause.to_owned(),
        reason: reason.to_owned(),
        failing_since: failing_since.map(timestamp),
        disabled_at: Some(timestamp(Utc::now())),
    };
    // The endpoint's version: one per disabling is enough to order them.
    let event = new_event(
        SERVICE,
        endpoint.id.to_string(),
        u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0),
        service_actor(SERVICE),
        payload,
    );
    outbox::enqueue(conn, &[OutboxMessage::event(&event)]).await
}
