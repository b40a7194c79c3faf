//! The case clock: deadlines derived from the receipt instant and the case's clock-relevant
//! events. Nothing is stored: feed the same history to a corrected calendar or regime and the
//! deadlines are recomputed.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::calendar::Calendar;
use crate::error::ClockError;
use crate::extension::{Approver, ExtensionContext, ExtensionRefused};
use crate::period::{
    Counter, Due, anchor_for, days_between, fraction_instant, local_date, period_end,
};
use crate::regime::{Regime, Track, Unit};

/// Why the clock is paused.
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

/// A clock-relevant case event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockEventKind {
    /// An extension tier was granted.
    Extended {
        /// 1 or 2 (per the regime's tiers).
        tier: u8,
        /// Who approved it.
        approved_by: Option<Approver>,
    },
    /// The clock was paused (only the regime's listed reasons actually stop it).
    Paused {
        /// Why.
        reason: PauseReason,
    },
    /// The pause ended.
    Resumed,
    /// New facts or reasons were received: the period restarts from that day.
    NewFacts,
    /// The decision was made.
    Decided,
    /// The consumer was told (of the decision, once decided; otherwise an interim notice).
    ConsumerNotified,
    /// The consumer asked for a review (核查).
    ReviewRequested,
    /// The review was decided.
    ReviewDecided,
    /// The consumer withdrew the complaint.
    Withdrawn,
    /// A closed case was reopened: a new decision period starts that day.
    Reopened,
}

/// An event with its instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockEvent {
    /// When it happened (UTC).
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: ClockEventKind,
}

impl ClockEvent {
    /// Shorthand constructor.
    pub fn new(at: DateTime<Utc>, kind: ClockEventKind) -> Self {
        Self { at, kind }
    }
}

/// Where the case stands after its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    /// The decision clock is running.
    Open,
    /// The decision clock is stopped.
    Paused {
        /// Since when.
        since: DateTime<Utc>,
        /// Why.
        reason: PauseReason,
    },
    /// Decided; the review window may be open.
    Decided {
        /// When.
        at: DateTime<Utc>,
    },
    /// A review was requested and is pending.
    InReview {
        /// When requested.
        requested_at: DateTime<Utc>,
    },
    /// The review was decided.
    ReviewDecided {
        /// When.
        at: DateTime<Utc>,
    },
    /// Withdrawn; the procedure ended that day.
    Withdrawn {
        /// When.
        at: DateTime<Utc>,
    },
}

/// The time limit in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedLimit {
    /// Length (15, 30, 60 …).
    pub days: u32,
    /// Calendar or working days.
    pub unit: Unit,
    /// Extension tier in force (0 = none).
    pub tier: u8,
    /// Article behind it.
    pub article: String,
}

/// When a `deadline_warning` should fire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarningAt {
    /// Fraction of the limit.
    pub fraction: f64,
    /// Instant.
    pub at: DateTime<Utc>,
}

/// Flags on the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// Some date needed a calendar year that is not loaded: computed on plain calendar days.
    pub calendar_missing: bool,
    /// Which years.
    pub missing_years: BTreeSet<i32>,
}

/// Something in the history that could not be applied as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Index of the event in the input.
    pub index: usize,
    /// Its instant.
    pub at: DateTime<Utc>,
    /// What was wrong.
    pub kind: AnomalyKind,
}

/// The kinds of [`Anomaly`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnomalyKind {
    /// An extension the rules refuse; it was not applied.
    ExtensionRefused(ExtensionRefused),
    /// An extension recorded after the deadline had already passed; not applied.
    ExtensionAfterDeadline {
        /// The deadline that had passed.
        due: Due,
    },
    /// A pause whose reason does not stop the clock in this regime; the clock kept running.
    PauseDoesNotStopClock(PauseReason),
    /// An event that makes no sense in the case's state at that time; ignored.
    Ignored {
        /// Which event.
        event: &'static str,
        /// In which state.
        state: &'static str,
    },
    /// A review was requested after the review window closed (still recorded).
    ReviewRequestedLate {
        /// The window that had closed.
        window_ends: Due,
    },
}

/// Everything derived from a case's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadlines {
    /// Regime used.
    pub regime: String,
    /// Track used.
    pub track: String,
    /// Where the case stands.
    pub status: CaseStatus,
    /// Local date from which the current decision period runs (receipt, or the last restart).
    pub clock_started_on: NaiveDate,
    /// The limit in force.
    pub limit: AppliedLimit,
    /// The decision deadline; `None` while the clock is paused (it depends on the resume date).
    pub decision_due: Option<Due>,
    /// Days not counted because of pauses.
    pub paused_days: u32,
    /// When the decision was made.
    pub decided_at: Option<DateTime<Utc>>,
    /// When the consumer was told of the decision.
    pub consumer_notified_at: Option<DateTime<Utc>>,
    /// Whether the decision was made and notified before the deadline (`None` while unknown).
    pub decision_on_time: Option<bool>,
    /// End of the consumer's window to ask for a review.
    pub review_window_ends: Option<Due>,
    /// When a requested review must be decided.
    pub review_due: Option<Due>,
    /// uk-fca DISP 1.5: close of the third business day after receipt.
    pub summary_resolution_by: Option<Due>,
    /// When `deadline_warning` fires for the running deadline (decision or review).
    pub warnings_at: Vec<WarningAt>,
    /// Flags.
    pub flags: Flags,
    /// Events that could not be applied as recorded.
    pub anomalies: Vec<Anomaly>,
    /// How the result was derived, citing the rules.
    pub explanation: Vec<String>,
}

impl Deadlines {
    /// The context for asking whether a further extension may be granted now.
    pub fn extension_context(&self) -> ExtensionContext {
        ExtensionContext {
            current_tier: self.limit.tier,
            decided: !matches!(self.status, CaseStatus::Open | CaseStatus::Paused { .. }),
        }
    }

    /// The warning fractions whose instant has passed at `now`.
    pub fn warnings_fired(&self, now: DateTime<Utc>) -> Vec<f64> {
        self.warnings_at
            .iter()
            .filter(|w| w.at <= now)
            .map(|w| w.fraction)
            .collect()
    }

    /// Whether the running decision deadline has passed at `now` without a decision.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        matches!(self.status, CaseStatus::Open)
            && self.decision_due.is_some_and(|d| now >= d.ends_at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Decided,
    Review,
    ReviewClosed,
    Withdrawn,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Open => "open",
            Phase::Decided => "decided",
            Phase::Review => "in review",
            Phase::ReviewClosed => "review decided",
            Phase::Withdrawn => "withdrawn",
        }
    }
}

fn event_name(k: &ClockEventKind) -> &'static str {
    match k {
        ClockEventKind::Extended { .. } => "Extended",
        ClockEventKind::Paused { .. } => "Paused",
        ClockEventKind::Resumed => "Resumed",
        ClockEventKind::NewFacts => "NewFacts",
        ClockEventKind::Decided => "Decided",
        ClockEventKind::ConsumerNotified => "ConsumerNotified",
        ClockEventKind::ReviewRequested => "ReviewRequested",
        ClockEventKind::ReviewDecided => "ReviewDecided",
        ClockEventKind::Withdrawn => "Withdrawn",
        ClockEventKind::Reopened => "Reopened",
    }
}

/// Derives deadlines for one regime track on one calendar.
#[derive(Debug, Clone, Copy)]
pub struct CaseClock<'a> {
    regime: &'a Regime,
    calendar: &'a Calendar,
    track: &'a Track,
}

struct State {
    start: NaiveDate,
    anchor: NaiveDate,
    tier: u8,
    days: u32,
    article: String,
    excluded: Vec<(NaiveDate, NaiveDate)>,
    open_pause: Option<(DateTime<Utc>, NaiveDate, PauseReason)>,
    phase: Phase,
    decided_at: Option<DateTime<Utc>>,
    notified_at: Option<DateTime<Utc>>,
    review_requested_at: Option<DateTime<Utc>>,
    review_decided_at: Option<DateTime<Utc>>,
    withdrawn_at: Option<DateTime<Utc>>,
}

impl<'a> CaseClock<'a> {
    /// A clock on the regime's default track.
    pub fn new(regime: &'a Regime, calendar: &'a Calendar) -> Result<Self, ClockError> {
        Self::for_track(regime, calendar, &regime.default_track)
    }

    /// A clock on a named track (e.g. uk-fca `payment_services`).
    pub fn for_track(
        regime: &'a Regime,
        calendar: &'a Calendar,
        track: &str,
    ) -> Result<Self, ClockError> {
        let track = regime
            .track(track)
            .ok_or_else(|| ClockError::UnknownTrack {
                regime: regime.name.clone(),
                track: track.to_owned(),
            })?;
        Ok(Self {
            regime,
            calendar,
            track,
        })
    }

    fn restart(&self, st: &mut State, date: NaiveDate) -> Result<(), ClockError> {
        st.start = date;
        st.anchor = anchor_for(self.regime, date)?;
        st.tier = 0;
        st.days = self.track.decision.days;
        st.article = self.track.decision.article.clone();
        st.excluded.clear();
        st.open_pause = None;
        Ok(())
    }

    /// Derives the deadlines from the receipt instant and the events, which must be in time
    /// order and not before receipt.
    pub fn derive(
        &self,
        received_at: DateTime<Utc>,
        events: &[ClockEvent],
    ) -> Result<Deadlines, ClockError> {
        let r = self.regime;
        let tz = r.time_zone;
        let unit = self.track.decision.unit;
        let mut previous = received_at;
        for (index, e) in events.iter().enumerate() {
            if e.at < received_at {
                return Err(ClockError::BeforeReceipt { index, at: e.at });
            }
            if e.at < previous {
                return Err(ClockError::OutOfOrder { index, at: e.at });
            }
            previous = e.at;
        }

        let mut explanation = Vec::new();
        let mut anomalies = Vec::new();
        let mut missing: BTreeSet<i32> = BTreeSet::new();

        let received_local = local_date(tz, received_at);
        explanation.push(format!(
            "Regime {} ({}; {}), track `{}`.",
            r.name,
            r.title,
            r.source
                .document_number
                .as_deref()
                .unwrap_or("no document number"),
            self.track.name
        ));
        explanation.push(format!(
            "Received {} = {} local date {received_local}; {}.",
            received_at.to_rfc3339(),
            tz,
            if r.counting.receipt_day_counted {
                "that day counts as day 1".to_owned()
            } else {
                format!("the day of receipt is not counted ({})", r.counting.article)
            }
        ));
        explanation.push(format!(
            "Limit {} ({}){}.",
            self.track.decision.stated,
            self.track.decision.article,
            if self.track.decision.confirmed {
                ""
            } else {
                " [unconfirmed]"
            }
        ));

        let mut st = State {
            start: received_local,
            anchor: anchor_for(r, received_local)?,
            tier: 0,
            days: self.track.decision.days,
            article: self.track.decision.article.clone(),
            excluded: Vec::new(),
            open_pause: None,
            phase: Phase::Open,
            decided_at: None,
            notified_at: None,
            review_requested_at: None,
            review_decided_at: None,
            withdrawn_at: None,
        };

        for (index, e) in events.iter().enumerate() {
            let date = local_date(tz, e.at);
            let ignored = |st: &State| Anomaly {
                index,
                at: e.at,
                kind: AnomalyKind::Ignored {
                    event: event_name(&e.kind),
                    state: if st.open_pause.is_some() {
                        "paused"
                    } else {
                        st.phase.name()
                    },
                },
            };
            match &e.kind {
                ClockEventKind::Extended { tier, approved_by } => {
                    let ctx = ExtensionContext {
                        current_tier: st.tier,
                        decided: st.phase != Phase::Open,
                    };
                    if let Err(refused) = self.track.can_extend(ctx, *tier, approved_by.as_ref()) {
                        explanation.push(format!(
                            "{date}: extension to tier {tier} not applied: {refused}."
                        ));
                        anomalies.push(Anomaly {
                            index,
                            at: e.at,
                            kind: AnomalyKind::ExtensionRefused(refused),
                        });
                        continue;
                    }
                    if st.open_pause.is_none() {
                        let current =
                            period_end(r, self.calendar, st.anchor, st.days, unit, &st.excluded)?;
                        if e.at >= current.due.ends_at {
                            explanation.push(format!(
                                "{date}: extension to tier {tier} not applied: the deadline {} had already passed.",
                                current.due.date
                            ));
                            anomalies.push(Anomaly {
                                index,
                                at: e.at,
                                kind: AnomalyKind::ExtensionAfterDeadline { due: current.due },
                            });
                            continue;
                        }
                    }
                    if let Some(rule) = self.track.extensions.iter().find(|t| t.tier == *tier) {
                        st.tier = *tier;
                        st.days = rule.total_days;
                        st.article = rule.article.clone();
                        explanation.push(format!(
                            "{date}: extension tier {tier}{}: limit now {} {} from the same start ({}){}.",
                            approved_by
                                .as_ref()
                                .map(|a| format!(" approved by {} ({})", a.id, a.role.as_str()))
                                .unwrap_or_default(),
                            rule.total_days,
                            unit.as_str(),
                            rule.article,
                            if rule.consumer_notice { "; the consumer must be told" } else { "" }
                        ));
                    }
                }
                ClockEventKind::Paused { reason } => {
                    if st.phase != Phase::Open || st.open_pause.is_some() {
                        anomalies.push(ignored(&st));
                        continue;
                    }
                    match r.pause_rule(*reason) {
                        Some(rule) => {
                            st.open_pause = Some((e.at, date, *reason));
                            explanation.push(format!(
                                "{date}: clock paused for {} ({}).",
                                reason.as_str(),
                                rule.article
                            ));
                        }
                        None => {
                            explanation.push(format!(
                                "{date}: pause for {} recorded, but that reason does not stop the clock under {}; the clock keeps running.",
                                reason.as_str(),
                                r.name
                            ));
                            anomalies.push(Anomaly {
                                index,
                                at: e.at,
                                kind: AnomalyKind::PauseDoesNotStopClock(*reason),
                            });
                        }
                    }
                }
                ClockEventKind::Resumed => match st.open_pause.take() {
                    Some((_, from, reason)) => {
                        if date > from {
                            let first = crate::period::next_day(from)?;
                            st.excluded.push((first, date));
                        }
                        explanation.push(format!(
                            "{date}: clock resumed after {} (paused {from} → {date}: {} calendar day(s) {first}..={date} not counted).",
                            reason.as_str(),
                            days_between(from, date).max(0),
                            first = crate::period::next_day(from)?,
                        ));
                    }
                    None => {
                        // A resume after a pause that did not stop the clock is harmless.
                        if !anomalies.iter().any(|a: &Anomaly| {
                            matches!(a.kind, AnomalyKind::PauseDoesNotStopClock(_))
                        }) {
                            anomalies.push(ignored(&st));
                        }
                    }
                },
                ClockEventKind::NewFacts => {
                    if st.phase != Phase::Open {
                        anomalies.push(ignored(&st));
                        continue;
                    }
                    self.restart(&mut st, date)?;
                    explanation.push(format!(
                        "{date}: new facts received: the period restarts from this day with the base limit of {} ({}).",
                        self.track.decision.stated,
                        r.restart_article.as_deref().unwrap_or("regime rule")
                    ));
                }
                ClockEventKind::Decided => {
                    if st.phase != Phase::Open {
                        anomalies.push(ignored(&st));
                        continue;
                    }
                    if let Some((_, from, reason)) = st.open_pause.take() {
                        if date > from {
                            st.excluded.push((crate::period::next_day(from)?, date));
                        }
                        explanation.push(format!(
                            "{date}: pause for {} ends with the decision.",
                            reason.as_str()
                        ));
                    }
                    st.phase = Phase::Decided;
                    st.decided_at = Some(e.at);
                    explanation.push(format!("{date}: decision made."));
                }
                ClockEventKind::ConsumerNotified => {
                    if st.phase == Phase::Decided && st.notified_at.is_none() {
                        st.notified_at = Some(e.at);
                        explanation.push(format!("{date}: consumer told of the decision."));
                    } else {
                        explanation.push(format!(
                            "{date}: consumer notice recorded (interim; no effect on the clock)."
                        ));
                    }
                }
                ClockEventKind::ReviewRequested => {
                    if st.phase != Phase::Decided || r.review.is_none() {
                        anomalies.push(ignored(&st));
                        continue;
                    }
                    if let Some(window) = self.review_window(&st)?
                        && e.at >= window.due.ends_at
                    {
                        anomalies.push(Anomaly {
                            index,
                            at: e.at,
                            kind: AnomalyKind::ReviewRequestedLate {
                                window_ends: window.due,
                            },
                        });
                        explanation.push(format!(
                            "{date}: review requested after the window closed on {}.",
                            window.due.date
                        ));
                    }
                    st.phase = Phase::Review;
                    st.review_requested_at = Some(e.at);
                    explanation.push(format!("{date}: review requested."));
                }
                ClockEventKind::ReviewDecided => {
                    if st.phase != Phase::Review {
                        anomalies.push(ignored(&st));
                        continue;
                    }
                    st.phase = Phase::ReviewClosed;
                    st.review_decided_at = Some(e.at);
                    explanation.push(format!("{date}: review decided."));
                }
                ClockEventKind::Withdrawn => {
                    if st.phase == Phase::Withdrawn {
                        anomalies.push(ignored(&st));
                        continue;
                    }
                    st.open_pause = None;
                    st.phase = Phase::Withdrawn;
                    st.withdrawn_at = Some(e.at);
                    explanation.push(format!(
                        "{date}: complaint withdrawn; the procedure ends on the day the withdrawal is received ({}).",
                        r.withdrawal_article.as_deref().unwrap_or("regime rule")
                    ));
                }
                ClockEventKind::Reopened => {
                    if st.phase == Phase::Open {
                        anomalies.push(ignored(&st));
                        continue;
                    }
                    self.restart(&mut st, date)?;
                    st.phase = Phase::Open;
                    st.decided_at = None;
                    st.notified_at = None;
                    st.review_requested_at = None;
                    st.review_decided_at = None;
                    st.withdrawn_at = None;
                    explanation.push(format!(
                        "{date}: case reopened: a new decision period of {} starts from this day (internal reading, as for a new complaint).",
                        self.track.decision.stated
                    ));
                }
            }
        }

        // The decision period.
        let mut decision_due = None;
        let mut paused_days = 0;
        if let Some((_, from, reason)) = st.open_pause {
            explanation.push(format!(
                "Clock stopped since {from} ({}): the decision deadline depends on the resume date and is not set.",
                reason.as_str()
            ));
        } else {
            let end = period_end(r, self.calendar, st.anchor, st.days, unit, &st.excluded)?;
            paused_days = end.paused_days;
            explanation.push(format!(
                "Day {} of the period{} is {}.",
                st.days,
                if end.paused_days > 0 {
                    format!(" (after {} paused day(s))", end.paused_days)
                } else {
                    String::new()
                },
                end.last_counted
            ));
            if let Some(n) = &end.roll_note {
                explanation.push(format!("{n} ({}).", r.counting.article));
            }
            missing.extend(end.missing.iter().copied());
            explanation.push(format!(
                "Decision (and notice to the consumer) due by 24:00 {tz} on {} = {}.",
                end.due.date,
                end.due.ends_at.to_rfc3339()
            ));
            decision_due = Some(end.due);
        }

        let decision_on_time = match (decision_due, st.decided_at, st.notified_at) {
            (Some(due), Some(d), _) if d >= due.ends_at => Some(false),
            (Some(due), Some(_), Some(n)) => Some(n < due.ends_at),
            _ => None,
        };

        // Review.
        let mut review_window_ends = None;
        let mut review_due = None;
        if st.decided_at.is_some() {
            if let Some(w) = self.review_window(&st)? {
                missing.extend(w.calendar_missing.iter().copied());
                let from = if st.notified_at.is_some() {
                    "the consumer was told"
                } else {
                    "the decision (provisional: no ConsumerNotified recorded)"
                };
                explanation.push(format!(
                    "Review window: {} from when {from} ({}); ends 24:00 on {}.",
                    w.limit_stated, w.article, w.due.date
                ));
                review_window_ends = Some(w.due);
            }
            if let (Some(req), Some(review)) = (st.review_requested_at, r.review.as_ref()) {
                let c = r.due_after(self.calendar, req, &review.decision)?;
                missing.extend(c.calendar_missing.iter().copied());
                explanation.push(format!(
                    "Review decision due {} from the request ({}); ends 24:00 on {}.",
                    review.decision.stated, review.decision.article, c.due.date
                ));
                review_due = Some(c.due);
            }
        }

        let summary_resolution_by = match &r.summary_resolution {
            Some(limit) => {
                let c = r.due_after(self.calendar, received_at, limit)?;
                missing.extend(c.calendar_missing.iter().copied());
                explanation.push(format!(
                    "Summary resolution possible if resolved by close of {} ({}).",
                    c.due.date, limit.article
                ));
                Some(c.due)
            }
            None => None,
        };

        // Warnings for the running deadline.
        let mut warnings_at = Vec::new();
        let running: Option<(NaiveDate, u32, Unit, Excluded)> = match st.phase {
            Phase::Open if st.open_pause.is_none() => {
                Some((st.anchor, st.days, unit, st.excluded.clone()))
            }
            Phase::Review => match (st.review_requested_at, r.review.as_ref()) {
                (Some(req), Some(review)) => Some((
                    anchor_for(r, local_date(tz, req))?,
                    review.decision.days,
                    review.decision.unit,
                    Vec::new(),
                )),
                _ => None,
            },
            _ => None,
        };
        if let Some((anchor, days, u, excluded)) = running {
            let counter = Counter {
                cal: self.calendar,
                unit: u,
                excluded: &excluded,
            };
            for f in &r.warnings.fractions {
                warnings_at.push(WarningAt {
                    fraction: *f,
                    at: fraction_instant(tz, &counter, anchor, days, *f)?,
                });
            }
        }

        for y in &missing {
            explanation.push(format!(
                "Calendar `{}` has no data for {y} (loaded: {:?}): days in {y} were counted as plain calendar days with no holidays; flagged, not guessed.",
                self.calendar.name(),
                self.calendar.coverage()
            ));
        }

        let status = if let Some((since, _, reason)) = st.open_pause {
            CaseStatus::Paused { since, reason }
        } else {
            match st.phase {
                Phase::Open => CaseStatus::Open,
                Phase::Decided => CaseStatus::Decided {
                    at: st.decided_at.unwrap_or(received_at),
                },
                Phase::Review => CaseStatus::InReview {
                    requested_at: st.review_requested_at.unwrap_or(received_at),
                },
                Phase::ReviewClosed => CaseStatus::ReviewDecided {
                    at: st.review_decided_at.unwrap_or(received_at),
                },
                Phase::Withdrawn => CaseStatus::Withdrawn {
                    at: st.withdrawn_at.unwrap_or(received_at),
                },
            }
        };

        Ok(Deadlines {
            regime: r.name.clone(),
            track: self.track.name.clone(),
            status,
            clock_started_on: st.start,
            limit: AppliedLimit {
                days: st.days,
                unit,
                tier: st.tier,
                article: st.article.clone(),
            },
            decision_due,
            paused_days,
            decided_at: st.decided_at,
            consumer_notified_at: st.notified_at,
            decision_on_time,
            review_window_ends,
            review_due,
            summary_resolution_by,
            warnings_at,
            flags: Flags {
                calendar_missing: !missing.is_empty(),
                missing_years: missing,
            },
            anomalies,
            explanation,
        })
    }

    fn review_window(&self, st: &State) -> Result<Option<ReviewWindow>, ClockError> {
        let (Some(review), Some(decided)) = (self.regime.review.as_ref(), st.decided_at) else {
            return Ok(None);
        };
        let from = st.notified_at.unwrap_or(decided);
        let c = self.regime.due_after(self.calendar, from, &review.window)?;
        Ok(Some(ReviewWindow {
            due: c.due,
            calendar_missing: c.calendar_missing,
            limit_stated: review.window.stated.clone(),
            article: review.window.article.clone(),
        }))
    }
}

/// Inclusive date ranges not counted.
type Excluded = Vec<(NaiveDate, NaiveDate)>;

struct ReviewWindow {
    due: Due,
    calendar_missing: BTreeSet<i32>,
    limit_stated: String,
    article: String,
}
