//! Intake's settings: the runtime's, plus the vault keys and the duplicate rules.

use clap::{Args, Parser};
use redress_runtime::RuntimeConfig;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "redress-intake",
    about = "Redress intake: registers complaints from every channel"
)]
pub struct Config {
    #[command(flatten)]
    pub runtime: RuntimeConfig,
    #[command(flatten)]
    pub intake: IntakeConfig,
}

#[derive(Debug, Clone, Args)]
pub struct IntakeConfig {
    /// Encryption keys for personal data: `id:base64(32 bytes)`, comma-separated. Keep old
    /// keys listed until `redress intake rotate-key` has re-sealed everything.
    #[arg(long, env = "REDRESS_INTAKE_KEYS", hide_env_values = true)]
    pub keys: String,

    /// The key id new values are sealed with.
    #[arg(long, env = "REDRESS_INTAKE_ACTIVE_KEY")]
    pub active_key: String,

    /// HMAC key (base64, ≥ 32 bytes) behind `consumerRef` pseudonyms. Changing it changes
    /// every pseudonym: never rotate it casually.
    #[arg(long, env = "REDRESS_INTAKE_PSEUDONYM_KEY", hide_env_values = true)]
    pub pseudonym_key: String,

    #[command(flatten)]
    pub settings: Settings,
}

/// The rules registration applies.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// The business time zone: reference numbers carry the local date.
    #[arg(long, env = "REDRESS_TIME_ZONE", default_value = "Asia/Shanghai", value_parser = parse_tz)]
    pub time_zone: chrono_tz::Tz,

    /// How far back a similar complaint from the same consumer counts as a suspected duplicate.
    #[arg(
        long,
        env = "REDRESS_INTAKE_DUPLICATE_WINDOW_DAYS",
        default_value_t = 30
    )]
    pub duplicate_window_days: i64,

    /// Text similarity (0–1) from which a complaint is a suspected duplicate.
    #[arg(long, env = "REDRESS_INTAKE_SIMILARITY", default_value_t = 0.6)]
    pub similarity_threshold: f64,

    /// How long the INTAKE stream's copy of a submission waits before the durable consumer
    /// registers it, so that a request's own reply path registers it first and can tell the
    /// first submission from a resend (see docs/decisions.md).
    #[arg(long, env = "REDRESS_INTAKE_REQUEST_GRACE", default_value = "500ms",
          value_parser = redress_runtime::config::parse_duration)]
    pub request_grace: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            time_zone: chrono_tz::Asia::Shanghai,
            duplicate_window_days: 30,
            similarity_threshold: 0.6,
            request_grace: std::time::Duration::from_millis(500),
        }
    }
}

fn parse_tz(text: &str) -> Result<chrono_tz::Tz, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an IANA time zone such as Asia/Shanghai"))
}
