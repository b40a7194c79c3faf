//! Regimes: the regulatory time limits as data, each number with the article it comes from.
//!
//! Three regimes are embedded: `cn-nfra` (default), `us-cfpb` and `uk-fca`. Any regime can also
//! be loaded from a file of the same shape ([`Regime::from_path`]).

use std::collections::BTreeMap;
use std::path::Path;

use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use crate::calendar::Calendar;
use crate::clock::PauseReason;
use crate::data::{RawSource, Source, Src};
use crate::error::LoadError;
use crate::extension::Role;

const CN_NFRA: &str = include_str!("../data/regimes/cn-nfra.toml");
const US_CFPB: &str = include_str!("../data/regimes/us-cfpb.toml");
const UK_FCA: &str = include_str!("../data/regimes/uk-fca.toml");

/// The embedded regimes, default first.
pub const REGIME_NAMES: [&str; 3] = ["cn-nfra", "us-cfpb", "uk-fca"];

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
    /// Name of the business calendar ([`Calendar::by_name`]).
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

fn check_limit(src: &Src<'_>, raw: RawLimit, field: &str) -> Result<Limit, LoadError> {
    let amount = *raw.amount.get_ref();
    if amount == 0 || amount > 366 {
        return Err(src.invalid(
            &raw.amount,
            &format!("{field}.amount"),
            "must be between 1 and 366",
        ));
    }
    let (days, unit, stated) = match raw.unit.get_ref().as_str() {
        "calendar_days" => (
            amount,
            Unit::CalendarDays,
            format!("{amount} calendar days"),
        ),
        "working_days" => (amount, Unit::WorkingDays, format!("{amount} working days")),
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
        let last_day_rule = match raw.counting.last_day_rule.get_ref().as_str() {
            "none" => LastDayRule::None,
            "statutory_holiday" => LastDayRule::StatutoryHoliday,
            "rest_day" => LastDayRule::RestDay,
            other => {
                return Err(src.invalid(
                    &raw.counting.last_day_rule,
                    "counting.last_day_rule",
                    format!("unknown rule `{other}` (none, statutory_holiday, rest_day)"),
                ));
            }
        };
        let counting = Counting {
            receipt_day_counted: raw.counting.receipt_day_counted,
            last_day_rule,
            article: raw.counting.article,
            confirmed: raw.counting.confirmed,
        };

        let tracks_span = raw.tracks.span();
        let mut tracks = BTreeMap::new();
        for (name, t) in raw.tracks.into_inner() {
            let field = format!("tracks.{name}");
            let decision = check_limit(&src, t.decision, &format!("{field}.decision"))?;
            let mut extensions: Vec<ExtensionTier> = Vec::with_capacity(t.extension.len());
            let mut previous_total = decision.days;
            for (i, x) in t.extension.into_iter().enumerate() {
                let xf = format!("{field}.extension[{i}]");
                let expected = u8::try_from(i + 1).unwrap_or(u8::MAX);
                if *x.tier.get_ref() != expected {
                    return Err(src.invalid(
                        &x.tier,
                        &format!("{xf}.tier"),
                        format!("tiers must be numbered 1, 2, … in order; expected {expected}"),
                    ));
                }
                let total = *x.total.get_ref();
                if total <= previous_total || total > 366 {
                    return Err(src.invalid(&x.total, &format!("{xf}.total"), format!("must exceed the previous limit of {previous_total} days (and be at most 366)")));
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
                    return Err(LoadError::Invalid {
                        file: file.to_owned(),
                        line: src.line_of(at.start),
                        field: format!("{xf}.approver_roles"),
                        message:
                            "a tier that requires approval must list the roles that may approve"
                                .into(),
                    });
                }
                previous_total = total;
                extensions.push(ExtensionTier {
                    tier: expected,
                    total_days: total,
                    requires_approval: x.requires_approval,
                    approver_roles: roles,
                    consumer_notice: x.consumer_notice,
                    article: x.article,
                    confirmed: x.confirmed,
                });
            }
            tracks.insert(
                name.clone(),
                Track {
                    name,
                    description: t.description,
                    decision,
                    extensions,
                },
            );
        }
        if tracks.is_empty() {
            return Err(LoadError::Invalid {
                file: file.to_owned(),
                line: src.line_of(tracks_span.start),
                field: "tracks".into(),
                message: "at least one track is required".into(),
            });
        }
        if !tracks.contains_key(raw.default_track.get_ref()) {
            return Err(src.invalid(
                &raw.default_track,
                "default_track",
                format!("no track named `{}`", raw.default_track.get_ref()),
            ));
        }

        let pauses = raw
            .pauses
            .map(|p| {
                p.stop_clock
                    .into_iter()
                    .map(|r| PauseRule {
                        reason: r.reason,
                        article: r.article,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let review = match raw.review {
            Some(r) => Some(Review {
                window: check_limit(&src, r.window, "review.window")?,
                decision: check_limit(&src, r.decision, "review.decision")?,
            }),
            None => None,
        };
        let opt_limit = |h: Option<RawLimitHolder>, f: &str| -> Result<Option<Limit>, LoadError> {
            h.map(|h| check_limit(&src, h.limit, &format!("{f}.limit")))
                .transpose()
        };
        let referral_forward = opt_limit(raw.referral_forward, "referral_forward")?;
        let summary_resolution = opt_limit(raw.summary_resolution, "summary_resolution")?;
        let satisfaction_follow_up =
            opt_limit(raw.satisfaction_follow_up, "satisfaction_follow_up")?;
        let major_complaint = match raw.major_complaint {
            Some(m) => {
                if *m.in_person_complainants.get_ref() == 0 {
                    return Err(src.invalid(
                        &m.in_person_complainants,
                        "major_complaint.in_person_complainants",
                        "must be at least 1",
                    ));
                }
                Some(MajorComplaint {
                    in_person_complainants: m.in_person_complainants.into_inner(),
                    article: m.article,
                })
            }
            None => None,
        };
        let retention = match raw.retention {
            Some(r) => {
                if *r.years.get_ref() == 0 || *r.years.get_ref() > 100 {
                    return Err(src.invalid(
                        &r.years,
                        "retention.years",
                        "must be between 1 and 100",
                    ));
                }
                Some(Retention {
                    years: r.years.into_inner(),
                    confirmed: r.confirmed,
                    article: r.article,
                })
            }
            None => None,
        };
        let fractions = raw.warnings.fractions.get_ref().clone();
        let mut prev = 0.0_f64;
        for f in &fractions {
            if !(f.is_finite() && *f > prev && *f < 1.0) {
                return Err(src.invalid(
                    &raw.warnings.fractions,
                    "warnings.fractions",
                    "each fraction must be in (0, 1) and the list strictly increasing",
                ));
            }
            prev = *f;
        }

        Ok(Regime {
            name: raw.name.into_inner(),
            title: raw.title,
            source,
            time_zone,
            calendar: raw.calendar.into_inner(),
            counting,
            default_track: raw.default_track.into_inner(),
            tracks,
            pauses,
            restart_article: raw.restart.map(|a| a.article),
            withdrawal_article: raw.withdrawal.map(|a| a.article),
            review,
            referral_forward,
            summary_resolution,
            satisfaction_follow_up,
            major_complaint,
            retention,
            warnings: WarningThresholds {
                fractions,
                article: raw.warnings.article,
            },
        })
    }

    /// The embedded calendar this regime names.
    pub fn default_calendar(&self) -> Result<Calendar, LoadError> {
        Calendar::by_name(&self.calendar)
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
