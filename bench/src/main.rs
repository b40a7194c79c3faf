//! `redress-bench`: how fast Redress goes on this machine, with NATS and Postgres on it too.
//! Figures, never assertions: each benchmark prints a table and writes JSON to
//! `target/bench/<name>.json`.
//!
//! ```text
//! redress-bench ceiling         what this machine's Postgres and JetStream allow (same run)
//! redress-bench runtime         outbox → JetStream → inbox, batch sizes 1 and 50
//! redress-bench intake          submissions/s and publish → `received` latency
//! redress-bench classification  complaints/s per core in-process, and through the service
//! redress-bench pipeline        channel publish → case.assigned, three processes
//! redress-bench outbound        SMS/webhook signatures/s, webhook deliveries/s (redress-outbound)
//! redress-bench analytics       ingest events/s (write path, service), Breakdown p99 over 1M/year
//! redress-bench notification    notices/s sent to a local SMTP server (aiosmtpd), proof committed
//! redress-bench all
//! ```

mod analytics;
mod ceiling;
mod classification;
mod intake;
mod notification;
mod outbound;
mod pipeline;
mod report;
mod runtime;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand, Clone, Copy, PartialEq)]
enum Which {
    Ceiling,
    Runtime,
    Intake,
    Classification,
    Pipeline,
    Outbound,
    Analytics,
    Notification,
    All,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let which = Cli::parse().which;
    if matches!(which, Which::Ceiling | Which::All) {
        ceiling::run().await?;
    }
    if matches!(which, Which::Runtime | Which::All) {
        runtime::run().await?;
    }
    if matches!(which, Which::Intake | Which::All) {
        intake::run().await?;
    }
    if matches!(which, Which::Classification | Which::All) {
        classification::run().await?;
    }
    if matches!(which, Which::Pipeline | Which::All) {
        pipeline::run().await?;
    }
    if matches!(which, Which::Outbound | Which::All) {
        outbound::run().await?;
    }
    if matches!(which, Which::Analytics | Which::All) {
        analytics::run().await?;
    }
    if matches!(which, Which::Notification | Which::All) {
        notification::run().await?;
    }
    Ok(())
}
