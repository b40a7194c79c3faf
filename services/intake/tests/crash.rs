//! Intake as a separate process: killed with SIGKILL in the middle of a burst it loses and
//! duplicates nothing, and no raw personal data reaches an event, a log line or a table
//! outside the sealed column.

mod support;

use std::collections::HashSet;

use prost::Message as _;
use redress_runtime::{
    bus,
    testing::{TestEnv, eventually},
};
use support::*;

const PHONE: &str = "13812345678";
const EMAIL: &str = "zhang.san@example.com";
const ID_NUMBER: &str = "11010519491231002X";

#[tokio::test]
async fn sigkill_in_the_middle_of_a_burst_loses_and_duplicates_nothing() {
    let env = TestEnv::new().await;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut intake = start(&env, log.clone());
    let channel = Publisher::new(&env).await;
    let pool = pool(&env).await;
    eventually("intake to declare its streams", WAIT, || async {
        (channel
            .bus
            .jetstream()
            .get_stream(channel.bus.stream_name("INTAKE"))
            .await
            .is_ok())
        .then_some(())
    })
    .await;

    const N: usize = 3000;
    for n in 0..N {
        let mut s = submission(&format!("kill-{n}"));
        // A different consumer each time: no duplicate_suspected noise.
        if let Some(c) = s.consumer.as_mut() {
            c.phone = format!("139{n:08}");
            c.id_number.clear();
            c.email.clear();
        }
        channel.publish(&s).await;
        if n == N / 3 {
            eventually("some registrations before the kill", WAIT, || async {
                (count(&pool, "SELECT count(*) FROM complaints").await > 0).then_some(())
            })
            .await;
            kill(&mut intake).await;
            intake = start(&env, log.clone());
        }
    }
    eventually("every submission registered", WAIT, || async {
        (count(&pool, "SELECT count(*) FROM complaints").await >= N as i64).then_some(())
    })
    .await;
    let received = eventually("a received event for each", WAIT, || async {
        let r = received(&channel.bus).await;
        (r.len() >= N).then_some(r)
    })
    .await;
    kill(&mut intake).await;

    assert_eq!(
        count(&pool, "SELECT count(*) FROM complaints").await,
        N as i64
    );
    assert_eq!(
        count(&pool, "SELECT count(DISTINCT channel_ref) FROM complaints").await,
        N as i64
    );
    assert_eq!(received.len(), N, "one received event per registration");
    let distinct: HashSet<_> = received.iter().map(|r| r.channel_ref.clone()).collect();
    assert_eq!(distinct.len(), N);
    env.cleanup().await;
}

#[tokio::test]
async fn no_raw_personal_data_leaves_the_sealed_column() {
    let env = TestEnv::new().await;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut intake = start(&env, log.clone());
    let channel = Publisher::new(&env).await;
    eventually("intake to serve", WAIT, || async {
        let lines = log.lock().map(|l| l.clone()).unwrap_or_default();
        lines.iter().any(|l| l.contains("serving")).then_some(())
    })
    .await;
    // Valid and invalid submissions, both carrying the same personal data.
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(channel.submit(&submission(&format!("pii-{n}"))).await);
    }
    let mut invalid = submission("pii-bad");
    if let Some(c) = invalid.consumer.as_mut() {
        c.phone = format!("{PHONE}0");
    }
    channel.submit(&invalid).await;
    channel.publish(&submission("pii-ff")).await;
    let pool = pool(&env).await;
    eventually("6 registrations and their events", WAIT, || async {
        let registered = count(&pool, "SELECT count(*) FROM complaints").await == 6;
        (registered && received(&channel.bus).await.len() == 6).then_some(())
    })
    .await;
    kill(&mut intake).await;

    let needles = [PHONE, EMAIL, ID_NUMBER, "张三"];
    let found = |haystack: &[u8]| {
        needles
            .iter()
            .filter(|n| haystack.windows(n.len()).any(|w| w == n.as_bytes()))
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
    };

    // Every event on every stream but the channels' own submissions.
    for spec in [bus::COMPLAINT_EVENTS, bus::INTAKE_REJECTED, bus::DLQ] {
        for message in stored(&channel.bus, &spec).await {
            let leaked = found(&message.payload);
            assert!(
                leaked.is_empty(),
                "{} leaks {leaked:?}: {:?}",
                message.subject,
                redress_proto::events::v1::Event::decode(message.payload.as_ref())
            );
        }
    }
    // Every log line intake wrote.
    let lines = log.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(lines.len() > 5, "intake logged");
    for line in &lines {
        assert!(
            found(line.as_bytes()).is_empty(),
            "log line leaks personal data: {line}"
        );
    }
    // Every column of every table in every schema, read as bytes, but intake's sealed one.
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
           AND NOT (table_schema = 'intake' AND table_name = 'complaints' AND column_name = 'sealed')",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    assert!(columns.len() > 20, "found the tables: {}", columns.len());
    for (schema, table, column) in columns {
        let sql = format!(
            "SELECT convert_to(\"{column}\"::text, 'UTF8') FROM \"{schema}\".\"{table}\" WHERE \"{column}\" IS NOT NULL"
        );
        let values: Vec<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
        let bytea = format!(
            "SELECT \"{column}\" FROM \"{schema}\".\"{table}\" WHERE pg_typeof(\"{column}\") = 'bytea'::regtype"
        );
        let raw: Vec<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(bytea))
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
        for value in values.iter().chain(raw.iter()) {
            let leaked = found(value);
            assert!(
                leaked.is_empty(),
                "{schema}.{table}.{column} holds {leaked:?}"
            );
        }
    }
    // And the sealed column really is sealed.
    let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT sealed FROM complaints")
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    assert_eq!(sealed.len(), 6);
    assert!(sealed.iter().all(|s| found(s).is_empty()));
    let _ = ids;
    env.cleanup().await;
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_flushes_the_outbox_and_exits_zero() {
    let env = TestEnv::new().await;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut intake = start(&env, log.clone());
    eventually("intake to serve", WAIT, || async {
        let lines = log.lock().map(|l| l.clone()).unwrap_or_default();
        lines.iter().any(|l| l.contains("serving")).then_some(())
    })
    .await;
    let channel = Publisher::new(&env).await;
    for n in 0..20 {
        channel.submit(&submission(&format!("term-{n}"))).await;
    }
    let Some(pid) = intake.id() else {
        panic!("no pid")
    };
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    assert!(
        sent.map(|s| s.success()).unwrap_or(false),
        "could not send SIGTERM"
    );
    let exit = tokio::time::timeout(WAIT, intake.wait()).await;
    let Ok(Ok(status)) = exit else {
        panic!("intake did not exit within {WAIT:?} of SIGTERM")
    };
    assert_eq!(status.code(), Some(0), "a graceful stop exits 0");

    let pool = pool(&env).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM complaints").await, 20);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        0,
        "the outbox was flushed before exit"
    );
    assert_eq!(received(&channel.bus).await.len(), 20);
    env.cleanup().await;
}
