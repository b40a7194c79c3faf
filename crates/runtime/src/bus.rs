//! The bus: NATS JetStream streams, publishing with acks, and the subject names of DESIGN §3.
//!
//! Every subject and stream name goes through [`Bus::subject`] / [`Bus::stream_name`], which
//! put the configured namespace in front, so environments (and parallel tests) can share one
//! NATS server without seeing each other.

use std::time::Duration;

use async_nats::{
    HeaderMap,
    jetstream::{self, context::PublishAckFuture, stream},
};
use bytes::Bytes;
use futures::future::join_all;
use secrecy::ExposeSecret;

use crate::config::RuntimeConfig;

/// How long the first connection to NATS may take before start-up fails with a message
/// naming the URL (later disconnections are retried for ever).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub use redress_proto::bus::{
    ALL_STREAMS, CASE_EVENTS, COMPLAINT_EVENTS, DLQ, INTAKE, INTAKE_DURABLE, INTAKE_REJECTED,
    Retention, StreamSpec, dlq_subject, headers, stream_for,
};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(
        "cannot reach NATS at {url}: {reason}. Is nats-server running there with JetStream \
         (-js)? Check REDRESS_NATS_URL (`make deps` starts a local one)."
    )]
    Connect { url: String, reason: String },
    #[error("cannot read NATS credentials {path}: {source}")]
    Credentials {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot declare stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("cannot declare consumer {consumer}: {reason}")]
    Consumer { consumer: String, reason: String },
    #[error("publish to {subject} failed: {reason}")]
    Publish { subject: String, reason: String },
}

/// One message to publish to a stream.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// A connection to NATS with JetStream, in a namespace.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    namespace: String,
    replicas: usize,
}

impl Bus {
    pub async fn connect(config: &RuntimeConfig, service: &str) -> Result<Self, BusError> {
        let url = config.nats_url.clone();
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("redress-{service}"))
            .connection_timeout(CONNECT_TIMEOUT)
            .max_reconnects(None)
            .event_callback(move |event| {
                let url = url.clone();
                async move { connection_event(&url, event) }
            });
        if let Some(path) = &config.nats_creds {
            options =
                options
                    .credentials_file(path)
                    .await
                    .map_err(|source| BusError::Credentials {
                        path: path.display().to_string(),
                        source,
                    })?;
        }
        if let (Some(user), Some(password)) = (&config.nats_user, &config.nats_password) {
            // Replies and pulled messages travel on inboxes: a user confined to its own prefix
            // (deploy/nats/bus.toml) cannot read what other users pull.
            options = options
                .user_and_password(user.clone(), password.expose_secret().to_owned())
                .custom_inbox_prefix(format!("_INBOX_{user}"));
        }
        let tls = &config.tls;
        if let Some(ca) = &tls.nats_tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&tls.nats_tls_cert, &tls.nats_tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        // Several servers of one cluster, comma-separated (as the setting documents): the client
        // tries them in turn and reconnects to any.
        let servers: Vec<&str> = config
            .nats_url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let client = options
            .connect(servers)
            .await
            .map_err(|source| BusError::Connect {
                url: config.nats_url.clone(),
                reason: connect_reason(&source),
            })?;
        Ok(Self::from_client(
            client,
            &config.bus_namespace,
            config.stream_replicas,
        ))
    }

    pub fn from_client(client: async_nats::Client, namespace: &str, replicas: usize) -> Self {
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(10))
            .build(client.clone());
        Self {
            client,
            jetstream,
            namespace: namespace.to_owned(),
            replicas: replicas.max(1),
        }
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The subject as it travels on this bus (namespace first).
    pub fn subject(&self, subject: &str) -> String {
        if self.namespace.is_empty() {
            subject.to_owned()
        } else {
            format!("{}.{subject}", self.namespace)
        }
    }

    /// The contract subject of a subject seen on this bus (namespace removed).
    pub fn contract_subject<'a>(&self, subject: &'a str) -> &'a str {
        if self.namespace.is_empty() {
            return subject;
        }
        subject
            .strip_prefix(self.namespace.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(subject)
    }

    pub fn stream_name(&self, name: &str) -> String {
        if self.namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.namespace)
        }
    }

    /// Creates the stream or brings its configuration up to date (idempotent).
    pub async fn ensure_stream(&self, spec: &StreamSpec) -> Result<stream::Stream, BusError> {
        let name = self.stream_name(spec.name);
        let config = stream::Config {
            name: name.clone(),
            subjects: spec.subjects.iter().map(|s| self.subject(s)).collect(),
            no_ack: spec.no_ack,
            retention: match spec.retention {
                Retention::Limits => stream::RetentionPolicy::Limits,
                Retention::WorkQueue => stream::RetentionPolicy::WorkQueue,
            },
            max_age: spec.max_age,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        self.jetstream
            .create_or_update_stream(config)
            .await
            .map_err(|e| BusError::Stream {
                stream: name.clone(),
                reason: e.to_string(),
            })?;
        self.jetstream
            .get_stream(&name)
            .await
            .map_err(|e| BusError::Stream {
                stream: name,
                reason: e.to_string(),
            })
    }

    pub async fn ensure_streams(&self, specs: &[StreamSpec]) -> Result<(), BusError> {
        for spec in specs {
            self.ensure_stream(spec).await?;
        }
        Ok(())
    }

    /// Publishes one message and waits for the stream's ack. A duplicate ack (the same
    /// `Nats-Msg-Id` seen within the window) counts as success: the message is stored.
    pub async fn publish(&self, message: Outgoing) -> Result<(), BusError> {
        let subject = message.subject.clone();
        let ack = self.send(message).await?;
        confirm(&subject, ack).await
    }

    /// Publishes an event straight to its stream, outside any transaction: for tools, tests
    /// and channels. A service publishes through its outbox instead, with the state change.
    pub async fn publish_event(&self, event: &crate::NewEvent) -> Result<(), BusError> {
        self.publish(crate::OutboxMessage::event(event).into())
            .await
    }

    /// Publishes many messages with every ack in flight at once, in order, and returns how
    /// many were stored before the first failure (all of them on success).
    pub async fn publish_all(&self, messages: Vec<Outgoing>) -> (usize, Option<BusError>) {
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let subject = message.subject.clone();
            match self.send(message).await {
                Ok(ack) => pending.push((subject, ack)),
                Err(error) => {
                    let (stored, failure) = settle(pending).await;
                    return (stored, failure.or(Some(error)));
                }
            }
        }
        settle(pending).await
    }

    async fn send(&self, message: Outgoing) -> Result<PublishAckFuture, BusError> {
        let subject = self.subject(&message.subject);
        self.jetstream
            .publish_with_headers(subject, message.headers, message.payload)
            .await
            .map_err(|e| BusError::Publish {
                subject: message.subject,
                reason: e.to_string(),
            })
    }
}

async fn confirm(subject: &str, ack: PublishAckFuture) -> Result<(), BusError> {
    ack.await.map(|_| ()).map_err(|e| BusError::Publish {
        subject: subject.to_owned(),
        reason: e.to_string(),
    })
}

async fn settle(pending: Vec<(String, PublishAckFuture)>) -> (usize, Option<BusError>) {
    let results = join_all(
        pending
            .into_iter()
            .map(|(subject, ack)| async move { confirm(&subject, ack).await }),
    )
    .await;
    let stored = results.iter().take_while(|r| r.is_ok()).count();
    (stored, results.into_iter().find_map(Result::err))
}

/// Says once that the connection went away and once that it came back, naming the server.
fn connection_event(url: &str, event: async_nats::Event) {
    match event {
        async_nats::Event::Disconnected => {
            tracing::warn!(nats = url, "lost the connection to NATS; reconnecting");
        }
        async_nats::Event::Connected => tracing::info!(nats = url, "connected to NATS"),
        async_nats::Event::SlowConsumer(_) | async_nats::Event::ServerError(_) => {
            tracing::warn!(nats = url, ?event, "NATS");
        }
        _ => tracing::debug!(nats = url, ?event, "NATS"),
    }
}

fn connect_reason(error: &async_nats::ConnectError) -> String {
    use async_nats::ConnectErrorKind;
    let text = error.to_string().to_lowercase();
    if text.contains("certificate") || text.contains("tls") {
        return format!(
            "TLS failed ({error}); check REDRESS_NATS_TLS_CA and the server's certificate"
        );
    }
    match error.kind() {
        ConnectErrorKind::TimedOut => format!("no answer within {CONNECT_TIMEOUT:?}"),
        ConnectErrorKind::Io => format!("connection refused, unreachable or cut ({error})"),
        ConnectErrorKind::Tls => format!("TLS failed ({error})"),
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            format!(
                "not authorised ({error}); check REDRESS_NATS_USER and REDRESS_NATS_PASSWORD, \
                 or REDRESS_NATS_CREDS"
            )
        }
        _ => error.to_string(),
    }
}
