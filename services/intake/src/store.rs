//! Reading complaints back: the redacted view, lists with cursor paging, sealed contact
//! details (every read audited), and re-sealing under a new key.

use chrono::{DateTime, Utc};
use redress_proto::{
    common::v1::{Actor, Channel, Money},
    events::v1::{ComplaintSummary, ContactRead},
    intake::v1::{Contact, ContactMethod},
};
use redress_runtime::{
    OutboxMessage,
    event::{new_event, timestamp},
    paging::{self, Page, Pager},
};
use sqlx::{PgConnection, PgPool, Row, postgres::PgRow};
use uuid::Uuid;

use crate::{
    SERVICE,
    register::SealedRecord,
    vault::{Sealed, Vault, VaultError},
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    PageToken(#[from] paging::BadPageToken),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

const COLUMNS: &str = "id, reference, channel, channel_ref, kind, received_at, registered_at, \
    consumer_ref, vulnerability, preferred_contact, language, product, title, description, \
    desired_resolution, amount_currency, amount_units, amount_nanos, attachments, regulator_ref, \
    incident_at, locale, recent_complaints";

/// By complaint id or reference number.
pub async fn get(
    pool: &PgPool,
    id_or_reference: &str,
) -> Result<Option<ComplaintSummary>, StoreError> {
    let row = match Uuid::parse_str(id_or_reference) {
        Ok(id) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM complaints WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?
        }
        Err(_) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM complaints WHERE reference = $1"
            )))
            .bind(id_or_reference)
            .fetch_optional(pool)
            .await?
        }
    };
    row.map(|r| complaint(&r)).transpose()
}

#[derive(Debug, Default)]
pub struct Filter {
    pub channel: Option<Channel>,
    pub consumer_ref: Option<String>,
    pub received_after: Option<DateTime<Utc>>,
    pub received_before: Option<DateTime<Utc>>,
}

/// Newest first; `page_token` continues after the last item of the previous page.
pub async fn list(
    pool: &PgPool,
    pager: &Pager,
    filter: &Filter,
    page_size: u32,
    page_token: &str,
) -> Result<Page<ComplaintSummary>, StoreError> {
    let size = paging::page_size(page_size);
    let cursor = pager.decode(page_token)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM complaints \
         WHERE ($1::text IS NULL OR channel = $1) \
           AND ($2::text IS NULL OR consumer_ref = $2) \
           AND ($3::timestamptz IS NULL OR received_at >= $3) \
           AND ($4::timestamptz IS NULL OR received_at < $4) \
           AND ($5::timestamptz IS NULL OR (received_at, id) < ($5, $6)) \
         ORDER BY received_at DESC, id DESC LIMIT $7"
    )))
    .bind(filter.channel.map(Channel::token))
    .bind(filter.consumer_ref.as_deref())
    .bind(filter.received_after)
    .bind(filter.received_before)
    .bind(cursor.map(|c| c.0))
    .bind(cursor.map(|c| c.1))
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let complaints = rows.iter().map(complaint).collect::<Result<Vec<_>, _>>()?;
    let page = pager.page(
        complaints,
        size,
        |c| {
            (
                c.received_at
                    .as_ref()
                    .and_then(redress_runtime::event::from_timestamp)
                    .unwrap_or_default(),
                Uuid::parse_str(&c.complaint_id).unwrap_or_default(),
            )
        },
        |c| c,
    );
    Ok(page)
}

fn complaint(row: &PgRow) -> Result<ComplaintSummary, StoreError> {
    let currency: Option<String> = row.try_get("amount_currency")?;
    let amount = match currency {
        Some(currency_code) => Some(Money {
            currency_code,
            units: row.try_get::<Option<i64>, _>("amount_units")?.unwrap_or(0),
            nanos: row.try_get::<Option<i32>, _>("amount_nanos")?.unwrap_or(0),
        }),
        None => None,
    };
    let channel: String = row.try_get("channel")?;
    let preferred: i32 = row.try_get("preferred_contact")?;
    let recent: i32 = row.try_get("recent_complaints")?;
    Ok(ComplaintSummary {
        complaint_id: row.try_get::<Uuid, _>("id")?.to_string(),
        reference: row.try_get("reference")?,
        channel: Channel::from_token(&channel)
            .map(|c| c as i32)
            .unwrap_or_default(),
        channel_ref: row.try_get("channel_ref")?,
        kind: row.try_get("kind")?,
        received_at: Some(timestamp(row.try_get("received_at")?)),
        registered_at: Some(timestamp(row.try_get("registered_at")?)),
        consumer_ref: row.try_get("consumer_ref")?,
        vulnerability: serde_json::from_value(row.try_get("vulnerability")?).ok(),
        preferred_contact: ContactMethod::try_from(preferred)
            .unwrap_or_default()
            .as_str_name()
            .to_owned(),
        language: row.try_get("language")?,
        product: row.try_get("product")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        desired_resolution: row.try_get("desired_resolution")?,
        amount_in_dispute: amount,
        attachments: serde_json::from_value(row.try_get("attachments")?)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        regulator_ref: row.try_get("regulator_ref")?,
        incident_at: row
            .try_get::<Option<DateTime<Utc>>, _>("incident_at")?
            .map(timestamp),
        locale: row.try_get("locale")?,
        recent_complaints: u32::try_from(recent).unwrap_or(0),
    })
}

/// Opens a complaint's contact details and records who read them and why, in one
/// transaction with the `contact_read` event: no audit, no read.
pub async fn read_contact(
    pool: &PgPool,
    vault: &Vault,
    complaint_id: Uuid,
    reader: Actor,
    purpose: &str,
) -> Result<Option<Contact>, StoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, Vec<u8>, i32, String)> = sqlx::query_as(
        "SELECT key_id, sealed, preferred_contact, language FROM complaints WHERE id = $1",
    )
    .bind(complaint_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((key_id, bytes, preferred_contact, language)) = row else {
        return Ok(None);
    };
    let opened = vault.open(&Sealed { key_id, bytes }, &complaint_id.to_string())?;
    let record: SealedRecord = serde_json::from_slice(&opened).map_err(|e| {
        StoreError::Corrupt(format!("complaint {complaint_id}: sealed record: {e}"))
    })?;
    audit_read(&mut tx, complaint_id, &reader, purpose).await?;
    tx.commit().await?;
    let c = record.contact;
    Ok(Some(Contact {
        complaint_id: complaint_id.to_string(),
        name: c.name,
        phone: c.phone,
        email: c.email,
        id_number: c.id_number,
        customer_id: c.customer_id,
        address: c.address,
        preferred_contact,
        language,
    }))
}

async fn audit_read(
    conn: &mut PgConnection,
    complaint_id: Uuid,
    reader: &Actor,
    purpose: &str,
) -> Result<(), sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO contact_reads (id, complaint_id, reader, role, purpose) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(complaint_id)
        .bind(&reader.subject)
        .bind(&reader.role)
        .bind(purpose)
        .execute(&mut *conn)
        .await?;
    let event = new_event(
        SERVICE,
        complaint_id.to_string(),
        0,
        reader.clone(),
        ContactRead {
            complaint_id: complaint_id.to_string(),
            reader: Some(reader.clone()),
            purpose: purpose.to_owned(),
        },
    );
    redress_runtime::outbox::enqueue(conn, &[OutboxMessage::event(&event)]).await
}

/// Re-seals every value not under the active key, in batches; returns how many changed.
pub async fn rotate_keys(pool: &PgPool, vault: &Vault) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let rows: Vec<(Uuid, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, key_id, sealed FROM complaints WHERE key_id <> $1 LIMIT 500 FOR UPDATE SKIP LOCKED",
        )
        .bind(vault.active_key())
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(total);
        }
        for (id, key_id, bytes) in rows {
            let record = id.to_string();
            let plain = vault.open(&Sealed { key_id, bytes }, &record)?;
            let sealed = vault.seal(&plain, &record);
            sqlx::query("UPDATE complaints SET key_id = $2, sealed = $3 WHERE id = $1")
                .bind(id)
                .bind(&sealed.key_id)
                .bind(&sealed.bytes)
                .execute(&mut *tx)
                .await?;
            total += 1;
        }
        tx.commit().await?;
    }
}
