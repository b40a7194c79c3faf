//! Chaos: a steady load of channel submissions while processes, NATS and Postgres fail in
//! turn, then a check from the outside — the channel's receipts, the streams, the databases —
//! that nothing accepted was lost or duplicated. `make chaos` runs the long form
//! (`redress-chaos`); `make test` a short one (tests/tests/chaos.rs).

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use async_nats::{HeaderMap, jetstream::consumer::pull};
use futures::StreamExt;
use prost::Message as _;
use redress_proto::{
    bus::{self, StreamSpec},
    common::v1::Channel,
    events::v1::{Event, event::Payload},
    intake::v1::{ComplaintSubmission, Consumer, SubmissionReply, submission_reply::Outcome},
};
use redress_runtime::{
    Bus,
    bus::headers,
    testing::{OwnNats, TestEnv},
};
use sqlx::{Connection as _, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::Suite;

/// One thing that goes wrong.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// SIGKILL one process of the service, then start it again.
    Kill(&'static str),
    /// SIGKILL every replica of the service at once, then start them again.
    KillAll(&'static str),
    /// Stop the NATS server and start it again on the same store.
    RestartNats,
    /// Terminate every Postgres backend of the suite's database (a failover, as the services
    /// see it).
    TerminatePostgres,
    /// SIGSTOP one process of the service for longer than the ack wait, then SIGCONT.
    Pause(&'static str),
    /// Hold an exclusive lock on a service's busiest table (`schema.table`, the schema without
    /// the test's namespace), so its consumer's connections all wait: a database that stops
    /// answering without closing anything.
    Stall(&'static str),
    /// Hostile load beside the steady one: 1 MB submissions, bytes that are not UTF-8 or not
    /// protobuf, and protobuf with unknown fields.
    Garbage,
    /// This many resends of one channelRef at once.
    ResendBurst(usize),
    /// A department's consumer that takes its case events and never acknowledges them.
    SlowDepartment,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Kill(s) => write!(f, "SIGKILL one {s}"),
            Fault::KillAll(s) => write!(f, "SIGKILL every {s} replica"),
            Fault::RestartNats => write!(f, "restart NATS"),
            Fault::TerminatePostgres => write!(f, "terminate Postgres backends"),
            Fault::Pause(s) => write!(f, "SIGSTOP {s} past ack wait"),
            Fault::Stall(t) => write!(f, "lock {t} (stall the database)"),
            Fault::Garbage => write!(
                f,
                "1 MB, non-UTF-8, non-protobuf, unknown-field submissions"
            ),
            Fault::ResendBurst(n) => write!(f, "{n} resends of one channelRef at once"),
            Fault::SlowDepartment => write!(f, "a department consumer that never acks"),
        }
    }
}

/// How a chaos run is set up.
pub struct Plan {
    pub rate: u32,
    pub faults: Vec<Fault>,
    /// How long each fault lasts before it is healed.
    pub outage: Duration,
    /// Steady load between faults.
    pub between: Duration,
    /// Replicas per service binary (others run one).
    pub replicas: Vec<(&'static str, usize)>,
}

/// What one fault cost.
#[derive(Debug, Clone)]
pub struct FaultOutcome {
    pub fault: String,
    pub started: Instant,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub recovered_in: Option<Duration>,
    pub lost: usize,
    pub duplicated: usize,
}

/// The run's result: each fault, and what was lost or duplicated outside any fault.
#[derive(Debug)]
pub struct Report {
    pub faults: Vec<FaultOutcome>,
    pub submissions: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub dead_letters: usize,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| fault | recovered in | lost | duplicated |\n|---|---:|---:|---:|"
        );
        for f in &self.faults {
            let recovered = f.recovered_in.map_or("not recovered".to_owned(), |d| {
                format!("{:.1} s", d.as_secs_f64())
            });
            let _ = writeln!(
                out,
                "| {} | {recovered} | {} | {} |",
                f.fault, f.lost, f.duplicated
            );
        }
        let _ = writeln!(
            out,
            "\n{} submissions accepted (receipt or stream ack); lost {}, duplicated {}, dead letters {}",
            self.submissions,
            self.lost.len(),
            self.duplicated.len(),
            self.dead_letters
        );
        out
    }
}

/// Starts the suite on its own NATS (so NATS can be restarted), runs the plan and checks.
pub async fn run(plan: &Plan) -> Report {
    let mut nats = OwnNats::start().await;
    let mut env = TestEnv::new().await;
    env.nats_url = nats.url();
    let extra = [
        ("REDRESS_CLASSIFICATION_TARGET_PRECISION", "0"),
        ("REDRESS_CONSUMER_ACK_WAIT", "3s"),
        ("REDRESS_LOG_FORMAT", "json"),
    ];
    let mut suite = Suite::start_in(env, &extra, &plan.replicas).await;
    let bus = suite.env.bus().await;
    let stop = CancellationToken::new();
    let load = Load::start(bus.clone(), plan.rate, stop.clone());

    let mut outcomes = Vec::new();
    let mut problems = Vec::new();
    // The sleeps here and in `apply` are the plan itself (load running between faults, how
    // long a part stays down), not waits for an outcome: recovery is polled by `probe` and the
    // end state by `check`, each with a deadline.
    tokio::time::sleep(plan.between).await;
    for (n, fault) in plan.faults.iter().enumerate() {
        let (started, started_at) = (Instant::now(), chrono::Utc::now());
        let found = apply(&mut suite, &mut nats, *fault, plan.outage).await;
        let recovered_in = probe(&suite, &bus, n).await.map(|at| at - started);
        problems.extend(found.iter().cloned());
        outcomes.push(FaultOutcome {
            fault: fault.to_string(),
            started,
            started_at,
            recovered_in,
            lost: 0,
            duplicated: found.len(),
        });
        tokio::time::sleep(plan.between).await;
    }
    stop.cancel();
    load.finish().await;
    let mut report = check(&suite, &bus, &load.stats, outcomes).await;
    report.duplicated.extend(problems);
    suite.stop().await;
    report
}

/// Applies and heals one fault; returns what it found wrong on the way (a resend burst
/// answered with two complaint ids).
async fn apply(
    suite: &mut Suite,
    nats: &mut OwnNats,
    fault: Fault,
    outage: Duration,
) -> Vec<String> {
    match fault {
        Fault::ResendBurst(n) => return resend_burst(&suite.env, n).await,
        Fault::Kill(binary) => {
            if let Some(&i) = suite.replicas(binary).first() {
                suite.kill(i).await;
                tokio::time::sleep(outage).await;
                suite.launch(i).await;
            }
        }
        Fault::KillAll(binary) => {
            let all = suite.replicas(binary);
            for &i in &all {
                suite.kill(i).await;
            }
            tokio::time::sleep(outage).await;
            for &i in &all {
                suite.launch(i).await;
            }
        }
        Fault::RestartNats => {
            nats.down().await;
            tokio::time::sleep(outage).await;
            nats.up().await;
        }
        Fault::TerminatePostgres => {
            let database = suite.env.database_name().to_owned();
            let until = Instant::now() + outage;
            // Keep terminating for the whole outage: reconnecting pools are cut again.
            while Instant::now() < until {
                terminate_backends(&suite.env, &database).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Fault::Pause(binary) => {
            if let Some(pid) = suite.replicas(binary).first().and_then(|&i| suite.pid(i)) {
                signal("-STOP", pid);
                tokio::time::sleep(outage).await;
                signal("-CONT", pid);
            }
        }
        Fault::Garbage => garbage(&suite.env, outage).await,
        Fault::SlowDepartment => slow_department(&suite.env, outage).await,
        Fault::Stall(qualified) => {
            let (schema, table) = qualified.split_once('.').unwrap_or(("public", qualified));
            let table = format!("{}.{table}", suite.env.schema(schema));
            if let Ok(mut conn) = PgConnection::connect(&suite.env.database_url).await {
                let locked = async {
                    let mut tx = conn.begin().await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
                    )))
                    .execute(&mut *tx)
                    .await?;
                    tokio::time::sleep(outage).await;
                    tx.rollback().await
                };
                let _ = locked.await;
            }
        }
    }
    Vec::new()
}

async fn garbage(env: &TestEnv, outage: Duration) {
    let bus = env.bus().await;
    let subject = bus.subject(&bus::submit_subject(Channel::App));
    let mut unknown = submission("garbage-unknown-fields").encode_to_vec();
    // Field 999, varint 1: a field this version of the contract does not know.
    unknown.extend_from_slice(&[0xb8, 0x3e, 0x01]);
    let big = format!(
        r#"{{"channel":"CHANNEL_APP","channelRef":"garbage-big","description":"{}"}}"#,
        "投诉".repeat(160_000)
    );
    let bodies: Vec<(Vec<u8>, &str)> = vec![
        (big.into_bytes(), headers::JSON),
        (vec![0xff, 0xfe, 0x00, 0xc3, 0x28], headers::JSON),
        (vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], headers::PROTOBUF),
        (unknown, headers::PROTOBUF),
    ];
    let until = Instant::now() + outage;
    let mut n = 0;
    while Instant::now() < until {
        for (body, content_type) in &bodies {
            let mut h = HeaderMap::new();
            h.insert(headers::CONTENT_TYPE, *content_type);
            h.insert(headers::MSG_ID, format!("app:garbage-{n}").as_str());
            let request = async_nats::Request::new()
                .headers(h)
                .payload(body.clone().into())
                .timeout(Some(Duration::from_secs(5)));
            let _ = bus.client().send_request(subject.clone(), request).await;
            n += 1;
        }
    }
}

async fn resend_burst(env: &TestEnv, n: usize) -> Vec<String> {
    let bus = env.bus().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let bus = bus.clone();
        tasks.spawn(async move { request(&bus, "burst", Duration::from_secs(60)).await });
    }
    let mut ids = HashSet::new();
    while let Some(answer) = tasks.join_next().await {
        ids.extend(answer.ok().flatten());
    }
    match ids.len() {
        1 => Vec::new(),
        0 => vec!["the resend burst got no receipt".into()],
        k => vec![format!("{n} resends of one channelRef made {k} complaints")],
    }
}

async fn slow_department(env: &TestEnv, outage: Duration) {
    let bus = env.bus().await;
    let Ok(stream) = bus
        .jetstream()
        .get_stream(bus.stream_name(bus::CASE_EVENTS.name))
        .await
    else {
        return;
    };
    let filter = bus.subject("redress.case.v1.customer-service.>");
    let Ok(consumer) = stream
        .create_consumer(pull::Config {
            durable_name: Some("slow-department".into()),
            filter_subject: filter,
            ..Default::default()
        })
        .await
    else {
        return;
    };
    // Takes what it is given and never acknowledges it.
    if let Ok(mut messages) = consumer.messages().await {
        let _ =
            tokio::time::timeout(outage, async { while messages.next().await.is_some() {} }).await;
    }
}

fn signal(which: &str, pid: u32) {
    let _ = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status();
}

async fn terminate_backends(env: &TestEnv, database: &str) {
    if let Ok(mut admin) = env.admin().await {
        let _ = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(database)
        .execute(&mut admin)
        .await;
    }
}

/// When a fresh complaint next gets all the way to a case: the suite has recovered.
async fn probe(suite: &Suite, bus: &Bus, n: usize) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let channel_ref = format!("probe-{n}");
    let mut complaint = None;
    while Instant::now() < deadline {
        if complaint.is_none() {
            complaint = request(bus, &channel_ref, Duration::from_secs(2)).await;
        }
        if let Some(id) = &complaint
            && has_case(suite, id).await
        {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn has_case(suite: &Suite, complaint_id: &str) -> bool {
    let Ok(mut conn) = PgConnection::connect(&suite.env.database_url).await else {
        return false;
    };
    let sql = format!(
        "SELECT count(*) FROM {}.cases WHERE complaint_id::text = $1",
        suite.env.schema("cases")
    );
    let count: Result<i64, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(complaint_id)
        .fetch_one(&mut conn)
        .await;
    count.is_ok_and(|c| c == 1)
}

fn submission(channel_ref: &str) -> ComplaintSubmission {
    ComplaintSubmission {
        channel: Channel::App as i32,
        channel_ref: channel_ref.into(),
        description: "我在提前还清消费贷后又被扣了一期利息，要求退还多扣的钱。".into(),
        consumer: Some(Consumer {
            phone: "13800138000".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn submission_headers(channel_ref: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(headers::MSG_ID, format!("app:{channel_ref}").as_str());
    h
}

/// One request for a receipt: the complaint id, or None on timeout or refusal.
async fn request(bus: &Bus, channel_ref: &str, timeout: Duration) -> Option<String> {
    let request = async_nats::Request::new()
        .headers(submission_headers(channel_ref))
        .payload(submission(channel_ref).encode_to_vec().into())
        .timeout(Some(timeout));
    let reply = bus
        .client()
        .send_request(bus.subject(&bus::submit_subject(Channel::App)), request)
        .await
        .ok()?;
    match SubmissionReply::decode(reply.payload.as_ref())
        .ok()?
        .outcome
    {
        Some(Outcome::Receipt(r)) => Some(r.complaint_id),
        _ => None,
    }
}

/// What the load accepted: a receipt (request path) or a stream ack (durable path), by
/// channelRef, with when it was first sent.
#[derive(Default)]
pub struct Accepted {
    receipts: Mutex<HashMap<String, String>>,
    durable: Mutex<HashSet<String>>,
    sent_at: Mutex<HashMap<String, Instant>>,
    gave_up: AtomicU64,
}

/// A channel at a steady rate: nine in ten submissions request a receipt, one in ten is a
/// durable (JetStream) publish; each is retried, as a channel would, until accepted.
pub struct Load {
    pub stats: Arc<Accepted>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(bus: Bus, rate: u32, stop: CancellationToken) -> Self {
        let stats = Arc::new(Accepted::default());
        let stats_ = stats.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
            let mut tasks = tokio::task::JoinSet::new();
            let mut n = 0u64;
            while !stop.is_cancelled() {
                tick.tick().await;
                let channel_ref = format!("chaos-{n}");
                if let Ok(mut sent) = stats_.sent_at.lock() {
                    sent.insert(channel_ref.clone(), Instant::now());
                }
                tasks.spawn(submit(
                    bus.clone(),
                    stats_.clone(),
                    channel_ref,
                    n % 10 == 9,
                ));
                n += 1;
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        });
        Self { stats, task }
    }

    pub async fn finish(&self) {
        while !self.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Retries for up to five minutes: a channel that gave up would have to say so.
async fn submit(bus: Bus, stats: Arc<Accepted>, channel_ref: String, durable: bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if durable {
            let subject = bus.subject(&bus::durable_subject(Channel::App));
            let payload = submission(&channel_ref).encode_to_vec().into();
            let headers = submission_headers(&channel_ref);
            if let Ok(ack) = bus
                .jetstream()
                .publish_with_headers(subject, headers, payload)
                .await
                && ack.await.is_ok()
            {
                if let Ok(mut d) = stats.durable.lock() {
                    d.insert(channel_ref);
                }
                return;
            }
        } else if let Some(id) = request(&bus, &channel_ref, Duration::from_secs(5)).await {
            if let Ok(mut r) = stats.receipts.lock() {
                r.insert(channel_ref, id);
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stats.gave_up.fetch_add(1, Relaxed);
}

/// Every message of a stream, read with an ephemeral pull consumer.
pub async fn read_stream(bus: &Bus, spec: &StreamSpec) -> Vec<async_nats::Message> {
    let Ok(stream) = bus.jetstream().get_stream(bus.stream_name(spec.name)).await else {
        return Vec::new();
    };
    let Ok(consumer) = stream
        .create_consumer(pull::Config {
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    loop {
        let Ok(batch) = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_secs(1))
            .messages()
            .await
        else {
            break;
        };
        let before = out.len();
        let mut batch = batch;
        while let Some(Ok(message)) = batch.next().await {
            out.push(message.split().0);
        }
        if out.len() == before {
            break;
        }
    }
    out
}

/// Waits for the pipeline to drain, then checks every accepted submission from the outside.
async fn check(
    suite: &Suite,
    bus: &Bus,
    stats: &Accepted,
    mut faults: Vec<FaultOutcome>,
) -> Report {
    let accepted: HashSet<String> = {
        let receipts = stats.receipts.lock().map(|r| r.keys().cloned().collect());
        let durable = stats.durable.lock().map(|d| d.iter().cloned().collect());
        receipts
            .unwrap_or_else(|_| HashSet::new())
            .union(&durable.unwrap_or_else(|_| HashSet::new()))
            .cloned()
            .collect()
    };
    // Drained: every accepted submission has its case, or nothing moved for a minute.
    let schema = |s: &str| suite.env.schema(s);
    let cases_of = format!(
        "SELECT c.channel_ref FROM {}.complaints c JOIN {}.cases k ON k.complaint_id = c.id",
        schema("intake"),
        schema("cases")
    );
    let mut last = (0usize, Instant::now());
    let with_case: HashSet<String> = loop {
        let found: HashSet<String> = match PgConnection::connect(&suite.env.database_url).await {
            Ok(mut conn) => sqlx::query_scalar(sqlx::AssertSqlSafe(cases_of.clone()))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_default()
                .into_iter()
                .collect(),
            Err(_) => HashSet::new(),
        };
        if found.len() != last.0 {
            last = (found.len(), Instant::now());
        }
        if accepted.is_subset(&found) || last.1.elapsed() > Duration::from_secs(60) {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let lost: Vec<String> = accepted.difference(&with_case).cloned().collect();

    // Duplicated: an event stored twice under different ids, or a complaint with two of an
    // event that happens once.
    let mut duplicated = Vec::new();
    let mut duplicated_at = Vec::new();
    let mut once = HashMap::<(String, &'static str), usize>::new();
    for spec in [&bus::COMPLAINT_EVENTS, &bus::CASE_EVENTS] {
        let mut ids = HashSet::new();
        for message in read_stream(bus, spec).await {
            let Ok(event) = Event::decode(message.payload.as_ref()) else {
                continue;
            };
            let occurred = event
                .occurred_at
                .as_ref()
                .and_then(redress_runtime::event::from_timestamp);
            if !ids.insert(event.id.clone()) {
                duplicated.push(format!("event {} stored twice", event.id));
                duplicated_at.extend(occurred);
            }
            let key = match &event.payload {
                Some(Payload::ComplaintReceived(_)) => "received",
                Some(Payload::ComplaintClassified(_)) => "classified",
                Some(Payload::CaseCreated(_)) => "created",
                Some(Payload::CaseAssigned(_)) => "assigned",
                _ => continue,
            };
            let seen = once.entry((event.aggregate_id.clone(), key)).or_default();
            *seen += 1;
            if *seen > 1 {
                duplicated.push(format!("{key} #{seen} for {}", event.aggregate_id));
                duplicated_at.extend(occurred);
            }
        }
    }
    let dead_letters = read_stream(bus, &bus::DLQ).await.len();

    // Attribute what went wrong to the fault during which it was first sent.
    let sent_at = stats.sent_at.lock().map(|s| s.clone()).unwrap_or_default();
    for channel_ref in &lost {
        let Some(at) = sent_at.get(channel_ref) else {
            continue;
        };
        if let Some(f) = faults.iter_mut().rev().find(|f| f.started <= *at) {
            f.lost += 1;
        }
    }
    for at in &duplicated_at {
        if let Some(f) = faults.iter_mut().rev().find(|f| f.started_at <= *at) {
            f.duplicated += 1;
        }
    }
    Report {
        faults,
        submissions: accepted.len(),
        lost,
        duplicated,
        dead_letters,
    }
}
