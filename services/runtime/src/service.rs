//! One service's life: connect, migrate, declare, run its consumers and relay, serve, and
//! stop cleanly. Each service crate's `run` is a few calls on [`Service`].

use std::{future::Future, sync::Arc, time::Duration};

use sqlx::migrate::Migrator;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{AuthError, Authenticator},
    bus::{Bus, BusError},
    config::RuntimeConfig,
    consumer::{self, ConsumerSpec, Handler},
    db::{Database, DbError},
    outbox::Relay,
    serve::{self, Endpoints, GrpcSurface, Readiness, ServeError},
};

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
}

/// A service being assembled: connected, migrated, not yet serving.
pub struct Service {
    pub name: &'static str,
    pub config: RuntimeConfig,
    pub bus: Bus,
    pub db: Database,
    pub auth: Arc<Authenticator>,
    /// Cancelled on shutdown: stop taking new work.
    shutdown: CancellationToken,
    workers: JoinSet<()>,
}

impl Service {
    /// Connects to NATS and Postgres (working in `schema`, DESIGN §4) and runs migrations.
    /// `shutdown` is the caller's: cancelling it starts a graceful stop.
    pub async fn start(
        name: &'static str,
        schema: &str,
        config: RuntimeConfig,
        migrations: &Migrator,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let auth = Arc::new(Authenticator::from_pem_files(
            &config.jwt_public_keys,
            &config.jwt_issuer,
            &config.jwt_audience,
        )?);
        let bus = Bus::connect(&config, name).await?;
        let db = Database::connect(
            &config.database_url,
            schema,
            config.db_max_connections,
            migrations,
        )
        .await?;
        Ok(Self {
            name,
            config,
            bus,
            db,
            auth,
            shutdown,
            workers: JoinSet::new(),
        })
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs a durable consumer until shutdown.
    pub fn spawn_consumer<H: Handler>(&mut self, spec: ConsumerSpec, handler: Arc<H>) {
        let (bus, db, shutdown) = (self.bus.clone(), self.db.clone(), self.shutdown.clone());
        self.workers.spawn(async move {
            let durable = spec.durable.clone();
            if let Err(error) = consumer::run(bus, db, spec, handler, shutdown.clone()).await {
                tracing::error!(%error, %durable, "consumer stopped; shutting the service down");
                shutdown.cancel();
            }
        });
    }

    /// Runs any other background work that must finish before the outbox is flushed.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&mut self, work: F) {
        self.workers.spawn(work);
    }

    /// Binds the listeners and serves until shutdown. Returns once the listeners are bound;
    /// await [`Running::stopped`] for the end.
    pub async fn serve(mut self, surface: GrpcSurface) -> Result<Running, StartError> {
        let listeners = serve::bind(self.config.grpc_addr, self.config.http_addr).await?;
        let endpoints = Endpoints {
            grpc: listeners
                .0
                .local_addr()
                .map_err(|source| ServeError::Bind {
                    addr: self.config.grpc_addr,
                    source,
                })?,
            http: listeners
                .1
                .local_addr()
                .map_err(|source| ServeError::Bind {
                    addr: self.config.http_addr,
                    source,
                })?,
        };
        let readiness = Readiness::default();
        self.workers.spawn(serve::watch_readiness(
            self.db.clone(),
            self.bus.clone(),
            surface.health(),
            surface.names(),
            readiness.clone(),
            self.shutdown.clone(),
        ));
        // The relay stops last, after every producer of outbox rows has finished.
        let relay_stop = CancellationToken::new();
        let relay =
            tokio::spawn(Relay::new(self.db.clone(), self.bus.clone()).run(relay_stop.clone()));
        let shutdown = self.shutdown.clone();
        let grace = self.config.shutdown_grace;
        let name = self.name;
        let task = tokio::spawn(async move {
            let served = serve::serve(surface, listeners, readiness, shutdown.clone()).await;
            shutdown.cancel();
            let drain = async {
                while self.workers.join_next().await.is_some() {}
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
