//! Compliance-audit's settings: the runtime's, plus the log's signing key and how often it
//! signs a checkpoint.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser};
use redress_runtime::{RuntimeConfig, ServiceConfig, config::parse_duration};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "redress-compliance-audit",
    about = "Redress compliance audit: a tamper-evident log of every event, with signed checkpoints and proofs"
)]
pub struct Config {
    #[command(flatten)]
    pub runtime: RuntimeConfig,
    #[command(flatten)]
    pub audit: AuditConfig,
}

impl ServiceConfig for Config {
    fn runtime(&self) -> &RuntimeConfig {
        &self.runtime
    }
}

#[derive(Debug, Clone, Args)]
pub struct AuditConfig {
    /// The log's signer key file (`PRIVATE+KEY+<name>+<id>+<key>`, as `redress-compliance-audit
    /// keygen` writes it). Its name is the checkpoints' origin.
    #[arg(long, env = "REDRESS_AUDIT_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,

    /// Sign a checkpoint at least this often while the log grows.
    #[arg(long, env = "REDRESS_AUDIT_CHECKPOINT_INTERVAL", default_value = "10s",
          value_parser = parse_duration)]
    pub checkpoint_interval: Duration,

    /// …and whenever this many entries were appended since the last one.
    #[arg(long, env = "REDRESS_AUDIT_CHECKPOINT_ENTRIES", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_entries: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        redress_runtime::config::defaults_of()
    }
}
