//! What every Redress service stands on.
//!
//! A service is a library with a `run(config)` and a thin binary. It reads the same way in
//! every crate:
//!
//! ```text
//! config    — RuntimeConfig, flattened into the service's own clap struct
//! telemetry — JSON logs, OTLP traces, W3C trace context in NATS headers and gRPC metadata
//! bus       — streams and subjects of the contract, publishing with acks
//! db        — the service's schema and role, migrations under an advisory lock
//! outbox    — events committed with the state change, relayed to JetStream
//! inbox     — one effect per message id
//! consumer  — durable pull consumers: batches, backoff, dead-letter queue
//! auth      — bearer JWTs, roles and department
//! paging    — cursor page tokens for list RPCs
//! serve     — gRPC (health, reflection, metrics) and /healthz /readyz /metrics
//! service   — start → spawn consumers → serve → stop gracefully
//! ```
//!
//! The delivery rules these pieces keep are DESIGN §3: nothing accepted is lost on a crash
//! (outbox), nothing is applied twice on a redelivery (inbox), nothing fails silently (DLQ).

pub mod auth;
pub mod bus;
pub mod config;
pub mod consumer;
pub mod db;
pub mod event;
pub mod inbox;
pub mod outbox;
pub mod paging;
pub mod serve;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use auth::{Principal, require};
pub use bus::Bus;
pub use config::RuntimeConfig;
pub use consumer::{ConsumerSpec, Delivery, HandleError, Handler};
pub use db::Database;
pub use outbox::OutboxMessage;
pub use service::{Running, Service};
