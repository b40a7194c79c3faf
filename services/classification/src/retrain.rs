//! Learning from specialists: for each configured slot (language, dimension) a candidate model
//! is trained from the base training data and the specialists' overrides, run in shadow next
//! to the active engine on the most recent overrides — which the candidate did not learn
//! from — and promoted only when it is better by the criterion of
//! [`redress_classifier::shadow`]; every candidate is recorded with the comparison.
//!
//! The comparison is of whole engines (rules, catalogue, lexicon and models, as the service
//! classifies), on the complaints as they arrived: in a cold start the candidate competes with
//! the rules, later with the active model. Runs on command (the `Retrain` RPC) and on a
//! schedule (queue [`QUEUE`], one job per period, run once across replicas).

use std::{path::Path, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use prost::Message as _;
use redress_classifier::{
    Example, Model, ShadowOptions, ShadowScore, decide, eval, taxonomy::Dimension,
    tokenize::detect_language,
};
use redress_proto::events::v1::ComplaintSummary;
use redress_runtime::jobs::{self, Job, JobError, JobHandler, NewJob, Outcome};
use sqlx::PgConnection;

use crate::{
    config::{RetrainConfig, Slot},
    engine::{Engine, input_of},
    live::{Live, LiveError},
    models::{self, ModelRow, NewModel},
    store::StoreError,
};

/// The queue of scheduled retraining.
pub const QUEUE: &str = "classification-retrain";

pub struct Retrainer {
    pub live: Arc<Live>,
    pub config: RetrainConfig,
    pub target_precision: f32,
    pub schema: String,
}

/// What a retraining run did.
#[derive(Debug, Default)]
pub struct Retrained {
    /// The candidates trained and recorded.
    pub models: Vec<ModelRow>,
    /// Why a slot trained nothing.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error("base training data {0}")]
    BaseData(String),
}

impl From<sqlx::Error> for RetrainError {
    fn from(e: sqlx::Error) -> Self {
        RetrainError::Store(e.into())
    }
}

/// An override as a labelled complaint.
struct Labelled {
    input: redress_classifier::ComplaintInput,
    text: String,
    label: String,
}

impl Retrainer {
    /// Retrains `slots` in the caller's transaction (each slot locked against a concurrent
    /// run); the promotions take effect at its commit.
    pub async fn retrain(
        &self,
        conn: &mut PgConnection,
        slots: &[Slot],
        trigger: &str,
    ) -> Result<Retrained, RetrainError> {
        let mut out = Retrained::default();
        for &slot in slots {
            match self.slot(conn, slot, trigger).await? {
                Ok(row) => {
                    tracing::info!(version = %row.version, %slot, decision = %row.decision, reason = %row.reason, "candidate model judged");
                    out.models.push(row);
                }
                Err(note) => out.notes.push(format!("{slot}: {note}")),
            }
        }
        Ok(out)
    }

    async fn slot(
        &self,
        conn: &mut PgConnection,
        slot: Slot,
        trigger: &str,
    ) -> Result<Result<ModelRow, String>, RetrainError> {
        models::lock_slot(conn, &self.schema, slot).await?;
        let overrides = overrides(conn, slot).await?;
        // The most recent overrides judge; at most half of them, so a young deployment still
        // has some to learn from.
        let held_out = self.config.shadow_examples.min(overrides.len() / 2);
        if held_out < self.config.shadow_min_examples {
            return Ok(Err(format!(
                "{} overrides with a {} in {}; a verdict needs {} held out of training, so at least {}",
                overrides.len(),
                slot.dimension_name(),
                slot.language_code(),
                self.config.shadow_min_examples,
                self.config.shadow_min_examples * 2
            )));
        }
        let (shadow, older) = overrides.split_at(held_out);
        let mut training = match &self.config.base_data {
            Some(path) => base_examples(path, slot).map_err(RetrainError::BaseData)?,
            None => Vec::new(),
        };
        training.extend(
            older
                .iter()
                .map(|o| Example::new(o.text.clone(), o.label.clone())),
        );
        let active = models::active(conn).await?;
        let (current, _) = Live::build(&self.live.configured(), &active)?;
        let compared_with = active
            .iter()
            .find(|a| format!("{}-{}", a.language, a.dimension) == slot.to_string())
            .map_or_else(|| "rules".to_owned(), |a| a.version.clone());
        let version = format!("{slot}-{}", Utc::now().format("%Y%m%d-%H%M%S%.3f"));
        let options = ShadowOptions {
            target_precision: self.target_precision,
            min_examples: self.config.shadow_min_examples,
            ..ShadowOptions::default()
        };
        let shadow = shadow_owned(shadow);
        let judged = {
            let version = version.clone();
            let compared_with = compared_with.clone();
            let training_count = training.len();
            tokio::task::spawn_blocking(move || {
                judge(
                    &current,
                    slot,
                    &training,
                    &shadow,
                    &version,
                    &compared_with,
                    &options,
                )
                .map(|(artifact, comparison)| (artifact, comparison, training_count))
            })
        };
        let (artifact, comparison, training_examples) = match judged.await {
            Ok(Ok(judged)) => judged,
            Ok(Err(note)) => return Ok(Err(note)),
            Err(e) => return Ok(Err(format!("training stopped: {e}"))),
        };
        let row = models::record(
            conn,
            &self.schema,
            NewModel {
                version: &version,
                slot,
                artifact: &artifact,
                comparison: &comparison,
                compared_with: &compared_with,
                training_examples,
                trigger,
            },
        )
        .await?;
        Ok(Ok(row))
    }
}

/// Owned copies for the blocking task.
fn shadow_owned(shadow: &[Labelled]) -> Vec<(redress_classifier::ComplaintInput, String)> {
    shadow
        .iter()
        .map(|l| (l.input.clone(), l.label.clone()))
        .collect()
}

/// Trains the candidate and compares it with `current` on the shadow examples: the
/// candidate's artifact and the comparison, or why there is no candidate.
fn judge(
    current: &Engine,
    slot: Slot,
    training: &[Example],
    shadow: &[(redress_classifier::ComplaintInput, String)],
    version: &str,
    compared_with: &str,
    options: &ShadowOptions,
) -> Result<(Vec<u8>, redress_classifier::Comparison), String> {
    let labels: std::collections::BTreeSet<&str> =
        training.iter().map(|e| e.label.as_str()).collect();
    if labels.len() < 2 {
        return Err(format!(
            "{} training examples with {} label(s): a model needs two labels at least",
            training.len(),
            labels.len()
        ));
    }
    let mut train_options = eval::default_options(slot.language, slot.label_scheme());
    train_options.model_version = version.to_owned();
    train_options.label_scheme = slot.label_scheme().to_owned();
    train_options.target_precision = options.target_precision;
    let model = Model::train(training, &train_options, |_| {})
        .map_err(|e| format!("training failed: {e}"))?;
    let artifact = model
        .to_bytes()
        .map_err(|e| format!("the model cannot be stored: {e}"))?;
    let threshold =
        |m: Option<&Model>| m.and_then(|m| eval::model_threshold(m, options.target_precision).0);
    let candidate_threshold = threshold(Some(&model));
    let candidate = current
        .with_model(slot.language, model)
        .map_err(|e| format!("the candidate does not fit the taxonomy: {e}"))?;
    let score = |engine: &Engine, name: &str, threshold| {
        ShadowScore::tally(
            name,
            threshold,
            shadow.iter().map(|(input, truth)| {
                let c = engine
                    .classifier()
                    .classify_at_precision(input, options.target_precision);
                let label = match slot.dimension {
                    Dimension::Category => &c.category,
                    Dimension::Cause => &c.cause,
                };
                (label.code == *truth, label.passes())
            }),
        )
    };
    let current_threshold = threshold(current.classifier().model(slot.language, slot.dimension));
    let comparison = decide(
        score(current, compared_with, current_threshold),
        score(&candidate, version, candidate_threshold),
        shadow.len(),
        options,
    );
    Ok((artifact, comparison))
}

/// The overrides of the slot's language that carry a label of its dimension, newest first.
async fn overrides(conn: &mut PgConnection, slot: Slot) -> Result<Vec<Labelled>, sqlx::Error> {
    let column = match slot.dimension {
        Dimension::Category => "category_code",
        Dimension::Cause => "cause_code",
    };
    // `column` is one of two names above: no outside text in the statement.
    let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT t.text, t.{column}, c.complaint FROM training_examples t \
         JOIN classifications c USING (complaint_id) \
         WHERE t.language = $1 AND t.{column} <> '' \
         ORDER BY t.labelled_at DESC, t.complaint_id DESC"
    )))
    .bind(slot.language_code())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(text, label, complaint)| {
            let input = match ComplaintSummary::decode(complaint.as_slice()) {
                Ok(summary) => input_of(&summary),
                Err(error) => {
                    // The complaint's fields are lost; its text still judges.
                    tracing::warn!(%error, "stored complaint unreadable; shadow uses its text only");
                    redress_classifier::ComplaintInput {
                        text: text.clone(),
                        ..Default::default()
                    }
                }
            };
            Labelled { input, text, label }
        })
        .collect())
}

/// The base data's rows of the slot's language with a label of its dimension (the
/// `export-examples` columns: text, category, cause, language; an empty language is detected).
pub fn base_examples(path: &Path, slot: Slot) -> Result<Vec<Example>, String> {
    let fail = |e: csv::Error| format!("{}: {e}", path.display());
    let mut reader = csv::Reader::from_path(path).map_err(fail)?;
    let headers = reader.headers().map_err(fail)?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            format!(
                "{}: no `{name}` column (text, category, cause, language)",
                path.display()
            )
        })
    };
    let text = column("text")?;
    let label = column(slot.dimension_name())?;
    let language = column("language")?;
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(fail)?;
        let (Some(t), Some(l)) = (record.get(text), record.get(label)) else {
            continue;
        };
        let lang = match record.get(language).map(str::trim) {
            Some("zh") => redress_classifier::Language::Zh,
            Some("en") => redress_classifier::Language::En,
            _ => detect_language(t),
        };
        if lang == slot.language && !t.trim().is_empty() && !l.trim().is_empty() {
            out.push(Example::new(t, l.trim()));
        }
    }
    Ok(out)
}

/// The start of the next period after `now`: periods are aligned on the Unix epoch so that
/// every replica schedules the same job (the key is its due time).
pub fn next_period(now: DateTime<Utc>, interval: Duration) -> Option<DateTime<Utc>> {
    let step = i64::try_from(interval.as_millis())
        .ok()
        .filter(|s| *s > 0)?;
    let next = (now.timestamp_millis().div_euclid(step) + 1).checked_mul(step)?;
    DateTime::from_timestamp_millis(next)
}

/// Schedules the next period's retraining (idempotent: replicas agree on its key).
pub async fn schedule_next(conn: &mut PgConnection, interval: Duration) -> Result<(), sqlx::Error> {
    let Some(due) = next_period(Utc::now(), interval) else {
        return Ok(());
    };
    jobs::schedule(conn, &[NewJob::new(QUEUE, due.to_rfc3339(), due)]).await
}

/// The scheduled run: every configured slot, then the next period.
pub struct Scheduled(pub Arc<Retrainer>);

impl JobHandler for Scheduled {
    async fn run(&self, conn: &mut PgConnection, job: &Job) -> Result<Outcome, JobError> {
        let r = &self.0;
        let done = r
            .retrain(conn, &r.config.slots, &format!("schedule:{}", job.key))
            .await
            .map_err(|e| match e {
                RetrainError::Store(StoreError::Database(e)) => JobError::Database(e),
                other => JobError::Retry(other.to_string()),
            })?;
        for note in &done.notes {
            tracing::info!(%note, "scheduled retraining trained nothing");
        }
        schedule_next(conn, r.config.interval).await?;
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_aligned_so_replicas_agree() {
        let interval = Duration::from_secs(3600);
        let a = DateTime::from_timestamp(1_764_766_900, 0).unwrap_or_default();
        let b = a + chrono::Duration::seconds(1000);
        assert_eq!(next_period(a, interval), next_period(b, interval));
        let next = next_period(a, interval).unwrap_or_default();
        assert!(next > a && next.timestamp() % 3600 == 0);
        assert_eq!(next_period(a, Duration::ZERO), None);
    }
}
