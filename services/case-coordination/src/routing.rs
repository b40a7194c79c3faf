//! Routing rules and the handler roster, as data (`rules/routing-v1.toml`,
//! `rules/roster-v1.toml`): which department must act on a classified complaint, in which
//! queue, and who works each department.

use std::path::Path;

use redress_proto::common::v1::{Channel, Severity};
use serde::Deserialize;

/// The rules shipped with the service.
pub const ROUTING_V1: &str = include_str!("../rules/routing-v1.toml");
/// The roster shipped with the service.
pub const ROSTER_V1: &str = include_str!("../rules/roster-v1.toml");

/// The department of a case that has not been routed yet.
pub const TRIAGE: &str = "triage";

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingFile {
    version: String,
    #[allow(dead_code)]
    taxonomy: String,
    default_department: String,
    #[serde(default)]
    hold_for_classification_review: bool,
    senior: SeniorRule,
    #[serde(default)]
    partner: Vec<Partner>,
    #[serde(default)]
    route: Vec<Route>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeniorRule {
    #[serde(default)]
    severities: Vec<String>,
    #[serde(default)]
    regulator_referred: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Partner {
    slug: String,
    #[allow(dead_code)]
    name: String,
    products: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    name: String,
    #[serde(default)]
    category: Vec<String>,
    #[serde(default)]
    cause: Vec<String>,
    #[serde(default)]
    product: Vec<String>,
    #[serde(default)]
    severity: Vec<String>,
    #[serde(default)]
    channel: Vec<String>,
    department: String,
}

/// What a complaint is, as far as routing cares.
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    pub category: &'a str,
    pub cause: &'a str,
    pub product: &'a str,
    pub severity: Severity,
    pub channel: Channel,
    pub regulator_ref: &'a str,
    pub needs_review: bool,
}

/// Where a complaint goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub department: String,
    /// standard, senior or partner.
    pub queue: Queue,
    pub partner: Option<String>,
    pub tags: Vec<String>,
    /// The rule that decided (its name, `partner:<slug>` or `default`).
    pub rule: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Standard,
    Senior,
    Partner,
}

impl Queue {
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Standard => "standard",
            Queue::Senior => "senior",
            Queue::Partner => "partner",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "senior" => Queue::Senior,
            "partner" => Queue::Partner,
            _ => Queue::Standard,
        }
    }
}

/// The routing rules, validated.
#[derive(Debug, Clone)]
pub struct Routing {
    file: RoutingFile,
}

impl Routing {
    pub fn shipped() -> Result<Self, RulesError> {
        Self::parse("rules/routing-v1.toml", ROUTING_V1)
    }

    pub fn from_path(path: &Path) -> Result<Self, RulesError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    pub fn parse(label: &str, text: &str) -> Result<Self, RulesError> {
        let invalid = |message: String| RulesError::Invalid {
            file: label.to_owned(),
            message,
        };
        let file: RoutingFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut departments = vec![("default_department", file.default_department.as_str())];
        departments.extend(
            file.route
                .iter()
                .map(|r| (r.name.as_str(), r.department.as_str())),
        );
        departments.extend(
            file.partner
                .iter()
                .map(|p| (p.slug.as_str(), p.slug.as_str())),
        );
        for (rule, department) in departments {
            if !is_slug(department) || department == TRIAGE {
                return Err(invalid(format!(
                    "{rule}: department `{department}` must be lower-case letters, digits and `-` (and not `{TRIAGE}`)"
                )));
            }
        }
        for route in &file.route {
            if route.category.is_empty()
                && route.cause.is_empty()
                && route.product.is_empty()
                && route.severity.is_empty()
                && route.channel.is_empty()
            {
                return Err(invalid(format!(
                    "route {}: matches everything; use default_department",
                    route.name
                )));
            }
            for s in route.severity.iter().chain(&file.senior.severities) {
                if severity_from_name(s).is_none() {
                    return Err(invalid(format!(
                        "route {}: unknown severity `{s}`",
                        route.name
                    )));
                }
            }
        }
        Ok(Self { file })
    }

    pub fn version(&self) -> &str {
        &self.file.version
    }

    /// Where a complaint goes; `None` holds it with the triage desk (its classification waits
    /// for a specialist).
    pub fn route(&self, subject: &Subject<'_>) -> Option<Destination> {
        if subject.needs_review && self.file.hold_for_classification_review {
            return None;
        }
        let senior = self.is_senior(subject);
        let product = subject.product.trim();
        if let Some(partner) = self.file.partner.iter().find(|p| {
            p.products
                .iter()
                .any(|name| name.eq_ignore_ascii_case(product))
        }) {
            let mut tags = vec!["partner_evaluation".to_owned()];
            if senior {
                tags.push("senior".to_owned());
            }
            return Some(Destination {
                department: partner.slug.clone(),
                queue: Queue::Partner,
                partner: Some(partner.slug.clone()),
                tags,
                rule: format!("partner:{}", partner.slug),
            });
        }
        let (department, rule) = self
            .file
            .route
            .iter()
            .find(|r| matches(r, subject))
            .map(|r| (r.department.clone(), r.name.clone()))
            .unwrap_or_else(|| (self.file.default_department.clone(), "default".to_owned()));
        Some(Destination {
            department,
            queue: if senior {
                Queue::Senior
            } else {
                Queue::Standard
            },
            partner: None,
            tags: if senior {
                vec!["senior".to_owned()]
            } else {
                Vec::new()
            },
            rule,
        })
    }

    fn is_senior(&self, subject: &Subject<'_>) -> bool {
        let referred = subject.channel == Channel::RegulatorReferral
            || !subject.regulator_ref.trim().is_empty();
        (self.file.senior.regulator_referred && referred)
            || self
                .file
                .senior
                .severities
                .iter()
                .any(|s| severity_from_name(s) == Some(subject.severity))
    }
}

fn matches(route: &Route, s: &Subject<'_>) -> bool {
    let code = |codes: &[String], value: &str| {
        codes.is_empty()
            || codes.iter().any(|c| {
                value == c
                    || value
                        .strip_prefix(c.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
    };
    code(&route.category, s.category)
        && code(&route.cause, s.cause)
        && (route.product.is_empty()
            || route
                .product
                .iter()
                .any(|p| p.eq_ignore_ascii_case(s.product.trim())))
        && (route.severity.is_empty()
            || route
                .severity
                .iter()
                .any(|n| severity_from_name(n) == Some(s.severity)))
        && (route.channel.is_empty()
            || route.channel.iter().any(|c| *c == channel_token(s.channel)))
}

/// `CHANNEL_REGULATOR_REFERRAL` → `regulator_referral` (DESIGN §3).
pub fn channel_token(channel: Channel) -> String {
    channel
        .as_str_name()
        .trim_start_matches("CHANNEL_")
        .to_ascii_lowercase()
}

fn severity_from_name(name: &str) -> Option<Severity> {
    match name {
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// A department slug can be a NATS subject token and a token claim: `[a-z0-9-]{1,63}`.
pub fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    #[allow(dead_code)]
    version: String,
    #[serde(default)]
    handler: Vec<RosterEntry>,
}

/// One handler of the roster.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    pub department: String,
    pub id: String,
    #[serde(default)]
    pub senior: bool,
}

/// Parses a roster file.
pub fn roster(label: &str, text: &str) -> Result<Vec<RosterEntry>, RulesError> {
    let file: RosterFile = toml::from_str(text).map_err(|e| RulesError::Invalid {
        file: label.to_owned(),
        message: e.to_string(),
    })?;
    for entry in &file.handler {
        if !is_slug(&entry.department) || entry.id.trim().is_empty() {
            return Err(RulesError::Invalid {
                file: label.to_owned(),
                message: format!(
                    "handler `{}` of `{}`: needs an id and a department slug",
                    entry.id, entry.department
                ),
            });
        }
    }
    Ok(file.handler)
}

/// Reads a roster file from disk.
pub fn roster_from_path(path: &Path) -> Result<Vec<RosterEntry>, RulesError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
        file: file.clone(),
        source,
    })?;
    roster(&file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing() -> Routing {
        match Routing::shipped() {
            Ok(r) => r,
            Err(e) => panic!("shipped rules must load: {e}"),
        }
    }

    fn subject<'a>(category: &'a str, cause: &'a str) -> Subject<'a> {
        Subject {
            category,
            cause,
            severity: Severity::Medium,
            channel: Channel::Web,
            ..Default::default()
        }
    }

    #[test]
    fn rules_route_by_cause_category_channel_and_default() {
        let r = routing();
        let dept = |s: Subject<'_>| r.route(&s).map(|d| d.department);
        assert_eq!(dept(subject("B02.04", "C11")).as_deref(), Some("lending"));
        assert_eq!(
            dept(subject("B02.04", "C09")).as_deref(),
            Some("risk-control")
        );
        assert_eq!(
            dept(subject("B06.02", "C03")).as_deref(),
            Some("data-protection")
        );
        assert_eq!(dept(subject("B04.01", "C03")).as_deref(), Some("payments"));
        assert_eq!(
            dept(subject("B99", "C99")).as_deref(),
            Some("customer-service")
        );
        // `B0` is not a prefix of `B02` in the taxonomy's sense.
        assert_eq!(
            dept(subject("B020", "C99")).as_deref(),
            Some("customer-service")
        );
        let mut hotline = subject("B99", "C01");
        hotline.channel = Channel::Hotline;
        assert_eq!(
            r.route(&hotline).map(|d| d.rule).as_deref(),
            Some("hotline-service")
        );
    }

    #[test]
    fn critical_and_referred_go_senior_partners_to_the_partner() {
        let r = routing();
        let mut critical = subject("B02", "C11");
        critical.severity = Severity::Critical;
        assert_eq!(r.route(&critical).map(|d| d.queue), Some(Queue::Senior));
        let mut referred = subject("B02", "C11");
        referred.regulator_ref = "NFRA-2026-1";
        assert_eq!(r.route(&referred).map(|d| d.queue), Some(Queue::Senior));
        let mut partner = subject("B08", "C05");
        partner.product = "账户安全险";
        let d = r.route(&partner);
        assert_eq!(
            d.as_ref().map(|d| d.department.as_str()),
            Some("partner-insurer-a")
        );
        assert!(d.is_some_and(|d| d.tags.contains(&"partner_evaluation".to_owned())));
        let mut unsure = subject("B02", "C11");
        unsure.needs_review = true;
        assert_eq!(r.route(&unsure), None);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let bad = ROUTING_V1.replace("department = \"lending\"", "department = \"Lending Dept\"");
        let error = Routing::parse("x.toml", &bad).err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("Lending Dept")));
        assert!(roster("r.toml", ROSTER_V1).is_ok_and(|r| r.len() >= 5));
        assert!(
            roster(
                "r.toml",
                "version = \"x\"\n[[handler]]\ndepartment = \"A\"\nid = \"h\""
            )
            .is_err()
        );
    }
}
