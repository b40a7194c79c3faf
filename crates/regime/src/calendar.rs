//! Business calendars as data: statutory holiday periods and make-up working days (调休), one
//! file per year, each citing the official notice it was copied from.
//!
//! A calendar only knows the years it was given. Asking about another year is not an error:
//! the answer falls back to plain weekdays (Monday–Friday working, no holidays) and the caller is
//! told the year is missing ([`Calendar::covers`]), so the deadline can be flagged, never guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{Datelike, NaiveDate, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use crate::data::{RawSource, Source, Src};
use crate::error::LoadError;
use crate::regime::Regime;

const CN_2025: &str = include_str!("../data/calendars/cn/2025.toml");
const CN_2026: &str = include_str!("../data/calendars/cn/2026.toml");
const UK_EW_2025: &str = include_str!("../data/calendars/uk-ew/2025.toml");
const UK_EW_2026: &str = include_str!("../data/calendars/uk-ew/2026.toml");

/// One announced holiday period (inclusive), with the make-up working days the notice ties to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayPeriod {
    /// Name as announced (e.g. 春节).
    pub name: String,
    /// First day off.
    pub start: NaiveDate,
    /// Last day off (inclusive).
    pub end: NaiveDate,
    /// Weekend days that are working days because of this holiday (调休上班).
    pub makeup_working_days: Vec<NaiveDate>,
}

/// One year of a calendar and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarYear {
    /// The year.
    pub year: i32,
    /// The notice or list it was copied from.
    pub source: Source,
    /// The file it was loaded from.
    pub file: String,
    /// The holiday periods of the year.
    pub holidays: Vec<HolidayPeriod>,
}

/// A business calendar: weekends are rest days unless listed as make-up working days; listed
/// holiday periods are rest days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    name: String,
    time_zone: Option<Tz>,
    years: BTreeMap<i32, CalendarYear>,
    /// date -> (year, index of the period in that year)
    holiday_days: BTreeMap<NaiveDate, (i32, usize)>,
    makeup_days: BTreeSet<NaiveDate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    calendar: Spanned<String>,
    year: Spanned<i32>,
    time_zone: Spanned<String>,
    source: RawSource,
    #[serde(default)]
    holiday: Vec<RawHoliday>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    name: Spanned<String>,
    start: Spanned<String>,
    end: Spanned<String>,
    #[serde(default)]
    makeup_working_days: Vec<Spanned<String>>,
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Years a calendar file may be for: a sanity bound that catches a typo in `year`.
const YEARS: std::ops::RangeInclusive<i32> = 1900..=2200;

/// No announced holiday period comes near a month; a longer one is a typo in a date.
const MAX_HOLIDAY_PERIOD_DAYS: i64 = 31;

/// The dates a year file may mention: the year itself plus the neighbouring month on each side,
/// because a 元旦 period can start on 30 December of the year before.
struct YearBounds {
    year: i32,
    lo: Option<NaiveDate>,
    hi: Option<NaiveDate>,
}

impl YearBounds {
    fn new(year: i32) -> Self {
        Self {
            year,
            lo: NaiveDate::from_ymd_opt(year - 1, 12, 1),
            hi: NaiveDate::from_ymd_opt(year + 1, 1, 31),
        }
    }

    fn check(
        &self,
        src: &Src<'_>,
        d: NaiveDate,
        s: &Spanned<String>,
        field: &str,
    ) -> Result<(), LoadError> {
        let inside = self.lo.is_some_and(|lo| d >= lo) && self.hi.is_some_and(|hi| d <= hi);
        if inside {
            Ok(())
        } else {
            Err(src.invalid(s, field, format!("{d} is outside year {}", self.year)))
        }
    }
}

/// Days a year file adds, gathered before anything is committed so that a bad file leaves the
/// calendar unchanged.
#[derive(Default)]
struct NewDays<'r> {
    /// Holiday date -> index of its period in the file.
    holidays: BTreeMap<NaiveDate, usize>,
    /// Make-up working days, with where each was written (for the error message).
    makeup: Vec<(NaiveDate, &'r Spanned<String>)>,
}

/// The make-up working days of holiday `i`: real dates inside the year, each a Saturday or Sunday
/// (a weekday is a working day already, so listing one is a copying mistake).
fn check_makeup_days<'r>(
    src: &Src<'_>,
    bounds: &YearBounds,
    i: usize,
    h: &'r RawHoliday,
    new: &mut NewDays<'r>,
) -> Result<Vec<NaiveDate>, LoadError> {
    let mut makeup = Vec::with_capacity(h.makeup_working_days.len());
    for (j, m) in h.makeup_working_days.iter().enumerate() {
        let f = format!("holiday[{i}].makeup_working_days[{j}]");
        let d = src.date(m, &f)?;
        bounds.check(src, d, m, &f)?;
        if !is_weekend(d) {
            return Err(src.invalid(
                m,
                &f,
                format!(
                    "{d} is a {:?}; a make-up working day must be a Saturday or Sunday",
                    d.weekday()
                ),
            ));
        }
        new.makeup.push((d, m));
        makeup.push(d);
    }
    Ok(makeup)
}

impl Calendar {
    /// A calendar with no years: every question falls back to plain weekdays and is reported
    /// as uncovered. Used by regimes that count plain calendar days with no roll (us-cfpb).
    pub fn empty(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            time_zone: None,
            years: BTreeMap::new(),
            holiday_days: BTreeMap::new(),
            makeup_days: BTreeSet::new(),
        }
    }

    /// One of the calendars embedded in the crate: `cn` (mainland China, 2025–2026),
    /// `uk-ew` (England and Wales bank holidays, 2025–2026) or `none` (empty).
    pub fn by_name(name: &str) -> Result<Self, LoadError> {
        match name {
            "cn" => Self::from_sources(
                "cn",
                &[
                    ("data/calendars/cn/2025.toml", CN_2025),
                    ("data/calendars/cn/2026.toml", CN_2026),
                ],
            ),
            "uk-ew" => Self::from_sources(
                "uk-ew",
                &[
                    ("data/calendars/uk-ew/2025.toml", UK_EW_2025),
                    ("data/calendars/uk-ew/2026.toml", UK_EW_2026),
                ],
            ),
            "none" => Ok(Self::empty("none")),
            other => Err(LoadError::UnknownCalendar(other.to_owned())),
        }
    }

    /// Loads every `*.toml` file of a directory (one year per file) as calendar `name`.
    pub fn from_dir(name: &str, dir: impl AsRef<Path>) -> Result<Self, LoadError> {
        let dir = dir.as_ref();
        let io = |e| LoadError::Io {
            file: dir.display().to_string(),
            source: e,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut texts = Vec::with_capacity(paths.len());
        for p in &paths {
            let text = std::fs::read_to_string(p).map_err(|e| LoadError::Io {
                file: p.display().to_string(),
                source: e,
            })?;
            texts.push((p.display().to_string(), text));
        }
        let borrowed: Vec<(&str, &str)> = texts
            .iter()
            .map(|(f, t)| (f.as_str(), t.as_str()))
            .collect();
        Self::from_sources(name, &borrowed)
    }

    /// Builds calendar `name` from year files given as `(label, toml text)`.
    pub fn from_sources(name: &str, files: &[(&str, &str)]) -> Result<Self, LoadError> {
        let mut cal = Self::empty(name);
        for (file, text) in files {
            cal.add_year_file(file, text)?;
        }
        Ok(cal)
    }

    /// Adds (or, with the same year, refuses) one year file. Validates it first; a file that fails
    /// validation changes nothing.
    pub fn add_year_file(&mut self, file: &str, text: &str) -> Result<(), LoadError> {
        let src = Src::new(file, text);
        let raw: RawYear = src.parse()?;
        let (year, tz) = self.check_header(&src, &raw)?;
        let source = raw.source.check(&src)?;
        let bounds = YearBounds::new(year);
        let mut new = NewDays::default();
        let mut holidays = Vec::with_capacity(raw.holiday.len());
        for (i, h) in raw.holiday.iter().enumerate() {
            holidays.push(self.check_holiday(&src, &bounds, i, h, &mut new)?);
        }
        for (d, m) in &new.makeup {
            if new.holidays.contains_key(d) || self.holiday_days.contains_key(d) {
                return Err(src.invalid(
                    *m,
                    "makeup_working_days",
                    format!("{d} is both a holiday and a make-up working day"),
                ));
            }
        }
        self.time_zone = Some(tz);
        for (d, i) in new.holidays {
            self.holiday_days.insert(d, (year, i));
        }
        self.makeup_days
            .extend(new.makeup.into_iter().map(|(d, _)| d));
        self.years.insert(
            year,
            CalendarYear {
                year,
                source,
                file: file.to_owned(),
                holidays,
            },
        );
        Ok(())
    }

    /// The file is for this calendar, for a plausible year not loaded yet, in the same time zone
    /// as the years already loaded.
    fn check_header(&self, src: &Src<'_>, raw: &RawYear) -> Result<(i32, Tz), LoadError> {
        if raw.calendar.get_ref() != &self.name {
            return Err(src.invalid(
                &raw.calendar,
                "calendar",
                format!(
                    "file is for calendar `{}`, expected `{}`",
                    raw.calendar.get_ref(),
                    self.name
                ),
            ));
        }
        let year = *raw.year.get_ref();
        if !YEARS.contains(&year) {
            return Err(src.invalid(
                &raw.year,
                "year",
                format!("year out of range {}..={}", YEARS.start(), YEARS.end()),
            ));
        }
        if self.years.contains_key(&year) {
            return Err(src.invalid(
                &raw.year,
                "year",
                format!("year {year} is already loaded for calendar `{}`", self.name),
            ));
        }
        let tz = src.time_zone(&raw.time_zone, "time_zone")?;
        if let Some(existing) = self.time_zone
            && existing != tz
        {
            return Err(src.invalid(
                &raw.time_zone,
                "time_zone",
                format!("calendar `{}` already uses {existing}", self.name),
            ));
        }
        Ok((year, tz))
    }

    /// Holiday `i` of a file: real dates inside the year, in order, not overlapping another
    /// period, and its make-up days.
    fn check_holiday<'r>(
        &self,
        src: &Src<'_>,
        bounds: &YearBounds,
        i: usize,
        h: &'r RawHoliday,
        new: &mut NewDays<'r>,
    ) -> Result<HolidayPeriod, LoadError> {
        let field = |f: &str| format!("holiday[{i}].{f}");
        if h.name.get_ref().trim().is_empty() {
            return Err(src.invalid(&h.name, &field("name"), "must not be empty"));
        }
        let start = src.date(&h.start, &field("start"))?;
        let end = src.date(&h.end, &field("end"))?;
        bounds.check(src, start, &h.start, &field("start"))?;
        bounds.check(src, end, &h.end, &field("end"))?;
        if end < start {
            return Err(src.invalid(
                &h.end,
                &field("end"),
                format!("{end} is before start {start}"),
            ));
        }
        if (end - start).num_days() > MAX_HOLIDAY_PERIOD_DAYS {
            return Err(src.invalid(
                &h.end,
                &field("end"),
                format!(
                    "a holiday period longer than {MAX_HOLIDAY_PERIOD_DAYS} days is not plausible"
                ),
            ));
        }
        for d in start.iter_days().take_while(|d| *d <= end) {
            if new.holidays.insert(d, i).is_some() || self.holiday_days.contains_key(&d) {
                return Err(src.invalid(
                    &h.start,
                    &field("start"),
                    format!("{d} is already in another holiday period"),
                ));
            }
        }
        let makeup = check_makeup_days(src, bounds, i, h, new)?;
        Ok(HolidayPeriod {
            name: h.name.get_ref().trim().to_owned(),
            start,
            end,
            makeup_working_days: makeup,
        })
    }

    /// The calendar's name (`cn`, `uk-ew`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The time zone the calendar's dates are in, if any year was loaded.
    pub fn time_zone(&self) -> Option<Tz> {
        self.time_zone
    }

    /// The years this calendar knows, ascending.
    pub fn coverage(&self) -> Vec<i32> {
        self.years.keys().copied().collect()
    }

    /// Whether the calendar has data for the year of `date`.
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.years.contains_key(&date.year())
    }

    /// One loaded year with its source.
    pub fn year(&self, year: i32) -> Option<&CalendarYear> {
        self.years.get(&year)
    }

    /// The holiday period containing `date`, if any.
    pub fn holiday_period(&self, date: NaiveDate) -> Option<&HolidayPeriod> {
        let (y, i) = self.holiday_days.get(&date)?;
        self.years.get(y)?.holidays.get(*i)
    }

    /// Whether `date` lies inside an announced statutory holiday period (放假调休 days included).
    pub fn is_statutory_holiday(&self, date: NaiveDate) -> bool {
        self.holiday_days.contains_key(&date)
    }

    /// Whether `date` is a weekend day declared a working day (调休上班).
    pub fn is_makeup_working_day(&self, date: NaiveDate) -> bool {
        self.makeup_days.contains(&date)
    }

    /// Whether `date` is a working day: not in a holiday period, and either a weekday or a
    /// listed make-up working day. For an uncovered year this is plain Monday–Friday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.is_statutory_holiday(date) {
            return false;
        }
        !is_weekend(date) || self.is_makeup_working_day(date)
    }

    /// If `date` is inside a holiday period, the first day after that period (and after any
    /// holiday period that follows it directly). `None` when `date` is not a holiday.
    pub fn day_after_holiday(&self, date: NaiveDate) -> Option<NaiveDate> {
        if !self.is_statutory_holiday(date) {
            return None;
        }
        let mut d = date;
        while self.is_statutory_holiday(d) {
            d = d.succ_opt()?;
        }
        Some(d)
    }

    /// The `n`th working day after `from` (`from` itself is not counted; `n == 0` gives `from`),
    /// with the years the walk needed but the calendar does not cover.
    pub fn add_working_days(&self, from: NaiveDate, n: u32) -> Option<(NaiveDate, BTreeSet<i32>)> {
        let mut missing = BTreeSet::new();
        let mut d = from;
        let mut left = n;
        while left > 0 {
            d = d.succ_opt()?;
            if !self.covers(d) {
                missing.insert(d.year());
            }
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        Some((d, missing))
    }
}

// Defined here rather than with the regime so that the rules-as-data module does not depend on
// calendar loading: a regime only names its calendar, and this module resolves the name.
impl Regime {
    /// The embedded calendar this regime names.
    pub fn default_calendar(&self) -> Result<Calendar, LoadError> {
        Calendar::by_name(&self.calendar)
    }
}
