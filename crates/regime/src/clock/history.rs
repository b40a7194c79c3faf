//! The fold behind [`CaseClock::derive`](super::CaseClock::derive): one step per event kind,
//! then the final state turned into [`Deadlines`].

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};

use super::{
    Anomaly, AnomalyKind, AppliedLimit, CaseClock, CaseStatus, ClockEvent, ClockEventKind,
    Deadlines, Flags, WarningAt,
};
use crate::error::ClockError;
use crate::extension::{Approver, ExtensionContext};
use crate::period::{
    Counter, Due, PeriodEnd, anchor_for, days_between, fraction_instant, local_date, next_day,
    period_end,
};
use crate::regime::{PauseReason, Unit};

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

/// Inclusive date ranges not counted.
type Excluded = Vec<(NaiveDate, NaiveDate)>;

/// The decision clock as the history so far leaves it.
struct State {
    /// Local date the current decision period runs from (receipt, or the last restart).
    start: NaiveDate,
    /// The day before day 1: `start` itself unless the regime counts the start day.
    anchor: NaiveDate,
    /// Extension tier in force.
    tier: u8,
    /// Limit in force, in the track's unit.
    days: u32,
    /// Article behind that limit.
    article: String,
    /// Paused days of the current period.
    excluded: Excluded,
    /// A pause not yet ended: since when, from which local date, and why.
    open_pause: Option<(DateTime<Utc>, NaiveDate, PauseReason)>,
    phase: Phase,
    decided_at: Option<DateTime<Utc>>,
    notified_at: Option<DateTime<Utc>>,
    review_requested_at: Option<DateTime<Utc>>,
    review_decided_at: Option<DateTime<Utc>>,
    withdrawn_at: Option<DateTime<Utc>>,
}

/// One event as a step sees it.
struct Step {
    /// Position in the input, for anomalies.
    index: usize,
    at: DateTime<Utc>,
    /// Local date in the regime's time zone: the day the event counts on.
    date: NaiveDate,
    /// Name of the event kind, for anomalies.
    event: &'static str,
}

/// The fold's accumulator: the clock state plus what has been said about it so far.
pub(super) struct History<'a> {
    clock: CaseClock<'a>,
    received_at: DateTime<Utc>,
    st: State,
    explanation: Vec<String>,
    anomalies: Vec<Anomaly>,
}

impl<'a> History<'a> {
    /// The state at receipt: the base limit of the track, counted from the local date of receipt.
    pub(super) fn start(
        clock: CaseClock<'a>,
        received_at: DateTime<Utc>,
    ) -> Result<Self, ClockError> {
        let r = clock.regime;
        let decision = &clock.track.decision;
        let received_local = local_date(r.time_zone, received_at);
        let explanation = vec![
            format!(
                "Regime {} ({}; {}), track `{}`.",
                r.name,
                r.title,
                r.source
                    .document_number
                    .as_deref()
                    .unwrap_or("no document number"),
                clock.track.name
            ),
            format!(
                "Received {} = {} local date {received_local}; {}.",
                received_at.to_rfc3339(),
                r.time_zone,
                if r.counting.receipt_day_counted {
                    "that day counts as day 1".to_owned()
                } else {
                    format!("the day of receipt is not counted ({})", r.counting.article)
                }
            ),
            format!(
                "Limit {} ({}){}.",
                decision.stated,
                decision.article,
                if decision.confirmed {
                    ""
                } else {
                    " [unconfirmed]"
                }
            ),
        ];
        let st = State {
            start: received_local,
            anchor: anchor_for(r, received_local)?,
            tier: 0,
            days: decision.days,
            article: decision.article.clone(),
            excluded: Vec::new(),
            open_pause: None,
            phase: Phase::Open,
            decided_at: None,
            notified_at: None,
            review_requested_at: None,
            review_decided_at: None,
            withdrawn_at: None,
        };
        Ok(Self {
            clock,
            received_at,
            st,
            explanation,
            anomalies: Vec::new(),
        })
    }

    /// One step of the fold: hands the event to the step for its kind.
    pub(super) fn apply(mut self, index: usize, event: &ClockEvent) -> Result<Self, ClockError> {
        let step = Step {
            index,
            at: event.at,
            date: local_date(self.clock.regime.time_zone, event.at),
            event: event_name(&event.kind),
        };
        match &event.kind {
            ClockEventKind::Extended { tier, approved_by } => {
                self.extended(&step, *tier, approved_by.as_ref())?;
            }
            ClockEventKind::Paused { reason } => self.paused(&step, *reason),
            ClockEventKind::Resumed => self.resumed(&step)?,
            ClockEventKind::NewFacts => self.new_facts(&step)?,
            ClockEventKind::Decided => self.decided(&step)?,
            ClockEventKind::ConsumerNotified => self.consumer_notified(&step),
            ClockEventKind::ReviewRequested => self.review_requested(&step)?,
            ClockEventKind::ReviewDecided => self.review_decided(&step),
            ClockEventKind::Withdrawn => self.withdrawn(&step),
            ClockEventKind::Reopened => self.reopened(&step)?,
        }
        Ok(self)
    }

    fn explain(&mut self, line: String) {
        self.explanation.push(line);
    }

    fn anomaly(&mut self, step: &Step, kind: AnomalyKind) {
        self.anomalies.push(Anomaly {
            index: step.index,
            at: step.at,
            kind,
        });
    }

    /// The event makes no sense in the current state: recorded as an anomaly, not applied.
    fn ignore(&mut self, step: &Step) {
        let state = if self.st.open_pause.is_some() {
            "paused"
        } else {
            self.st.phase.name()
        };
        self.anomaly(
            step,
            AnomalyKind::Ignored {
                event: step.event,
                state,
            },
        );
    }

    /// The decision deadline of the current period, assuming the clock is running.
    fn current_period_end(&self) -> Result<PeriodEnd, ClockError> {
        period_end(
            self.clock.regime,
            self.clock.calendar,
            self.st.anchor,
            self.st.days,
            self.clock.track.decision.unit,
            &self.st.excluded,
        )
    }

    /// A new decision period from `date` with the base limit. Pauses and extensions belonged to
    /// the old period, so they go with it.
    fn restart(&mut self, date: NaiveDate) -> Result<(), ClockError> {
        let decision = &self.clock.track.decision;
        self.st.start = date;
        self.st.anchor = anchor_for(self.clock.regime, date)?;
        self.st.tier = 0;
        self.st.days = decision.days;
        self.st.article = decision.article.clone();
        self.st.excluded.clear();
        self.st.open_pause = None;
        Ok(())
    }

    /// An extension applies only if the track allows this tier now (in order, approved where the
    /// tier requires it, before a decision) and the deadline in force has not passed: granting
    /// it afterwards would hide a breach.
    fn extended(
        &mut self,
        step: &Step,
        tier: u8,
        approved_by: Option<&Approver>,
    ) -> Result<(), ClockError> {
        let date = step.date;
        let ctx = ExtensionContext {
            current_tier: self.st.tier,
            decided: self.st.phase != Phase::Open,
        };
        let track = self.clock.track;
        if let Err(refused) = track.can_extend(ctx, tier, approved_by) {
            self.explain(format!(
                "{date}: extension to tier {tier} not applied: {refused}."
            ));
            self.anomaly(step, AnomalyKind::ExtensionRefused(refused));
            return Ok(());
        }
        // While paused the deadline is not set, so it cannot have passed.
        if self.st.open_pause.is_none() {
            let current = self.current_period_end()?;
            if step.at >= current.due.ends_at {
                self.explain(format!(
                    "{date}: extension to tier {tier} not applied: the deadline {} had already passed.",
                    current.due.date
                ));
                self.anomaly(
                    step,
                    AnomalyKind::ExtensionAfterDeadline { due: current.due },
                );
                return Ok(());
            }
        }
        if let Some(rule) = track.extensions.iter().find(|t| t.tier == tier) {
            self.st.tier = tier;
            self.st.days = rule.total_days;
            self.st.article = rule.article.clone();
            self.explain(format!(
                "{date}: extension tier {tier}{}: limit now {} {} from the same start ({}){}.",
                approved_by
                    .map(|a| format!(" approved by {} ({})", a.id, a.role.as_str()))
                    .unwrap_or_default(),
                rule.total_days,
                track.decision.unit.as_str(),
                rule.article,
                if rule.consumer_notice {
                    "; the consumer must be told"
                } else {
                    ""
                }
            ));
        }
        Ok(())
    }

    /// Only a reason the regime lists stops the clock; any other is recorded and the clock keeps
    /// running, so the deadline stays the stricter one.
    fn paused(&mut self, step: &Step, reason: PauseReason) {
        if self.st.phase != Phase::Open || self.st.open_pause.is_some() {
            self.ignore(step);
            return;
        }
        let r = self.clock.regime;
        let date = step.date;
        match r.pause_rule(reason) {
            Some(rule) => {
                self.st.open_pause = Some((step.at, date, reason));
                self.explain(format!(
                    "{date}: clock paused for {} ({}).",
                    reason.as_str(),
                    rule.article
                ));
            }
            None => {
                self.explain(format!(
                    "{date}: pause for {} recorded, but that reason does not stop the clock under {}; the clock keeps running.",
                    reason.as_str(),
                    r.name
                ));
                self.anomaly(step, AnomalyKind::PauseDoesNotStopClock(reason));
            }
        }
    }

    /// A pause from local date P to resume date R excludes P+1..=R, the same way the day of
    /// receipt is excluded; a pause and resume on the same day excludes nothing.
    fn resumed(&mut self, step: &Step) -> Result<(), ClockError> {
        let date = step.date;
        let Some((_, from, reason)) = self.st.open_pause.take() else {
            // A resume after a pause that did not stop the clock is harmless.
            let refused_pause = self
                .anomalies
                .iter()
                .any(|a| matches!(a.kind, AnomalyKind::PauseDoesNotStopClock(_)));
            if !refused_pause {
                self.ignore(step);
            }
            return Ok(());
        };
        let first = next_day(from)?;
        if date > from {
            self.st.excluded.push((first, date));
        }
        self.explain(format!(
            "{date}: clock resumed after {} (paused {from} → {date}: {} calendar day(s) {first}..={date} not counted).",
            reason.as_str(),
            days_between(from, date).max(0),
        ));
        Ok(())
    }

    /// New facts restart the period from the day they are received, with the base limit.
    fn new_facts(&mut self, step: &Step) -> Result<(), ClockError> {
        if self.st.phase != Phase::Open {
            self.ignore(step);
            return Ok(());
        }
        let date = step.date;
        self.restart(date)?;
        let r = self.clock.regime;
        self.explain(format!(
            "{date}: new facts received: the period restarts from this day with the base limit of {} ({}).",
            self.clock.track.decision.stated,
            r.restart_article.as_deref().unwrap_or("regime rule")
        ));
        Ok(())
    }

    /// The decision stops the decision clock; a pause still open ends with it.
    fn decided(&mut self, step: &Step) -> Result<(), ClockError> {
        if self.st.phase != Phase::Open {
            self.ignore(step);
            return Ok(());
        }
        let date = step.date;
        if let Some((_, from, reason)) = self.st.open_pause.take() {
            if date > from {
                self.st.excluded.push((next_day(from)?, date));
            }
            self.explain(format!(
                "{date}: pause for {} ends with the decision.",
                reason.as_str()
            ));
        }
        self.st.phase = Phase::Decided;
        self.st.decided_at = Some(step.at);
        self.explain(format!("{date}: decision made."));
        Ok(())
    }

    /// The first notice after the decision is the one that counts: the decision is on time only
    /// if the consumer is also told in time, and the review window runs from it.
    fn consumer_notified(&mut self, step: &Step) {
        let date = step.date;
        if self.st.phase == Phase::Decided && self.st.notified_at.is_none() {
            self.st.notified_at = Some(step.at);
            self.explain(format!("{date}: consumer told of the decision."));
        } else {
            self.explain(format!(
                "{date}: consumer notice recorded (interim; no effect on the clock)."
            ));
        }
    }

    /// A review request after the window closed is still recorded (the consumer did ask), with
    /// an anomaly.
    fn review_requested(&mut self, step: &Step) -> Result<(), ClockError> {
        if self.st.phase != Phase::Decided || self.clock.regime.review.is_none() {
            self.ignore(step);
            return Ok(());
        }
        let date = step.date;
        if let Some(window) = self.review_window()?
            && step.at >= window.due.ends_at
        {
            self.anomaly(
                step,
                AnomalyKind::ReviewRequestedLate {
                    window_ends: window.due,
                },
            );
            self.explain(format!(
                "{date}: review requested after the window closed on {}.",
                window.due.date
            ));
        }
        self.st.phase = Phase::Review;
        self.st.review_requested_at = Some(step.at);
        self.explain(format!("{date}: review requested."));
        Ok(())
    }

    fn review_decided(&mut self, step: &Step) {
        if self.st.phase != Phase::Review {
            self.ignore(step);
            return;
        }
        self.st.phase = Phase::ReviewClosed;
        self.st.review_decided_at = Some(step.at);
        self.explain(format!("{}: review decided.", step.date));
    }

    /// A withdrawal ends the procedure on the day it is received, whatever the phase.
    fn withdrawn(&mut self, step: &Step) {
        if self.st.phase == Phase::Withdrawn {
            self.ignore(step);
            return;
        }
        self.st.open_pause = None;
        self.st.phase = Phase::Withdrawn;
        self.st.withdrawn_at = Some(step.at);
        self.explain(format!(
            "{}: complaint withdrawn; the procedure ends on the day the withdrawal is received ({}).",
            step.date,
            self.clock
                .regime
                .withdrawal_article
                .as_deref()
                .unwrap_or("regime rule")
        ));
    }

    /// A reopened case gets a new decision period from the reopening day, as a new complaint
    /// would (internal reading: the regulation does not cover reopening).
    fn reopened(&mut self, step: &Step) -> Result<(), ClockError> {
        if self.st.phase == Phase::Open {
            self.ignore(step);
            return Ok(());
        }
        let date = step.date;
        self.restart(date)?;
        self.st.phase = Phase::Open;
        self.st.decided_at = None;
        self.st.notified_at = None;
        self.st.review_requested_at = None;
        self.st.review_decided_at = None;
        self.st.withdrawn_at = None;
        self.explain(format!(
            "{date}: case reopened: a new decision period of {} starts from this day (internal reading, as for a new complaint).",
            self.clock.track.decision.stated
        ));
        Ok(())
    }

    /// The review window runs from the notice of the decision, or provisionally from the
    /// decision itself when no notice is recorded.
    fn review_window(&self) -> Result<Option<ReviewWindow>, ClockError> {
        let regime = self.clock.regime;
        let (Some(review), Some(decided)) = (regime.review.as_ref(), self.st.decided_at) else {
            return Ok(None);
        };
        let from = self.st.notified_at.unwrap_or(decided);
        let c = regime.due_after(self.clock.calendar, from, &review.window)?;
        Ok(Some(ReviewWindow {
            due: c.due,
            calendar_missing: c.calendar_missing,
            limit_stated: review.window.stated.clone(),
            article: review.window.article.clone(),
        }))
    }

    /// Turns the final state into deadlines. The parts are computed in a fixed order, so the
    /// explanation reads decision, review, summary resolution, then missing calendar years.
    pub(super) fn finish(mut self) -> Result<Deadlines, ClockError> {
        let mut missing = BTreeSet::new();
        let (decision_due, paused_days) = self.decision_due(&mut missing)?;
        let decision_on_time = match (decision_due, self.st.decided_at, self.st.notified_at) {
            (Some(due), Some(d), _) if d >= due.ends_at => Some(false),
            (Some(due), Some(_), Some(n)) => Some(n < due.ends_at),
            _ => None,
        };
        let (review_window_ends, review_due) = self.review_deadlines(&mut missing)?;
        let summary_resolution_by = self.summary_resolution(&mut missing)?;
        let warnings_at = self.warnings()?;
        self.explain_missing(&missing);
        let status = self.status();
        let track = self.clock.track;
        Ok(Deadlines {
            regime: self.clock.regime.name.clone(),
            track: track.name.clone(),
            status,
            clock_started_on: self.st.start,
            limit: AppliedLimit {
                days: self.st.days,
                unit: track.decision.unit,
                tier: self.st.tier,
                article: self.st.article,
            },
            decision_due,
            paused_days,
            decided_at: self.st.decided_at,
            consumer_notified_at: self.st.notified_at,
            decision_on_time,
            review_window_ends,
            review_due,
            summary_resolution_by,
            warnings_at,
            flags: Flags {
                calendar_missing: !missing.is_empty(),
                missing_years: missing,
            },
            anomalies: self.anomalies,
            explanation: self.explanation,
        })
    }

    /// The decision deadline and the paused days behind it; no deadline while the clock is
    /// stopped, because it depends on the resume date.
    fn decision_due(
        &mut self,
        missing: &mut BTreeSet<i32>,
    ) -> Result<(Option<Due>, u32), ClockError> {
        if let Some((_, from, reason)) = self.st.open_pause {
            self.explain(format!(
                "Clock stopped since {from} ({}): the decision deadline depends on the resume date and is not set.",
                reason.as_str()
            ));
            return Ok((None, 0));
        }
        let r = self.clock.regime;
        let end = self.current_period_end()?;
        self.explain(format!(
            "Day {} of the period{} is {}.",
            self.st.days,
            if end.paused_days > 0 {
                format!(" (after {} paused day(s))", end.paused_days)
            } else {
                String::new()
            },
            end.last_counted
        ));
        if let Some(n) = &end.roll_note {
            self.explain(format!("{n} ({}).", r.counting.article));
        }
        missing.extend(end.missing.iter().copied());
        self.explain(format!(
            "Decision (and notice to the consumer) due by 24:00 {} on {} = {}.",
            r.time_zone,
            end.due.date,
            end.due.ends_at.to_rfc3339()
        ));
        Ok((Some(end.due), end.paused_days))
    }

    /// Once decided: the window to ask for a review, and the review's own deadline once asked.
    fn review_deadlines(
        &mut self,
        missing: &mut BTreeSet<i32>,
    ) -> Result<(Option<Due>, Option<Due>), ClockError> {
        if self.st.decided_at.is_none() {
            return Ok((None, None));
        }
        let mut window_ends = None;
        if let Some(w) = self.review_window()? {
            missing.extend(w.calendar_missing.iter().copied());
            let from = if self.st.notified_at.is_some() {
                "the consumer was told"
            } else {
                "the decision (provisional: no ConsumerNotified recorded)"
            };
            self.explain(format!(
                "Review window: {} from when {from} ({}); ends 24:00 on {}.",
                w.limit_stated, w.article, w.due.date
            ));
            window_ends = Some(w.due);
        }
        let r = self.clock.regime;
        let mut review_due = None;
        if let (Some(req), Some(review)) = (self.st.review_requested_at, r.review.as_ref()) {
            let c = r.due_after(self.clock.calendar, req, &review.decision)?;
            missing.extend(c.calendar_missing.iter().copied());
            self.explain(format!(
                "Review decision due {} from the request ({}); ends 24:00 on {}.",
                review.decision.stated, review.decision.article, c.due.date
            ));
            review_due = Some(c.due);
        }
        Ok((window_ends, review_due))
    }

    /// The close of the window for a summary resolution (uk-fca DISP 1.5), counted from receipt
    /// whatever happened since.
    fn summary_resolution(
        &mut self,
        missing: &mut BTreeSet<i32>,
    ) -> Result<Option<Due>, ClockError> {
        let r = self.clock.regime;
        let Some(limit) = &r.summary_resolution else {
            return Ok(None);
        };
        let c = r.due_after(self.clock.calendar, self.received_at, limit)?;
        missing.extend(c.calendar_missing.iter().copied());
        self.explain(format!(
            "Summary resolution possible if resolved by close of {} ({}).",
            c.due.date, limit.article
        ));
        Ok(Some(c.due))
    }

    /// Warnings follow the deadline that is running: the decision while the case is open and
    /// the clock not paused, the review deadline while in review, none otherwise.
    fn warnings(&self) -> Result<Vec<WarningAt>, ClockError> {
        let r = self.clock.regime;
        let running = match self.st.phase {
            Phase::Open if self.st.open_pause.is_none() => RunningPeriod {
                anchor: self.st.anchor,
                days: self.st.days,
                unit: self.clock.track.decision.unit,
                excluded: &self.st.excluded,
            },
            Phase::Review => match (self.st.review_requested_at, r.review.as_ref()) {
                (Some(req), Some(review)) => RunningPeriod {
                    anchor: anchor_for(r, local_date(r.time_zone, req))?,
                    days: review.decision.days,
                    unit: review.decision.unit,
                    excluded: &[],
                },
                _ => return Ok(Vec::new()),
            },
            _ => return Ok(Vec::new()),
        };
        let counter = Counter {
            cal: self.clock.calendar,
            unit: running.unit,
            excluded: running.excluded,
        };
        r.warnings
            .fractions
            .iter()
            .map(|f| {
                Ok(WarningAt {
                    fraction: *f,
                    at: fraction_instant(r.time_zone, &counter, running.anchor, running.days, *f)?,
                })
            })
            .collect()
    }

    fn explain_missing(&mut self, missing: &BTreeSet<i32>) {
        let cal = self.clock.calendar;
        for y in missing {
            self.explain(format!(
                "Calendar `{}` has no data for {y} (loaded: {:?}): days in {y} were counted as plain calendar days with no holidays; flagged, not guessed.",
                cal.name(),
                cal.coverage()
            ));
        }
    }

    fn status(&self) -> CaseStatus {
        let st = &self.st;
        // The phase and its instant are set together, so the fallbacks are never used; they
        // keep this total without a panic.
        let or_receipt = |at: Option<DateTime<Utc>>| at.unwrap_or(self.received_at);
        if let Some((since, _, reason)) = st.open_pause {
            return CaseStatus::Paused { since, reason };
        }
        match st.phase {
            Phase::Open => CaseStatus::Open,
            Phase::Decided => CaseStatus::Decided {
                at: or_receipt(st.decided_at),
            },
            Phase::Review => CaseStatus::InReview {
                requested_at: or_receipt(st.review_requested_at),
            },
            Phase::ReviewClosed => CaseStatus::ReviewDecided {
                at: or_receipt(st.review_decided_at),
            },
            Phase::Withdrawn => CaseStatus::Withdrawn {
                at: or_receipt(st.withdrawn_at),
            },
        }
    }
}

/// The period a warning is measured against.
struct RunningPeriod<'e> {
    anchor: NaiveDate,
    days: u32,
    unit: Unit,
    excluded: &'e [(NaiveDate, NaiveDate)],
}

struct ReviewWindow {
    due: Due,
    calendar_missing: BTreeSet<i32>,
    limit_stated: String,
    article: String,
}
