//! Training settings ([`TrainOptions`] and its presets) and progress reporting.

use serde::{Deserialize, Serialize};

use crate::features::FeatureConfig;

/// Precision a confident decision is meant to reach unless told otherwise: the share of
/// auto-routed complaints a specialist would have labelled the same way.
pub const DEFAULT_TARGET_PRECISION: f32 = 0.9;

/// How a model's raw confidence (its softmax top probability) is mapped to a probability of
/// being right, fitted on out-of-fold predictions inside the training data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CalibrationMethod {
    /// Keep the softmax confidence (temperature only), record no operating curve.
    None,
    /// Isotonic regression (pool-adjacent-violators): monotone, no shape assumed; needs a
    /// few hundred held-out predictions per region of the score range.
    Isotonic,
    /// Platt scaling: a logistic curve on the logit of the raw confidence; two parameters,
    /// so it holds up on small histories where isotonic steps would overfit.
    Platt,
    /// Isotonic from [`AUTO_ISOTONIC_MIN`] out-of-fold predictions on, Platt below.
    Auto,
}

/// Out-of-fold predictions from which [`CalibrationMethod::Auto`] picks isotonic regression
/// (below, isotonic blocks get too small to be trusted; scikit-learn's guidance is the same
/// order of magnitude).
pub const AUTO_ISOTONIC_MIN: usize = 1_000;

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
    /// when `tune_offsets`, and the confidence map of `calibration`); costs
    /// `calibration_folds` extra fits.
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
    /// How the confidence is calibrated on the out-of-fold predictions (needs `calibrate`).
    pub calibration: CalibrationMethod,
    /// The precision whose confidence threshold is recorded in the artifact (the operating
    /// curve it is read from is stored too, so any other target can be asked for later).
    pub target_precision: f32,
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
            calibration: CalibrationMethod::Auto,
            target_precision: DEFAULT_TARGET_PRECISION,
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
