//! # redress-regime
//!
//! Regulatory complaint-handling deadlines for Redress, as **data with their sources cited**,
//! and the **pure** computation of a case's deadlines from its event history.
//!
//! Three ideas, one module each:
//!
//! 1. **Rules are data** ([`regime`]). A [`Regime`] is loaded from a TOML file
//!    (`data/regimes/*.toml`, embedded; or any path). Every number sits beside the article it
//!    comes from; a number the regulation does not state is marked `confirmed = false`.
//!    `cn-nfra` (《银行业保险业消费投诉处理管理办法》, 银保监会令2020年第3号) is the default.
//! 2. **Calendars are data** ([`calendar`]). A [`Calendar`] holds, per year, the holiday periods
//!    *and* make-up working days (调休) of the official notice it cites. A year that is not
//!    loaded is never guessed: dates in it are counted as plain days and the result is
//!    **flagged** (`flags.calendar_missing`).
//! 3. **Deadlines are derived, never stored** ([`clock`]). [`CaseClock::derive`] takes the
//!    receipt instant and the ordered clock events (extensions, pauses, new facts, decision,
//!    review…) and returns [`Deadlines`] with an `explanation` citing each rule used. Correct a
//!    calendar or record a pause, derive again: nothing to patch.
//!
//! Extension rules are pure functions ([`extension`]): [`Track::can_extend`] refuses a second
//! extension without an authorised approver, anything beyond the maximum, and anything after a
//! decision. Day counting lives in [`period`].
//!
//! The rules-as-data module ([`regime`]) depends on nothing that computes; the computing modules
//! depend on it. Every public type is re-exported here, at the crate root.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use redress_regime::{CaseClock, Calendar, ClockEvent, ClockEventKind, Regime};
//!
//! let regime = Regime::by_name("cn-nfra")?;
//! let calendar = regime.default_calendar()?; // mainland China 2025–2026, cited notices
//! let clock = CaseClock::new(&regime, &calendar)?;
//! // Received 2025-09-20 10:00 Beijing time (02:00 UTC).
//! let received = Utc.with_ymd_and_hms(2025, 9, 20, 2, 0, 0).unwrap();
//! let d = clock.derive(received, &[])?;
//! // Day 15 is 2025-10-05, inside the National Day holiday (Oct 1–8, 国办发明电〔2024〕12号):
//! // by Civil Code Art. 203 the period ends on the day after the holiday, 2025-10-09.
//! assert_eq!(d.decision_due.unwrap().date.to_string(), "2025-10-09");
//! assert!(!d.flags.calendar_missing);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod calendar;
pub mod clock;
mod data;
pub mod error;
pub mod extension;
pub mod period;
pub mod regime;

pub use calendar::{Calendar, CalendarYear, HolidayPeriod};
pub use clock::{
    Anomaly, AnomalyKind, AppliedLimit, CaseClock, CaseStatus, ClockEvent, ClockEventKind,
    Deadlines, Flags, WarningAt,
};
pub use data::Source;
pub use error::{ClockError, LoadError};
pub use extension::{Approver, ExtensionContext, ExtensionRefused, RefusalReason};
pub use period::{Computed, Due};
pub use regime::{
    Counting, ExtensionTier, LastDayRule, Limit, MajorComplaint, PauseReason, PauseRule,
    REGIME_NAMES, Regime, Retention, Review, Role, Track, Unit, WarningThresholds,
};
