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

use crate::config::RuntimeConfig;

/// Header names of the bus contract.
pub mod headers {
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const EVENT_TYPE: &str = "Redress-Event-Type";
    pub const CONTENT_TYPE: &str = "Content-Type";
    pub const PROTOBUF: &str = "application/protobuf";
    pub const JSON: &str = "application/json";
    pub const DLQ_SUBJECT: &str = "Redress-Dlq-Subject";
    pub const DLQ_REASON: &str = "Redress-Dlq-Reason";
    pub const DLQ_ATTEMPTS: &str = "Redress-Dlq-Attempts";
    pub const DLQ_STREAM_SEQUENCE: &str = "Redress-Dlq-Stream-Sequence";
    pub const DLQ_CONSUMER: &str = "Redress-Dlq-Consumer";
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
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

/// A stream of DESIGN §3, by its base name and subjects (before the namespace is applied).
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: &'static [&'static str],
    /// When set, the server stores what is published but answers no publisher; see INTAKE.
    pub no_ack: bool,
    pub max_age: Duration,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Submissions from channels. It does not ack publishes: JetStream keeps no reply subject
/// (nats-io/jetstream#393), so a channel that *requests* on its submit subject must get
/// intake's receipt rather than the stream's PubAck. See docs/decisions.md.
pub const INTAKE: StreamSpec = StreamSpec {
    name: "INTAKE",
    subjects: &["redress.intake.v1.submit.>"],
    no_ack: true,
    max_age: DAY.saturating_mul(30),
};
/// Rejections sent back to channels (split from INTAKE because these publishes need acks).
pub const INTAKE_REJECTED: StreamSpec = StreamSpec {
    name: "INTAKE_REJECTED",
    subjects: &["redress.intake.v1.rejected.>"],
    no_ack: false,
    max_age: DAY.saturating_mul(30),
};
pub const COMPLAINT_EVENTS: StreamSpec = StreamSpec {
    name: "COMPLAINT_EVENTS",
    subjects: &["redress.complaint.v1.>"],
    no_ack: false,
    max_age: DAY.saturating_mul(365),
};
pub const CASE_EVENTS: StreamSpec = StreamSpec {
    name: "CASE_EVENTS",
    subjects: &["redress.case.v1.>"],
    no_ack: false,
    max_age: DAY.saturating_mul(365),
};
pub const NOTIFICATION_EVENTS: StreamSpec = StreamSpec {
    name: "NOTIFICATION_EVENTS",
    subjects: &["redress.notification.v1.>"],
    no_ack: false,
    max_age: DAY.saturating_mul(365),
};
pub const ANALYTICS_EVENTS: StreamSpec = StreamSpec {
    name: "ANALYTICS_EVENTS",
    subjects: &["redress.analytics.v1.>"],
    no_ack: false,
    max_age: DAY.saturating_mul(90),
};
pub const AUDIT_EVENTS: StreamSpec = StreamSpec {
    name: "AUDIT_EVENTS",
    subjects: &["redress.audit.v1.>"],
    no_ack: false,
    max_age: DAY.saturating_mul(365),
};
pub const DLQ: StreamSpec = StreamSpec {
    name: "DLQ",
    subjects: &["redress.dlq.v1.>"],
    no_ack: false,
    max_age: DAY.saturating_mul(90),
};

/// Every stream of the suite.
pub const ALL_STREAMS: &[StreamSpec] = &[
    INTAKE,
    INTAKE_REJECTED,
    COMPLAINT_EVENTS,
    CASE_EVENTS,
    NOTIFICATION_EVENTS,
    ANALYTICS_EVENTS,
    AUDIT_EVENTS,
    DLQ,
];

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
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("redress-{service}"))
            .retry_on_initial_connect()
            .max_reconnects(None);
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
        let client = options
            .connect(config.nats_url.as_str())
            .await
            .map_err(|source| BusError::Connect {
                url: config.nats_url.clone(),
                source,
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

/// `redress.dlq.v1.<service>`
pub fn dlq_subject(service: &str) -> String {
    format!("redress.dlq.v1.{service}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_captures_distinct_subjects() {
        let mut subjects: Vec<_> = ALL_STREAMS.iter().flat_map(|s| s.subjects).collect();
        let total = subjects.len();
        subjects.sort();
        subjects.dedup();
        assert_eq!(subjects.len(), total);
        assert!(dlq_subject("intake").starts_with("redress.dlq.v1."));
    }
}
