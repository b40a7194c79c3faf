//! Rebuild = incremental = an independent plain-SQL computation, every cell, on a generated
//! half-year of complaints: 5,000 by default (35,000 events; the crate's test time), the
//! issue's 50,000 (351,364 events) with `REDRESS_ANALYTICS_FIGURES_COMPLAINTS=50000` (README:
//! a run's figures; about 15 minutes on this shared machine).
//!
//! Incremental: every event (plus 2 % redelivered copies) in a random order, in batches of
//! random size — late and out-of-order events, reclassifications, duplicates. Rebuild: the
//! same events in order into a fresh schema, swapped in (`rebuild::swap`). Expected: SQL over
//! the raw events and the calendar's working days (`support/expected.sql`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use redress_analytics::{MIGRATIONS, SCHEMA, context, events::from_event, rebuild};
use redress_runtime::{db::Database, testing::TestEnv};
use sqlx::{AssertSqlSafe, PgPool};
use support::{Raw, Rng, envelope, generate, start_2026};

/// How many complaints: `REDRESS_ANALYTICS_FIGURES_COMPLAINTS`, else 5,000.
fn complaints() -> usize {
    std::env::var("REDRESS_ANALYTICS_FIGURES_COMPLAINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}
const DAYS: i64 = 181;

async fn apply(pool: &PgPool, events: &[redress_analytics::events::Ev]) {
    let ctx = context("cn-nfra").unwrap();
    let mut tx = pool.begin().await.unwrap();
    rebuild::apply_new(&mut tx, &ctx, "analytics-test", events)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn load_raw(pool: &PgPool, raw: &[Raw]) {
    sqlx::query(
        "CREATE TABLE raw (id text, complaint_id text, kind text, at timestamptz,
           received_at timestamptz, registered_at timestamptz, channel text, ckind text,
           product text, vulnerable boolean, category text, cause text, severity text,
           confidence float8, department text, partner text, regime text, due_at timestamptz,
           tier int, outcome text, review boolean, currency text, units bigint, tags text[],
           satisfaction text, regulator boolean, codes text[])",
    )
    .execute(pool)
    .await
    .unwrap();
    for chunk in raw.chunks(20_000) {
        sqlx::query("INSERT INTO raw SELECT * FROM jsonb_populate_recordset(NULL::raw, $1)")
            .bind(serde_json::to_value(chunk).unwrap())
            .execute(pool)
            .await
            .unwrap();
    }
    let ctx = context("cn-nfra").unwrap();
    let first = chrono::NaiveDate::from_ymd_opt(2025, 12, 1).unwrap();
    let days: Vec<chrono::NaiveDate> = first
        .iter_days()
        .take(400)
        .filter(|d| ctx.calendar.is_working_day(*d))
        .collect();
    sqlx::query("CREATE TABLE workdays AS SELECT unnest($1::date[]) AS d")
        .bind(&days)
        .execute(pool)
        .await
        .unwrap();
}

async fn differences(pool: &PgPool, a: &str, b: &str) -> i64 {
    let cols = "period, measure, channel, kind, product, category, cause, severity, vulnerable, \
                partner, department, regime, detail, value";
    let sql = format!(
        "SELECT count(*) FROM ((SELECT {cols} FROM {a} WHERE value <> 0 EXCEPT SELECT {cols} FROM {b} WHERE value <> 0)
          UNION ALL (SELECT {cols} FROM {b} WHERE value <> 0 EXCEPT SELECT {cols} FROM {a} WHERE value <> 0)) x"
    );
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_equals_incremental_equals_plain_sql_on_generated_complaints() {
    let env = TestEnv::new().await;
    let complaints = complaints();
    let started = std::time::Instant::now();
    let raw = generate(7, complaints, start_2026(), DAYS);
    let events: Vec<_> = raw
        .iter()
        .map(|r| from_event(&envelope(r)).unwrap())
        .collect();
    eprintln!(
        "{} events generated in {:?}",
        events.len(),
        started.elapsed()
    );
    let live = Database::connect(
        &env.database_url,
        SCHEMA,
        &env.schema(SCHEMA),
        4,
        &MIGRATIONS,
    )
    .await
    .unwrap();
    let pool = live.pool();

    // Incremental: shuffled, with redelivered copies, in batches of 1–2000.
    let mut rng = Rng::new(99);
    let mut shuffled = events.clone();
    for i in 0..events.len() / 50 {
        shuffled.push(events[(i * 48_271) % events.len()].clone());
    }
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let incremental = async {
        let t = std::time::Instant::now();
        let mut rest = &shuffled[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(2000) as usize).min(rest.len());
            apply(pool, &rest[..n]).await;
            rest = &rest[n..];
        }
        eprintln!(
            "incremental: {} events in {:?}",
            shuffled.len(),
            t.elapsed()
        );
        sqlx::query("CREATE TABLE incremental AS SELECT * FROM agg_day")
            .execute(pool)
            .await
            .unwrap();
    };

    // Rebuild: in order, into a fresh schema (then swapped in).
    let fresh_schema = env.schema("analytics_rebuild");
    let fresh = Database::connect(&env.database_url, SCHEMA, &fresh_schema, 4, &MIGRATIONS)
        .await
        .unwrap();
    let rebuilt = async {
        let t = std::time::Instant::now();
        for chunk in events.chunks(2000) {
            apply(fresh.pool(), chunk).await;
        }
        eprintln!("rebuild: {} events in {:?}", events.len(), t.elapsed());
    };

    // Expected: plain SQL over the raw events.
    let expected = async {
        let t = std::time::Instant::now();
        load_raw(pool, &raw).await;
        sqlx::query(AssertSqlSafe(include_str!("support/expected.sql")))
            .execute(pool)
            .await
            .unwrap();
        eprintln!("plain SQL in {:?}", t.elapsed());
    };
    // The three are independent (their own tables, connections from the pools): at once.
    tokio::join!(incremental, rebuilt, expected);
    rebuild::swap(pool, &fresh_schema).await.unwrap();

    let cells: i64 = sqlx::query_scalar("SELECT count(*) FROM expected")
        .fetch_one(pool)
        .await
        .unwrap();
    let received: i64 =
        sqlx::query_scalar("SELECT sum(value)::bigint FROM expected WHERE measure = 'received'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(received, complaints as i64);
    assert!(
        cells > complaints as i64,
        "a data set worth comparing: {cells} cells"
    );
    assert_eq!(
        differences(pool, "incremental", "expected").await,
        0,
        "incremental ≠ SQL"
    );
    assert_eq!(
        differences(pool, "agg_day", "expected").await,
        0,
        "rebuild ≠ SQL"
    );
    let months: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
           (SELECT date_trunc('month', period)::date p, measure, channel, kind, product, category, cause,
                   severity, vulnerable, partner, department, regime, detail, sum(value)::bigint v
            FROM agg_day GROUP BY 1,2,3,4,5,6,7,8,9,10,11,12,13 HAVING sum(value) <> 0
            EXCEPT SELECT period, measure, channel, kind, product, category, cause, severity,
                   vulnerable, partner, department, regime, detail, value FROM agg_month WHERE value <> 0)
           UNION ALL
           (SELECT period, measure, channel, kind, product, category, cause, severity,
                   vulnerable, partner, department, regime, detail, value FROM agg_month WHERE value <> 0
            EXCEPT SELECT date_trunc('month', period)::date, measure, channel, kind, product, category, cause,
                   severity, vulnerable, partner, department, regime, detail, sum(value)::bigint
            FROM agg_day GROUP BY 1,2,3,4,5,6,7,8,9,10,11,12,13 HAVING sum(value) <> 0)) x",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(months, 0, "month aggregates ≠ the days' sums");
    eprintln!("{cells} cells equal; whole test {:?}", started.elapsed());
    pool.close().await;
    fresh.pool().close().await;
    env.cleanup().await;
}
