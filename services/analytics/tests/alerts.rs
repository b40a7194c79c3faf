//! Alerts from the aggregates: a spike and an on-time rate below its threshold are raised
//! once (through the outbox) while they last, and resolved when they end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use redress_analytics::{
    MIGRATIONS, SCHEMA,
    alerts::evaluate,
    context,
    detect::{RULES_V1, Rules},
};
use redress_runtime::{db::Database, testing::TestEnv};
use sqlx::PgPool;

async fn set(pool: &PgPool, day: NaiveDate, measure: &str, category: &str, value: i64) {
    sqlx::query(
        "INSERT INTO agg_day VALUES ($1, $2, '', '', '', $3, '', '', false, '', '', '', '', $4)
         ON CONFLICT (period, measure, channel, kind, product, category, cause, severity,
                      vulnerable, partner, department, regime, detail)
         DO UPDATE SET value = excluded.value",
    )
    .bind(day)
    .bind(measure)
    .bind(category)
    .bind(value)
    .execute(pool)
    .await
    .unwrap();
}

async fn outbox(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT subject FROM outbox ORDER BY seq")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn raised_once_while_it_lasts_and_resolved_when_it_ends() {
    let env = TestEnv::new().await;
    let db = Database::connect(
        &env.database_url,
        SCHEMA,
        &env.schema(SCHEMA),
        2,
        &MIGRATIONS,
    )
    .await
    .unwrap();
    let pool = db.pool();
    let ctx = context("cn-nfra").unwrap();
    let rules = Rules::parse(RULES_V1).unwrap();
    let first = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    for (i, day) in first.iter_days().take(50).enumerate() {
        set(pool, day, "received", "B01", 9 + (i % 3) as i64).await;
    }
    let spike_day = first + chrono::Days::new(50);
    let today = spike_day.succ_opt().unwrap();
    set(pool, spike_day, "received", "B01", 40).await;
    set(pool, spike_day, "on_time", "B01", 10).await;
    set(pool, spike_day, "late", "B01", 30).await;

    assert_eq!(evaluate(pool, &ctx, &rules, today).await.unwrap(), (2, 0));
    let open: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT kind, dimension, value FROM alerts WHERE resolved_at IS NULL ORDER BY kind",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        open,
        [
            ("on_time_rate".into(), "all".into(), "all".into()),
            ("spike".into(), "category".into(), "B01".into())
        ]
    );
    // Still there: nothing raised twice.
    assert_eq!(evaluate(pool, &ctx, &rules, today).await.unwrap(), (0, 0));

    set(pool, spike_day, "received", "B01", 10).await;
    set(pool, spike_day, "late", "B01", 0).await;
    assert_eq!(evaluate(pool, &ctx, &rules, today).await.unwrap(), (0, 2));
    let mut subjects = outbox(pool).await;
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "redress.analytics.v1.alert.on_time_rate.raised",
            "redress.analytics.v1.alert.on_time_rate.resolved",
            "redress.analytics.v1.alert.spike.raised",
            "redress.analytics.v1.alert.spike.resolved",
        ]
    );
    pool.close().await;
    env.cleanup().await;
}
