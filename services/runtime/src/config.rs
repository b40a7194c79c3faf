//! The settings every service shares, parsed once from flags and environment variables.
//!
//! Each service flattens [`RuntimeConfig`] into its own `clap` struct, so `--help` lists
//! every variable with its default, and a bad value stops start-up with clap's message,
//! which names the flag and the variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, CommandFactory, FromArgMatches, ValueEnum, error::ContextKind};

/// Settings shared by every Redress service.
#[derive(Debug, Clone, Args)]
pub struct RuntimeConfig {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long,
        env = "REDRESS_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,

    /// NATS credentials file (a user JWT and seed), when the server requires one.
    #[arg(long, env = "REDRESS_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,

    /// Prefix for every subject and stream, so several environments (or tests) can share one
    /// NATS server without seeing each other. Empty in production.
    #[arg(long, env = "REDRESS_BUS_NAMESPACE", default_value = "", value_parser = parse_namespace)]
    pub bus_namespace: String,

    /// JetStream stream replicas (3 in a production cluster).
    #[arg(long, env = "REDRESS_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,

    /// Postgres connection URL. The service works in its own schema as its own role.
    #[arg(
        long,
        env = "REDRESS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/redress"
    )]
    pub database_url: String,

    /// Maximum connections in the service's pool.
    #[arg(long, env = "REDRESS_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,

    /// Where the gRPC API listens (port 0 picks a free port).
    #[arg(long, env = "REDRESS_GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,

    /// Where /healthz, /readyz and /metrics listen (port 0 picks a free port).
    #[arg(long, env = "REDRESS_HTTP_ADDR", default_value = "0.0.0.0:9090")]
    pub http_addr: SocketAddr,

    /// PEM public keys (Ed25519 or RSA) that may sign bearer tokens, comma-separated paths.
    /// The key id (`kid`) of each is its file stem.
    #[arg(
        long,
        env = "REDRESS_JWT_PUBLIC_KEYS",
        value_delimiter = ',',
        required = true
    )]
    pub jwt_public_keys: Vec<PathBuf>,

    /// The `iss` every token must carry.
    #[arg(long, env = "REDRESS_JWT_ISSUER", default_value = "redress")]
    pub jwt_issuer: String,

    /// The `aud` every token must carry.
    #[arg(long, env = "REDRESS_JWT_AUDIENCE", default_value = "redress")]
    pub jwt_audience: String,

    /// Log format.
    #[arg(long, env = "REDRESS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// How long in-flight work may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "REDRESS_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub consumer: ConsumerTuning,
}

/// How bus consumers take and retry work.
#[derive(Debug, Clone, Args)]
pub struct ConsumerTuning {
    /// Deliveries of one message before it goes to the dead-letter queue.
    #[arg(long, env = "REDRESS_CONSUMER_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,

    /// Messages applied in one transaction.
    #[arg(long, env = "REDRESS_CONSUMER_BATCH", default_value_t = 50)]
    pub batch: usize,

    /// First redelivery delay; doubles per attempt up to 5 minutes.
    #[arg(long, env = "REDRESS_CONSUMER_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub backoff: Duration,

    /// How long the server waits for an ack before it redelivers.
    #[arg(long, env = "REDRESS_CONSUMER_ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub ack_wait: Duration,
}

impl Default for ConsumerTuning {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            batch: 50,
            backoff: Duration::from_secs(1),
            ack_wait: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Parses a service's command line and environment, or exits with a message that names the
/// flag *and* the environment variable behind a bad or missing value.
pub fn parse<T: CommandFactory + FromArgMatches>() -> T {
    let mut command = T::command();
    let result = command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut matches| T::from_arg_matches_mut(&mut matches));
    match result {
        Ok(parsed) => parsed,
        Err(error) => {
            let error = error.with_cmd(&command);
            if let Some(variable) = offending_variable(&command, &error) {
                eprintln!("configuration: {variable} (or its flag) is missing or invalid");
            }
            error.exit()
        }
    }
}

fn offending_variable(command: &clap::Command, error: &clap::Error) -> Option<String> {
    let arg = error.get(ContextKind::InvalidArg)?.to_string();
    command
        .get_arguments()
        .find(|a| {
            a.get_long()
                .is_some_and(|long| arg.starts_with(&format!("--{long}")))
        })
        .and_then(|a| a.get_env())
        .map(|env| env.to_string_lossy().into_owned())
}

/// Parses `250ms`, `30s`, `5m`, `2h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 30s, 5m or 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "" | "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        "h" => Ok(Duration::from_secs(value * 3600)),
        _ => Err(format!("`{text}` has unit `{unit}`; use ms, s, m or h")),
    }
}

fn parse_namespace(text: &str) -> Result<String, String> {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(text.to_owned())
    } else {
        Err("only letters, digits, `_` and `-` may appear in a namespace".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        runtime: RuntimeConfig,
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn a_bad_value_names_its_flag() {
        let error = Cli::try_parse_from([
            "svc",
            "--jwt-public-keys",
            "k.pem",
            "--grpc-addr",
            "not-an-address",
        ])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(error.contains("--grpc-addr"), "{error}");
    }

    #[test]
    fn a_missing_key_list_names_the_variable() {
        let error = Cli::try_parse_from(["svc"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("--jwt-public-keys"), "{error}");
    }

    #[test]
    fn namespaces_refuse_subject_syntax() {
        assert!(parse_namespace("t_123-a").is_ok());
        assert!(parse_namespace("a.b").is_err());
        assert!(parse_namespace("a>").is_err());
    }
}
