//! Notification's settings: the runtime's, plus the regime, where contacts come from, how
//! e-mail is sent, and when SMS may not be.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser};
use redress_outbound::sms::{ProviderKind, aliyun, tencent};
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

    /// Case-coordination's gRPC endpoint: satisfaction answers (回访) become RecordSatisfaction
    /// on the case.
    #[arg(
        long,
        env = "REDRESS_CASES_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub cases_url: String,

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

    /// How long after the survey was sent without an answer the one reminder goes.
    #[arg(long, env = "REDRESS_NOTIFY_SURVEY_REMINDER", default_value = "3d", value_parser = parse_duration)]
    pub survey_reminder: Duration,

    /// How long after the reminder was sent without an answer the case is recorded as not
    /// answered (SATISFACTION_NO_ANSWER). With the survey's 24 h and the reminder's 3 days:
    /// the follow-up is settled 7 days after the decision, the internal policy's window.
    #[arg(long, env = "REDRESS_NOTIFY_SURVEY_NO_ANSWER", default_value = "3d", value_parser = parse_duration)]
    pub survey_no_answer: Duration,

    /// First wait before asking case-coordination again when it cannot be reached (doubling,
    /// ±20 % jitter, up to `REDRESS_NOTIFY_CASES_RETRY_MAX`; never given up).
    #[arg(long, env = "REDRESS_NOTIFY_CASES_RETRY_FIRST", default_value = "5s", value_parser = parse_duration)]
    pub cases_retry_first: Duration,

    /// Longest wait between two tries to reach case-coordination.
    #[arg(long, env = "REDRESS_NOTIFY_CASES_RETRY_MAX", default_value = "10m", value_parser = parse_duration)]
    pub cases_retry_max: Duration,

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

    /// SMS providers (TOML: failover order, each provider's endpoint, key id, secret from a
    /// file or an environment variable, signature and approved templates). Unset: no SMS.
    #[arg(long, env = "REDRESS_SMS_CONFIG")]
    pub sms_config: Option<PathBuf>,

    /// Where the providers push delivery receipts (HTTP, `POST /sms/receipts/{aliyun|tencent}`).
    /// Unset: receipts are only polled.
    #[arg(long, env = "REDRESS_SMS_RECEIPTS_ADDR")]
    pub sms_receipts_addr: Option<std::net::SocketAddr>,

    /// Allow http:// webhook endpoints (development only; https otherwise).
    #[arg(long, env = "REDRESS_WEBHOOK_ALLOW_HTTP", default_value_t = false)]
    pub webhook_allow_http: bool,

    /// Networks webhook endpoints may be in although private, loopback or link-local
    /// (CIDRs, comma-separated). Empty: none.
    #[arg(long, env = "REDRESS_WEBHOOK_ALLOWED_NETWORKS", value_delimiter = ',')]
    pub webhook_allowed_networks: Vec<ipnet::IpNet>,

    /// The whole of one webhook attempt (the spec suggests 15 to 30 s).
    #[arg(long, env = "REDRESS_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// Waits after each failed webhook attempt. Unset: svix's schedule, from
    /// crates/outbound/data/webhook-retry.json.
    #[arg(long, env = "REDRESS_WEBHOOK_RETRY_DELAYS", value_delimiter = ',', value_parser = parse_duration)]
    pub webhook_retry_delays: Vec<Duration>,

    /// Failing this long disables an endpoint. Unset: the data file's (a day).
    #[arg(long, env = "REDRESS_WEBHOOK_DISABLE_AFTER", value_parser = parse_duration)]
    pub webhook_disable_after: Option<Duration>,

    /// A CA (PEM) to trust for webhook receivers besides the web PKI roots.
    #[arg(long, env = "REDRESS_WEBHOOK_CA")]
    pub webhook_ca: Option<PathBuf>,

    /// How long after an SMS is sent without a receipt its provider is asked (then doubling).
    #[arg(long, env = "REDRESS_SMS_RECEIPT_GAP", default_value = "10m", value_parser = parse_duration)]
    pub sms_receipt_gap: Duration,
}

/// `REDRESS_SMS_CONFIG`, parsed once at start-up; secrets are read here and nowhere else.
///
/// ```toml
/// order = ["aliyun", "tencent"]          # failover order
/// receipts_token = "…"                   # optional: pushes must carry ?token=…
/// [aliyun]
/// access_key_id = "LTAI…"
/// access_key_secret_file = "/run/secrets/aliyun-sms"   # or access_key_secret_env = "VAR"
/// sign_name = "某银行"
/// templates = { "receipt.sms.zh-CN.v1" = "SMS_0001" }  # ours → the provider's approved id
/// [tencent]
/// secret_id = "AKID…"
/// secret_key_env = "TENCENT_SMS_SECRET"
/// sms_sdk_app_id = "1400000000"
/// sign_name = "某银行"
/// templates = { "receipt.sms.zh-CN.v1" = "449739" }
/// ```
#[derive(Clone)]
pub struct SmsSettings {
    pub order: Vec<ProviderKind>,
    pub receipts_token: Option<String>,
    pub aliyun: Option<aliyun::AliyunConfig>,
    pub tencent: Option<tencent::TencentConfig>,
}

#[derive(Debug, thiserror::Error)]
#[error("REDRESS_SMS_CONFIG ({path}): {field}: {reason}")]
pub struct SmsConfigError {
    pub path: String,
    pub field: String,
    pub reason: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsFile {
    order: Vec<ProviderKind>,
    receipts_token: Option<String>,
    aliyun: Option<AliyunFile>,
    tencent: Option<TencentFile>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AliyunFile {
    endpoint: Option<String>,
    access_key_id: String,
    access_key_secret_file: Option<PathBuf>,
    access_key_secret_env: Option<String>,
    region_id: Option<String>,
    sign_name: String,
    templates: std::collections::HashMap<String, String>,
    timeout_secs: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TencentFile {
    endpoint: Option<String>,
    secret_id: String,
    secret_key_file: Option<PathBuf>,
    secret_key_env: Option<String>,
    region: Option<String>,
    sms_sdk_app_id: String,
    sign_name: String,
    templates: std::collections::HashMap<String, String>,
    timeout_secs: Option<u64>,
}

/// Timeout of one provider request when the file names none: long enough for a slow answer,
/// short enough that a stuck provider does not hold a worker.
const SMS_TIMEOUT_SECS: u64 = 10;

impl SmsSettings {
    /// Reads and checks the file. `signature` is `REDRESS_SMS_SIGNATURE`: each provider's
    /// approved `sign_name` must be it, or the proof's hash would be of a text nobody got.
    pub fn load(path: &std::path::Path, signature: &str) -> Result<Self, SmsConfigError> {
        let error = |field: &str, reason: String| SmsConfigError {
            path: path.display().to_string(),
            field: field.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error("file", e.to_string()))?;
        let file: SmsFile = toml::from_str(&text).map_err(|e| error("toml", e.to_string()))?;
        let aliyun = match file.aliyun {
            Some(a) => Some(aliyun::AliyunConfig {
                endpoint: url(a.endpoint.as_deref(), aliyun::DEFAULT_ENDPOINT)
                    .map_err(|r| error("aliyun.endpoint", r))?,
                access_key_id: a.access_key_id,
                access_key_secret: secret(a.access_key_secret_file, a.access_key_secret_env)
                    .map_err(|r| error("aliyun.access_key_secret_file|_env", r))?,
                region_id: a.region_id.unwrap_or_else(|| "cn-hangzhou".into()),
                sign_name: a.sign_name,
                templates: a.templates,
                timeout: Duration::from_secs(a.timeout_secs.unwrap_or(SMS_TIMEOUT_SECS)),
            }),
            None => None,
        };
        let tencent = match file.tencent {
            Some(t) => Some(tencent::TencentConfig {
                endpoint: url(t.endpoint.as_deref(), tencent::DEFAULT_ENDPOINT)
                    .map_err(|r| error("tencent.endpoint", r))?,
                secret_id: t.secret_id,
                secret_key: secret(t.secret_key_file, t.secret_key_env)
                    .map_err(|r| error("tencent.secret_key_file|_env", r))?,
                region: t.region.unwrap_or_else(|| "ap-guangzhou".into()),
                sms_sdk_app_id: t.sms_sdk_app_id,
                sign_name: t.sign_name,
                templates: t.templates,
                timeout: Duration::from_secs(t.timeout_secs.unwrap_or(SMS_TIMEOUT_SECS)),
            }),
            None => None,
        };
        for kind in &file.order {
            let present = match kind {
                ProviderKind::Aliyun => aliyun.is_some(),
                ProviderKind::Tencent => tencent.is_some(),
            };
            if !present {
                return Err(error(
                    "order",
                    format!("{kind} is listed but has no [{kind}] section"),
                ));
            }
        }
        let signs = [
            ("aliyun.sign_name", aliyun.as_ref().map(|a| &a.sign_name)),
            ("tencent.sign_name", tencent.as_ref().map(|t| &t.sign_name)),
        ];
        for (field, sign) in signs {
            if sign.is_some_and(|s| s != signature) {
                return Err(error(
                    field,
                    format!("must be REDRESS_SMS_SIGNATURE (`{signature}`): it heads every SMS"),
                ));
            }
        }
        if file.order.is_empty() {
            return Err(error("order", "name at least one provider".into()));
        }
        Ok(Self {
            order: file.order,
            receipts_token: file.receipts_token.filter(|t| !t.is_empty()),
            aliyun,
            tencent,
        })
    }
}

fn url(given: Option<&str>, default: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(given.unwrap_or(default)).map_err(|e| e.to_string())
}

/// A secret from a file (trailing newline dropped) or from a named environment variable.
fn secret(file: Option<PathBuf>, env: Option<String>) -> Result<String, String> {
    let value = match (file, env) {
        (Some(path), None) => std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .trim_end()
            .to_owned(),
        (None, Some(var)) => std::env::var(&var).map_err(|_| format!("${var} is not set"))?,
        _ => return Err("give exactly one of the file or the variable".into()),
    };
    if value.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(value)
}

impl Default for NotificationConfig {
    fn default() -> Self {
        redress_runtime::config::defaults_of()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("redress-sms-config-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sms.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    const TENCENT: &str = r#"
[tencent]
secret_id = "AKID"
secret_key_env = "PATH"
sms_sdk_app_id = "1400006666"
sign_name = "某银行"
templates = { "receipt.sms.zh-CN.v1" = "449739" }
"#;

    #[test]
    fn provider_settings_are_read_once_with_their_secrets() {
        let path = write(&format!("order = [\"tencent\"]\n{TENCENT}"));
        let settings = SmsSettings::load(&path, "某银行").unwrap();
        let tencent = settings.tencent.unwrap();
        assert_eq!(tencent.secret_key, std::env::var("PATH").unwrap());
        assert_eq!(tencent.endpoint.as_str(), tencent::DEFAULT_ENDPOINT);
        assert_eq!(tencent.timeout, Duration::from_secs(SMS_TIMEOUT_SECS));
        assert_eq!(settings.order, [ProviderKind::Tencent]);
        assert!(settings.aliyun.is_none() && settings.receipts_token.is_none());
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_field() {
        let cases = [
            (
                format!("order = [\"aliyun\"]\n{TENCENT}"),
                "order",
                "某银行",
            ),
            (format!("order = []\n{TENCENT}"), "order", "某银行"),
            (
                format!("order = [\"tencent\"]\n{TENCENT}"),
                "tencent.sign_name",
                "Redress",
            ),
            (
                format!(
                    "order = [\"tencent\"]\n{}",
                    TENCENT.replace("secret_key_env = \"PATH\"", "")
                ),
                "tencent.secret_key_file|_env",
                "某银行",
            ),
            (
                format!(
                    "order = [\"tencent\"]\n{}",
                    TENCENT.replace("PATH", "REDRESS_NO_SUCH_VARIABLE")
                ),
                "tencent.secret_key_file|_env",
                "某银行",
            ),
            (
                format!("order = [\"tencent\"]\nsecret = 1\n{TENCENT}"),
                "toml",
                "某银行",
            ),
        ];
        for (text, field, signature) in cases {
            let err = SmsSettings::load(&write(&text), signature).err().unwrap();
            assert_eq!(err.field, field, "{err}");
        }
    }
}
