//! What intake's tests share: a running intake on a fresh database and namespace, a channel
//! that publishes submissions, and readers of the streams.

#![allow(dead_code)]

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use prost::Message as _;
use redress_intake::{
    Config,
    config::{IntakeConfig, Settings},
    vault,
};
use redress_proto::{
    common::v1::Channel,
    events::v1::Event,
    intake::v1::{ComplaintSubmission, Consumer, SubmissionReply},
};
use redress_runtime::{
    Bus, Running,
    bus::{StreamSpec, headers},
    testing::TestEnv,
};
use std::process::Stdio;

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Child,
};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(60);

pub fn config(env: &TestEnv) -> Config {
    Config {
        runtime: env.runtime_config(),
        intake: IntakeConfig {
            keys: Some(vault::dev::KEYS.into()),
            active_key: Some(vault::dev::ACTIVE.into()),
            pseudonym_key: Some(vault::dev::PSEUDONYM.into()),
            settings: Settings::default(),
        },
        command: None,
    }
}

pub struct Intake {
    pub running: Running,
    pub shutdown: CancellationToken,
}

impl Intake {
    pub async fn start(env: &TestEnv) -> Self {
        Self::start_with(config(env)).await
    }

    pub async fn start_with(config: Config) -> Self {
        // Traces propagate only through a subscriber with the OpenTelemetry layer, as in the
        // binaries; installed once per test process.
        std::mem::forget(redress_runtime::telemetry::init(
            "intake-test",
            redress_runtime::config::LogFormat::Pretty,
        ));
        let shutdown = CancellationToken::new();
        match redress_intake::run(config, shutdown.clone()).await {
            Ok(running) => Self { running, shutdown },
            Err(error) => panic!("intake did not start: {error}"),
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.running.endpoints.grpc)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.running.stopped().await;
    }
}

pub fn submission(channel_ref: &str) -> ComplaintSubmission {
    ComplaintSubmission {
        channel: Channel::Web as i32,
        channel_ref: channel_ref.into(),
        description: format!(
            "平台重复扣款两次，请退还。请联系我13812345678或zhang.san@example.com，身份证11010519491231002X。编号{channel_ref}"
        ),
        title: "重复扣款".into(),
        product: "消费贷".into(),
        consumer: Some(Consumer {
            name: "张三".into(),
            phone: "13812345678".into(),
            email: "zhang.san@example.com".into(),
            id_number: "11010519491231002X".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A channel on the bus.
pub struct Publisher {
    pub bus: Bus,
}

impl Publisher {
    pub async fn new(env: &TestEnv) -> Self {
        Self {
            bus: env.bus().await,
        }
    }

    fn headers(channel_ref: &str, json: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, format!("web:{channel_ref}").as_str());
        h.insert(
            headers::CONTENT_TYPE,
            if json {
                headers::JSON
            } else {
                headers::PROTOBUF
            },
        );
        h
    }

    /// Publishes as a request and decodes intake's reply.
    pub async fn request(
        &self,
        channel: &str,
        payload: Bytes,
        json: bool,
        channel_ref: &str,
    ) -> SubmissionReply {
        let subject = self
            .bus
            .subject(&format!("redress.intake.v1.submit.{channel}"));
        // A generous deadline: a thousand requests at once on a loaded machine may take longer
        // than the client's default 10 s, and this is not a latency test.
        let request = async_nats::Request::new()
            .headers(Self::headers(channel_ref, json))
            .payload(payload)
            .timeout(Some(std::time::Duration::from_secs(120)));
        let reply = self.bus.client().send_request(subject, request).await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => panic!("no reply from intake: {error}"),
        };
        if json {
            match serde_json::from_slice(&reply.payload) {
                Ok(r) => r,
                Err(e) => panic!("reply is not SubmissionReply JSON: {e}"),
            }
        } else {
            SubmissionReply::decode(reply.payload.as_ref()).unwrap_or_default()
        }
    }

    pub async fn submit(&self, submission: &ComplaintSubmission) -> SubmissionReply {
        self.request(
            "web",
            submission.encode_to_vec().into(),
            false,
            &submission.channel_ref,
        )
        .await
    }

    /// Publishes without asking for a reply (stored by the INTAKE stream).
    pub async fn publish(&self, submission: &ComplaintSubmission) {
        let subject = self.bus.subject("redress.intake.v1.submit.web");
        let _ = self
            .bus
            .client()
            .publish_with_headers(
                subject,
                Self::headers(&submission.channel_ref, false),
                submission.encode_to_vec().into(),
            )
            .await;
    }
}

// Shared by several test binaries, each using a part (as `allow(dead_code)` above says).
#[allow(unused_imports)]
pub use redress_runtime::testing::{authed, stored};

pub async fn stream_count(bus: &Bus, spec: &StreamSpec) -> u64 {
    match bus.jetstream().get_stream(bus.stream_name(spec.name)).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

pub fn events(messages: &[async_nats::jetstream::message::StreamMessage]) -> Vec<Event> {
    messages
        .iter()
        .filter_map(|m| Event::decode(m.payload.as_ref()).ok())
        .collect()
}

/// A pool in intake's schema of the test: table names need no schema.
pub async fn pool(env: &TestEnv) -> sqlx::PgPool {
    env.pool("intake").await
}

pub async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or(-1)
}

pub async fn channel(url: &str) -> tonic::transport::Channel {
    redress_runtime::testing::grpc_channel(url).await
}

/// The complaints of the `received` events stored so far.
pub async fn received(bus: &Bus) -> Vec<redress_proto::events::v1::ComplaintSummary> {
    events(&stored(bus, &redress_runtime::bus::COMPLAINT_EVENTS).await)
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(redress_proto::events::v1::event::Payload::ComplaintReceived(r)) => r.complaint,
            _ => None,
        })
        .collect()
}

/// Starts `redress-intake`; its log lines are collected into `log`.
pub fn start(env: &TestEnv, log: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> Child {
    let child = env
        .command(env!("CARGO_BIN_EXE_redress-intake"))
        .env("REDRESS_INTAKE_KEYS", redress_intake::vault::dev::KEYS)
        .env(
            "REDRESS_INTAKE_ACTIVE_KEY",
            redress_intake::vault::dev::ACTIVE,
        )
        .env(
            "REDRESS_INTAKE_PSEUDONYM_KEY",
            redress_intake::vault::dev::PSEUDONYM,
        )
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("cannot start redress-intake: {e}"),
    };
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut log) = log.lock() {
                    log.push(line);
                }
            }
        });
    }
    child
}

pub async fn kill(child: &mut Child) {
    child.start_kill().ok();
    child.wait().await.ok();
}
