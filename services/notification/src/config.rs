//! Notification's settings: the runtime's, plus the regime, where contacts come from, how
//! e-mail is sent, and when SMS may not be.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser};
use redress_runtime::{RuntimeConfig, ServiceConfig, config::parse_duration};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "redress-notification",
    about = "Redress notification: every consumer told in time, with proof"
)]
pub struct Config {
    #[command(flatten)]
    pub runtime: RuntimeConfig,
    #[command(flatten)]
    pub notification: NotificationConfig,
}

impl ServiceConfig for Config {
    fn runtime(&self) -> &RuntimeConfig {
        &self.runtime
    }
}

#[derive(Debug, Clone, Args)]
pub struct NotificationConfig {
    /// The regime whose notices apply to a complaint before its case names one
    /// (cn-nfra, us-cfpb, uk-fca); notices files in crates/regime/data/notices.
    #[arg(long, env = "REDRESS_REGIME", default_value = "cn-nfra")]
    pub regime: String,

    /// Intake's gRPC endpoint, for GetContact at send time.
    #[arg(
        long,
        env = "REDRESS_INTAKE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub intake_url: String,

    /// The private key (PEM) this service signs its calls with, as `service:notification`;
    /// the key id is the file's stem.
    #[arg(long, env = "REDRESS_SERVICE_KEY")]
    pub service_key: Option<PathBuf>,

    /// SMTP server: smtp://host:port (STARTTLS when offered; `?tls=required` to insist),
    /// smtps://host:port (implicit TLS); user:password@ for AUTH. Unset: no e-mail.
    #[arg(long, env = "REDRESS_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// A CA certificate (PEM) to trust for the SMTP server, besides the web PKI roots.
    #[arg(long, env = "REDRESS_SMTP_CA")]
    pub smtp_ca: Option<PathBuf>,

    /// The From of every e-mail.
    #[arg(
        long,
        env = "REDRESS_SMTP_FROM",
        default_value = "Redress <noreply@redress.invalid>"
    )]
    pub smtp_from: String,

    /// Connections kept open to the SMTP server.
    #[arg(long, env = "REDRESS_SMTP_POOL", default_value_t = 4)]
    pub smtp_pool: u32,

    /// The signature every SMS begins with, in 【】 as Chinese carriers require.
    #[arg(long, env = "REDRESS_SMS_SIGNATURE", default_value = "Redress")]
    pub sms_signature: String,

    /// Channels tried after the consumer's preferred one, in order.
    #[arg(
        long,
        env = "REDRESS_NOTIFY_FALLBACK",
        value_delimiter = ',',
        default_value = "email,sms"
    )]
    pub fallback: Vec<String>,

    /// The consumers' local time zone, for quiet hours.
    #[arg(
        long,
        env = "REDRESS_NOTIFY_TIME_ZONE",
        default_value = "Asia/Shanghai"
    )]
    pub time_zone: chrono_tz::Tz,

    /// Quiet hours for SMS and calls, local time (HH:MM-HH:MM).
    #[arg(
        long,
        env = "REDRESS_NOTIFY_QUIET_HOURS",
        default_value = "21:00-08:00"
    )]
    pub quiet_hours: crate::quiet::QuietHours,

    /// How long after the decision the satisfaction survey (回访) is sent.
    #[arg(long, env = "REDRESS_NOTIFY_SURVEY_DELAY", default_value = "24h", value_parser = parse_duration)]
    pub survey_delay: Duration,

    /// Delivery workers (each sends one notice at a time).
    #[arg(long, env = "REDRESS_NOTIFY_WORKERS", default_value_t = 4)]
    pub workers: u16,

    /// How often each worker looks for due deliveries.
    #[arg(long, env = "REDRESS_NOTIFY_POLL", default_value = "1s", value_parser = parse_duration)]
    pub poll: Duration,

    /// First retry delay of a failed send (doubling, ±20 % jitter).
    #[arg(long, env = "REDRESS_NOTIFY_RETRY_FIRST", default_value = "30s", value_parser = parse_duration)]
    pub retry_first: Duration,

    /// Attempts per delivery before it fails for good and becomes a specialist's task.
    #[arg(long, env = "REDRESS_NOTIFY_ATTEMPTS", default_value_t = 6)]
    pub attempts: u32,

    /// Most notices sent to one complaint's consumer per hour; more wait (legal ones too, to
    /// the next hour, unless that would miss their period).
    #[arg(long, env = "REDRESS_NOTIFY_RATE_PER_HOUR", default_value_t = 5)]
    pub rate_per_hour: u32,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        redress_runtime::config::defaults_of()
    }
}
