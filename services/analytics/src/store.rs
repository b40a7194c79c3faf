//! All SQL of the write path: a batch of events applied in one transaction — facts loaded
//! and locked in one statement, merged in memory, written back in one, and the difference of
//! their contributions upserted into the day and month aggregates in one statement each.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::LazyLock,
};

use chrono::{Datelike, NaiveDate};
use serde_json::Value;
use sqlx::PgConnection;

use crate::{
    cells::{self, Cells, Context, DIMENSIONS, Dims},
    events::{Body, Ev},
    facts::{COLUMNS, Fact},
    query,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("a stored fact does not read back: {0}")]
    Fact(#[from] serde_json::Error),
    #[error(transparent)]
    Measure(#[from] cells::UnknownMeasure),
}

/// Applies `events` (each once: the caller's inbox filters redeliveries) in `conn`'s
/// transaction. Order within the batch does not matter.
pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    events: &[Ev],
) -> Result<(), StoreError> {
    let mut cells = Cells::default();
    let mut by_complaint: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
    for ev in events {
        match &ev.body {
            Body::Complaint { complaint_id, .. } => {
                by_complaint.entry(complaint_id).or_default().push(ev);
            }
            _ => {
                cells.add(cells::standalone(ctx, ev), 1)?;
            }
        }
    }
    if !by_complaint.is_empty() {
        let ids: Vec<&str> = by_complaint.keys().copied().collect();
        let mut facts = load(conn, &ids).await?;
        let existing: BTreeSet<String> = facts.keys().cloned().collect();
        let mut changed = Vec::with_capacity(ids.len());
        for (id, evs) in &by_complaint {
            let before = facts.remove(*id);
            let mut after = before.clone().unwrap_or_else(|| Fact::new(id));
            for ev in evs {
                if let Body::Complaint { change, .. } = &ev.body {
                    after.apply(ev, change);
                }
            }
            if before.as_ref() == Some(&after) {
                continue;
            }
            if let Some(before) = &before {
                cells.fact(ctx, before, -1)?;
            }
            cells.fact(ctx, &after, 1)?;
            changed.push(after);
        }
        save(conn, &changed, &existing).await?;
    }
    upsert(conn, cells).await
}

async fn load(conn: &mut PgConnection, ids: &[&str]) -> Result<BTreeMap<String, Fact>, StoreError> {
    let rows: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT to_jsonb(f) FROM facts f WHERE complaint_id = ANY($1) \
         ORDER BY complaint_id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut facts = BTreeMap::new();
    for row in rows {
        let fact: Fact = serde_json::from_value(row)?;
        facts.insert(fact.complaint_id.clone(), fact);
    }
    Ok(facts)
}

/// Writes facts back: existing ones by UPDATE (the row keeps its identity, so a concurrent
/// batch waiting on its lock reads the new version), new ones by INSERT (a concurrent insert
/// of the same new complaint fails on the key and the batch is retried — never overwritten).
async fn save(
    conn: &mut PgConnection,
    facts: &[Fact],
    existing: &BTreeSet<String>,
) -> Result<(), StoreError> {
    let (old, new): (Vec<&Fact>, Vec<&Fact>) = facts
        .iter()
        .partition(|f| existing.contains(&f.complaint_id));
    if !new.is_empty() {
        sqlx::query("INSERT INTO facts SELECT * FROM jsonb_populate_recordset(NULL::facts, $1)")
            .bind(serde_json::to_value(&new)?)
            .execute(&mut *conn)
            .await?;
    }
    if !old.is_empty() {
        let columns = &COLUMNS[1..];
        let set = columns.join(", ");
        let from = columns
            .iter()
            .map(|c| format!("x.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Column names are the constant list of `facts`' columns.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE facts f SET ({set}) = ({from}) \
             FROM jsonb_populate_recordset(NULL::facts, $1) x WHERE f.complaint_id = x.complaint_id"
        )))
        .bind(serde_json::to_value(&old)?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The first day of the month of `day`.
pub fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The upsert of rows of differences into a cube table: every measure column named (a
/// measure without a column fails the statement), absent measures read as 0, and each
/// column added to what the row holds (a commutative upsert).
fn upsert_sql(table: &str) -> String {
    let measures = query::stored_measures();
    let dims = DIMENSIONS.join(", ");
    let types: Vec<String> = DIMENSIONS
        .iter()
        .map(|d| {
            format!(
                "{d} {}",
                if *d == "vulnerable" {
                    "boolean"
                } else {
                    "text"
                }
            )
        })
        .chain(measures.iter().map(|m| format!("{m} bigint")))
        .collect();
    let values: Vec<String> = measures
        .iter()
        .map(|m| format!("coalesce({m}, 0)"))
        .collect();
    let set: Vec<String> = measures
        .iter()
        .map(|m| format!("{m} = {table}.{m} + excluded.{m}"))
        .collect();
    format!(
        "INSERT INTO {table} (period, {dims}, {measures}) \
         SELECT period, {dims}, {values} \
         FROM jsonb_to_recordset($1) AS x(period date, {types}) \
         ON CONFLICT (period, {dims}) DO UPDATE SET {set}",
        measures = measures.join(", "),
        values = values.join(", "),
        types = types.join(", "),
        set = set.join(", "),
    )
}

static UPSERT_DAY: LazyLock<String> = LazyLock::new(|| upsert_sql("cube_day"));
static UPSERT_MONTH: LazyLock<String> = LazyLock::new(|| upsert_sql("cube_month"));

/// One row as JSON: period, dimensions and the non-zero measures.
fn row_json(period: NaiveDate, dims: &Dims, values: &[i64]) -> Result<Value, StoreError> {
    let mut row = serde_json::to_value(dims)?;
    if let Value::Object(map) = &mut row {
        map.insert("period".into(), Value::String(period.to_string()));
        for (name, v) in MEASURES.iter().zip(values) {
            if *v != 0 {
                map.insert(name.clone(), Value::from(*v));
            }
        }
    }
    Ok(row)
}

static MEASURES: LazyLock<Vec<String>> = LazyLock::new(query::stored_measures);

/// Adds the differences to both grains, in key order (so concurrent batches lock rows in
/// the same order).
async fn upsert(conn: &mut PgConnection, cells: Cells) -> Result<(), StoreError> {
    let days: Vec<_> = cells.nonzero().collect();
    if days.is_empty() {
        return Ok(());
    }
    let mut months: BTreeMap<(NaiveDate, &Dims), Vec<i64>> = BTreeMap::new();
    for ((day, dims), values) in &days {
        let sum = months
            .entry((month_of(*day), dims))
            .or_insert_with(|| vec![0; values.len()]);
        for (s, v) in sum.iter_mut().zip(values) {
            *s += v;
        }
    }
    let day_rows = days
        .iter()
        .map(|((day, dims), values)| row_json(*day, dims, values))
        .collect::<Result<Vec<_>, _>>()?;
    let month_rows = months
        .iter()
        .filter(|(_, values)| values.iter().any(|v| *v != 0))
        .map(|((month, dims), values)| row_json(*month, dims, values))
        .collect::<Result<Vec<_>, _>>()?;
    for (sql, rows) in [(&*UPSERT_DAY, day_rows), (&*UPSERT_MONTH, month_rows)] {
        if rows.is_empty() {
            continue;
        }
        // Names in `sql` are the constant dimension and measure lists.
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(Value::Array(rows))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The complaints of a batch, for callers that want to know what moved.
pub fn complaints(events: &[Ev]) -> BTreeSet<&str> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Body::Complaint { complaint_id, .. } => Some(complaint_id.as_str()),
            _ => None,
        })
        .collect()
}
