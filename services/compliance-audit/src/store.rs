//! The log in Postgres: appending entries with their tree nodes, reading proofs.
//!
//! Appends are serialised by a transaction-scoped advisory lock, so the leaf index is the
//! tree size under the lock and the frontier read under it is the one the new nodes extend.
//! A batch costs the same five statements whatever its size.

use std::collections::HashMap;

use sqlx::PgConnection;

use crate::merkle::{Appender, Hash, NodeId, ProofError, Query, frontier, leaf_hash};

/// One message to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub entry_key: String,
    pub stream: String,
    pub subject: String,
    pub stream_sequence: i64,
    pub event_type: String,
    pub case_id: Option<String>,
    pub complaint_id: Option<String>,
    pub leaf: Vec<u8>,
}

/// A logged entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Entry {
    pub leaf_index: i64,
    pub entry_key: String,
    pub stream: String,
    pub subject: String,
    pub leaf: Vec<u8>,
    /// As stored in `tree_nodes` (level 0), not recomputed.
    pub leaf_hash: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("stored node hash at ({0}, {1}) is not 32 bytes")]
    BadNode(u8, u64),
}

/// The advisory lock key of the log (one log per schema: the key is per database, so it is
/// taken together with the schema name).
async fn lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '.audit_log', 0))",
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn size(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let next: i64 = sqlx::query_scalar("SELECT COALESCE(max(leaf_index) + 1, 0) FROM log_entries")
        .fetch_one(conn)
        .await?;
    Ok(u64::try_from(next).unwrap_or(0))
}

/// Reads stored nodes by id.
pub async fn nodes(
    conn: &mut PgConnection,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>, StoreError> {
    let levels: Vec<i16> = ids.iter().map(|(l, _)| i16::from(*l)).collect();
    let idxs: Vec<i64> = ids.iter().map(|(_, i)| *i as i64).collect();
    let rows: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT n.level, n.idx, n.hash FROM tree_nodes n
         JOIN unnest($1::smallint[], $2::bigint[]) AS q(level, idx)
           ON n.level = q.level AND n.idx = q.idx",
    )
    .bind(&levels)
    .bind(&idxs)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(level, idx, hash)| {
            let id = (level as u8, idx as u64);
            let hash = Hash::try_from(hash).map_err(|_| StoreError::BadNode(id.0, id.1))?;
            Ok((id, hash))
        })
        .collect()
}

/// Appends the entries not logged yet, in order; returns how many were new.
pub async fn append(conn: &mut PgConnection, entries: &[NewEntry]) -> Result<u64, StoreError> {
    if entries.is_empty() {
        return Ok(0);
    }
    lock(conn).await?;
    let keys: Vec<&str> = entries.iter().map(|e| e.entry_key.as_str()).collect();
    let known: Vec<String> =
        sqlx::query_scalar("SELECT entry_key FROM log_entries WHERE entry_key = ANY($1)")
            .bind(&keys)
            .fetch_all(&mut *conn)
            .await?;
    let mut seen: std::collections::HashSet<&str> = known.iter().map(String::as_str).collect();
    let fresh: Vec<&NewEntry> = entries
        .iter()
        .filter(|e| seen.insert(e.entry_key.as_str()))
        .collect();
    if fresh.is_empty() {
        return Ok(0);
    }
    let start = size(conn).await?;
    let ids = frontier(start);
    let stored = nodes(conn, &ids).await?;
    let hashes = ids
        .iter()
        .map(|id| {
            stored
                .get(id)
                .copied()
                .ok_or(ProofError::MissingNode(id.0, id.1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut appender = Appender::new(start, hashes);
    let mut made = Vec::with_capacity(fresh.len() * 2);
    for entry in &fresh {
        made.extend(appender.push(leaf_hash(&entry.leaf)));
    }
    insert_entries(conn, start, &fresh).await?;
    insert_nodes(conn, &made).await?;
    Ok(fresh.len() as u64)
}

async fn insert_entries(
    conn: &mut PgConnection,
    start: u64,
    entries: &[&NewEntry],
) -> Result<(), sqlx::Error> {
    let index: Vec<i64> = (0..entries.len() as i64)
        .map(|i| start as i64 + i)
        .collect();
    let col = |f: fn(&NewEntry) -> String| entries.iter().map(|e| f(e)).collect::<Vec<_>>();
    let opt = |f: fn(&NewEntry) -> Option<String>| entries.iter().map(|e| f(e)).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO log_entries (leaf_index, entry_key, stream, subject, stream_sequence,
                                  event_type, case_id, complaint_id, leaf)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                              $6::text[], $7::text[], $8::text[], $9::bytea[])",
    )
    .bind(&index)
    .bind(col(|e| e.entry_key.clone()))
    .bind(col(|e| e.stream.clone()))
    .bind(col(|e| e.subject.clone()))
    .bind(
        entries
            .iter()
            .map(|e| e.stream_sequence)
            .collect::<Vec<_>>(),
    )
    .bind(col(|e| e.event_type.clone()))
    .bind(opt(|e| e.case_id.clone()))
    .bind(opt(|e| e.complaint_id.clone()))
    .bind(entries.iter().map(|e| e.leaf.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_nodes(conn: &mut PgConnection, made: &[(NodeId, Hash)]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tree_nodes (level, idx, hash)
         SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
    )
    .bind(
        made.iter()
            .map(|((l, _), _)| i16::from(*l))
            .collect::<Vec<_>>(),
    )
    .bind(made.iter().map(|((_, i), _)| *i as i64).collect::<Vec<_>>())
    .bind(made.iter().map(|(_, h)| h.to_vec()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// A root or proof from the stored nodes: one read of O(log n) rows.
pub async fn prove(conn: &mut PgConnection, query: Query) -> Result<Vec<Hash>, StoreError> {
    let ids = query.reads()?;
    let stored = nodes(conn, &ids).await?;
    Ok(query.answer(&stored)?)
}

pub async fn root(conn: &mut PgConnection, size: u64) -> Result<Hash, StoreError> {
    let hashes = prove(conn, Query::Root { size }).await?;
    Ok(hashes.first().copied().unwrap_or_default())
}

pub async fn entries(
    conn: &mut PgConnection,
    start: u64,
    end: u64,
) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.leaf_index, e.entry_key, e.stream, e.subject, e.leaf,
                COALESCE(n.hash, ''::bytea) AS leaf_hash
         FROM log_entries e LEFT JOIN tree_nodes n ON n.level = 0 AND n.idx = e.leaf_index
         WHERE e.leaf_index >= $1 AND e.leaf_index < $2 ORDER BY e.leaf_index",
    )
    .bind(start as i64)
    .bind(end as i64)
    .fetch_all(conn)
    .await
}

pub async fn index_of(
    conn: &mut PgConnection,
    entry_key: &str,
) -> Result<Option<u64>, sqlx::Error> {
    let index: Option<i64> =
        sqlx::query_scalar("SELECT leaf_index FROM log_entries WHERE entry_key = $1")
            .bind(entry_key)
            .fetch_optional(conn)
            .await?;
    Ok(index.map(|i| i as u64))
}

/// Every entry about a case: its own events and those of its complaint(s).
pub async fn case_entries(
    conn: &mut PgConnection,
    case_id: &str,
) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT leaf_index, entry_key, stream, subject, leaf, ''::bytea AS leaf_hash
         FROM log_entries
         WHERE case_id = $1
            OR complaint_id IN (SELECT complaint_id FROM log_entries
                                WHERE case_id = $1 AND complaint_id IS NOT NULL)
         ORDER BY leaf_index",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredCheckpoint {
    pub tree_size: i64,
    pub root_hash: Vec<u8>,
    pub note: String,
    pub signed_at: chrono::DateTime<chrono::Utc>,
}

/// The latest checkpoint, or the one of exactly `size` entries.
pub async fn checkpoint(
    conn: &mut PgConnection,
    size: Option<u64>,
) -> Result<Option<StoredCheckpoint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tree_size, root_hash, note, signed_at FROM checkpoints
         WHERE $1::bigint IS NULL OR tree_size = $1 ORDER BY tree_size DESC LIMIT 1",
    )
    .bind(size.map(|s| s as i64))
    .fetch_optional(conn)
    .await
}

pub async fn checkpoints(conn: &mut PgConnection) -> Result<Vec<StoredCheckpoint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tree_size, root_hash, note, signed_at FROM checkpoints ORDER BY tree_size",
    )
    .fetch_all(conn)
    .await
}
