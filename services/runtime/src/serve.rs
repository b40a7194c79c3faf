//! What a service shows the world: its gRPC API with the standard health service and server
//! reflection (v1 and v1alpha, which Postman and grpcui still ask for), and an HTTP listener
//! with `/healthz`, `/readyz` and `/metrics` (Prometheus text format).

use std::{
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
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    server::NamedService,
    service::{Routes, RoutesBuilder},
    transport::server::TcpIncoming,
};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{bus::Bus, db::Database};

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
}

/// The process-wide Prometheus recorder (one per process, shared by every service in it).
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

/// The gRPC routes every service serves besides its own: health and reflection.
pub struct GrpcSurface {
    routes: RoutesBuilder,
    health: HealthReporter,
    names: Vec<&'static str>,
}

impl GrpcSurface {
    pub fn new() -> Result<Self, ServeError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(redress_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let mut routes = Routes::builder();
        routes
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?);
        Ok(Self {
            routes,
            health,
            names: Vec::new(),
        })
    }

    /// Adds an application service; health reports it under its full name.
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

/// Serves gRPC and HTTP until `shutdown`, letting in-flight calls finish.
pub async fn serve(
    surface: GrpcSurface,
    listeners: (TcpListener, TcpListener),
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let (grpc_listener, http_listener) = listeners;
    let metrics = metrics_handle();
    let probe = readiness.clone();
    let http = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = probe.is_ready();
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
            get(move || std::future::ready(metrics.render())),
        );
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, http)
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
            .await
    });

    tonic::transport::Server::builder()
        .layer(GrpcMetricsLayer)
        .add_routes(surface.routes.routes())
        .serve_with_incoming_shutdown(TcpIncoming::from(grpc_listener), shutdown.cancelled())
        .await?;
    let _ = http_task.await;
    Ok(())
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

impl GrpcSurface {
    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.names.clone()
    }
}

/// Counts gRPC calls by method and status code and times them.
#[derive(Clone, Copy)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
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
                metrics::counter!("redress_grpc_requests_total", "method" => method.clone(), "code" => code)
                .increment(1);
                metrics::histogram!("redress_grpc_request_duration_seconds", "method" => method)
                    .record(started.elapsed().as_secs_f64());
                response
            },
            span,
        ))
    }
}
