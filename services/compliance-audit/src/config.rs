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

    /// Judge the compliance rules (rules/violations.toml) as events are logged and on timers.
    #[arg(long, env = "REDRESS_AUDIT_RULES", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub rules: bool,

    /// How long after a time limit the rules wait for events still on their way (from other
    /// streams, a lagging consumer) before they call something missing.
    #[arg(long, env = "REDRESS_AUDIT_RULES_SETTLE", default_value = "5m",
          value_parser = parse_duration)]
    pub rules_settle: Duration,

    /// How often the streams are reconciled with the log.
    #[arg(long, env = "REDRESS_AUDIT_RECONCILE_INTERVAL", default_value = "1h",
          value_parser = parse_duration)]
    pub reconcile_interval: Duration,

    /// The reviewers the monthly inspection sample is assigned to, in turn (token subjects,
    /// comma-separated); empty: any compliance reviewer may score any sampled case.
    #[arg(long, env = "REDRESS_AUDIT_REVIEWERS", value_delimiter = ',')]
    pub reviewers: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        redress_runtime::config::defaults_of()
    }
}
