//! The monthly inspection sample (监督检查): closed cases drawn per stratum with a seed derived
//! from the month's last checkpoint root, so nobody chooses the sample and anyone holding the
//! log can draw it again; reviewers score each on a checklist from `rules/inspection.toml`.
//! The sample and each score are published (`inspection.sampled`, `inspection.scored`) and so
//! logged, and analytics can read them off the bus.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use prost::Message as _;
use redress_proto::{
    events::v1::{
        ChecklistScore, Event, FieldViolation, InspectionSampled, InspectionScored, SampledCase,
        event::Payload,
    },
    vocab::code,
};
use redress_runtime::{OutboxMessage, Principal, Role, event::service_actor, new_event, outbox};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::{SERVICE, rules::evaluate::at};

pub const SHIPPED: &str = include_str!("../rules/inspection.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: String,
    pub max: u32,
    pub article: String,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleRule {
    #[allow(dead_code)]
    confirmed: bool,
    #[allow(dead_code)]
    article: String,
    per_stratum: u32,
}

/// The sampling rule and the checklist.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inspection {
    sample: SampleRule,
    #[serde(rename = "item")]
    pub items: Vec<Item>,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectionError {
    #[error("inspection file: {0}")]
    File(String),
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(FieldViolation),
    #[error("{0}")]
    NotReady(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Exists(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

fn invalid(field: &str, code: &str, message: impl Into<String>) -> InspectionError {
    InspectionError::Invalid(FieldViolation::new(field, code, message))
}

impl Inspection {
    pub fn shipped() -> Result<Self, InspectionError> {
        Self::parse(SHIPPED)
    }

    pub fn parse(text: &str) -> Result<Self, InspectionError> {
        let parsed: Self =
            toml::from_str(text).map_err(|e| InspectionError::File(e.to_string()))?;
        if parsed.sample.per_stratum == 0 || parsed.items.is_empty() {
            return Err(InspectionError::File(
                "per_stratum and at least one item are required".into(),
            ));
        }
        Ok(parsed)
    }

    pub fn per_stratum(&self) -> u32 {
        self.sample.per_stratum
    }
}

/// SHA-256("redress-inspection/1\n" ‖ month ‖ "\n" ‖ root hash).
pub fn seed(month: &str, root: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"redress-inspection/1\n");
    hash.update(month.as_bytes());
    hash.update(b"\n");
    hash.update(root);
    hash.finalize().into()
}

/// The first instant of a month `YYYY-MM` and of the month after it.
pub fn bounds(month: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), InspectionError> {
    let bad = || {
        invalid(
            "month",
            code::INVALID_FORMAT,
            "a month as YYYY-MM, e.g. 2026-11",
        )
    };
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_err(|_| bad())?;
    if first.format("%Y-%m").to_string() != month {
        return Err(bad());
    }
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(bad)?;
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(bad);
    Ok((midnight(first)?, midnight(next)?))
}

/// The cases to draw from: closed in `[start, end)`, with their stratum.
pub fn candidates(events: &[Event], start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<SampledCase> {
    let mut category: HashMap<&str, &str> = HashMap::new();
    let mut closed: BTreeMap<&str, SampledCase> = BTreeMap::new();
    for event in events {
        match event.payload.as_ref() {
            Some(Payload::CaseCreated(c)) => {
                if let Some(h) = &c.header {
                    category.entry(&h.case_id).or_insert(&c.category_code);
                }
            }
            Some(Payload::CaseReclassified(c)) => {
                if let Some(h) = &c.header {
                    category.insert(&h.case_id, &c.category_code);
                }
            }
            Some(Payload::CaseClosed(c)) if (start..end).contains(&at(event)) => {
                if let Some(h) = &c.header {
                    closed.insert(
                        &h.case_id,
                        SampledCase {
                            case_id: h.case_id.clone(),
                            department: h.department.clone(),
                            severity: h.severity,
                            ..Default::default()
                        },
                    );
                }
            }
            _ => {}
        }
    }
    closed
        .into_values()
        .map(|mut c| {
            c.category_code = category
                .get(c.case_id.as_str())
                .map(|s| s.to_string())
                .unwrap_or_default();
            c
        })
        .collect()
}

/// Department, category, severity.
type Stratum = (String, String, i32);
/// A case with its SHA-256(seed ‖ case id).
type Ranked = ([u8; 32], SampledCase);

/// Draws `per_stratum` cases from each stratum: those with the smallest SHA-256(seed ‖ case
/// id); assigns reviewers in turn over the result (sorted by stratum, then rank).
pub fn draw(
    seed: &[u8; 32],
    per_stratum: u32,
    candidates: Vec<SampledCase>,
    reviewers: &[String],
) -> Vec<SampledCase> {
    let mut strata: BTreeMap<Stratum, Vec<Ranked>> = BTreeMap::new();
    for case in candidates {
        let rank: [u8; 32] = Sha256::new()
            .chain_update(seed)
            .chain_update(case.case_id.as_bytes())
            .finalize()
            .into();
        let key = (
            case.department.clone(),
            case.category_code.clone(),
            case.severity,
        );
        strata.entry(key).or_default().push((rank, case));
    }
    let mut sample = Vec::new();
    for (_, mut cases) in strata {
        cases.sort_by_key(|(rank, _)| *rank);
        sample.extend(cases.into_iter().take(per_stratum as usize).map(|(_, c)| c));
    }
    for (i, case) in sample.iter_mut().enumerate() {
        if !reviewers.is_empty() {
            case.reviewer = reviewers[i % reviewers.len()].clone();
        }
    }
    sample
}

/// The month's sample: the one drawn before, or drawn now (once the month has ended and a
/// checkpoint was signed before its end), stored and published.
pub async fn sample(
    db: &PgPool,
    inspection: &Inspection,
    reviewers: &[String],
    month: &str,
    now: DateTime<Utc>,
) -> Result<InspectionSampled, InspectionError> {
    let (start, end) = bounds(month)?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '.inspection', 0))",
    )
    .execute(&mut *tx)
    .await?;
    if let Some(drawn) = stored(&mut tx, month).await? {
        return Ok(drawn);
    }
    if now < end {
        return Err(InspectionError::NotReady(format!("{month} has not ended")));
    }
    let checkpoint: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT tree_size, root_hash FROM checkpoints WHERE signed_at < $1
         ORDER BY tree_size DESC LIMIT 1",
    )
    .bind(end)
    .fetch_optional(&mut *tx)
    .await?;
    let (size, root) = checkpoint.ok_or_else(|| {
        InspectionError::NotReady(format!(
            "no checkpoint was signed before the end of {month}"
        ))
    })?;
    let leaves: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT leaf FROM log_entries WHERE leaf_index < $1
           AND event_type IN ('case_created', 'case_reclassified', 'case_closed')
         ORDER BY leaf_index",
    )
    .bind(size)
    .fetch_all(&mut *tx)
    .await?;
    let events: Vec<Event> = leaves
        .iter()
        .filter_map(|l| Event::decode(l.as_slice()).ok())
        .collect();
    let population = candidates(&events, start, end);
    let seed = seed(month, &root);
    let drawn = InspectionSampled {
        month: month.to_owned(),
        checkpoint_size: size as u64,
        root_hash: root,
        seed: seed.to_vec(),
        population: population.len() as u64,
        cases: draw(&seed, inspection.per_stratum(), population, reviewers),
    };
    sqlx::query("INSERT INTO inspection_samples (month, sample) VALUES ($1, $2)")
        .bind(month)
        .bind(drawn.encode_to_vec())
        .execute(&mut *tx)
        .await?;
    let event = new_event(
        SERVICE,
        month.to_owned(),
        1,
        service_actor(SERVICE),
        drawn.clone(),
    );
    outbox::enqueue(&mut tx, &[OutboxMessage::event(&event)]).await?;
    tx.commit().await?;
    Ok(drawn)
}

async fn stored(
    conn: &mut sqlx::PgConnection,
    month: &str,
) -> Result<Option<InspectionSampled>, sqlx::Error> {
    let bytes: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT sample FROM inspection_samples WHERE month = $1")
            .bind(month)
            .fetch_optional(conn)
            .await?;
    Ok(bytes.and_then(|b| InspectionSampled::decode(b.as_slice()).ok()))
}

/// A reviewer's scores for a sampled case: every checklist item once, within its maximum.
pub struct Scoring<'a> {
    pub month: &'a str,
    pub case_id: &'a str,
    pub scores: Vec<ChecklistScore>,
    pub findings: String,
}

pub async fn record(
    db: &PgPool,
    inspection: &Inspection,
    principal: &Principal,
    role: Role,
    scoring: Scoring<'_>,
) -> Result<InspectionScored, InspectionError> {
    bounds(scoring.month)?;
    let (total, maximum) = check_scores(inspection, &scoring.scores)?;
    let mut tx = db.begin().await?;
    let sample = stored(&mut tx, scoring.month).await?.ok_or_else(|| {
        InspectionError::NotFound(format!("no sample drawn for {}", scoring.month))
    })?;
    let case = sample
        .cases
        .iter()
        .find(|c| c.case_id == scoring.case_id)
        .ok_or_else(|| {
            InspectionError::NotFound(format!(
                "case {} is not in the {} sample",
                scoring.case_id, scoring.month
            ))
        })?;
    if !case.reviewer.is_empty() && case.reviewer != principal.subject && role != Role::Admin {
        return Err(InspectionError::Denied(format!(
            "case {} is assigned to reviewer {}",
            case.case_id, case.reviewer
        )));
    }
    let scored = InspectionScored {
        month: scoring.month.to_owned(),
        case_id: case.case_id.clone(),
        reviewer: principal.subject.clone(),
        scores: scoring.scores,
        total,
        maximum,
        findings: scoring.findings,
        department: case.department.clone(),
    };
    let inserted = sqlx::query(
        "INSERT INTO inspection_scores (month, case_id, scored) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(scoring.month)
    .bind(&case.case_id)
    .bind(scored.encode_to_vec())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(InspectionError::Exists(format!(
            "case {} was already scored",
            case.case_id
        )));
    }
    let event = new_event(
        SERVICE,
        case.case_id.clone(),
        1,
        principal.actor(role),
        scored.clone(),
    );
    outbox::enqueue(&mut tx, &[OutboxMessage::event(&event)]).await?;
    tx.commit().await?;
    Ok(scored)
}

/// Every checklist item scored once within its maximum; returns (total, maximum).
fn check_scores(
    inspection: &Inspection,
    scores: &[ChecklistScore],
) -> Result<(u32, u32), InspectionError> {
    let mut seen = Vec::new();
    let mut total = 0;
    for (i, score) in scores.iter().enumerate() {
        let field = format!("scores[{i}].item");
        let item = inspection
            .items
            .iter()
            .find(|it| it.id == score.item)
            .ok_or_else(|| {
                invalid(
                    &field,
                    code::UNKNOWN_VALUE,
                    format!("`{}` is not a checklist item", score.item),
                )
            })?;
        if seen.contains(&item.id) {
            return Err(invalid(
                &field,
                code::MISMATCH,
                format!("`{}` scored twice", item.id),
            ));
        }
        if score.score > item.max {
            return Err(invalid(
                &format!("scores[{i}].score"),
                code::OUT_OF_RANGE,
                format!("{} is above the item's maximum {}", score.score, item.max),
            ));
        }
        seen.push(item.id.clone());
        total += score.score;
    }
    if let Some(missing) = inspection.items.iter().find(|it| !seen.contains(&it.id)) {
        return Err(invalid(
            "scores",
            code::REQUIRED,
            format!("item `{}` is not scored", missing.id),
        ));
    }
    Ok((total, inspection.items.iter().map(|it| it.max).sum()))
}
