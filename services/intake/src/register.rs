//! Registration: one submission in, one outcome out, inside the caller's transaction.
//!
//! Every path a complaint can arrive by — a request on the bus, the INTAKE stream, gRPC —
//! ends here, so the rules are applied once: decode, look up `channel:channelRef` (a resend
//! returns the first receipt and creates nothing), validate, then store the record with its
//! personal data sealed and put `received` (and perhaps `duplicate_suspected`) in the outbox.

use chrono::{DateTime, Utc};
use prost::Message as _;
use redress_proto::{
    Violations,
    common::v1::Channel,
    events::v1::{
        AttachmentRef, ComplaintReceived, ComplaintRejected, ComplaintSummary, DuplicateSuspected,
        FieldViolation,
    },
    intake::v1::{ComplaintSubmission, SubmissionReceipt},
    vocab::{TextKind, check_text},
};
use redress_runtime::{
    OutboxMessage,
    event::{new_event, service_actor, timestamp},
};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    SERVICE,
    config::Settings,
    domain::{
        Registration,
        redact::{Known, redact},
        similarity, validate,
        validate::{Rules, code, limits},
    },
    vault::Vault,
};

/// How a submission reached intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A core NATS request: someone waits for the receipt.
    Request,
    /// The INTAKE stream's durable copy.
    Stream,
    Grpc,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Request => "request",
            Origin::Stream => "stream",
            Origin::Grpc => "grpc",
        }
    }
}

/// One submission as it arrived.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub payload: &'a [u8],
    pub json: bool,
    /// The `<channel>` token of the subject it was published on (None through gRPC).
    pub subject_channel: Option<&'a str>,
    pub origin: Origin,
    /// When intake first saw it.
    pub arrived_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Registered(SubmissionReceipt),
    /// `channel:channelRef` was registered before: the first receipt, marked duplicate.
    Duplicate(SubmissionReceipt),
    Rejected(Vec<FieldViolation>),
}

/// What registration needs besides the transaction.
pub struct Context<'a> {
    pub vault: &'a Vault,
    pub settings: &'a Settings,
    pub now: DateTime<Utc>,
    /// For reference numbers, taken outside the registration's transaction on a pool of their
    /// own (see [`next_reference`]).
    pub pool: &'a sqlx::PgPool,
}

pub async fn register(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    incoming: Incoming<'_>,
) -> Result<Outcome, sqlx::Error> {
    let digest = Sha256::digest(incoming.payload).to_vec();
    let decoded = decode(&incoming);
    let channel_token = incoming
        .subject_channel
        .map(str::to_owned)
        .or_else(|| decoded.as_ref().ok().map(|s| token_of(s.channel)))
        .unwrap_or_else(|| "unknown".to_owned());
    // Kept beside rejections and used as a key: only once it is known to be plain text.
    let channel_token = subject_token(&channel_token);
    let submission = match decoded {
        Ok(submission) => submission,
        Err(violations) => {
            return reject(conn, &channel_token, "", &digest, violations, ctx.now).await;
        }
    };
    let channel_ref = submission.channel_ref.trim().to_owned();
    let channel_ref = if check_text(
        "channelRef",
        &channel_ref,
        limits::SHORT_CHARS,
        TextKind::Line,
    )
    .is_ok()
    {
        channel_ref
    } else {
        String::new()
    };

    if !channel_ref.is_empty()
        && let Some(existing) = find(conn, &channel_token, &channel_ref).await?
    {
        return Ok(existing.outcome(&incoming, &digest));
    }
    let rules = Rules {
        max_backdate: ctx.settings.max_backdate(),
    };
    let registration = match validate(submission, incoming.subject_channel, ctx.now, rules) {
        Ok(registration) => registration,
        Err(violations) => {
            // A refused channelRef (personal data, odd characters) is not repeated anywhere.
            let channel_ref = if violations.0.iter().any(|v| v.field == "channelRef") {
                ""
            } else {
                channel_ref.as_str()
            };
            return reject(
                conn,
                &channel_token,
                channel_ref,
                &digest,
                violations,
                ctx.now,
            )
            .await;
        }
    };
    insert(conn, ctx, registration, &channel_token, &digest, &incoming).await
}

fn decode(incoming: &Incoming<'_>) -> Result<ComplaintSubmission, Violations> {
    if incoming.payload.len() > limits::MESSAGE_BYTES {
        return Err(Violations::one(
            "",
            code::TOO_LARGE,
            format!(
                "{} bytes; a submission is at most {} bytes",
                incoming.payload.len(),
                limits::MESSAGE_BYTES
            ),
        ));
    }
    if incoming.json {
        let mut deserializer = serde_json::Deserializer::from_slice(incoming.payload);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            Violations::one(&field, code::UNDECODABLE, json_reason(e.inner()))
        })
    } else {
        ComplaintSubmission::decode(incoming.payload)
            .map_err(|e| Violations::one(&protobuf_field(&e), code::UNDECODABLE, e.to_string()))
    }
}

/// What was wrong with a JSON value, without the value: serde's messages quote what they
/// refuse ("invalid type: string \"王小二 138…\", expected …"), and a refused value may be
/// personal data. Only serde's expectation is kept, which names types, never input.
fn json_reason(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof => format!(
            "not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ),
        Category::Io => "could not be read".to_owned(),
        Category::Data => {
            let text = error.to_string();
            let expected = text
                .split_once(", expected ")
                .map(|(_, rest)| rest.split(" at line ").next().unwrap_or_default())
                .filter(|e| !e.contains('"'));
            match expected {
                Some(expected) => format!("wrong type or value; expected {expected}"),
                None if text.starts_with("unknown field") => "not a field of the contract".into(),
                None if text.starts_with("missing field") => "a required field is missing".into(),
                None => "wrong type or value".into(),
            }
        }
    }
}

/// prost names the failing field as `Message.field_name`: give it as a proto3 JSON name.
fn protobuf_field(error: &prost::DecodeError) -> String {
    let text = error.to_string();
    let Some(rest) = text.strip_prefix("failed to decode Protobuf message: ") else {
        return String::new();
    };
    let path = rest.split(':').next().unwrap_or_default();
    path.split('.')
        .skip(1)
        .map(camel_case)
        .collect::<Vec<_>>()
        .join(".")
}

fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn token_of(channel: i32) -> String {
    Channel::try_from(channel)
        .map(Channel::token)
        .unwrap_or("unknown")
        .to_owned()
}

struct Existing {
    receipt: SubmissionReceipt,
    origin: String,
    digest: Vec<u8>,
    registered_at: DateTime<Utc>,
}

impl Existing {
    /// Both paths see every request (JetStream keeps no reply subject). The stream's copy
    /// waits out the request grace, so the request path normally registers first; if it was
    /// slower than that, it finds its own copy — same bytes, registered by the stream path
    /// after the request arrived — and that is the first submission, not a duplicate. A
    /// resend always arrives after its first submission was registered.
    fn outcome(self, incoming: &Incoming<'_>, digest: &[u8]) -> Outcome {
        let own_stream_copy = incoming.origin == Origin::Request
            && self.origin == Origin::Stream.as_str()
            && self.digest == digest
            && self.registered_at >= incoming.arrived_at;
        let mut receipt = self.receipt;
        if own_stream_copy {
            Outcome::Registered(receipt)
        } else {
            receipt.duplicate = true;
            Outcome::Duplicate(receipt)
        }
    }
}

#[derive(sqlx::FromRow)]
struct ExistingRow {
    id: Uuid,
    reference: String,
    registered_at: DateTime<Utc>,
    origin: String,
    digest: Vec<u8>,
}

async fn find(
    conn: &mut PgConnection,
    channel: &str,
    channel_ref: &str,
) -> Result<Option<Existing>, sqlx::Error> {
    let row: Option<ExistingRow> = sqlx::query_as(
        "SELECT id, reference, registered_at, origin, digest FROM complaints \
         WHERE channel = $1 AND channel_ref = $2",
    )
    .bind(channel)
    .bind(channel_ref)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Existing {
        receipt: SubmissionReceipt {
            complaint_id: r.id.to_string(),
            reference: r.reference,
            registered_at: Some(timestamp(r.registered_at)),
            duplicate: false,
        },
        origin: r.origin,
        digest: r.digest,
        registered_at: r.registered_at,
    }))
}

async fn reject(
    conn: &mut PgConnection,
    channel: &str,
    channel_ref: &str,
    digest: &[u8],
    violations: Violations,
    now: DateTime<Utc>,
) -> Result<Outcome, sqlx::Error> {
    let id = Uuid::now_v7();
    let recorded = sqlx::query(
        "INSERT INTO rejections (id, digest, channel, channel_ref, violations, rejected_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO NOTHING",
    )
    .bind(id)
    .bind(digest)
    .bind(channel)
    .bind(channel_ref)
    .bind(sqlx::types::Json(&violations.0))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if recorded.rows_affected() == 0 {
        // The same message was refused before (its request and its stream copy): say so
        // again to whoever asks, but publish the rejection once.
        return Ok(Outcome::Rejected(violations.0));
    }
    let event = new_event(
        SERVICE,
        format!("{channel}:{channel_ref}"),
        1,
        service_actor(SERVICE),
        ComplaintRejected {
            channel: Channel::from_token(channel)
                .map(|c| c as i32)
                .unwrap_or_default(),
            channel_ref: channel_ref.to_owned(),
            violations: violations.0.clone(),
        },
    );
    redress_runtime::outbox::enqueue(conn, &[OutboxMessage::event(&event)]).await?;
    let fields: Vec<String> = violations
        .0
        .iter()
        .map(|v| format!("{}:{}", v.field, v.code))
        .collect();
    tracing::info!(channel, channel_ref, violations = ?fields, "submission rejected");
    Ok(Outcome::Rejected(violations.0))
}

/// A subject token must not contain wildcards or separators, whatever a publisher sent.
fn subject_token(token: &str) -> String {
    token
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// Long on purpose: one statement with a bind per column, then the event that carries the same
// fields; splitting it would only pass the same two dozen values through another signature.
async fn insert(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    r: Registration,
    channel: &str,
    digest: &[u8],
    incoming: &Incoming<'_>,
) -> Result<Outcome, sqlx::Error> {
    let id = Uuid::now_v7();
    let reference = next_reference(ctx).await?;
    let known = Known::of(&r.contact);
    let description = redact(&r.description, &known);
    let title = redact(&r.title, &known);
    let desired_resolution = redact(&r.desired_resolution, &known);
    let consumer_ref = ctx.vault.consumer_ref(&strongest_identifier(&r));
    let sealed = ctx.vault.seal(&sealed_record(&r), &id.to_string());

    let earlier = recent(
        conn,
        &consumer_ref,
        r.received_at,
        ctx.settings.duplicate_window_days,
    )
    .await?;
    let attachments: Vec<AttachmentRef> = r
        .attachments
        .iter()
        .map(|a| AttachmentRef {
            uri: a.uri.clone(),
            sha256: a.sha256.clone(),
            media_type: a.media_type.clone(),
            size_bytes: a.size_bytes,
        })
        .collect();

    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO complaints (id, reference, channel, channel_ref, kind, received_at, registered_at, \
           consumer_ref, vulnerability, preferred_contact, language, product, title, description, \
           desired_resolution, amount_currency, amount_units, amount_nanos, attachments, regulator_ref, \
           incident_at, locale, recent_complaints, digest, origin, key_id, sealed) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27) \
         ON CONFLICT (channel, channel_ref) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(&reference)
    .bind(channel)
    .bind(&r.channel_ref)
    .bind(r.kind as i32)
    .bind(r.received_at)
    .bind(ctx.now)
    .bind(&consumer_ref)
    .bind(sqlx::types::Json(&r.vulnerability))
    .bind(r.preferred_contact as i32)
    .bind(&r.language)
    .bind(&r.product)
    .bind(&title)
    .bind(&description)
    .bind(&desired_resolution)
    .bind(r.amount.as_ref().map(|m| m.currency_code.clone()))
    .bind(r.amount.as_ref().map(|m| m.units))
    .bind(r.amount.as_ref().map(|m| m.nanos))
    .bind(sqlx::types::Json(&attachments))
    .bind(&r.regulator_ref)
    .bind(r.incident_at)
    .bind(&r.locale)
    .bind(earlier.len() as i32)
    .bind(digest)
    .bind(incoming.origin.as_str())
    .bind(&sealed.key_id)
    .bind(&sealed.bytes)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        // Another path registered the same channel:channelRef a moment ago.
        return Ok(match find(conn, channel, &r.channel_ref).await? {
            Some(existing) => existing.outcome(incoming, digest),
            None => Outcome::Rejected(
                Violations::one(
                    "channelRef",
                    code::MISMATCH,
                    "registered concurrently; resend",
                )
                .0,
            ),
        });
    }

    let receipt = SubmissionReceipt {
        complaint_id: id.to_string(),
        reference: reference.clone(),
        registered_at: Some(timestamp(ctx.now)),
        duplicate: false,
    };
    let summary = ComplaintSummary {
        complaint_id: id.to_string(),
        reference,
        channel: r.channel as i32,
        channel_ref: r.channel_ref.clone(),
        kind: r.kind as i32,
        received_at: Some(timestamp(r.received_at)),
        registered_at: Some(timestamp(ctx.now)),
        consumer_ref: consumer_ref.clone(),
        vulnerability: Some(r.vulnerability),
        preferred_contact: r.preferred_contact.as_str_name().to_owned(),
        language: r.language.clone(),
        product: r.product.clone(),
        title,
        description: description.clone(),
        desired_resolution,
        amount_in_dispute: r.amount.clone(),
        attachments,
        regulator_ref: r.regulator_ref.clone(),
        incident_at: r.incident_at.map(timestamp),
        locale: r.locale.clone(),
        recent_complaints: earlier.len() as u32,
    };
    let received = new_event(
        SERVICE,
        id.to_string(),
        1,
        service_actor(SERVICE),
        ComplaintReceived {
            complaint: Some(summary),
        },
    );
    let mut events = vec![OutboxMessage::event(&received)];
    if let Some(suspect) = closest(&description, &earlier, ctx.settings.similarity_threshold) {
        let event = new_event(
            SERVICE,
            id.to_string(),
            2,
            service_actor(SERVICE),
            DuplicateSuspected {
                complaint_id: id.to_string(),
                earlier_complaint_id: suspect.0.to_string(),
                earlier_reference: suspect.1,
                similarity: suspect.2,
                method: similarity::METHOD.to_owned(),
            },
        );
        events.push(OutboxMessage::event(&event));
    }
    redress_runtime::outbox::enqueue(conn, &events).await?;
    tracing::info!(complaint_id = %id, reference = %receipt.reference, channel, origin = incoming.origin.as_str(), "complaint registered");
    Ok(Outcome::Registered(receipt))
}

/// `RD-<yyyymmdd>-<nnnnnn>`: the business-day date and that day's sequence number.
///
/// The day's counter is one row: taken inside the registration's transaction it would hold
/// that row locked until commit and serialise every registration behind it. It is taken in
/// its own statement instead, so a registration that rolls back leaves a gap in the day's
/// numbers — unique, increasing, but not gap-free, like a database sequence.
async fn next_reference(ctx: &Context<'_>) -> Result<String, sqlx::Error> {
    let day = ctx.now.with_timezone(&ctx.settings.time_zone).date_naive();
    let n: i32 = sqlx::query_scalar(
        "INSERT INTO reference_days (day, last) VALUES ($1, 1) \
         ON CONFLICT (day) DO UPDATE SET last = reference_days.last + 1 RETURNING last",
    )
    .bind(day)
    .fetch_one(ctx.pool)
    .await?;
    Ok(format!("RD-{}-{n:06}", day.format("%Y%m%d")))
}

/// The identifier that best names one person: an ID number, then the platform's customer
/// id, then phone, e-mail and address. The same person reached through a weaker identifier
/// gets another pseudonym — a limit documented in the README.
fn strongest_identifier(r: &Registration) -> String {
    let c = &r.contact;
    [
        ("id", c.id_number.as_str()),
        ("customer", c.customer_id.as_str()),
        ("phone", c.phone.as_str()),
        ("email", &c.email.to_lowercase()),
        ("address", c.address.as_str()),
    ]
    .into_iter()
    .find(|(_, v)| !v.is_empty())
    .map(|(kind, v)| format!("{kind}:{v}"))
    .unwrap_or_default()
}

/// The sealed part of a record: contact details and the texts as the consumer wrote them.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub struct SealedRecord {
    pub contact: crate::domain::validate::Contact,
    pub title: String,
    pub description: String,
    pub desired_resolution: String,
}

fn sealed_record(r: &Registration) -> Vec<u8> {
    serde_json::to_vec(&SealedRecord {
        contact: r.contact.clone(),
        title: r.title.clone(),
        description: r.description.clone(),
        desired_resolution: r.desired_resolution.clone(),
    })
    .unwrap_or_default()
}

/// The same consumer's complaints received within the window before this one.
async fn recent(
    conn: &mut PgConnection,
    consumer_ref: &str,
    received_at: DateTime<Utc>,
    window_days: i64,
) -> Result<Vec<(Uuid, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, reference, description FROM complaints \
         WHERE consumer_ref = $1 AND received_at > $2 AND received_at <= $3 \
         ORDER BY received_at DESC LIMIT 50",
    )
    .bind(consumer_ref)
    .bind(received_at - chrono::Duration::days(window_days))
    .bind(received_at)
    .fetch_all(conn)
    .await
}

fn closest(
    description: &str,
    earlier: &[(Uuid, String, String)],
    threshold: f64,
) -> Option<(Uuid, String, f64)> {
    let mine = similarity::shingles(description);
    earlier
        .iter()
        .map(|(id, reference, text)| {
            (
                *id,
                reference.clone(),
                similarity::similarity(&mine, &similarity::shingles(text)),
            )
        })
        .filter(|(_, _, s)| *s >= threshold)
        .max_by(|a, b| a.2.total_cmp(&b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_decode_errors_name_the_field_in_json_form() {
        let mut bad = redress_proto::intake::v1::ComplaintSubmission {
            channel_ref: "x".into(),
            ..Default::default()
        }
        .encode_to_vec();
        // Corrupt the UTF-8 of channel_ref (field 2, length-delimited).
        if let Some(last) = bad.last_mut() {
            *last = 0xff;
        }
        let error = ComplaintSubmission::decode(bad.as_slice()).err();
        let field = error.as_ref().map(protobuf_field);
        assert_eq!(field.as_deref(), Some("channelRef"), "{error:?}");
        assert_eq!(camel_case("amount_in_dispute"), "amountInDispute");
    }

    #[test]
    fn rejection_subjects_cannot_carry_wildcards() {
        assert_eq!(subject_token("web"), "web");
        assert_eq!(subject_token("a.>*"), "a___");
    }
}
