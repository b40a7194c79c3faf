//! The engine classifications use, switched without a restart when the active models change.
//!
//! Each classification takes the engine once (`current()`, an `Arc` clone under a read
//! lock held for nanoseconds) and uses that one to the end, so a switch never mixes two models
//! in one decision. A replica learns of a change from `NOTIFY <schema>_models`, which
//! Postgres delivers at the commit of the promotion or rollback — never for a row another
//! replica cannot read yet — and, in case a notification was missed (the listening connection
//! dropped), by comparing the active rows every `model_poll`.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use redress_classifier::{Language, Model};
use redress_runtime::Database;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::{engine::Engine, models};

pub struct Live {
    configured: Arc<Engine>,
    current: RwLock<Arc<Engine>>,
    /// `(slot, version)` of the models installed; refreshes run one at a time.
    installed: tokio::sync::Mutex<Vec<(String, String)>>,
    db: Database,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("active model {0} cannot be used: {1}")]
    Model(String, redress_classifier::Error),
    #[error("loading the active models stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Live {
    /// Starts with the configured engine; call [`Live::refresh`] to install the active models.
    pub fn new(configured: Engine, db: Database) -> Self {
        let configured = Arc::new(configured);
        Self {
            current: RwLock::new(configured.clone()),
            configured,
            installed: tokio::sync::Mutex::new(Vec::new()),
            db,
        }
    }

    /// The engine for one classification.
    pub fn current(&self) -> Arc<Engine> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The configured engine with the given active models in place of its own.
    pub fn build(
        configured: &Engine,
        active: &[models::Active],
    ) -> Result<(Engine, Vec<(String, String)>), LiveError> {
        let mut engine = configured.clone();
        let mut versions = Vec::new();
        for a in active {
            let language = match a.language.as_str() {
                "zh" => Language::Zh,
                _ => Language::En,
            };
            let model = Model::from_bytes(&a.artifact)
                .map_err(|e| LiveError::Model(a.version.clone(), e))?;
            engine = engine
                .with_model(language, model)
                .map_err(|e| LiveError::Model(a.version.clone(), e))?;
            versions.push((format!("{}-{}", a.language, a.dimension), a.version.clone()));
        }
        versions.sort();
        Ok((engine, versions))
    }

    pub fn configured(&self) -> Arc<Engine> {
        self.configured.clone()
    }

    /// Installs the active models when they differ from those installed; true when the
    /// engine changed. A model that cannot be loaded leaves the current engine in place.
    pub async fn refresh(&self) -> Result<bool, LiveError> {
        let mut installed = self.installed.lock().await;
        if models::active_versions(self.db.pool()).await? == *installed {
            return Ok(false);
        }
        let mut conn = self.db.pool().acquire().await?;
        let active = models::active(&mut conn).await?;
        drop(conn);
        let configured = self.configured.clone();
        let (engine, versions) =
            tokio::task::spawn_blocking(move || Live::build(&configured, &active)).await??;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(engine);
        tracing::info!(models = ?versions, "classification engine switched");
        *installed = versions;
        Ok(true)
    }

    /// Follows changes of the active models until `shutdown`.
    pub async fn watch(self: Arc<Self>, poll: Duration, shutdown: CancellationToken) {
        let channel = models::channel(self.db.schema());
        let mut listener = self.listen(&channel).await;
        loop {
            let woken = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                result = woken => if result.is_err() {
                    // The LISTEN connection broke: poll until it is back.
                    listener = self.listen(&channel).await;
                },
                _ = tokio::time::sleep(poll) => {
                    if listener.is_none() {
                        listener = self.listen(&channel).await;
                    }
                }
            }
            if let Err(error) = self.refresh().await {
                tracing::error!(%error, "active models not installed; classifying with the previous engine");
            }
        }
    }

    async fn listen(&self, channel: &str) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(self.db.pool()).await.ok()?;
        listener.listen(channel).await.ok()?;
        Some(listener)
    }
}
