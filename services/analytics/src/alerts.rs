//! Alerts (风险防控): stored while their condition lasts, listed newest first.

use chrono::{DateTime, Utc};
use redress_proto::{
    analytics::v1 as pb,
    events::v1::{AlertKind, AlertSubject},
};
use redress_runtime::event::timestamp;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    pub alert_id: Uuid,
    pub kind: String,
    pub dimension: String,
    pub value: String,
    pub raised_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub observed: f64,
    pub expected: f64,
    pub threshold: f64,
    pub method: String,
    pub summary: String,
}

/// The kind's enum from its stored name (`spike`, `on_time_rate`, …).
pub fn kind(name: &str) -> AlertKind {
    AlertKind::from_str_name(&format!("ALERT_KIND_{}", name.to_ascii_uppercase()))
        .unwrap_or(AlertKind::Unspecified)
}

impl Stored {
    pub fn subject(&self) -> AlertSubject {
        AlertSubject {
            kind: kind(&self.kind).into(),
            dimension: self.dimension.clone(),
            value: self.value.clone(),
        }
    }

    pub fn into_pb(self) -> pb::Alert {
        pb::Alert {
            alert_id: self.alert_id.to_string(),
            subject: Some(self.subject()),
            raised_at: Some(timestamp(self.raised_at)),
            resolved_at: self.resolved_at.map(timestamp),
            observed: self.observed,
            expected: self.expected,
            threshold: self.threshold,
            method: self.method,
            summary: self.summary,
            window_start: Some(timestamp(self.window_start)),
            window_end: Some(timestamp(self.window_end)),
        }
    }
}

/// Alerts newest first, after the page token's (raised_at, id).
pub async fn list(
    pool: &PgPool,
    open_only: bool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    let (at, id) = after.unwrap_or((DateTime::<Utc>::MAX_UTC, Uuid::max()));
    sqlx::query_as(
        "SELECT * FROM alerts WHERE (raised_at, alert_id) < ($1, $2) \
         AND (NOT $3 OR resolved_at IS NULL) ORDER BY raised_at DESC, alert_id DESC LIMIT $4",
    )
    .bind(at)
    .bind(id)
    .bind(open_only)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Evaluates the alert rules for the last complete local day before `today` and raises or
/// resolves alerts through the outbox, in one transaction; one replica at a time (an
/// advisory lock), so an alert is raised once while its condition lasts.
pub async fn evaluate(
    pool: &PgPool,
    ctx: &crate::cells::Context,
    rules: &crate::detect::Rules,
    denominators: &crate::report::Denominators,
    today: chrono::NaiveDate,
) -> Result<(usize, usize), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('analytics-alerts'))")
            .fetch_one(&mut *tx)
            .await?;
    if !locked {
        return Ok((0, 0));
    }
    let day = today.pred_opt().unwrap_or(today);
    let mut signals = conditions(&mut tx, ctx, rules, day).await?;
    signals.extend(model_health(&mut tx, rules, day).await?);
    signals.extend(partner_rates(&mut tx, rules, denominators, day).await?);
    let open: Vec<Stored> = sqlx::query_as("SELECT * FROM alerts WHERE resolved_at IS NULL")
        .fetch_all(&mut *tx)
        .await?;
    let now = Utc::now();
    let (mut raised, mut resolved) = (0, 0);
    let key = |a: &Stored| (a.kind.clone(), a.dimension.clone(), a.value.clone());
    for alert in &open {
        if !signals.iter().any(|(k, _)| *k == key(alert)) {
            sqlx::query("UPDATE alerts SET resolved_at = $1 WHERE alert_id = $2")
                .bind(now)
                .bind(alert.alert_id)
                .execute(&mut *tx)
                .await?;
            let event = redress_proto::events::v1::AlertResolved {
                alert_id: alert.alert_id.to_string(),
                subject: Some(alert.subject()),
                resolved_at: Some(timestamp(now)),
                summary: format!("{} {} back to expected", alert.dimension, alert.value),
            };
            publish(&mut tx, alert.alert_id, event).await?;
            resolved += 1;
        }
    }
    let (start, end) = window(ctx, day);
    for ((kind_name, dimension, value), signal) in signals {
        if open
            .iter()
            .any(|a| key(a) == (kind_name.clone(), dimension.clone(), value.clone()))
        {
            continue;
        }
        let stored = Stored {
            alert_id: Uuid::now_v7(),
            kind: kind_name,
            dimension,
            value,
            raised_at: now,
            resolved_at: None,
            window_start: start,
            window_end: end,
            observed: signal.observed,
            expected: signal.expected,
            threshold: signal.threshold,
            method: signal.method.to_owned(),
            summary: String::new(),
        };
        let summary = format!(
            "{} {}: {} on {day}, expected {:.1} ({})",
            stored.dimension, stored.value, signal.observed, signal.expected, signal.method
        );
        sqlx::query(
            "INSERT INTO alerts (alert_id, kind, dimension, value, raised_at, window_start, \
             window_end, observed, expected, threshold, method, summary) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(stored.alert_id)
        .bind(&stored.kind)
        .bind(&stored.dimension)
        .bind(&stored.value)
        .bind(now)
        .bind(start)
        .bind(end)
        .bind(signal.observed)
        .bind(signal.expected)
        .bind(signal.threshold)
        .bind(signal.method)
        .bind(&summary)
        .execute(&mut *tx)
        .await?;
        let event = redress_proto::events::v1::AlertRaised {
            alert_id: stored.alert_id.to_string(),
            subject: Some(stored.subject()),
            window_start: Some(timestamp(start)),
            window_end: Some(timestamp(end)),
            observed: signal.observed,
            expected: signal.expected,
            threshold: signal.threshold,
            method: signal.method.to_owned(),
            severity: redress_proto::common::v1::Severity::High as i32,
            summary,
        };
        publish(&mut tx, stored.alert_id, event).await?;
        raised += 1;
    }
    tx.commit().await?;
    Ok((raised, resolved))
}

fn window(ctx: &crate::cells::Context, day: chrono::NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    use chrono::TimeZone;
    let at = |d: chrono::NaiveDate| {
        ctx.tz
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    };
    (at(day), at(day.succ_opt().unwrap_or(day)))
}

async fn publish<P: redress_proto::EventPayload>(
    tx: &mut sqlx::PgConnection,
    alert_id: Uuid,
    payload: P,
) -> Result<(), sqlx::Error> {
    let event = redress_runtime::new_event(
        crate::SERVICE,
        alert_id.to_string(),
        1,
        redress_runtime::event::service_actor(crate::SERVICE),
        payload,
    );
    redress_runtime::outbox::enqueue(tx, &[redress_runtime::OutboxMessage::event(&event)]).await
}

type Condition = ((String, String, String), crate::detect::Signal);

/// The conditions that hold on `day`: spikes per dimension value, on-time below threshold,
/// vulnerable-consumer clusters.
async fn conditions(
    tx: &mut sqlx::PgConnection,
    ctx: &crate::cells::Context,
    rules: &crate::detect::Rules,
    day: chrono::NaiveDate,
) -> Result<Vec<Condition>, sqlx::Error> {
    let history = (rules.spike.seasonal_weeks * 7 + 14) as u64;
    let first = day - chrono::Days::new(history);
    let mut out = Vec::new();
    for dimension in &rules.spike.dimensions {
        let (measure, column) = match dimension.as_str() {
            "root_cause" => ("root_cause", "detail"),
            d if crate::cells::DIMENSIONS.contains(&d) => ("received", d),
            _ => continue,
        };
        // `column` and `measure` are fixed dimension and measure names.
        let rows: Vec<(String, chrono::NaiveDate, f64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {column}::text, period, sum({measure})::float8 FROM cube_day \
             WHERE period BETWEEN $1 AND $2 AND {column}::text <> '' \
             GROUP BY 1, 2 HAVING sum({measure}) <> 0"
            )))
            .bind(first)
            .bind(day)
            .fetch_all(&mut *tx)
            .await?;
        let mut series: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        for (value, period, count) in rows {
            let slot = series
                .entry(value)
                .or_insert_with(|| vec![0.0; history as usize + 1]);
            let i = (period - first).num_days() as usize;
            if let Some(c) = slot.get_mut(i) {
                *c += count;
            }
        }
        for (value, counts) in series {
            if let Some(signal) = crate::detect::spike(&rules.spike, &ctx.calendar, &counts, day) {
                out.push((("spike".to_owned(), dimension.clone(), value), signal));
            }
        }
    }
    let since = day - chrono::Days::new(rules.on_time.window_days.max(1) as u64 - 1);
    let (on_time, late): (f64, f64) = sqlx::query_as(
        "SELECT coalesce(sum(on_time), 0)::float8, coalesce(sum(late), 0)::float8 \
         FROM cube_day WHERE period BETWEEN $1 AND $2",
    )
    .bind(since)
    .bind(day)
    .fetch_one(&mut *tx)
    .await?;
    let decided = on_time + late;
    if decided >= rules.on_time.min_decided && on_time / decided < rules.on_time.threshold {
        let signal = crate::detect::Signal {
            observed: on_time / decided,
            expected: rules.on_time.threshold,
            threshold: rules.on_time.threshold,
            method: "threshold",
        };
        out.push((
            (
                "on_time_rate".to_owned(),
                "all".to_owned(),
                "all".to_owned(),
            ),
            signal,
        ));
    }
    let since = day - chrono::Days::new(rules.vulnerable_cluster.window_days.max(1) as u64 - 1);
    let clusters: Vec<(String, f64)> = sqlx::query_as(
        "SELECT category, sum(received)::float8 FROM cube_day \
         WHERE vulnerable AND period BETWEEN $1 AND $2 AND category <> '' GROUP BY 1 \
         HAVING sum(received) >= $3",
    )
    .bind(since)
    .bind(day)
    .bind(rules.vulnerable_cluster.min_count)
    .fetch_all(&mut *tx)
    .await?;
    for (category, n) in clusters {
        let signal = crate::detect::Signal {
            observed: n,
            expected: rules.vulnerable_cluster.min_count,
            threshold: rules.vulnerable_cluster.min_count,
            method: "threshold",
        };
        out.push((
            (
                "vulnerable_cluster".to_owned(),
                "category".to_owned(),
                category,
            ),
            signal,
        ));
    }
    Ok(out)
}

fn condition(kind: &str, dimension: &str, value: &str, signal: crate::detect::Signal) -> Condition {
    (
        (kind.to_owned(), dimension.to_owned(), value.to_owned()),
        signal,
    )
}

/// The classifier's health: the age of the oldest complaint waiting for a specialist (from
/// the facts: the queue is what is pending now, not a sum), and drift per model class.
async fn model_health(
    tx: &mut sqlx::PgConnection,
    rules: &crate::detect::Rules,
    day: chrono::NaiveDate,
) -> Result<Vec<Condition>, sqlx::Error> {
    let mut out = Vec::new();
    let (waiting, oldest_hours): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), (extract(epoch FROM now() - min(needs_review_at)) / 3600)::float8 \
         FROM facts WHERE needs_review_at IS NOT NULL AND NOT overridden AND NOT withdrawn \
         AND decided_at IS NULL",
    )
    .fetch_one(&mut *tx)
    .await?;
    let max = rules.review_queue.max_age_hours;
    if let Some(hours) = oldest_hours.filter(|h| *h > max) {
        let signal = crate::detect::Signal {
            observed: hours,
            expected: max,
            threshold: max,
            method: "threshold",
        };
        tracing::info!(waiting, hours, "review queue older than allowed");
        out.push(condition(
            "review_queue_age",
            "queue",
            "classification",
            signal,
        ));
    }
    let rule = &rules.model_drift;
    let since = day - chrono::Days::new(rule.window_days.max(1) as u64 - 1);
    let deciles: Vec<String> = (0..10)
        .map(|k| format!("sum({})::float8", crate::cells::confidence_name(k)))
        .collect();
    // Column names are the confidence decile measures.
    let classes: Vec<(String, Vec<f64>, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT detail, ARRAY[{}], sum(overridden)::float8 FROM cube_day \
         WHERE period BETWEEN $1 AND $2 AND classified <> 0 GROUP BY 1",
        deciles.join(", ")
    )))
    .bind(since)
    .bind(day)
    .fetch_all(&mut *tx)
    .await?;
    for (class, deciles, overridden) in classes {
        if let Some(signal) = crate::detect::drift(rule, &deciles, overridden) {
            out.push(condition("model_drift", "model_class", &class, signal));
        }
    }
    Ok(out)
}

/// Partners' complaint rates: the last `window_days` against the `baseline_days` before,
/// each against the partner's volume from the denominators (partners without one are
/// left to the count spike).
async fn partner_rates(
    tx: &mut sqlx::PgConnection,
    rules: &crate::detect::Rules,
    denominators: &crate::report::Denominators,
    day: chrono::NaiveDate,
) -> Result<Vec<Condition>, sqlx::Error> {
    let rule = &rules.partner_rate;
    let window = rule.window_days.max(1) as u64;
    let recent_from = day - chrono::Days::new(window - 1);
    let base_to = recent_from.pred_opt().unwrap_or(recent_from);
    let base_from = recent_from - chrono::Days::new(rule.baseline_days.max(1) as u64);
    let counts: Vec<(String, f64, f64)> = sqlx::query_as(
        "SELECT partner, coalesce(sum(received) FILTER (WHERE period >= $2), 0)::float8, \
                coalesce(sum(received) FILTER (WHERE period < $2), 0)::float8 \
         FROM cube_day WHERE period BETWEEN $1 AND $3 AND partner <> '' GROUP BY 1",
    )
    .bind(base_from)
    .bind(recent_from)
    .bind(day)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::new();
    for (partner, recent, base) in counts {
        let volumes = (
            denominators.partner_volume(&partner, recent_from, day),
            denominators.partner_volume(&partner, base_from, base_to),
        );
        let (Some(recent_volume), Some(base_volume)) = volumes else {
            continue;
        };
        if let Some(signal) =
            crate::detect::partner_jump(rule, recent, recent_volume, base, base_volume)
        {
            out.push(condition("partner_rate", "partner", &partner, signal));
        }
    }
    Ok(out)
}

/// Evaluates the rules every `interval` until shutdown.
pub async fn run(
    db: redress_runtime::Database,
    ctx: std::sync::Arc<crate::cells::Context>,
    rules: crate::detect::Rules,
    denominators: crate::report::Denominators,
    interval: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let today = Utc::now().with_timezone(&ctx.tz).date_naive();
        if let Err(error) = evaluate(db.pool(), &ctx, &rules, &denominators, today).await {
            tracing::warn!(%error, "alert evaluation failed; will try again");
        }
    }
}
