//! Reconciliation: the streams compared with the log. Every message a logged stream holds must
//! have its entry (under the key ingest gives it), and every entry the log has from a stream's
//! retention window must be a message the stream holds. A gap is raised as a `log_gap`
//! violation and the whole report is published (`reconciliation.reported`): never silence.
//!
//! Each stream is read with an ordered pull consumer from its first sequence up to what the
//! log's own consumer of it had acknowledged when the check began (its ack floor): those are
//! committed to the log, later ones are on their way and are the next check's.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures::StreamExt as _;
use redress_proto::{
    bus::StreamSpec,
    events::v1::{ReconciliationReported, StreamReconciliation},
};
use redress_runtime::{
    Bus, Delivery, OutboxMessage, db::Database, event::service_actor, new_event, outbox,
};

use crate::{
    SERVICE,
    ingest::{CHECKPOINT_SUBJECT, durable_name, entry, logged_streams},
    rules::{Finding, Rules},
    violations::raise,
};

/// How long to wait for the next message of a stream before taking it as read.
const QUIET: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("stream {stream}: {reason}")]
    Bus { stream: String, reason: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a stream holds: its window and each message's sequence and entry key.
struct Held {
    first: u64,
    last: u64,
    keys: Vec<(u64, String)>,
}

async fn read(bus: &Bus, spec: StreamSpec) -> Result<Held, ReconcileError> {
    let fail = |reason: String| ReconcileError::Bus {
        stream: spec.name.to_owned(),
        reason,
    };
    let mut stream = bus
        .jetstream()
        .get_stream(bus.stream_name(spec.name))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let state = stream
        .info()
        .await
        .map_err(|e| fail(e.to_string()))?
        .state
        .clone();
    // What the log's consumer has acknowledged is committed to the log; above it messages
    // are on their way, not missing.
    let floor = stream
        .consumer_info(durable_name(spec))
        .await
        .map(|c| c.ack_floor.stream_sequence)
        .unwrap_or(0);
    let first = state.first_sequence;
    let last = state.last_sequence.min(floor);
    let mut held = Held {
        first,
        last,
        keys: Vec::new(),
    };
    if state.messages == 0 || last < first {
        return Ok(held);
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: first,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut messages = consumer.messages().await.map_err(|e| fail(e.to_string()))?;
    while let Ok(Some(message)) = tokio::time::timeout(QUIET, messages.next()).await {
        let message = message.map_err(|e| fail(e.to_string()))?;
        let Ok(info) = message.info() else { continue };
        let (sequence, published) = (info.stream_sequence, info.published);
        if sequence > last {
            break;
        }
        let delivery = Delivery {
            subject: bus.contract_subject(message.subject.as_str()).to_owned(),
            headers: message.headers.clone().unwrap_or_default(),
            payload: message.payload.clone(),
            attempt: 1,
            stream_sequence: sequence,
            published,
        };
        if delivery.subject != CHECKPOINT_SUBJECT {
            held.keys.push((sequence, entry(spec, &delivery).entry_key));
        }
        if sequence >= last {
            break;
        }
    }
    Ok(held)
}

/// One stream against the log.
async fn compare(
    conn: &mut sqlx::PgConnection,
    spec: StreamSpec,
    held: Held,
) -> Result<StreamReconciliation, sqlx::Error> {
    let keys: Vec<&str> = held.keys.iter().map(|(_, k)| k.as_str()).collect();
    let logged: HashSet<String> =
        sqlx::query_scalar("SELECT entry_key FROM log_entries WHERE entry_key = ANY($1)")
            .bind(&keys)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let missing_sequences = held
        .keys
        .iter()
        .filter(|(_, key)| !logged.contains(key))
        .map(|(sequence, _)| *sequence)
        .collect();
    let on_stream: HashMap<&str, u64> = held.keys.iter().map(|(s, k)| (k.as_str(), *s)).collect();
    let window: Vec<String> = sqlx::query_scalar(
        "SELECT entry_key FROM log_entries
         WHERE stream = $1 AND stream_sequence BETWEEN $2 AND $3 ORDER BY leaf_index",
    )
    .bind(spec.name)
    .bind(held.first as i64)
    .bind(held.last as i64)
    .fetch_all(&mut *conn)
    .await?;
    let unexplained_entries = window
        .into_iter()
        .filter(|key| !on_stream.contains_key(key.as_str()))
        .collect();
    Ok(StreamReconciliation {
        stream: spec.name.to_owned(),
        first_sequence: held.first,
        last_sequence: held.last,
        messages: held.keys.len() as u64,
        missing_sequences,
        unexplained_entries,
    })
}

/// Compares every logged stream with the log; raises each gap as a `log_gap` violation and
/// publishes the report, in one transaction. Returns the report and whether it is clean.
pub async fn run(
    bus: &Bus,
    db: &Database,
    rules: &Rules,
) -> Result<(ReconciliationReported, bool), ReconcileError> {
    let mut held = Vec::new();
    for spec in logged_streams() {
        held.push((spec, read(bus, spec).await?));
    }
    let mut tx = db.pool().begin().await?;
    let mut report = ReconciliationReported::default();
    for (spec, held) in held {
        report.streams.push(compare(&mut tx, spec, held).await?);
    }
    let findings = gaps(&report);
    let consistent = findings.is_empty();
    raise(&mut tx, rules, &findings).await?;
    let event = new_event(SERVICE, SERVICE, 0, service_actor(SERVICE), report.clone());
    outbox::enqueue(&mut tx, &[OutboxMessage::event(&event)]).await?;
    tx.commit().await?;
    Ok((report, consistent))
}

fn gaps(report: &ReconciliationReported) -> Vec<Finding> {
    let finding = |subject: String, detail: String| Finding {
        rule: "log_gap",
        subject,
        case_id: String::new(),
        complaint_id: String::new(),
        detail,
        evidence: Vec::new(),
        due_at: None,
    };
    let mut findings = Vec::new();
    for stream in &report.streams {
        for sequence in &stream.missing_sequences {
            findings.push(finding(
                format!("missing:{}:{sequence}", stream.stream),
                format!("{} message {sequence} has no log entry", stream.stream),
            ));
        }
        for key in &stream.unexplained_entries {
            findings.push(finding(
                format!("unexplained:{}:{key}", stream.stream),
                format!(
                    "log entry {key} is no message of {} (within its window)",
                    stream.stream
                ),
            ));
        }
    }
    findings
}

/// Reconciles every `interval` until shutdown.
pub async fn every(
    bus: Bus,
    db: Database,
    rules: std::sync::Arc<crate::violations::Judge>,
    interval: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match run(&bus, &db, &rules.rules).await {
            Ok((_, true)) => tracing::info!("reconciliation: the streams and the log agree"),
            Ok((_, false)) => tracing::warn!("reconciliation found gaps; raised as log_gap"),
            Err(error) => tracing::warn!(%error, "reconciliation did not run; will retry"),
        }
    }
}
