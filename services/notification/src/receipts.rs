//! SMS delivery receipts: pushed by the providers to an HTTP callback, or asked for when one is
//! missing (due work on queue `sms-receipts`). Either way a receipt is stored once per
//! (provider, message id, status) and applied to its delivery — now, or when the send is
//! recorded if the receipt came first: `delivered` moves the delivery to delivered and raises
//! `redress.notification.v1.delivered`; a carrier's failure makes it a final failure and a
//! specialist's task (another channel, or a letter).

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{StatusCode, Uri},
    routing::post,
};
use chrono::{DateTime, FixedOffset, Utc};
use redress_outbound::sms::{Receipt, ReceiptStatus, aliyun, tencent};
use redress_proto::events::v1::{NoticeChannel, NotificationDelivered, NotificationFailed};
use redress_runtime::{
    event::timestamp,
    jobs::{Job, JobError, JobHandler, Outcome},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Shared, deliver::publish, sms, store};

/// How long after a send the providers are asked for a missing receipt; after that the
/// delivery keeps `sent` (the Art. 21 proof is of sending) and its history says no receipt
/// came. Aliyun keeps send details queryable for 30 days; carriers report within 72 hours.
const ASK_FOR: chrono::Duration = chrono::Duration::hours(72);

/// What `Tencent::pull_send_status` takes per call (its documented maximum is 100).
const PULL_LIMIT: u32 = 100;

fn status_token(status: ReceiptStatus) -> &'static str {
    match status {
        ReceiptStatus::Delivered => "delivered",
        ReceiptStatus::Failed => "failed",
        ReceiptStatus::Pending => "pending",
    }
}

/// Stores a receipt (once) and applies it if its send is recorded; whether it was new.
pub async fn ingest(
    conn: &mut PgConnection,
    receipt: &Receipt,
    source: &str,
) -> Result<bool, sqlx::Error> {
    let provider = receipt.provider.to_string();
    store::lock_message(conn, &provider, &receipt.message_id).await?;
    let stored = store::StoredReceipt {
        provider: &provider,
        message_id: &receipt.message_id,
        status: status_token(receipt.status),
        code: &receipt.code,
        description: &receipt.description,
        reported_at: receipt.reported_at.map(|t| t.with_timezone(&Utc)),
        source,
    };
    let new = store::insert_receipt(conn, &stored).await?;
    if new {
        apply(conn, &provider, &receipt.message_id).await?;
    }
    Ok(new)
}

/// Applies the message's receipts not applied yet, if its send is recorded. Called under
/// [`store::lock_message`], after storing a receipt and after recording a send.
pub async fn apply(
    conn: &mut PgConnection,
    provider: &str,
    message_id: &str,
) -> Result<(), sqlx::Error> {
    let Some(id) = store::delivery_of_message(conn, provider, message_id).await? else {
        return Ok(());
    };
    let Some(delivery) = store::load(conn, id).await? else {
        return Ok(());
    };
    let mut state = delivery.state.clone();
    for (status, code, reported_at, source) in
        store::unapplied_receipts(conn, provider, message_id).await?
    {
        let at = reported_at.map_or_else(|| "time not reported".into(), |t| t.to_rfc3339());
        let detail = format!("{provider} {code} at {at} ({source})");
        match (state.as_str(), status.as_str()) {
            ("sent", "delivered") => {
                store::mark_delivered(conn, id, &detail).await?;
                let event = NotificationDelivered {
                    header: Some(delivery.header(NoticeChannel::Sms)),
                    provider: provider.to_owned(),
                    provider_message_id: message_id.to_owned(),
                    delivered_at: Some(timestamp(reported_at.unwrap_or_else(Utc::now))),
                };
                publish(conn, &delivery, 3, event).await?;
                "delivered".clone_into(&mut state);
            }
            ("sent", "failed") => {
                let reason = format!("the carrier did not deliver it: {detail}");
                store::mark_failed(conn, id, &reason, false).await?;
                let event = NotificationFailed {
                    header: Some(delivery.header(NoticeChannel::Sms)),
                    provider: provider.to_owned(),
                    reason,
                    attempts: u32::try_from(store::attempts(conn, id).await?).unwrap_or(0),
                    r#final: true,
                    in_doubt: false,
                };
                publish(conn, &delivery, 3, event).await?;
                "failed".clone_into(&mut state);
            }
            // Pending, or a report that comes after the outcome is known: kept, changes nothing.
            _ => store::add_status(conn, id, &format!("receipt_{status}"), &detail).await?,
        }
        store::mark_receipt_applied(conn, provider, message_id, &status).await?;
    }
    Ok(())
}

/// After a send is recorded (in its transaction): applies receipts that came first and asks
/// the provider later if none comes.
pub async fn after_send(
    conn: &mut PgConnection,
    delivery_id: Uuid,
    provider: &str,
    message_id: &str,
    gap: std::time::Duration,
) -> Result<(), sqlx::Error> {
    store::lock_message(conn, provider, message_id).await?;
    apply(conn, provider, message_id).await?;
    let due = Utc::now() + chrono::Duration::from_std(gap).unwrap_or(ASK_FOR);
    redress_runtime::jobs::schedule(
        conn,
        &[redress_runtime::jobs::NewJob::new(
            store::RECEIPT_POLL,
            delivery_id.to_string(),
            due,
        )],
    )
    .await
}

/// The HTTP callback the providers push receipts to.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/sms/receipts/{provider}", post(pushed))
        .with_state(shared)
}

async fn pushed(
    State(shared): State<Arc<Shared>>,
    Path(provider): Path<String>,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, String) {
    let Some(sms) = &shared.sms else {
        return (StatusCode::NOT_FOUND, "no SMS providers".into());
    };
    if let Some(token) = &sms.receipts_token {
        let given = uri
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            return (StatusCode::FORBIDDEN, "token: missing or wrong".into());
        }
    }
    let (parsed, ack) = match provider.as_str() {
        "aliyun" => (aliyun::parse_report(&body), aliyun::REPORT_ACK),
        "tencent" => (tencent::parse_callback(&body), tencent::CALLBACK_ACK),
        other => {
            return (
                StatusCode::NOT_FOUND,
                format!("provider: unknown `{other}`"),
            );
        }
    };
    let receipts = match parsed {
        Ok(receipts) => receipts,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
    };
    match store_all(&shared, &receipts, "push").await {
        Ok(()) => (StatusCode::OK, ack.to_owned()),
        // Not acknowledged: the provider pushes again.
        Err(e) => {
            tracing::warn!(error = %e, %provider, "receipts not stored");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not stored, push again".into(),
            )
        }
    }
}

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn store_all(shared: &Shared, receipts: &[Receipt], source: &str) -> Result<(), sqlx::Error> {
    let mut tx = shared.db.pool().begin().await?;
    for receipt in receipts {
        ingest(&mut tx, receipt, source).await?;
    }
    tx.commit().await
}

/// Due work: asks the provider for the receipt of a send none came for.
pub struct Poll {
    pub shared: Arc<Shared>,
}

impl JobHandler for Poll {
    async fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<Outcome, JobError> {
        let id = Uuid::parse_str(&job.key).map_err(|e| JobError::Permanent(e.to_string()))?;
        let Some(sms) = &self.shared.sms else {
            return Ok(Outcome::Done);
        };
        let Some((provider, message_id, sent_at)) = store::sent_via(conn, id).await? else {
            return Ok(Outcome::Done);
        };
        if !still_sent(conn, id).await? {
            return Ok(Outcome::Done);
        }
        let receipts = match provider.as_str() {
            "aliyun" => {
                self.query_aliyun(sms, conn, id, &message_id, sent_at)
                    .await?
            }
            "tencent" => match &sms.tencent {
                Some(t) => t
                    .pull_send_status(PULL_LIMIT)
                    .await
                    .map_err(|e| JobError::Retry(e.to_string()))?,
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        // Tencent hands each status out once: they are stored in this transaction, whatever
        // message they belong to.
        for receipt in &receipts {
            ingest(conn, receipt, "query").await?;
        }
        if !still_sent(conn, id).await? {
            return Ok(Outcome::Done);
        }
        let now = Utc::now();
        if now - sent_at >= ASK_FOR {
            store::add_status(conn, id, "no_receipt", "the provider reported nothing").await?;
            return Ok(Outcome::Done);
        }
        // Ask again after as long again as it has been, at least the configured gap.
        let gap = chrono::Duration::from_std(sms.receipt_gap).unwrap_or(ASK_FOR);
        Ok(Outcome::Later(now + (now - sent_at).max(gap)))
    }
}

impl Poll {
    async fn query_aliyun(
        &self,
        sms: &sms::Sms,
        conn: &mut PgConnection,
        id: Uuid,
        message_id: &str,
        sent_at: DateTime<Utc>,
    ) -> Result<Vec<Receipt>, JobError> {
        let Some(client) = &sms.aliyun else {
            return Ok(Vec::new());
        };
        let Some(delivery) = store::load(conn, id).await? else {
            return Ok(Vec::new());
        };
        // Aliyun's query wants the number: read again from intake, for this purpose only.
        let contact = self
            .shared
            .contacts
            .get(&delivery.complaint_id, "query SMS delivery status")
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let Some(phone) = sms::phone(&contact.phone) else {
            return Ok(Vec::new());
        };
        drop(contact);
        // SendDate is the day in China Standard Time.
        let cst = FixedOffset::east_opt(8 * 3600)
            .ok_or_else(|| JobError::Permanent("UTC+8 is a valid offset".into()))?;
        let day = sent_at.with_timezone(&cst).date_naive();
        client
            .query_send_details(&phone, message_id, day)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))
    }
}

async fn still_sent(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(store::load(conn, id)
        .await?
        .is_some_and(|d| d.state == "sent"))
}
