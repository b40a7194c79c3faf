//! Notification: notices per second sent over SMTP to a local aiosmtpd (Maildir), end to end —
//! a `case.created` event on the bus → the receipt recorded once → due work claims it → the
//! contact read from intake (`GetContact`, gRPC) → rendered → the attempt committed → sent
//! over SMTP → the proof and the `sent` event committed. Latency: the delivery recorded → sent.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use redress_notification::config::NotificationConfig;
use redress_proto::{
    common::v1::Channel,
    events::v1::{CaseCreated, CaseHeader},
    intake::v1::{
        ComplaintSubmission, Consumer, ContactMethod, SubmitComplaintRequest,
        intake_service_client::IntakeServiceClient,
    },
};
use redress_runtime::{
    event::{new_event, service_actor, timestamp},
    testing::{TestEnv, authed, free_port, grpc_channel},
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::report::{Row, percentiles, write};

/// Consumers the notices go to (each notice reads its contact from intake anyway).
const CONSUMERS: usize = 50;
const NOTICES: usize = 2_000;

pub async fn run() -> anyhow::Result<()> {
    let python = python()?;
    let rows = vec![
        one(&python, "receipts by e-mail, 4 workers, SMTP pool 4", 4, 4).await?,
        one(
            &python,
            "receipts by e-mail, 16 workers, SMTP pool 8",
            16,
            8,
        )
        .await?,
    ];
    write(
        "notification",
        "Notification: case event → notice sent to a local SMTP server (aiosmtpd), proof committed",
        &rows,
    )
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The tests' Python environment (aiosmtpd), made once by tests/python/venv.sh.
fn python() -> anyhow::Result<String> {
    let out = std::process::Command::new("bash")
        .arg(root().join("tests/python/venv.sh"))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "tests/python/venv.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

async fn one(python: &str, case: &str, workers: u16, pool: u32) -> anyhow::Result<Row> {
    let env = TestEnv::new().await;
    let port = free_port();
    let maildir = std::env::temp_dir().join(format!("redress-bench-mail-{}", uuid::Uuid::now_v7()));
    // The server stops when its stdin closes: keep the handle until the end.
    let mut smtp = tokio::process::Command::new(python)
        .arg(root().join("services/notification/tests/support/smtp_server.py"))
        .arg(port.to_string())
        .arg(&maildir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = smtp
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("aiosmtpd: no stdout"))?;
    let ready = tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).lines().next_line(),
    )
    .await??;
    anyhow::ensure!(ready.as_deref() == Some("ready"), "aiosmtpd: {ready:?}");

    let shutdown = CancellationToken::new();
    let intake = redress_intake::run(
        redress_intake::Config {
            runtime: env.runtime_config(),
            intake: redress_intake::config::IntakeConfig {
                keys: Some(redress_intake::vault::dev::KEYS.into()),
                active_key: Some(redress_intake::vault::dev::ACTIVE.into()),
                pseudonym_key: Some(redress_intake::vault::dev::PSEUDONYM.into()),
                settings: Default::default(),
            },
            command: None,
        },
        shutdown.clone(),
    )
    .await?;
    let intake_url = format!("http://{}", intake.endpoints.grpc);
    let mut client = IntakeServiceClient::new(grpc_channel(&intake_url).await);
    let mut complaints = Vec::with_capacity(CONSUMERS);
    for n in 0..CONSUMERS {
        let submission = ComplaintSubmission {
            channel: Channel::Web as i32,
            channel_ref: format!("bench-notify-{}", letters(n)),
            title: "重复扣款".into(),
            description: "平台重复扣款两次，请退还。".into(),
            product: "消费贷".into(),
            consumer: Some(Consumer {
                name: "张三".into(),
                email: format!("consumer.{}@example.com", letters(n)),
                preferred_contact: ContactMethod::Email as i32,
                language: "zh-CN".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let reply = client
            .submit_complaint(authed(
                SubmitComplaintRequest {
                    submission: Some(submission),
                },
                &["specialist"],
            ))
            .await?
            .into_inner();
        complaints.push((reply.complaint_id, reply.reference));
    }

    let key_dir = std::env::temp_dir().join(format!("redress-bench-key-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&key_dir)?;
    let key = key_dir.join(format!("{}.pem", redress_runtime::auth::dev::KID));
    std::fs::write(&key, redress_runtime::auth::dev::PRIVATE_PEM)?;
    let mut runtime = env.runtime_config();
    runtime.db_max_connections = 24;
    let notification = redress_notification::run(
        redress_notification::Config {
            runtime,
            notification: NotificationConfig {
                intake_url,
                service_key: Some(key),
                smtp_url: Some(format!("smtp://127.0.0.1:{port}?tls=none")),
                smtp_pool: pool,
                workers,
                poll: Duration::from_millis(50),
                rate_per_hour: 1_000_000,
                ..NotificationConfig::default()
            },
        },
        shutdown.clone(),
    )
    .await?;

    let bus = env.bus().await;
    let db = env.pool("notification").await;
    let started = Instant::now();
    for n in 0..NOTICES {
        let (complaint_id, reference) = &complaints[n % CONSUMERS];
        let case_id = uuid::Uuid::now_v7().to_string();
        let event = new_event(
            "case-coordination",
            case_id.clone(),
            1,
            service_actor("case-coordination"),
            CaseCreated {
                header: Some(CaseHeader {
                    case_id,
                    complaint_id: complaint_id.clone(),
                    reference: reference.clone(),
                    department: "lending".into(),
                    ..Default::default()
                }),
                decision_due: Some(timestamp(chrono::Utc::now() + chrono::Duration::days(15))),
                regime: "cn-nfra".into(),
                ..Default::default()
            },
        );
        bus.publish_event(&event).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let sent = loop {
        let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'sent'")
            .fetch_one(&db)
            .await?;
        if usize::try_from(sent).unwrap_or(0) >= NOTICES || Instant::now() >= deadline {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    let latencies: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM sent_at - created_at) * 1000)::float8 FROM deliveries
         WHERE state = 'sent'",
    )
    .fetch_all(&db)
    .await?;
    let mails = std::fs::read_dir(maildir.join("new")).map_or(0, |d| d.count());
    if mails != NOTICES || usize::try_from(sent).unwrap_or(0) != NOTICES {
        println!("{case}: {sent} recorded as sent, {mails} mails received, of {NOTICES}");
    }
    let (p50, p99) = percentiles(latencies);
    shutdown.cancel();
    let _ = notification.stopped().await;
    let _ = intake.stopped().await;
    drop(smtp);
    let _ = std::fs::remove_dir_all(&maildir);
    let _ = std::fs::remove_dir_all(&key_dir);
    env.cleanup().await;
    Ok(Row {
        case: case.into(),
        count: usize::try_from(sent).unwrap_or(0),
        per_second: sent as f64 / secs,
        p50_ms: p50,
        p99_ms: p99,
    })
}

/// Letters only: a long digit run in a channel reference looks like personal data to intake.
fn letters(n: usize) -> String {
    format!("{n:04}")
        .bytes()
        .map(|b| char::from(b'a' + (b - b'0')))
        .collect()
}
