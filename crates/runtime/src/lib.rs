//! What every Redress service stands on.
//!
//! A service is a library with a `run(config, shutdown)` and a binary whose `main` is one
//! call to [`main`]. Its `run` starts a [`Service`], declares its consumers and due work, and
//! serves its API; everything else is here, once:
//!
//! ```text
//! config    — RuntimeConfig, flattened into the service's own clap struct; one set of defaults
//! app       — a binary's main: configuration, telemetry, signals, errors as sentences
//! service   — Service: start → consume / run_jobs → serve → stop gracefully
//! telemetry — JSON logs, OTLP traces, W3C trace context in NATS headers and gRPC metadata
//! bus       — the connection (TLS, credentials), streams of the contract, publishing with acks
//! db        — the service's schema and role, migrations under an advisory lock
//! outbox    — events committed with the state change, relayed to JetStream
//! inbox     — one effect per message id
//! consumer  — Consumer builder, typed EventHandler<E>, batches, backoff, dead letters
//! batch     — many items in one transaction, else one by one
//! jobs      — due work, run exactly once across replicas, retried on a schedule
//! auth      — bearer JWTs (PEM keys or JWKS), Role and Principal, service tokens
//! grpc      — request fields → INVALID_ARGUMENT naming the field; store errors → status
//! paging    — signed cursor page tokens for list RPCs
//! serve     — gRPC behind auth (health, reflection, metrics) and /healthz /readyz /metrics
//! ```
//!
//! The delivery rules these pieces keep are DESIGN §3: nothing accepted is lost on a crash
//! (outbox), nothing is applied twice on a redelivery (inbox), nothing fails silently (DLQ).

pub mod app;
pub mod auth;
pub mod batch;
pub mod bus;
pub mod config;
pub mod consumer;
pub mod db;
pub mod event;
pub mod grpc;
pub mod inbox;
pub mod jobs;
pub mod outbox;
pub mod paging;
pub mod serve;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use app::{Exit, ServiceConfig, main};
pub use auth::{Principal, Role, ServiceId, require};
pub use bus::Bus;
pub use config::RuntimeConfig;
pub use consumer::{
    Consumer, ConsumerSpec, Delivery, EventHandler, HandleError, Handler, Incoming,
};
pub use db::Database;
pub use event::{NewEvent, new_event};
pub use outbox::OutboxMessage;
pub use service::{Running, Service, StartError};
