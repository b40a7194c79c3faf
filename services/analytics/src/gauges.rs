//! Prometheus gauges of live figures (served on the runtime's `/metrics`): open cases by
//! state and age, and this month's on-time rate. `deploy/grafana/analytics-dashboard.json`
//! charts them.

use std::{sync::Arc, time::Duration};

use chrono::{Datelike, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{SERVICE, cells::Context};

/// The states an open case is counted in (from its fact) and the age bands (days).
pub const STATES: [&str; 4] = ["registered", "assigned", "in_progress", "extended"];
pub const AGES: [&str; 5] = ["0-3d", "3-7d", "7-15d", "15-30d", "30d+"];

/// Reads the figures and sets the gauges.
pub async fn refresh(pool: &PgPool, ctx: &Context) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT state, age, count(*) FROM (
           SELECT CASE WHEN contact_at IS NOT NULL AND extension_tier > 0 THEN 'extended'
                       WHEN contact_at IS NOT NULL THEN 'in_progress'
                       WHEN assigned_at IS NOT NULL THEN 'assigned'
                       ELSE 'registered' END AS state,
                  CASE WHEN now() - received_at < interval '3 days' THEN '0-3d'
                       WHEN now() - received_at < interval '7 days' THEN '3-7d'
                       WHEN now() - received_at < interval '15 days' THEN '7-15d'
                       WHEN now() - received_at < interval '30 days' THEN '15-30d'
                       ELSE '30d+' END AS age
           FROM facts WHERE received_at IS NOT NULL AND decided_at IS NULL AND NOT withdrawn) o
         GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    for state in STATES {
        for age in AGES {
            let n = rows
                .iter()
                .find(|r| r.0 == state && r.1 == age)
                .map_or(0, |r| r.2);
            metrics::gauge!("redress_analytics_open_cases", "service" => SERVICE, "state" => state, "age" => age)
                .set(n as f64);
        }
    }
    let today = Utc::now().with_timezone(&ctx.tz).date_naive();
    let month = today.with_day(1).unwrap_or(today);
    let (on_time, late): (f64, f64) = sqlx::query_as(
        "SELECT coalesce(sum(value) FILTER (WHERE measure = 'on_time'), 0)::float8,
                coalesce(sum(value) FILTER (WHERE measure = 'late'), 0)::float8
         FROM agg_month WHERE period = $1 AND measure IN ('on_time', 'late')",
    )
    .bind(month)
    .fetch_one(pool)
    .await?;
    let decided = on_time + late;
    metrics::gauge!("redress_analytics_decided_this_month", "service" => SERVICE).set(decided);
    metrics::gauge!("redress_analytics_on_time_rate_this_month", "service" => SERVICE).set(
        if decided > 0.0 {
            on_time / decided
        } else {
            1.0
        },
    );
    Ok(())
}

/// Refreshes the gauges every `interval` until shutdown.
pub async fn run(pool: PgPool, ctx: Arc<Context>, interval: Duration, shutdown: CancellationToken) {
    loop {
        if let Err(error) = refresh(&pool, &ctx).await {
            tracing::warn!(%error, "gauges not refreshed; will try again");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
