//! Which notices a regime requires, and by when: `crates/regime/data/notices/<regime>.toml`,
//! each notice with the article it comes from. Loaded once; no rule lives in code.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use redress_proto::events::v1::NoticeKind;
use serde::Deserialize;

const SHIPPED: [(&str, &str); 3] = [
    (
        "cn-nfra",
        include_str!("../../../crates/regime/data/notices/cn-nfra.toml"),
    ),
    (
        "us-cfpb",
        include_str!("../../../crates/regime/data/notices/us-cfpb.toml"),
    ),
    (
        "uk-fca",
        include_str!("../../../crates/regime/data/notices/uk-fca.toml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum NoticesError {
    #[error("no notices file for regime `{0}` (shipped: cn-nfra, us-cfpb, uk-fca)")]
    Unknown(String),
    #[error("notices/{regime}.toml: {reason}")]
    Invalid { regime: String, reason: String },
}

/// When a notice must have been sent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Due {
    /// "decision_due": the case's decision deadline.
    Named(String),
    /// Hours after the event that triggers it.
    Within { hours: u32 },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Notice {
    pub kind: String,
    /// A legal notice cannot be opted out of and may override quiet hours.
    pub legal: bool,
    pub due: Option<Due>,
    #[serde(default)]
    pub confirmed: bool,
    pub article: String,
}

impl Notice {
    /// The time the notice must be sent by, from the triggering event's time and the case's
    /// decision deadline when known.
    pub fn due_by(
        &self,
        triggered_at: DateTime<Utc>,
        decision_due: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match &self.due {
            Some(Due::Within { hours }) => Some(triggered_at + Duration::hours(i64::from(*hours))),
            Some(Due::Named(_)) => decision_due,
            None => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct File {
    regime: String,
    notice: Vec<Notice>,
}

/// Every shipped regime's notices, by regime and kind.
#[derive(Debug, Clone)]
pub struct Notices {
    by_regime: BTreeMap<String, BTreeMap<NoticeKind, Notice>>,
    pub default_regime: String,
}

impl Notices {
    pub fn shipped(default_regime: &str) -> Result<Self, NoticesError> {
        let mut by_regime = BTreeMap::new();
        for (name, text) in SHIPPED {
            by_regime.insert(name.to_owned(), parse(name, text)?);
        }
        if !by_regime.contains_key(default_regime) {
            return Err(NoticesError::Unknown(default_regime.to_owned()));
        }
        Ok(Self {
            by_regime,
            default_regime: default_regime.to_owned(),
        })
    }

    /// The rule for `kind` under `regime` (the default regime when it names none we ship);
    /// `None` when the regime does not provide the notice at all.
    pub fn rule(&self, regime: &str, kind: NoticeKind) -> Option<(&str, &Notice)> {
        let (name, notices) = self
            .by_regime
            .get_key_value(regime)
            .or_else(|| self.by_regime.get_key_value(&self.default_regime))?;
        notices.get(&kind).map(|n| (name.as_str(), n))
    }
}

fn parse(name: &str, text: &str) -> Result<BTreeMap<NoticeKind, Notice>, NoticesError> {
    let invalid = |reason: String| NoticesError::Invalid {
        regime: name.to_owned(),
        reason,
    };
    let file: File = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if file.regime != name {
        return Err(invalid(format!("says regime `{}`", file.regime)));
    }
    let mut out = BTreeMap::new();
    for notice in file.notice {
        let kind = kind_from_token(&notice.kind)
            .ok_or_else(|| invalid(format!("unknown notice kind `{}`", notice.kind)))?;
        if let Some(Due::Named(named)) = &notice.due
            && named != "decision_due"
        {
            return Err(invalid(format!("{}: unknown due `{named}`", notice.kind)));
        }
        if out.insert(kind, notice).is_some() {
            return Err(invalid(format!("notice kind {kind:?} listed twice")));
        }
    }
    Ok(out)
}

/// Every kind of notice there is.
pub const ALL_KINDS: [NoticeKind; 10] = [
    NoticeKind::Receipt,
    NoticeKind::Assigned,
    NoticeKind::Extended,
    NoticeKind::ClockPaused,
    NoticeKind::InputRequested,
    NoticeKind::Decision,
    NoticeKind::ReviewOutcome,
    NoticeKind::SatisfactionSurvey,
    NoticeKind::SatisfactionReminder,
    NoticeKind::WithdrawalConfirmed,
];

/// `decision` ⇄ `NoticeKind::Decision`: the lower-case name without the enum's prefix.
pub fn kind_token(kind: NoticeKind) -> String {
    kind.as_str_name()
        .trim_start_matches("NOTICE_KIND_")
        .to_ascii_lowercase()
}

pub fn kind_from_token(token: &str) -> Option<NoticeKind> {
    NoticeKind::from_str_name(&format!("NOTICE_KIND_{}", token.to_ascii_uppercase()))
        .filter(|k| *k != NoticeKind::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_regime_loads_and_cites_an_article_for_each_notice() {
        let notices = Notices::shipped("cn-nfra").unwrap();
        for (name, _) in SHIPPED {
            let decision = notices.rule(name, NoticeKind::Decision).unwrap().1;
            assert!(
                decision.legal,
                "{name}: the decision notice is a legal duty"
            );
            assert_eq!(decision.due, Some(Due::Named("decision_due".into())));
            for kind in notices.by_regime[name].values() {
                assert!(!kind.article.trim().is_empty(), "{name}/{}", kind.kind);
            }
        }
        let survey = notices
            .rule("cn-nfra", NoticeKind::SatisfactionSurvey)
            .unwrap()
            .1;
        assert!(!survey.legal, "surveys can be opted out of");
    }

    #[test]
    fn an_unknown_regime_is_refused_by_name() {
        let error = Notices::shipped("xx-none").unwrap_err().to_string();
        assert!(error.contains("xx-none"), "{error}");
    }
}
