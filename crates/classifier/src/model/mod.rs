//! A linear text classifier over TF-IDF features, with calibrated confidence and a compact
//! versioned artifact.
//!
//! Features: hashed word n-grams and character n-grams ([`crate::features`]), sublinear tf
//! (`1 + ln tf`), smoothed idf (`ln((1+N)/(1+df)) + 1`), each block l2-normalised.
//!
//! Solver ([`solver`]): one-vs-rest L2-regularised **squared-hinge linear SVM trained by dual
//! coordinate descent** (Hsieh et al. 2008, the LIBLINEAR `-s 1` solver), written here rather
//! than taken from `linfa-svm`/`linfa-logistic`: those work on dense `ndarray` matrices (a
//! 20k × 400k dense matrix would need ~32 GB) or use generic QP/L-BFGS solvers that are far
//! slower on sparse text. Dual CD touches only the non-zeros of one document per step, needs
//! no learning rate and converges in a few dozen passes. Per-sample costs give class
//! weighting (for macro-F1).
//!
//! Confidence ([`calibration`]): out-of-fold margins from cross-validation inside the training
//! data fit class offsets and a softmax temperature (the *raw* confidence), then a monotone
//! map (isotonic or Platt) from the raw confidence to the probability of being right, and
//! the operating curve from which the threshold of a target precision is read.
//!
//! Modules: [`options`] (settings), [`training`] (fitting), [`solver`] (the SVM and NB
//! maths), [`calibration`], [`artifact`] (bytes), [`legacy`] (earlier formats), prediction in
//! `predict`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::features::{self, FeatureConfig};
use crate::tokenize;

pub mod artifact;
pub mod calibration;
mod legacy;
pub mod options;
mod predict;
mod solver;
pub mod training;

pub use calibration::{Calibration, OperatingPoint, Reliability, ReliabilityBin};
pub use options::{CalibrationMethod, DEFAULT_TARGET_PRECISION, Progress, Stage, TrainOptions};
pub use training::{OutOfFold, TrainingOutcome};

/// Current artifact format version. Bump on any change of the payload layout.
/// Version 2 added the NBSVM options; version 3 [`FeatureConfig::mark_tokens`], head words
/// and the view-ensemble options; version 4 the calibration options and the stored
/// [`Calibration`]. Every earlier version still loads (see `legacy`).
pub const FORMAT_VERSION: u32 = 4;

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// The complaint text (already redacted).
    pub text: String,
    /// Its label.
    pub label: String,
}

impl Example {
    /// Convenience constructor.
    pub fn new(text: impl Into<String>, label: impl Into<String>) -> Self {
        Example {
            text: text.into(),
            label: label.into(),
        }
    }
}

/// Facts about a model, stored in its artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHeader {
    /// Artifact format version.
    pub format_version: u32,
    /// Model version string (from [`TrainOptions::model_version`]).
    pub model_version: String,
    /// Label scheme (from [`TrainOptions::label_scheme`]).
    pub label_scheme: String,
    /// Labels, in class order.
    pub labels: Vec<String>,
    /// SHA-256 (hex) of the training examples (label, text) in order.
    pub training_digest: String,
    /// Number of training examples.
    pub training_examples: u64,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Version of this crate that trained it.
    pub trainer: String,
    /// The options it was trained with.
    pub options: TrainOptions,
}

/// One feature's contribution to the winning class, for explanations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The feature as text (a word, word n-gram or character n-gram of the normalised text).
    pub feature: String,
    /// Its contribution to the winning class's margin.
    pub weight: f32,
}

/// The model's answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Most likely label.
    pub label: String,
    /// Probability that `label` is right: the calibrated confidence when the model carries a
    /// [`Calibration`], else the softmax probability (`raw_confidence`).
    pub confidence: f32,
    /// The softmax probability of `label` before calibration.
    #[serde(default)]
    pub raw_confidence: f32,
    /// Every label with its softmax probability, most likely first (they rank the labels;
    /// only the winner's probability is calibrated, in `confidence`).
    pub scores: Vec<(String, f32)>,
    /// Features that pushed most towards the winning label, largest first.
    pub top_features: Vec<Contribution>,
}

/// Identity-ish hasher for keys that are already hashes.
#[derive(Clone, Copy, Default)]
struct PreHashed;

struct PreHasher(u64);

impl Hasher for PreHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl BuildHasher for PreHashed {
    type Hasher = PreHasher;
    fn build_hasher(&self) -> PreHasher {
        PreHasher(0)
    }
}

impl std::fmt::Debug for PreHashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreHashed")
    }
}

/// A trained linear text classifier.
#[derive(Debug, Clone)]
pub struct Model {
    header: ModelHeader,
    n_docs: u32,
    /// Sorted vocabulary hashes; position = feature index.
    hashes: Vec<u32>,
    df: Vec<u32>,
    index: HashMap<u32, u32, PreHashed>,
    idf: Vec<f32>,
    /// Feature-major quantised weights: class `c`'s weight of feature `f` is
    /// `weights[f * k + c] × scales[c]`. Kept as `i16` in memory too: prediction is bound by
    /// fetching weights, and half the bytes fetch faster.
    weights: Vec<i16>,
    scales: Vec<f32>,
    bias: Vec<f32>,
    temperature: f32,
    calibration: Option<Calibration>,
}

/// Sparse row: (feature index, value).
type Row = Vec<(u32, f32)>;

/// Stable 64-bit hash of a string with a seed (FNV-1a + SplitMix finaliser); the basis of
/// every deterministic split in this crate.
pub fn stable_hash(text: &str, seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for &b in text.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    solver::SplitMix(h).next()
}

/// Turn one block's raw counts into sublinear tf-idf, l2-normalised and scaled by `weight`.
fn tf_idf(block: &mut [(u32, f32)], idf: &[f32], weight: f32) {
    let mut norm = 0.0f32;
    for (j, v) in block.iter_mut() {
        // Most n-grams occur once, where 1 + ln(count) is 1.
        let tf = if *v > 1.0 { 1.0 + v.ln() } else { *v };
        *v = tf * idf.get(*j as usize).copied().unwrap_or(1.0);
        norm += *v * *v;
    }
    if norm > 0.0 {
        let scale = weight / norm.sqrt();
        for e in block {
            e.1 *= scale;
        }
    }
}

fn block_weights(cfg: &FeatureConfig) -> [f32; 2] {
    let cw = if cfg.char_block_weight.is_finite() {
        cfg.char_block_weight.max(0.0)
    } else {
        1.0
    };
    [1.0, cw]
}

/// SHA-256 (hex) over examples, in order.
pub fn digest_examples(examples: &[Example]) -> String {
    let mut h = Sha256::new();
    for e in examples {
        h.update(e.label.as_bytes());
        h.update([0u8]);
        h.update(e.text.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A text normalised and turned into feature counts ([`Model::featurize`]).
#[derive(Debug, Clone)]
pub struct Featurized {
    normalized: String,
    config: FeatureConfig,
    hashes: features::Hashes,
}

/// Pre-featurised training data, reusable across option sets with the same [`FeatureConfig`].
#[derive(Debug, Clone)]
pub struct FeaturizedSet {
    features: FeatureConfig,
    counts: Vec<[Vec<(u32, f32)>; 2]>,
    labels: Vec<String>,
    digest: String,
}

impl FeaturizedSet {
    /// Tokenise and count every example once.
    pub fn new(
        examples: &[Example],
        features: &FeatureConfig,
        progress: &mut dyn FnMut(Progress),
    ) -> Self {
        let total = examples.len() as u64;
        let mut counts = Vec::with_capacity(examples.len());
        for (i, e) in examples.iter().enumerate() {
            counts.push(features::counts(&tokenize::normalize(&e.text), features));
            if i % 256 == 0 || i + 1 == examples.len() {
                progress(Progress {
                    stage: Stage::Featurizing,
                    done: i as u64 + 1,
                    total,
                });
            }
        }
        FeaturizedSet {
            features: features.clone(),
            counts,
            labels: examples.iter().map(|e| e.label.clone()).collect(),
            digest: digest_examples(examples),
        }
    }

    /// The feature configuration the set was built with.
    pub fn features(&self) -> &FeatureConfig {
        &self.features
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl Model {
    fn assemble(
        header: ModelHeader,
        n_docs: u32,
        hashes: Vec<u32>,
        df: Vec<u32>,
        (weights, scales): (Vec<i16>, Vec<f32>),
        bias: Vec<f32>,
        temperature: f32,
    ) -> Model {
        let mut index = HashMap::with_capacity_and_hasher(hashes.len(), PreHashed);
        for (i, &h) in hashes.iter().enumerate() {
            index.insert(h, i as u32);
        }
        let nd = n_docs as f32;
        let idf = df
            .iter()
            .map(|&d| ((1.0 + nd) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        Model {
            header,
            n_docs,
            hashes,
            df,
            index,
            idf,
            weights,
            scales,
            bias,
            temperature,
            calibration: None,
        }
    }

    /// Facts about the model (version, labels, training digest...).
    pub fn header(&self) -> &ModelHeader {
        &self.header
    }

    /// Labels in class order.
    pub fn labels(&self) -> &[String] {
        &self.header.labels
    }

    /// Number of features in the vocabulary.
    pub fn feature_count(&self) -> usize {
        self.hashes.len()
    }

    /// Softmax temperature fitted for calibration.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// The stored calibration (format 4 artifacts trained with `calibrate`); `None` for
    /// older artifacts, whose confidence is the softmax's.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// The confidence at or above which this model's decisions reached `target_precision`
    /// on held-out predictions at training. `None` when the model has no calibration, or
    /// never reached that precision (then nothing it decides should skip review).
    pub fn threshold_for(&self, target_precision: f32) -> Option<f32> {
        self.calibration.as_ref()?.threshold_for(target_precision)
    }
}

/// Measure single-threaded prediction throughput (texts per second) over `texts`, with no
/// explanation features, at least `min_passes` passes.
pub fn measure_throughput(model: &Model, texts: &[String], min_passes: usize) -> f64 {
    if texts.is_empty() {
        return 0.0;
    }
    let start = Instant::now();
    let mut n = 0usize;
    for _ in 0..min_passes.max(1) {
        for t in texts {
            let p = model.predict_explained(t, 0);
            n += usize::from(!p.label.is_empty());
        }
    }
    n as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::Error;

    /// Small synthetic dataset: three topics with distinctive vocabularies plus shared noise.
    pub(crate) fn synthetic(n_per_class: usize, seed: u64) -> Vec<Example> {
        let topics: [(&str, &[&str]); 3] = [
            (
                "card",
                &[
                    "credit card",
                    "statement",
                    "annual fee",
                    "charged twice",
                    "card limit",
                    "信用卡",
                    "年费",
                ],
            ),
            (
                "loan",
                &[
                    "loan",
                    "interest rate",
                    "repayment",
                    "installment",
                    "payoff",
                    "借款",
                    "利息",
                ],
            ),
            (
                "collect",
                &[
                    "collector",
                    "calls me",
                    "debt not owed",
                    "harass",
                    "threatened",
                    "催收",
                    "骚扰",
                ],
            ),
        ];
        let noise = [
            "the", "bank", "company", "please", "help", "my", "account", "我", "的", "公司",
        ];
        let mut rng = solver::SplitMix(seed);
        let mut out = Vec::new();
        for i in 0..n_per_class {
            for (label, words) in &topics {
                let mut text = String::new();
                for _ in 0..12 {
                    let w = if rng.below(3) == 0 {
                        words[rng.below(words.len())]
                    } else {
                        noise[rng.below(noise.len())]
                    };
                    text.push_str(w);
                    text.push(' ');
                }
                text.push_str(&format!("ref {i}"));
                out.push(Example::new(text, *label));
            }
        }
        out
    }

    #[test]
    fn trains_predicts_and_round_trips() {
        let data = synthetic(60, 7);
        let opts = TrainOptions {
            model_version: "test-v1".into(),
            label_scheme: "synthetic".into(),
            created_at: Some(1_700_000_000),
            ..TrainOptions::chinese()
        };
        let mut stages = Vec::new();
        let model = Model::train(&data, &opts, |p| stages.push(p.stage)).expect("train");
        assert!(stages.contains(&Stage::Fitting) && stages.contains(&Stage::Done));
        assert_eq!(model.labels(), &["card", "collect", "loan"]);
        let p = model.predict("my credit card annual fee was charged twice 信用卡");
        assert_eq!(p.label, "card");
        assert!(p.confidence > 0.5 && p.confidence <= 1.0);
        assert_eq!(p.scores.len(), 3);
        assert!(!p.top_features.is_empty());
        let sum: f32 = p.scores.iter().map(|s| s.1).sum();
        assert!((sum - 1.0).abs() < 1e-3);
        // 180 out-of-fold predictions: Platt scaling (below the isotonic minimum).
        let cal = model.calibration().expect("calibrated");
        assert_eq!(cal.method, CalibrationMethod::Platt);
        assert_eq!(cal.examples, 180);

        let dir = std::env::temp_dir().join(format!("redress-model-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("m.bin");
        model.save(&path).expect("save");
        let loaded = Model::load(&path).expect("load");
        assert_eq!(loaded.header(), model.header());
        assert_eq!(loaded.calibration(), model.calibration());
        for e in data.iter().take(30) {
            assert_eq!(loaded.predict(&e.text), model.predict(&e.text));
        }
        let _ = std::fs::remove_dir_all(&dir);

        // Corruption and truncation are detected, never a panic.
        let mut bytes = model.to_bytes().expect("bytes");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        assert!(matches!(Model::from_bytes(&bytes), Err(Error::Artifact(_))));
        assert!(Model::from_bytes(&bytes[..30]).is_err());
        assert!(Model::from_bytes(b"").is_err());
    }

    #[test]
    fn nbsvm_trains_and_round_trips() {
        let data = synthetic(60, 11);
        let opts = TrainOptions {
            nb_alpha: 1.0,
            nb_beta: 0.75,
            c: 0.05,
            created_at: Some(1_700_000_000),
            ..TrainOptions::english()
        };
        let model = Model::train(&data, &opts, |_| {}).expect("train");
        assert_eq!(
            model.predict("collector calls me and threatened").label,
            "collect"
        );
        let bytes = model.to_bytes().expect("bytes");
        let loaded = Model::from_bytes(&bytes).expect("load");
        assert_eq!(loaded.header().options.nb_alpha, 1.0);
        for e in data.iter().take(20) {
            assert_eq!(loaded.predict(&e.text), model.predict(&e.text));
        }
    }

    #[test]
    fn ensemble_options_train_and_round_trip() {
        let data = synthetic(60, 13);
        let variants = [
            TrainOptions {
                separate_views: true,
                ..TrainOptions::english()
            },
            TrainOptions {
                cnb_mix: -1.0,
                cnb_alpha: 0.01,
                ..TrainOptions::chinese()
            },
            TrainOptions {
                hinge_loss: true,
                c: 0.2,
                ..TrainOptions::english()
            },
            TrainOptions {
                features: FeatureConfig {
                    head_words: 6,
                    mark_tokens: true,
                    ..TrainOptions::english().features
                },
                calibration: CalibrationMethod::Isotonic,
                ..TrainOptions::english()
            },
        ];
        for opts in variants {
            let opts = TrainOptions {
                created_at: Some(1_700_000_000),
                ..opts
            };
            let model = Model::train(&data, &opts, |_| {}).expect("train");
            assert_eq!(
                model.predict("collector calls me and threatened").label,
                "collect",
                "{opts:?}"
            );
            let loaded = Model::from_bytes(&model.to_bytes().expect("bytes")).expect("load");
            assert_eq!(loaded.header(), model.header());
            for e in data.iter().take(20) {
                assert_eq!(loaded.predict(&e.text), model.predict(&e.text));
            }
        }
    }

    #[test]
    fn uncalibrated_models_report_the_softmax() {
        let opts = TrainOptions {
            calibration: CalibrationMethod::None,
            ..TrainOptions::default()
        };
        let model = Model::train(&synthetic(30, 3), &opts, |_| {}).expect("train");
        assert!(model.calibration().is_none() && model.threshold_for(0.9).is_none());
        let p = model.predict("collector calls me");
        assert_eq!(p.confidence, p.raw_confidence);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let model =
            Model::train(&synthetic(20, 3), &TrainOptions::default(), |_| {}).expect("train");
        for t in ["", " ", "\u{0}\u{FEFF}", "😀😀", &"x".repeat(200_000)] {
            let p = model.predict(t);
            assert!(p.confidence.is_finite());
        }
    }

    #[test]
    fn rejects_bad_training_input() {
        assert!(Model::train(&[], &TrainOptions::default(), |_| {}).is_err());
        let one = vec![Example::new("a b c", "x"), Example::new("a b d", "x")];
        assert!(Model::train(&one, &TrainOptions::default(), |_| {}).is_err());
    }
}
