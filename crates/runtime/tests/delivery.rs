//! The delivery rules of DESIGN §3, against the real Postgres and NATS JetStream: nothing lost
//! on a crash, nothing applied twice, nothing failing silently, work shared across replicas.

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use async_nats::{HeaderMap, jetstream::consumer::PullConsumer};
use bytes::Bytes;
use futures::StreamExt;
use prost::Message as _;
use redress_proto::events::v1::ComplaintWithdrawn;
use redress_runtime::{
    ConsumerSpec, Delivery, HandleError, Handler,
    bus::{self, Bus, Outgoing, headers},
    consumer,
    db::Database,
    event::{new_event, service_actor},
    testing::{TestEnv, eventually},
};
use sqlx::PgConnection;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Child,
};
use tokio_util::sync::CancellationToken;

static NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;
const WAIT: Duration = Duration::from_secs(60);

fn fixture(env: &TestEnv, args: &[&str]) -> Child {
    let child = env
        .command(env!("CARGO_BIN_EXE_runtime-fixture"))
        .args(args)
        .env("REDRESS_CONSUMER_BACKOFF", "50ms")
        .stdout(Stdio::piped())
        .spawn();
    match child {
        Ok(child) => child,
        Err(error) => panic!("cannot start the fixture: {error}"),
    }
}

/// Reads the child's output until a line starts with `prefix`.
async fn wait_for_line(child: &mut Child, prefix: &str) {
    let Some(stdout) = child.stdout.take() else {
        panic!("fixture stdout not captured")
    };
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with(prefix) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found.ok(), Some(true), "fixture never printed `{prefix}`");
    // Keep draining so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

async fn sigkill(child: &mut Child) {
    child.start_kill().ok();
    child.wait().await.ok();
}

async fn fixture_db(env: &TestEnv) -> sqlx::PgPool {
    match sqlx::PgPool::connect(&env.database_url).await {
        Ok(pool) => pool,
        Err(error) => panic!("test database: {error}"),
    }
}

async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or(-1)
}

async fn stream_messages(bus: &Bus, spec: &bus::StreamSpec) -> u64 {
    match bus.jetstream().get_stream(bus.stream_name(spec.name)).await {
        Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Every `Nats-Msg-Id` stored in the stream, read back with an ordered consumer.
async fn stored_ids(bus: &Bus, spec: &bus::StreamSpec, expected: usize) -> Vec<String> {
    let Ok(stream) = bus.jetstream().get_stream(bus.stream_name(spec.name)).await else {
        return Vec::new();
    };
    let Ok(consumer) = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
    else {
        return Vec::new();
    };
    let Ok(mut messages) = consumer.messages().await else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    while ids.len() < expected {
        match tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
            Ok(Some(Ok(message))) => ids.push(
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(headers::MSG_ID))
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            ),
            _ => break,
        }
    }
    ids
}

#[tokio::test]
async fn a_crash_between_commit_and_publish_loses_nothing_and_publishes_once() {
    let env = TestEnv::new().await;
    let bus = env.bus().await;

    let mut crashed = fixture(&env, &["commit", "--count", "100"]);
    wait_for_line(&mut crashed, "committed").await;
    sigkill(&mut crashed).await;
    assert_eq!(stream_messages(&bus, &bus::COMPLAINT_EVENTS).await, 0);

    let pool = fixture_db(&env).await;
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM fixture.outbox WHERE published_at IS NULL"
        )
        .await,
        100
    );

    // Restart: the relay publishes what the dead process committed.
    let mut restarted = fixture(&env, &["burst", "--count", "0"]);
    eventually("the outbox to drain", WAIT, || async {
        (scalar(
            &pool,
            "SELECT count(*) FROM fixture.outbox WHERE published_at IS NULL",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    sigkill(&mut restarted).await;

    let mut ids = stored_ids(&bus, &bus::COMPLAINT_EVENTS, 100).await;
    assert_eq!(ids.len(), 100);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "every event stored exactly once");
    assert_eq!(stream_messages(&bus, &bus::COMPLAINT_EVENTS).await, 100);
    pool.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_kill_in_the_middle_of_a_burst_publishes_every_committed_event_exactly_once() {
    let env = TestEnv::new().await;
    let bus = env.bus().await;

    let mut burst = fixture(&env, &["burst", "--count", "5000"]);
    wait_for_line(&mut burst, "progress 1000").await;
    sigkill(&mut burst).await;

    let pool = fixture_db(&env).await;
    let committed = scalar(&pool, "SELECT count(*) FROM fixture.outbox").await;
    assert!(committed >= 1000, "committed {committed}");

    let mut restarted = fixture(&env, &["burst", "--count", "0"]);
    eventually("the outbox to drain", WAIT, || async {
        (scalar(
            &pool,
            "SELECT count(*) FROM fixture.outbox WHERE published_at IS NULL",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    sigkill(&mut restarted).await;

    let stored = stream_messages(&bus, &bus::COMPLAINT_EVENTS).await;
    assert_eq!(
        stored as i64, committed,
        "stored exactly what was committed"
    );
    pool.close().await;
    env.cleanup().await;
}

fn withdrawn_event(n: usize) -> (String, Bytes) {
    let event = new_event(
        "test",
        format!("c-{n}"),
        1,
        service_actor("test"),
        ComplaintWithdrawn {
            complaint_id: format!("c-{n}"),
            reason: String::new(),
        },
    );
    (event.id.clone(), Bytes::from(event.encode_to_vec()))
}

fn outgoing(msg_id: &str, payload: Bytes) -> Outgoing {
    let mut headers = HeaderMap::new();
    headers.insert(headers::MSG_ID, msg_id);
    headers.insert(headers::EVENT_TYPE, "complaint_withdrawn");
    Outgoing {
        subject: "redress.complaint.v1.withdrawn".into(),
        headers,
        payload,
    }
}

struct Recorder {
    worker: &'static str,
    calls: Arc<AtomicU32>,
}

impl Handler for Recorder {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        sqlx::query("INSERT INTO effects (message_id, worker) VALUES ($1, $2)")
            .bind(delivery.message_id())
            .bind(self.worker)
            .execute(conn)
            .await?;
        Ok(())
    }
}

async fn effects_db(env: &TestEnv) -> Database {
    let db = Database::connect(&env.database_url, "effects", "effects", 4, &NO_MIGRATIONS).await;
    let Ok(db) = db else {
        panic!("effects schema: {:?}", db.err())
    };
    sqlx::query("CREATE TABLE IF NOT EXISTS effects (message_id text, worker text)")
        .execute(db.pool())
        .await
        .ok();
    db
}

fn spec(env: &TestEnv, durable: &str, batch: usize) -> ConsumerSpec {
    let mut tuning = env.runtime_config().consumer;
    tuning.batch = batch;
    ConsumerSpec {
        service: "test".into(),
        durable: durable.into(),
        stream: bus::COMPLAINT_EVENTS,
        filter_subject: "redress.complaint.v1.>".into(),
        inbox: true,
        settle: std::time::Duration::ZERO,
        tuning,
        seal: None,
    }
}

async fn drained(consumer: Option<PullConsumer>) -> bool {
    let Some(mut consumer) = consumer else {
        return false;
    };
    consumer
        .info()
        .await
        .map(|i| i.num_pending == 0 && i.num_ack_pending == 0 && i.delivered.stream_sequence > 0)
        .unwrap_or(false)
}

#[tokio::test]
async fn a_message_delivered_twice_has_one_effect() {
    let env = TestEnv::new().await;
    let bus = env.bus().await;
    let db = effects_db(&env).await;
    let spec = spec(&env, "twice", 50);
    let info = consumer::declare(&bus, &spec).await.ok();

    // A producer that republishes after JetStream's de-duplication window stores it twice.
    let (id, payload) = withdrawn_event(1);
    bus.publish(outgoing(&id, payload.clone())).await.ok();
    bus.publish(outgoing(&format!("{id}-retry"), payload))
        .await
        .ok();
    assert_eq!(stream_messages(&bus, &bus::COMPLAINT_EVENTS).await, 2);

    let calls = Arc::new(AtomicU32::new(0));
    let stop = CancellationToken::new();
    let handler = Arc::new(Recorder {
        worker: "w",
        calls: calls.clone(),
    });
    let task = tokio::spawn(consumer::run(
        bus.clone(),
        db.clone(),
        spec,
        handler,
        stop.clone(),
    ));
    eventually("both deliveries to be acked", WAIT, || {
        let consumer = info.clone();
        async move { drained(consumer).await.then_some(()) }
    })
    .await;
    stop.cancel();
    task.await.ok();

    let effects = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM effects")
        .fetch_one(db.pool())
        .await
        .unwrap_or(-1);
    assert_eq!(effects, 1, "the second delivery had no effect");
    env.cleanup().await;
}

#[tokio::test]
async fn a_consumer_killed_mid_burst_applies_every_message_exactly_once_after_restart() {
    let env = TestEnv::new().await;
    let bus = env.bus().await;
    bus.ensure_stream(&bus::COMPLAINT_EVENTS).await.ok();
    let messages: Vec<Outgoing> = (0..2000)
        .map(|n| {
            let (id, payload) = withdrawn_event(n);
            outgoing(&id, payload)
        })
        .collect();
    let (stored, failure) = bus.publish_all(messages).await;
    assert_eq!((stored, failure.is_none()), (2000, true));

    let mut first = fixture(&env, &["consume", "--worker", "first"]);
    wait_for_line(&mut first, "consuming").await;
    let pool = fixture_db(&env).await;
    eventually("some effects before the kill", WAIT, || async {
        (scalar(&pool, "SELECT count(*) FROM fixture.effects").await >= 300).then_some(())
    })
    .await;
    sigkill(&mut first).await;

    let mut second = fixture(&env, &["consume", "--worker", "second"]);
    eventually("all 2000 effects", WAIT, || async {
        (scalar(&pool, "SELECT count(*) FROM fixture.effects").await >= 2000).then_some(())
    })
    .await;
    let info = bus
        .jetstream()
        .get_consumer_from_stream::<_, _, _>(
            "fixture-recorder",
            bus.stream_name("COMPLAINT_EVENTS"),
        )
        .await
        .ok();
    eventually("every message acked", WAIT, || {
        let consumer: Option<PullConsumer> = info.clone();
        async move { drained(consumer).await.then_some(()) }
    })
    .await;
    sigkill(&mut second).await;

    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM fixture.effects").await,
        2000
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(DISTINCT message_id) FROM fixture.effects"
        )
        .await,
        2000
    );
    pool.close().await;
    env.cleanup().await;
}

struct AlwaysFails {
    calls: Arc<AtomicU32>,
    permanent: bool,
}

impl Handler for AlwaysFails {
    async fn handle(&self, _: &mut PgConnection, _: &Delivery) -> Result<(), HandleError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.permanent {
            Err(HandleError::Permanent("payload is nonsense".into()))
        } else {
            Err(HandleError::Transient("downstream refused".into()))
        }
    }
}

async fn dead_letter_of(env: &TestEnv, permanent: bool) -> (async_nats::jetstream::Message, u32) {
    dead_letter_with(env, permanent, None).await
}

async fn dead_letter_with(
    env: &TestEnv,
    permanent: bool,
    seal: Option<redress_runtime::consumer::Sealer>,
) -> (async_nats::jetstream::Message, u32) {
    let bus = env.bus().await;
    let db = effects_db(env).await;
    let mut spec = spec(env, if permanent { "bad" } else { "flaky" }, 50);
    spec.seal = seal;
    consumer::declare(&bus, &spec).await.ok();
    let dlq = bus.ensure_stream(&bus::DLQ).await;
    let Ok(dlq) = dlq else {
        panic!("DLQ stream: {:?}", dlq.err())
    };
    let (id, payload) = withdrawn_event(7);
    bus.publish(outgoing(&id, payload)).await.ok();

    let calls = Arc::new(AtomicU32::new(0));
    let stop = CancellationToken::new();
    let handler = Arc::new(AlwaysFails {
        calls: calls.clone(),
        permanent,
    });
    let task = tokio::spawn(consumer::run(bus.clone(), db, spec, handler, stop.clone()));

    let reader = dlq
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await;
    let Ok(reader) = reader else {
        panic!("DLQ reader: {:?}", reader.err())
    };
    let Ok(mut messages) = reader.messages().await else {
        panic!("DLQ messages")
    };
    let message = tokio::time::timeout(WAIT, messages.next()).await;
    let Ok(Some(Ok(message))) = message else {
        panic!("nothing reached the dead-letter queue")
    };
    stop.cancel();
    task.await.ok();
    (message, calls.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_handler_that_always_fails_dead_letters_after_the_configured_attempts() {
    let env = TestEnv::new().await;
    let (message, calls) = dead_letter_of(&env, false).await;
    let header = |name| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    assert_eq!(calls, 3, "tried max_attempts times, none acked before");
    assert_eq!(header(headers::DLQ_ATTEMPTS), "3");
    assert!(header(headers::DLQ_REASON).contains("downstream refused"));
    assert_eq!(
        header(headers::DLQ_SUBJECT),
        "redress.complaint.v1.withdrawn"
    );
    assert_eq!(header(headers::EVENT_TYPE), "complaint_withdrawn");
    assert!(message.subject.ends_with("redress.dlq.v1.test"));
    let decoded = redress_proto::events::v1::Event::decode(message.payload.as_ref());
    assert!(decoded.is_ok(), "the original payload travels unchanged");
    env.cleanup().await;
}

#[tokio::test]
async fn a_sealed_consumer_never_dead_letters_the_body_in_clear() {
    let env = TestEnv::new().await;
    // A stand-in for intake's vault: the body reversed, under key `k1`.
    let seal: redress_runtime::consumer::Sealer =
        Arc::new(|body: &[u8]| Ok((body.iter().rev().copied().collect(), "k1".to_owned())));
    let (message, _) = dead_letter_with(&env, true, Some(seal)).await;
    let sealed_key = message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::DLQ_SEALED_KEY))
        .map(|v| v.to_string());
    assert_eq!(sealed_key.as_deref(), Some("k1"));
    assert!(
        redress_proto::events::v1::Event::decode(message.payload.as_ref()).is_err(),
        "the body is not in clear"
    );
    let opened: Vec<u8> = message.payload.iter().rev().copied().collect();
    let event = redress_proto::events::v1::Event::decode(opened.as_slice());
    assert_eq!(
        event.map(|e| e.aggregate_id).ok().as_deref(),
        Some("c-7"),
        "it opens with the key"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_permanent_failure_dead_letters_at_once() {
    let env = TestEnv::new().await;
    let (message, calls) = dead_letter_of(&env, true).await;
    assert_eq!(calls, 1);
    let reason = message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::DLQ_REASON))
        .map(|v| v.to_string());
    assert_eq!(reason.as_deref(), Some("payload is nonsense"));
    env.cleanup().await;
}

#[tokio::test]
async fn two_consumers_on_one_durable_share_the_work_without_double_effects() {
    let env = TestEnv::new().await;
    let db = effects_db(&env).await;
    let publisher = env.bus().await;
    let spec = spec(&env, "shared", 5);
    consumer::declare(&publisher, &spec).await.ok();
    let messages: Vec<Outgoing> = (0..600)
        .map(|n| {
            let (id, payload) = withdrawn_event(n);
            outgoing(&id, payload)
        })
        .collect();
    publisher.publish_all(messages).await;

    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for worker in ["one", "two"] {
        let bus = env.bus().await;
        let handler = Arc::new(Recorder {
            worker,
            calls: Arc::new(AtomicU32::new(0)),
        });
        tasks.push(tokio::spawn(consumer::run(
            bus,
            db.clone(),
            spec.clone(),
            handler,
            stop.clone(),
        )));
    }
    eventually("600 effects", WAIT, || async {
        let n = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM effects")
            .fetch_one(db.pool())
            .await
            .unwrap_or(0);
        (n >= 600).then_some(())
    })
    .await;
    stop.cancel();
    for task in tasks {
        task.await.ok();
    }
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker, count(*) FROM effects GROUP BY worker ORDER BY worker")
            .fetch_all(db.pool())
            .await
            .unwrap_or_default();
    let distinct = sqlx::query_scalar::<_, i64>("SELECT count(DISTINCT message_id) FROM effects")
        .fetch_one(db.pool())
        .await
        .unwrap_or(-1);
    assert_eq!(distinct, 600);
    assert_eq!(
        per_worker.iter().map(|(_, n)| n).sum::<i64>(),
        600,
        "no double effects"
    );
    assert_eq!(
        per_worker.len(),
        2,
        "both replicas took work: {per_worker:?}"
    );
    env.cleanup().await;
}

/// A handler that takes a while, and notes how many of it ran at once.
struct Slow {
    running: Arc<AtomicU32>,
    most: Arc<AtomicU32>,
}

impl Handler for Slow {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        // Simulated work, so that concurrent batches overlap.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        sqlx::query("INSERT INTO effects (message_id, worker) VALUES ($1, 'slow')")
            .bind(delivery.message_id())
            .execute(conn)
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_consumer_with_concurrent_batches_applies_each_message_once() {
    let env = TestEnv::new().await;
    let db = effects_db(&env).await;
    let bus = env.bus().await;
    let mut spec = spec(&env, "concurrent", 5);
    spec.tuning.concurrency = 4;
    consumer::declare(&bus, &spec).await.ok();
    let messages: Vec<Outgoing> = (0..200)
        .map(|n| {
            let (id, payload) = withdrawn_event(n);
            outgoing(&id, payload)
        })
        .collect();
    bus.publish_all(messages).await;

    let (running, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let handler = Arc::new(Slow {
        running,
        most: most.clone(),
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer::run(bus, db.clone(), spec, handler, stop.clone()));
    eventually("200 effects", WAIT, || async {
        let n = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM effects")
            .fetch_one(db.pool())
            .await
            .unwrap_or(0);
        (n >= 200).then_some(())
    })
    .await;
    stop.cancel();
    task.await.ok();
    let (total, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT message_id) FROM effects")
            .fetch_one(db.pool())
            .await
            .unwrap_or((-1, -1));
    assert_eq!((total, distinct), (200, 200), "each message applied once");
    assert!(
        most.load(Ordering::SeqCst) > 1,
        "batches overlapped (most at once: {})",
        most.load(Ordering::SeqCst)
    );
    env.cleanup().await;
}
