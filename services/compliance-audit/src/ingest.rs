//! Every message of every logged stream, appended to the log once.
//!
//! One raw durable consumer per stream (NATS 2.9 has no multi-filter consumers), reading the
//! bytes exactly as published. The log's unique entry key is the inbox: an event's id, or for
//! a dead letter its `Nats-Msg-Id` (`dlq:<consumer>:<sequence>`) — a dead letter repeats the
//! event's id, and the same event dead-lettered by two consumers is two entries.

use prost::Message as _;
use redress_proto::{
    audit::v1::{DeadLetterLeaf, Header},
    bus::{self, StreamSpec, headers},
    events::v1::Event,
};
use redress_runtime::{Consumer, Delivery, HandleError, consumer::Handler};
use sqlx::PgConnection;

use std::sync::Arc;

use crate::{
    store::{self, NewEntry},
    violations::Judge,
};

/// The streams the log reads. The two submission streams are work queues holding raw
/// personal data, consumed by intake alone; what intake registers from them is logged as
/// `complaint_received` or `complaint_rejected`.
pub fn logged_streams() -> Vec<StreamSpec> {
    bus::ALL_STREAMS
        .iter()
        .copied()
        .filter(|s| s.retention == bus::Retention::Limits)
        .collect()
}

/// The log's own checkpoint events are not entries: each would make the next one necessary.
pub const CHECKPOINT_SUBJECT: &str = "redress.audit.v1.checkpoint";

/// One consumer per logged stream; with `judge`, each new event is judged by the rules in
/// the transaction that logs it.
pub fn consumers(judge: Option<Arc<Judge>>) -> Vec<Consumer> {
    logged_streams()
        .into_iter()
        .map(|stream| {
            let name = durable_name(stream);
            let filter = stream.subjects.first().copied().unwrap_or(">");
            let append = Append {
                stream,
                judge: judge.clone(),
            };
            Consumer::raw(name, stream, filter, append).without_inbox()
        })
        .collect()
}

/// The durable consumer that logs a stream.
pub fn durable_name(stream: StreamSpec) -> String {
    format!("compliance-audit-log-{}", stream.name.to_lowercase())
}

struct Append {
    stream: StreamSpec,
    judge: Option<Arc<Judge>>,
}

impl Handler for Append {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        // (A raw consumer does not ask `wants`: the skip is here.)
        if delivery.subject == CHECKPOINT_SUBJECT {
            return Ok(());
        }
        let entry = entry(self.stream, delivery);
        let fresh = store::append(conn, &[entry]).await.map_err(|e| match e {
            store::StoreError::Database(e) => HandleError::Database(e),
            other => HandleError::Transient(other.to_string()),
        })?;
        if let (Some(judge), 1) = (&self.judge, fresh)
            && self.stream.name != bus::DLQ.name
            && let Ok(event) = Event::decode(delivery.payload.as_ref())
            && event.payload.is_some()
        {
            judge.logged(conn, &event).await?;
        }
        Ok(())
    }
}

/// What is logged of one message.
pub fn entry(stream: StreamSpec, delivery: &Delivery) -> NewEntry {
    let is_dead_letter = stream.name == bus::DLQ.name;
    let event = if is_dead_letter {
        None
    } else {
        Event::decode(delivery.payload.as_ref())
            .ok()
            .filter(|e| !e.id.is_empty())
    };
    let sequence_key = || format!("seq:{}:{}", stream.name, delivery.stream_sequence);
    let entry_key = match (&event, is_dead_letter) {
        (Some(event), _) => event.id.clone(),
        (None, _) => delivery
            .header(headers::MSG_ID)
            .map_or_else(sequence_key, str::to_owned),
    };
    let leaf = if is_dead_letter {
        dead_letter_leaf(delivery)
    } else {
        delivery.payload.to_vec()
    };
    let (case_id, complaint_id) = event.as_ref().map(about).unwrap_or_default();
    NewEntry {
        entry_key,
        stream: stream.name.to_owned(),
        subject: delivery.subject.clone(),
        stream_sequence: i64::try_from(delivery.stream_sequence).unwrap_or(i64::MAX),
        event_type: delivery
            .header(headers::EVENT_TYPE)
            .unwrap_or_default()
            .to_owned(),
        case_id,
        complaint_id,
        leaf,
    }
}

/// A dead letter's leaf: subject, headers sorted by name (then value), body.
fn dead_letter_leaf(delivery: &Delivery) -> Vec<u8> {
    let mut pairs: Vec<Header> = delivery
        .headers
        .iter()
        .flat_map(|(name, values)| {
            values.iter().map(move |value| Header {
                name: name.to_string(),
                value: value.as_str().to_owned(),
            })
        })
        .collect();
    pairs.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
    DeadLetterLeaf {
        subject: delivery.subject.clone(),
        headers: pairs,
        body: delivery.payload.to_vec(),
    }
    .encode_to_vec()
}

/// The case and complaint an event is about, from its payload's `caseId`/`complaintId`
/// fields wherever the payload nests them (a case header, a notice header, a summary).
pub fn about(event: &Event) -> (Option<String>, Option<String>) {
    let Ok(serde_json::Value::Object(json)) = serde_json::to_value(event) else {
        return (None, None);
    };
    // The envelope's own fields; the one other key is the payload.
    const ENVELOPE: [&str; 6] = [
        "id",
        "occurredAt",
        "source",
        "aggregateId",
        "aggregateVersion",
        "actor",
    ];
    let payload = json
        .into_iter()
        .find(|(k, _)| !ENVELOPE.contains(&k.as_str()))
        .map(|(_, v)| v);
    let find = |key: &str| payload.as_ref().and_then(|p| find_key(p, key, 3));
    let complaint = find("complaintId").or_else(|| {
        event
            .payload
            .as_ref()
            .filter(|p| p.event_type().starts_with("complaint") || p.event_type() == "contact_read")
            .map(|_| event.aggregate_id.clone())
    });
    (find("caseId"), complaint)
}

fn find_key(value: &serde_json::Value, key: &str, depth: u8) -> Option<String> {
    let object = value.as_object()?;
    if let Some(found) = object
        .get(key)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        return Some(found.to_owned());
    }
    if depth == 0 {
        return None;
    }
    object.values().find_map(|v| find_key(v, key, depth - 1))
}
