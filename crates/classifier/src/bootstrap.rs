//! A model from the deployment's own history: train on an export of an old system (or on the
//! specialists' overrides) with the same machinery as any model, and report what it would
//! have done — per-class figures, calibration, the threshold for the target precision and how
//! many complaints it would have auto-routed — from its out-of-fold predictions, so the
//! report needs no separate test set and never scores a complaint with a model that saw it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::{Report, Scored, ThresholdSource, model_threshold, report_from_scored};
use crate::model::{CalibrationMethod, Example, Model, Progress, TrainOptions};

/// What bootstrapping found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapReport {
    /// The new model's version.
    pub model_version: String,
    /// Its label scheme.
    pub label_scheme: String,
    /// Examples it was trained on.
    pub examples: usize,
    /// The calibration fitted (`None`: too few examples, or calibration off).
    pub calibration: Option<CalibrationMethod>,
    /// The precision asked for.
    pub target_precision: f32,
    /// The confidence threshold recorded for it (`None`: never reached on held-out folds).
    pub threshold: Option<f32>,
    /// Per-class figures, confusion, reliability and auto-routing of the out-of-fold
    /// predictions (`None` without calibration).
    pub out_of_fold: Option<Report>,
    /// What a reader must know (too few examples, unreachable target…).
    pub notes: Vec<String>,
}

/// Train a model from a labelled history and report on its out-of-fold predictions.
/// `options.target_precision` is the precision whose threshold is recorded.
pub fn bootstrap(
    examples: &[Example],
    options: &TrainOptions,
    progress: impl FnMut(Progress),
) -> Result<(Model, BootstrapReport)> {
    if !(options.target_precision > 0.0 && options.target_precision <= 1.0) {
        return Err(Error::Training(format!(
            "target precision must be in (0, 1], got {}",
            options.target_precision
        )));
    }
    let outcome = Model::train_with_outcome(examples, options, progress)?;
    let model = outcome.model;
    let target = options.target_precision;
    let mut notes = Vec::new();
    let out_of_fold = outcome.out_of_fold.map(|oof| {
        let name = |i: usize| oof.labels.get(i).cloned().unwrap_or_default();
        let scored: Vec<Scored> = oof
            .predictions
            .iter()
            .map(|p| Scored {
                truth: name(p.truth),
                predicted: name(p.predicted),
                confidence: p.confidence,
                raw_confidence: p.raw_confidence,
            })
            .collect();
        report_from_scored(&scored, model_threshold(&model, target), target)
    });
    match (&out_of_fold, model.calibration()) {
        (None, _) => notes.push(format!(
            "no out-of-fold report: calibration needs at least {} examples and `calibrate`",
            crate::model::training::MIN_CALIBRATION_EXAMPLES
        )),
        (Some(_), Some(c)) if c.threshold.is_none() => notes.push(format!(
            "no confidence reached precision {target:.2} on held-out folds: every decision of this model will wait for a specialist"
        )),
        _ => {}
    }
    let threshold = match model_threshold(&model, target) {
        (t, ThresholdSource::Artifact) => t,
        _ => None,
    };
    let report = BootstrapReport {
        model_version: model.header().model_version.clone(),
        label_scheme: model.header().label_scheme.clone(),
        examples: examples.len(),
        calibration: model.calibration().map(|c| c.method),
        target_precision: target,
        threshold,
        out_of_fold,
        notes,
    };
    Ok((model, report))
}

impl BootstrapReport {
    /// Plain-text rendering: a summary, then the out-of-fold report.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "model {} (scheme {}), trained on {} examples; calibration {:?}\n",
            self.model_version, self.label_scheme, self.examples, self.calibration
        );
        match (self.threshold, self.out_of_fold.as_ref().and_then(|r| r.routing.as_ref())) {
            (Some(t), Some(r)) => out.push_str(&format!(
                "target precision {:.2}: threshold {t:.4}; it would have auto-routed {} of {} complaints ({:.1} %) at precision {}\n",
                self.target_precision,
                r.auto_routed,
                self.examples,
                r.share * 100.0,
                r.precision.map_or("-".into(), |p| format!("{p:.4}"))
            )),
            _ => out.push_str(&format!(
                "target precision {:.2}: no threshold; nothing would be auto-routed\n",
                self.target_precision
            )),
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if let Some(r) = &self.out_of_fold {
            out.push_str("\nout-of-fold predictions (each complaint scored by a model that did not see it):\n");
            out.push_str(&r.to_table());
        }
        out
    }

    /// JSON rendering.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::Config(format!("cannot render report: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::synthetic;

    #[test]
    fn bootstrap_reports_what_it_would_have_routed() {
        let data = synthetic(100, 21);
        let options = TrainOptions {
            model_version: "history-v1".into(),
            label_scheme: "synthetic".into(),
            target_precision: 0.9,
            ..TrainOptions::english()
        };
        let (model, report) = bootstrap(&data, &options, |_| {}).expect("bootstrap");
        assert_eq!(report.examples, 300);
        assert_eq!(report.model_version, "history-v1");
        let oof = report.out_of_fold.as_ref().expect("out-of-fold report");
        assert_eq!(oof.examples, 300);
        assert_eq!(oof.per_class.len(), 3);
        let routing = oof.routing.as_ref().expect("routing");
        assert_eq!(report.threshold, model.threshold_for(0.9));
        assert!(routing.auto_routed > 0 && routing.precision.is_some_and(|p| p >= 0.85));
        assert!(oof.reliability.as_ref().is_some_and(|r| r.ece < 0.2));
        let table = report.to_table();
        assert!(table.contains("would have auto-routed") && table.contains("confusion matrix"));
        assert!(report.to_json().expect("json").contains("\"threshold\""));
    }

    #[test]
    fn too_little_history_is_said_not_hidden() {
        let data = synthetic(10, 3);
        let (_, report) = bootstrap(&data, &TrainOptions::english(), |_| {}).expect("trains");
        assert!(report.out_of_fold.is_none() && report.threshold.is_none());
        assert!(report.notes.iter().any(|n| n.contains("at least 40")));
        let bad = TrainOptions {
            target_precision: 1.5,
            ..TrainOptions::english()
        };
        assert!(bootstrap(&data, &bad, |_| {}).is_err());
    }
}
