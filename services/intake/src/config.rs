//! Intake's settings: the runtime's, plus the vault keys and the duplicate rules.

use clap::{Args, Parser};
use redress_runtime::{RuntimeConfig, ServiceConfig};
use secrecy::SecretString;

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
    /// Without a command, the service runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Operations on intake's own schema, run by its own binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Re-seal every stored personal-data value under REDRESS_INTAKE_ACTIVE_KEY, then exit.
    RotateKey,
}

impl ServiceConfig for Config {
    fn runtime(&self) -> &RuntimeConfig {
        &self.runtime
    }
}

/// Intake's own settings. The three keys are required to start (`redress dev` supplies
/// development keys); `redress keys generate intake` makes real ones.
#[derive(Debug, Clone, Default, Args)]
pub struct IntakeConfig {
    /// Encryption keys for personal data: `id:base64(32 bytes)`, comma-separated. Keep old
    /// keys listed until `redress-intake rotate-key` has re-sealed everything.
    #[arg(long = "intake-keys", env = "REDRESS_INTAKE_KEYS", hide_env_values = true,
          value_parser = secret)]
    pub keys: Option<SecretString>,

    /// The key id new values are sealed with.
    #[arg(long = "intake-active-key", env = "REDRESS_INTAKE_ACTIVE_KEY")]
    pub active_key: Option<String>,

    /// HMAC key (base64, ≥ 32 bytes) behind `consumerRef` pseudonyms. Changing it changes
    /// every pseudonym: never rotate it casually.
    #[arg(long = "intake-pseudonym-key", env = "REDRESS_INTAKE_PSEUDONYM_KEY",
          hide_env_values = true, value_parser = secret)]
    pub pseudonym_key: Option<SecretString>,

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
    #[arg(long, env = "REDRESS_INTAKE_DUPLICATE_WINDOW_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub duplicate_window_days: i64,

    /// Text similarity (0–1) from which a complaint is a suspected duplicate.
    #[arg(long, env = "REDRESS_INTAKE_SIMILARITY", default_value_t = 0.6, value_parser = fraction)]
    pub similarity_threshold: f64,

    /// How long the INTAKE stream's copy of a submission waits before the durable consumer
    /// registers it, so that a request's own reply path registers it first and can tell the
    /// first submission from a resend (see docs/decisions.md).
    #[arg(long, env = "REDRESS_INTAKE_REQUEST_GRACE", default_value = "500ms",
          value_parser = redress_runtime::config::parse_duration)]
    pub request_grace: std::time::Duration,

    /// How long before registration a complaint may say it was received (`receivedAt`).
    #[arg(long, env = "REDRESS_INTAKE_MAX_BACKDATE", default_value = "30d",
          value_parser = redress_runtime::config::parse_duration)]
    pub max_backdate: std::time::Duration,
}

impl Settings {
    pub fn max_backdate(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.max_backdate).unwrap_or(chrono::Duration::days(30))
    }
}

impl Default for Settings {
    fn default() -> Self {
        redress_runtime::config::defaults_of()
    }
}

fn secret(text: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(text.to_owned()))
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is not a number between 0 and 1")),
    }
}

fn parse_tz(text: &str) -> Result<chrono_tz::Tz, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an IANA time zone such as Asia/Shanghai"))
}
