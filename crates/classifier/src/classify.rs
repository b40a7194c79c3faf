//! The combination: taxonomy + catalogue + rules + lexicon + severity + models → a
//! [`Classification`].
//!
//! **Structure before text.** The category (dimension B) is decided, in order, by
//! 1. a **certain** rule that fires (data: `certain = true`);
//! 2. the intake's `product` field when it names a catalogue product (exactly or by
//!    normalised synonym, or containing synonyms of one category only) or a taxonomy entry /
//!    mapped label ("Mortgage") — whatever the text says; when the text points elsewhere the
//!    label carries a `structure_text_conflict` reason;
//! 3. otherwise the text: the model for the detected language, else the strongest uncertain
//!    rule (at most [`RULE_ONLY_MAX_CONFIDENCE`]);
//! 4. `B99` (other) at confidence 0.
//!
//! **The text decides the cause** (dimension C): a certain rule; else, in order, a cause
//! implied by the category model (Debt collection → C12, at 0.9 × its confidence — even when
//! the product decided the category, since it is what the text says) when surer than the cause
//! model, the cause model, the Chinese cause lexicon ([`crate::lexicon`]), the strongest
//! uncertain rule; the first of these whose confidence clears its threshold decides, else the
//! first there is (so a model's guess is shown to the specialist); else `C99` at 0. Once a
//! calibrated cause model covers the language, its measured confidence outranks the lexicon's
//! declared one: the lexicon no longer skips review by itself.
//!
//! **Review.** Each label has a threshold its confidence must reach, set by a [`Review`]
//! policy: a fixed threshold for every decider ([`Classifier::classify`]), or a target
//! precision ([`Classifier::classify_at_precision`]) — then a model's threshold is the one its
//! artifact recorded for that precision on held-out predictions (a calibrated model), and every
//! other decider's confidence, declared as the precision it is expected to reach, must reach
//! the target itself. `needs_review` is set when either label falls short.

use std::cell::OnceCell;

use serde::{Deserialize, Serialize};

use crate::catalogue::{Catalogue, Lookup};
use crate::error::{Error, Result};
use crate::lexicon::Lexicon;
use crate::model::{Featurized, Model, Prediction};
use crate::negation::Negation;
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

pub use crate::model::DEFAULT_TARGET_PRECISION;

/// Share of a category model's confidence an implied cause gets (the mapping from a category
/// to a cause, e.g. Debt collection → C12, is itself not always right).
const IMPLIED_CAUSE_FACTOR: f32 = 0.9;

/// A threshold no confidence reaches: the decider never reached the target precision.
pub const UNREACHABLE: f32 = 1.01;

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
    /// The intake's product field (catalogue or taxonomy name).
    Product,
    /// A model.
    Model,
    /// Text rules: the cause lexicon or the uncertain keyword rules.
    Rules,
    /// Nothing applied: the "other" entry.
    Fallback,
}

/// When a decision may skip the specialist.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    /// Every label's confidence must reach this threshold.
    Threshold(f32),
    /// Auto-routed decisions should be right this often: a calibrated model's label must
    /// reach the threshold its artifact recorded for this precision; any other label's
    /// confidence must reach the precision itself.
    TargetPrecision(f32),
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
    /// Confidence in [0, 1]: the probability the label is right (calibrated for models,
    /// declared for the catalogue and the lexicon, capped for uncertain rules).
    pub confidence: f32,
    /// Who decided.
    pub decided_by: Decider,
    /// Why.
    pub reasons: Vec<Reason>,
    /// The confidence this label needed to skip review (above 1: its decider never reached
    /// the target precision).
    #[serde(default)]
    pub threshold: f32,
}

impl Label {
    /// Whether the label's confidence reaches its threshold (never for NaN).
    pub fn passes(&self) -> bool {
        self.confidence >= self.threshold
    }
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
    /// True when either label's confidence is below its threshold.
    pub needs_review: bool,
    /// Versions of the models that were consulted.
    pub model_versions: Vec<String>,
    /// Taxonomy version.
    pub taxonomy_version: String,
    /// Rules version.
    pub rules_version: String,
    /// Severity configuration version.
    pub severity_version: String,
    /// The department owning the catalogue product that decided the category
    /// (informational: routing is case-coordination's).
    #[serde(default)]
    pub department: Option<String>,
    /// The review policy applied.
    #[serde(default = "default_review")]
    pub review: Review,
}

fn default_review() -> Review {
    Review::Threshold(DEFAULT_REVIEW_THRESHOLD)
}

#[derive(Debug, Clone)]
struct Slot {
    language: Language,
    dimension: Dimension,
    model: Model,
    /// Thresholds for common target precisions, read from the model's calibration once:
    /// reading the operating curve for every complaint would cost more than the lookup.
    thresholds: Vec<(f32, f32)>,
}

/// Target precisions whose thresholds a slot keeps ready.
const COMMON_TARGETS: [f32; 6] = [0.8, 0.85, 0.9, 0.95, 0.97, 0.99];

impl Slot {
    fn new(language: Language, dimension: Dimension, model: Model) -> Slot {
        let thresholds = COMMON_TARGETS
            .iter()
            .chain(model.calibration().map(|c| &c.target_precision))
            .map(|&t| {
                (
                    t,
                    Classifier::model_threshold(&model, Review::TargetPrecision(t)),
                )
            })
            .collect();
        Slot {
            language,
            dimension,
            model,
            thresholds,
        }
    }

    fn threshold(&self, review: Review) -> f32 {
        let ready = match review {
            Review::TargetPrecision(p) => self.thresholds.iter().find(|(t, _)| *t == p),
            Review::Threshold(_) => None,
        };
        ready.map_or_else(|| Classifier::model_threshold(&self.model, review), |r| r.1)
    }
}

/// Taxonomy, catalogue, rules, lexicon, severity configuration and models, assembled once and
/// shared.
#[derive(Debug, Clone)]
pub struct Classifier {
    taxonomy: Taxonomy,
    rules: RuleSet,
    severity: SeverityConfig,
    catalogue: Option<Catalogue>,
    lexicon: Option<Lexicon>,
    negation: Option<Negation>,
    models: Vec<Slot>,
}

/// One way of deciding a label, before the choice.
#[derive(Debug, Clone)]
struct Candidate {
    code: String,
    confidence: f32,
    threshold: f32,
    decider: Decider,
    reasons: Vec<Reason>,
}

impl Candidate {
    fn passes(&self) -> bool {
        self.confidence >= self.threshold
    }
}

/// What the complaint's text gives every decision.
struct Text<'a> {
    body: String,
    /// The body folded (see [`rules::fold`]) then, after a newline, the product.
    folded: String,
    /// End of the body in `folded`.
    body_end: usize,
    language: Language,
    product: Option<&'a str>,
    hits: Vec<RuleHit>,
    featurized: OnceCell<Featurized>,
}

/// A model's prediction mapped onto the taxonomy.
struct ModelView {
    code: String,
    prediction: Prediction,
    reason: Reason,
    /// The cause the predicted label implies (category models only).
    implies: Option<String>,
    threshold: f32,
}

impl Classifier {
    /// Assemble from parts, with no model, no catalogue, no lexicon and no negation scope
    /// (add them with the `with_*` methods).
    pub fn new(taxonomy: Taxonomy, rules: RuleSet, severity: SeverityConfig) -> Classifier {
        Classifier {
            taxonomy,
            rules,
            severity,
            catalogue: None,
            lexicon: None,
            negation: None,
            models: Vec::new(),
        }
    }

    /// Embedded taxonomy, rules, severity, product catalogue, Chinese cause lexicon and
    /// negation scope, with no model.
    pub fn rules_only() -> Result<Classifier> {
        let taxonomy = Taxonomy::embedded()?;
        let rules = RuleSet::embedded(&taxonomy)?;
        let catalogue = Catalogue::embedded(&taxonomy)?;
        let lexicon = Lexicon::embedded(&taxonomy)?;
        Ok(
            Classifier::new(taxonomy, rules, SeverityConfig::embedded()?)
                .with_catalogue(catalogue)
                .with_lexicon(lexicon)
                .with_negation(Negation::embedded()?),
        )
    }

    /// Everything embedded, plus the default English CFPB product (category) model and the
    /// English cause model.
    pub fn embedded() -> Result<Classifier> {
        Classifier::rules_only()?
            .with_model(Language::En, Model::from_bytes(EMBEDDED_MODEL)?)?
            .with_model(Language::En, Model::from_bytes(EMBEDDED_CAUSE_MODEL)?)
    }

    /// Use this product catalogue for the `product` field.
    pub fn with_catalogue(mut self, catalogue: Catalogue) -> Classifier {
        self.catalogue = Some(catalogue);
        self
    }

    /// Use this cause lexicon for Chinese text.
    pub fn with_lexicon(mut self, lexicon: Lexicon) -> Classifier {
        self.lexicon = Some(lexicon);
        self
    }

    /// Use this negation scope for Chinese rules and the lexicon.
    pub fn with_negation(mut self, negation: Negation) -> Classifier {
        self.negation = Some(negation);
        self
    }

    /// Add (or replace) the model for `language`. Every label of the model must map onto the
    /// taxonomy through its label scheme; whether it predicts categories or causes is decided
    /// by what its labels map to (all to categories → category model, else all to causes).
    pub fn with_model(mut self, language: Language, model: Model) -> Result<Classifier> {
        let dimension = self.dimension_of(&model)?;
        self.models
            .retain(|s| !(s.language == language && s.dimension == dimension));
        self.models.push(Slot::new(language, dimension, model));
        Ok(self)
    }

    /// Which dimension a model's labels map to (all categories, or all causes).
    pub fn dimension_of(&self, model: &Model) -> Result<Dimension> {
        let scheme = &model.header().label_scheme;
        let mut all_cat = true;
        let mut all_cause = true;
        for l in model.labels() {
            let m = self.taxonomy.resolve(scheme, l).ok_or_else(|| {
                Error::Config(format!(
                    "model label `{l}` (scheme `{scheme}`) is not mapped in taxonomy {}",
                    self.taxonomy.version()
                ))
            })?;
            all_cat &= m.category.is_some();
            all_cause &= m.cause.is_some();
        }
        match (all_cat, all_cause) {
            (true, _) => Ok(Dimension::Category),
            (false, true) => Ok(Dimension::Cause),
            _ => Err(Error::Config(format!(
                "labels of scheme `{scheme}` map neither all to categories nor all to causes"
            ))),
        }
    }

    /// The model in use for a language and dimension.
    pub fn model(&self, language: Language, dimension: Dimension) -> Option<&Model> {
        self.models
            .iter()
            .find(|s| s.language == language && s.dimension == dimension)
            .map(|s| &s.model)
    }

    /// The taxonomy in use.
    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// The product catalogue in use.
    pub fn catalogue(&self) -> Option<&Catalogue> {
        self.catalogue.as_ref()
    }

    /// The Chinese cause lexicon in use.
    pub fn lexicon(&self) -> Option<&Lexicon> {
        self.lexicon.as_ref()
    }

    /// Classify a complaint. `review_threshold`: a label whose confidence is below it marks
    /// the classification `needs_review` (see [`DEFAULT_REVIEW_THRESHOLD`]).
    pub fn classify(&self, input: &ComplaintInput, review_threshold: f32) -> Classification {
        self.classify_with(input, Review::Threshold(review_threshold))
    }

    /// Classify a complaint so that what skips review is right about `target_precision` of
    /// the time (see [`Review::TargetPrecision`]; [`DEFAULT_TARGET_PRECISION`] is 0.9).
    pub fn classify_at_precision(
        &self,
        input: &ComplaintInput,
        target_precision: f32,
    ) -> Classification {
        self.classify_with(input, Review::TargetPrecision(target_precision))
    }

    /// Classify a complaint under a review policy.
    pub fn classify_with(&self, input: &ComplaintInput, review: Review) -> Classification {
        let text = self.read(input);
        let severity = self.severity.assess(&SignalInput {
            folded: &text.folded,
            channel: &input.channel,
            amount: input.amount.as_ref(),
            vulnerable: &input.vulnerable,
            repeat_count: input.repeat_count,
        });
        let mut versions = Vec::new();
        let (category, implied, department) = self.category(&text, review, &mut versions);
        let cause = self.cause(&text, review, implied, &mut versions);
        let confidence = category.confidence.min(cause.confidence);
        Classification {
            needs_review: !(category.passes() && cause.passes()),
            category,
            cause,
            product: text.product.map(str::to_string),
            severity,
            language: text.language,
            confidence,
            model_versions: versions,
            taxonomy_version: self.taxonomy.version().to_string(),
            rules_version: self.rules.version().to_string(),
            severity_version: self.severity.version().to_string(),
            department,
            review,
        }
    }

    /// Language, folded text and rule hits of a complaint.
    fn read<'a>(&self, input: &'a ComplaintInput) -> Text<'a> {
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
        let body_end = folded.len();
        if let Some(p) = product {
            folded.push('\n');
            folded.push_str(&rules::fold(p));
        }
        let hits = self.rules.hits_scoped(&folded, self.negation.as_ref());
        Text {
            body,
            folded,
            body_end,
            language,
            product,
            hits,
            featurized: OnceCell::new(),
        }
    }

    /// The threshold a non-model decider's confidence must reach under `review`.
    fn fixed_threshold(review: Review) -> f32 {
        match review {
            Review::Threshold(t) | Review::TargetPrecision(t) => t,
        }
    }

    /// A model's threshold under `review`: its recorded threshold for a target precision
    /// (unreachable when it never reached it), the target itself for an uncalibrated model.
    fn model_threshold(model: &Model, review: Review) -> f32 {
        match review {
            Review::Threshold(t) => t,
            Review::TargetPrecision(p) => match model.calibration() {
                Some(c) => c.threshold_for(p).unwrap_or(UNREACHABLE),
                None => p,
            },
        }
    }

    /// Run the model of `dim` for the text's language, mapped onto the taxonomy.
    fn predict(
        &self,
        text: &Text<'_>,
        dim: Dimension,
        review: Review,
        versions: &mut Vec<String>,
    ) -> Option<ModelView> {
        let slot = self
            .models
            .iter()
            .find(|s| s.language == text.language && s.dimension == dim)?;
        // Category and cause models of one language usually share their features: tokenise
        // and hash the text once, for whichever model asks first.
        let featurized = text
            .featurized
            .get_or_init(|| slot.model.featurize(&text.body));
        let prediction = slot
            .model
            .predict_featurized(featurized, EXPLAINED_FEATURES);
        let header = slot.model.header();
        versions.push(header.model_version.clone());
        let mapping = self
            .taxonomy
            .resolve(&header.label_scheme, &prediction.label)?;
        let code = match dim {
            Dimension::Category => mapping.category.clone(),
            Dimension::Cause => mapping.cause.clone(),
        }?;
        let features: Vec<&str> = prediction
            .top_features
            .iter()
            .map(|f| f.feature.as_str())
            .collect();
        let reason = Reason {
            code: format!("model:{}", header.model_version),
            detail: format!(
                "predicted “{}” (p = {:.2}, raw {:.2}); top features: {}",
                prediction.label,
                prediction.confidence,
                prediction.raw_confidence,
                features.join(", ")
            ),
            evidence: None,
        };
        Some(ModelView {
            code,
            implies: mapping.cause.filter(|_| dim == Dimension::Category),
            threshold: slot.threshold(review),
            prediction,
            reason,
        })
    }

    /// The category, the cause the category model implies (if any), and the department of
    /// the product that decided it.
    fn category(
        &self,
        text: &Text<'_>,
        review: Review,
        versions: &mut Vec<String>,
    ) -> (Label, Option<Candidate>, Option<String>) {
        let dim = Dimension::Category;
        let fixed = Self::fixed_threshold(review);
        let model = self.predict(text, dim, review, versions);
        let implied = model.as_ref().and_then(|m| {
            Some(Candidate {
                code: m.implies.clone()?,
                confidence: m.prediction.confidence * IMPLIED_CAUSE_FACTOR,
                // Under a target precision the implied cause clears review exactly when the
                // category decision it comes from would.
                threshold: match review {
                    Review::Threshold(t) => t,
                    Review::TargetPrecision(_) => m.threshold * IMPLIED_CAUSE_FACTOR,
                },
                decider: Decider::Model,
                reasons: vec![m.reason.clone()],
            })
        });
        if let Some(c) = self.certain(text, dim, fixed) {
            return (self.label(dim, c, text), implied, None);
        }
        let mut text_side = Vec::new();
        if let Some(m) = model {
            text_side.push(Candidate {
                code: m.code,
                confidence: m.prediction.confidence,
                threshold: m.threshold,
                decider: Decider::Model,
                reasons: vec![m.reason],
            });
        }
        text_side.extend(self.strongest_rule(text, dim, fixed));
        let (product, department, note) = self.product(text, fixed);
        let chosen = match product {
            Some(mut p) => {
                if let Some(t) = text_side.first().filter(|t| t.code != p.code) {
                    p.reasons.push(conflict(&p, t));
                }
                p
            }
            None => {
                let mut c = choose(text_side).unwrap_or_else(|| fallback("B99", fixed));
                c.reasons.extend(note);
                c
            }
        };
        (self.label(dim, chosen, text), implied, department)
    }

    /// The cause: certain rule, then the text's candidates (first that passes, else first).
    fn cause(
        &self,
        text: &Text<'_>,
        review: Review,
        implied: Option<Candidate>,
        versions: &mut Vec<String>,
    ) -> Label {
        let dim = Dimension::Cause;
        let fixed = Self::fixed_threshold(review);
        if let Some(c) = self.certain(text, dim, fixed) {
            return self.label(dim, c, text);
        }
        let mut candidates = Vec::new();
        let model = self
            .predict(text, dim, review, versions)
            .map(|m| Candidate {
                code: m.code,
                confidence: m.prediction.confidence,
                threshold: m.threshold,
                decider: Decider::Model,
                reasons: vec![m.reason],
            });
        // A cause implied by the category model (Debt collection → C12) goes first when it
        // is surer than the cause model.
        match (implied, model) {
            (Some(i), Some(m)) if i.confidence > m.confidence => candidates.extend([i, m]),
            (i, m) => candidates.extend(m.into_iter().chain(i)),
        }
        if text.language == Language::Zh {
            // A confidence measured on the deployment's own history (a calibrated cause model)
            // outranks one declared in the lexicon: with such a model, the lexicon decides
            // only what the model leaves undecided, and never skips review on its own.
            let measured = self
                .model(text.language, dim)
                .is_some_and(|m| m.calibration().is_some());
            let threshold = if measured { UNREACHABLE } else { fixed };
            candidates.extend(self.lexicon_cause(text, threshold));
        }
        candidates.extend(self.strongest_rule(text, dim, fixed));
        let chosen = choose(candidates).unwrap_or_else(|| fallback("C99", fixed));
        self.label(dim, chosen, text)
    }

    /// A certain rule of `dim` that fires.
    fn certain(&self, text: &Text<'_>, dim: Dimension, threshold: f32) -> Option<Candidate> {
        let h = text.hits.iter().find(|h| h.target == dim && h.certain)?;
        Some(Candidate {
            code: h.code.clone(),
            confidence: 1.0,
            threshold,
            decider: Decider::CertainRule,
            reasons: vec![rule_reason(h)],
        })
    }

    /// The strongest uncertain rule of `dim`, its confidence its share of the rule evidence
    /// (at most [`RULE_ONLY_MAX_CONFIDENCE`]).
    fn strongest_rule(&self, text: &Text<'_>, dim: Dimension, threshold: f32) -> Option<Candidate> {
        let mine: Vec<&RuleHit> = text.hits.iter().filter(|h| h.target == dim).collect();
        let best = mine.first()?;
        let total: f32 = mine.iter().map(|h| h.score).sum();
        let share = if total > 0.0 { best.score / total } else { 0.0 };
        Some(Candidate {
            code: best.code.clone(),
            confidence: (RULE_ONLY_MAX_CONFIDENCE * share).clamp(0.0, RULE_ONLY_MAX_CONFIDENCE),
            threshold,
            decider: Decider::Rules,
            reasons: Vec::new(),
        })
    }

    /// The Chinese cause lexicon's decision on the complaint's body.
    fn lexicon_cause(&self, text: &Text<'_>, threshold: f32) -> Option<Candidate> {
        let lexicon = self.lexicon.as_ref()?;
        let body = text.folded.get(..text.body_end)?;
        let d = lexicon.decide(body, self.negation.as_ref())?;
        Some(Candidate {
            code: d.code,
            confidence: d.confidence,
            threshold,
            decider: Decider::Rules,
            reasons: d.reasons,
        })
    }

    /// The category the product field names: (candidate, department, a note when the field
    /// names products of several categories).
    fn product(
        &self,
        text: &Text<'_>,
        threshold: f32,
    ) -> (Option<Candidate>, Option<String>, Option<Reason>) {
        let Some(field) = text.product else {
            return (None, None, None);
        };
        let reason = |detail: String| Reason {
            code: "product".into(),
            detail,
            evidence: None,
        };
        let lookup = self
            .catalogue
            .as_ref()
            .map_or(Lookup::Unknown, |c| c.lookup(field));
        match lookup {
            Lookup::Found {
                product,
                kind,
                confidence,
            } => {
                let detail = format!(
                    "intake product “{field}” → catalogue product {} ({}, {kind:?} match), department {}",
                    product.id, product.zh, product.department
                );
                let candidate = Candidate {
                    code: product.category.clone(),
                    confidence,
                    threshold,
                    decider: Decider::Product,
                    reasons: vec![reason(detail)],
                };
                (Some(candidate), Some(product.department.clone()), None)
            }
            Lookup::Ambiguous(found) => {
                let ids: Vec<&str> = found.iter().map(|p| p.id.as_str()).collect();
                let note = reason(format!(
                    "intake product “{field}” names products of several categories ({}): the text decides",
                    ids.join(", ")
                ));
                (None, None, Some(note))
            }
            Lookup::Unknown => {
                let entry = self.taxonomy.find_by_name(Dimension::Category, field);
                let candidate = entry.map(|e| Candidate {
                    code: e.code.clone(),
                    confidence: 1.0,
                    threshold,
                    decider: Decider::Product,
                    reasons: vec![reason(format!("intake product “{field}” names {}", e.code))],
                });
                (candidate, None, None)
            }
        }
    }

    /// Turn the chosen candidate into a label, adding the uncertain rules that agree.
    fn label(&self, dim: Dimension, c: Candidate, text: &Text<'_>) -> Label {
        let (zh, en) = self
            .taxonomy
            .entry(dim, &c.code)
            .map(|e| (e.zh.clone(), e.en.clone()))
            .unwrap_or_default();
        let mut reasons = c.reasons;
        if c.decider != Decider::CertainRule {
            reasons.extend(
                text.hits
                    .iter()
                    .filter(|h| h.target == dim && h.code == c.code && !h.certain)
                    .map(rule_reason),
            );
        }
        Label {
            code: c.code,
            zh,
            en,
            confidence: if c.confidence.is_finite() {
                c.confidence.clamp(0.0, 1.0)
            } else {
                0.0
            },
            decided_by: c.decider,
            reasons,
            threshold: c.threshold,
        }
    }
}

/// The first candidate whose confidence clears its threshold, else the first there is.
fn choose(candidates: Vec<Candidate>) -> Option<Candidate> {
    match candidates.iter().position(Candidate::passes) {
        Some(i) => candidates.into_iter().nth(i),
        None => candidates.into_iter().next(),
    }
}

fn fallback(code: &str, threshold: f32) -> Candidate {
    Candidate {
        code: code.into(),
        confidence: 0.0,
        threshold,
        decider: Decider::Fallback,
        reasons: vec![Reason {
            code: "fallback".into(),
            detail: "no rule fired and no model covers this language".into(),
            evidence: None,
        }],
    }
}

/// The product decided the category, the text points at another: say so (the category
/// stays with the product; the cause is the text's).
fn conflict(product: &Candidate, text: &Candidate) -> Reason {
    Reason {
        code: "structure_text_conflict".into(),
        detail: format!(
            "the text points at {} ({:?}, confidence {:.2}); the category follows the product ({}), the cause follows the text",
            text.code, text.decider, text.confidence, product.code
        ),
        evidence: None,
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
    use crate::model::{CalibrationMethod, Example, TrainOptions};
    use crate::severity::Severity;

    fn input(text: &str) -> ComplaintInput {
        ComplaintInput {
            text: text.into(),
            channel: "web".into(),
            ..ComplaintInput::default()
        }
    }

    /// A tiny Chinese cause model over the cn_category scheme, from generated text.
    fn zh_cause_model(calibration: CalibrationMethod) -> Model {
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
            calibration,
            ..TrainOptions::chinese()
        };
        Model::train(&ex, &opts, |_| {}).expect("train")
    }

    /// The README's Chinese example (services/intake/examples/zh-valid.json), as the
    /// classification service builds its input.
    fn readme_example() -> ComplaintInput {
        ComplaintInput {
            title: Some("还款后仍被重复扣款".into()),
            text: "我已于11月10日提前结清借款，但11月20日银行卡又被扣款1,280.00元。联系客服三次均未处理，要求退还重复扣款并出具结清证明。\n退还重复扣款1,280元并出具结清证明".into(),
            product: Some("消费贷".into()),
            language_hint: Some("zh-CN".into()),
            amount: Some(Amount {
                minor: 128_000,
                currency: "CNY".into(),
            }),
            vulnerable: VulnerableFlags {
                elderly: true,
                ..VulnerableFlags::default()
            },
            ..input("")
        }
    }

    #[test]
    fn the_readme_chinese_example_routes_without_a_specialist() {
        let c = Classifier::embedded().expect("classifier");
        for r in [
            c.classify_at_precision(&readme_example(), DEFAULT_TARGET_PRECISION),
            c.classify(&readme_example(), DEFAULT_REVIEW_THRESHOLD),
        ] {
            assert_eq!(
                (r.category.code.as_str(), r.category.decided_by),
                ("B02.02", Decider::Product)
            );
            assert_eq!(
                (r.cause.code.as_str(), r.cause.decided_by),
                ("C09", Decider::Rules)
            );
            assert!(r.category.passes() && r.cause.passes(), "{r:#?}");
            assert!(!r.needs_review);
            assert_eq!(r.department.as_deref(), Some("lending"));
            assert!(
                r.cause
                    .reasons
                    .iter()
                    .any(|x| x.code == "lexicon:funds.unauthorised")
            );
        }
    }

    #[test]
    fn structure_decides_the_category_and_text_the_cause() {
        let c = Classifier::embedded().expect("classifier");
        // English: the product says credit card, the text is about a debt collector.
        let mut i = input(
            "A debt collector keeps calling my job and my family about a debt that is not mine, and threatened to sue.",
        );
        i.product = Some("Credit card".into());
        let r = c.classify_at_precision(&i, 0.9);
        assert_eq!(
            (r.category.code.as_str(), r.category.decided_by),
            ("B03.02", Decider::Product)
        );
        assert_eq!(r.cause.code, "C12");
        assert!(
            r.category
                .reasons
                .iter()
                .any(|x| x.code == "structure_text_conflict"),
            "{:#?}",
            r.category.reasons
        );
        assert_eq!(r.department.as_deref(), Some("payments"));
        // Chinese: the product says credit card, the text describes collection abuse.
        let mut i = input("催收人员天天爆通讯录，辱骂我的家人");
        i.product = Some("信用卡".into());
        let r = c.classify_at_precision(&i, 0.9);
        assert_eq!(r.category.code, "B03.02");
        assert_eq!(
            (r.cause.code.as_str(), r.cause.decided_by),
            ("C12", Decider::CertainRule)
        );
        assert!(
            r.category
                .reasons
                .iter()
                .any(|x| x.code == "structure_text_conflict")
        );
        assert!(!r.needs_review);
    }

    #[test]
    fn unknown_and_ambiguous_products_leave_the_category_to_the_text() {
        let c = Classifier::rules_only().expect("rules");
        let mut i = input("信用卡被盗刷了");
        i.product = Some("花园洋房".into());
        let r = c.classify_at_precision(&i, 0.9);
        assert_eq!(
            (r.category.code.as_str(), r.category.decided_by),
            ("B03.02", Decider::Rules)
        );
        assert!(r.needs_review, "text rules alone do not clear 0.9");
        assert_eq!(r.department, None);
        i.product = Some("信用卡现金分期".into());
        let r = c.classify_at_precision(&i, 0.9);
        assert_eq!(r.category.decided_by, Decider::Rules);
        assert!(
            r.category
                .reasons
                .iter()
                .any(|x| x.code == "product" && x.detail.contains("several categories"))
        );
        // A taxonomy name still works as a product.
        i.product = Some("个人住房贷款".into());
        assert_eq!(c.classify(&i, 0.7).category.code, "B02.01");
    }

    #[test]
    fn english_uses_the_embedded_models() {
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
            vec!["cfpb-product-v5".to_string(), "cfpb-cause-v3".to_string()]
        );
        assert_eq!(r.cause.decided_by, Decider::Model);
        assert!(r.cause.code.starts_with('C') && r.cause.code != "C99");
        // Under a target precision a calibrated model's threshold is its artifact's.
        let p = c.classify_at_precision(
            &input("My mortgage servicer started foreclosure on my home."),
            0.9,
        );
        let model = c
            .model(Language::En, Dimension::Category)
            .expect("category model");
        assert_eq!(Some(p.category.threshold), model.threshold_for(0.9));
        assert_eq!(p.review, Review::TargetPrecision(0.9));
    }

    #[test]
    fn certain_rules_override_the_model() {
        let c = Classifier::rules_only()
            .expect("rules")
            .with_model(Language::Zh, zh_cause_model(CalibrationMethod::Auto))
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
        // Denied, the certain phrase is no evidence.
        let r = c.classify(&input("利息太高 手续费 服务费，并没有爆通讯录"), 0.7);
        assert_eq!(r.cause.code, "C11");
    }

    #[test]
    fn a_calibrated_model_outranks_the_lexicon() {
        let text = input("客服不理人 电话打不通 没人处理，还收取砍头息");
        // Without a model the lexicon decides: 砍头息 is decisive pricing evidence (contested
        // by strong service evidence, so it waits for review).
        let rules = Classifier::rules_only().expect("rules");
        let r = rules.classify_at_precision(&text, 0.9);
        assert_eq!(
            (r.cause.code.as_str(), r.cause.decided_by),
            ("C11", Decider::Rules)
        );
        // With a calibrated model of the deployment's history, the model's measured
        // confidence decides; the lexicon cannot skip review on its own any more.
        let c = rules
            .clone()
            .with_model(Language::Zh, zh_cause_model(CalibrationMethod::Platt))
            .expect("model");
        // (Whether or not the model clears its threshold here, the lexicon cannot: the model,
        // first in line, decides.)
        let r = c.classify_at_precision(&text, 0.9);
        assert_eq!(r.cause.decided_by, Decider::Model, "{:#?}", r.cause);
        assert_ne!(r.cause.threshold, UNREACHABLE);
    }

    #[test]
    fn target_precision_uses_each_deciders_threshold() {
        let calibrated = zh_cause_model(CalibrationMethod::Platt);
        let plain = zh_cause_model(CalibrationMethod::None);
        let text = input("利息太高 手续费 服务费 乱收费");
        for (model, expected) in [
            (
                calibrated.clone(),
                calibrated.threshold_for(0.95).unwrap_or(UNREACHABLE),
            ),
            // No calibration stored: the model's confidence must reach the target itself.
            (plain, 0.95),
        ] {
            let c = Classifier::rules_only()
                .expect("rules")
                .with_model(Language::Zh, model)
                .expect("model");
            let r = c.classify_at_precision(&text, 0.95);
            assert_eq!(r.cause.decided_by, Decider::Model);
            assert_eq!(r.cause.threshold, expected);
            assert_eq!(r.cause.passes(), r.cause.confidence >= expected);
        }
        // A target no decider reaches leaves everything to a specialist.
        let c = Classifier::embedded().expect("classifier");
        assert!(
            c.classify_at_precision(&readme_example(), 0.999)
                .needs_review
        );
    }

    #[test]
    fn chinese_without_a_model_or_product_goes_to_review() {
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
        // The cause comes from the lexicon: 盗刷 is decisive for funds safety, 不理 (service)
        // is strong evidence against it, so it is contested.
        assert_eq!(
            (r.cause.code.as_str(), r.cause.decided_by),
            ("C09", Decider::Rules)
        );
        assert!(r.cause.confidence < 0.9);
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
            i.product = Some(t.chars().take(50).collect());
            i.amount = Some(Amount {
                minor: i64::MIN,
                currency: "".into(),
            });
            for r in [
                c.classify(&i, f32::NAN),
                c.classify_at_precision(&i, f32::NAN),
            ] {
                assert!(r.needs_review && r.confidence.is_finite());
            }
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
