//! Durable pull consumers with explicit acks, applied in batches.
//!
//! Up to `batch` ready messages are applied in one transaction (one inbox row each) and acked
//! only after it commits. If any message fails, the batch is rolled back and every message is
//! retried alone, so one bad message never holds back the others. A message whose handler
//! fails is redelivered with exponential backoff; after the last attempt it goes to
//! `redress.dlq.v1.<service>` with its subject, headers, payload and the reason, and only then
//! is it acked. When the database itself is down nothing is dead-lettered: messages wait.
//!
//! Several replicas share one durable consumer, so the work spreads across them.

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::{
    HeaderMap,
    jetstream::{
        AckKind, Message,
        consumer::{AckPolicy, DeliverPolicy, pull},
    },
};
use bytes::Bytes;
use futures::StreamExt;
use prost::Message as _;
use redress_proto::{EventPayload, common::v1::Actor, events::v1::Event};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    bus::{Bus, BusError, Outgoing, StreamSpec, dlq_subject, headers, stream_for},
    config::ConsumerTuning,
    db::Database,
    inbox,
    jobs::is_connection_error,
    telemetry,
};

/// Seals a dead letter's body when it may hold personal data: returns the sealed bytes and
/// the key id that opens them.
pub type Sealer = Arc<dyn Fn(&[u8]) -> Result<(Vec<u8>, String), String> + Send + Sync>;

/// What a consumer reads and how it stays idempotent.
#[derive(Clone)]
pub struct ConsumerSpec {
    /// The service name, used for the dead-letter subject.
    pub service: String,
    /// The durable consumer's name, shared by every replica.
    pub durable: String,
    pub stream: StreamSpec,
    /// Contract subject filter, e.g. `redress.complaint.v1.received`.
    pub filter_subject: String,
    /// Record each message id in the inbox, in the same transaction as its effect.
    /// Off only for handlers that are idempotent by their own keys.
    pub inbox: bool,
    /// Leave a message alone until it is this old (zero: at once). Intake uses it so that a
    /// request's own reply path registers before the stream's copy of the same request.
    pub settle: Duration,
    pub tuning: ConsumerTuning,
    /// Dead letters are sealed with this (intake: raw submissions hold personal data).
    pub seal: Option<Sealer>,
}

impl std::fmt::Debug for ConsumerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerSpec")
            .field("service", &self.service)
            .field("durable", &self.durable)
            .field("stream", &self.stream.name)
            .field("filter_subject", &self.filter_subject)
            .field("inbox", &self.inbox)
            .field("settle", &self.settle)
            .field("sealed_dead_letters", &self.seal.is_some())
            .finish()
    }
}

/// One message as a handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The contract subject (namespace removed).
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
    /// 1 on the first delivery.
    pub attempt: u64,
    pub stream_sequence: u64,
    /// When the server stored it.
    pub published: chrono::DateTime<chrono::Utc>,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.as_str())
    }

    /// The idempotency key: an event's own id, else `Nats-Msg-Id`, else the stream sequence.
    /// An event's id, not the header, because a producer that republishes after JetStream's
    /// de-duplication window (a publish that timed out yet was stored) may store it twice.
    pub fn message_id(&self) -> String {
        if self.header(headers::EVENT_TYPE).is_some()
            && let Ok(event) = Event::decode(self.payload.as_ref())
            && !event.id.is_empty()
        {
            return event.id;
        }
        self.header(headers::MSG_ID)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("seq:{}", self.stream_sequence))
    }

    /// Decodes the body as an event envelope.
    pub fn event(&self) -> Result<Event, HandleError> {
        Event::decode(self.payload.as_ref())
            .map_err(|e| HandleError::Permanent(format!("not a redress.events.v1.Event: {e}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth retrying (a conflict, a dependency that may come back).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (a malformed message): dead-letter at once.
    #[error("{0}")]
    Permanent(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Applies one message inside the consumer's transaction. A handler's only effects are
/// through `conn` (and the outbox in it): when a batch fails it is rolled back and each of
/// its messages is applied again on its own.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Whether this handler acts on the message at all; others are acked and skipped
    /// without an inbox row (a consumer over a whole stream that handles a few event types).
    fn wants(&self, delivery: &Delivery) -> bool {
        let _ = delivery;
        true
    }

    /// Applies a batch's messages (each new to the inbox, each once) in the same
    /// transaction. By default one by one; a handler that can apply many in fewer statements
    /// (analytics' aggregates) overrides it. If it fails, the batch is rolled back and each
    /// message is applied again on its own through [`Handler::handle`].
    fn handle_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        deliveries: Vec<&'a Delivery>,
    ) -> impl Future<Output = Result<(), HandleError>> + Send + 'a {
        async move {
            for delivery in deliveries {
                let span = telemetry::message_span(Some(&delivery.headers), &delivery.subject);
                self.handle(conn, delivery).instrument(span).await?;
            }
            Ok(())
        }
    }
}

/// An event as a typed handler receives it: the envelope's facts and its decoded payload.
#[derive(Debug, Clone)]
pub struct Incoming<E> {
    /// The event's id (the inbox key).
    pub id: String,
    pub source: String,
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    pub aggregate_id: String,
    pub aggregate_version: u64,
    pub actor: Actor,
    pub payload: E,
    /// The contract subject it arrived on.
    pub subject: String,
    /// 1 on the first delivery.
    pub attempt: u64,
}

/// Handles one event type inside the consumer's transaction (see [`Handler`]).
pub trait EventHandler<E: EventPayload>: Send + Sync + 'static {
    fn handle(
        &self,
        conn: &mut PgConnection,
        event: Incoming<E>,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A typed handler with its type erased, so one consumer can hold handlers of many types.
trait Dispatch: Send + Sync {
    fn call<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: Event,
        delivery: &'a Delivery,
    ) -> BoxFuture<'a, Result<(), HandleError>>;
}

struct Typed<E, H> {
    handler: H,
    _event: std::marker::PhantomData<fn() -> E>,
}

impl<E: EventPayload, H: EventHandler<E>> Dispatch for Typed<E, H> {
    fn call<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: Event,
        delivery: &'a Delivery,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let Some(payload) = event.payload.and_then(E::from_payload) else {
                return Err(HandleError::Permanent(format!(
                    "the envelope does not carry the `{}` its header names",
                    E::EVENT_TYPE
                )));
            };
            let incoming = Incoming {
                id: event.id,
                source: event.source,
                occurred_at: event
                    .occurred_at
                    .as_ref()
                    .and_then(crate::event::from_timestamp),
                aggregate_id: event.aggregate_id,
                aggregate_version: event.aggregate_version,
                actor: event.actor.unwrap_or_default(),
                payload,
                subject: delivery.subject.clone(),
                attempt: delivery.attempt,
            };
            self.handler.handle(conn, incoming).await
        })
    }
}

/// The handlers of one consumer, by event type.
#[derive(Default, Clone)]
pub struct Events {
    handlers: std::collections::HashMap<&'static str, Arc<dyn Dispatch>>,
    filters: Vec<&'static str>,
}

impl Events {
    fn event_type(delivery: &Delivery) -> Option<&str> {
        delivery.header(headers::EVENT_TYPE)
    }
}

impl Handler for Events {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        let event = delivery.event()?;
        let Some(kind) = event.payload.as_ref().map(|p| p.event_type()) else {
            return Err(HandleError::Permanent("an event with no payload".into()));
        };
        match self.handlers.get(kind) {
            Some(handler) => handler.call(conn, event, delivery).await,
            None => Ok(()),
        }
    }

    fn wants(&self, delivery: &Delivery) -> bool {
        // Without the header (a hand-published event) decode to find out.
        match Self::event_type(delivery) {
            Some(kind) => self.handlers.contains_key(kind),
            None => true,
        }
    }
}

/// A durable consumer, as a service declares it: its name, what it handles, and how.
/// The service name, stream, filter and tuning are filled in by [`crate::Service::consume`].
pub struct Consumer {
    pub(crate) durable: String,
    pub(crate) kind: ConsumerKind,
    pub(crate) inbox: bool,
    pub(crate) settle: Duration,
    pub(crate) seal: Option<Sealer>,
}

pub(crate) enum ConsumerKind {
    Events(Events),
    Raw {
        stream: StreamSpec,
        filter: String,
        handler: Arc<dyn RawDispatch>,
    },
}

/// A raw [`Handler`] with its type erased.
pub(crate) trait RawDispatch: Send + Sync {
    fn call<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        delivery: &'a Delivery,
    ) -> BoxFuture<'a, Result<(), HandleError>>;

    fn call_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        deliveries: Vec<&'a Delivery>,
    ) -> BoxFuture<'a, Result<(), HandleError>>;

    fn wanted(&self, delivery: &Delivery) -> bool;
}

impl<H: Handler> RawDispatch for H {
    fn call<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        delivery: &'a Delivery,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(self.handle(conn, delivery))
    }

    fn call_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        deliveries: Vec<&'a Delivery>,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(self.handle_all(conn, deliveries))
    }

    fn wanted(&self, delivery: &Delivery) -> bool {
        self.wants(delivery)
    }
}

pub(crate) struct Raw(pub(crate) Arc<dyn RawDispatch>);

impl Handler for Raw {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<(), HandleError> {
        self.0.call(conn, delivery).await
    }

    fn handle_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        deliveries: Vec<&'a Delivery>,
    ) -> impl Future<Output = Result<(), HandleError>> + Send + 'a {
        self.0.call_all(conn, deliveries)
    }

    fn wants(&self, delivery: &Delivery) -> bool {
        self.0.wanted(delivery)
    }
}

impl Consumer {
    /// A consumer of events, shared by every replica under `name`, with an inbox.
    pub fn durable(name: impl Into<String>) -> Self {
        Self {
            durable: name.into(),
            kind: ConsumerKind::Events(Events::default()),
            inbox: true,
            settle: Duration::ZERO,
            seal: None,
        }
    }

    /// Handles events of type `E` with `handler`; events the consumer has no handler for
    /// are acked and skipped.
    pub fn on<E: EventPayload>(mut self, handler: impl EventHandler<E>) -> Self {
        if let ConsumerKind::Events(events) = &mut self.kind {
            events.handlers.insert(
                E::EVENT_TYPE,
                Arc::new(Typed {
                    handler,
                    _event: std::marker::PhantomData::<fn() -> E>,
                }),
            );
            events.filters.push(E::SUBJECT_FILTER);
        }
        self
    }

    /// A consumer of messages that are not events (channel submissions), on `filter` of
    /// `stream`.
    pub fn raw<H: Handler>(
        name: impl Into<String>,
        stream: StreamSpec,
        filter: &str,
        handler: H,
    ) -> Self {
        Self {
            durable: name.into(),
            kind: ConsumerKind::Raw {
                stream,
                filter: filter.to_owned(),
                handler: Arc::new(handler),
            },
            inbox: true,
            settle: Duration::ZERO,
            seal: None,
        }
    }

    /// For handlers idempotent by their own keys: no inbox row per message.
    pub fn without_inbox(mut self) -> Self {
        self.inbox = false;
        self
    }

    /// Leaves each message alone until it is this old.
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Seals dead letters' bodies (they may hold personal data).
    pub fn seal_dead_letters(mut self, seal: Sealer) -> Self {
        self.seal = Some(seal);
        self
    }

    /// The stream and subject filter the consumer reads. Event types of one consumer must
    /// share a stream; several types are read through the stream's whole subject space, as
    /// one durable in stream order (NATS 2.9 has no multi-filter consumers), skipping the
    /// types without a handler.
    pub(crate) fn source(&self) -> Result<(StreamSpec, String), BusError> {
        match &self.kind {
            ConsumerKind::Raw { stream, filter, .. } => Ok((*stream, filter.clone())),
            ConsumerKind::Events(events) => {
                let error = |reason: String| BusError::Consumer {
                    consumer: self.durable.clone(),
                    reason,
                };
                let mut streams = events.filters.iter().map(|f| (f, stream_for(f)));
                let Some((first, Some(stream))) = streams.next() else {
                    return Err(error("handles no event type of the contract".into()));
                };
                if streams.any(|(_, s)| s != Some(stream)) {
                    return Err(error("handles event types of more than one stream".into()));
                }
                let filter = if events.filters.len() == 1 {
                    (*first).to_owned()
                } else {
                    stream
                        .subjects
                        .first()
                        .map(|s| (*s).to_owned())
                        .unwrap_or_default()
                };
                Ok((*stream, filter))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Runs the consumer until `shutdown`; in-flight batches finish first.
pub async fn run<H: Handler>(
    bus: Bus,
    db: Database,
    spec: ConsumerSpec,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> Result<(), ConsumerError> {
    let consumer = declare(&bus, &spec).await?;
    let worker = Arc::new(Worker {
        bus,
        db,
        spec,
        handler,
    });
    // Several pull loops on one durable consumer: the server hands each its own messages.
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..worker.spec.tuning.concurrency.max(1) {
        loops.spawn(pull(consumer.clone(), worker.clone(), shutdown.clone()));
    }
    while loops.join_next().await.is_some() {}
    Ok(())
}

async fn pull<H: Handler>(
    consumer: async_nats::jetstream::consumer::PullConsumer,
    worker: Arc<Worker<H>>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let messages = consumer
            .stream()
            .max_messages_per_batch(worker.spec.tuning.batch * 2)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut chunks = match messages {
            Ok(messages) => messages.ready_chunks(worker.spec.tuning.batch),
            Err(error) => {
                tracing::warn!(%error, durable = %worker.spec.durable, "pull failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let chunk = tokio::select! {
                _ = shutdown.cancelled() => return,
                chunk = chunks.next() => chunk,
            };
            let Some(chunk) = chunk else { break };
            let mut messages = Vec::with_capacity(chunk.len());
            for item in chunk {
                match item {
                    Ok(message) => messages.push(message),
                    Err(error) => tracing::debug!(%error, "pull stream notice"),
                }
            }
            if !messages.is_empty() {
                worker.process(messages).await;
            }
        }
    }
}

/// Creates the durable consumer or brings its configuration up to date.
pub async fn declare(
    bus: &Bus,
    spec: &ConsumerSpec,
) -> Result<async_nats::jetstream::consumer::PullConsumer, BusError> {
    let stream = bus.ensure_stream(&spec.stream).await?;
    let config = pull::Config {
        durable_name: Some(spec.durable.clone()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: spec.tuning.ack_wait,
        // The server never gives up on a message by itself: dead-lettering is ours to decide,
        // so a crash loop cannot drop anything silently.
        max_deliver: -1,
        max_ack_pending: (spec.tuning.batch as i64 * 20).max(1000),
        filter_subject: bus.subject(&spec.filter_subject),
        ..Default::default()
    };
    let error = |e: String| BusError::Consumer {
        consumer: spec.durable.clone(),
        reason: e,
    };
    match stream.create_consumer(config.clone()).await {
        Ok(consumer) => Ok(consumer),
        Err(_) => stream
            .update_consumer(config)
            .await
            .map_err(|e| error(e.to_string())),
    }
}

struct Worker<H> {
    bus: Bus,
    db: Database,
    spec: ConsumerSpec,
    handler: Arc<H>,
}

enum Outcome {
    Applied,
    Failed(HandleError),
    /// The database could not be reached: retry without counting it against the message.
    Unavailable(sqlx::Error),
}

impl<H: Handler> Worker<H> {
    async fn process(&self, messages: Vec<Message>) {
        let messages = self.settled(messages).await;
        let mut wanted = Vec::with_capacity(messages.len());
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            let delivery = self.delivery(&message);
            if self.handler.wants(&delivery) {
                wanted.push(message);
                deliveries.push(delivery);
            } else {
                self.ack(&message, AckKind::Ack, "skipped").await;
            }
        }
        let messages = wanted;
        if messages.is_empty() {
            return;
        }
        let span =
            tracing::info_span!("consume", durable = %self.spec.durable, batch = deliveries.len());
        if let Some(first) = deliveries.first() {
            span.set_parent(telemetry::extract_nats(Some(&first.headers)))
                .ok();
        }
        let started = std::time::Instant::now();
        // A lone message skips the batch path, so a failing handler runs once per delivery.
        let batch_applied = if deliveries.len() > 1 {
            self.apply_all(&deliveries).instrument(span.clone()).await
        } else {
            Err(())
        };
        if batch_applied.is_ok() {
            futures::future::join_all(messages.iter().map(|m| self.ack(m, AckKind::Ack, "ok")))
                .await;
        } else {
            for (message, delivery) in messages.iter().zip(&deliveries) {
                let outcome = self.apply_one(delivery).instrument(span.clone()).await;
                self.settle(message, delivery, outcome).await;
            }
        }
        metrics::histogram!("redress_handler_duration_seconds", "service" => self.spec.service.clone(), "consumer" => self.spec.durable.clone())
            .record(started.elapsed().as_secs_f64() / deliveries.len().max(1) as f64);
    }

    /// Hands back messages younger than the settle period with a delay, keeps the rest.
    async fn settled(&self, messages: Vec<Message>) -> Vec<Message> {
        if self.spec.settle.is_zero() {
            return messages;
        }
        let now = chrono::Utc::now();
        let mut ready = Vec::with_capacity(messages.len());
        for message in messages {
            let age = message
                .info()
                .ok()
                .and_then(|i| (now - i.published).to_std().ok())
                .unwrap_or(self.spec.settle);
            if age >= self.spec.settle {
                ready.push(message);
            } else if let Err(error) = message
                .ack_with(AckKind::Nak(Some(self.spec.settle - age)))
                .await
            {
                tracing::warn!(%error, "could not defer a message; the server will redeliver it");
            }
        }
        ready
    }

    fn delivery(&self, message: &Message) -> Delivery {
        let (attempt, stream_sequence, published) = message
            .info()
            .map(|i| (i.delivered.max(1) as u64, i.stream_sequence, i.published))
            .unwrap_or((1, 0, chrono::Utc::now()));
        Delivery {
            subject: self
                .bus
                .contract_subject(message.subject.as_str())
                .to_owned(),
            headers: message.headers.clone().unwrap_or_default(),
            payload: message.payload.clone(),
            attempt,
            stream_sequence,
            published,
        }
    }

    /// The fast path: every message in one transaction, the inbox recorded in one statement.
    async fn apply_all(&self, deliveries: &[Delivery]) -> Result<(), ()> {
        let mut tx = self.db.pool().begin().await.map_err(|_| ())?;
        let ids: Vec<String> = deliveries.iter().map(Delivery::message_id).collect();
        let mut fresh = if self.spec.inbox {
            Some(
                inbox::record_many(&mut tx, &self.spec.durable, &ids)
                    .await
                    .map_err(|_| ())?,
            )
        } else {
            None
        };
        let mut new = Vec::with_capacity(deliveries.len());
        for (delivery, id) in deliveries.iter().zip(&ids) {
            // Taken out once used: the same event twice in one batch has one effect.
            if fresh.as_mut().is_some_and(|f| !f.remove(id)) {
                self.count_duplicate();
                continue;
            }
            new.push(delivery);
        }
        if self.handler.handle_all(&mut tx, new).await.is_err() {
            return Err(());
        }
        tx.commit().await.map_err(|_| ())
    }

    fn count_duplicate(&self) {
        metrics::counter!("redress_messages_duplicate_total", "service" => self.spec.service.clone(), "consumer" => self.spec.durable.clone())
            .increment(1);
    }

    async fn apply_one(&self, delivery: &Delivery) -> Outcome {
        let mut tx = match self.db.pool().begin().await {
            Ok(tx) => tx,
            Err(error) => return Outcome::Unavailable(error),
        };
        match self.apply(&mut tx, delivery).await {
            Ok(()) => match tx.commit().await {
                Ok(()) => Outcome::Applied,
                Err(error) => Outcome::Unavailable(error),
            },
            Err(HandleError::Database(error)) if is_connection_error(&error) => {
                Outcome::Unavailable(error)
            }
            Err(error) => Outcome::Failed(error),
        }
    }

    async fn apply(&self, conn: &mut PgConnection, delivery: &Delivery) -> Result<(), HandleError> {
        if self.spec.inbox
            && !inbox::record(conn, &self.spec.durable, &delivery.message_id()).await?
        {
            self.count_duplicate();
            return Ok(());
        }
        self.handler
            .handle(conn, delivery)
            .instrument(telemetry::message_span(
                Some(&delivery.headers),
                &delivery.subject,
            ))
            .await
    }

    async fn settle(&self, message: &Message, delivery: &Delivery, outcome: Outcome) {
        match outcome {
            Outcome::Applied => self.ack(message, AckKind::Ack, "ok").await,
            Outcome::Unavailable(error) => {
                tracing::warn!(%error, durable = %self.spec.durable, "database unavailable; message will be redelivered");
                self.ack(
                    message,
                    AckKind::Nak(Some(self.backoff(delivery.attempt))),
                    "unavailable",
                )
                .await;
            }
            Outcome::Failed(error) => {
                let last = delivery.attempt >= u64::from(self.spec.tuning.max_attempts);
                if matches!(error, HandleError::Permanent(_)) || last {
                    self.dead_letter(message, delivery, &error).await;
                } else {
                    tracing::warn!(%error, attempt = delivery.attempt, subject = %delivery.subject, "handler failed; will retry");
                    self.ack(
                        message,
                        AckKind::Nak(Some(self.backoff(delivery.attempt))),
                        "retry",
                    )
                    .await;
                }
            }
        }
    }

    async fn dead_letter(&self, message: &Message, delivery: &Delivery, error: &HandleError) {
        let mut dlq_headers = delivery.headers.clone();
        dlq_headers.insert(
            headers::MSG_ID,
            format!("dlq:{}:{}", self.spec.durable, delivery.stream_sequence).as_str(),
        );
        dlq_headers.insert(headers::DLQ_SUBJECT, delivery.subject.as_str());
        dlq_headers.insert(headers::DLQ_REASON, one_line(&error.to_string()).as_str());
        dlq_headers.insert(headers::DLQ_ATTEMPTS, delivery.attempt.to_string().as_str());
        dlq_headers.insert(
            headers::DLQ_STREAM_SEQUENCE,
            delivery.stream_sequence.to_string().as_str(),
        );
        dlq_headers.insert(headers::DLQ_CONSUMER, self.spec.durable.as_str());
        let payload = match &self.spec.seal {
            None => delivery.payload.clone(),
            Some(seal) => match seal(&delivery.payload) {
                Ok((sealed, key_id)) => {
                    dlq_headers.insert(headers::DLQ_SEALED_KEY, key_id.as_str());
                    Bytes::from(sealed)
                }
                Err(reason) => {
                    // Never a raw copy in the DLQ: keep it in its own stream and retry.
                    tracing::error!(%reason, "cannot seal a dead letter; it will be redelivered");
                    let backoff = AckKind::Nak(Some(self.backoff(delivery.attempt)));
                    self.ack(message, backoff, "retry").await;
                    return;
                }
            },
        };
        let outgoing = Outgoing {
            subject: dlq_subject(&self.spec.service),
            headers: dlq_headers,
            payload,
        };
        match self.bus.publish(outgoing).await {
            Ok(()) => {
                tracing::error!(%error, subject = %delivery.subject, attempts = delivery.attempt, "message dead-lettered");
                self.ack(message, AckKind::Term, "dead_lettered").await;
            }
            Err(publish_error) => {
                tracing::error!(%publish_error, "dead-letter publish failed; message will be redelivered");
                self.ack(
                    message,
                    AckKind::Nak(Some(self.backoff(delivery.attempt))),
                    "retry",
                )
                .await;
            }
        }
    }

    async fn ack(&self, message: &Message, kind: AckKind, outcome: &'static str) {
        if let Err(error) = message.ack_with(kind).await {
            tracing::warn!(%error, "ack not sent; the server will redeliver");
        }
        metrics::counter!(
            "redress_messages_consumed_total",
            "service" => self.spec.service.clone(),
            "consumer" => self.spec.durable.clone(),
            "outcome" => outcome
        )
        .increment(1);
    }

    /// `backoff * 2^(attempt-1)`, at most five minutes.
    fn backoff(&self, attempt: u64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16) as u32);
        self.spec
            .tuning
            .backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(300))
    }
}

/// Header values cannot hold line breaks.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}
