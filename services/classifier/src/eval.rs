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
use crate::model::{Example, FeaturizedSet, Model, Progress, TrainOptions, stable_hash};

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
    }
}

/// Evaluate a model on labelled examples.
pub fn evaluate(model: &Model, examples: &[Example]) -> Report {
    let pairs: Vec<(String, String)> = examples
        .iter()
        .map(|e| (e.label.clone(), model.predict_explained(&e.text, 0).label))
        .collect();
    report_from_pairs(&pairs)
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
        out
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
    let feature_sets: Vec<FeatureConfig> = match lang {
        crate::tokenize::Language::En => vec![
            FeatureConfig {
                word_ngram_max: 2,
                cjk_char_ngrams: (1, 3),
                latin_char_ngrams: (0, 0),
                char_block_weight: 1.0,
                jieba_hmm: false,
                mark_tokens: false,
                head_words: 0,
            },
            FeatureConfig {
                word_ngram_max: 2,
                cjk_char_ngrams: (1, 3),
                latin_char_ngrams: (2, 5),
                char_block_weight: 1.0,
                jieba_hmm: false,
                mark_tokens: false,
                head_words: 0,
            },
            FeatureConfig {
                word_ngram_max: 3,
                cjk_char_ngrams: (1, 3),
                latin_char_ngrams: (2, 5),
                char_block_weight: 1.0,
                jieba_hmm: false,
                mark_tokens: false,
                head_words: 0,
            },
            FeatureConfig {
                word_ngram_max: 3,
                cjk_char_ngrams: (1, 3),
                latin_char_ngrams: (3, 6),
                char_block_weight: 0.7,
                jieba_hmm: false,
                mark_tokens: false,
                head_words: 0,
            },
        ],
        crate::tokenize::Language::Zh => vec![
            FeatureConfig {
                word_ngram_max: 2,
                cjk_char_ngrams: (1, 3),
                latin_char_ngrams: (0, 0),
                char_block_weight: 1.0,
                jieba_hmm: false,
                mark_tokens: false,
                head_words: 0,
            },
            FeatureConfig {
                word_ngram_max: 2,
                cjk_char_ngrams: (1, 4),
                latin_char_ngrams: (0, 0),
                char_block_weight: 1.0,
                jieba_hmm: false,
                mark_tokens: false,
                head_words: 0,
            },
            FeatureConfig {
                word_ngram_max: 1,
                cjk_char_ngrams: (1, 3),
                latin_char_ngrams: (0, 0),
                char_block_weight: 1.0,
                jieba_hmm: true,
                mark_tokens: false,
                head_words: 0,
            },
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
}
