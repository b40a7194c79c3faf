//! Signing checkpoints: at least every `checkpoint_interval` while the log grows, whenever
//! `checkpoint_entries` were appended since the last, and once more on shutdown.
//!
//! Each is stored and published (`redress.audit.v1.checkpoint`, through the outbox) in one
//! transaction. Replicas may race to sign the same size: the tree is deterministic, so they
//! sign the same root, and the first row wins.

use std::time::{Duration, Instant};

use redress_proto::events::v1::CheckpointSigned;
use redress_runtime::{OutboxMessage, db::Database, event::service_actor, new_event, outbox};
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE,
    note::{Checkpoint, NoteSigner},
    store::{self, StoreError},
};

/// How often the size is looked at between checkpoints.
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Cadence {
    pub interval: Duration,
    pub entries: u64,
}

/// Signs the current tree if no checkpoint has its size yet; returns the size signed.
pub async fn sign_now(db: &Database, signer: &NoteSigner) -> Result<Option<u64>, StoreError> {
    let mut tx = db.pool().begin().await?;
    let size = store::size(&mut tx).await?;
    let last = store::checkpoint(&mut tx, None).await?;
    if size == 0 || last.as_ref().is_some_and(|c| c.tree_size as u64 >= size) {
        return Ok(None);
    }
    let root = store::root(&mut tx, size).await?;
    let checkpoint = Checkpoint {
        origin: signer.name().to_owned(),
        size,
        root,
    };
    let note = signer
        .sign(&checkpoint.body())
        .map_err(|e| StoreError::Database(sqlx::Error::Protocol(e.to_string())))?;
    let inserted = sqlx::query(
        "INSERT INTO checkpoints (tree_size, root_hash, note) VALUES ($1, $2, $3)
         ON CONFLICT (tree_size) DO NOTHING",
    )
    .bind(size as i64)
    .bind(root.to_vec())
    .bind(&note)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        let event = new_event(
            SERVICE,
            signer.name().to_owned(),
            size,
            service_actor(SERVICE),
            CheckpointSigned {
                note,
                origin: signer.name().to_owned(),
                tree_size: size,
                root_hash: root.to_vec(),
            },
        );
        outbox::enqueue(&mut tx, &[OutboxMessage::event(&event)]).await?;
    }
    tx.commit().await?;
    Ok(Some(size))
}

/// Runs until shutdown, then signs what the log holds one last time.
pub async fn run(db: Database, signer: NoteSigner, cadence: Cadence, shutdown: CancellationToken) {
    let mut signed_at = Instant::now();
    let mut signed_size = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(POLL) => {}
        }
        let size = match db.pool().acquire().await {
            Ok(mut conn) => store::size(&mut conn).await.ok(),
            Err(_) => None,
        };
        let Some(size) = size else { continue };
        let due = size > signed_size
            && (signed_at.elapsed() >= cadence.interval || size - signed_size >= cadence.entries);
        if due {
            match sign_now(&db, &signer).await {
                Ok(signed) => {
                    signed_size = signed.unwrap_or(size);
                    signed_at = Instant::now();
                }
                Err(error) => tracing::warn!(%error, "checkpoint not signed; will retry"),
            }
        }
    }
    if let Err(error) = sign_now(&db, &signer).await {
        tracing::error!(%error, "final checkpoint not signed");
    }
}
