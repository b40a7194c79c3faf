//! What a service shows the world: its gRPC API with the standard health service and server
//! reflection (v1 and v1alpha, which Postman and grpcui still ask for), behind bearer-token
//! authentication, and an HTTP listener with `/healthz`, `/readyz` and `/metrics`.
//!
//! Authentication is a layer around every route but health and reflection, so an API cannot
//! be served without it. Reflection lists only the services this port serves, and the
//! request metrics are labelled by the methods those services have (anything else is
//! `unknown`), so no caller can grow the number of metric series.

use std::{
    collections::HashSet,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{Router, http::StatusCode, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    server::NamedService,
    service::{Routes, RoutesBuilder},
    transport::{Certificate, Identity, ServerTlsConfig, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{auth::Authenticator, bus::Bus, config::TlsConfig, db::Database};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot read {what} {path}: {source}")]
    TlsFile {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

const HEALTH: &str = "grpc.health.v1.Health";
const REFLECTION: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The process-wide Prometheus recorder (one per process, shared by every service in it).
/// Every series the runtime records carries a `service` label, and each service's
/// `/metrics` shows only its own series — `redress dev` runs every service in one process.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Whether the service can do its work: its database and NATS both answer.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The gRPC routes of one port: the service's API plus health and reflection.
pub struct GrpcSurface {
    routes: RoutesBuilder,
    health: HealthReporter,
    names: Vec<&'static str>,
}

impl GrpcSurface {
    pub fn new() -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = Routes::builder();
        routes.add_service(health_service);
        Self {
            routes,
            health,
            names: Vec::new(),
        }
    }

    /// Adds an application service; health reports it and reflection lists it.
    pub fn add<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.names.clone()
    }

    /// The routes with reflection of exactly the services added, and the methods they have.
    fn finish(mut self) -> Result<(Routes, Arc<HashSet<String>>), ServeError> {
        let reflection = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(redress_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(HEALTH);
            for name in REFLECTION.iter().chain(&self.names) {
                builder = builder.with_service_name(*name);
            }
            builder
        };
        self.routes
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?);
        let methods = known_methods(&self.names);
        Ok((self.routes.routes(), Arc::new(methods)))
    }
}

impl Default for GrpcSurface {
    fn default() -> Self {
        Self::new()
    }
}

/// `/<package.Service>/<Method>` of every method the named services (and health and
/// reflection) have, from the descriptor sets.
fn known_methods(names: &[&str]) -> HashSet<String> {
    let mut methods: HashSet<String> = ["Check", "Watch"]
        .iter()
        .map(|m| format!("/{HEALTH}/{m}"))
        .chain(
            REFLECTION
                .iter()
                .map(|s| format!("/{s}/ServerReflectionInfo")),
        )
        .collect();
    let Ok(set) = prost_types::FileDescriptorSet::decode(redress_proto::FILE_DESCRIPTOR_SET) else {
        return methods;
    };
    for file in &set.file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            if names.contains(&full.as_str()) {
                for method in &service.method {
                    methods.insert(format!("/{full}/{}", method.name()));
                }
            }
        }
    }
    methods
}

/// Addresses a running service listens on.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

/// Binds both listeners (port 0 picks a free one).
pub async fn bind(
    grpc: SocketAddr,
    http: SocketAddr,
) -> Result<(TcpListener, TcpListener), ServeError> {
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    Ok((bind(grpc).await?, bind(http).await?))
}

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::TlsFile {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// The listener's TLS settings, when a certificate is configured.
pub fn server_tls(tls: &TlsConfig) -> Result<Option<ServerTlsConfig>, ServeError> {
    let (Some(cert), Some(key)) = (&tls.grpc_tls_cert, &tls.grpc_tls_key) else {
        return Ok(None);
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(
        read("REDRESS_GRPC_TLS_CERT", cert)?,
        read("REDRESS_GRPC_TLS_KEY", key)?,
    ));
    if let Some(ca) = &tls.grpc_tls_client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(
            "REDRESS_GRPC_TLS_CLIENT_CA",
            ca,
        )?));
    }
    Ok(Some(config))
}

/// What [`serve`] needs besides the routes.
pub struct Serving {
    pub listeners: (TcpListener, TcpListener),
    pub readiness: Readiness,
    pub auth: Arc<Authenticator>,
    pub tls: Option<ServerTlsConfig>,
    pub service: &'static str,
}

/// Serves gRPC and HTTP until `shutdown`, letting in-flight calls finish.
pub async fn serve(
    surface: GrpcSurface,
    serving: Serving,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let (routes, methods) = surface.finish()?;
    let (grpc_listener, http_listener) = serving.listeners;
    let http_task = tokio::spawn(serve_http(
        http_listener,
        serving.readiness,
        metrics_handle(),
        serving.service,
        shutdown.clone(),
    ));
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = serving.tls {
        server = server.tls_config(tls)?;
    }
    server
        .layer(GrpcMetricsLayer {
            methods,
            service: serving.service,
        })
        .layer(AuthLayer { auth: serving.auth })
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpIncoming::from(grpc_listener), shutdown.cancelled())
        .await?;
    let _ = http_task.await;
    Ok(())
}

async fn serve_http(
    listener: TcpListener,
    readiness: Readiness,
    metrics: PrometheusHandle,
    service: &'static str,
    shutdown: CancellationToken,
) {
    let http = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not ready: database or NATS unreachable",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || std::future::ready(own_series(&metrics.render(), service))),
        );
    let result = axum::serve(listener, http)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "HTTP listener failed");
    }
}

/// Watches the database and NATS, and reports the result through gRPC health and `/readyz`.
pub async fn watch_readiness(
    db: Database,
    bus: Bus,
    health: HealthReporter,
    names: Vec<&'static str>,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let mut last = None;
    loop {
        let nats_up = bus.client().connection_state() == async_nats::connection::State::Connected;
        let ready = nats_up && db.is_ready().await;
        if last != Some(ready) {
            readiness.0.store(ready, Ordering::Relaxed);
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status("", status).await;
            for name in &names {
                health.set_service_status(*name, status).await;
            }
            if last.is_some() {
                tracing::warn!(ready, nats_up, "readiness changed");
            }
            last = Some(ready);
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                health.set_service_status("", ServingStatus::NotServing).await;
                return;
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The exposition with only the series of `service` (and series with no `service` label).
fn own_series(text: &str, service: &str) -> String {
    let mine = format!("service=\"{service}\"");
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let foreign =
            !line.starts_with('#') && line.contains("service=\"") && !line.contains(&mine);
        if !foreign {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Requires a valid bearer token on every call but health and reflection, and hands the
/// caller to the handler as a [`crate::auth::Principal`] in the request's extensions.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

fn is_public(path: &str) -> bool {
    let service = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    service == HEALTH || REFLECTION.contains(&service)
}

impl<S, B> tower::Service<http::Request<B>> for Authenticated<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service polled ready is the one that must take the call (tower's contract).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            if !is_public(request.uri().path()) {
                match auth.authenticate(request.headers()).await {
                    Ok(principal) => {
                        request.extensions_mut().insert(principal);
                    }
                    Err(status) => return Ok(status.into_http()),
                }
            }
            inner.call(request).await
        })
    }
}

/// Counts gRPC calls by method and status code and times them.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    methods: Arc<HashSet<String>>,
    service: &'static str,
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            methods: self.methods.clone(),
            service: self.service,
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    methods: Arc<HashSet<String>>,
    service: &'static str,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = if self.methods.contains(path) {
            path.to_owned()
        } else {
            "unknown".to_owned()
        };
        let service = self.service;
        let started = Instant::now();
        let span = crate::telemetry::grpc_span(request.headers(), &method);
        let call = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(tracing::Instrument::instrument(
            async move {
                let response = call.await;
                // A failed unary call is a trailers-only response: its status is in the headers.
                let code = match &response {
                    Ok(r) => r
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map(|c| format!("{:?}", tonic::Code::from_i32(c)))
                        .unwrap_or_else(|| "Ok".to_owned()),
                    Err(_) => "Unknown".to_owned(),
                };
                metrics::counter!("redress_grpc_requests_total", "service" => service, "method" => method.clone(), "code" => code)
                    .increment(1);
                metrics::histogram!("redress_grpc_request_duration_seconds", "service" => service, "method" => method)
                    .record(started.elapsed().as_secs_f64());
                response
            },
            span,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_reflection_are_the_only_public_paths() {
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(is_public(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_public("/redress.cases.v1.CaseService/GetCase"));
        assert!(!is_public("/grpc.health.v1.HealthX/Check"));
        assert!(!is_public("/"));
    }

    #[test]
    fn each_service_shows_its_own_series() {
        let text =
            "# TYPE x counter\nx{service=\"intake\",a=\"1\"} 1\nx{service=\"cases\"} 2\ny 3\n";
        assert_eq!(
            own_series(text, "intake"),
            "# TYPE x counter\nx{service=\"intake\",a=\"1\"} 1\ny 3\n"
        );
    }

    #[test]
    fn known_methods_are_those_of_the_served_services() {
        let methods = known_methods(&["redress.cases.v1.CaseService"]);
        assert!(methods.contains("/redress.cases.v1.CaseService/GetCase"));
        assert!(methods.contains("/grpc.health.v1.Health/Check"));
        assert!(!methods.contains("/redress.intake.v1.IntakeService/GetContact"));
        assert!(!methods.contains("/evil.SvcX/X"));
    }
}
