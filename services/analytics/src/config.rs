//! Analytics' settings: the runtime's, plus the regime whose calendar gives the business
//! time zone and working days, the alert rules, and the `rebuild` command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use redress_runtime::{RuntimeConfig, ServiceConfig};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "redress-analytics",
    about = "Redress analytics: figures, trends, alerts and reports from every event on the bus"
)]
pub struct Config {
    #[command(flatten)]
    pub runtime: RuntimeConfig,
    #[command(flatten)]
    pub analytics: AnalyticsConfig,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl ServiceConfig for Config {
    fn runtime(&self) -> &RuntimeConfig {
        &self.runtime
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Recomputes every figure from the event streams into a fresh schema, then swaps it in.
    Rebuild {
        /// Replay events stored since this instant (RFC 3339) or local date (YYYY-MM-DD);
        /// it must be no later than the first event the figures should count.
        #[arg(long)]
        from: String,
    },
    /// Writes facts and the day and month cubes as CSV files (facts.csv, cube_day.csv,
    /// cube_month.csv) into a directory, for DuckDB or another columnar engine.
    Export {
        /// The directory to write into (made if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AnalyticsConfig {
    /// The regime whose calendar sets the business time zone and working days
    /// (cn-nfra, us-cfpb, uk-fca; see crates/regime).
    #[arg(
        long = "analytics-regime",
        env = "REDRESS_ANALYTICS_REGIME",
        default_value = "cn-nfra"
    )]
    pub regime: String,

    /// An alert rules file; the shipped data/alert-rules-v1.toml when not set.
    #[arg(long, env = "REDRESS_ANALYTICS_ALERT_RULES")]
    pub alert_rules: Option<PathBuf>,

    /// How often each replica evaluates the alert rules (one replica at a time).
    #[arg(long, env = "REDRESS_ANALYTICS_ALERT_INTERVAL", default_value = "60s",
          value_parser = redress_runtime::config::parse_duration)]
    pub alert_interval: std::time::Duration,

    /// How often the Prometheus gauges (open cases, on-time rate) are refreshed.
    #[arg(long, env = "REDRESS_ANALYTICS_GAUGE_INTERVAL", default_value = "15s",
          value_parser = redress_runtime::config::parse_duration)]
    pub gauge_interval: std::time::Duration,

    /// A denominators file for complaint rates; the shipped data/denominators-v1.toml when
    /// not set.
    #[arg(long, env = "REDRESS_ANALYTICS_DENOMINATORS")]
    pub denominators: Option<PathBuf>,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        redress_runtime::config::defaults_of()
    }
}
