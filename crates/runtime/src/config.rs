//! The settings every service shares, parsed once from flags and environment variables.
//!
//! Each service flattens [`RuntimeConfig`] into its own `clap` struct, so `--help` lists
//! every variable with its default, and a bad value stops start-up with a message that
//! names the flag and the variable. Defaults live in [`defaults`] only: the clap attributes
//! and [`RuntimeConfig::local`] (tests, `redress dev`) both read them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, CommandFactory, FromArgMatches, ValueEnum, error::ContextKind};
use secrecy::{ExposeSecret, SecretString};

/// The one place default values are written down.
pub mod defaults {
    pub const NATS_URL: &str = "nats://127.0.0.1:4222";
    pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/redress";
    pub const DB_MAX_CONNECTIONS: u32 = 8;
    pub const STREAM_REPLICAS: usize = 1;
    pub const GRPC_ADDR: &str = "0.0.0.0:50051";
    pub const HTTP_ADDR: &str = "0.0.0.0:9090";
    pub const JWT_ISSUER: &str = "redress";
    pub const JWT_AUDIENCE: &str = "redress";
    pub const JWT_ROLES_CLAIM: &str = "roles";
    pub const JWT_DEPARTMENT_CLAIM: &str = "department";
    pub const JWT_MAX_LIFETIME: &str = "24h";
    pub const SHUTDOWN_GRACE: &str = "30s";
    pub const CONSUMER_MAX_ATTEMPTS: u32 = 5;
    pub const CONSUMER_BATCH: usize = 50;
    pub const CONSUMER_CONCURRENCY: u16 = 1;
    pub const CONSUMER_BACKOFF: &str = "1s";
    pub const CONSUMER_ACK_WAIT: &str = "30s";
}

/// Settings shared by every Redress service.
#[derive(Debug, Clone, Args)]
pub struct RuntimeConfig {
    /// NATS server URL(s), comma-separated; `tls://` requires TLS.
    #[arg(long, env = "REDRESS_NATS_URL", default_value = defaults::NATS_URL)]
    pub nats_url: String,

    /// NATS credentials file (a user JWT and seed), when the server requires one.
    #[arg(long, env = "REDRESS_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,

    /// NATS user name, for a server whose `authorization`/`accounts` block lists users with
    /// passwords (deploy/nats generates one per service with its subject permissions).
    #[arg(long, env = "REDRESS_NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,

    /// Password of `REDRESS_NATS_USER` (kept out of the URL, so logs never carry it).
    #[arg(long, env = "REDRESS_NATS_PASSWORD", requires = "nats_user",
          value_parser = parse_secret, hide_env_values = true)]
    pub nats_password: Option<SecretString>,

    /// Prefix for every subject, stream and database schema, so several environments (or
    /// tests) can share one NATS server and one Postgres without seeing each other. Empty in
    /// production.
    #[arg(long, env = "REDRESS_BUS_NAMESPACE", default_value = "", value_parser = parse_namespace)]
    pub bus_namespace: String,

    /// JetStream stream replicas (3 in a production cluster).
    #[arg(long, env = "REDRESS_STREAM_REPLICAS", default_value_t = defaults::STREAM_REPLICAS)]
    pub stream_replicas: usize,

    /// Postgres connection URL; `sslmode`, `sslrootcert`, `sslcert` and `sslkey` parameters
    /// set up TLS. The service works in its own schema as its own role.
    #[arg(long, env = "REDRESS_DATABASE_URL", default_value = defaults::DATABASE_URL,
          value_parser = parse_secret, hide_env_values = true)]
    pub database_url: SecretString,

    /// Maximum connections in the service's pool.
    #[arg(long, env = "REDRESS_DB_MAX_CONNECTIONS", default_value_t = defaults::DB_MAX_CONNECTIONS)]
    pub db_max_connections: u32,

    /// Where the gRPC API listens (port 0 picks a free port).
    #[arg(long, env = "REDRESS_GRPC_ADDR", default_value = defaults::GRPC_ADDR)]
    pub grpc_addr: SocketAddr,

    /// Where /healthz, /readyz and /metrics listen (port 0 picks a free port).
    #[arg(long, env = "REDRESS_HTTP_ADDR", default_value = defaults::HTTP_ADDR)]
    pub http_addr: SocketAddr,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub tls: TlsConfig,

    /// Log format.
    #[arg(long, env = "REDRESS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// How long in-flight work may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "REDRESS_SHUTDOWN_GRACE", default_value = defaults::SHUTDOWN_GRACE,
          value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub consumer: ConsumerTuning,
}

/// Who may call: the keys that sign bearer tokens and the claims read from them.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// PEM public keys (Ed25519 or RSA) that may sign bearer tokens, comma-separated paths.
    /// The key id (`kid`) of each is its file stem.
    #[arg(long, env = "REDRESS_JWT_PUBLIC_KEYS", value_delimiter = ',')]
    pub jwt_public_keys: Vec<PathBuf>,

    /// A JSON Web Key Set URL (an identity provider's `jwks_uri`), fetched at start-up and
    /// refreshed when a token names a key id it does not hold.
    #[arg(long, env = "REDRESS_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,

    /// The `iss` every token must carry.
    #[arg(long, env = "REDRESS_JWT_ISSUER", default_value = defaults::JWT_ISSUER)]
    pub jwt_issuer: String,

    /// The `aud` every token must carry.
    #[arg(long, env = "REDRESS_JWT_AUDIENCE", default_value = defaults::JWT_AUDIENCE)]
    pub jwt_audience: String,

    /// The claim that holds the caller's roles: a name, or a dotted path such as
    /// `realm_access.roles` (Keycloak).
    #[arg(long, env = "REDRESS_JWT_ROLES_CLAIM", default_value = defaults::JWT_ROLES_CLAIM)]
    pub jwt_roles_claim: String,

    /// The claim that holds a handler's department.
    #[arg(long, env = "REDRESS_JWT_DEPARTMENT_CLAIM", default_value = defaults::JWT_DEPARTMENT_CLAIM)]
    pub jwt_department_claim: String,

    /// Identity-provider role names mapped to Redress roles, `idp:redress` comma-separated
    /// (e.g. `cp-specialist:specialist`). Unmapped names are taken as they are.
    #[arg(long, env = "REDRESS_JWT_ROLE_MAP", value_delimiter = ',', value_parser = parse_role_mapping)]
    pub jwt_role_map: Vec<(String, String)>,

    /// The longest lifetime (`exp - iat`) a token may have.
    #[arg(long, env = "REDRESS_JWT_MAX_LIFETIME", default_value = defaults::JWT_MAX_LIFETIME,
          value_parser = parse_duration)]
    pub jwt_max_lifetime: Duration,
}

/// TLS for the gRPC listener, for gRPC calls to other services, and for NATS. Postgres TLS is
/// set in `REDRESS_DATABASE_URL` (`?sslmode=verify-full&sslrootcert=ca.pem`).
#[derive(Debug, Clone, Default, Args)]
pub struct TlsConfig {
    /// PEM certificate chain the gRPC listener presents (with `REDRESS_GRPC_TLS_KEY`).
    #[arg(long, env = "REDRESS_GRPC_TLS_CERT", requires = "grpc_tls_key")]
    pub grpc_tls_cert: Option<PathBuf>,

    /// PEM private key of `REDRESS_GRPC_TLS_CERT`.
    #[arg(long, env = "REDRESS_GRPC_TLS_KEY", requires = "grpc_tls_cert")]
    pub grpc_tls_key: Option<PathBuf>,

    /// Require gRPC clients to present a certificate signed by this PEM CA (mutual TLS).
    #[arg(long, env = "REDRESS_GRPC_TLS_CLIENT_CA", requires = "grpc_tls_cert")]
    pub grpc_tls_client_ca: Option<PathBuf>,

    /// PEM CA that signs the other services' gRPC certificates, for calls this service makes.
    #[arg(long, env = "REDRESS_GRPC_TLS_CA")]
    pub grpc_tls_ca: Option<PathBuf>,

    /// PEM CA that signs the NATS servers' certificates (implies TLS to NATS).
    #[arg(long, env = "REDRESS_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,

    /// PEM client certificate for NATS (with `REDRESS_NATS_TLS_KEY`), when the server asks.
    #[arg(long, env = "REDRESS_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,

    /// PEM private key of `REDRESS_NATS_TLS_CERT`.
    #[arg(long, env = "REDRESS_NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
}

/// How bus consumers take and retry work.
#[derive(Debug, Clone, Args)]
pub struct ConsumerTuning {
    /// Deliveries of one message before it goes to the dead-letter queue.
    #[arg(long, env = "REDRESS_CONSUMER_MAX_ATTEMPTS", default_value_t = defaults::CONSUMER_MAX_ATTEMPTS)]
    pub max_attempts: u32,

    /// Messages applied in one transaction.
    #[arg(long, env = "REDRESS_CONSUMER_BATCH", default_value_t = defaults::CONSUMER_BATCH)]
    pub batch: usize,

    /// First redelivery delay; doubles per attempt up to 5 minutes.
    #[arg(long, env = "REDRESS_CONSUMER_BACKOFF", default_value = defaults::CONSUMER_BACKOFF,
          value_parser = parse_duration)]
    pub backoff: Duration,

    /// How long the server waits for an ack before it redelivers.
    #[arg(long, env = "REDRESS_CONSUMER_ACK_WAIT", default_value = defaults::CONSUMER_ACK_WAIT,
          value_parser = parse_duration)]
    pub ack_wait: Duration,

    /// Batches each consumer applies at once (each in its own transaction). Above 1, the
    /// messages of one stream are applied out of order, as with several replicas.
    #[arg(long, env = "REDRESS_CONSUMER_CONCURRENCY", default_value_t = defaults::CONSUMER_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl RuntimeConfig {
    /// The defaults, with every environment variable ignored, pointed at `nats_url` and
    /// `database_url` in `namespace`, listening on free loopback ports: tests and tools.
    pub fn local(nats_url: &str, database_url: &str, namespace: &str) -> Self {
        let mut config = Self::defaults();
        config.nats_url = nats_url.to_owned();
        config.database_url = SecretString::from(database_url.to_owned());
        config.bus_namespace = namespace.to_owned();
        config.grpc_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.log_format = LogFormat::Pretty;
        config
    }

    /// Every setting at its default.
    fn defaults() -> Self {
        defaults_of()
    }

    /// The Postgres URL, password masked, for messages.
    pub fn database_url_for_display(&self) -> String {
        mask_url(self.database_url.expose_secret())
    }
}

impl Default for ConsumerTuning {
    fn default() -> Self {
        RuntimeConfig::defaults().consumer
    }
}

/// A group of settings at the defaults of its clap attributes, read without the environment:
/// the one set of defaults, for tests and tools that build settings in code.
pub fn defaults_of<T: Args + FromArgMatches>() -> T {
    let mut command = T::augment_args(clap::Command::new("defaults"));
    let arguments: Vec<clap::Id> = command
        .get_arguments()
        .map(|a| a.get_id().clone())
        .collect();
    for id in arguments {
        command = command.mut_arg(id, |a| a.env(None::<&str>));
    }
    match command
        .try_get_matches_from(["defaults"])
        .and_then(|mut m| T::from_arg_matches_mut(&mut m))
    {
        Ok(defaults) => defaults,
        // Every setting has a default or is optional; a test parses each group.
        Err(error) => panic!("defaults do not parse: {error}"),
    }
}

/// A URL with its password replaced by `****`, for messages and logs.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
            let masked = if user_info.contains(':') {
                format!("{user}:****")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => url.to_owned(),
    }
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

/// Parses `250ms`, `30s`, `5m`, `2h`, `7d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 30s, 5m or 1h"))?;
    let seconds = |factor: u64| {
        value
            .checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{text}` is too long a duration"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => Err(format!("`{text}` has unit `{unit}`; use ms, s, m, h or d")),
    }
}

fn parse_secret(text: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(text.to_owned()))
}

/// Namespaces prefix subjects, stream names and schema names, so they must be valid in all
/// three: lower-case letters, digits and `_`, starting with a letter.
fn parse_namespace(text: &str) -> Result<String, String> {
    let valid = text.is_empty()
        || (text.starts_with(|c: char| c.is_ascii_lowercase())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && text.len() <= 40);
    if valid {
        Ok(text.to_owned())
    } else {
        Err("a namespace is lower-case letters, digits and `_`, starting with a letter, at most 40 characters".into())
    }
}

fn parse_role_mapping(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
            Ok((from.trim().to_owned(), to.trim().to_owned()))
        }
        _ => Err(format!("`{text}` is not `idp-role:redress-role`")),
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
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn a_nats_user_comes_with_its_password() {
        assert!(Cli::try_parse_from(["svc", "--nats-user", "intake"]).is_err());
        assert!(Cli::try_parse_from(["svc", "--nats-password", "secret"]).is_err());
        let both = Cli::try_parse_from(["svc", "--nats-user", "intake", "--nats-password", "s"]);
        assert!(both.is_ok_and(|c| c.runtime.nats_user.as_deref() == Some("intake")));
    }

    #[test]
    fn a_bad_value_names_its_flag() {
        let error = Cli::try_parse_from(["svc", "--grpc-addr", "not-an-address"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("--grpc-addr"), "{error}");
    }

    #[test]
    fn namespaces_must_fit_subjects_streams_and_schemas() {
        assert!(parse_namespace("t_123a").is_ok());
        assert!(parse_namespace("").is_ok());
        assert!(parse_namespace("a.b").is_err());
        assert!(parse_namespace("a>").is_err());
        assert!(parse_namespace("Upper").is_err());
        assert!(parse_namespace("a-b").is_err());
        assert!(parse_namespace("1abc").is_err());
    }

    #[test]
    fn local_settings_are_the_defaults_whatever_the_environment() {
        let config = RuntimeConfig::local("nats://n:1", "postgres://u:secret@h/db", "ns");
        assert_eq!(config.consumer.batch, defaults::CONSUMER_BATCH);
        assert_eq!(config.auth.jwt_issuer, defaults::JWT_ISSUER);
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        assert_eq!(config.database_url_for_display(), "postgres://u:****@h/db");
        assert_eq!(ConsumerTuning::default().max_attempts, 5);
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let config = RuntimeConfig::local("nats://n:1", "postgres://u:hunter2@h/db", "");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn urls_are_masked_for_messages() {
        assert_eq!(
            mask_url("postgres://a:b@h:5432/d"),
            "postgres://a:****@h:5432/d"
        );
        assert_eq!(mask_url("postgres://a@h/d"), "postgres://a@h/d");
        assert_eq!(mask_url("garbage"), "garbage");
        assert_eq!(mask_url("nats://h:4222"), "nats://h:4222");
    }
}
