//! gRPC helpers every API uses the same way: request fields parsed into values or an
//! INVALID_ARGUMENT that names the field, and store errors mapped to the status a client can
//! act on — UNAVAILABLE (retry) only when the database could not be reached, INTERNAL (logged)
//! for the rest, never a server fault for bad input.

use chrono::{DateTime, Datelike, Utc};
use redress_proto::{
    Violations,
    events::v1::FieldViolation,
    types::Timestamp,
    vocab::{self, TextKind, code},
};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use uuid::Uuid;

use crate::jobs::is_connection_error;

/// INVALID_ARGUMENT listing every violation in its message and, as `google.rpc.BadRequest`
/// field violations, in its details.
pub fn invalid(violations: impl Into<Violations>) -> Status {
    let violations: Violations = violations.into();
    let mut details = ErrorDetails::new();
    for v in &violations.0 {
        details.add_bad_request_violation(v.field.clone(), format!("{} ({})", v.message, v.code));
    }
    Status::with_error_details(Code::InvalidArgument, violations.to_string(), details)
}

/// The status for a database error: UNAVAILABLE when the database could not be reached (the
/// client may retry), INTERNAL otherwise, logged with `what` the call was doing.
pub fn database(what: &str, error: &sqlx::Error) -> Status {
    if is_connection_error(error) {
        tracing::warn!(%error, what, "database unreachable");
        Status::unavailable("the database is unreachable; retry shortly")
    } else {
        tracing::error!(%error, what, "database");
        Status::internal("the call failed on our side; it has been logged")
    }
}

/// A required id (UUID).
pub fn id(field: &str, text: &str) -> Result<Uuid, Status> {
    vocab::parse_id(field, text).map_err(invalid)
}

/// The earliest and latest years a request's times may name: outside them a time is a
/// mistake (and Postgres could not store some of them).
const YEARS: std::ops::RangeInclusive<i32> = 1900..=9999;

/// An optional time, within [1900, 9999].
pub fn time(
    field: &str,
    value: Option<&Timestamp>,
) -> Result<Option<DateTime<Utc>>, FieldViolation> {
    let Some(value) = value else {
        return Ok(None);
    };
    crate::event::from_timestamp(value)
        .filter(|t| YEARS.contains(&t.year()))
        .map(Some)
        .ok_or_else(|| {
            FieldViolation::new(
                field,
                code::OUT_OF_RANGE,
                format!(
                    "a time between the years {} and {}",
                    YEARS.start(),
                    YEARS.end()
                ),
            )
        })
}

/// A text field: trimmed, at most `max` characters, no control or invisible characters;
/// `required` refuses an empty one.
pub fn text(
    field: &str,
    value: &str,
    max: usize,
    kind: TextKind,
    required: bool,
) -> Result<String, FieldViolation> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(FieldViolation::new(field, code::REQUIRED, "required"));
    }
    vocab::check_text(field, value, max, kind)?;
    Ok(value.to_owned())
}

/// A department slug: lower-case letters, digits, `_` and `-`, at most 64 characters.
pub fn slug(field: &str, value: &str, required: bool) -> Result<String, FieldViolation> {
    let value = value.trim();
    if value.is_empty() {
        return if required {
            Err(FieldViolation::new(field, code::REQUIRED, "required"))
        } else {
            Ok(String::new())
        };
    }
    let valid = value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(FieldViolation::new(
            field,
            code::INVALID_FORMAT,
            "a slug: lower-case letters, digits, `_` and `-`, at most 64 characters",
        ))
    }
}

/// An enum field's value, where 0 (unspecified) means "not given".
pub fn enum_value<E: TryFrom<i32>>(field: &str, value: i32) -> Result<Option<E>, FieldViolation> {
    if value == 0 {
        return Ok(None);
    }
    E::try_from(value).map(Some).map_err(|_| {
        FieldViolation::new(field, code::UNKNOWN_VALUE, format!("unknown value {value}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redress_proto::common::v1::Severity;

    #[test]
    fn invalid_names_every_field() {
        let mut v = Violations::default();
        v.add("caseId", code::REQUIRED, "required");
        v.add("page.pageSize", code::OUT_OF_RANGE, "too big");
        let status = invalid(v);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("caseId: required"));
        assert!(status.message().contains("page.pageSize"));
        let details = status.get_error_details();
        let fields: Vec<String> = details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
            .unwrap_or_default();
        assert_eq!(fields, vec!["caseId", "page.pageSize"]);
    }

    #[test]
    fn times_out_of_range_are_refused() {
        let year = |y: i64| Timestamp {
            seconds: (y - 1970) * 31_556_952,
            nanos: 0,
        };
        assert!(time("t", Some(&year(2026))).is_ok());
        assert!(time("t", Some(&year(-5000))).is_err());
        assert!(
            time(
                "t",
                Some(&Timestamp {
                    seconds: i64::MAX,
                    nanos: 0
                })
            )
            .is_err()
        );
        assert!(
            time(
                "t",
                Some(&Timestamp {
                    seconds: 0,
                    nanos: -5
                })
            )
            .is_err()
        );
        assert_eq!(time("t", None), Ok(None));
    }

    #[test]
    fn fields_name_themselves() {
        assert_eq!(
            slug("department", "a\u{0}b", true).map_err(|v| v.field),
            Err("department".into())
        );
        assert_eq!(slug("department", "cards", true), Ok("cards".into()));
        assert_eq!(
            text("note", " x ", 10, TextKind::Prose, true),
            Ok("x".into())
        );
        assert!(text("note", "", 10, TextKind::Prose, true).is_err());
        assert_eq!(
            enum_value::<Severity>("severity", 3).ok().flatten(),
            Some(Severity::High)
        );
        assert!(enum_value::<Severity>("severity", 99).is_err());
        assert_eq!(
            id("caseId", "nope").map_err(|s| s.code()),
            Err(Code::InvalidArgument)
        );
    }
}
