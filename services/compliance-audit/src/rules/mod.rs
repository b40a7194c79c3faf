//! The compliance rules: what each one checks lives in [`evaluate`]; its article, severity,
//! owner and numbers live in `rules/violations.toml` (data, cited), loaded here.
//!
//! Every rule the code knows must be in the file and every rule in the file must be known, so
//! a violation always carries its article and nobody edits a rule that does nothing.

pub mod evaluate;

use std::collections::BTreeMap;

use redress_proto::common::v1::Severity;
use serde::Deserialize;

pub use evaluate::{Facts, Finding, Outcome, evaluate};

/// The shipped rules file.
pub const SHIPPED: &str = include_str!("../../rules/violations.toml");

/// The rules the code implements (each a function in [`evaluate`]), by id.
pub const KNOWN: &[&str] = &[
    "decision_late",
    "decision_not_told",
    "extension_not_told",
    "extension_unapproved",
    "notice_late",
    "conflicted_handler",
    "review_late",
    "passed_around",
    "unowned_while_routed",
    "contact_read_without_case",
    "contact_read_without_purpose",
    "contact_read_by_role",
    "contact_read_volume",
    "decision_incomplete",
    "closed_without_follow_up",
    "register_entry_missing",
    "log_gap",
];

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("rules file: {0}")]
    Parse(String),
    #[error("rules file: rule `{0}`: {1}")]
    Rule(String, String),
}

/// One rule as the file states it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: String,
    article: String,
    severity: String,
    owner: String,
    confirmed: bool,
    #[serde(default)]
    approval_from_tier: Option<u32>,
    #[serde(default)]
    approver_roles: Option<Vec<String>>,
    #[serde(default)]
    max_transfers: Option<u32>,
    #[serde(default)]
    reader_roles: Option<Vec<String>>,
    #[serde(default)]
    max_reads_per_day: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[allow(dead_code)]
    source: toml::Table,
    rule: Vec<RuleFile>,
}

/// What every violation of a rule says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub article: String,
    pub severity: Severity,
    pub owner: String,
    pub confirmed: bool,
}

/// The rules and their numbers.
#[derive(Debug, Clone)]
pub struct Rules {
    by_id: BTreeMap<String, Rule>,
    pub approval_from_tier: u32,
    pub approver_roles: Vec<String>,
    pub max_transfers: u32,
    pub reader_roles: Vec<String>,
    pub max_reads_per_day: u32,
}

impl Rules {
    pub fn shipped() -> Result<Self, RulesError> {
        Self::parse(SHIPPED)
    }

    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let file: File = toml::from_str(text).map_err(|e| RulesError::Parse(e.to_string()))?;
        let mut by_id = BTreeMap::new();
        let mut numbers = Numbers::default();
        for rule in file.rule {
            if !KNOWN.contains(&rule.id.as_str()) {
                return Err(RulesError::Rule(rule.id, "no such rule in the code".into()));
            }
            let severity = Severity::from_name(&rule.severity).ok_or_else(|| {
                RulesError::Rule(
                    rule.id.clone(),
                    format!(
                        "severity `{}`: not low, medium, high or critical",
                        rule.severity
                    ),
                )
            })?;
            if rule.article.trim().is_empty() || rule.owner.trim().is_empty() {
                return Err(RulesError::Rule(
                    rule.id,
                    "article and owner are required".into(),
                ));
            }
            numbers.take(&rule);
            let id = rule.id.clone();
            let parsed = Rule {
                id: rule.id,
                article: rule.article,
                severity,
                owner: rule.owner,
                confirmed: rule.confirmed,
            };
            if by_id.insert(id.clone(), parsed).is_some() {
                return Err(RulesError::Rule(id, "listed twice".into()));
            }
        }
        if let Some(missing) = KNOWN.iter().find(|id| !by_id.contains_key(**id)) {
            return Err(RulesError::Rule(
                (*missing).into(),
                "missing from the file".into(),
            ));
        }
        numbers.into_rules(by_id)
    }

    /// The rule's data; every known id is present (checked when parsed).
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.by_id.get(id)
    }
}

/// The rules' own parameters, each required on its rule.
#[derive(Default)]
struct Numbers {
    approval_from_tier: Option<u32>,
    approver_roles: Option<Vec<String>>,
    max_transfers: Option<u32>,
    reader_roles: Option<Vec<String>>,
    max_reads_per_day: Option<u32>,
}

impl Numbers {
    fn take(&mut self, rule: &RuleFile) {
        self.approval_from_tier = self.approval_from_tier.or(rule.approval_from_tier);
        self.approver_roles = self.approver_roles.take().or(rule.approver_roles.clone());
        self.max_transfers = self.max_transfers.or(rule.max_transfers);
        self.reader_roles = self.reader_roles.take().or(rule.reader_roles.clone());
        self.max_reads_per_day = self.max_reads_per_day.or(rule.max_reads_per_day);
    }

    fn into_rules(self, by_id: BTreeMap<String, Rule>) -> Result<Rules, RulesError> {
        let need = |rule: &str, field: &str| {
            RulesError::Rule(rule.into(), format!("`{field}` is required"))
        };
        Ok(Rules {
            by_id,
            approval_from_tier: self
                .approval_from_tier
                .ok_or_else(|| need("extension_unapproved", "approval_from_tier"))?,
            approver_roles: self
                .approver_roles
                .ok_or_else(|| need("extension_unapproved", "approver_roles"))?,
            max_transfers: self
                .max_transfers
                .ok_or_else(|| need("passed_around", "max_transfers"))?,
            reader_roles: self
                .reader_roles
                .ok_or_else(|| need("contact_read_by_role", "reader_roles"))?,
            max_reads_per_day: self
                .max_reads_per_day
                .ok_or_else(|| need("contact_read_volume", "max_reads_per_day"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_names_every_rule_with_its_article() {
        let rules = Rules::shipped().unwrap_or_else(|e| panic!("{e}"));
        for id in KNOWN {
            let rule = rules.get(id).unwrap_or_else(|| panic!("{id}"));
            assert!(!rule.article.is_empty(), "{id}");
        }
        assert_eq!(rules.max_transfers, 2);
    }

    #[test]
    fn an_unknown_or_missing_rule_is_refused() {
        let extra = format!(
            "{SHIPPED}\n[[rule]]\nid = \"made_up\"\narticle = \"x\"\nseverity = \"low\"\nowner = \"x\"\nconfirmed = false\n"
        );
        let error = Rules::parse(&extra)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("made_up"), "{error}");
        let without = SHIPPED.replace("id = \"log_gap\"", "id = \"decision_late\"");
        let error = Rules::parse(&without)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("decision_late") || error.contains("log_gap"),
            "{error}"
        );
    }
}
