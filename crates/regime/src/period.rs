//! Day counting: from an anchor date, count N calendar or working days (skipping paused days),
//! then apply the regime's last-day rule, and express the end as 24:00 local time in UTC.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::calendar::Calendar;
use crate::error::ClockError;
use crate::regime::{LastDayRule, Limit, Regime, Unit};

/// A deadline: the last local day, and the instant the period expires (24:00 of that day in the
/// regime's time zone, i.e. the next local midnight, expressed in UTC). Done in time means done
/// strictly before `ends_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Due {
    /// Last day of the period, local date.
    pub date: NaiveDate,
    /// 24:00 local on `date`, in UTC.
    pub ends_at: DateTime<Utc>,
}

/// A deadline computed for one limit, with how it was derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    /// The deadline.
    pub due: Due,
    /// Years the computation needed that the calendar does not cover (computed on plain days).
    pub calendar_missing: BTreeSet<i32>,
    /// How it was derived.
    pub explanation: Vec<String>,
}

/// A walk of more days than this means the calendar or the exclusions are broken (limits are at
/// most a year, pauses add at most their own length): stop with an error rather than loop.
const MAX_WALK_STEPS: u32 = 100_000;

/// Longest run of consecutive days a last-day roll may cross. Announced holiday periods are at
/// most a month, so this only stops a malformed calendar from looping.
const MAX_ROLL_DAYS: u32 = 400;

const MINUTES_PER_DAY: u32 = 24 * 60;

pub(crate) fn local_date(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

pub(crate) fn next_day(d: NaiveDate) -> Result<NaiveDate, ClockError> {
    d.succ_opt()
        .ok_or_else(|| ClockError::OutOfRange(d.to_string()))
}

pub(crate) fn prev_day(d: NaiveDate) -> Result<NaiveDate, ClockError> {
    d.pred_opt()
        .ok_or_else(|| ClockError::OutOfRange(d.to_string()))
}

/// 00:00 local of `date` in UTC. If midnight does not exist locally (a DST gap at midnight), the
/// first existing instant after it.
pub(crate) fn local_midnight(tz: Tz, date: NaiveDate) -> Result<DateTime<Utc>, ClockError> {
    let mut naive = date
        .and_hms_opt(0, 0, 0)
        .ok_or_else(|| ClockError::OutOfRange(date.to_string()))?;
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&naive).earliest() {
            return Ok(t.with_timezone(&Utc));
        }
        naive += chrono::Duration::minutes(30);
    }
    Err(ClockError::OutOfRange(date.to_string()))
}

/// 24:00 local of `date` (= next local midnight) in UTC.
pub(crate) fn end_of_day(tz: Tz, date: NaiveDate) -> Result<DateTime<Utc>, ClockError> {
    local_midnight(tz, next_day(date)?)
}

/// Counts days after an anchor.
pub(crate) struct Counter<'a> {
    pub cal: &'a Calendar,
    pub unit: Unit,
    /// Inclusive date ranges that are not counted (paused).
    pub excluded: &'a [(NaiveDate, NaiveDate)],
}

pub(crate) struct Walk {
    pub date: NaiveDate,
    pub paused_days: u32,
    pub missing: BTreeSet<i32>,
}

impl Counter<'_> {
    fn is_excluded(&self, d: NaiveDate) -> bool {
        self.excluded.iter().any(|(a, b)| *a <= d && d <= *b)
    }

    /// The `n`th countable day after `anchor` (anchor not counted; `n == 0` is the anchor).
    pub(crate) fn nth(&self, anchor: NaiveDate, n: u32) -> Result<Walk, ClockError> {
        let mut walk = Walk {
            date: anchor,
            paused_days: 0,
            missing: BTreeSet::new(),
        };
        let mut left = n;
        let mut guard: u32 = 0;
        while left > 0 {
            guard += 1;
            if guard > MAX_WALK_STEPS {
                return Err(ClockError::OutOfRange(walk.date.to_string()));
            }
            walk.date = next_day(walk.date)?;
            let countable_kind = match self.unit {
                Unit::CalendarDays => true,
                Unit::WorkingDays => {
                    if !self.cal.covers(walk.date) {
                        walk.missing.insert(walk.date.year());
                    }
                    self.cal.is_working_day(walk.date)
                }
            };
            if !countable_kind {
                continue;
            }
            if self.is_excluded(walk.date) {
                walk.paused_days += 1;
                continue;
            }
            left -= 1;
        }
        Ok(walk)
    }
}

pub(crate) struct Rolled {
    pub date: NaiveDate,
    pub note: Option<String>,
    pub missing: BTreeSet<i32>,
}

/// Applies the last-day rule to the last counted day of a calendar-day period.
pub(crate) fn roll(
    cal: &Calendar,
    rule: LastDayRule,
    last: NaiveDate,
) -> Result<Rolled, ClockError> {
    let mut missing = BTreeSet::new();
    if rule == LastDayRule::None {
        return Ok(Rolled {
            date: last,
            note: None,
            missing,
        });
    }
    let mut d = last;
    let mut notes = Vec::new();
    for _ in 0..MAX_ROLL_DAYS {
        if !cal.covers(d) {
            missing.insert(d.year());
        }
        match rule {
            LastDayRule::None => break,
            LastDayRule::StatutoryHoliday => match cal.day_after_holiday(d) {
                Some(after) => {
                    let name = cal.holiday_period(d).map_or("holiday", |p| p.name.as_str());
                    notes.push(format!(
                        "{d} falls in the statutory holiday period {name}; the period ends on the day after the holiday, {after}"
                    ));
                    d = after;
                }
                None => break,
            },
            LastDayRule::RestDay => {
                if cal.is_working_day(d) {
                    break;
                }
                let next = next_day(d)?;
                notes.push(format!("{d} is a rest day; moved to {next}"));
                d = next;
            }
        }
    }
    Ok(Rolled {
        date: d,
        note: if notes.is_empty() {
            None
        } else {
            Some(notes.join("; "))
        },
        missing,
    })
}

pub(crate) struct PeriodEnd {
    pub last_counted: NaiveDate,
    pub due: Due,
    pub paused_days: u32,
    pub roll_note: Option<String>,
    pub missing: BTreeSet<i32>,
}

/// Anchor (not counted) for a period that starts with an event on `start_date`.
pub(crate) fn anchor_for(regime: &Regime, start_date: NaiveDate) -> Result<NaiveDate, ClockError> {
    if regime.counting.receipt_day_counted {
        prev_day(start_date)
    } else {
        Ok(start_date)
    }
}

/// Counts `days` `unit`s after `anchor`, skipping `excluded`, applies the last-day rule.
pub(crate) fn period_end(
    regime: &Regime,
    cal: &Calendar,
    anchor: NaiveDate,
    days: u32,
    unit: Unit,
    excluded: &[(NaiveDate, NaiveDate)],
) -> Result<PeriodEnd, ClockError> {
    let walk = Counter {
        cal,
        unit,
        excluded,
    }
    .nth(anchor, days)?;
    let mut missing = walk.missing;
    let (date, roll_note) = match unit {
        Unit::CalendarDays => {
            let r = roll(cal, regime.counting.last_day_rule, walk.date)?;
            missing.extend(r.missing);
            (r.date, r.note)
        }
        Unit::WorkingDays => (walk.date, None),
    };
    Ok(PeriodEnd {
        last_counted: walk.date,
        due: Due {
            date,
            ends_at: end_of_day(regime.time_zone, date)?,
        },
        paused_days: walk.paused_days,
        roll_note,
        missing,
    })
}

impl Regime {
    /// The deadline for `limit` counted from an event at `from` (e.g. a regulator referral
    /// received, for [`Regime::referral_forward`]), with this regime's counting rules.
    pub fn due_after(
        &self,
        cal: &Calendar,
        from: DateTime<Utc>,
        limit: &Limit,
    ) -> Result<Computed, ClockError> {
        let start = local_date(self.time_zone, from);
        let anchor = anchor_for(self, start)?;
        let end = period_end(self, cal, anchor, limit.days, limit.unit, &[])?;
        let mut explanation = vec![
            format!(
                "Started {} ({} local date {start}); {}.",
                from.to_rfc3339(),
                self.time_zone,
                if self.counting.receipt_day_counted {
                    "that day counts as day 1".to_owned()
                } else {
                    format!("that day is not counted ({})", self.counting.article)
                }
            ),
            format!(
                "Limit {} ({}){}: day {} is {}.",
                limit.stated,
                limit.article,
                if limit.confirmed {
                    ""
                } else {
                    " [unconfirmed]"
                },
                limit.days,
                end.last_counted
            ),
        ];
        if let Some(n) = &end.roll_note {
            explanation.push(format!("{n} ({}).", self.counting.article));
        }
        for y in &end.missing {
            explanation.push(format!(
                "Calendar `{}` has no data for {y}: computed on plain days and flagged.",
                cal.name()
            ));
        }
        explanation.push(format!(
            "Due by 24:00 {} on {} = {}.",
            self.time_zone,
            end.due.date,
            end.due.ends_at.to_rfc3339()
        ));
        Ok(Computed {
            due: end.due,
            calendar_missing: end.missing,
            explanation,
        })
    }
}

/// Instant at which fraction `f` of a `days`-long period after `anchor` has elapsed.
pub(crate) fn fraction_instant(
    tz: Tz,
    counter: &Counter<'_>,
    anchor: NaiveDate,
    days: u32,
    f: f64,
) -> Result<DateTime<Utc>, ClockError> {
    let per_day = u64::from(MINUTES_PER_DAY);
    let total_minutes = f64::from(days) * f64::from(MINUTES_PER_DAY) * f;
    let minutes = if total_minutes.is_finite() && total_minutes >= 1.0 {
        total_minutes.round() as u64
    } else {
        1
    };
    let k =
        u32::try_from(minutes / per_day).map_err(|_| ClockError::OutOfRange(anchor.to_string()))?;
    let rem = minutes % per_day;
    if rem == 0 {
        let day = counter.nth(anchor, k)?.date;
        end_of_day(tz, day)
    } else {
        let day = counter.nth(anchor, k + 1)?.date;
        let start = local_midnight(tz, day)?;
        let rem = i64::try_from(rem).map_err(|_| ClockError::OutOfRange(anchor.to_string()))?;
        Ok(start + chrono::Duration::minutes(rem))
    }
}

/// Convenience: whole-days distance helper used in explanations.
pub(crate) fn days_between(a: NaiveDate, b: NaiveDate) -> i64 {
    (b - a).num_days()
}
