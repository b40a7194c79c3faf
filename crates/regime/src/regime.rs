//! Regimes: the regulatory time limits as data, each number with the article it comes from.
//!
//! Three regimes are embedded: `cn-nfra` (default), `us-cfpb` and `uk-fca`. Any regime can also
//! be loaded from a file of the same shape ([`Regime::from_path`]).
//!
//! This module is the bottom of the crate: it uses only the file-reading helpers and the error
//! types. Everything that computes with these rules (day counting in `period`, extension checks in
//! `extension`, derivation in `clock`) depends on it, never the other way round, so a rule can be
//! read and checked without the code that applies it. The vocabularies the data files use
//! ([`PauseReason`], [`Role`]) live here for the same reason.

use std::collections::BTreeMap;
use std::path::Path;

use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use crate::data::{RawSource, Source, Src};
use crate::error::LoadError;

const CN_NFRA: &str = include_str!("../data/regimes/cn-nfra.toml");
const US_CFPB: &str = include_str!("../data/regimes/us-cfpb.toml");
const UK_FCA: &str = include_str!("../data/regimes/uk-fca.toml");

/// The embedded regimes, default first.
pub const REGIME_NAMES: [&str; 3] = ["cn-nfra", "us-cfpb", "uk-fca"];

/// Why the clock is paused. A regime lists the reasons that actually stop its clock
/// ([`Regime::pauses`]); any other reason is recorded but the clock keeps running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// External appraisal, testing or assessment (鉴定、检测、评估).
    ExternalAppraisal,
    /// Mediation (调解).
    Mediation,
    /// Waiting for the consumer to supply something.
    AwaitingConsumer,
    /// Waiting for a third party (partner, merchant).
    AwaitingThirdParty,
}

impl PauseReason {
    /// The name used in data files.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::ExternalAppraisal => "external_appraisal",
            PauseReason::Mediation => "mediation",
            PauseReason::AwaitingConsumer => "awaiting_consumer",
            PauseReason::AwaitingThirdParty => "awaiting_third_party",
        }
    }
}

/// The role of the person approving an extension, as listed in a tier's `approver_roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The case handler.
    Handler,
    /// The handler's team lead.
    TeamLead,
    /// The compliance / consumer-protection officer.
    Compliance,
    /// Head-office senior management (总行、总公司高级管理人员).
    SeniorManagement,
    /// The superior institution (上级机构).
    SuperiorInstitution,
}

impl Role {
    /// The name used in data files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Handler => "handler",
            Role::TeamLead => "team_lead",
            Role::Compliance => "compliance",
            Role::SeniorManagement => "senior_management",
            Role::SuperiorInstitution => "superior_institution",
        }
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Calendar days (日 / calendar days; weeks are stored as 7 calendar days each).
    CalendarDays,
    /// Working / business days of the regime's calendar.
    WorkingDays,
}

impl Unit {
    /// Human name.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::CalendarDays => "calendar days",
            Unit::WorkingDays => "working days",
        }
    }
}

/// A time limit with its citation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Length in `unit`s (weeks already converted to calendar days).
    pub days: u32,
    /// What is counted.
    pub unit: Unit,
    /// The limit as the source states it (e.g. "8 weeks").
    pub stated: String,
    /// Article / rule it comes from.
    pub article: String,
    /// `false` when the number is not confirmed from the source itself (configuration, policy,
    /// or a source we could not read).
    pub confirmed: bool,
}

/// What happens when the last day of a calendar-day period is a rest day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastDayRule {
    /// No roll: the period ends on its last day whatever it is.
    None,
    /// If the last day is inside an announced statutory holiday period, the period ends on the
    /// day after that holiday period (民法典第二百零三条, narrow reading). Make-up working days
    /// and ordinary weekends do not move it.
    StatutoryHoliday,
    /// If the last day is not a working day (holiday, or a weekend that is not a make-up working
    /// day), the period ends on the next working day (wide reading of 法定休假日).
    RestDay,
}

/// How days are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counting {
    /// Whether the day of receipt counts as day 1 (it does not under 民法典第二百零一条 or DISP).
    pub receipt_day_counted: bool,
    /// The roll rule for a last day that is a rest day.
    pub last_day_rule: LastDayRule,
    /// Articles behind the counting rules.
    pub article: String,
    /// Whether the counting rule is confirmed from the source.
    pub confirmed: bool,
}

/// One extension tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionTier {
    /// 1, 2, … in order.
    pub tier: u8,
    /// Total limit once this tier is granted (counted from the same start).
    pub total_days: u32,
    /// Whether an approver is needed.
    pub requires_approval: bool,
    /// Roles that may approve.
    pub approver_roles: Vec<Role>,
    /// Whether the consumer must be told.
    pub consumer_notice: bool,
    /// Article.
    pub article: String,
    /// Whether confirmed from the source.
    pub confirmed: bool,
}

/// A kind of case within a regime (e.g. uk-fca `payment_services`), with its own limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// Track name.
    pub name: String,
    /// What cases it covers.
    pub description: String,
    /// The base decision limit.
    pub decision: Limit,
    /// Extension tiers, in order.
    pub extensions: Vec<ExtensionTier>,
}

/// A pause reason that stops the clock, with its article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseRule {
    /// The reason.
    pub reason: PauseReason,
    /// Article.
    pub article: String,
}

/// Review (核查) after a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Window for the consumer to ask, from receiving the decision.
    pub window: Limit,
    /// Time to decide the review, from receiving the request.
    pub decision: Limit,
}

/// Threshold for a major complaint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MajorComplaint {
    /// Number of complainants in person from which a complaint is major.
    pub in_person_complainants: u32,
    /// Article.
    pub article: String,
}

/// Archive retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Years to keep a closed case.
    pub years: u32,
    /// `false`: not stated by the regulation.
    pub confirmed: bool,
    /// Where it comes from.
    pub article: String,
}

/// Warning thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct WarningThresholds {
    /// Fractions of the applied limit, strictly increasing, each in (0, 1).
    pub fractions: Vec<f64>,
    /// Where they come from.
    pub article: String,
}

/// A regulatory regime loaded from data.
#[derive(Debug, Clone, PartialEq)]
pub struct Regime {
    /// Name (`cn-nfra`).
    pub name: String,
    /// Title of the governing rules.
    pub title: String,
    /// Source document.
    pub source: Source,
    /// Time zone in which days are counted and periods end.
    pub time_zone: Tz,
    /// Name of the business calendar to count on (`cn`, `uk-ew`, `none`; see `Calendar::by_name`).
    pub calendar: String,
    /// Counting rules.
    pub counting: Counting,
    /// Default track.
    pub default_track: String,
    /// Tracks by name.
    pub tracks: BTreeMap<String, Track>,
    /// Pause reasons that stop the clock.
    pub pauses: Vec<PauseRule>,
    /// Article for new facts restarting the clock.
    pub restart_article: Option<String>,
    /// Article for withdrawal ending the procedure.
    pub withdrawal_article: Option<String>,
    /// Review rules.
    pub review: Option<Review>,
    /// Forwarding limit for regulator referrals.
    pub referral_forward: Option<Limit>,
    /// Summary-resolution window (uk-fca DISP 1.5).
    pub summary_resolution: Option<Limit>,
    /// Satisfaction follow-up window (internal policy).
    pub satisfaction_follow_up: Option<Limit>,
    /// Major complaint threshold.
    pub major_complaint: Option<MajorComplaint>,
    /// Archive retention.
    pub retention: Option<Retention>,
    /// Warning thresholds.
    pub warnings: WarningThresholds,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegime {
    name: Spanned<String>,
    title: String,
    time_zone: Spanned<String>,
    calendar: Spanned<String>,
    default_track: Spanned<String>,
    source: RawSource,
    counting: RawCounting,
    tracks: Spanned<BTreeMap<String, RawTrack>>,
    #[serde(default)]
    pauses: Option<RawPauses>,
    restart: Option<RawArticle>,
    withdrawal: Option<RawArticle>,
    review: Option<RawReview>,
    referral_forward: Option<RawLimitHolder>,
    summary_resolution: Option<RawLimitHolder>,
    satisfaction_follow_up: Option<RawLimitHolder>,
    major_complaint: Option<RawMajor>,
    retention: Option<RawRetention>,
    warnings: RawWarnings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounting {
    receipt_day_counted: bool,
    last_day_rule: Spanned<String>,
    article: String,
    #[serde(default = "yes")]
    confirmed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    amount: Spanned<u32>,
    unit: Spanned<String>,
    article: String,
    #[serde(default = "yes")]
    confirmed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimitHolder {
    limit: RawLimit,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrack {
    description: String,
    decision: RawLimit,
    #[serde(default)]
    extension: Vec<RawTier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    tier: Spanned<u8>,
    total: Spanned<u32>,
    requires_approval: bool,
    approver_roles: Option<Spanned<Vec<Role>>>,
    consumer_notice: bool,
    article: String,
    #[serde(default = "yes")]
    confirmed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPauses {
    stop_clock: Vec<RawPause>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPause {
    reason: PauseReason,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArticle {
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReview {
    window: RawLimit,
    decision: RawLimit,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMajor {
    in_person_complainants: Spanned<u32>,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    years: Spanned<u32>,
    confirmed: bool,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWarnings {
    fractions: Spanned<Vec<f64>>,
    article: String,
}

/// Upper bound on any limit, in days. No regime here states a period longer than a year; a larger
/// number in a data file is a typo (a year in the amount field, say), not a rule.
const MAX_LIMIT_DAYS: u32 = 366;

/// Upper bound on archive retention, in years: a sanity check on the configuration value.
const MAX_RETENTION_YEARS: u32 = 100;

fn check_limit(src: &Src<'_>, raw: RawLimit, field: &str) -> Result<Limit, LoadError> {
    let amount = *raw.amount.get_ref();
    if amount == 0 || amount > MAX_LIMIT_DAYS {
        return Err(src.invalid(
            &raw.amount,
            &format!("{field}.amount"),
            format!("must be between 1 and {MAX_LIMIT_DAYS}"),
        ));
    }
    let (days, unit, stated) = match raw.unit.get_ref().as_str() {
        "calendar_days" => (
            amount,
            Unit::CalendarDays,
            format!("{amount} calendar days"),
        ),
        "working_days" => (amount, Unit::WorkingDays, format!("{amount} working days")),
        // Stored as calendar days so that one counting path serves DISP's "8 weeks" too.
        "weeks" => (amount * 7, Unit::CalendarDays, format!("{amount} weeks")),
        other => {
            return Err(src.invalid(
                &raw.unit,
                &format!("{field}.unit"),
                format!("unknown unit `{other}` (calendar_days, working_days, weeks)"),
            ));
        }
    };
    Ok(Limit {
        days,
        unit,
        stated,
        article: raw.article,
        confirmed: raw.confirmed,
    })
}

fn check_counting(src: &Src<'_>, raw: RawCounting) -> Result<Counting, LoadError> {
    let last_day_rule = match raw.last_day_rule.get_ref().as_str() {
        "none" => LastDayRule::None,
        "statutory_holiday" => LastDayRule::StatutoryHoliday,
        "rest_day" => LastDayRule::RestDay,
        other => {
            return Err(src.invalid(
                &raw.last_day_rule,
                "counting.last_day_rule",
                format!("unknown rule `{other}` (none, statutory_holiday, rest_day)"),
            ));
        }
    };
    Ok(Counting {
        receipt_day_counted: raw.receipt_day_counted,
        last_day_rule,
        article: raw.article,
        confirmed: raw.confirmed,
    })
}

/// All tracks, then the checks that need all of them (at least one; the default exists).
fn check_tracks(
    src: &Src<'_>,
    raw: Spanned<BTreeMap<String, RawTrack>>,
    default_track: &Spanned<String>,
) -> Result<BTreeMap<String, Track>, LoadError> {
    let span = raw.span();
    let mut tracks = BTreeMap::new();
    for (name, t) in raw.into_inner() {
        let track = check_track(src, name, t)?;
        tracks.insert(track.name.clone(), track);
    }
    if tracks.is_empty() {
        return Err(src.invalid_at(span.start, "tracks", "at least one track is required"));
    }
    if !tracks.contains_key(default_track.get_ref()) {
        return Err(src.invalid(
            default_track,
            "default_track",
            format!("no track named `{}`", default_track.get_ref()),
        ));
    }
    Ok(tracks)
}

fn check_track(src: &Src<'_>, name: String, raw: RawTrack) -> Result<Track, LoadError> {
    let field = format!("tracks.{name}");
    let decision = check_limit(src, raw.decision, &format!("{field}.decision"))?;
    let mut extensions: Vec<ExtensionTier> = Vec::with_capacity(raw.extension.len());
    let mut previous_total = decision.days;
    for (i, x) in raw.extension.into_iter().enumerate() {
        let tier = check_tier(
            src,
            &format!("{field}.extension[{i}]"),
            i,
            previous_total,
            x,
        )?;
        previous_total = tier.total_days;
        extensions.push(tier);
    }
    Ok(Track {
        name,
        description: raw.description,
        decision,
        extensions,
    })
}

/// Tier `index` (0-based) of a track: numbered in order, longer than the limit before it, and
/// naming who may approve it when approval is required.
fn check_tier(
    src: &Src<'_>,
    field: &str,
    index: usize,
    previous_total: u32,
    x: RawTier,
) -> Result<ExtensionTier, LoadError> {
    let expected = u8::try_from(index + 1).unwrap_or(u8::MAX);
    if *x.tier.get_ref() != expected {
        return Err(src.invalid(
            &x.tier,
            &format!("{field}.tier"),
            format!("tiers must be numbered 1, 2, … in order; expected {expected}"),
        ));
    }
    let total = *x.total.get_ref();
    if total <= previous_total || total > MAX_LIMIT_DAYS {
        return Err(src.invalid(
            &x.total,
            &format!("{field}.total"),
            format!(
                "must exceed the previous limit of {previous_total} days (and be at most {MAX_LIMIT_DAYS})"
            ),
        ));
    }
    let roles = x
        .approver_roles
        .as_ref()
        .map(|r| r.get_ref().clone())
        .unwrap_or_default();
    if x.requires_approval && roles.is_empty() {
        let at = x
            .approver_roles
            .as_ref()
            .map_or(x.tier.span(), |r| r.span());
        return Err(src.invalid_at(
            at.start,
            &format!("{field}.approver_roles"),
            "a tier that requires approval must list the roles that may approve",
        ));
    }
    Ok(ExtensionTier {
        tier: expected,
        total_days: total,
        requires_approval: x.requires_approval,
        approver_roles: roles,
        consumer_notice: x.consumer_notice,
        article: x.article,
        confirmed: x.confirmed,
    })
}

fn pause_rules(raw: Option<RawPauses>) -> Vec<PauseRule> {
    raw.map(|p| {
        p.stop_clock
            .into_iter()
            .map(|r| PauseRule {
                reason: r.reason,
                article: r.article,
            })
            .collect()
    })
    .unwrap_or_default()
}

fn check_review(src: &Src<'_>, raw: Option<RawReview>) -> Result<Option<Review>, LoadError> {
    raw.map(|r| {
        Ok(Review {
            window: check_limit(src, r.window, "review.window")?,
            decision: check_limit(src, r.decision, "review.decision")?,
        })
    })
    .transpose()
}

fn check_optional_limit(
    src: &Src<'_>,
    raw: Option<RawLimitHolder>,
    field: &str,
) -> Result<Option<Limit>, LoadError> {
    raw.map(|h| check_limit(src, h.limit, &format!("{field}.limit")))
        .transpose()
}

fn check_major(src: &Src<'_>, raw: Option<RawMajor>) -> Result<Option<MajorComplaint>, LoadError> {
    let Some(m) = raw else { return Ok(None) };
    if *m.in_person_complainants.get_ref() == 0 {
        return Err(src.invalid(
            &m.in_person_complainants,
            "major_complaint.in_person_complainants",
            "must be at least 1",
        ));
    }
    Ok(Some(MajorComplaint {
        in_person_complainants: m.in_person_complainants.into_inner(),
        article: m.article,
    }))
}

fn check_retention(
    src: &Src<'_>,
    raw: Option<RawRetention>,
) -> Result<Option<Retention>, LoadError> {
    let Some(r) = raw else { return Ok(None) };
    let years = *r.years.get_ref();
    if years == 0 || years > MAX_RETENTION_YEARS {
        return Err(src.invalid(
            &r.years,
            "retention.years",
            format!("must be between 1 and {MAX_RETENTION_YEARS}"),
        ));
    }
    Ok(Some(Retention {
        years,
        confirmed: r.confirmed,
        article: r.article,
    }))
}

fn check_warnings(src: &Src<'_>, raw: RawWarnings) -> Result<WarningThresholds, LoadError> {
    let fractions = raw.fractions.get_ref().clone();
    let mut prev = 0.0_f64;
    for f in &fractions {
        if !(f.is_finite() && *f > prev && *f < 1.0) {
            return Err(src.invalid(
                &raw.fractions,
                "warnings.fractions",
                "each fraction must be in (0, 1) and the list strictly increasing",
            ));
        }
        prev = *f;
    }
    Ok(WarningThresholds {
        fractions,
        article: raw.article,
    })
}

impl Regime {
    /// One of the embedded regimes: `cn-nfra` (default), `us-cfpb`, `uk-fca`.
    pub fn by_name(name: &str) -> Result<Self, LoadError> {
        let (file, text) = match name {
            "cn-nfra" => ("data/regimes/cn-nfra.toml", CN_NFRA),
            "us-cfpb" => ("data/regimes/us-cfpb.toml", US_CFPB),
            "uk-fca" => ("data/regimes/uk-fca.toml", UK_FCA),
            other => return Err(LoadError::UnknownRegime(other.to_owned())),
        };
        Self::from_toml_str(file, text)
    }

    /// The default regime, `cn-nfra`.
    pub fn default_regime() -> Result<Self, LoadError> {
        Self::by_name("cn-nfra")
    }

    /// Loads a regime file from disk.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::Io {
            file: file.clone(),
            source: e,
        })?;
        Self::from_toml_str(&file, &text)
    }

    /// Parses and validates a regime from TOML text; `file` labels errors.
    ///
    /// Sections are checked in file order, so the first error reported is the first in the file.
    pub fn from_toml_str(file: &str, text: &str) -> Result<Self, LoadError> {
        let src = Src::new(file, text);
        let raw: RawRegime = src.parse()?;
        if raw.name.get_ref().trim().is_empty() {
            return Err(src.invalid(&raw.name, "name", "must not be empty"));
        }
        let time_zone = src.time_zone(&raw.time_zone, "time_zone")?;
        if raw.calendar.get_ref().trim().is_empty() {
            return Err(src.invalid(&raw.calendar, "calendar", "must not be empty"));
        }
        let source = raw.source.check(&src)?;
        let counting = check_counting(&src, raw.counting)?;
        let tracks = check_tracks(&src, raw.tracks, &raw.default_track)?;
        Ok(Regime {
            name: raw.name.into_inner(),
            title: raw.title,
            source,
            time_zone,
            calendar: raw.calendar.into_inner(),
            counting,
            default_track: raw.default_track.into_inner(),
            tracks,
            pauses: pause_rules(raw.pauses),
            restart_article: raw.restart.map(|a| a.article),
            withdrawal_article: raw.withdrawal.map(|a| a.article),
            review: check_review(&src, raw.review)?,
            referral_forward: check_optional_limit(&src, raw.referral_forward, "referral_forward")?,
            summary_resolution: check_optional_limit(
                &src,
                raw.summary_resolution,
                "summary_resolution",
            )?,
            satisfaction_follow_up: check_optional_limit(
                &src,
                raw.satisfaction_follow_up,
                "satisfaction_follow_up",
            )?,
            major_complaint: check_major(&src, raw.major_complaint)?,
            retention: check_retention(&src, raw.retention)?,
            warnings: check_warnings(&src, raw.warnings)?,
        })
    }

    /// A track by name.
    pub fn track(&self, name: &str) -> Option<&Track> {
        self.tracks.get(name)
    }

    /// The default track (validated on load to exist; `None` only for a hand-built regime).
    pub fn main_track(&self) -> Option<&Track> {
        self.tracks.get(&self.default_track)
    }

    /// The pause rule for `reason`, if that reason stops the clock in this regime.
    pub fn pause_rule(&self, reason: PauseReason) -> Option<&PauseRule> {
        self.pauses.iter().find(|p| p.reason == reason)
    }

    /// Whether `count` complainants in person make a major complaint.
    pub fn is_major_complaint(&self, in_person_complainants: u32) -> bool {
        self.major_complaint
            .as_ref()
            .is_some_and(|m| in_person_complainants >= m.in_person_complainants)
    }
}
