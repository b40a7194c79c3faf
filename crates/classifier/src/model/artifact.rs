//! The versioned binary artifact: `REDRESSM` magic, a little-endian format version, a SHA-256
//! of the payload, and a `postcard` payload holding the header (model version, label scheme,
//! labels, training-data digest, created-at, options), the vocabulary (sorted hashes,
//! delta-coded) with document frequencies, the weights quantised to `i16` with one scale per
//! class, the biases, the temperature and (format 4 on) the calibration.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::calibration::Calibration;
use super::{FORMAT_VERSION, Model, ModelHeader, legacy};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"REDRESSM";

/// Bytes before the payload: magic, format version, SHA-256.
const PREAMBLE: usize = 44;

/// The current payload layout.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Payload {
    pub(super) header: ModelHeader,
    pub(super) n_docs: u32,
    pub(super) hash_deltas: Vec<u32>,
    pub(super) df: Vec<u32>,
    pub(super) scales: Vec<f32>,
    pub(super) weights: Vec<i16>,
    pub(super) bias: Vec<f32>,
    pub(super) temperature: f32,
    pub(super) calibration: Option<Calibration>,
}

/// Quantise feature-major weights to `i16` with one scale per class (the largest magnitude
/// of the class maps to 32767).
pub(super) fn quantize(weights: &[f32], k: usize) -> (Vec<i16>, Vec<f32>) {
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

/// Refuse a payload whose parts disagree (possible under a valid checksum if the writer was
/// broken), so prediction never indexes out of range.
fn check_dimensions(p: &Payload) -> Result<()> {
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
    Ok(())
}

impl Model {
    /// Serialise to the versioned binary artifact (always the current format).
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
        let mut header = self.header.clone();
        header.format_version = FORMAT_VERSION;
        let payload = Payload {
            header,
            n_docs: self.n_docs,
            hash_deltas,
            df: self.df.clone(),
            scales: self.scales.clone(),
            weights: self.weights.clone(),
            bias: self.bias.clone(),
            temperature: self.temperature,
            calibration: self.calibration.clone(),
        };
        let body = postcard::to_stdvec(&payload)
            .map_err(|e| Error::Artifact(format!("cannot encode: {e}")))?;
        let mut out = Vec::with_capacity(body.len() + PREAMBLE);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&body));
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Read an artifact from memory (checks magic, format version and checksum). Formats 1
    /// to [`FORMAT_VERSION`] load; older ones have no stored calibration.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        if bytes.len() < PREAMBLE || &bytes[..8] != MAGIC {
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
        let body = &bytes[PREAMBLE..];
        if Sha256::digest(body)[..] != bytes[12..PREAMBLE] {
            return Err(Error::Artifact(
                "checksum mismatch (file corrupted or truncated)".into(),
            ));
        }
        let decoded = if version < FORMAT_VERSION {
            legacy::decode(version, body)
        } else {
            postcard::from_bytes::<Payload>(body)
        };
        let p = decoded.map_err(|e| Error::Artifact(format!("cannot decode: {e}")))?;
        check_dimensions(&p)?;
        let mut h = 0u32;
        let hashes = p
            .hash_deltas
            .iter()
            .map(|&d| {
                h = h.wrapping_add(d);
                h
            })
            .collect();
        let mut model = Model::assemble(
            p.header,
            p.n_docs,
            hashes,
            p.df,
            (p.weights, p.scales),
            p.bias,
            p.temperature,
        );
        model.calibration = p.calibration;
        Ok(model)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TrainOptions;
    use crate::model::tests::synthetic;

    /// A payload that decodes but whose parts disagree is refused, even under a valid checksum.
    #[test]
    fn inconsistent_dimensions_are_refused() {
        let model =
            Model::train(&synthetic(30, 5), &TrainOptions::default(), |_| {}).expect("train");
        let bytes = model.to_bytes().expect("bytes");
        let good: Payload = postcard::from_bytes(&bytes[PREAMBLE..]).expect("decode");
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
    fn older_format_versions_still_load() {
        // The cause model shipped until `cfpb-cause-v2`, written in format version 2 (before
        // `mark_tokens`, head words and the ensemble options).
        let bytes: &[u8] = include_bytes!("../../tests/fixtures/cfpb-cause-v1.format2.bin");
        assert_eq!(bytes.get(8..12), Some(&2u32.to_le_bytes()[..]));
        let model = Model::from_bytes(bytes).expect("format 2 loads");
        let o = &model.header().options;
        assert!(!o.features.mark_tokens && o.features.head_words == 0 && !o.separate_views);
        assert_eq!(o.calibration, crate::model::CalibrationMethod::None);
        assert!(model.calibration().is_none());
        assert!(
            !model
                .predict("They keep calling me about a debt I do not owe")
                .label
                .is_empty()
        );
        // Re-saved, it becomes the current format and predicts the same.
        let again = Model::from_bytes(&model.to_bytes().expect("bytes")).expect("reload");
        assert_eq!(again.header().format_version, FORMAT_VERSION);
        let t = "My credit report shows an account that is not mine";
        assert_eq!(again.predict(t), model.predict(t));

        // A small Chinese model written in format 3 (before the stored calibration): its
        // confidence is the softmax's, and it still predicts its classes.
        let bytes: &[u8] = include_bytes!("../../tests/fixtures/zh-cause.format3.bin");
        assert_eq!(bytes.get(8..12), Some(&3u32.to_le_bytes()[..]));
        let model = Model::from_bytes(bytes).expect("format 3 loads");
        assert_eq!(model.header().model_version, "fixture-zh-format3");
        assert!(model.calibration().is_none());
        let p = model.predict("催收电话一直打来");
        assert_eq!(p.label, "催收行为类");
        assert_eq!(p.confidence, p.raw_confidence);

        // Both shipped models are the current format, calibrated, with the same features
        // (featurised once).
        let product = Model::from_bytes(crate::classify::EMBEDDED_MODEL).expect("loads");
        let cause = Model::from_bytes(crate::classify::EMBEDDED_CAUSE_MODEL).expect("loads");
        for m in [&product, &cause] {
            assert_eq!(m.header().format_version, FORMAT_VERSION);
            assert!(m.calibration().is_some());
        }
        // The category model reached 90 % precision on its held-out folds; the cause model
        // (3,753 rows, 11 causes) did not with 95 % confidence, so it routes nothing alone.
        assert!(product.threshold_for(0.9).is_some());
        assert!(cause.threshold_for(0.9).is_none());
        assert_eq!(product.header().options.features.head_words, 60);
        assert_eq!(
            product.header().options.features,
            cause.header().options.features
        );
    }
}
