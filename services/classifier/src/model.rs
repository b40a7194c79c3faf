//! A linear text classifier over TF-IDF features, with a compact versioned artifact.
//!
//! Features: hashed word n-grams and character n-grams ([`crate::features`]), sublinear tf
//! (`1 + ln tf`), smoothed idf (`ln((1+N)/(1+df)) + 1`), each block l2-normalised.
//!
//! Solver: one-vs-rest L2-regularised **squared-hinge linear SVM trained by dual coordinate
//! descent** (Hsieh et al. 2008, the LIBLINEAR `-s 1` solver), written here rather than taken
//! from `linfa-svm`/`linfa-logistic`: those work on dense `ndarray` matrices (a 20k × 400k dense
//! matrix would need ~32 GB) or use generic QP/L-BFGS solvers that are far slower on sparse text.
//! Dual CD touches only the non-zeros of one document per step, needs no learning rate and
//! converges in a few dozen passes. Per-sample costs give class weighting (for macro-F1).
//!
//! Confidence: a softmax over the class margins with one temperature, fitted on a validation
//! slice carved deterministically from the training data (minimising log loss), so a
//! confidence threshold means roughly "this often right".
//!
//! Artifact: `REDRESSM` magic, a little-endian format version, a SHA-256 of the payload, and a
//! `postcard` payload holding the header (model version, label scheme, labels, training-data
//! digest, created-at), the feature configuration, the vocabulary (sorted hashes, delta-coded)
//! with document frequencies, and the weights quantised to `i16` with one scale per class.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::features::{self, Block, FeatureConfig};
use crate::tokenize;

/// Current artifact format version. Bump on any change of the payload layout.
/// Version 2 added the NBSVM options to [`TrainOptions`]; version-1 artifacts still load.
/// Version 3 added [`FeatureConfig::mark_tokens`] and the view-ensemble options; versions 1
/// and 2 still load.
pub const FORMAT_VERSION: u32 = 3;
const MAGIC: &[u8; 8] = b"REDRESSM";

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

/// Training settings. The defaults are the ones chosen on validation splits of the CFPB
/// training data (see the README); Chinese text uses [`TrainOptions::chinese`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// How text becomes features.
    pub features: FeatureConfig,
    /// SVM cost `C` (inverse regularisation strength).
    pub c: f32,
    /// Class weighting: each sample's cost is multiplied by `(n / (k · n_class))^power`;
    /// 0 = unweighted, 1 = "balanced".
    pub class_weight_power: f32,
    /// Maximum passes of dual coordinate descent per class.
    pub max_epochs: usize,
    /// Stopping tolerance on the projected-gradient spread.
    pub tolerance: f32,
    /// Keep only features seen in at least this many training documents.
    pub min_df: u32,
    /// Keep at most this many features (the most frequent), bounding the artifact size.
    pub max_features: usize,
    /// Calibrate on out-of-fold margins: fit the softmax temperature (and the class offsets
    /// when `tune_offsets`); costs `calibration_folds` extra fits.
    pub calibrate: bool,
    /// Number of cross-validation folds for calibration (2–10).
    pub calibration_folds: usize,
    /// Shift each class's bias to maximise out-of-fold macro-F1 (needs `calibrate`).
    pub tune_offsets: bool,
    /// Seed of every pseudo-random choice (shuffling, calibration slice).
    pub seed: u64,
    /// Version string written into the artifact, e.g. `cfpb-product-v1`.
    pub model_version: String,
    /// Label scheme the labels belong to, e.g. `cfpb_product_group` or `cn_category`
    /// (see the taxonomy's `[[map]]` tables).
    pub label_scheme: String,
    /// Creation time (Unix seconds) to record; `None` = now.
    pub created_at: Option<u64>,
    /// NBSVM (Wang & Manning 2012): before fitting class `c`'s SVM, scale every feature by
    /// its naive-Bayes log-count ratio for `c` vs the rest, computed on binarised features with
    /// this smoothing `α`. `0` turns NB scaling off (a plain SVM). The ratio is folded into the
    /// stored weights, so prediction costs nothing extra.
    pub nb_alpha: f32,
    /// NBSVM interpolation `β`: final weights `(1 − β)·mean|w| + β·w` (1 = pure SVM weights).
    pub nb_beta: f32,
    /// Clip each NB log-count ratio to `[-nb_clip, nb_clip]` (0 = no clipping).
    pub nb_clip: f32,
    /// Fit two models on separate views — the word block alone and the character block
    /// alone — and add their margins (`view_mix · word + (1 − view_mix) · char`), instead of
    /// one model over both blocks. The sum is still one linear model, so prediction costs
    /// nothing extra.
    pub separate_views: bool,
    /// Weight of the word view when `separate_views`; outside `(0, 1)` (e.g. `-1`) it is
    /// chosen on the out-of-fold calibration margins (macro-F1 after offsets).
    pub view_mix: f32,
    /// Interpolate a complement naive Bayes model (fitted on the same tf-idf rows) into the
    /// SVM: margins `svm + cnb_mix · s · cnb`, where `s` matches the spread of the CNB margins
    /// to the SVM's on the out-of-fold calibration margins. `0` = off; negative = choose
    /// `cnb_mix` on the out-of-fold margins. Needs `calibrate`. Still one linear model.
    pub cnb_mix: f32,
    /// Additive smoothing of the complement naive Bayes model.
    pub cnb_alpha: f32,
    /// Use the hinge loss (L1-loss SVM, LIBLINEAR `-s 3`) instead of the squared hinge.
    pub hinge_loss: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            features: FeatureConfig::default(),
            c: 0.5,
            class_weight_power: 0.5,
            max_epochs: 60,
            tolerance: 0.05,
            min_df: 2,
            max_features: 400_000,
            calibrate: true,
            calibration_folds: 5,
            tune_offsets: true,
            seed: 20_240_601,
            model_version: "unversioned".into(),
            label_scheme: "labels".into(),
            created_at: None,
            nb_alpha: 0.0,
            nb_beta: 1.0,
            nb_clip: 0.0,
            separate_views: false,
            view_mix: -1.0,
            cnb_mix: 0.0,
            cnb_alpha: 0.1,
            hinge_loss: false,
        }
    }
}

impl TrainOptions {
    /// Defaults for English (word 1–2-grams plus character 2–5-grams inside words, head
    /// features from the first 60 words, features in at least 3 documents, NBSVM scaling
    /// with `α = 1`, `C = 0.05`; chosen on a validation slice and 5-fold CV inside the CFPB
    /// 80 %).
    pub fn english() -> Self {
        TrainOptions {
            features: FeatureConfig {
                word_ngram_max: 2,
                cjk_char_ngrams: (1, 3),
                latin_char_ngrams: (2, 5),
                char_block_weight: 1.0,
                jieba_hmm: false,
                mark_tokens: false,
                head_words: 60,
            },
            min_df: 3,
            c: 0.05,
            nb_alpha: 1.0,
            ..TrainOptions::default()
        }
    }

    /// Defaults for the English cause model (CFPB `issue` labels mapped to taxonomy causes;
    /// ~3,800 short-labelled rows): the English features, plain SVM, `C = 0.1`, balanced class
    /// weights — chosen by 5-fold cross-validation inside the training 80 % (NBSVM scaling did
    /// not help here). Same features as [`TrainOptions::english`], so a category and a cause
    /// model featurise a complaint once between them.
    pub fn english_cause() -> Self {
        TrainOptions {
            c: 0.1,
            class_weight_power: 1.0,
            nb_alpha: 0.0,
            label_scheme: "taxonomy_cause".into(),
            ..TrainOptions::english()
        }
    }

    /// Defaults for Chinese (jieba words 1–2-grams plus Han character 1–4-grams, head features
    /// from the first 20 words; chosen by repeated 5-fold CV inside the training 80 %).
    pub fn chinese() -> Self {
        TrainOptions {
            features: FeatureConfig {
                word_ngram_max: 2,
                cjk_char_ngrams: (1, 4),
                latin_char_ngrams: (0, 0),
                char_block_weight: 1.0,
                jieba_hmm: false,
                mark_tokens: false,
                head_words: 20,
            },
            c: 0.2,
            class_weight_power: 1.0,
            ..TrainOptions::default()
        }
    }
}

/// Stage of training, reported through the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Tokenising and counting features (`done`/`total` = documents).
    Featurizing,
    /// Fitting the calibration model (`done`/`total` = classes).
    Calibrating,
    /// Fitting the final model (`done`/`total` = classes).
    Fitting,
    /// Finished.
    Done,
}

/// A progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What is happening.
    pub stage: Stage,
    /// Units done in this stage.
    pub done: u64,
    /// Units in this stage.
    pub total: u64,
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
    /// Its calibrated probability.
    pub confidence: f32,
    /// Every label with its probability, most likely first.
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
}

impl std::fmt::Debug for PreHashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreHashed")
    }
}

/// Sparse row: (feature index, value).
type Row = Vec<(u32, f32)>;

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Stable 64-bit hash of a string with a seed (FNV-1a + SplitMix finaliser); the basis of
/// every deterministic split in this crate.
pub fn stable_hash(text: &str, seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for &b in text.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    SplitMix(h).next()
}

/// Sequence of tf-idf block vectors for a document's sorted counts.
fn vectorize(
    counts: &[Vec<(u32, f32)>; 2],
    lookup: impl Fn(u32) -> Option<u32>,
    idf: &[f32],
    block_weights: [f32; 2],
) -> Row {
    let mut row: Row = Vec::with_capacity(counts[0].len() + counts[1].len());
    for (b, block) in counts.iter().enumerate() {
        let start = row.len();
        row.extend(block.iter().filter_map(|&(h, c)| lookup(h).map(|j| (j, c))));
        tf_idf(&mut row[start..], idf, block_weights[b]);
    }
    row
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

/// Train one binary squared-hinge SVM by dual coordinate descent. `y` is ±1, `cost` is the
/// per-sample C. Returns (weights, bias).
#[allow(clippy::too_many_arguments)]
fn train_binary(
    rows: &[&[(u32, f32)]],
    sq_norms: &[f32],
    scale: Option<&[f32]>,
    dim: usize,
    y: &[f32],
    cost: &[f32],
    opts: &TrainOptions,
    rng: &mut SplitMix,
) -> (Vec<f32>, f32) {
    let n = rows.len();
    let mut w = vec![0f32; dim];
    let mut b = 0f32;
    let mut alpha = vec![0f32; n];
    // Squared hinge (L2 loss): no upper bound, diagonal 1/(2C). Hinge (L1 loss): bound C.
    let l1 = opts.hinge_loss;
    let diag: Vec<f32> = if l1 {
        vec![0.0; n]
    } else {
        cost.iter().map(|c| 0.5 / c.max(1e-12)).collect()
    };
    let upper: Vec<f32> = if l1 {
        cost.iter().map(|c| c.max(1e-12)).collect()
    } else {
        vec![f32::INFINITY; n]
    };
    let qd: Vec<f32> = (0..n).map(|i| sq_norms[i] + 1.0 + diag[i]).collect();
    let mut order: Vec<usize> = (0..n).collect();
    for _epoch in 0..opts.max_epochs.max(1) {
        for i in (1..n).rev() {
            let j = rng.below(i + 1);
            order.swap(i, j);
        }
        let mut max_pg = f32::NEG_INFINITY;
        let mut min_pg = f32::INFINITY;
        for &i in &order {
            let row = rows[i];
            let mut dot = b;
            match scale {
                Some(s) => {
                    for &(j, v) in row.iter() {
                        dot += w[j as usize] * v * s[j as usize];
                    }
                }
                None => {
                    for &(j, v) in row {
                        dot += w[j as usize] * v;
                    }
                }
            }
            let g = y[i] * dot - 1.0 + alpha[i] * diag[i];
            let pg = if alpha[i] == 0.0 {
                g.min(0.0)
            } else if alpha[i] >= upper[i] {
                g.max(0.0)
            } else {
                g
            };
            max_pg = max_pg.max(pg);
            min_pg = min_pg.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).clamp(0.0, upper[i]);
                let d = (alpha[i] - old) * y[i];
                if d != 0.0 {
                    match scale {
                        Some(s) => {
                            for &(j, v) in row {
                                w[j as usize] += d * v * s[j as usize];
                            }
                        }
                        None => {
                            for &(j, v) in row {
                                w[j as usize] += d * v;
                            }
                        }
                    }
                    b += d;
                }
            }
        }
        if max_pg - min_pg < opts.tolerance {
            break;
        }
    }
    (w, b)
}

/// Fit OvR weights; returns feature-major weights and biases.
fn fit_ovr(
    rows: &[&[(u32, f32)]],
    labels: &[usize],
    k: usize,
    dim: usize,
    opts: &TrainOptions,
    stage: Stage,
    progress: &mut dyn FnMut(Progress),
) -> (Vec<f32>, Vec<f32>) {
    let n = rows.len();
    let mut class_n = vec![0usize; k];
    for &l in labels {
        class_n[l] += 1;
    }
    let power = if opts.class_weight_power.is_finite() {
        opts.class_weight_power
    } else {
        0.0
    };
    let class_w: Vec<f32> = class_n
        .iter()
        .map(|&c| {
            if c == 0 {
                1.0
            } else {
                ((n as f32) / (k as f32 * c as f32)).powf(power)
            }
        })
        .collect();
    let cost: Vec<f32> = labels
        .iter()
        .map(|&l| opts.c.max(1e-6) * class_w[l])
        .collect();
    let sq_norms: Vec<f32> = rows
        .iter()
        .map(|r| r.iter().map(|e| e.1 * e.1).sum())
        .collect();
    let nb = opts.nb_alpha.is_finite() && opts.nb_alpha > 0.0;
    // Binarised document frequency of every feature per class (for NB log-count ratios).
    let class_df: Vec<Vec<f32>> = if nb {
        let mut df = vec![vec![0f32; dim]; k];
        for (row, &l) in rows.iter().zip(labels) {
            for &(j, v) in row.iter() {
                if v != 0.0 {
                    df[l][j as usize] += 1.0;
                }
            }
        }
        df
    } else {
        Vec::new()
    };
    let mut weights = vec![0f32; dim * k];
    let mut bias = vec![0f32; k];
    progress(Progress {
        stage,
        done: 0,
        total: k as u64,
    });
    for c in 0..k {
        let y: Vec<f32> = labels
            .iter()
            .map(|&l| if l == c { 1.0 } else { -1.0 })
            .collect();
        let mut rng = SplitMix(opts.seed ^ (c as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let ratio = nb.then(|| nb_ratio(&class_df, c, opts.nb_alpha, opts.nb_clip));
        let (mut w, b) = match &ratio {
            Some(r) => {
                let sq: Vec<f32> = rows
                    .iter()
                    .map(|row| {
                        row.iter()
                            .map(|&(j, v)| {
                                let x = v * r[j as usize];
                                x * x
                            })
                            .sum()
                    })
                    .collect();
                train_binary(rows, &sq, Some(r), dim, &y, &cost, opts, &mut rng)
            }
            None => train_binary(rows, &sq_norms, None, dim, &y, &cost, opts, &mut rng),
        };
        if let Some(r) = &ratio {
            let beta = if opts.nb_beta.is_finite() {
                opts.nb_beta.clamp(0.0, 1.0)
            } else {
                1.0
            };
            let mean_abs = w.iter().map(|x| x.abs()).sum::<f32>() / dim.max(1) as f32;
            for (wf, rf) in w.iter_mut().zip(r) {
                *wf = ((1.0 - beta) * mean_abs + beta * *wf) * rf;
            }
        }
        for (f, wf) in w.iter().enumerate() {
            weights[f * k + c] = *wf;
        }
        bias[c] = b;
        progress(Progress {
            stage,
            done: c as u64 + 1,
            total: k as u64,
        });
    }
    (weights, bias)
}

/// Complement naive Bayes over tf-idf rows: `w[f·k + c] = −ln θ̃_cf`, centred over classes
/// (the centring does not change the argmax), with zero biases (priors are left to the
/// calibration offsets).
fn fit_cnb(
    rows: &[&[(u32, f32)]],
    labels: &[usize],
    k: usize,
    dim: usize,
    alpha: f32,
) -> (Vec<f32>, Vec<f32>) {
    let alpha = if alpha.is_finite() && alpha > 0.0 {
        alpha
    } else {
        0.1
    };
    let mut sums = vec![0f64; dim * k];
    for (row, &l) in rows.iter().zip(labels) {
        for &(j, v) in row.iter() {
            if let Some(s) = sums.get_mut(j as usize * k + l) {
                *s += f64::from(v);
            }
        }
    }
    let mut class_total = vec![0f64; k];
    for (i, s) in sums.iter().enumerate() {
        class_total[i % k] += s;
    }
    let all: f64 = class_total.iter().sum();
    let a = f64::from(alpha);
    let mut w = vec![0f32; dim * k];
    let mut out = vec![0f64; k];
    for f in 0..dim {
        let fs = &sums[f * k..f * k + k];
        let ft: f64 = fs.iter().sum();
        let mut mean = 0f64;
        for c in 0..k {
            let comp = ft - fs[c];
            let comp_total = all - class_total[c];
            let theta = (a + comp) / (a * dim as f64 + comp_total);
            out[c] = -theta.ln();
            mean += out[c];
        }
        mean /= k as f64;
        for c in 0..k {
            w[f * k + c] = (out[c] - mean) as f32;
        }
    }
    (w, vec![0.0; k])
}

/// Naive-Bayes log-count ratio of every feature for class `c` against the rest, from
/// per-class binarised document frequencies, smoothed by `alpha`, optionally clipped.
fn nb_ratio(class_df: &[Vec<f32>], c: usize, alpha: f32, clip: f32) -> Vec<f32> {
    let dim = class_df.first().map_or(0, Vec::len);
    let mut p = vec![alpha; dim];
    let mut q = vec![alpha; dim];
    for (l, df) in class_df.iter().enumerate() {
        let target = if l == c { &mut p } else { &mut q };
        for (t, d) in target.iter_mut().zip(df) {
            *t += d;
        }
    }
    let ps: f32 = p.iter().sum();
    let qs: f32 = q.iter().sum();
    let clip = if clip.is_finite() && clip > 0.0 {
        clip
    } else {
        f32::INFINITY
    };
    p.iter()
        .zip(&q)
        .map(|(a, b)| ((a / ps) / (b / qs)).ln().clamp(-clip, clip))
        .collect()
}

/// Per-class margins of a row: `bias + scale × (row · weights)`, for the quantised weights of
/// a [`Model`] or (with unit scales) the float weights of training.
fn margins<W: Copy + Into<f32>>(
    row: &[(u32, f32)],
    weights: &[W],
    scales: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    let k = bias.len();
    let mut s = vec![0.0f32; k];
    for &(j, v) in row {
        let base = j as usize * k;
        if let Some(ws) = weights.get(base..base + k) {
            for (sc, &w) in s.iter_mut().zip(ws) {
                *sc += v * w.into();
            }
        }
    }
    for ((m, scale), b) in s.iter_mut().zip(scales).zip(bias) {
        *m = *m * scale + b;
    }
    s
}

fn softmax(margins: &[f32], temperature: f32) -> Vec<f32> {
    let max = margins.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = margins
        .iter()
        .map(|m| ((m - max) * temperature).exp())
        .collect();
    let sum: f32 = exps.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        exps.iter().map(|e| e / sum).collect()
    } else {
        vec![1.0 / margins.len().max(1) as f32; margins.len()]
    }
}

fn macro_f1_of(scored: &[(Vec<f32>, usize)], offsets: &[f32], k: usize) -> f64 {
    let mut tp = vec![0usize; k];
    let mut pred = vec![0usize; k];
    let mut truth = vec![0usize; k];
    for (m, y) in scored {
        let mut best = 0;
        let mut best_v = f32::NEG_INFINITY;
        for (c, (v, o)) in m.iter().zip(offsets).enumerate() {
            if v + o > best_v {
                best_v = v + o;
                best = c;
            }
        }
        pred[best] += 1;
        truth[*y] += 1;
        tp[*y] += usize::from(best == *y);
    }
    let mut sum = 0f64;
    let mut classes = 0usize;
    for c in 0..k {
        if truth[c] == 0 {
            continue;
        }
        classes += 1;
        let p = if pred[c] > 0 {
            tp[c] as f64 / pred[c] as f64
        } else {
            0.0
        };
        let r = tp[c] as f64 / truth[c] as f64;
        if p + r > 0.0 {
            sum += 2.0 * p * r / (p + r);
        }
    }
    if classes == 0 {
        0.0
    } else {
        sum / classes as f64
    }
}

/// Per-class margin offsets maximising macro-F1 on out-of-fold margins (coordinate ascent over
/// a small grid; a change must gain at least 0.0005 to be taken, so noise does not move them).
fn fit_offsets(scored: &[(Vec<f32>, usize)], k: usize) -> Vec<f32> {
    let mut offsets = vec![0f32; k];
    let mut best = macro_f1_of(scored, &offsets, k);
    for _round in 0..3 {
        let mut changed = false;
        for c in 0..k {
            let current = offsets[c];
            let mut best_here = (best, current);
            for step in -12i32..=12 {
                let cand = step as f32 * 0.05;
                offsets[c] = cand;
                let f = macro_f1_of(scored, &offsets, k);
                if f > best_here.0 + 0.0005 {
                    best_here = (f, cand);
                }
            }
            offsets[c] = best_here.1;
            if best_here.1 != current {
                changed = true;
                best = best_here.0;
            }
        }
        if !changed {
            break;
        }
    }
    offsets
}

/// Pick the temperature minimising log loss over (margins, true class).
fn fit_temperature(scored: &[(Vec<f32>, usize)]) -> f32 {
    if scored.is_empty() {
        return 1.0;
    }
    let mut best = (f64::INFINITY, 1.0f32);
    for step in 0..=80 {
        let t = 10f32.powf(-1.0 + step as f32 * 3.0 / 80.0); // 0.1 .. 100
        let mut loss = 0f64;
        for (m, y) in scored {
            let p = softmax(m, t);
            loss -= f64::from(p.get(*y).copied().unwrap_or(0.0).max(1e-7)).ln();
        }
        if loss < best.0 {
            best = (loss, t);
        }
    }
    best.1
}

fn quantize(weights: &[f32], k: usize) -> (Vec<i16>, Vec<f32>) {
    let mut scales = vec![0f32; k];
    for (i, w) in weights.iter().enumerate() {
        let c = i % k;
        scales[c] = scales[c].max(w.abs());
    }
    for s in &mut scales {
        *s = if *s > 0.0 { *s / 32767.0 } else { 1.0 };
    }
    let q = weights
        .iter()
        .enumerate()
        .map(|(i, w)| (w / scales[i % k]).round().clamp(-32767.0, 32767.0) as i16)
        .collect();
    (q, scales)
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
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Serialize, Deserialize)]
struct Payload {
    header: ModelHeader,
    n_docs: u32,
    hash_deltas: Vec<u32>,
    df: Vec<u32>,
    scales: Vec<f32>,
    weights: Vec<i16>,
    bias: Vec<f32>,
    temperature: f32,
}

/// Layout of format-version-1 artifacts (before the NBSVM options), read for compatibility.
mod legacy {
    use serde::Deserialize;

    use super::{FeatureConfig, ModelHeader, Payload, TrainOptions};

    /// Feature configuration before `mark_tokens` (format versions 1 and 2).
    #[derive(Deserialize)]
    pub(super) struct FeatureConfigV2 {
        word_ngram_max: u8,
        cjk_char_ngrams: (u8, u8),
        latin_char_ngrams: (u8, u8),
        char_block_weight: f32,
        jieba_hmm: bool,
    }

    impl From<FeatureConfigV2> for FeatureConfig {
        fn from(f: FeatureConfigV2) -> FeatureConfig {
            FeatureConfig {
                word_ngram_max: f.word_ngram_max,
                cjk_char_ngrams: f.cjk_char_ngrams,
                latin_char_ngrams: f.latin_char_ngrams,
                char_block_weight: f.char_block_weight,
                jieba_hmm: f.jieba_hmm,
                mark_tokens: false,
                head_words: 0,
            }
        }
    }

    /// Training options of format version 2 (NBSVM, no views).
    #[derive(Deserialize)]
    pub(super) struct TrainOptionsV2 {
        features: FeatureConfigV2,
        c: f32,
        class_weight_power: f32,
        max_epochs: usize,
        tolerance: f32,
        min_df: u32,
        max_features: usize,
        calibrate: bool,
        calibration_folds: usize,
        tune_offsets: bool,
        seed: u64,
        model_version: String,
        label_scheme: String,
        created_at: Option<u64>,
        nb_alpha: f32,
        nb_beta: f32,
        nb_clip: f32,
    }

    #[derive(Deserialize)]
    pub(super) struct HeaderV2 {
        format_version: u32,
        model_version: String,
        label_scheme: String,
        labels: Vec<String>,
        training_digest: String,
        training_examples: u64,
        created_at: u64,
        trainer: String,
        options: TrainOptionsV2,
    }

    #[derive(Deserialize)]
    pub(super) struct PayloadV2 {
        header: HeaderV2,
        n_docs: u32,
        hash_deltas: Vec<u32>,
        df: Vec<u32>,
        scales: Vec<f32>,
        weights: Vec<i16>,
        bias: Vec<f32>,
        temperature: f32,
    }

    impl From<PayloadV2> for Payload {
        fn from(p: PayloadV2) -> Payload {
            let h = p.header;
            let o = h.options;
            Payload {
                header: ModelHeader {
                    format_version: h.format_version,
                    model_version: h.model_version,
                    label_scheme: h.label_scheme,
                    labels: h.labels,
                    training_digest: h.training_digest,
                    training_examples: h.training_examples,
                    created_at: h.created_at,
                    trainer: h.trainer,
                    options: TrainOptions {
                        features: o.features.into(),
                        c: o.c,
                        class_weight_power: o.class_weight_power,
                        max_epochs: o.max_epochs,
                        tolerance: o.tolerance,
                        min_df: o.min_df,
                        max_features: o.max_features,
                        calibrate: o.calibrate,
                        calibration_folds: o.calibration_folds,
                        tune_offsets: o.tune_offsets,
                        seed: o.seed,
                        model_version: o.model_version,
                        label_scheme: o.label_scheme,
                        created_at: o.created_at,
                        nb_alpha: o.nb_alpha,
                        nb_beta: o.nb_beta,
                        nb_clip: o.nb_clip,
                        ..TrainOptions::default()
                    },
                },
                n_docs: p.n_docs,
                hash_deltas: p.hash_deltas,
                df: p.df,
                scales: p.scales,
                weights: p.weights,
                bias: p.bias,
                temperature: p.temperature,
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct TrainOptionsV1 {
        features: FeatureConfigV2,
        c: f32,
        class_weight_power: f32,
        max_epochs: usize,
        tolerance: f32,
        min_df: u32,
        max_features: usize,
        calibrate: bool,
        calibration_folds: usize,
        tune_offsets: bool,
        seed: u64,
        model_version: String,
        label_scheme: String,
        created_at: Option<u64>,
    }

    #[derive(Deserialize)]
    pub(super) struct HeaderV1 {
        format_version: u32,
        model_version: String,
        label_scheme: String,
        labels: Vec<String>,
        training_digest: String,
        training_examples: u64,
        created_at: u64,
        trainer: String,
        options: TrainOptionsV1,
    }

    #[derive(Deserialize)]
    pub(super) struct PayloadV1 {
        header: HeaderV1,
        n_docs: u32,
        hash_deltas: Vec<u32>,
        df: Vec<u32>,
        scales: Vec<f32>,
        weights: Vec<i16>,
        bias: Vec<f32>,
        temperature: f32,
    }

    impl From<PayloadV1> for Payload {
        fn from(p: PayloadV1) -> Payload {
            let h = p.header;
            let o = h.options;
            Payload {
                header: ModelHeader {
                    format_version: h.format_version,
                    model_version: h.model_version,
                    label_scheme: h.label_scheme,
                    labels: h.labels,
                    training_digest: h.training_digest,
                    training_examples: h.training_examples,
                    created_at: h.created_at,
                    trainer: h.trainer,
                    options: TrainOptions {
                        features: o.features.into(),
                        c: o.c,
                        class_weight_power: o.class_weight_power,
                        max_epochs: o.max_epochs,
                        tolerance: o.tolerance,
                        min_df: o.min_df,
                        max_features: o.max_features,
                        calibrate: o.calibrate,
                        calibration_folds: o.calibration_folds,
                        tune_offsets: o.tune_offsets,
                        seed: o.seed,
                        model_version: o.model_version,
                        label_scheme: o.label_scheme,
                        created_at: o.created_at,
                        ..TrainOptions::default()
                    },
                },
                n_docs: p.n_docs,
                hash_deltas: p.hash_deltas,
                df: p.df,
                scales: p.scales,
                weights: p.weights,
                bias: p.bias,
                temperature: p.temperature,
            }
        }
    }
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
    /// Train a model. `progress` is called as work advances (for a progress bar).
    pub fn train(
        examples: &[Example],
        options: &TrainOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<Model> {
        let set = FeaturizedSet::new(examples, &options.features, &mut progress);
        Model::train_featurized(&set, options, &mut progress)
    }

    /// Train from pre-featurised examples (saves tokenising again when trying several options).
    pub fn train_featurized(
        set: &FeaturizedSet,
        options: &TrainOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Model> {
        if set.features != options.features {
            return Err(Error::Training(
                "the featurised set was built with another feature configuration".into(),
            ));
        }
        if set.is_empty() {
            return Err(Error::Training("no training examples".into()));
        }
        if !(options.c.is_finite() && options.c > 0.0) {
            return Err(Error::Training(format!(
                "C must be a positive number, got {}",
                options.c
            )));
        }
        let mut label_names: Vec<String> = set.labels.clone();
        label_names.sort();
        label_names.dedup();
        if label_names.len() < 2 {
            return Err(Error::Training(format!(
                "need at least two distinct labels, found {}",
                label_names.len()
            )));
        }
        let k = label_names.len();
        let label_idx: HashMap<&str, usize> = label_names
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let labels: Vec<usize> = set
            .labels
            .iter()
            .map(|l| label_idx.get(l.as_str()).copied().unwrap_or(0))
            .collect();
        let n = set.len();

        // Vocabulary: document frequency per hash, pruned by min_df and max_features.
        let mut df: HashMap<u32, u32, PreHashed> = HashMap::with_hasher(PreHashed);
        for doc in &set.counts {
            for block in doc {
                for &(h, _) in block {
                    *df.entry(h).or_insert(0) += 1;
                }
            }
        }
        let mut vocab: Vec<(u32, u32)> = df
            .into_iter()
            .filter(|&(_, d)| d >= options.min_df.max(1))
            .collect();
        if vocab.len() > options.max_features.max(1) {
            vocab.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            vocab.truncate(options.max_features.max(1));
        }
        vocab.sort_unstable_by_key(|&(h, _)| h);
        if vocab.is_empty() {
            return Err(Error::Training(
                "no feature occurs in min_df training documents; lower min_df or add data".into(),
            ));
        }
        let hashes: Vec<u32> = vocab.iter().map(|v| v.0).collect();
        let dfs: Vec<u32> = vocab.iter().map(|v| v.1).collect();
        let mut model = Model::assemble(
            ModelHeader {
                format_version: FORMAT_VERSION,
                model_version: options.model_version.clone(),
                label_scheme: options.label_scheme.clone(),
                labels: label_names,
                training_digest: set.digest.clone(),
                training_examples: n as u64,
                created_at: options.created_at.unwrap_or_else(|| {
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0)
                }),
                trainer: format!("redress-classifier {}", env!("CARGO_PKG_VERSION")),
                options: options.clone(),
            },
            n as u32,
            hashes,
            dfs,
            (Vec::new(), vec![1.0; k]),
            vec![0.0; k],
            1.0,
        );
        let dim = model.hashes.len();
        let bw = block_weights(&options.features);
        let rows: Vec<Row> = set
            .counts
            .iter()
            .map(|c| vectorize(c, |h| model.index.get(&h).copied(), &model.idf, bw))
            .collect();

        // Views: one model over both blocks, or (separate_views) a word-only and a
        // character-only model whose margins are mixed.
        let word_lens: Vec<usize> = set
            .counts
            .iter()
            .zip(&rows)
            .map(|(c, r)| {
                c[0].iter()
                    .filter(|(h, _)| model.index.contains_key(h))
                    .count()
                    .min(r.len())
            })
            .collect();
        let two_views = options.separate_views
            && rows
                .iter()
                .zip(&word_lens)
                .any(|(r, &w)| w > 0 && w < r.len());
        let views: Vec<Vec<&[(u32, f32)]>> = if two_views {
            vec![
                rows.iter().zip(&word_lens).map(|(r, &w)| &r[..w]).collect(),
                rows.iter().zip(&word_lens).map(|(r, &w)| &r[w..]).collect(),
            ]
        } else {
            vec![rows.iter().map(|r| r.as_slice()).collect()]
        };
        let fixed_mix =
            (options.view_mix.is_finite() && options.view_mix > 0.0 && options.view_mix < 1.0)
                .then_some(options.view_mix);
        let mut mix = fixed_mix.unwrap_or(0.5);

        // Calibration: out-of-fold margins from `calibration_folds`-fold cross-validation on
        // the training data give (1) per-class offsets added to the biases, chosen to maximise
        // macro-F1 (they undo the pull of big classes), (2) the softmax temperature and (3)
        // with two views and no fixed mix, the view mix.
        let mut offsets = vec![0f32; k];
        let use_cnb = options.cnb_mix.is_finite() && options.cnb_mix != 0.0;
        let mut cnb_scale = 0f32;
        let mut cnb_lambda = 0f32;
        if options.calibrate && n >= 40 {
            let folds = options.calibration_folds.clamp(2, 10);
            let ones = vec![1.0f32; k];
            let fold_of: Vec<usize> = (0..n)
                .map(|i| {
                    (stable_hash(&i.to_string(), options.seed ^ 0xCA1B) % folds as u64) as usize
                })
                .collect();
            let mut scored_views: Vec<Vec<(Vec<f32>, usize)>> =
                vec![Vec::with_capacity(n); views.len()];
            let mut scored_cnb: Vec<Vec<f32>> = Vec::new();
            for f in 0..folds {
                let fit_labels: Vec<usize> = (0..n)
                    .filter(|&i| fold_of[i] != f)
                    .map(|i| labels[i])
                    .collect();
                for (view, scored) in views.iter().zip(scored_views.iter_mut()) {
                    let fit_rows: Vec<&[(u32, f32)]> = (0..n)
                        .filter(|&i| fold_of[i] != f)
                        .map(|i| view[i])
                        .collect();
                    let mut quiet = |_: Progress| {};
                    let (w, b) = fit_ovr(
                        &fit_rows,
                        &fit_labels,
                        k,
                        dim,
                        options,
                        Stage::Calibrating,
                        &mut quiet,
                    );
                    for i in (0..n).filter(|&i| fold_of[i] == f) {
                        scored.push((margins(view[i], &w, &ones, &b), labels[i]));
                    }
                }
                if use_cnb {
                    let fit_rows: Vec<&[(u32, f32)]> = (0..n)
                        .filter(|&i| fold_of[i] != f)
                        .map(|i| rows[i].as_slice())
                        .collect();
                    let (w, b) = fit_cnb(&fit_rows, &fit_labels, k, dim, options.cnb_alpha);
                    for i in (0..n).filter(|&i| fold_of[i] == f) {
                        scored_cnb.push(margins(&rows[i], &w, &ones, &b));
                    }
                }
                progress(Progress {
                    stage: Stage::Calibrating,
                    done: f as u64 + 1,
                    total: folds as u64,
                });
            }
            let combine = |mix: f32| -> Vec<(Vec<f32>, usize)> {
                match scored_views.as_slice() {
                    [a, b] => a
                        .iter()
                        .zip(b)
                        .map(|((ma, y), (mb, _))| {
                            (
                                ma.iter()
                                    .zip(mb)
                                    .map(|(x, z)| mix * x + (1.0 - mix) * z)
                                    .collect(),
                                *y,
                            )
                        })
                        .collect(),
                    _ => scored_views.first().cloned().unwrap_or_default(),
                }
            };
            if two_views && fixed_mix.is_none() {
                let mut best = (f64::NEG_INFINITY, 0.5f32);
                for step in 2..=8 {
                    let m = step as f32 / 10.0;
                    let scored = combine(m);
                    let off = if options.tune_offsets {
                        fit_offsets(&scored, k)
                    } else {
                        vec![0.0; k]
                    };
                    let f1 = macro_f1_of(&scored, &off, k);
                    if f1 > best.0 + 1e-9 {
                        best = (f1, m);
                    }
                }
                mix = best.1;
            }
            let mut scored = combine(mix);
            if use_cnb && scored_cnb.len() == scored.len() {
                let spread = |ms: &mut dyn Iterator<Item = &Vec<f32>>| {
                    // Root-mean-square deviation of each margin from its row's mean.
                    let (mut s2, mut cnt) = (0f64, 0f64);
                    for m in ms {
                        let mean = m.iter().sum::<f32>() / m.len().max(1) as f32;
                        for x in m {
                            let d = f64::from(x - mean);
                            s2 += d * d;
                            cnt += 1.0;
                        }
                    }
                    (s2 / cnt.max(1.0)).sqrt()
                };
                let s_svm = spread(&mut scored.iter().map(|(m, _)| m));
                let s_cnb = spread(&mut scored_cnb.iter());
                cnb_scale = if s_cnb > 0.0 {
                    (s_svm / s_cnb) as f32
                } else {
                    0.0
                };
                let with = |lambda: f32| -> Vec<(Vec<f32>, usize)> {
                    scored
                        .iter()
                        .zip(&scored_cnb)
                        .map(|((m, y), c)| {
                            (
                                m.iter()
                                    .zip(c)
                                    .map(|(a, b)| a + lambda * cnb_scale * b)
                                    .collect(),
                                *y,
                            )
                        })
                        .collect()
                };
                if options.cnb_mix > 0.0 {
                    cnb_lambda = options.cnb_mix;
                } else {
                    let mut best = (f64::NEG_INFINITY, 0f32);
                    for lambda in [0.0f32, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5] {
                        let cand = with(lambda);
                        let off = if options.tune_offsets {
                            fit_offsets(&cand, k)
                        } else {
                            vec![0.0; k]
                        };
                        let f1 = macro_f1_of(&cand, &off, k);
                        if f1 > best.0 + 1e-9 {
                            best = (f1, lambda);
                        }
                    }
                    cnb_lambda = best.1;
                }
                scored = with(cnb_lambda);
            }
            if options.tune_offsets {
                offsets = fit_offsets(&scored, k);
                for (m, _) in &mut scored {
                    for (x, o) in m.iter_mut().zip(&offsets) {
                        *x += o;
                    }
                }
            }
            model.temperature = fit_temperature(&scored);
        }
        let mut w = vec![0f32; dim * k];
        let mut b = vec![0f32; k];
        let nv = views.len();
        for (v, view) in views.iter().enumerate() {
            let share = if nv == 2 {
                if v == 0 { mix } else { 1.0 - mix }
            } else {
                1.0
            };
            let (wv, bv) = fit_ovr(view, &labels, k, dim, options, Stage::Fitting, progress);
            for (x, y) in w.iter_mut().zip(&wv) {
                *x += share * y;
            }
            for (x, y) in b.iter_mut().zip(&bv) {
                *x += share * y;
            }
        }
        if two_views {
            model.header.options.view_mix = mix;
        }
        if use_cnb && cnb_lambda * cnb_scale != 0.0 {
            let all_rows: Vec<&[(u32, f32)]> = rows.iter().map(|r| r.as_slice()).collect();
            let (wc, _) = fit_cnb(&all_rows, &labels, k, dim, options.cnb_alpha);
            let factor = cnb_lambda * cnb_scale;
            for (x, y) in w.iter_mut().zip(&wc) {
                *x += factor * y;
            }
        }
        if use_cnb {
            model.header.options.cnb_mix = cnb_lambda;
        }
        (model.weights, model.scales) = quantize(&w, k);
        model.bias = b.iter().zip(&offsets).map(|(b, o)| b + o).collect();
        progress(Progress {
            stage: Stage::Done,
            done: 1,
            total: 1,
        });
        Ok(model)
    }

    #[allow(clippy::too_many_arguments)]
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

    /// Normalise and count a text's features once. The result serves this model and every
    /// other model whose feature configuration it covers (see [`Model::predict_featurized`]).
    pub fn featurize(&self, text: &str) -> Featurized {
        let normalized = tokenize::normalize(text);
        let hashes = features::hashes(&normalized, &self.header.options.features);
        Featurized {
            normalized,
            config: self.header.options.features.clone(),
            hashes,
        }
    }

    /// The document's feature row and, for each of its leading word features, the position of
    /// its first occurrence in the word block (to name it). Repeats are counted in a dense per-thread table indexed by feature (no sort, no second
    /// hash map): prediction spends most of its time here.
    fn row(&self, blocks: &[Vec<(u32, u32)>; 2]) -> (Row, Vec<u32>) {
        thread_local! {
            /// Per feature index: 1 + its position in the row being built; all zero between
            /// calls.
            static SLOTS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
        }
        let weights = block_weights(&self.header.options.features);
        SLOTS.with_borrow_mut(|slots| {
            if slots.len() < self.hashes.len() {
                slots.resize(self.hashes.len(), 0);
            }
            let mut row: Row = Vec::with_capacity(blocks[0].len() + blocks[1].len());
            let mut origins = Vec::new();
            for (b, block) in blocks.iter().enumerate() {
                let start = row.len();
                for (at, &(h, n)) in block.iter().enumerate() {
                    let Some(&j) = self.index.get(&h) else {
                        continue;
                    };
                    let Some(slot) = slots.get_mut(j as usize) else {
                        continue;
                    };
                    match (*slot as usize)
                        .checked_sub(1)
                        .and_then(|at| row.get_mut(at))
                    {
                        Some(entry) => entry.1 += n as f32,
                        None => {
                            row.push((j, n as f32));
                            *slot = row.len() as u32;
                            if b == Block::Word as usize {
                                origins.push(at as u32);
                            }
                        }
                    }
                }
                tf_idf(&mut row[start..], &self.idf, weights[b]);
            }
            for &(j, _) in &row {
                if let Some(slot) = slots.get_mut(j as usize) {
                    *slot = 0;
                }
            }
            (row, origins)
        })
    }

    /// Classify a text, explaining the decision with up to 5 features.
    pub fn predict(&self, text: &str) -> Prediction {
        self.predict_explained(text, 5)
    }

    /// Classify a text, explaining the decision with up to `explain` features (0 = none, fastest).
    pub fn predict_explained(&self, text: &str, explain: usize) -> Prediction {
        self.predict_featurized(&self.featurize(text), explain)
    }

    /// Classify a text featurised by this or another model ([`Model::featurize`]): two models
    /// over the same text (category and cause) then tokenise and hash it once. Falls back to
    /// featurising again when `featurized` was built for features this model does not use.
    pub fn predict_featurized(&self, featurized: &Featurized, explain: usize) -> Prediction {
        let own;
        let featurized = if featurized.config.covers(&self.header.options.features) {
            featurized
        } else {
            own = self.featurize(&featurized.normalized);
            &own
        };
        let (row, origins) = self.row(&featurized.hashes.blocks);
        let m = margins(&row, &self.weights, &self.scales, &self.bias);
        let p = softmax(&m, self.temperature);
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        let best = order.first().copied().unwrap_or(0);
        let top_features = if explain > 0 {
            self.explain(featurized, &row, &origins, best, explain)
        } else {
            Vec::new()
        };
        Prediction {
            label: self.header.labels.get(best).cloned().unwrap_or_default(),
            confidence: p.get(best).copied().unwrap_or(0.0),
            scores: order
                .iter()
                .map(|&i| (self.header.labels.get(i).cloned().unwrap_or_default(), p[i]))
                .collect(),
            top_features,
        }
    }

    /// The `explain` features that pushed most towards class `best`. Word features are
    /// preferred (readable, and named from the spans kept while featurising); every feature
    /// is searched only when no word feature helped.
    fn explain(
        &self,
        featurized: &Featurized,
        row: &[(u32, f32)],
        origins: &[u32],
        best: usize,
        explain: usize,
    ) -> Vec<Contribution> {
        let k = self.bias.len();
        let scale = self.scales.get(best).copied().unwrap_or(0.0);
        let weight = |j: u32| {
            let q = self
                .weights
                .get(j as usize * k + best)
                .copied()
                .unwrap_or(0);
            f32::from(q) * scale
        };
        let pushes = |r: &[(u32, f32)]| -> Vec<(usize, f32)> {
            r.iter()
                .enumerate()
                .map(|(e, &(j, v))| (e, v * weight(j)))
                .filter(|&(_, c)| c > 0.0)
                .collect()
        };
        let mut contrib = pushes(&row[..origins.len()]);
        let words_only = !contrib.is_empty();
        if !words_only {
            contrib = pushes(row);
        }
        // Only the largest `explain` are named: select them, then order those few.
        let larger = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if contrib.len() > explain {
            contrib.select_nth_unstable_by(explain, larger);
            contrib.truncate(explain);
        }
        contrib.sort_by(larger);
        let hashes = &featurized.hashes;
        let mut names: Vec<Option<String>> = if words_only {
            let words = hashes.words();
            contrib
                .iter()
                .map(|&(e, _)| {
                    let origin = origins.get(e).copied().unwrap_or(u32::MAX) as usize;
                    hashes.word_spans.get(origin).map(|s| s.render(&words))
                })
                .collect()
        } else {
            vec![None; contrib.len()]
        };
        if !words_only {
            // Rare: name character features by extracting again.
            let wanted: Vec<Option<u32>> = contrib
                .iter()
                .map(|&(e, _)| {
                    row.get(e)
                        .and_then(|&(j, _)| self.hashes.get(j as usize).copied())
                })
                .collect();
            let cfg = &self.header.options.features;
            features::extract(&featurized.normalized, cfg, &mut |_, h, _, render| {
                if let Some(i) = wanted.iter().position(|&w| w == Some(h))
                    && names[i].is_none()
                {
                    names[i] = Some(render());
                }
            });
        }
        names
            .into_iter()
            .zip(&contrib)
            .filter_map(|(name, &(_, weight))| name.map(|feature| Contribution { feature, weight }))
            .collect()
    }

    /// Serialise to the versioned binary artifact.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut prev = 0u32;
        let hash_deltas = self
            .hashes
            .iter()
            .map(|&h| {
                let d = h.wrapping_sub(prev);
                prev = h;
                d
            })
            .collect();
        let payload = Payload {
            header: self.header.clone(),
            n_docs: self.n_docs,
            hash_deltas,
            df: self.df.clone(),
            scales: self.scales.clone(),
            weights: self.weights.clone(),
            bias: self.bias.clone(),
            temperature: self.temperature,
        };
        let body = postcard::to_stdvec(&payload)
            .map_err(|e| Error::Artifact(format!("cannot encode: {e}")))?;
        let mut out = Vec::with_capacity(body.len() + 44);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&body));
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Read an artifact from memory (checks magic, format version and checksum).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        if bytes.len() < 44 || &bytes[..8] != MAGIC {
            return Err(Error::Artifact(
                "not a Redress model (bad magic or too short)".into(),
            ));
        }
        let mut v = [0u8; 4];
        v.copy_from_slice(&bytes[8..12]);
        let version = u32::from_le_bytes(v);
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(Error::Artifact(format!(
                "format version {version}, this build reads versions 1 to {FORMAT_VERSION}"
            )));
        }
        let body = &bytes[44..];
        if Sha256::digest(body)[..] != bytes[12..44] {
            return Err(Error::Artifact(
                "checksum mismatch (file corrupted or truncated)".into(),
            ));
        }
        let p: Payload = if version == 1 {
            postcard::from_bytes::<legacy::PayloadV1>(body)
                .map_err(|e| Error::Artifact(format!("cannot decode: {e}")))?
                .into()
        } else if version == 2 {
            postcard::from_bytes::<legacy::PayloadV2>(body)
                .map_err(|e| Error::Artifact(format!("cannot decode: {e}")))?
                .into()
        } else {
            postcard::from_bytes(body)
                .map_err(|e| Error::Artifact(format!("cannot decode: {e}")))?
        };
        let k = p.header.labels.len();
        let nf = p.hash_deltas.len();
        if k < 2
            || p.bias.len() != k
            || p.scales.len() != k
            || p.df.len() != nf
            || p.weights.len() != nf * k
        {
            return Err(Error::Artifact("inconsistent dimensions".into()));
        }
        let mut h = 0u32;
        let hashes = p
            .hash_deltas
            .iter()
            .map(|&d| {
                h = h.wrapping_add(d);
                h
            })
            .collect();
        Ok(Model::assemble(
            p.header,
            p.n_docs,
            hashes,
            p.df,
            (p.weights, p.scales),
            p.bias,
            p.temperature,
        ))
    }

    /// Write the artifact to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Load an artifact from `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Model::from_bytes(&bytes)
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
mod tests {
    use super::*;

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
        let mut rng = SplitMix(seed);
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

        let dir = std::env::temp_dir().join(format!("redress-model-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("m.bin");
        model.save(&path).expect("save");
        let loaded = Model::load(&path).expect("load");
        assert_eq!(loaded.header(), model.header());
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
    fn older_format_versions_still_load() {
        // The cause model shipped until `cfpb-cause-v2`, written in format version 2 (before
        // `mark_tokens`, head words and the ensemble options).
        let bytes: &[u8] = include_bytes!("../tests/fixtures/cfpb-cause-v1.format2.bin");
        assert_eq!(bytes.get(8..12), Some(&2u32.to_le_bytes()[..]));
        let model = Model::from_bytes(bytes).expect("format 2 loads");
        let o = &model.header().options;
        assert!(!o.features.mark_tokens && o.features.head_words == 0 && !o.separate_views);
        assert!(
            !model
                .predict("They keep calling me about a debt I do not owe")
                .label
                .is_empty()
        );
        // Re-saved, it becomes the current format and predicts the same.
        let again = Model::from_bytes(&model.to_bytes().expect("bytes")).expect("reload");
        let t = "My credit report shows an account that is not mine";
        assert_eq!(again.predict(t), model.predict(t));
        // Both shipped models are format 3, with the same features (featurised once).
        let product = Model::from_bytes(crate::classify::EMBEDDED_MODEL).expect("format 3 loads");
        let cause = Model::from_bytes(crate::classify::EMBEDDED_CAUSE_MODEL).expect("loads");
        assert_eq!(product.header().options.features.head_words, 60);
        assert_eq!(
            product.header().options.features,
            cause.header().options.features
        );
    }

    /// A payload that decodes but whose parts disagree is refused, even under a valid checksum.
    #[test]
    fn inconsistent_dimensions_are_refused() {
        let model =
            Model::train(&synthetic(30, 5), &TrainOptions::default(), |_| {}).expect("train");
        let bytes = model.to_bytes().expect("bytes");
        let good: Payload = postcard::from_bytes(&bytes[44..]).expect("decode");
        let sealed = |p: &Payload| {
            let body = postcard::to_stdvec(p).expect("encode");
            let mut out = bytes[..12].to_vec();
            out.extend_from_slice(&Sha256::digest(&body));
            out.extend_from_slice(&body);
            out
        };
        assert!(Model::from_bytes(&sealed(&good)).is_ok());
        let breakages: [fn(&mut Payload); 5] = [
            |p| p.header.labels.truncate(1),
            |p| p.bias.truncate(p.bias.len() - 1),
            |p| p.scales.truncate(p.scales.len() - 1),
            |p| p.df.truncate(p.df.len() - 1),
            |p| p.weights.truncate(p.weights.len() - 1),
        ];
        for (i, broken) in breakages.iter().enumerate() {
            let mut p = good.clone();
            broken(&mut p);
            let refused = Model::from_bytes(&sealed(&p));
            assert!(
                matches!(&refused, Err(Error::Artifact(m)) if m.contains("dimensions")),
                "breakage {i}: {:?}",
                refused.map(|m| m.labels().to_vec())
            );
        }
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
