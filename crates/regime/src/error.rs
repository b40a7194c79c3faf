//! Typed errors. Loading errors name the file, the line and the field; computation errors name
//! the event that could not be used.

use chrono::{DateTime, Utc};

/// A data file (regime or calendar) could not be loaded or failed validation.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// Path or label of the file.
        file: String,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or does not have the expected shape (missing or unknown
    /// field, wrong type).
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// Path or label of the file.
        file: String,
        /// 1-based line of the problem.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// A field parsed but its value breaks a rule (bad date, overlapping holidays, …).
    #[error("{file}:{line}: field `{field}`: {message}")]
    Invalid {
        /// Path or label of the file.
        file: String,
        /// 1-based line of the field.
        line: usize,
        /// Dotted name of the field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No embedded regime has this name.
    #[error("unknown regime `{0}` (known: cn-nfra, us-cfpb, uk-fca)")]
    UnknownRegime(String),
    /// No embedded calendar has this name.
    #[error("unknown calendar `{0}` (known: cn, uk-ew, none)")]
    UnknownCalendar(String),
}

/// A deadline could not be derived from the given history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// Events must be given in time order.
    #[error(
        "event #{index} at {at} is earlier than the event before it; events must be in time order"
    )]
    OutOfOrder {
        /// Index of the offending event in the input slice.
        index: usize,
        /// Its instant.
        at: DateTime<Utc>,
    },
    /// An event cannot happen before the complaint was received.
    #[error("event #{index} at {at} is before the complaint was received")]
    BeforeReceipt {
        /// Index of the offending event in the input slice.
        index: usize,
        /// Its instant.
        at: DateTime<Utc>,
    },
    /// The regime has no such track.
    #[error("regime `{regime}` has no track `{track}`")]
    UnknownTrack {
        /// Regime name.
        regime: String,
        /// Requested track.
        track: String,
    },
    /// Date arithmetic left the representable range.
    #[error("date arithmetic out of range near {0}")]
    OutOfRange(String),
}
