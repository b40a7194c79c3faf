//! # Analytics
//!
//! Owns steps 数据记录与分析 and 持续改进: turns every event on the bus into figures, trends,
//! alerts and reports, without personal data (it sees `consumer_ref`, never a name).
//!
//! - **Consumes** one durable consumer per stream (complaints, intake rejections, cases,
//!   notifications), each event merged into its complaint's fact and the fact's change of
//!   contribution upserted into the aggregates, in the consumer's batch transaction.
//! - **Publishes** `redress.analytics.v1.alert.<kind>.{raised,resolved}` through the outbox.
//! - **Owns** schema `analytics`: facts, agg_day, agg_month, alerts.
//! - **API** gRPC `redress.analytics.v1.AnalyticsService`: Breakdown, Trend, ListAlerts,
//!   GetReport, ExportCsv.
//!
//! ```text
//! events   — the bus's events reduced to what figures need (one path for live and rebuild)
//! facts    — one fact per complaint, merged from its events in any order
//! cells    — what a fact contributes to the aggregates (day, dimensions, measure)
//! store    — the write path: a batch of events in one transaction
//! handlers — the durable consumers
//! query    — the read path: breakdowns and derived measures
//! rebuild  — every figure again from the streams, into a fresh schema, then swapped in
//! alerts   — spikes and thresholds, raised once and resolved (outbox)
//! report   — management and regulator reports (HTML + SVG, CSV); svg, csv
//! pdf      — a report's HTML printed to PDF by headless Chromium
//! export   — facts and cubes as CSV for a columnar engine (DuckDB)
//! gauges   — Prometheus gauges of live figures
//! api      — gRPC
//! ```

pub mod alerts;
pub mod api;
pub mod cells;
pub mod config;
pub mod csv;
pub mod detect;
pub mod events;
pub mod export;
pub mod facts;
pub mod gauges;
pub mod handlers;
pub mod pdf;
pub mod query;
pub mod rebuild;
pub mod report;
pub mod store;
pub mod svg;

use std::sync::Arc;

use redress_proto::analytics::v1::analytics_service_server::AnalyticsServiceServer;
use redress_regime::Regime;
use redress_runtime::{Exit, Service, StartError};
use tokio_util::sync::CancellationToken;

pub use config::{Command, Config};

pub const SERVICE: &str = "analytics";
/// The schema's base name (behind the bus namespace when there is one).
pub const SCHEMA: &str = "analytics";

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The business time zone and working-day calendar of a regime.
pub fn context(regime: &str) -> Result<cells::Context, StartError> {
    let setting = "REDRESS_ANALYTICS_REGIME";
    let regime = Regime::by_name(regime).map_err(|e| StartError::config(setting, e))?;
    let calendar = regime
        .default_calendar()
        .map_err(|e| StartError::config(setting, e))?;
    let tz = calendar
        .time_zone()
        .ok_or_else(|| StartError::config(setting, "its calendar names no time zone"))?;
    Ok(cells::Context::new(tz, calendar))
}

fn reports(config: &Config) -> Result<report::Reports, StartError> {
    let setting = "REDRESS_ANALYTICS_DENOMINATORS";
    let text = match &config.analytics.denominators {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| StartError::config(setting, format!("{}: {e}", path.display())))?,
        None => report::DENOMINATORS_V1.to_owned(),
    };
    let denominators =
        report::Denominators::parse(&text).map_err(|e| StartError::config(setting, e))?;
    Ok(report::Reports { denominators })
}

fn alert_rules(config: &Config) -> Result<detect::Rules, StartError> {
    let setting = "REDRESS_ANALYTICS_ALERT_RULES";
    let text = match &config.analytics.alert_rules {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| StartError::config(setting, format!("{}: {e}", path.display())))?,
        None => detect::RULES_V1.to_owned(),
    };
    detect::Rules::parse(&text).map_err(|e| StartError::config(setting, e))
}

async fn export(config: &Config, out: &std::path::Path) -> Result<(), StartError> {
    use secrecy::ExposeSecret;
    let schema = redress_runtime::db::schema_name(&config.runtime.bus_namespace, SCHEMA);
    let db = redress_runtime::db::Database::connect(
        config.runtime.database_url.expose_secret(),
        SCHEMA,
        &schema,
        config.runtime.db_max_connections,
        &MIGRATIONS,
    )
    .await?;
    let written = export::write(db.pool(), out)
        .await
        .map_err(|e| StartError::config("--out", e))?;
    for (path, bytes) in written {
        println!("{path}\t{bytes} bytes");
    }
    Ok(())
}

/// Starts analytics (or runs its command) and returns once it is serving.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Exit, StartError> {
    let ctx = Arc::new(context(&config.analytics.regime)?);
    let reports = Arc::new(reports(&config)?);
    if let Some(Command::Rebuild { from }) = &config.command {
        rebuild::run(&config, ctx, from).await?;
        return Ok(Exit::Done);
    }
    if let Some(Command::Export { out }) = &config.command {
        export(&config, out).await?;
        return Ok(Exit::Done);
    }
    let rules = alert_rules(&config)?;
    let interval = config.analytics.alert_interval;
    let gauge_interval = config.analytics.gauge_interval;
    let mut service =
        Service::start(SERVICE, SCHEMA, config.runtime, &MIGRATIONS, shutdown).await?;
    let ingest = handlers::Ingest { ctx: ctx.clone() };
    let ctx_gauges = ctx.clone();
    for consumer in handlers::consumers(SERVICE, &ingest) {
        service.consume(consumer)?;
    }
    let work = alerts::run(
        service.db.clone(),
        ctx,
        rules,
        reports.denominators.clone(),
        interval,
        service.shutdown_token(),
    );
    service.spawn(work);
    let gauges = gauges::run(
        service.db.pool().clone(),
        ctx_gauges,
        gauge_interval,
        service.shutdown_token(),
    );
    service.spawn(gauges);
    let api = api::Api {
        db: service.db.clone(),
        pager: service.pager(),
        reports,
    };
    Ok(service
        .serve(AnalyticsServiceServer::new(api))
        .await?
        .into())
}
