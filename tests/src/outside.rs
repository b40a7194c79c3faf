//! The chaos run's checks of notification, analytics and compliance-audit, from the outside:
//! the SMTP server's Maildir and notification's delivery records, analytics' counts against
//! intake's register, and the audit log exported over gRPC and verified offline against the
//! streams.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use prost::Message as _;
use redress_compliance_audit::{NoteVerifier, client, verify};
use redress_proto::{
    audit::v1::audit_service_client::AuditServiceClient, bus::headers, events::v1::Event,
};
use redress_runtime::{Bus, testing::TestEnv};
use sqlx::PgPool;

use crate::newer::Smtp;

/// One thing found wrong, with when it happened (to charge it to a fault) when known.
#[derive(Debug, Clone)]
pub struct Finding {
    pub what: String,
    pub at: Option<DateTime<Utc>>,
}

/// What one check found.
#[derive(Debug, Default)]
pub struct Outside {
    pub lost: Vec<Finding>,
    pub duplicated: Vec<Finding>,
    /// Notices reported in doubt (sent at most once, a specialist's task), by delivery id.
    pub in_doubt: Vec<Finding>,
    /// One line per check: what it counted.
    pub summary: Vec<String>,
}

impl Outside {
    fn lost(&mut self, what: String, at: Option<DateTime<Utc>>) {
        self.lost.push(Finding { what, at });
    }

    fn duplicated(&mut self, what: String, at: Option<DateTime<Utc>>) {
        self.duplicated.push(Finding { what, at });
    }

    pub fn merge(&mut self, other: Outside) {
        self.lost.extend(other.lost);
        self.duplicated.extend(other.duplicated);
        self.in_doubt.extend(other.in_doubt);
        self.summary.extend(other.summary);
    }
}

/// How long a check waits for a service to catch up while it still makes progress.
const STILL: Duration = Duration::from_secs(60);

/// Polls `progress` until `done` or it stops changing for [`STILL`].
async fn settle<T: PartialEq + Clone>(
    mut progress: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let mut last = (progress().await, Instant::now());
    loop {
        if done(&last.0) || last.1.elapsed() > STILL {
            return last.0;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = progress().await;
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
}

/// The notices the cases call for: a receipt for each created case and the first-assignment
/// notice for each assigned one.
pub struct Owed {
    pub created: HashSet<String>,
    pub assigned: HashSet<String>,
}

/// Every owed notice recorded once, and each delivery sent exactly once (one mail with its
/// Message-ID), or in doubt with at most one mail and a specialist's task; no mail that no
/// delivery explains.
pub async fn notification(env: &TestEnv, smtp: &Smtp, owed: &Owed) -> Outside {
    let db = env.pool("notification").await;
    let owed_count = owed.created.len() + owed.assigned.len();
    let (recorded, pending) = settle(
        async || {
            let recorded = scalar(&db, "SELECT count(*) FROM deliveries").await;
            let pending = scalar(
                &db,
                "SELECT count(*) FROM deliveries WHERE state = 'pending'",
            )
            .await;
            (recorded, pending)
        },
        |(recorded, pending)| *pending == 0 && *recorded as usize >= owed_count,
    )
    .await;
    let rows: Vec<(String, String, String, String, DateTime<Utc>, Option<bool>)> = sqlx::query_as(
        "SELECT d.id::text, d.kind, d.case_id, d.state,
                COALESCE((SELECT max(a.started_at) FROM attempts a WHERE a.delivery_id = d.id),
                         d.created_at),
                t.in_doubt
         FROM deliveries d LEFT JOIN specialist_tasks t ON t.delivery_id = d.id",
    )
    .fetch_all(&db)
    .await
    .unwrap_or_default();
    let mails = smtp.received();
    let mut out = Outside::default();
    let mut per_notice = HashMap::<(&str, &str), usize>::new();
    let mut failed = 0;
    for (id, kind, case, state, at, task) in &rows {
        *per_notice.entry((case.as_str(), kind.as_str())).or_default() += 1;
        let copies = mails.get(id).copied().unwrap_or(0);
        let at = Some(*at);
        match state.as_str() {
            "sent" if copies == 1 => {}
            "sent" if copies == 0 => out.lost(format!("notice {id} recorded sent, no mail"), at),
            "in_doubt" if copies <= 1 && *task == Some(true) => out.in_doubt.push(Finding {
                what: format!("{id} ({kind}, {} mail)", copies),
                at,
            }),
            "in_doubt" if copies <= 1 => out.lost(format!("notice {id} in doubt, no task"), at),
            "sent" | "in_doubt" => out.duplicated(format!("notice {id} mailed {copies} times"), at),
            // Failed for good, and reported: a specialist's task (e.g. no address to send to).
            "failed" if copies == 0 && task.is_some() => failed += 1,
            other => out.lost(
                format!("notice {id} ({kind}) ended {other}, {copies} mail"),
                at,
            ),
        }
    }
    for ((case, kind), n) in &per_notice {
        if *n > 1 {
            out.duplicated(format!("{n} {kind} notices for case {case}"), None);
        }
    }
    for (kind, cases) in [("receipt", &owed.created), ("assigned", &owed.assigned)] {
        for case in cases {
            if !per_notice.contains_key(&(case.as_str(), kind)) {
                out.lost(format!("no {kind} notice for case {case}"), None);
            }
        }
    }
    let known: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for (id, copies) in &mails {
        if !known.contains(id.as_str()) {
            out.duplicated(
                format!("{copies} mail(s) {id} that no delivery records"),
                None,
            );
        }
    }
    out.summary.push(format!(
        "notification: {owed_count} notices owed, {recorded} recorded ({pending} pending), {} mails received, {} in doubt, {failed} failed for good (each a task)",
        mails.values().sum::<usize>(),
        out.in_doubt.len()
    ));
    out
}

/// Analytics counted every registered complaint once: a fact for each, and the `received`
/// measure summed over days and over months equal to intake's register.
pub async fn analytics(env: &TestEnv) -> Outside {
    let db = env.pool("analytics").await;
    let intake = env.schema("intake");
    let registered_sql = format!("SELECT count(*) FROM {intake}.complaints");
    let registered = scalar(&db, &registered_sql).await;
    let sums = async || {
        (
            scalar(
                &db,
                "SELECT COALESCE(sum(value), 0)::bigint FROM agg_day WHERE measure = 'received'",
            )
            .await,
            scalar(
                &db,
                "SELECT COALESCE(sum(value), 0)::bigint FROM agg_month WHERE measure = 'received'",
            )
            .await,
        )
    };
    let (day, month) = settle(sums, |(d, m)| *d >= registered && *m >= registered).await;
    let mut out = Outside::default();
    let missing: Vec<(String, DateTime<Utc>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT c.id::text, c.registered_at FROM {intake}.complaints c
         WHERE NOT EXISTS (SELECT 1 FROM facts f
                           WHERE f.complaint_id = c.id::text AND f.received_at IS NOT NULL)"
    )))
    .fetch_all(&db)
    .await
    .unwrap_or_default();
    for (id, at) in missing {
        out.lost(
            format!("analytics has no received complaint {id}"),
            Some(at),
        );
    }
    for (period, counted) in [("day", day), ("month", month)] {
        if counted > registered {
            out.duplicated(
                format!("analytics counts {counted} received by {period}, intake registered {registered}"),
                None,
            );
        } else if counted < registered && out.lost.is_empty() {
            out.lost(
                format!("analytics counts {counted} received by {period}, intake registered {registered}"),
                None,
            );
        }
    }
    out.summary.push(format!(
        "analytics: {registered} complaints registered; counted received {day} (by day), {month} (by month)"
    ));
    out
}

/// The key the log enters a stream message under (compliance-audit's README): the event id,
/// else the message id, else the stream sequence.
fn entry_key(stream: &str, sequence: u64, message: &async_nats::Message) -> String {
    let event = (stream != redress_proto::bus::DLQ.name)
        .then(|| Event::decode(message.payload.as_ref()).ok())
        .flatten()
        .filter(|e| !e.id.is_empty());
    if let Some(event) = event {
        return event.id;
    }
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::MSG_ID))
        .map_or_else(|| format!("seq:{stream}:{sequence}"), |v| v.to_string())
}

/// When an event happened, from its envelope.
fn occurred(message: &async_nats::Message) -> Option<DateTime<Utc>> {
    Event::decode(message.payload.as_ref())
        .ok()?
        .occurred_at
        .as_ref()
        .and_then(redress_runtime::event::from_timestamp)
}

/// Every message of every logged stream (the log's own checkpoints aside), by entry key.
async fn logged_messages(bus: &Bus) -> HashMap<String, Option<DateTime<Utc>>> {
    let mut keys = HashMap::new();
    for spec in redress_compliance_audit::ingest::logged_streams() {
        for (sequence, message) in crate::chaos::read_stream_sequenced(bus, &spec).await {
            let subject = message.subject.as_str();
            if subject.ends_with("redress.audit.v1.checkpoint") {
                continue;
            }
            keys.insert(entry_key(spec.name, sequence, &message), occurred(&message));
        }
    }
    keys
}

/// The audit log holds every message of the logged streams exactly once, and the export (all
/// entries, every checkpoint) verifies offline against the signing key the run made.
pub async fn audit(env: &TestEnv, bus: &Bus, url: &str, verifier: &NoteVerifier) -> Outside {
    let db = env.pool("compliance_audit").await;
    let mut out = Outside::default();
    // Notification and analytics have settled: the streams hold what the log must.
    let streams = logged_messages(bus).await;
    let missing = settle(
        async || {
            let logged: HashSet<String> = sqlx::query_scalar("SELECT entry_key FROM log_entries")
                .fetch_all(&db)
                .await
                .unwrap_or_default()
                .into_iter()
                .collect();
            streams.keys().filter(|k| !logged.contains(*k)).count()
        },
        |missing| *missing == 0,
    )
    .await;
    // The export covers entries up to the largest checkpoint: wait for one of every entry.
    settle(
        async || {
            (
                scalar(&db, "SELECT count(*) FROM log_entries").await,
                scalar(&db, "SELECT COALESCE(max(tree_size), 0) FROM checkpoints").await,
            )
        },
        |(entries, signed)| signed >= entries,
    )
    .await;
    let export = match export(url).await {
        Ok(export) => export,
        Err(error) => {
            out.lost(
                format!("the audit log could not be exported: {error}"),
                None,
            );
            return out;
        }
    };
    match verify::verify_export(&export, verifier, &[]) {
        Ok(report) if report.entries as usize == export.entries.len() => {}
        Ok(report) => out.lost(
            format!(
                "the audit export verified {} of {} entries",
                report.entries,
                export.entries.len()
            ),
            None,
        ),
        Err(problem) => out.lost(format!("the audit log does not verify: {problem}"), None),
    }
    let mut entries = HashMap::<&str, usize>::new();
    for entry in &export.entries {
        *entries.entry(entry.entry_key.as_str()).or_default() += 1;
    }
    // Read again: an entry logged after the first reading is on the streams by now.
    let now_on_streams = logged_messages(bus).await;
    for (key, n) in &entries {
        if *n > 1 {
            out.duplicated(format!("audit entry {key} logged {n} times"), None);
        } else if !now_on_streams.contains_key(*key) {
            out.duplicated(format!("audit entry {key} is on no stream"), None);
        }
    }
    for (key, at) in &streams {
        if !entries.contains_key(key.as_str()) {
            out.lost(format!("event {key} missing from the audit log"), *at);
        }
    }
    out.summary.push(format!(
        "compliance-audit: {} stream messages, {} entries exported and verified against {} checkpoints ({missing} missing when the log settled)",
        streams.len(),
        export.entries.len(),
        export.checkpoints.len(),
    ));
    out
}

/// The whole log over gRPC, as `redress audit export` fetches it, as a compliance officer.
async fn export(url: &str) -> Result<verify::Export, String> {
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut client = AuditServiceClient::new(channel);
    let token = redress_runtime::testing::token("chaos-auditor", &["compliance"], None);
    let bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii> = format!("Bearer {token}")
        .parse()
        .map_err(|e| format!("token: {e}"))?;
    let authorize = move |m: &mut tonic::metadata::MetadataMap| {
        m.insert("authorization", bearer.clone());
    };
    client::export(&mut client, &authorize)
        .await
        .map_err(|e| e.to_string())
}

async fn scalar(db: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(db)
        .await
        .unwrap_or(-1)
}
