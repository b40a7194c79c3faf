//! TLS on every connection a service makes or takes, against servers configured with a CA made
//! for the test: the gRPC listener (REDRESS_GRPC_TLS_*), NATS (REDRESS_NATS_TLS_CA) and
//! Postgres (`sslmode=verify-full&sslrootcert=…` in REDRESS_DATABASE_URL). Each also shows
//! that the connection fails without the right CA.

use std::{path::Path, process::Command, time::Duration};

use redress_runtime::{
    Bus, Service,
    db::Database,
    testing::{OwnNats, TestCa, TestEnv, free_port},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

static NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;

async fn serving(channel: Channel) -> bool {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok()
}

#[tokio::test]
async fn the_grpc_listener_serves_tls_with_the_configured_certificate() {
    let env = TestEnv::new().await;
    let ca = TestCa::new();
    let (cert, key) = ca.issue("grpc");
    let mut config = env.runtime_config();
    config.tls.grpc_tls_cert = Some(cert);
    config.tls.grpc_tls_key = Some(key);
    let shutdown = CancellationToken::new();
    let service = Service::start("probe", "probe", config, &NO_MIGRATIONS, shutdown.clone()).await;
    let Ok(service) = service else {
        panic!("start: {:?}", service.err())
    };
    let Ok(running) = service.serve_probes_only().await else {
        panic!("serve")
    };
    let addr = running.endpoints.grpc;
    let ca_pem = std::fs::read(ca.ca_file()).unwrap_or_default();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca_pem))
        .domain_name("localhost");
    let secure = Channel::from_shared(format!("https://{addr}")).map(|e| e.tls_config(tls));
    let channel = match secure {
        Ok(Ok(endpoint)) => endpoint.connect().await,
        _ => panic!("endpoint"),
    };
    let Ok(channel) = channel else {
        panic!("TLS connect: {:?}", channel.err())
    };
    assert!(serving(channel).await, "health over TLS");

    // Plain text is not served, and another CA is not trusted.
    let plain = Channel::from_shared(format!("http://{addr}")).map(|e| e.connect_lazy());
    let Ok(plain) = plain else { panic!("endpoint") };
    assert!(!serving(plain).await, "plain text refused");
    let stranger = TestCa::new();
    let other = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(stranger.ca_file()).unwrap_or_default(),
        ))
        .domain_name("localhost");
    let untrusted = Channel::from_shared(format!("https://{addr}"))
        .ok()
        .and_then(|e| e.tls_config(other).ok())
        .map(|e| e.connect_lazy());
    let Some(untrusted) = untrusted else {
        panic!("endpoint")
    };
    assert!(
        !serving(untrusted).await,
        "a certificate from another CA is refused"
    );
    shutdown.cancel();
    running.stopped().await.ok();
    env.cleanup().await;
}

#[tokio::test]
async fn the_bus_connects_to_nats_over_tls_with_the_configured_ca() {
    let env = TestEnv::new().await;
    let ca = TestCa::new();
    let (cert, key) = ca.issue("nats");
    let nats = OwnNats::start_with(vec![
        "--tls".into(),
        "--tlscert".into(),
        cert.display().to_string(),
        "--tlskey".into(),
        key.display().to_string(),
    ])
    .await;
    let mut config = env.runtime_config();
    config.nats_url = nats.url();
    config.tls.nats_tls_ca = Some(ca.ca_file());
    let bus = Bus::connect(&config, "tls-test").await;
    let Ok(bus) = bus else {
        panic!("TLS to NATS: {:?}", bus.err())
    };
    assert!(
        bus.ensure_stream(&redress_runtime::bus::DLQ).await.is_ok(),
        "JetStream over TLS"
    );

    let stranger = TestCa::new();
    config.tls.nats_tls_ca = Some(stranger.ca_file());
    let refused = Bus::connect(&config, "tls-test")
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains(&nats.url()) && e.contains("TLS")),
        "{refused:?}"
    );
}

/// A Postgres of the test's own with `ssl = on` and a certificate from the test CA. initdb
/// refuses to run as root: then the cluster belongs to the `postgres` user.
struct OwnPostgres {
    dir: std::path::PathBuf,
    port: u16,
}

fn pg_binary(name: &str) -> Option<std::path::PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|d| d.path().join("bin").join(name))
        .find(|p| p.exists());
    found.or_else(|| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
    })
}

fn as_owner(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl OwnPostgres {
    fn start(cert: &Path, key: &Path) -> Self {
        let (Some(initdb), Some(pg_ctl)) = (pg_binary("initdb"), pg_binary("pg_ctl")) else {
            panic!("this test runs its own Postgres: install postgresql (initdb, pg_ctl)");
        };
        let dir =
            std::env::temp_dir().join(format!("redress-pg-tls-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).ok();
        let _ = Command::new("chown").args(["postgres"]).arg(&dir).status();
        let data = dir.join("data");
        let ok = as_owner(&initdb)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "initdb failed");
        for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
            std::fs::copy(from, data.join(to)).ok();
            let _ = Command::new("chown")
                .args(["postgres"])
                .arg(data.join(to))
                .status();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            );
        }
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key",
            dir.display()
        );
        let ok = as_owner(&pg_ctl)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-o", &options, "-w", "start"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "pg_ctl start failed: {}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        Self { dir, port }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if let Some(pg_ctl) = pg_binary("pg_ctl") {
            let _ = as_owner(&pg_ctl)
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn the_database_connects_with_verify_full_to_the_configured_ca() {
    let ca = TestCa::new();
    let (cert, key) = ca.issue("postgres");
    let pg = OwnPostgres::start(&cert, &key);
    let url = |root: &Path| {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
            pg.port,
            root.display()
        )
    };
    let db = Database::connect(
        &url(&ca.ca_file()),
        "tlsprobe",
        "tlsprobe",
        2,
        &NO_MIGRATIONS,
    )
    .await;
    let Ok(db) = db else {
        panic!("verify-full against the test CA: {:?}", db.err())
    };
    db.pool().close().await;
    // The same URL on a plain connection: the server says the session is encrypted.
    let mut conn =
        match <sqlx::PgConnection as sqlx::Connection>::connect(&url(&ca.ca_file())).await {
            Ok(conn) => conn,
            Err(error) => panic!("{error}"),
        };
    let encrypted: Result<bool, _> =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await;
    assert_eq!(
        encrypted.map_err(|e| e.to_string()),
        Ok(true),
        "the session is encrypted"
    );

    let stranger = TestCa::new();
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        Database::connect(
            &url(&stranger.ca_file()),
            "tlsprobe",
            "tlsprobe",
            2,
            &NO_MIGRATIONS,
        ),
    )
    .await;
    let message = match refused {
        Ok(Err(error)) => error.to_string(),
        Ok(Ok(_)) => panic!("a server certificate from another CA was accepted"),
        Err(_) => panic!("no answer within 30 s"),
    };
    assert!(
        message.contains("REDRESS_DATABASE_URL") && message.contains("TLS"),
        "{message}"
    );
}
