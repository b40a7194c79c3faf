//! The case clock: deadlines derived from the receipt instant and the case's clock-relevant
//! events. Nothing is stored: feed the same history to a corrected calendar or regime and the
//! deadlines are recomputed.
//!
//! [`CaseClock::derive`] is a fold over the history, written in `clock/history.rs`: the
//! accumulator starts at receipt; each event kind has its own step, which either moves the clock
//! or records an [`Anomaly`] saying why the event could not be applied; the final state is then
//! turned into [`Deadlines`], one part (decision, review, summary resolution, warnings, status)
//! at a time. Every step writes the rule it applied into `explanation`. This file holds what
//! callers see: the events, the results, and the clock.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};

use crate::calendar::Calendar;
use crate::error::ClockError;
use crate::extension::{Approver, ExtensionContext, ExtensionRefused};
use crate::period::Due;
// Regime files name the reasons that stop the clock, so the type is defined with the rules;
// re-exported here because clock events carry it.
pub use crate::regime::PauseReason;
use crate::regime::{Regime, Track, Unit};

mod history;

use history::History;

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

/// Derives deadlines for one regime track on one calendar.
#[derive(Debug, Clone, Copy)]
pub struct CaseClock<'a> {
    regime: &'a Regime,
    calendar: &'a Calendar,
    track: &'a Track,
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

    /// Derives the deadlines from the receipt instant and the events, which must be in time
    /// order and not before receipt.
    pub fn derive(
        &self,
        received_at: DateTime<Utc>,
        events: &[ClockEvent],
    ) -> Result<Deadlines, ClockError> {
        check_order(received_at, events)?;
        let start = History::start(*self, received_at)?;
        events
            .iter()
            .enumerate()
            .try_fold(start, |history, (index, event)| history.apply(index, event))?
            .finish()
    }
}

/// The history is given, not built here: an event out of order is the caller's error, not an
/// anomaly to work around, because its place in the history changes what it means.
fn check_order(received_at: DateTime<Utc>, events: &[ClockEvent]) -> Result<(), ClockError> {
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
    Ok(())
}
