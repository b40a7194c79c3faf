//! One service's life: connect, migrate, declare the streams, run its consumers, jobs and
//! outbox relay, serve its API behind authentication, and stop cleanly. A service's `run` is a
//! few calls on [`Service`]:
//!
//! ```text
//! let mut service = Service::start(SERVICE, "classification", config.runtime, &MIGRATIONS, shutdown).await?;
//! service.consume(Consumer::durable("classification").on::<ComplaintReceived>(Received { engine }));
//! service.serve(ClassificationServiceServer::new(Api { db: service.db.clone() })).await
//! ```

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use sqlx::migrate::Migrator;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;

use crate::{
    auth::{AuthError, Authenticator},
    bus::{ALL_STREAMS, Bus, BusError},
    config::RuntimeConfig,
    consumer::{self, Consumer, ConsumerKind, ConsumerSpec, Raw},
    db::{self, Database, DbError},
    jobs::{self, JobHandler, Queue},
    outbox::Relay,
    paging::Pager,
    serve::{self, Endpoints, GrpcSurface, Readiness, ServeError, Serving},
};

/// Why a service could not start (or stopped with an error).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A service's own setting is missing or wrong: names the variable.
    #[error("{setting}: {reason}")]
    Config { setting: String, reason: String },
}

impl StartError {
    pub fn config(setting: &str, reason: impl std::fmt::Display) -> Self {
        Self::Config {
            setting: setting.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// A service being assembled: connected, migrated, not yet serving.
pub struct Service {
    pub name: &'static str,
    pub config: RuntimeConfig,
    pub bus: Bus,
    pub db: Database,
    pub auth: Arc<Authenticator>,
    pager: Pager,
    /// Cancelled on shutdown: stop taking new work.
    shutdown: CancellationToken,
    workers: JoinSet<()>,
    surface: GrpcSurface,
}

impl Service {
    /// Connects to NATS and Postgres (its own role and schema, DESIGN §4; the schema behind
    /// the namespace, if any), runs the migrations and declares every stream of the bus.
    /// `shutdown` is the caller's: cancelling it starts a graceful stop.
    pub async fn start(
        name: &'static str,
        schema: &str,
        config: RuntimeConfig,
        migrations: &Migrator,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let auth = Arc::new(Authenticator::new(&config.auth).await?);
        let bus = Bus::connect(&config, name).await?;
        bus.ensure_streams(ALL_STREAMS).await?;
        let db = Database::connect(
            secrecy::ExposeSecret::expose_secret(&config.database_url),
            schema,
            &db::schema_name(&config.bus_namespace, schema),
            config.db_max_connections,
            migrations,
        )
        .await?;
        let pager =
            Pager::new(
                db.key("page-tokens")
                    .await
                    .map_err(|source| DbError::Bootstrap {
                        schema: db.schema().to_owned(),
                        source,
                    })?,
            );
        Ok(Self {
            name,
            config,
            bus,
            db,
            auth,
            pager,
            shutdown,
            workers: JoinSet::new(),
            surface: GrpcSurface::new(),
        })
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Signs and checks this service's page tokens (the key is shared by its replicas).
    pub fn pager(&self) -> Pager {
        self.pager.clone()
    }

    /// Runs a durable consumer until shutdown; an error stops the service.
    pub fn consume(&mut self, consumer: Consumer) -> Result<&mut Self, StartError> {
        let (stream, filter_subject) = consumer.source()?;
        let spec = ConsumerSpec {
            service: self.name.to_owned(),
            durable: consumer.durable,
            stream,
            filter_subject,
            inbox: consumer.inbox,
            settle: consumer.settle,
            tuning: self.config.consumer.clone(),
            seal: consumer.seal,
        };
        let (bus, db, shutdown) = (self.bus.clone(), self.db.clone(), self.shutdown.clone());
        self.workers.spawn(async move {
            let durable = spec.durable.clone();
            let result = match consumer.kind {
                ConsumerKind::Events(events) => {
                    consumer::run(bus, db, spec, Arc::new(events), shutdown.clone()).await
                }
                ConsumerKind::Raw { handler, .. } => {
                    consumer::run(bus, db, spec, Arc::new(Raw(handler)), shutdown.clone()).await
                }
            };
            if let Err(error) = result {
                tracing::error!(%error, %durable, "consumer stopped; shutting the service down");
                shutdown.cancel();
            }
        });
        Ok(self)
    }

    /// Runs a queue of due work until shutdown.
    pub fn run_jobs<H: JobHandler>(&mut self, queue: Queue<H>) -> &mut Self {
        self.workers.spawn(jobs::run(
            self.name,
            self.db.clone(),
            queue,
            self.shutdown.clone(),
        ));
        self
    }

    /// Runs any other background work that must finish before the outbox is flushed.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&mut self, work: F) -> &mut Self {
        self.workers.spawn(work);
        self
    }

    /// Serves `api` (with health and reflection) behind bearer-token authentication until
    /// shutdown. Returns once the listeners are bound; await [`Running::stopped`] for the end.
    pub async fn serve<S>(mut self, api: S) -> Result<Running, StartError>
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
        self.surface.add(api);
        self.serve_probes_only().await
    }

    /// Serves health, reflection and metrics only: a service with no API of its own.
    pub async fn serve_probes_only(mut self) -> Result<Running, StartError> {
        let tls = serve::server_tls(&self.config.tls)?;
        let listeners = serve::bind(self.config.grpc_addr, self.config.http_addr).await?;
        let local = |listener: &tokio::net::TcpListener, addr| {
            listener
                .local_addr()
                .map_err(|source| ServeError::Bind { addr, source })
        };
        let endpoints = Endpoints {
            grpc: local(&listeners.0, self.config.grpc_addr)?,
            http: local(&listeners.1, self.config.http_addr)?,
        };
        let readiness = Readiness::default();
        self.workers.spawn(serve::watch_readiness(
            self.db.clone(),
            self.bus.clone(),
            self.surface.health(),
            self.surface.names(),
            readiness.clone(),
            self.shutdown.clone(),
        ));
        // The relay stops last, after every producer of outbox rows has finished.
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(
            Relay::new(self.name, self.db.clone(), self.bus.clone()).run(relay_stop.clone()),
        );
        let serving = Serving {
            listeners,
            readiness,
            auth: self.auth.clone(),
            tls,
            service: self.name,
        };
        let shutdown = self.shutdown.clone();
        let grace = self.config.shutdown_grace;
        let name = self.name;
        let surface = std::mem::take(&mut self.surface);
        let mut workers = std::mem::take(&mut self.workers);
        let task = tokio::spawn(async move {
            let served = serve::serve(surface, serving, shutdown.clone()).await;
            shutdown.cancel();
            let drain = async {
                while workers.join_next().await.is_some() {}
                relay_stop.cancel();
                let _ = relay.await;
            };
            if tokio::time::timeout(grace, drain).await.is_err() {
                tracing::error!(service = name, ?grace, "shutdown grace period exceeded");
            }
            tracing::info!(service = name, "stopped");
            served.map_err(StartError::from)
        });
        tracing::info!(service = self.name, grpc = %endpoints.grpc, http = %endpoints.http, "serving");
        Ok(Running { endpoints, task })
    }
}

/// A service that is serving.
pub struct Running {
    pub endpoints: Endpoints,
    task: tokio::task::JoinHandle<Result<(), StartError>>,
}

impl Running {
    /// Waits until the service has stopped (after its shutdown token is cancelled).
    pub async fn stopped(self) -> Result<(), StartError> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(%join, "service task panicked");
                Ok(())
            }
        }
    }
}

/// A poll interval for code that waits on something outside its control.
pub const POLL: Duration = Duration::from_millis(50);
