//! The request paths: core NATS requests on `redress.intake.v1.submit.<channel>` and gRPC
//! `SubmitComplaint`, both answered only after the registration has committed.
//!
//! Requests are queued and registered in batches of up to 50 per transaction: the day's
//! reference counter is one row, so one transaction per request would serialise every
//! registration behind it. A batch that fails is retried one request at a time; a request
//! that still fails gets no reply over NATS (the channel's request times out and it resends;
//! the stream's copy is registered meanwhile) and `UNAVAILABLE` over gRPC.

use std::sync::Arc;

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures::StreamExt;
use prost::Message as _;
use redress_proto::intake::v1::{SubmissionRejected, SubmissionReply, submission_reply};
use redress_runtime::{Bus, Database, bus::headers};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    config::Settings,
    register::{Context, Incoming, Origin, Outcome, register},
    vault::Vault,
};

const BATCH: usize = 50;
/// Batches registered at once: with the reference counter out of the transactions, batches
/// only contend on Postgres itself.
const WORKERS: usize = 4;

/// Where an outcome goes once committed.
enum ReplyTo {
    Nats { subject: Subject, json: bool },
    Grpc(oneshot::Sender<Result<Outcome, sqlx::Error>>),
}

struct Pending {
    payload: Bytes,
    /// The channel's NATS headers (trace context), if it came over NATS.
    headers: Option<HeaderMap>,
    json: bool,
    subject_channel: Option<String>,
    origin: Origin,
    arrived_at: chrono::DateTime<chrono::Utc>,
    reply: ReplyTo,
}

/// A handle to the batching registrar.
#[derive(Clone)]
pub struct Registrar {
    queue: mpsc::Sender<Pending>,
}

pub struct Shared {
    pub db: Database,
    /// Two connections of their own for the day's reference counter, so taking a number never
    /// waits for a connection held by a registration that is waiting for a number.
    pub references: sqlx::PgPool,
    pub bus: Bus,
    pub vault: Arc<Vault>,
    pub settings: Settings,
}

impl Registrar {
    /// Starts the batching task; it stops when every handle is dropped or on shutdown.
    pub fn start(
        shared: Arc<Shared>,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(4 * 1024);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let task = tokio::spawn(async move {
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..WORKERS {
                workers.spawn(run_batches(shared.clone(), rx.clone(), shutdown.clone()));
            }
            while workers.join_next().await.is_some() {}
        });
        (Self { queue }, task)
    }

    /// Registers a gRPC submission (no subject channel) and waits for the committed outcome.
    pub async fn submit(&self, payload: Bytes) -> Option<Result<Outcome, sqlx::Error>> {
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            payload,
            headers: None,
            json: false,
            subject_channel: None,
            origin: Origin::Grpc,
            arrived_at: chrono::Utc::now(),
            reply: ReplyTo::Grpc(tx),
        };
        self.queue.send(pending).await.ok()?;
        rx.await.ok()
    }

    /// Answers core NATS requests on the submit subjects until shutdown. Messages without a
    /// reply subject are left to the INTAKE stream's durable consumer.
    pub async fn serve_requests(
        self,
        bus: Bus,
        shutdown: CancellationToken,
    ) -> Result<(), async_nats::SubscribeError> {
        // `>`, not `*`: a request on `submit.web.extra` is answered too (with a violation).
        let subject = bus.subject("redress.intake.v1.submit.>");
        let mut requests = bus
            .client()
            .queue_subscribe(subject, "redress-intake".into())
            .await?;
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = requests.next() => message,
            };
            let Some(message) = message else { break };
            let Some(reply) = message.reply.clone() else {
                continue;
            };
            let contract = bus.contract_subject(message.subject.as_str());
            let subject_channel = crate::handlers::subject_channel(contract).map(str::to_owned);
            let json = is_json(message.headers.as_ref());
            let pending = Pending {
                payload: message.payload,
                headers: message.headers,
                json,
                subject_channel,
                origin: Origin::Request,
                arrived_at: chrono::Utc::now(),
                reply: ReplyTo::Nats {
                    subject: reply,
                    json,
                },
            };
            if self.queue.send(pending).await.is_err() {
                break;
            }
        }
        let _ = requests.unsubscribe().await;
        Ok(())
    }
}

pub fn is_json(headers: Option<&HeaderMap>) -> bool {
    headers
        .and_then(|h| h.get(headers::CONTENT_TYPE))
        .is_some_and(|v| v.as_str().starts_with(headers::JSON))
}

async fn run_batches(
    shared: Arc<Shared>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = {
            let mut rx = rx.lock().await;
            tokio::select! {
                // Finish what is queued before stopping: those requests were accepted.
                _ = shutdown.cancelled(), if rx.is_empty() => 0,
                n = rx.recv_many(&mut batch, BATCH) => n,
            }
        };
        if received == 0 {
            return;
        }
        let outcomes = register_batch(&shared, &batch).await;
        for (pending, outcome) in batch.drain(..).zip(outcomes) {
            reply(&shared.bus, pending.reply, outcome).await;
        }
    }
}

async fn register_batch(
    shared: &Arc<Shared>,
    batch: &[Pending],
) -> Vec<Result<Outcome, sqlx::Error>> {
    let now = chrono::Utc::now();
    redress_runtime::batch::together_or_alone(shared.db.pool(), batch, |conn, pending| {
        // Each future owns its handle on the shared state: it may outlive this call's borrows.
        let shared = shared.clone();
        Box::pin(async move {
            let ctx = Context {
                vault: &shared.vault,
                settings: &shared.settings,
                now,
                pool: &shared.references,
            };
            register(conn, &ctx, incoming(pending))
                .instrument(span(pending))
                .await
        })
    })
    .await
}

/// The registration joins the trace the channel started (its `received` event carries it on).
fn span(pending: &Pending) -> tracing::Span {
    redress_runtime::telemetry::message_span(pending.headers.as_ref(), "redress.intake.v1.submit")
}

fn incoming(pending: &Pending) -> Incoming<'_> {
    Incoming {
        payload: &pending.payload,
        json: pending.json,
        subject_channel: pending.subject_channel.as_deref(),
        origin: pending.origin,
        arrived_at: pending.arrived_at,
    }
}

async fn reply(bus: &Bus, to: ReplyTo, outcome: Result<Outcome, sqlx::Error>) {
    match to {
        ReplyTo::Grpc(sender) => {
            let _ = sender.send(outcome);
        }
        ReplyTo::Nats { subject, json } => {
            let Ok(outcome) = outcome else {
                // No reply: the channel's request times out and it resends (idempotent).
                return;
            };
            let message = SubmissionReply {
                outcome: Some(match outcome {
                    Outcome::Registered(receipt) | Outcome::Duplicate(receipt) => {
                        submission_reply::Outcome::Receipt(receipt)
                    }
                    Outcome::Rejected(violations) => {
                        submission_reply::Outcome::Rejected(SubmissionRejected { violations })
                    }
                }),
            };
            let (body, content_type) = if json {
                (
                    serde_json::to_vec(&message).unwrap_or_default(),
                    headers::JSON,
                )
            } else {
                (message.encode_to_vec(), headers::PROTOBUF)
            };
            let mut reply_headers = HeaderMap::new();
            reply_headers.insert(headers::CONTENT_TYPE, content_type);
            if let Err(error) = bus
                .client()
                .publish_with_headers(subject, reply_headers, body.into())
                .await
            {
                tracing::warn!(%error, "could not send a receipt; the channel will resend");
            }
        }
    }
}
