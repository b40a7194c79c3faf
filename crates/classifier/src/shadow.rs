//! Learning from specialists: a candidate model (e.g. retrained with the latest overrides) is
//! run in shadow next to the current one on recent labelled examples, and promoted only when
//! it is better by a stated criterion; the previous model is kept for rollback.
//!
//! **Criterion** ([`ShadowOptions`]). On the same examples, each model routes at its own
//! threshold for the target precision (from its artifact; the target itself for an
//! uncalibrated model). The candidate is promoted when all of these hold:
//! 1. there are at least `min_examples` examples (fewer prove nothing);
//! 2. it auto-routes at least `max(1, min_gain × examples)` more complaints *correctly* than
//!    the current model — what the team gains is fewer complaints waiting in triage;
//! 3. its auto-routed precision on these examples is at least the target precision, or at
//!    least the current model's (it keeps the promise that routing rests on);
//! 4. its accuracy (every example, routed or not — the label pre-filled for specialists) is not
//!    lower than the current model's by more than `max_accuracy_loss`.
//!
//! Overrides are a biased sample (complaints that went to review), so the absolute figures
//! describe hard cases; the comparison is fair because both models see the same examples.
//! Labels are compared as taxonomy codes when both sides map onto the taxonomy (so a
//! candidate trained on codes and a current model on `cn_category` labels compare).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::model_threshold;
use crate::model::{Example, Model};
use crate::taxonomy::{Dimension, Taxonomy};

/// The promotion criterion's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShadowOptions {
    /// The precision auto-routing must keep.
    pub target_precision: f32,
    /// Fewest labelled examples for any verdict but [`Verdict::InsufficientEvidence`].
    pub min_examples: usize,
    /// Required gain in correctly auto-routed complaints, as a share of the examples (at
    /// least one complaint).
    pub min_gain: f64,
    /// Largest accepted loss of accuracy.
    pub max_accuracy_loss: f64,
}

impl Default for ShadowOptions {
    fn default() -> Self {
        ShadowOptions {
            target_precision: crate::model::DEFAULT_TARGET_PRECISION,
            min_examples: 30,
            min_gain: 0.01,
            max_accuracy_loss: 0.0,
        }
    }
}

/// One model's figures on the shadow examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowScore {
    /// Model version.
    pub model_version: String,
    /// Share of examples whose predicted label is right.
    pub accuracy: f64,
    /// The confidence threshold used for the target precision (`None`: routes nothing).
    pub threshold: Option<f32>,
    /// Examples auto-routed.
    pub auto_routed: usize,
    /// Of those, right.
    pub auto_routed_correct: usize,
    /// `auto_routed_correct / auto_routed` (`None` when nothing was routed).
    pub auto_routed_precision: Option<f64>,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The candidate is better by the criterion: make it the active model.
    Promote,
    /// The candidate is not better: keep the current model.
    KeepCurrent,
    /// Too few examples to judge: keep the current model.
    InsufficientEvidence,
}

/// A shadow comparison, to record next to the models it compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The current model's figures.
    pub current: ShadowScore,
    /// The candidate's figures.
    pub candidate: ShadowScore,
    /// Examples compared.
    pub examples: usize,
    /// The verdict.
    pub verdict: Verdict,
    /// The criterion, with its parameters.
    pub criterion: String,
    /// Which conditions held or failed, in words.
    pub findings: Vec<String>,
}

/// Map a label onto a taxonomy code of `dim` through `scheme` (the label itself when it is
/// a code or maps nowhere).
fn code_of(taxonomy: &Taxonomy, scheme: &str, dim: Dimension, label: &str) -> String {
    taxonomy
        .resolve(scheme, label)
        .and_then(|m| match dim {
            Dimension::Category => m.category,
            Dimension::Cause => m.cause,
        })
        .unwrap_or_else(|| label.trim().to_string())
}

fn score(
    model: &Model,
    truths: &[String],
    examples: &[Example],
    taxonomy: &Taxonomy,
    dim: Dimension,
    target: f32,
) -> ShadowScore {
    let scheme = &model.header().label_scheme;
    let threshold = model_threshold(model, target).0;
    let (mut right, mut routed, mut routed_right) = (0usize, 0usize, 0usize);
    for (e, truth) in examples.iter().zip(truths) {
        let p = model.predict_explained(&e.text, 0);
        let ok = code_of(taxonomy, scheme, dim, &p.label) == *truth;
        right += usize::from(ok);
        if threshold.is_some_and(|t| p.confidence >= t) {
            routed += 1;
            routed_right += usize::from(ok);
        }
    }
    ShadowScore {
        model_version: model.header().model_version.clone(),
        accuracy: right as f64 / examples.len().max(1) as f64,
        threshold,
        auto_routed: routed,
        auto_routed_correct: routed_right,
        auto_routed_precision: (routed > 0).then(|| routed_right as f64 / routed as f64),
    }
}

/// Run both models in shadow on labelled examples (specialists' overrides) and say whether
/// to promote the candidate (see the module documentation for the criterion).
pub fn compare(
    current: &Model,
    candidate: &Model,
    examples: &[Example],
    taxonomy: &Taxonomy,
    dim: Dimension,
    options: &ShadowOptions,
) -> Result<Comparison> {
    if !(options.target_precision > 0.0 && options.target_precision <= 1.0) {
        return Err(Error::Config(format!(
            "target precision must be in (0, 1], got {}",
            options.target_precision
        )));
    }
    // The examples' labels, as codes, through whichever scheme knows them.
    let truths: Vec<String> = examples
        .iter()
        .map(|e| {
            let via_current = code_of(taxonomy, &current.header().label_scheme, dim, &e.label);
            if via_current != e.label.trim() {
                via_current
            } else {
                code_of(taxonomy, &candidate.header().label_scheme, dim, &e.label)
            }
        })
        .collect();
    let target = options.target_precision;
    let cur = score(current, &truths, examples, taxonomy, dim, target);
    let cand = score(candidate, &truths, examples, taxonomy, dim, target);
    Ok(decide(cur, cand, examples.len(), options))
}

impl ShadowScore {
    /// Figures from per-example outcomes `(right, auto_routed)`, for a comparison made
    /// elsewhere (e.g. whole classifiers, rules included, on the complaints themselves).
    pub fn tally(
        model_version: impl Into<String>,
        threshold: Option<f32>,
        outcomes: impl IntoIterator<Item = (bool, bool)>,
    ) -> ShadowScore {
        let (mut n, mut right, mut routed, mut routed_right) = (0usize, 0usize, 0usize, 0usize);
        for (ok, auto) in outcomes {
            n += 1;
            right += usize::from(ok);
            routed += usize::from(auto);
            routed_right += usize::from(ok && auto);
        }
        ShadowScore {
            model_version: model_version.into(),
            accuracy: right as f64 / n.max(1) as f64,
            threshold,
            auto_routed: routed,
            auto_routed_correct: routed_right,
            auto_routed_precision: (routed > 0).then(|| routed_right as f64 / routed as f64),
        }
    }
}

/// Apply the promotion criterion to two scores measured on the same `examples` examples.
pub fn decide(
    cur: ShadowScore,
    cand: ShadowScore,
    examples: usize,
    options: &ShadowOptions,
) -> Comparison {
    let target = options.target_precision;
    let (verdict, findings) = judge(&cur, &cand, examples, options);
    Comparison {
        criterion: format!(
            "promote when ≥ {} examples, the candidate auto-routes ≥ max(1, {:.1} % of examples) more complaints correctly at its threshold for precision {:.2}, its auto-routed precision is ≥ {:.2} or ≥ the current model's, and its accuracy is not lower by more than {:.3}",
            options.min_examples,
            options.min_gain * 100.0,
            target,
            target,
            options.max_accuracy_loss
        ),
        current: cur,
        candidate: cand,
        examples,
        verdict,
        findings,
    }
}

/// Apply the criterion.
fn judge(
    cur: &ShadowScore,
    cand: &ShadowScore,
    n: usize,
    o: &ShadowOptions,
) -> (Verdict, Vec<String>) {
    if n < o.min_examples {
        return (
            Verdict::InsufficientEvidence,
            vec![format!(
                "{n} examples, fewer than the {} required",
                o.min_examples
            )],
        );
    }
    let needed = ((o.min_gain * n as f64).ceil() as usize).max(1);
    let gain = cand.auto_routed_correct as i64 - cur.auto_routed_correct as i64;
    let precision_ok = match cand.auto_routed_precision {
        None => true,
        Some(p) => {
            p >= f64::from(o.target_precision) || cur.auto_routed_precision.is_some_and(|c| p >= c)
        }
    };
    let accuracy_ok = cand.accuracy + o.max_accuracy_loss >= cur.accuracy;
    let checks = [
        (
            gain >= needed as i64,
            format!(
                "correctly auto-routed: {} vs {} (gain {gain}, needed {needed})",
                cand.auto_routed_correct, cur.auto_routed_correct
            ),
        ),
        (
            precision_ok,
            format!(
                "auto-routed precision: {} vs {}",
                fmt(cand.auto_routed_precision),
                fmt(cur.auto_routed_precision)
            ),
        ),
        (
            accuracy_ok,
            format!("accuracy: {:.4} vs {:.4}", cand.accuracy, cur.accuracy),
        ),
    ];
    let findings = checks
        .iter()
        .map(|(ok, what)| format!("{} {what}", if *ok { "ok:" } else { "FAILED:" }))
        .collect();
    let verdict = if checks.iter().all(|c| c.0) {
        Verdict::Promote
    } else {
        Verdict::KeepCurrent
    };
    (verdict, findings)
}

fn fmt(p: Option<f64>) -> String {
    p.map_or("- (none routed)".into(), |p| format!("{p:.4}"))
}

/// The active model of one language and dimension, the models it replaced (for rollback),
/// and the comparisons that decided each change.
#[derive(Debug, Clone)]
pub struct Deployment {
    active: Model,
    previous: Vec<Model>,
    history: Vec<Comparison>,
}

impl Deployment {
    /// Start with `model` active.
    pub fn new(model: Model) -> Deployment {
        Deployment {
            active: model,
            previous: Vec::new(),
            history: Vec::new(),
        }
    }

    /// The model in use.
    pub fn active(&self) -> &Model {
        &self.active
    }

    /// The model the active one replaced, if any (what [`Deployment::rollback`] restores).
    pub fn previous(&self) -> Option<&Model> {
        self.previous.last()
    }

    /// Every comparison made, oldest first.
    pub fn history(&self) -> &[Comparison] {
        &self.history
    }

    /// Compare `candidate` with the active model in shadow; promote it when the verdict
    /// is [`Verdict::Promote`] (the active model is kept as previous). Returns the comparison,
    /// which is also recorded in [`Deployment::history`].
    pub fn consider(
        &mut self,
        candidate: Model,
        examples: &[Example],
        taxonomy: &Taxonomy,
        dim: Dimension,
        options: &ShadowOptions,
    ) -> Result<Comparison> {
        let comparison = compare(&self.active, &candidate, examples, taxonomy, dim, options)?;
        if comparison.verdict == Verdict::Promote {
            let old = std::mem::replace(&mut self.active, candidate);
            self.previous.push(old);
        }
        self.history.push(comparison.clone());
        Ok(comparison)
    }

    /// Make the previous model active again; returns the model that was active, or `None`
    /// (nothing changes) when there is no previous model.
    pub fn rollback(&mut self) -> Option<Model> {
        let previous = self.previous.pop()?;
        Some(std::mem::replace(&mut self.active, previous))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TrainOptions;

    /// Chinese complaints of three causes, with a chosen share of them mislabelled.
    fn history(n: usize, noise_every: usize, seed: usize) -> Vec<Example> {
        let causes = [
            (
                "C12",
                ["催收人员天天打电话", "暴力催收骚扰家人", "催收短信威胁上门"],
            ),
            (
                "C11",
                ["利息太高还收服务费", "砍头息和手续费", "年化利率超过规定"],
            ),
            (
                "C01",
                ["客服电话打不通", "客服态度恶劣推诿", "在线客服不回复"],
            ),
        ];
        let mut out = Vec::new();
        for i in 0..n {
            for (c, (code, texts)) in causes.iter().enumerate() {
                let label = if noise_every > 0 && (i + c + seed).is_multiple_of(noise_every) {
                    causes[(c + 1) % 3].0
                } else {
                    code
                };
                out.push(Example::new(
                    format!("{} 第{}次 编号{}", texts[(i + seed) % 3], i % 7, i),
                    label,
                ));
            }
        }
        out
    }

    fn model(examples: &[Example], version: &str) -> Model {
        let options = TrainOptions {
            model_version: version.into(),
            label_scheme: "taxonomy_cause".into(),
            created_at: Some(1_700_000_000),
            ..TrainOptions::chinese()
        };
        Model::train(examples, &options, |_| {}).expect("train")
    }

    fn setup() -> (Model, Model, Vec<Example>, Taxonomy) {
        // The weak model learnt from a third of its labels wrong; the strong one from clean ones.
        let weak = model(&history(40, 3, 0), "weak-v1");
        let strong = model(&history(40, 0, 1), "strong-v2");
        let overrides = history(30, 0, 2);
        (
            weak,
            strong,
            overrides,
            Taxonomy::embedded().expect("taxonomy"),
        )
    }

    #[test]
    fn shadow_evaluation_promotes_the_better_model_and_refuses_a_worse_one() {
        let (weak, strong, overrides, t) = setup();
        let o = ShadowOptions::default();
        let better =
            compare(&weak, &strong, &overrides, &t, Dimension::Cause, &o).expect("compare");
        assert_eq!(better.verdict, Verdict::Promote, "{better:#?}");
        assert!(better.candidate.auto_routed_correct > better.current.auto_routed_correct);
        let worse = compare(&strong, &weak, &overrides, &t, Dimension::Cause, &o).expect("compare");
        assert_eq!(worse.verdict, Verdict::KeepCurrent, "{worse:#?}");
        assert!(worse.findings.iter().any(|f| f.starts_with("FAILED:")));
        // An equal model is no reason to change.
        let same =
            compare(&strong, &strong, &overrides, &t, Dimension::Cause, &o).expect("compare");
        assert_eq!(same.verdict, Verdict::KeepCurrent);
        // Too few examples: no verdict either way.
        let few =
            compare(&weak, &strong, &overrides[..10], &t, Dimension::Cause, &o).expect("compare");
        assert_eq!(few.verdict, Verdict::InsufficientEvidence);
        assert!(few.criterion.contains("≥ 30 examples"));
    }

    #[test]
    fn scores_tallied_elsewhere_are_judged_by_the_same_criterion() {
        let o = ShadowOptions::default();
        // 40 examples: rules route 10 (8 right), the candidate routes 30 (28 right).
        let rules = ShadowScore::tally(
            "rules",
            None,
            (0..40).map(|i| (i < 20, i < 8 || (30..32).contains(&i))),
        );
        assert_eq!((rules.auto_routed, rules.auto_routed_correct), (10, 8));
        assert_eq!(rules.accuracy, 0.5);
        let cand = ShadowScore::tally(
            "v2",
            Some(0.8),
            (0..40).map(|i| (i < 36, i < 28 || (36..38).contains(&i))),
        );
        assert_eq!(cand.auto_routed_precision, Some(28.0 / 30.0));
        let better = decide(rules.clone(), cand.clone(), 40, &o);
        assert_eq!(better.verdict, Verdict::Promote, "{better:#?}");
        let worse = decide(cand, rules, 40, &o);
        assert_eq!(worse.verdict, Verdict::KeepCurrent);
    }

    #[test]
    fn a_promoted_model_can_be_rolled_back() {
        let (weak, strong, overrides, t) = setup();
        let o = ShadowOptions::default();
        let mut d = Deployment::new(weak.clone());
        assert!(d.rollback().is_none(), "nothing to roll back to");
        // A worse candidate is refused and the active model stays.
        let refused = d
            .consider(weak.clone(), &overrides, &t, Dimension::Cause, &o)
            .expect("consider");
        assert_eq!(refused.verdict, Verdict::KeepCurrent);
        assert_eq!(d.active().header().model_version, "weak-v1");
        let promoted = d
            .consider(strong, &overrides, &t, Dimension::Cause, &o)
            .expect("consider");
        assert_eq!(promoted.verdict, Verdict::Promote);
        assert_eq!(d.active().header().model_version, "strong-v2");
        assert_eq!(d.history().len(), 2);
        // The previous model is kept, still saves and loads, and predicts as before.
        let previous = d.previous().expect("previous kept");
        let reloaded = Model::from_bytes(&previous.to_bytes().expect("bytes")).expect("loads");
        let text = "催收人员天天打电话";
        assert_eq!(reloaded.predict(text), weak.predict(text));
        // Rollback makes it active again and hands back the demoted one.
        let demoted = d.rollback().expect("rolled back");
        assert_eq!(demoted.header().model_version, "strong-v2");
        assert_eq!(d.active().header().model_version, "weak-v1");
        assert!(d.previous().is_none());
        // And a classifier built on the active model uses it.
        let c = crate::Classifier::rules_only()
            .expect("rules")
            .with_model(crate::Language::Zh, d.active().clone())
            .expect("model");
        let r = c.classify(
            &crate::ComplaintInput {
                text: text.into(),
                ..Default::default()
            },
            0.7,
        );
        assert_eq!(r.model_versions, vec!["weak-v1".to_string()]);
    }
}
