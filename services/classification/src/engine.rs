//! The classifier engine behind the service: built once at start (a broken taxonomy or model
//! stops start-up naming the file and line), and the translation between the bus contract and
//! the engine's types.

use redress_classifier as engine;
use redress_proto::{
    common::v1::{Channel, Severity},
    events::v1::{self as events, ComplaintSummary},
};

use crate::config::ClassificationConfig;

/// The engine with its models loaded.
#[derive(Clone)]
pub struct Engine {
    classifier: engine::Classifier,
    pub target_precision: f32,
}

impl Engine {
    pub fn load(config: &ClassificationConfig) -> Result<Self, engine::Error> {
        let mut classifier = match &config.en_model {
            Some(_) => engine::Classifier::rules_only()?,
            None => engine::Classifier::embedded()?,
        };
        if let Some(path) = &config.en_model {
            classifier = classifier.with_model(engine::Language::En, engine::Model::load(path)?)?;
        }
        if let Some(path) = &config.zh_model {
            classifier = classifier.with_model(engine::Language::Zh, engine::Model::load(path)?)?;
        }
        Ok(Self {
            classifier,
            target_precision: config.target_precision,
        })
    }

    pub fn taxonomy(&self) -> &engine::Taxonomy {
        self.classifier.taxonomy()
    }

    pub fn classifier(&self) -> &engine::Classifier {
        &self.classifier
    }

    /// This engine with `model` in place of its model of the same language and dimension.
    pub fn with_model(
        &self,
        language: engine::Language,
        model: engine::Model,
    ) -> Result<Self, engine::Error> {
        Ok(Self {
            classifier: self.classifier.clone().with_model(language, model)?,
            target_precision: self.target_precision,
        })
    }

    pub fn classify(&self, input: &engine::ComplaintInput) -> events::Classification {
        to_proto(
            &self
                .classifier
                .classify_at_precision(input, self.target_precision),
        )
    }
}

/// What the engine needs from a registered complaint (its text is already redacted).
pub fn input_of(received: &ComplaintSummary) -> engine::ComplaintInput {
    let vulnerability = received.vulnerability.unwrap_or_default();
    let mut other = Vec::new();
    for (flag, name) in [
        (vulnerability.minor, "minor"),
        (vulnerability.financial_hardship, "financial_hardship"),
        (vulnerability.language_barrier, "language_barrier"),
        (vulnerability.illness, "illness"),
    ] {
        if flag {
            other.push(name.to_owned());
        }
    }
    engine::ComplaintInput {
        text: format!("{}\n{}", received.description, received.desired_resolution),
        title: Some(received.title.clone()).filter(|t| !t.is_empty()),
        product: Some(received.product.clone()).filter(|p| !p.is_empty()),
        channel: Channel::try_from(received.channel)
            .map(Channel::token)
            .unwrap_or_default()
            .to_owned(),
        language_hint: Some(received.locale.clone()).filter(|l| !l.is_empty()),
        amount: received.amount_in_dispute.as_ref().and_then(minor_units),
        vulnerable: engine::VulnerableFlags {
            elderly: vulnerability.elderly,
            disabled: vulnerability.disability,
            other,
        },
        repeat_count: received.recent_complaints,
    }
}

/// Minor units (cents, fen) of an amount; `None` when it does not fit or has no currency.
pub fn minor_units(money: &redress_proto::common::v1::Money) -> Option<engine::Amount> {
    Some(engine::Amount {
        minor: money.minor_units()?,
        currency: money.currency_code.clone(),
    })
}

fn to_proto(c: &engine::Classification) -> events::Classification {
    events::Classification {
        category: Some(label(&c.category)),
        cause: Some(label(&c.cause)),
        product: c.product.clone().unwrap_or_default(),
        severity: severity(c.severity.level) as i32,
        severity_reasons: c.severity.reasons.iter().map(reason).collect(),
        confidence: f64::from(c.confidence),
        needs_review: c.needs_review,
        model_version: c.model_versions.join(","),
        taxonomy_version: c.taxonomy_version.clone(),
        rules_version: format!("{}+{}", c.rules_version, c.severity_version),
        language: match c.language {
            engine::Language::Zh => "zh".into(),
            engine::Language::En => "en".into(),
        },
    }
}

fn label(l: &engine::classify::Label) -> events::TaxonomyLabel {
    events::TaxonomyLabel {
        code: l.code.clone(),
        name_zh: l.zh.clone(),
        name_en: l.en.clone(),
        confidence: f64::from(l.confidence),
        decided_by: decider(&l.decided_by).into(),
        reasons: l.reasons.iter().map(reason).collect(),
    }
}

fn decider(d: &engine::classify::Decider) -> &'static str {
    use engine::classify::Decider;
    match d {
        Decider::CertainRule => "certain_rule",
        Decider::Product => "product",
        Decider::Model => "model",
        Decider::Rules => "rules",
        Decider::Fallback => "fallback",
    }
}

fn reason(r: &engine::Reason) -> events::Reason {
    events::Reason {
        code: r.code.clone(),
        detail: r.detail.clone(),
        evidence: r
            .evidence
            .as_ref()
            .map(|e| e.text.clone())
            .unwrap_or_default(),
    }
}

pub fn severity(s: engine::Severity) -> Severity {
    match s {
        engine::Severity::Low => Severity::Low,
        engine::Severity::Medium => Severity::Medium,
        engine::Severity::High => Severity::High,
        engine::Severity::Critical => Severity::Critical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_become_minor_units_without_overflow() {
        let m = |units, nanos| redress_proto::common::v1::Money {
            currency_code: "CNY".into(),
            units,
            nanos,
        };
        assert_eq!(
            minor_units(&m(12, 340_000_000)).map(|a| a.minor),
            Some(1234)
        );
        assert_eq!(minor_units(&m(i64::MAX, 0)).map(|a| a.minor), None);
    }

    #[test]
    fn the_shipped_engine_classifies_an_english_complaint_with_reasons() {
        let engine = Engine::load(&ClassificationConfig::default());
        let Ok(engine) = engine else {
            panic!("engine: {:?}", engine.err())
        };
        let received = ComplaintSummary {
            description: "A debt collector keeps calling my workplace about a debt I do not owe and threatened to sue me.".into(),
            channel: Channel::Web as i32,
            ..Default::default()
        };
        let c = engine.classify(&input_of(&received));
        assert_eq!(c.language, "en");
        assert!(c.category.as_ref().is_some_and(|l| !l.code.is_empty()));
        assert!(
            c.severity >= Severity::Medium as i32,
            "a threat to sue raises severity: {c:?}"
        );
        assert!(!c.severity_reasons.is_empty());
    }
}
