//! # Notification
//!
//! Owns step 反馈与跟踪 towards the consumer: every notice a regime requires is recorded before
//! it is sent, sent as due work over e-mail (SMS when a provider is configured), and kept as
//! the Art. 21 proof (cn-nfra): channel, masked address, template id and version, SHA-256 of
//! what was rendered, provider message id, and every status with its time.
//!
//! - **Consumes** `COMPLAINT_EVENTS` (durable `notification-complaints`: withdrawn) and
//!   `CASE_EVENTS` (durable `notification-cases`: created → receipt, assigned, extended,
//!   clock_paused / clock_resumed, decided → decision or review outcome and the survey,
//!   withdrawn) — one consumer per stream, as NATS 2.9 has no multi-filter consumers — and
//!   every case event again (durable `notification-webhooks`) for department webhooks.
//! - **Publishes** `redress.notification.v1.{sent,delivered,failed,webhook_disabled}` through
//!   the outbox.
//! - **Calls** intake's `GetContact` at send time, and case-coordination's `RecordSatisfaction`
//!   with the consumer's survey answer (回访), or no answer after one reminder.
//! - **Owns** schema `notification`: deliveries, their status history, attempts, specialist
//!   tasks, survey opt-outs, surveys and their answers, and the cases' non-personal facts.
//! - **API** gRPC `redress.notification.v1.NotificationService`: ListDeliveries, Resend,
//!   Preview, ListTasks, RecordSurveyAnswer, OptOutOfSurveys, and the webhook endpoints'
//!   RPCs; an HTTP callback for SMS receipts.
//! - **Rules as data**: which notices, by when, with their article:
//!   `crates/regime/data/notices/<regime>.toml`; the texts: `templates/`.
//!
//! ```text
//! notices    — the regime's notices and their periods (data)
//! templates  — minijinja templates per notice × channel × language × version; SMS length
//! handlers   — events → deliveries recorded once
//! store      — all SQL
//! deliver    — the due-work handler that sends (record-before-send, in-doubt, outbox)
//! contact    — intake GetContact at send time, never stored
//! cases      — case-coordination GetCase / RecordSatisfaction
//! satisfaction — 回访: survey follow-up (one reminder, then no answer), answers to the case
//! smtp       — e-mail over SMTP (lettre, rustls + ring, pooled)
//! sms        — SMS through redress-outbound's providers, with failover
//! receipts   — SMS receipts: pushed (HTTP) or asked for (due work), deduped, applied once
//! webhooks   — department webhooks: fan-out, sending as due work, endpoint management
//! quiet      — quiet hours
//! mask       — masked addresses
//! api        — gRPC
//! ```

pub mod api;
pub mod cases;
pub mod config;
pub mod contact;
pub mod deliver;
pub mod handlers;
pub mod mask;
pub mod notices;
pub mod quiet;
pub mod receipts;
pub mod satisfaction;
pub mod sms;
pub mod smtp;
pub mod store;
pub mod templates;
pub mod webhooks;

use std::sync::Arc;

use redress_proto::{
    bus::CASE_EVENTS,
    events::v1::{
        CaseAssigned, CaseClockPaused, CaseClockResumed, CaseCreated, CaseDecided, CaseExtended,
        CaseWithdrawn, ComplaintWithdrawn,
    },
    notification::v1::notification_service_server::NotificationServiceServer,
};
use redress_runtime::{
    Consumer, Running, Service, StartError,
    db::Database,
    jobs::{Queue, RetrySchedule},
};
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub const SERVICE: &str = "notification";

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What the handlers, the sender and the API share.
pub struct Shared {
    pub db: Database,
    pub notices: notices::Notices,
    pub templates: templates::Templates,
    pub contacts: contact::Contacts,
    /// Case-coordination, for RecordSatisfaction.
    pub cases: cases::Cases,
    pub mailer: Option<smtp::Mailer>,
    /// SMS providers in failover order, when `REDRESS_SMS_CONFIG` names any.
    pub sms: Option<sms::Sms>,
    pub webhooks: webhooks::Webhooks,
    pub settings: Settings,
}

/// The settings the sender and the handlers read.
pub struct Settings {
    pub time_zone: chrono_tz::Tz,
    pub quiet: quiet::QuietHours,
    pub fallback: Vec<String>,
    pub rate_per_hour: u32,
    pub survey_delay: chrono::Duration,
    /// Survey sent → the one reminder; reminder sent → no answer.
    pub survey_reminder: chrono::Duration,
    pub survey_no_answer: chrono::Duration,
    /// Waits between tries to reach case-coordination with an answer (never given up).
    pub cases_retry: RetrySchedule,
}

/// The webhook sender from the settings: the SSRF policy, the timeout, the retry policy
/// (the shipped data unless overridden), a private CA.
fn webhooks_of(n: &config::NotificationConfig) -> Result<webhooks::Webhooks, StartError> {
    use redress_outbound::webhook::{RetryPolicy, SsrfPolicy};
    let mut retry =
        RetryPolicy::standard().map_err(|e| StartError::config("webhook-retry.json", e))?;
    if !n.webhook_retry_delays.is_empty() {
        retry.delays.clone_from(&n.webhook_retry_delays);
    }
    if let Some(after) = n.webhook_disable_after {
        retry.disable_after = after;
    }
    let root = match &n.webhook_ca {
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|e| StartError::config("REDRESS_WEBHOOK_CA", e))?;
            Some(
                reqwest::Certificate::from_pem(&pem)
                    .map_err(|e| StartError::config("REDRESS_WEBHOOK_CA", e))?,
            )
        }
        None => None,
    };
    let policy = SsrfPolicy {
        allow_insecure_http: n.webhook_allow_http,
        allowed_networks: n.webhook_allowed_networks.clone(),
    };
    Ok(webhooks::Webhooks::new(
        policy,
        n.webhook_timeout,
        retry,
        root,
    ))
}

/// Starts notification and returns once it is serving; cancel `shutdown` to stop it.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let n = &config.notification;
    let notices = notices::Notices::shipped(&n.regime)
        .map_err(|e| StartError::config("REDRESS_REGIME", e))?;
    let templates = templates::Templates::shipped(&n.sms_signature)
        .map_err(|e| StartError::config("templates", e))?;
    let key = n.service_key.as_ref().ok_or_else(|| {
        StartError::config(
            "REDRESS_SERVICE_KEY",
            "required: contacts are read from intake as service:notification",
        )
    })?;
    let contacts = contact::Contacts::new(&n.intake_url, key)
        .map_err(|e| StartError::config("REDRESS_SERVICE_KEY", e))?;
    let cases = cases::Cases::new(&n.cases_url, key)
        .map_err(|e| StartError::config("REDRESS_CASES_URL", e))?;
    let mailer = match &n.smtp_url {
        Some(url) => Some(
            smtp::Mailer::new(url, n.smtp_ca.as_deref(), &n.smtp_from, n.smtp_pool)
                .map_err(|e| StartError::config("REDRESS_SMTP_URL", e))?,
        ),
        None => None,
    };
    let sms = match &n.sms_config {
        Some(path) => {
            let settings = config::SmsSettings::load(path, &n.sms_signature)
                .map_err(|e| StartError::config("REDRESS_SMS_CONFIG", e))?;
            Some(
                sms::Sms::new(settings, n.sms_receipt_gap)
                    .map_err(|e| StartError::config("REDRESS_SMS_CONFIG", e))?,
            )
        }
        None => None,
    };
    let receipts_listener = match n.sms_receipts_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| StartError::config("REDRESS_SMS_RECEIPTS_ADDR", e))?,
        ),
        None => None,
    };
    let webhooks = webhooks_of(n)?;
    let settings = Settings {
        time_zone: n.time_zone,
        quiet: n.quiet_hours,
        fallback: n.fallback.clone(),
        rate_per_hour: n.rate_per_hour,
        survey_delay: chrono::Duration::from_std(n.survey_delay)
            .map_err(|e| StartError::config("REDRESS_NOTIFY_SURVEY_DELAY", e))?,
        survey_reminder: chrono::Duration::from_std(n.survey_reminder)
            .map_err(|e| StartError::config("REDRESS_NOTIFY_SURVEY_REMINDER", e))?,
        survey_no_answer: chrono::Duration::from_std(n.survey_no_answer)
            .map_err(|e| StartError::config("REDRESS_NOTIFY_SURVEY_NO_ANSWER", e))?,
        cases_retry: RetrySchedule::Exponential {
            first: n.cases_retry_first,
            max: n.cases_retry_max.max(n.cases_retry_first),
            // Counted by the answer itself (Outcome::Later), never exhausted.
            attempts: u32::MAX,
        },
    };
    let (workers, poll, retry) = (
        n.workers.max(1),
        n.poll,
        RetrySchedule::Exponential {
            first: n.retry_first,
            max: std::time::Duration::from_secs(6 * 3600),
            attempts: n.attempts.max(1),
        },
    );
    let mut service = Service::start(
        SERVICE,
        "notification",
        config.runtime,
        &MIGRATIONS,
        shutdown,
    )
    .await?;
    let shared = Arc::new(Shared {
        db: service.db.clone(),
        notices,
        templates,
        contacts,
        cases,
        mailer,
        sms,
        webhooks,
        settings,
    });
    let events = handlers::Events {
        shared: shared.clone(),
    };
    service.consume(
        Consumer::durable("notification-complaints").on::<ComplaintWithdrawn>(events.clone()),
    )?;
    service.consume(
        Consumer::durable("notification-cases")
            .on::<CaseCreated>(events.clone())
            .on::<CaseAssigned>(events.clone())
            .on::<CaseExtended>(events.clone())
            .on::<CaseClockPaused>(events.clone())
            .on::<CaseClockResumed>(events.clone())
            .on::<CaseDecided>(events.clone())
            .on::<CaseWithdrawn>(events),
    )?;
    // Several workers on one queue: each claims with SKIP LOCKED, one delivery per
    // transaction, so a crash leaves at most one send per worker in doubt.
    let deliver = Arc::new(deliver::Deliver {
        shared: shared.clone(),
    });
    for _ in 0..workers {
        service.run_jobs(Queue {
            name: store::DELIVER,
            handler: deliver.clone(),
            retry: retry.clone(),
            batch: 1,
            poll,
        });
    }
    service.consume(Consumer::raw(
        "notification-webhooks",
        CASE_EVENTS,
        "redress.case.v1.>",
        webhooks::fanout::Fanout,
    ))?;
    for _ in 0..workers {
        service.run_jobs(Queue {
            name: webhooks::QUEUE,
            handler: Arc::new(webhooks::send::Send {
                shared: shared.clone(),
            }),
            // The schedule is the policy's (Outcome::Later); this covers database errors.
            retry: RetrySchedule::Exponential {
                first: std::time::Duration::from_secs(5),
                max: std::time::Duration::from_secs(3600),
                attempts: 8,
            },
            batch: 1,
            poll,
        });
    }
    // 回访: the reminder and no-answer steps, and answers passed to the case.
    service.run_jobs(Queue {
        name: satisfaction::FOLLOW_UP,
        handler: Arc::new(satisfaction::FollowUp {
            shared: shared.clone(),
        }),
        retry: RetrySchedule::Exponential {
            first: n.retry_first,
            max: std::time::Duration::from_secs(3600),
            attempts: 8,
        },
        batch: 10,
        poll,
    });
    service.run_jobs(Queue {
        name: satisfaction::TO_CASE,
        handler: Arc::new(satisfaction::ToCase {
            shared: shared.clone(),
        }),
        // Unreachable case-coordination is Outcome::Later with its own backoff; this covers
        // database errors.
        retry: RetrySchedule::Exponential {
            first: n.cases_retry_first,
            max: n.cases_retry_max.max(n.cases_retry_first),
            attempts: 8,
        },
        // One answer per transaction: each holds its row during a call to case-coordination.
        batch: 1,
        poll,
    });
    if shared.sms.is_some() {
        service.run_jobs(Queue {
            name: store::RECEIPT_POLL,
            handler: Arc::new(receipts::Poll {
                shared: shared.clone(),
            }),
            retry: RetrySchedule::Exponential {
                first: n.sms_receipt_gap,
                max: std::time::Duration::from_secs(6 * 3600),
                attempts: 8,
            },
            batch: 1,
            poll,
        });
    }
    if let Some(listener) = receipts_listener {
        let stop = service.shutdown_token();
        let router = receipts::router(shared.clone());
        service.spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "SMS receipt callback stopped");
            }
        });
    }
    let api = api::Api { shared };
    service.serve(NotificationServiceServer::new(api)).await
}
