//! Evaluation: labelled CSV loading, a deterministic split, and a metrics report.
//!
//! The split puts an example in the test part when `stable_hash(text, seed) % 10_000` falls
//! below `test_fraction · 10_000` — the same text lands on the same side on every machine and
//! whatever the row order. Identical texts always land together, so duplicates cannot leak
//! from train to test.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::calibration::{MIN_SUPPORT, best_at_precision, operating_curve, reliability};
use crate::model::{
    DEFAULT_TARGET_PRECISION, Example, FeaturizedSet, Model, OperatingPoint, Progress, Reliability,
    TrainOptions, stable_hash,
};

/// Seed of the standard 80/20 split used by the README figures and the `eval` example.
pub const DEFAULT_SPLIT_SEED: u64 = 0x5EED_2024;

/// Read a labelled CSV (with a header row). Rows with an empty label or empty text are skipped.
pub fn load_examples(
    path: impl AsRef<Path>,
    text_col: &str,
    label_col: &str,
) -> Result<Vec<Example>> {
    let path = path.as_ref();
    let csv_err = |message: String| Error::Csv {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| csv_err(e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| csv_err(e.to_string()))?
        .clone();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .ok_or_else(|| {
                csv_err(format!(
                    "no column `{name}`; columns are: {}",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ))
            })
    };
    let ti = find(text_col)?;
    let li = find(label_col)?;
    let mut out = Vec::new();
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| csv_err(format!("record {}: {e}", n + 1)))?;
        let label = rec.get(li).unwrap_or("").trim();
        let text = rec.get(ti).unwrap_or("").trim();
        if label.is_empty() || text.is_empty() {
            continue;
        }
        out.push(Example::new(text, label));
    }
    Ok(out)
}

/// Relabel examples through a taxonomy mapping: each label is looked up in `scheme` (e.g.
/// `cfpb_issue`) and replaced by the taxonomy code it implies for `dim`; examples whose label
/// has no such mapping are dropped. This is how the English cause model is trained from CFPB
/// `issue` labels (its label scheme is then `taxonomy_cause`).
pub fn map_labels(
    examples: &[Example],
    taxonomy: &crate::taxonomy::Taxonomy,
    scheme: &str,
    dim: crate::taxonomy::Dimension,
) -> Vec<Example> {
    examples
        .iter()
        .filter_map(|e| {
            let m = taxonomy.map(scheme, &e.label)?;
            let code = match dim {
                crate::taxonomy::Dimension::Category => m.category.as_ref(),
                crate::taxonomy::Dimension::Cause => m.cause.as_ref(),
            }?;
            Some(Example::new(e.text.clone(), code.clone()))
        })
        .collect()
}

/// Split deterministically into (train, test) by a seeded hash of each text.
pub fn split(examples: &[Example], test_fraction: f64, seed: u64) -> (Vec<Example>, Vec<Example>) {
    let cut = (test_fraction.clamp(0.0, 1.0) * 10_000.0).round() as u64;
    let mut train = Vec::new();
    let mut test = Vec::new();
    for e in examples {
        if stable_hash(&e.text, seed) % 10_000 < cut {
            test.push(e.clone());
        } else {
            train.push(e.clone());
        }
    }
    (train, test)
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The label.
    pub label: String,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Number of true examples of this class.
    pub support: usize,
}

/// An evaluation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Labels, in the order of `per_class` and the confusion matrix.
    pub labels: Vec<String>,
    /// Share of examples predicted correctly.
    pub accuracy: f64,
    /// Unweighted mean of per-class F1.
    pub macro_f1: f64,
    /// Per-class metrics.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Number of examples evaluated.
    pub examples: usize,
    /// Reliability of the confidence the model reports (calibrated when it carries a
    /// calibration), when confidences were measured.
    #[serde(default)]
    pub reliability: Option<Reliability>,
    /// Reliability of the raw (softmax) confidence, before calibration.
    #[serde(default)]
    pub reliability_raw: Option<Reliability>,
    /// What would have been auto-routed at the target precision.
    #[serde(default)]
    pub routing: Option<Routing>,
}

/// Number of equal-width confidence bins of the reliability reports.
pub const RELIABILITY_BINS: usize = 10;

/// Where a routing threshold came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdSource {
    /// Recorded in the model artifact: reached the target on held-out predictions at training.
    Artifact,
    /// The model has no calibration: the target precision itself is the threshold.
    Target,
    /// The model reached the target on no held-out slice: nothing is auto-routed.
    Unreachable,
}

/// Auto-routing at a target precision: decisions at or above the threshold skip review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    /// The precision asked for.
    pub target_precision: f32,
    /// The confidence threshold used (fixed before seeing these examples).
    pub threshold: Option<f32>,
    /// Where the threshold came from.
    pub threshold_source: ThresholdSource,
    /// Decisions at or above the threshold.
    pub auto_routed: usize,
    /// Their share of all examples.
    pub share: f64,
    /// The share of them that were right (`None` when nothing was auto-routed).
    pub precision: Option<f64>,
    /// Hindsight: the largest share these very examples would have allowed at the target
    /// precision (at least 20 decisions). An upper bound, not a promise.
    pub best_share_in_hindsight: Option<OperatingPoint>,
}

/// One scored prediction, for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The true label.
    pub truth: String,
    /// The predicted label.
    pub predicted: String,
    /// The confidence reported (calibrated when the model is).
    pub confidence: f32,
    /// The softmax confidence before calibration.
    pub raw_confidence: f32,
}

/// Auto-routing of (confidence, right?) pairs at `threshold` (`None`: nothing is routed).
pub fn routing(
    pairs: &[(f32, bool)],
    threshold: Option<f32>,
    source: ThresholdSource,
    target_precision: f32,
) -> Routing {
    let routed: Vec<bool> = match threshold {
        Some(t) => pairs.iter().filter(|p| p.0 >= t).map(|p| p.1).collect(),
        None => Vec::new(),
    };
    let right = routed.iter().filter(|ok| **ok).count();
    Routing {
        target_precision,
        threshold,
        threshold_source: source,
        auto_routed: routed.len(),
        share: routed.len() as f64 / pairs.len().max(1) as f64,
        precision: (!routed.is_empty()).then(|| right as f64 / routed.len() as f64),
        best_share_in_hindsight: best_at_precision(
            &operating_curve(pairs),
            target_precision,
            MIN_SUPPORT,
        ),
    }
}

/// The threshold a model uses for `target_precision`, and where it comes from.
pub fn model_threshold(model: &Model, target_precision: f32) -> (Option<f32>, ThresholdSource) {
    match model.calibration() {
        Some(c) => match c.threshold_for(target_precision) {
            Some(t) => (Some(t), ThresholdSource::Artifact),
            None => (None, ThresholdSource::Unreachable),
        },
        None => (Some(target_precision), ThresholdSource::Target),
    }
}

/// A full report from scored predictions: per-class metrics, confusion, reliability before
/// and after calibration, and auto-routing at `threshold`.
pub fn report_from_scored(
    scored: &[Scored],
    threshold: (Option<f32>, ThresholdSource),
    target_precision: f32,
) -> Report {
    let pairs: Vec<(String, String)> = scored
        .iter()
        .map(|s| (s.truth.clone(), s.predicted.clone()))
        .collect();
    let calibrated: Vec<(f32, bool)> = scored
        .iter()
        .map(|s| (s.confidence, s.truth == s.predicted))
        .collect();
    let raw: Vec<(f32, bool)> = scored
        .iter()
        .map(|s| (s.raw_confidence, s.truth == s.predicted))
        .collect();
    let mut report = report_from_pairs(&pairs);
    report.reliability = Some(reliability(&calibrated, RELIABILITY_BINS));
    report.reliability_raw = Some(reliability(&raw, RELIABILITY_BINS));
    report.routing = Some(routing(
        &calibrated,
        threshold.0,
        threshold.1,
        target_precision,
    ));
    report
}

/// Compute a report from (true, predicted) label pairs.
pub fn report_from_pairs(pairs: &[(String, String)]) -> Report {
    let mut labels: Vec<String> = pairs
        .iter()
        .flat_map(|(t, p)| [t.clone(), p.clone()])
        .collect();
    labels.sort();
    labels.dedup();
    let idx: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let k = labels.len();
    let mut confusion = vec![vec![0usize; k]; k];
    let mut correct = 0usize;
    for (t, p) in pairs {
        if let (Some(&ti), Some(&pi)) = (idx.get(t.as_str()), idx.get(p.as_str())) {
            confusion[ti][pi] += 1;
            correct += usize::from(ti == pi);
        }
    }
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|r| r[c]).sum();
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassMetrics {
                label: labels[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    // Macro-F1 over classes that occur in the truth (a label only ever predicted counts as 0
    // for precision but is not a class of the data set).
    let present: Vec<&ClassMetrics> = per_class.iter().filter(|m| m.support > 0).collect();
    let macro_f1 = if present.is_empty() {
        0.0
    } else {
        present.iter().map(|m| m.f1).sum::<f64>() / present.len() as f64
    };
    Report {
        labels,
        accuracy: if pairs.is_empty() {
            0.0
        } else {
            correct as f64 / pairs.len() as f64
        },
        macro_f1,
        per_class,
        confusion,
        examples: pairs.len(),
        reliability: None,
        reliability_raw: None,
        routing: None,
    }
}

/// Evaluate a model on labelled examples, routing at [`DEFAULT_TARGET_PRECISION`].
pub fn evaluate(model: &Model, examples: &[Example]) -> Report {
    evaluate_at(model, examples, DEFAULT_TARGET_PRECISION)
}

/// Evaluate a model on labelled examples: metrics, reliability before and after calibration,
/// and what its threshold for `target_precision` would have auto-routed.
pub fn evaluate_at(model: &Model, examples: &[Example], target_precision: f32) -> Report {
    let scored: Vec<Scored> = examples
        .iter()
        .map(|e| {
            let p = model.predict_explained(&e.text, 0);
            Scored {
                truth: e.label.clone(),
                predicted: p.label,
                confidence: p.confidence,
                raw_confidence: p.raw_confidence,
            }
        })
        .collect();
    report_from_scored(
        &scored,
        model_threshold(model, target_precision),
        target_precision,
    )
}

impl Report {
    /// Plain-text table: per-class metrics, totals, then the confusion matrix.
    pub fn to_table(&self) -> String {
        use std::fmt::Write;
        let short = |l: &str| -> String {
            let s: String = l.chars().take(40).collect();
            if s.chars().count() < l.chars().count() {
                format!("{s}…")
            } else {
                s
            }
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<42} {:>9} {:>9} {:>9} {:>8}",
            "label", "precision", "recall", "f1", "support"
        );
        for m in &self.per_class {
            let _ = writeln!(
                out,
                "{:<42} {:>9.4} {:>9.4} {:>9.4} {:>8}",
                short(&m.label),
                m.precision,
                m.recall,
                m.f1,
                m.support
            );
        }
        let _ = writeln!(
            out,
            "\naccuracy {:.4}   macro-F1 {:.4}   examples {}",
            self.accuracy, self.macro_f1, self.examples
        );
        let _ = writeln!(
            out,
            "\nconfusion matrix (rows = true, columns = predicted; column numbers = row numbers)"
        );
        for (i, row) in self.confusion.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|c| format!("{c:>5}")).collect();
            let _ = writeln!(
                out,
                "{:>2} {:<30} {}",
                i,
                short(&self.labels[i]).chars().take(30).collect::<String>(),
                cells.join("")
            );
        }
        self.write_calibration(&mut out);
        out
    }

    /// The reliability and routing sections of [`Report::to_table`].
    fn write_calibration(&self, out: &mut String) {
        use std::fmt::Write;
        if let (Some(cal), Some(raw)) = (&self.reliability, &self.reliability_raw) {
            let _ = writeln!(
                out,
                "\ncalibration: expected calibration error {:.4} (raw softmax {:.4})",
                cal.ece, raw.ece
            );
            let _ = writeln!(
                out,
                "{:<13} {:>7} {:>11} {:>9}   {:>7} {:>11} {:>9}",
                "confidence", "n", "mean conf", "accuracy", "raw n", "raw conf", "raw acc"
            );
            for (b, r) in cal.bins.iter().zip(&raw.bins) {
                let _ = writeln!(
                    out,
                    "{:<13} {:>7} {:>11.4} {:>9.4}   {:>7} {:>11.4} {:>9.4}",
                    format!("[{:.1}, {:.1})", b.lower, b.upper),
                    b.count,
                    b.confidence,
                    b.accuracy,
                    r.count,
                    r.confidence,
                    r.accuracy
                );
            }
        }
        if let Some(r) = &self.routing {
            let threshold = r
                .threshold
                .map_or("none".to_string(), |t| format!("{t:.4}"));
            let precision = r.precision.map_or("-".to_string(), |p| format!("{p:.4}"));
            let _ = writeln!(
                out,
                "\nauto-routing at target precision {:.2}: threshold {threshold} ({:?}); auto-routed {} of {} ({:.1} %), precision {precision}",
                r.target_precision,
                r.threshold_source,
                r.auto_routed,
                self.examples,
                r.share * 100.0
            );
            if let Some(b) = &r.best_share_in_hindsight {
                let _ = writeln!(
                    out,
                    "in hindsight these examples allowed {:.1} % at precision {:.4} (threshold {:.4})",
                    b.coverage * 100.0,
                    b.precision,
                    b.threshold
                );
            }
        }
    }

    /// JSON rendering.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::Config(format!("cannot render report: {e}")))
    }
}

/// One candidate setting and its validation score, as tried by [`tune`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The options tried.
    pub options: TrainOptions,
    /// Macro-F1 on the validation slice.
    pub macro_f1: f64,
    /// Accuracy on the validation slice.
    pub accuracy: f64,
}

/// Choose training options on a validation slice carved from `train` (never the test set):
/// every candidate is trained on the rest of `train` and scored by macro-F1; the best wins.
/// Candidates sharing a feature configuration share one tokenisation pass.
pub fn tune(
    train: &[Example],
    candidates: &[TrainOptions],
    validation_fraction: f64,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize, Option<&Trial>),
) -> Result<(TrainOptions, Vec<Trial>)> {
    if candidates.is_empty() {
        return Err(Error::Training("no candidate options to tune over".into()));
    }
    let (fit, val) = split(train, validation_fraction, seed ^ 0x7A11);
    if fit.is_empty() || val.is_empty() {
        return Err(Error::Training(
            "too few examples to carve a validation slice".into(),
        ));
    }
    let mut trials = Vec::new();
    let mut cache: Option<FeaturizedSet> = None;
    let total = candidates.len();
    progress(0, total, None);
    for (i, cand) in candidates.iter().enumerate() {
        let mut quiet = |_: Progress| {};
        let reuse = cache
            .as_ref()
            .is_some_and(|c| c.features() == &cand.features);
        if !reuse {
            cache = Some(FeaturizedSet::new(&fit, &cand.features, &mut quiet));
        }
        let set = cache
            .as_ref()
            .ok_or_else(|| Error::Training("internal: no featurised set".into()))?;
        let opts = TrainOptions {
            calibrate: false,
            ..cand.clone()
        };
        let model = Model::train_featurized(set, &opts, &mut quiet)?;
        let r = evaluate(&model, &val);
        let trial = Trial {
            options: cand.clone(),
            macro_f1: r.macro_f1,
            accuracy: r.accuracy,
        };
        progress(i + 1, total, Some(&trial));
        trials.push(trial);
    }
    let best = trials
        .iter()
        .max_by(|a, b| a.macro_f1.total_cmp(&b.macro_f1))
        .map(|t| t.options.clone())
        .ok_or_else(|| Error::Training("no trial finished".into()))?;
    Ok((best, trials))
}

/// The options this crate uses by default for a language and label scheme (chosen on
/// validation slices): English models of taxonomy causes get [`TrainOptions::english_cause`].
pub fn default_options(lang: crate::tokenize::Language, label_scheme: &str) -> TrainOptions {
    match lang {
        crate::tokenize::Language::Zh => TrainOptions::chinese(),
        crate::tokenize::Language::En if label_scheme == "taxonomy_cause" => {
            TrainOptions::english_cause()
        }
        crate::tokenize::Language::En => TrainOptions::english(),
    }
}

/// The candidate grid [`tune`] searches by default: regularisation, class weighting and the
/// character n-gram block.
pub fn default_grid(lang: crate::tokenize::Language, base: &TrainOptions) -> Vec<TrainOptions> {
    use crate::features::FeatureConfig;
    // (word n-grams, Han n-grams, Latin n-grams, char block weight, jieba HMM)
    let fc = |word_ngram_max, cjk_char_ngrams, latin_char_ngrams, char_block_weight, jieba_hmm| {
        FeatureConfig {
            word_ngram_max,
            cjk_char_ngrams,
            latin_char_ngrams,
            char_block_weight,
            jieba_hmm,
            mark_tokens: false,
            head_words: 0,
        }
    };
    let feature_sets: Vec<FeatureConfig> = match lang {
        crate::tokenize::Language::En => vec![
            fc(2, (1, 3), (0, 0), 1.0, false),
            fc(2, (1, 3), (2, 5), 1.0, false),
            fc(3, (1, 3), (2, 5), 1.0, false),
            fc(3, (1, 3), (3, 6), 0.7, false),
        ],
        crate::tokenize::Language::Zh => vec![
            fc(2, (1, 3), (0, 0), 1.0, false),
            fc(2, (1, 4), (0, 0), 1.0, false),
            fc(1, (1, 3), (0, 0), 1.0, true),
        ],
    };
    let mut grid = Vec::new();
    for f in feature_sets {
        for c in [0.2f32, 0.5, 1.0] {
            for cw in [0.5f32, 1.0] {
                grid.push(TrainOptions {
                    features: f.clone(),
                    c,
                    class_weight_power: cw,
                    nb_alpha: 0.0,
                    ..base.clone()
                });
            }
        }
        // NBSVM (naive-Bayes-scaled features) wants a smaller C.
        for c in [0.02f32, 0.05, 0.1] {
            grid.push(TrainOptions {
                features: f.clone(),
                c,
                nb_alpha: 1.0,
                ..base.clone()
            });
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_and_keeps_duplicates_together() {
        let ex: Vec<Example> = (0..1000)
            .map(|i| Example::new(format!("text {i}"), "a"))
            .collect();
        let (a1, b1) = split(&ex, 0.2, 1);
        let (a2, b2) = split(&ex, 0.2, 1);
        assert_eq!((a1.len(), b1.len()), (a2.len(), b2.len()));
        assert!(b1.len() > 150 && b1.len() < 250, "{}", b1.len());
        let mut rev = ex.clone();
        rev.reverse();
        let (_, b3) = split(&rev, 0.2, 1);
        assert_eq!(b3.len(), b1.len());
    }

    #[test]
    fn report_metrics() {
        let p = |t: &str, q: &str| (t.to_string(), q.to_string());
        let r = report_from_pairs(&[p("a", "a"), p("a", "b"), p("b", "b"), p("b", "b")]);
        assert!((r.accuracy - 0.75).abs() < 1e-9);
        assert_eq!(r.confusion, vec![vec![1, 1], vec![0, 2]]);
        // a: p=1, r=.5, f1=.6667; b: p=.6667, r=1, f1=.8
        assert!((r.macro_f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-9);
        assert!(r.to_table().contains("macro-F1"));
        assert!(r.to_json().expect("json").contains("\"macro_f1\""));
    }

    #[test]
    fn scored_reports_have_reliability_and_routing() {
        let s = |t: &str, p: &str, c: f32| Scored {
            truth: t.into(),
            predicted: p.into(),
            confidence: c,
            raw_confidence: 1.0,
        };
        let scored = [
            s("a", "a", 0.95),
            s("a", "b", 0.5),
            s("b", "b", 0.92),
            s("b", "b", 0.2),
        ];
        let r = report_from_scored(&scored, (Some(0.9), ThresholdSource::Artifact), 0.9);
        let routing = r.routing.as_ref().expect("routing");
        assert_eq!((routing.auto_routed, routing.precision), (2, Some(1.0)));
        assert!((routing.share - 0.5).abs() < 1e-9);
        // Raw confidence 1.0 for 3 right of 4: ECE 0.25.
        assert!((r.reliability_raw.as_ref().expect("raw").ece - 0.25).abs() < 1e-9);
        let table = r.to_table();
        assert!(
            table.contains("expected calibration error") && table.contains("auto-routed 2 of 4"),
            "{table}"
        );
        let json = r.to_json().expect("json");
        assert!(
            json.contains("\"ece\"") && json.contains("\"bins\"") && json.contains("\"routing\"")
        );
        let none = routing_of_nothing();
        assert_eq!((none.auto_routed, none.precision), (0, None));
    }

    fn routing_of_nothing() -> Routing {
        routing(&[(0.99, true)], None, ThresholdSource::Unreachable, 0.9)
    }
}
