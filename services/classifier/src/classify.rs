//! The combination: taxonomy + rules + severity + models → a [`Classification`].
//!
//! Precedence, per dimension (category, cause):
//! 1. a **certain** rule that fires (data: `certain = true`) — overrides everything;
//! 2. for the category only: the intake's `product` field when it names a taxonomy entry or a
//!    mapped label (e.g. "Mortgage");
//! 3. the model for the detected language and that dimension (its label mapped through the
//!    taxonomy); a category model's mapping may also imply the cause (Debt collection → C12,
//!    at 0.9 × its confidence), which wins over a cause model only when it is surer;
//! 4. the strongest uncertain rule, at a confidence capped at [`RULE_ONLY_MAX_CONFIDENCE`];
//! 5. `B99` / `C99` (other) at confidence 0.
//!
//! Uncertain rules that agree with the decision are added to its reasons. Chinese text with no
//! Chinese model therefore still classifies, by rules, with low confidence — so it lands in
//! the review queue. A deployment trains its Chinese model from its own labelled history
//! (specialists' overrides) and adds it with [`Classifier::with_model`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::rules::{self, Reason, RuleHit, RuleSet};
use crate::severity::{Amount, Assessment, SeverityConfig, SignalInput, VulnerableFlags};
use crate::taxonomy::{Dimension, Taxonomy};
use crate::tokenize::{self, Language};

/// The default English model (CFPB product groups), trained on public-domain CFPB data only.
pub const EMBEDDED_MODEL: &[u8] = include_bytes!("../models/default-cfpb-product-v1.bin");

/// The default English cause model (taxonomy causes, learned from CFPB `issue` labels mapped
/// through the taxonomy's `cfpb_issue` scheme), trained on public-domain CFPB data only.
pub const EMBEDDED_CAUSE_MODEL: &[u8] = include_bytes!("../models/default-cfpb-cause-v1.bin");

/// Highest confidence a decision by uncertain rules alone can get.
pub const RULE_ONLY_MAX_CONFIDENCE: f32 = 0.6;

/// How many features a model decision names in its reason.
const EXPLAINED_FEATURES: usize = 5;

/// Default review threshold: decisions less confident than this wait for a specialist.
pub const DEFAULT_REVIEW_THRESHOLD: f32 = 0.7;

/// A complaint as intake hands it over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComplaintInput {
    /// The narrative, already redacted.
    pub text: String,
    /// Title or subject, if any.
    pub title: Option<String>,
    /// Product as the consumer or channel named it (free text).
    pub product: Option<String>,
    /// Channel, e.g. `web`, `app`, `hotline`, `regulator_referral`.
    pub channel: String,
    /// Language hint (`zh`, `en`, `zh-CN`...); detected by script when absent or unknown.
    pub language_hint: Option<String>,
    /// Amount in dispute.
    pub amount: Option<Amount>,
    /// Vulnerability flags from intake.
    pub vulnerable: VulnerableFlags,
    /// Earlier complaints on the same matter.
    pub repeat_count: u32,
}

/// Who decided a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decider {
    /// A certain rule.
    CertainRule,
    /// The intake's product field.
    Product,
    /// A model.
    Model,
    /// Uncertain rules only.
    Rules,
    /// Nothing applied: the "other" entry.
    Fallback,
}

/// A decided taxonomy label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// Taxonomy code.
    pub code: String,
    /// Chinese name.
    pub zh: String,
    /// English name.
    pub en: String,
    /// Confidence in [0, 1].
    pub confidence: f32,
    /// Who decided.
    pub decided_by: Decider,
    /// Why.
    pub reasons: Vec<Reason>,
}

/// The classifier's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// Business category (dimension B).
    pub category: Label,
    /// Cause (dimension C).
    pub cause: Label,
    /// The product as given by intake (trimmed), if any.
    pub product: Option<String>,
    /// Severity with its signals.
    pub severity: Assessment,
    /// Language used.
    pub language: Language,
    /// Overall confidence: the lower of the category's and the cause's.
    pub confidence: f32,
    /// True when `confidence` is below the review threshold.
    pub needs_review: bool,
    /// Versions of the models that were consulted.
    pub model_versions: Vec<String>,
    /// Taxonomy version.
    pub taxonomy_version: String,
    /// Rules version.
    pub rules_version: String,
    /// Severity configuration version.
    pub severity_version: String,
}

#[derive(Debug, Clone)]
struct Slot {
    language: Language,
    dimension: Dimension,
    model: Model,
}

/// Taxonomy, rules, severity configuration and models, assembled once and shared.
#[derive(Debug, Clone)]
pub struct Classifier {
    taxonomy: Taxonomy,
    rules: RuleSet,
    severity: SeverityConfig,
    models: Vec<Slot>,
}

impl Classifier {
    /// Assemble from parts, with no model.
    pub fn new(taxonomy: Taxonomy, rules: RuleSet, severity: SeverityConfig) -> Classifier {
        Classifier {
            taxonomy,
            rules,
            severity,
            models: Vec::new(),
        }
    }

    /// Embedded taxonomy, rules and severity, with no model.
    pub fn rules_only() -> Result<Classifier> {
        let taxonomy = Taxonomy::embedded()?;
        let rules = RuleSet::embedded(&taxonomy)?;
        Ok(Classifier::new(
            taxonomy,
            rules,
            SeverityConfig::embedded()?,
        ))
    }

    /// Everything embedded, plus the default English CFPB product (category) model and the
    /// English cause model.
    pub fn embedded() -> Result<Classifier> {
        Classifier::rules_only()?
            .with_model(Language::En, Model::from_bytes(EMBEDDED_MODEL)?)?
            .with_model(Language::En, Model::from_bytes(EMBEDDED_CAUSE_MODEL)?)
    }

    /// Add (or replace) the model for `language`. Every label of the model must map onto the
    /// taxonomy through its label scheme; whether it predicts categories or causes is decided
    /// by what its labels map to (all to categories → category model, else all to causes).
    pub fn with_model(mut self, language: Language, model: Model) -> Result<Classifier> {
        let scheme = model.header().label_scheme.clone();
        let mut all_cat = true;
        let mut all_cause = true;
        for l in model.labels() {
            let m = self.taxonomy.resolve(&scheme, l).ok_or_else(|| {
                Error::Config(format!(
                    "model label `{l}` (scheme `{scheme}`) is not mapped in taxonomy {}",
                    self.taxonomy.version()
                ))
            })?;
            all_cat &= m.category.is_some();
            all_cause &= m.cause.is_some();
        }
        let dimension = if all_cat {
            Dimension::Category
        } else if all_cause {
            Dimension::Cause
        } else {
            return Err(Error::Config(format!(
                "labels of scheme `{scheme}` map neither all to categories nor all to causes"
            )));
        };
        self.models
            .retain(|s| !(s.language == language && s.dimension == dimension));
        self.models.push(Slot {
            language,
            dimension,
            model,
        });
        Ok(self)
    }

    /// The taxonomy in use.
    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// Classify a complaint. `review_threshold`: below this overall confidence the
    /// classification is marked `needs_review` (see [`DEFAULT_REVIEW_THRESHOLD`]).
    pub fn classify(&self, input: &ComplaintInput, review_threshold: f32) -> Classification {
        let mut body = String::new();
        if let Some(t) = input.title.as_deref().filter(|t| !t.trim().is_empty()) {
            body.push_str(t);
            body.push('\n');
        }
        body.push_str(&input.text);
        let language = input
            .language_hint
            .as_deref()
            .and_then(Language::from_hint)
            .unwrap_or_else(|| tokenize::detect_language(&body));
        let product = input
            .product
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        let mut folded = rules::fold(&body);
        if let Some(p) = product {
            folded.push('\n');
            folded.push_str(&rules::fold(p));
        }
        let hits = self.rules.hits(&folded);
        let severity = self.severity.assess(&SignalInput {
            folded: &folded,
            channel: &input.channel,
            amount: input.amount.as_ref(),
            vulnerable: &input.vulnerable,
            repeat_count: input.repeat_count,
        });

        // Category and cause models of one language usually share their features: tokenise
        // and hash the text once, for whichever model asks first.
        let featurized = std::cell::OnceCell::new();
        let mut model_versions = Vec::new();
        let mut implied_cause: Option<(String, f32, Reason)> = None;
        let mut decide = |dim: Dimension,
                          implied: Option<(String, f32, Reason)>|
         -> (Label, Option<(String, f32, Reason)>) {
            let mine: Vec<&RuleHit> = hits.iter().filter(|h| h.target == dim).collect();
            let agree = |code: &str| -> Vec<Reason> {
                mine.iter()
                    .filter(|h| h.code == code && !h.certain)
                    .map(|h| rule_reason(h))
                    .collect()
            };
            if let Some(h) = mine.iter().find(|h| h.certain) {
                return (
                    self.label(
                        dim,
                        &h.code,
                        1.0,
                        Decider::CertainRule,
                        vec![rule_reason(h)],
                    ),
                    None,
                );
            }
            if dim == Dimension::Category
                && let Some(e) = product.and_then(|p| self.taxonomy.find_by_name(dim, p))
            {
                let reason = Reason {
                    code: "product".into(),
                    detail: format!("intake product “{}”", product.unwrap_or_default()),
                    evidence: None,
                };
                return (
                    self.label(dim, &e.code, 1.0, Decider::Product, vec![reason]),
                    None,
                );
            }
            if let Some(slot) = self
                .models
                .iter()
                .find(|s| s.language == language && s.dimension == dim)
            {
                let featurized = featurized.get_or_init(|| slot.model.featurize(&body));
                let p = slot
                    .model
                    .predict_featurized(featurized, EXPLAINED_FEATURES);
                // A cause implied by the category model (Debt collection → C12) wins over a
                // cause model that is less sure.
                if let Some((code, conf, reason)) =
                    implied.as_ref().filter(|(_, conf, _)| *conf > p.confidence)
                {
                    let mut reasons = vec![reason.clone()];
                    reasons.extend(agree(code));
                    return (self.label(dim, code, *conf, Decider::Model, reasons), None);
                }
                let header = slot.model.header();
                model_versions.push(header.model_version.clone());
                if let Some(m) = self.taxonomy.resolve(&header.label_scheme, &p.label) {
                    let code = match dim {
                        Dimension::Category => m.category.clone(),
                        Dimension::Cause => m.cause.clone(),
                    };
                    if let Some(code) = code {
                        let features: Vec<String> =
                            p.top_features.iter().map(|f| f.feature.clone()).collect();
                        let reason = Reason {
                            code: format!("model:{}", header.model_version),
                            detail: format!(
                                "predicted “{}” (p = {:.2}); top features: {}",
                                p.label,
                                p.confidence,
                                features.join(", ")
                            ),
                            evidence: None,
                        };
                        let implied_next = match (dim, &m.cause) {
                            (Dimension::Category, Some(c)) => {
                                Some((c.clone(), p.confidence * 0.9, reason.clone()))
                            }
                            _ => None,
                        };
                        let mut reasons = vec![reason];
                        reasons.extend(agree(&code));
                        return (
                            self.label(dim, &code, p.confidence, Decider::Model, reasons),
                            implied_next,
                        );
                    }
                }
            }
            if let Some((code, conf, reason)) = implied {
                let mut reasons = vec![reason];
                reasons.extend(agree(&code));
                return (self.label(dim, &code, conf, Decider::Model, reasons), None);
            }
            if let Some(best) = mine.first() {
                let total: f32 = mine.iter().map(|h| h.score).sum();
                let share = if total > 0.0 { best.score / total } else { 0.0 };
                let conf = (RULE_ONLY_MAX_CONFIDENCE * share).clamp(0.0, RULE_ONLY_MAX_CONFIDENCE);
                return (
                    self.label(dim, &best.code, conf, Decider::Rules, agree(&best.code)),
                    None,
                );
            }
            let other = if dim == Dimension::Category {
                "B99"
            } else {
                "C99"
            };
            let reason = Reason {
                code: "fallback".into(),
                detail: "no rule fired and no model covers this language".into(),
                evidence: None,
            };
            (
                self.label(dim, other, 0.0, Decider::Fallback, vec![reason]),
                None,
            )
        };
        let (category, implied) = decide(Dimension::Category, None);
        implied_cause = implied_cause.or(implied);
        let (cause, _) = decide(Dimension::Cause, implied_cause);
        let confidence = category.confidence.min(cause.confidence);
        Classification {
            category,
            cause,
            product: product.map(str::to_string),
            severity,
            language,
            confidence,
            // A NaN threshold or confidence counts as "needs review".
            needs_review: confidence
                .partial_cmp(&review_threshold)
                .is_none_or(|o| o.is_lt()),
            model_versions,
            taxonomy_version: self.taxonomy.version().to_string(),
            rules_version: self.rules.version().to_string(),
            severity_version: self.severity.version().to_string(),
        }
    }

    fn label(
        &self,
        dim: Dimension,
        code: &str,
        confidence: f32,
        decided_by: Decider,
        reasons: Vec<Reason>,
    ) -> Label {
        let (zh, en) = self
            .taxonomy
            .entry(dim, code)
            .map(|e| (e.zh.clone(), e.en.clone()))
            .unwrap_or_default();
        Label {
            code: code.to_string(),
            zh,
            en,
            confidence: if confidence.is_finite() {
                confidence.clamp(0.0, 1.0)
            } else {
                0.0
            },
            decided_by,
            reasons,
        }
    }
}

fn rule_reason(h: &RuleHit) -> Reason {
    Reason {
        code: format!("rule:{}", h.rule),
        detail: format!(
            "{} rule {} → {}",
            if h.certain { "certain" } else { "evidence" },
            h.rule,
            h.code
        ),
        evidence: Some(h.evidence.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Example, TrainOptions};
    use crate::severity::Severity;

    fn input(text: &str) -> ComplaintInput {
        ComplaintInput {
            text: text.into(),
            channel: "web".into(),
            ..ComplaintInput::default()
        }
    }

    /// A tiny Chinese cause model over the cn_category scheme, from generated text.
    fn zh_cause_model() -> Model {
        let mut ex = Vec::new();
        for i in 0..40 {
            ex.push(Example::new(
                format!("催收电话一直打来 第{i}次 态度恶劣"),
                "催收行为类",
            ));
            ex.push(Example::new(
                format!("利息太高 手续费 服务费 乱收费 {i}"),
                "定价收费类",
            ));
            ex.push(Example::new(
                format!("客服不理人 电话打不通 没人处理 {i}"),
                "客户服务类",
            ));
        }
        let opts = TrainOptions {
            label_scheme: "cn_category".into(),
            model_version: "test-zh".into(),
            ..TrainOptions::chinese()
        };
        Model::train(&ex, &opts, |_| {}).expect("train")
    }

    #[test]
    fn english_uses_the_embedded_model() {
        let c = Classifier::embedded().expect("classifier");
        let r = c.classify(
            &input("My mortgage servicer refused my loan modification and started foreclosure on my home; escrow was miscalculated."),
            DEFAULT_REVIEW_THRESHOLD,
        );
        assert_eq!(r.language, Language::En);
        assert_eq!(r.category.code, "B02.01");
        assert_eq!(r.category.decided_by, Decider::Model);
        assert!(
            r.category
                .reasons
                .iter()
                .any(|x| x.code.starts_with("model:"))
        );
        assert_eq!(
            r.model_versions,
            vec!["cfpb-product-v4".to_string(), "cfpb-cause-v2".to_string()]
        );
        // The English cause is decided by a model (the cause model, or the product model's
        // implied cause when that is surer).
        assert_eq!(r.cause.decided_by, Decider::Model);
        assert!(r.cause.code.starts_with('C') && r.cause.code != "C99");
    }

    #[test]
    fn certain_rules_override_the_model() {
        let c = Classifier::rules_only()
            .expect("rules")
            .with_model(Language::Zh, zh_cause_model())
            .expect("model");
        // The model alone would say fees (利息/手续费); the certain rule (爆通讯录) wins.
        let r = c.classify(&input("利息太高 手续费 服务费，还爆通讯录"), 0.7);
        assert_eq!(r.cause.code, "C12");
        assert_eq!(r.cause.decided_by, Decider::CertainRule);
        assert_eq!(r.cause.confidence, 1.0);
        // Without the certain phrase the model decides.
        let r = c.classify(&input("利息太高 手续费 服务费 乱收费"), 0.7);
        assert_eq!(
            (r.cause.code.as_str(), r.cause.decided_by),
            ("C11", Decider::Model)
        );
    }

    #[test]
    fn chinese_without_a_model_falls_back_to_rules_and_review() {
        let c = Classifier::embedded().expect("classifier");
        let r = c.classify(
            &input("我在平台借款，信用卡被盗刷了，客服不理"),
            DEFAULT_REVIEW_THRESHOLD,
        );
        assert_eq!(r.language, Language::Zh);
        assert_eq!(r.category.decided_by, Decider::Rules);
        assert!(r.category.confidence <= RULE_ONLY_MAX_CONFIDENCE);
        assert!(r.needs_review);
        assert_eq!(r.severity.level, Severity::High);
        assert!(r.model_versions.is_empty());
    }

    #[test]
    fn product_field_and_fallback() {
        let c = Classifier::rules_only().expect("rules");
        let mut i = input("nothing useful here");
        i.product = Some("Student loan".into());
        let r = c.classify(&i, 0.5);
        assert_eq!(
            (r.category.code.as_str(), r.category.decided_by),
            ("B02.03", Decider::Product)
        );
        assert_eq!(
            (r.cause.code.as_str(), r.cause.decided_by),
            ("C99", Decider::Fallback)
        );
        assert!(r.needs_review);
    }

    #[test]
    fn odd_inputs_never_panic() {
        let c = Classifier::embedded().expect("classifier");
        for t in [
            "",
            "\u{0}\u{FEFF}",
            "😀",
            &"借".repeat(100_000),
            &"word ".repeat(50_000),
        ] {
            let mut i = input(t);
            i.language_hint = Some("??".into());
            i.amount = Some(Amount {
                minor: i64::MIN,
                currency: "".into(),
            });
            let r = c.classify(&i, f32::NAN);
            assert!(r.needs_review && r.confidence.is_finite());
        }
    }

    #[test]
    fn models_must_map_onto_the_taxonomy() {
        let mut m = Vec::new();
        for i in 0..30 {
            m.push(Example::new(format!("alpha beta {i}"), "x"));
            m.push(Example::new(format!("gamma delta {i}"), "y"));
        }
        let model = Model::train(&m, &TrainOptions::default(), |_| {}).expect("train");
        assert!(matches!(
            Classifier::rules_only()
                .expect("rules")
                .with_model(Language::En, model),
            Err(Error::Config(_))
        ));
    }
}
