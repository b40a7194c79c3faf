//! What the notification tests share: a real SMTP server (aiosmtpd, Maildir) and the mail it
//! received, a running intake with complaints in it, the service itself, and case events.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, process::Stdio, time::Duration};

use redress_notification::{Config, config::NotificationConfig};
use redress_proto::{
    common::v1::Channel,
    events::v1::{CaseCreated, CaseDecided, CaseHeader, DecisionOutcome, Remedy},
    intake::v1::{
        ComplaintSubmission, Consumer, ContactMethod, SubmitComplaintRequest,
        intake_service_client::IntakeServiceClient,
    },
};
use redress_runtime::{
    NewEvent, Running,
    event::{new_event, service_actor, timestamp},
    testing::{TestEnv, authed, free_port, grpc_channel},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Child,
};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(40);

fn python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python/venv.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .expect("venv.sh runs");
    assert!(
        out.status.success(),
        "venv.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn script(name: &str) -> String {
    format!("{}/tests/support/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A real SMTP server on a free port, writing what it receives to a Maildir.
pub struct Smtp {
    pub port: u16,
    pub maildir: PathBuf,
    _child: Child,
}

#[derive(Debug, serde::Deserialize)]
pub struct Mail {
    pub raw_subject: String,
    pub subject: String,
    pub message_id: String,
    pub to: String,
    pub from: String,
    pub content_language: String,
    pub content_type: String,
    pub charset: Option<String>,
    pub template: String,
    pub body: String,
}

impl Smtp {
    /// `tls`: a certificate and key to offer (and require) STARTTLS with.
    pub async fn start(tls: Option<(PathBuf, PathBuf)>) -> Self {
        let port = free_port();
        let maildir =
            std::env::temp_dir().join(format!("redress-maildir-{}", uuid::Uuid::now_v7()));
        let mut command = tokio::process::Command::new(python());
        command
            .arg(script("smtp_server.py"))
            .arg(port.to_string())
            .arg(&maildir);
        if let Some((cert, key)) = &tls {
            command.arg(cert).arg(key);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("aiosmtpd starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(WAIT, lines.next_line()).await;
        assert!(
            matches!(ready, Ok(Ok(Some(ref l))) if l == "ready"),
            "aiosmtpd: {ready:?}"
        );
        Self {
            port,
            maildir,
            _child: child,
        }
    }

    /// Every mail received so far, parsed by Python's e-mail package.
    pub async fn mails(&self) -> Vec<Mail> {
        if !self.maildir.join("new").exists() {
            return Vec::new();
        }
        let out = tokio::process::Command::new(python())
            .arg(script("read_maildir.py"))
            .arg(&self.maildir)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// How many mails arrived so far (files in the Maildir), without parsing them.
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.maildir.join("new")).map_or(0, |d| d.count())
    }
}

/// The development private key as a file named `dev.pem` (so its key id is `dev`).
pub fn service_key() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("redress-notify-key-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dev.pem");
    std::fs::write(&path, redress_runtime::auth::dev::PRIVATE_PEM).unwrap();
    path
}

pub struct Intake {
    pub running: Running,
    pub shutdown: CancellationToken,
}

impl Intake {
    pub async fn start(env: &TestEnv) -> Self {
        use redress_intake::{
            config::{IntakeConfig, Settings},
            vault,
        };
        let config = redress_intake::Config {
            runtime: env.runtime_config(),
            intake: IntakeConfig {
                keys: Some(vault::dev::KEYS.into()),
                active_key: Some(vault::dev::ACTIVE.into()),
                pseudonym_key: Some(vault::dev::PSEUDONYM.into()),
                settings: Settings::default(),
            },
            command: None,
        };
        let shutdown = CancellationToken::new();
        let running = redress_intake::run(config, shutdown.clone())
            .await
            .expect("intake starts");
        Self { running, shutdown }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.running.endpoints.grpc)
    }

    /// Submits a complaint whose consumer prefers e-mail in `language`; its id and reference.
    pub async fn complaint(&self, email: &str, language: &str) -> (String, String) {
        self.complaint_with(email, language, ContactMethod::Email)
            .await
    }

    /// As `complaint`, with the consumer's preferred contact method.
    pub async fn complaint_with(
        &self,
        email: &str,
        language: &str,
        preferred: ContactMethod,
    ) -> (String, String) {
        let mut client = IntakeServiceClient::new(grpc_channel(&self.url()).await);
        let submission = ComplaintSubmission {
            channel: Channel::Web as i32,
            // Letters only: a long digit run would look like personal data to intake.
            channel_ref: uuid::Uuid::now_v7()
                .simple()
                .to_string()
                .bytes()
                .map(|b| char::from(b'a' + b % 26))
                .collect(),
            title: "重复扣款".into(),
            description: "平台重复扣款两次，请退还。".into(),
            product: "消费贷".into(),
            consumer: Some(Consumer {
                name: "张三".into(),
                phone: "13812345678".into(),
                email: email.into(),
                preferred_contact: preferred as i32,
                language: language.into(),
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
            .await
            .expect("intake accepts the complaint")
            .into_inner();
        (reply.complaint_id, reply.reference)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.running.stopped().await;
    }
}

pub fn config(env: &TestEnv, intake_url: &str, smtp: &Smtp) -> Config {
    Config {
        runtime: env.runtime_config(),
        notification: NotificationConfig {
            intake_url: intake_url.to_owned(),
            service_key: Some(service_key()),
            smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
            poll: Duration::from_millis(100),
            retry_first: Duration::from_millis(200),
            survey_delay: Duration::ZERO,
            rate_per_hour: 10_000,
            ..NotificationConfig::default()
        },
    }
}

pub struct Notification {
    pub running: Running,
    pub shutdown: CancellationToken,
}

impl Notification {
    pub async fn start(config: Config) -> Self {
        let shutdown = CancellationToken::new();
        let running = redress_notification::run(config, shutdown.clone())
            .await
            .expect("notification starts");
        Self { running, shutdown }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.running.endpoints.grpc)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.running.stopped().await;
    }
}

pub fn header(case_id: &str, complaint_id: &str, reference: &str) -> CaseHeader {
    CaseHeader {
        case_id: case_id.into(),
        complaint_id: complaint_id.into(),
        reference: reference.into(),
        department: "cards".into(),
        ..Default::default()
    }
}

pub fn case_created(case_id: &str, complaint_id: &str, reference: &str, regime: &str) -> NewEvent {
    let due = chrono::Utc::now() + chrono::Duration::days(15);
    new_event(
        "case-coordination",
        case_id,
        1,
        service_actor("case-coordination"),
        CaseCreated {
            header: Some(header(case_id, complaint_id, reference)),
            decision_due: Some(timestamp(due)),
            regime: regime.into(),
            ..Default::default()
        },
    )
}

pub fn case_decided(case_id: &str, complaint_id: &str, reference: &str) -> NewEvent {
    new_event(
        "case-coordination",
        case_id,
        5,
        service_actor("case-coordination"),
        CaseDecided {
            header: Some(header(case_id, complaint_id, reference)),
            outcome: DecisionOutcome::PartlyUpheld as i32,
            remedy: Some(Remedy {
                action: "退还重复扣款".into(),
                amount: None,
            }),
            explanation: "经核查交易流水，同一笔消费扣款两次。".into(),
            ..Default::default()
        },
    )
}

/// A Python peer of a test (a real HTTP server on 127.0.0.1) and the lines it reports.
pub struct Peer {
    pub port: u16,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    _child: Child,
}

pub const SMS_KEY_ID: &str = "LTAI5tTestKeyId";
pub const SMS_SECRET: &str = "test-secret-of-30-characters-x";

/// A local stand-in for Aliyun dysmsapi or Tencent Cloud SMS that checks every request's
/// signature exactly as the provider documents it (crates/outbound/tests/python/sms_provider.py,
/// written independently of our signers) and reports what it accepted. `provider`: aliyun or
/// tencent; `mode`: ok, throttle or bad-number; `push`: a receipt callback URL the provider
/// pushes each accepted message's receipt to, `times` times, before answering the send.
pub async fn sms_provider(provider: &str, mode: &str, push: Option<(&str, u32)>) -> Peer {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/outbound/tests/python/sms_provider.py"
    );
    let mut args: Vec<String> = [
        provider, "--key-id", SMS_KEY_ID, "--secret", SMS_SECRET, "--mode", mode,
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some((url, times)) = push {
        args.extend([
            "--push".into(),
            url.into(),
            "--push-times".into(),
            times.to_string(),
        ]);
    }
    Peer::start(script, &args).await
}

/// A department's webhook receiver verifying with Python `standardwebhooks` against the
/// secrets in `secrets` (read per request).
pub async fn webhook_receiver(secrets: &std::path::Path) -> Peer {
    let script = script("webhook_receiver.py");
    Peer::start(&script, &[secrets.display().to_string()]).await
}

impl Peer {
    pub async fn start(script: &str, args: &[String]) -> Self {
        let mut child = tokio::process::Command::new(python())
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the Python peer starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = tokio::time::timeout(WAIT, lines.recv())
            .await
            .expect("peer ready in time")
            .expect("peer printed READY");
        let port = ready.strip_prefix("READY ").unwrap().parse().unwrap();
        Self {
            port,
            lines,
            _child: child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The next reported line of `kind` (SENT, PUSHED, REQUEST) as JSON.
    pub async fn next(&mut self, kind: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} line in time"))
                .expect("peer still running");
            if let Some(json) = line.strip_prefix(kind).and_then(|r| r.strip_prefix(' ')) {
                return serde_json::from_str(json).unwrap();
            }
        }
    }
}

/// Writes a `REDRESS_SMS_CONFIG` for the stand-ins: secrets in files, each provider's
/// template ids for the receipt.
pub fn sms_config(order: &[&str], aliyun: &str, tencent: &str, token: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("redress-sms-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("aliyun-secret");
    std::fs::write(&secret, format!("{SMS_SECRET}\n")).unwrap();
    let order: Vec<String> = order.iter().map(|o| format!("\"{o}\"")).collect();
    let text = format!(
        r#"order = [{order}]
receipts_token = "{token}"

[aliyun]
endpoint = "{aliyun}"
access_key_id = "{SMS_KEY_ID}"
access_key_secret_file = "{secret}"
sign_name = "消费者权益保护"
timeout_secs = 5
templates = {{ "receipt.sms.zh-CN.v1" = "SMS_0001", "receipt.sms.en.v1" = "SMS_0002" }}

[tencent]
endpoint = "{tencent}"
secret_id = "{SMS_KEY_ID}"
secret_key_file = "{secret}"
sms_sdk_app_id = "1400006666"
sign_name = "消费者权益保护"
timeout_secs = 5
templates = {{ "receipt.sms.zh-CN.v1" = "449739", "receipt.sms.en.v1" = "449740" }}
"#,
        order = order.join(", "),
        secret = secret.display(),
    );
    let path = dir.join("sms.toml");
    std::fs::write(&path, text).unwrap();
    path
}
