//! Alerts from the aggregates: a spike and an on-time rate below its threshold are raised
//! once (through the outbox) while they last, and resolved when they end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use redress_analytics::{
    MIGRATIONS, SCHEMA,
    alerts::evaluate,
    context,
    detect::{RULES_V1, Rules},
    facts::Fact,
    report::{DENOMINATORS_V1, Denominators},
};
use redress_runtime::{db::Database, testing::TestEnv};
use sqlx::PgPool;

async fn set(pool: &PgPool, day: NaiveDate, measure: &str, category: &str, value: i64) {
    // `measure` is one of the test's constant column names.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO cube_day (period, channel, kind, product, category, cause, severity,
                               vulnerable, partner, department, regime, detail, {measure})
         VALUES ($1, '', '', '', $2, '', '', false, '', '', '', '', $3)
         ON CONFLICT (period, channel, kind, product, category, cause, severity,
                      vulnerable, partner, department, regime, detail)
         DO UPDATE SET {measure} = excluded.{measure}"
    )))
    .bind(day)
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
    let denominators = Denominators::parse(DENOMINATORS_V1).unwrap();
    let first = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    for (i, day) in first.iter_days().take(50).enumerate() {
        set(pool, day, "received", "B01", 9 + (i % 3) as i64).await;
    }
    let spike_day = first + chrono::Days::new(50);
    let today = spike_day.succ_opt().unwrap();
    set(pool, spike_day, "received", "B01", 40).await;
    set(pool, spike_day, "on_time", "B01", 10).await;
    set(pool, spike_day, "late", "B01", 30).await;

    assert_eq!(
        evaluate(pool, &ctx, &rules, &denominators, today)
            .await
            .unwrap(),
        (2, 0)
    );
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
    assert_eq!(
        evaluate(pool, &ctx, &rules, &denominators, today)
            .await
            .unwrap(),
        (0, 0)
    );

    set(pool, spike_day, "received", "B01", 10).await;
    set(pool, spike_day, "late", "B01", 0).await;
    assert_eq!(
        evaluate(pool, &ctx, &rules, &denominators, today)
            .await
            .unwrap(),
        (0, 2)
    );
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

/// Adds `values` to the cube row of `day` with these dimensions (the rest '').
async fn put(pool: &PgPool, day: NaiveDate, dims: [&str; 3], values: &[(&str, i64)]) {
    let names: Vec<&str> = values.iter().map(|v| v.0).collect();
    let numbers: Vec<String> = values.iter().map(|v| v.1.to_string()).collect();
    let set: Vec<String> = names
        .iter()
        .map(|m| format!("{m} = cube_day.{m} + excluded.{m}"))
        .collect();
    // Measure names and numbers are the test's own.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO cube_day (period, channel, kind, product, category, cause, severity,
                               vulnerable, partner, department, regime, detail, {})
         VALUES ($1, '', '', '', $2, '', '', false, $3, '', '', $4, {})
         ON CONFLICT (period, channel, kind, product, category, cause, severity,
                      vulnerable, partner, department, regime, detail)
         DO UPDATE SET {}",
        names.join(", "),
        numbers.join(", "),
        set.join(", ")
    )))
    .bind(day)
    .bind(dims[0])
    .bind(dims[1])
    .bind(dims[2])
    .execute(pool)
    .await
    .unwrap();
}

async fn open_alerts(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT kind, dimension, value FROM alerts WHERE resolved_at IS NULL ORDER BY kind",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn review_queue_age_model_drift_and_partner_rate_raised_and_resolved() {
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
    let denominators = Denominators::parse(DENOMINATORS_V1).unwrap();
    // A day inside the shipped partner denominators (2025–2026); the queue's age is from now.
    let today = NaiveDate::from_ymd_opt(2026, 6, 15).unwrap();
    let day = today.pred_opt().unwrap();

    // A complaint waiting 30 hours for a specialist (the rule allows 24).
    let waiting = Fact {
        needs_review_at: Some(chrono::Utc::now() - chrono::Duration::hours(30)),
        ..Fact::new("c-waiting")
    };
    sqlx::query("INSERT INTO facts SELECT * FROM jsonb_populate_record(NULL::facts, $1)")
        .bind(serde_json::to_value(&waiting).unwrap())
        .execute(pool)
        .await
        .unwrap();
    // Class B01: 100 complaints at confidence 0.9–1.0 (≈ 5 overrides promised), 30 overridden.
    put(
        pool,
        day,
        ["", "", "B01"],
        &[
            ("classified", 100),
            ("confidence_9", 100),
            ("overridden", 30),
        ],
    )
    .await;
    // partner-bank-b: 2 complaints a day for the 90 days before the window, then 6 a day.
    for back in 0..120u64 {
        let n = if back < 30 { 6 } else { 2 };
        let d = day - chrono::Days::new(back);
        put(pool, d, ["", "partner-bank-b", ""], &[("received", n)]).await;
    }
    evaluate(pool, &ctx, &rules, &denominators, today)
        .await
        .unwrap();
    let open = open_alerts(pool).await;
    for want in [
        ("model_drift", "model_class", "B01"),
        ("partner_rate", "partner", "partner-bank-b"),
        ("review_queue_age", "queue", "classification"),
    ] {
        let want = (want.0.to_owned(), want.1.to_owned(), want.2.to_owned());
        assert!(open.contains(&want), "{want:?} raised: {open:?}");
    }
    let (observed, expected): (f64, f64) = sqlx::query_as(
        "SELECT observed, expected FROM alerts WHERE kind = 'partner_rate' AND resolved_at IS NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(
        observed > 2.5 * expected,
        "the rate per 10,000 account-months tripled: {observed} vs {expected}"
    );

    // The specialist classified it, overrides fell back, the partner's rate too.
    sqlx::query("UPDATE facts SET overridden = true WHERE complaint_id = 'c-waiting'")
        .execute(pool)
        .await
        .unwrap();
    put(pool, day, ["", "", "B01"], &[("overridden", -25)]).await;
    for back in 0..30u64 {
        let d = day - chrono::Days::new(back);
        put(pool, d, ["", "partner-bank-b", ""], &[("received", -4)]).await;
    }
    evaluate(pool, &ctx, &rules, &denominators, today)
        .await
        .unwrap();
    let still: Vec<_> = open_alerts(pool)
        .await
        .into_iter()
        .filter(|a| a.0 != "spike")
        .collect();
    assert!(still.is_empty(), "resolved: {still:?}");
    pool.close().await;
    env.cleanup().await;
}
