//! Schema isolation, health, readiness and reflection, over real sockets.

use std::{net::SocketAddr, time::Duration};

use redress_runtime::{
    Service,
    db::Database,
    testing::{OwnNats, TestEnv, eventually},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

static NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_service_role_cannot_read_another_schema() {
    let env = TestEnv::new().await;
    let connect = |schema: &'static str| {
        Database::connect(&env.database_url, schema, schema, 2, &NO_MIGRATIONS)
    };
    let (Ok(alpha), Ok(beta)) = (connect("alpha").await, connect("beta").await) else {
        panic!("cannot prepare schemas")
    };
    sqlx::query("CREATE TABLE secrets (v text)")
        .execute(beta.pool())
        .await
        .ok();
    let own = sqlx::query("SELECT count(*) FROM outbox")
        .execute(alpha.pool())
        .await;
    assert!(own.is_ok(), "a service reads its own schema: {own:?}");

    for sql in ["SELECT * FROM beta.secrets", "SELECT * FROM beta.outbox"] {
        let denied = sqlx::query(sql).execute(alpha.pool()).await;
        let code = denied.err().and_then(|e| {
            e.as_database_error()
                .and_then(|d| d.code().map(|c| c.into_owned()))
        });
        assert_eq!(code.as_deref(), Some("42501"), "{sql} must be refused");
    }
    let current: Option<String> = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(alpha.pool())
        .await
        .ok();
    assert_eq!(current.as_deref(), Some("alpha"));
    env.cleanup().await;
}

async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

async fn metrics_text(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok();
    let mut body = String::new();
    if let Some(stream) = stream.as_mut() {
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .ok();
        stream.read_to_string(&mut body).await.ok();
    }
    body
}

async fn channel(url: &str) -> Option<tonic::transport::Channel> {
    tonic::transport::Channel::from_shared(url.to_owned())
        .ok()?
        .connect()
        .await
        .ok()
}

async fn health(addr: SocketAddr) -> Option<ServingStatus> {
    let mut client = HealthClient::new(channel(&format!("http://{addr}")).await?);
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

#[tokio::test]
async fn health_is_not_serving_while_nats_is_away_and_recovers_when_it_returns() {
    let env = TestEnv::new().await;
    let mut nats = OwnNats::start().await;
    let mut config = env.runtime_config();
    config.nats_url = nats.url();
    let shutdown = CancellationToken::new();
    let service = Service::start("probe", "probe", config, &NO_MIGRATIONS, shutdown.clone()).await;
    let Ok(service) = service else {
        panic!("service start: {:?}", service.err())
    };
    let running = service.serve_probes_only().await;
    let Ok(running) = running else {
        panic!("serve")
    };
    let endpoints = running.endpoints;

    let status_is = |want: ServingStatus, code: u16| async move {
        (health(endpoints.grpc).await == Some(want)
            && http_status(endpoints.http, "/readyz").await == Some(code))
        .then_some(())
    };
    eventually("SERVING", WAIT, || status_is(ServingStatus::Serving, 200)).await;
    assert_eq!(http_status(endpoints.http, "/healthz").await, Some(200));

    nats.down().await;
    eventually("NOT_SERVING without NATS", WAIT, || {
        status_is(ServingStatus::NotServing, 503)
    })
    .await;
    assert_eq!(
        http_status(endpoints.http, "/healthz").await,
        Some(200),
        "alive, not ready"
    );

    nats.up().await;
    eventually("SERVING again", WAIT, || {
        status_is(ServingStatus::Serving, 200)
    })
    .await;

    let metrics = metrics_text(endpoints.http).await;
    assert!(metrics.contains("redress_grpc_requests_total"), "{metrics}");
    // Calls to methods nobody serves are counted under `unknown`, whatever their path: a
    // caller cannot grow the number of series.
    let Some(grpc_channel) = channel(&format!("http://{}", endpoints.grpc)).await else {
        panic!("no gRPC channel")
    };
    for n in 0..10 {
        let mut grpc = tonic::client::Grpc::new(grpc_channel.clone());
        grpc.ready().await.ok();
        if let Ok(path) = http::uri::PathAndQuery::try_from(format!("/evil.Svc{n}/X{n}")) {
            let codec = tonic_prost::ProstCodec::<(), ()>::default();
            let _ = grpc.unary(tonic::Request::new(()), path, codec).await;
        }
    }
    let metrics = metrics_text(endpoints.http).await;
    assert!(metrics.contains("method=\"unknown\""), "{metrics}");
    assert!(!metrics.contains("evil"), "{metrics}");

    shutdown.cancel();
    assert!(running.stopped().await.is_ok());
    nats.down().await;
    std::fs::remove_dir_all(&nats.store).ok();
    env.cleanup().await;
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let env = TestEnv::new().await;
    let shutdown = CancellationToken::new();
    let service = Service::start(
        "probe",
        "probe",
        env.runtime_config(),
        &NO_MIGRATIONS,
        shutdown.clone(),
    )
    .await;
    let Ok(service) = service else {
        panic!("start: {:?}", service.err())
    };
    let Ok(running) = service.serve_probes_only().await else {
        panic!("serve")
    };
    let url = format!("http://{}", running.endpoints.grpc);

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let Some(channel) = channel(&url).await else {
        panic!("connect {url}")
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let mut responses = match client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(e) => panic!("reflection v1: {e}"),
    };
    let mut names = Vec::new();
    if let Some(Ok(response)) = responses.next().await
        && let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            response.message_response
    {
        names = list.service.into_iter().map(|s| s.name).collect();
    }
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n == "grpc.reflection.v1.ServerReflection"),
        "{names:?}"
    );

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "redress.events.v1.Event".into(),
            ),
        ),
    };
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let answered = match client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
    {
        Ok(r) => matches!(
            r.into_inner().next().await,
            Some(Ok(v1alpha::ServerReflectionResponse {
                message_response: Some(
                    v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(_)
                ),
                ..
            }))
        ),
        Err(_) => false,
    };
    assert!(answered, "v1alpha describes redress.events.v1.Event");
    shutdown.cancel();
    running.stopped().await.ok();
    env.cleanup().await;
}
