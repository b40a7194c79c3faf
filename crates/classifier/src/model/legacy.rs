//! Artifact layouts of earlier format versions, read for compatibility.
//!
//! postcard writes a struct as its fields in order with no framing, so a nested struct has
//! the same bytes as its fields written inline. Each version's options are therefore
//! declared as the previous version's parts plus what it added, and upgraded one step at a
//! time (1 → 2 → 3 → current): the field mapping is written once, in the last step.
//!
//! | format | added |
//! |---|---|
//! | 1 | — |
//! | 2 | NBSVM options (`nb_alpha`, `nb_beta`, `nb_clip`) |
//! | 3 | `FeatureConfig::{mark_tokens, head_words}`, the ensemble options |
//! | 4 | `TrainOptions::{calibration, target_precision}`, the stored [`Calibration`] |
//!
//! [`Calibration`]: super::calibration::Calibration

use serde::Deserialize;

use super::ModelHeader;
use super::artifact::Payload;
use super::options::{CalibrationMethod, DEFAULT_TARGET_PRECISION, TrainOptions};
use crate::features::FeatureConfig;

/// Feature configuration before `mark_tokens` and `head_words` (formats 1 and 2).
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

/// The options every format has, in their order after `features`.
#[derive(Deserialize)]
pub(super) struct CoreOptions {
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

/// NBSVM options (format 2 on).
#[derive(Deserialize)]
pub(super) struct NbOptions {
    nb_alpha: f32,
    nb_beta: f32,
    nb_clip: f32,
}

/// View-ensemble, complement-NB and loss options (format 3 on).
#[derive(Deserialize)]
pub(super) struct EnsembleOptions {
    separate_views: bool,
    view_mix: f32,
    cnb_mix: f32,
    cnb_alpha: f32,
    hinge_loss: bool,
}

#[derive(Deserialize)]
pub(super) struct OptionsV1 {
    features: FeatureConfigV2,
    core: CoreOptions,
}

#[derive(Deserialize)]
pub(super) struct OptionsV2 {
    features: FeatureConfigV2,
    core: CoreOptions,
    nb: NbOptions,
}

#[derive(Deserialize)]
pub(super) struct OptionsV3 {
    features: FeatureConfig,
    core: CoreOptions,
    nb: NbOptions,
    ensemble: EnsembleOptions,
}

impl From<OptionsV1> for OptionsV2 {
    fn from(o: OptionsV1) -> OptionsV2 {
        // Format 1 models were plain SVMs: NB scaling off.
        OptionsV2 {
            features: o.features,
            core: o.core,
            nb: NbOptions {
                nb_alpha: 0.0,
                nb_beta: 1.0,
                nb_clip: 0.0,
            },
        }
    }
}

impl From<OptionsV2> for OptionsV3 {
    fn from(o: OptionsV2) -> OptionsV3 {
        // Format 2 models had one view, no complement NB, the squared hinge.
        OptionsV3 {
            features: o.features.into(),
            core: o.core,
            nb: o.nb,
            ensemble: EnsembleOptions {
                separate_views: false,
                view_mix: -1.0,
                cnb_mix: 0.0,
                cnb_alpha: 0.1,
                hinge_loss: false,
            },
        }
    }
}

impl From<OptionsV1> for OptionsV3 {
    fn from(o: OptionsV1) -> OptionsV3 {
        OptionsV2::from(o).into()
    }
}

impl From<OptionsV3> for TrainOptions {
    fn from(o: OptionsV3) -> TrainOptions {
        let (c, nb, e) = (o.core, o.nb, o.ensemble);
        TrainOptions {
            features: o.features,
            c: c.c,
            class_weight_power: c.class_weight_power,
            max_epochs: c.max_epochs,
            tolerance: c.tolerance,
            min_df: c.min_df,
            max_features: c.max_features,
            calibrate: c.calibrate,
            calibration_folds: c.calibration_folds,
            tune_offsets: c.tune_offsets,
            seed: c.seed,
            model_version: c.model_version,
            label_scheme: c.label_scheme,
            created_at: c.created_at,
            nb_alpha: nb.nb_alpha,
            nb_beta: nb.nb_beta,
            nb_clip: nb.nb_clip,
            separate_views: e.separate_views,
            view_mix: e.view_mix,
            cnb_mix: e.cnb_mix,
            cnb_alpha: e.cnb_alpha,
            hinge_loss: e.hinge_loss,
            // Formats 1–3 stored a temperature only: their confidence is the softmax's.
            calibration: CalibrationMethod::None,
            target_precision: DEFAULT_TARGET_PRECISION,
        }
    }
}

/// Header of formats 1–3, generic over their options.
#[derive(Deserialize)]
pub(super) struct LegacyHeader<O> {
    format_version: u32,
    model_version: String,
    label_scheme: String,
    labels: Vec<String>,
    training_digest: String,
    training_examples: u64,
    created_at: u64,
    trainer: String,
    options: O,
}

/// Payload of formats 1–3: the current payload without the stored calibration.
#[derive(Deserialize)]
pub(super) struct LegacyPayload<O> {
    header: LegacyHeader<O>,
    n_docs: u32,
    hash_deltas: Vec<u32>,
    df: Vec<u32>,
    scales: Vec<f32>,
    weights: Vec<i16>,
    bias: Vec<f32>,
    temperature: f32,
}

impl<O: Into<OptionsV3>> From<LegacyPayload<O>> for Payload {
    fn from(p: LegacyPayload<O>) -> Payload {
        let h = p.header;
        let options: OptionsV3 = h.options.into();
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
                options: options.into(),
            },
            n_docs: p.n_docs,
            hash_deltas: p.hash_deltas,
            df: p.df,
            scales: p.scales,
            weights: p.weights,
            bias: p.bias,
            temperature: p.temperature,
            calibration: None,
        }
    }
}

/// Decode the payload of format `version` (1–3) and upgrade it to the current layout.
pub(super) fn decode(version: u32, body: &[u8]) -> Result<Payload, postcard::Error> {
    Ok(match version {
        1 => postcard::from_bytes::<LegacyPayload<OptionsV1>>(body)?.into(),
        2 => postcard::from_bytes::<LegacyPayload<OptionsV2>>(body)?.into(),
        _ => postcard::from_bytes::<LegacyPayload<OptionsV3>>(body)?.into(),
    })
}
