//! Test support (feature `testing`): every test gets its own database and its own bus
//! namespace on the real Postgres and NATS, so tests run in parallel without seeing each other.
//!
//! Postgres comes from `REDRESS_TEST_DATABASE_URL` (default: the `postgres` database on
//! 127.0.0.1:5432 as `postgres`), NATS from `REDRESS_NATS_URL` (default 127.0.0.1:4222).

use std::{future::Future, path::PathBuf, time::Duration};

use sqlx::{AssertSqlSafe, ConnectOptions, Executor, postgres::PgConnectOptions};

use crate::{
    auth::Role,
    bus::Bus,
    config::{ConsumerTuning, RuntimeConfig},
};

/// A fresh database and namespace for one test.
pub struct TestEnv {
    pub database_url: String,
    pub nats_url: String,
    pub namespace: String,
    database: String,
    admin: PgConnectOptions,
}

impl TestEnv {
    /// Creates the test's database. Panics (failing the test) when Postgres is unreachable.
    pub async fn new() -> Self {
        let admin_url = std::env::var("REDRESS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let nats_url = std::env::var("REDRESS_NATS_URL")
            .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        let suffix = &suffix[suffix.len() - 12..];
        let database = format!("redress_test_{suffix}");
        let admin: PgConnectOptions = match admin_url.parse() {
            Ok(options) => options,
            Err(error) => panic!("REDRESS_TEST_DATABASE_URL is not a Postgres URL: {error}"),
        };
        let mut conn = match admin.connect().await {
            Ok(conn) => conn,
            Err(error) => panic!("tests need Postgres at {admin_url}: {error}"),
        };
        if let Err(error) = conn
            .execute(AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .await
        {
            panic!("cannot create test database {database}: {error}");
        }
        let database_url = admin_url
            .rsplit_once('/')
            .map(|(base, _)| format!("{base}/{database}"))
            .unwrap_or_else(|| admin_url.clone());
        Self {
            database_url,
            nats_url,
            namespace: format!("t{suffix}"),
            database,
            admin,
        }
    }

    /// The test's own database (every service's schema is in it).
    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// A superuser connection to the server (not to the test's database).
    pub async fn admin(&self) -> Result<sqlx::PgConnection, sqlx::Error> {
        self.admin.connect().await
    }

    /// Runtime settings for a service under test: free ports, the development key, quick
    /// retries.
    pub fn runtime_config(&self) -> RuntimeConfig {
        let mut config = RuntimeConfig::local(&self.nats_url, &self.database_url, &self.namespace);
        config.db_max_connections = 4;
        config.auth.jwt_public_keys = vec![dev_public_key()];
        config.shutdown_grace = Duration::from_secs(10);
        config.consumer = ConsumerTuning {
            max_attempts: 3,
            batch: 50,
            backoff: Duration::from_millis(50),
            ack_wait: Duration::from_secs(5),
            concurrency: 1,
        };
        config
    }

    /// The schema a service that works in `base` uses in this test (behind the namespace).
    pub fn schema(&self, base: &str) -> String {
        crate::db::schema_name(&self.namespace, base)
    }

    /// A pool on the test's database whose unqualified names resolve in the service's schema
    /// `base` (as the service sees them): `SELECT count(*) FROM complaints`.
    pub async fn pool(&self, base: &str) -> sqlx::PgPool {
        let path = format!("SET search_path TO {}", self.schema(base));
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .after_connect(move |conn, _| {
                let path = path.clone();
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(path)).await?;
                    Ok(())
                })
            })
            .connect(&self.database_url)
            .await;
        match pool {
            Ok(pool) => pool,
            Err(error) => panic!("test database {}: {error}", self.database_url),
        }
    }

    /// A bus connection in the test's namespace.
    pub async fn bus(&self) -> Bus {
        match async_nats::connect(self.nats_url.as_str()).await {
            Ok(client) => Bus::from_client(client, &self.namespace, 1),
            Err(error) => panic!("tests need NATS at {}: {error}", self.nats_url),
        }
    }

    /// Removes the test's database and streams (call at the end of a passing test; a failed
    /// test leaves them for inspection).
    pub async fn cleanup(self) {
        let bus = self.bus().await;
        for spec in crate::bus::ALL_STREAMS {
            let _ = bus
                .jetstream()
                .delete_stream(bus.stream_name(spec.name))
                .await;
        }
        if let Ok(mut conn) = self.admin.connect().await {
            let _ = conn
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.database
                )))
                .await;
        }
    }
}

/// The development public key shipped in `deploy/local/dev-keys/`.
pub fn dev_public_key() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/local/dev-keys/dev.pem"
    ))
}

/// A development bearer token carrying the role names `roles` as a token would (names
/// Redress does not know are carried too, and dropped by the service).
pub fn token(subject: &str, roles: &[&str], department: Option<&str>) -> String {
    let mut claims = crate::auth::claims(subject, &[], department, Duration::from_secs(3600));
    claims.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    crate::auth::mint(
        crate::auth::dev::PRIVATE_PEM.as_bytes(),
        crate::auth::dev::KID,
        &claims,
    )
    .unwrap_or_default()
}

/// The subject a token for `roles` carries: a service identity's own name (so the identity
/// counts), else `tester`.
pub fn subject_for<'a>(roles: &[&'a str]) -> &'a str {
    roles
        .iter()
        .copied()
        .find(|r| {
            Role::parse(r).is_some_and(|role| matches!(role, Role::Service(_) | Role::Channel(_)))
        })
        .unwrap_or("tester")
}

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(crate::service::POLL).await;
    }
}

impl TestEnv {
    /// A service binary as a child process of the test, pointed at the test's database and
    /// namespace, with the development key and free ports; killed when dropped.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command
            .env("REDRESS_NATS_URL", &self.nats_url)
            .env("REDRESS_DATABASE_URL", &self.database_url)
            .env("REDRESS_BUS_NAMESPACE", &self.namespace)
            .env("REDRESS_JWT_PUBLIC_KEYS", dev_public_key())
            .env("REDRESS_GRPC_ADDR", "127.0.0.1:0")
            .env("REDRESS_HTTP_ADDR", "127.0.0.1:0")
            .kill_on_drop(true);
        command
    }
}

/// Every message stored in a stream so far, read one by one by sequence number.
pub async fn stored(
    bus: &Bus,
    spec: &redress_proto::bus::StreamSpec,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let Ok(mut stream) = bus.jetstream().get_stream(bus.stream_name(spec.name)).await else {
        return Vec::new();
    };
    let Ok(info) = stream.info().await else {
        return Vec::new();
    };
    if info.state.messages == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for sequence in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            out.push(message);
        }
    }
    out
}

/// A connected gRPC channel, failing the test when the server does not answer.
pub async fn grpc_channel(url: &str) -> tonic::transport::Channel {
    match tonic::transport::Channel::from_shared(url.to_owned()) {
        Ok(endpoint) => match endpoint.connect().await {
            Ok(channel) => channel,
            Err(error) => panic!("connect {url}: {error}"),
        },
        Err(error) => panic!("{url}: {error}"),
    }
}

/// A gRPC request carrying a development bearer token for the role names `roles`.
pub fn authed<T>(message: T, roles: &[&str]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {}", token(subject_for(roles), roles, None)).parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// A nats-server of the test's own (the `nats-server` on PATH, or `REDRESS_NATS_SERVER`), so a
/// test can take it away and bring it back, or give it a configuration of its own.
pub struct OwnNats {
    pub port: u16,
    pub store: PathBuf,
    args: Vec<String>,
    child: Option<tokio::process::Child>,
}

impl OwnNats {
    /// A JetStream server on a free port.
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// A JetStream server on a free port with more arguments (`-c file`, `--tls` …).
    pub async fn start_with(args: Vec<String>) -> Self {
        let port = free_port();
        let store = std::env::temp_dir().join(format!(
            "redress-nats-{port}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        let mut nats = Self {
            port,
            store,
            args,
            child: None,
        };
        nats.up().await;
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub async fn up(&mut self) {
        let binary = std::env::var("REDRESS_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let child = tokio::process::Command::new(&binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match child {
            Ok(child) => self.child = Some(child),
            Err(error) => {
                panic!("this test runs its own `{binary}` (install nats-server): {error}")
            }
        }
        let port = self.port;
        eventually(
            "nats-server to listen",
            Duration::from_secs(30),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
    }

    pub async fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().ok();
            child.wait().await.ok();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            child.start_kill().ok();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(14222)
}

/// A certificate authority made for one test, and certificates it signs for `localhost` and
/// 127.0.0.1 — TLS to Postgres, NATS and gRPC tested against a CA nobody else trusts.
pub struct TestCa {
    pub dir: PathBuf,
    ca: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("redress-ca-{}", uuid::Uuid::now_v7().simple()));
        let made = (|| -> Result<(rcgen::Certificate, rcgen::KeyPair), rcgen::Error> {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "Redress test CA");
            let key = rcgen::KeyPair::generate()?;
            Ok((params.self_signed(&key)?, key))
        })();
        let (ca, key) = match made {
            Ok(made) => made,
            Err(error) => panic!("test CA: {error}"),
        };
        if let Err(error) =
            std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join("ca.pem"), ca.pem()))
        {
            panic!("writing the test CA: {error}");
        }
        Self { dir, ca, key }
    }

    /// The CA certificate's file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate and key for localhost/127.0.0.1 signed by this CA, written as
    /// `<name>.pem` and `<name>.key.pem` (key mode 0600); returns both paths.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let made = (|| -> Result<(String, String), rcgen::Error> {
            let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(std::net::IpAddr::V4(
                    std::net::Ipv4Addr::LOCALHOST,
                )));
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let key = rcgen::KeyPair::generate()?;
            let cert = params.signed_by(&key, &self.ca, &self.key)?;
            Ok((cert.pem(), key.serialize_pem()))
        })();
        let (cert, key) = match made {
            Ok(made) => made,
            Err(error) => panic!("test certificate: {error}"),
        };
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}.key.pem"));
        let written = std::fs::write(&cert_path, cert).and_then(|_| std::fs::write(&key_path, key));
        if let Err(error) = written {
            panic!("writing the test certificate: {error}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600));
        }
        (cert_path, key_path)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
