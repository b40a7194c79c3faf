//! One vocabulary for values every service uses: channel tokens, money, severity names, ids,
//! text fields, and the field violations that name what is wrong with a request.
//!
//! Each rule lives here once, so intake's submissions and every gRPC request are checked the
//! same way and a violation always names the field (proto3 JSON path) and a code, never the
//! value: a rejected value may be personal data.

use uuid::Uuid;

use crate::{
    common::v1::{Channel, Money, Severity},
    events::v1::FieldViolation,
};

/// Machine-readable violation codes.
pub mod code {
    pub const REQUIRED: &str = "required";
    pub const TOO_LONG: &str = "too_long";
    pub const TOO_LARGE: &str = "too_large";
    pub const INVALID_FORMAT: &str = "invalid_format";
    pub const CHECKSUM: &str = "checksum";
    pub const OUT_OF_RANGE: &str = "out_of_range";
    pub const UNKNOWN_VALUE: &str = "unknown_value";
    pub const MISMATCH: &str = "mismatch";
    pub const CONTROL_CHARACTERS: &str = "control_characters";
    pub const INVISIBLE_CHARACTERS: &str = "invisible_characters";
    pub const IN_FUTURE: &str = "in_future";
    pub const TOO_OLD: &str = "too_old";
    pub const UNREACHABLE: &str = "unreachable";
    pub const UNDECODABLE: &str = "undecodable";
}

impl FieldViolation {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = if self.field.is_empty() {
            "request"
        } else {
            &self.field
        };
        write!(f, "{field}: {} ({})", self.message, self.code)
    }
}

/// Every problem found in one message, collected so a caller learns them all at once.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub fn one(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self(vec![FieldViolation::new(field, code, message)])
    }

    pub fn add(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldViolation::new(field, code, message));
    }

    /// Adds the violation of a check that failed.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        result.map_err(|v| self.0.push(v)).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was found.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

impl From<FieldViolation> for Violations {
    fn from(v: FieldViolation) -> Self {
        Self(vec![v])
    }
}

// --- channels ---------------------------------------------------------------------------

impl Channel {
    /// Every channel a complaint can come through (not `Unspecified`).
    pub const ALL: [Channel; 9] = [
        Channel::App,
        Channel::Web,
        Channel::Hotline,
        Channel::Email,
        Channel::Wechat,
        Channel::Letter,
        Channel::WalkIn,
        Channel::RegulatorReferral,
        Channel::Other,
    ];

    /// The lower-case subject token (`CHANNEL_REGULATOR_REFERRAL` → `regulator_referral`).
    pub fn token(self) -> &'static str {
        match self {
            Channel::Unspecified => "unspecified",
            Channel::App => "app",
            Channel::Web => "web",
            Channel::Hotline => "hotline",
            Channel::Email => "email",
            Channel::Wechat => "wechat",
            Channel::Letter => "letter",
            Channel::WalkIn => "walk_in",
            Channel::RegulatorReferral => "regulator_referral",
            Channel::Other => "other",
        }
    }

    /// The channel a subject token names; `Unspecified` is not a channel.
    pub fn from_token(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.token() == token)
    }

    /// `app, web, …` for messages that list the valid channels.
    pub fn tokens() -> String {
        Self::ALL.map(Channel::token).join(", ")
    }

    /// A channel token, or a violation naming `field` and listing the valid ones.
    pub fn parse_token(field: &str, token: &str) -> Result<Self, FieldViolation> {
        Self::from_token(token.trim()).ok_or_else(|| {
            FieldViolation::new(
                field,
                code::UNKNOWN_VALUE,
                format!("not a channel; the channels are {}", Self::tokens()),
            )
        })
    }
}

// --- severity ---------------------------------------------------------------------------

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// `low`, `medium`, `high`, `critical` (`unspecified` for the zero value).
    pub fn name(self) -> &'static str {
        match self {
            Severity::Unspecified => "unspecified",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name.trim()))
    }
}

// --- ids --------------------------------------------------------------------------------

/// A required id (a UUID), or a violation naming `field`.
pub fn parse_id(field: &str, text: &str) -> Result<Uuid, FieldViolation> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldViolation::new(field, code::REQUIRED, "required"));
    }
    Uuid::parse_str(text)
        .map_err(|_| FieldViolation::new(field, code::INVALID_FORMAT, "not an id (a UUID)"))
}

// --- text -------------------------------------------------------------------------------

/// What a text field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// One line: a name, a title, a reference. No control or invisible characters at all.
    Line,
    /// Free text in the consumer's words: line breaks and tabs allowed, and the zero-width
    /// joiner (emoji sequences); still no other control, bidi or invisible characters.
    Prose,
}

/// Characters that change how text *looks* without being seen: bidi overrides and isolates,
/// zero-width characters, the byte-order mark. They let a title read differently to a person
/// than to a program (Trojan Source, CVE-2021-42574), so no field accepts them.
fn invisible(c: char, kind: TextKind) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}'
            | '\u{00AD}'
    ) || (c == '\u{200D}' && kind == TextKind::Line)
}

/// Checks a text field: at most `max_chars` characters, no NUL or other control characters
/// (line breaks and tabs only in prose), no invisible or bidi-control characters.
pub fn check_text(
    field: &str,
    value: &str,
    max_chars: usize,
    kind: TextKind,
) -> Result<(), FieldViolation> {
    let count = value.chars().count();
    if count > max_chars {
        return Err(FieldViolation::new(
            field,
            code::TOO_LONG,
            format!("{count} characters; at most {max_chars}"),
        ));
    }
    let control =
        |c: char| c.is_control() && !(kind == TextKind::Prose && matches!(c, '\n' | '\r' | '\t'));
    if value.chars().any(control) {
        return Err(FieldViolation::new(
            field,
            code::CONTROL_CHARACTERS,
            "contains control characters (NUL, escape codes…)",
        ));
    }
    if value.chars().any(|c| invisible(c, kind)) {
        return Err(FieldViolation::new(
            field,
            code::INVISIBLE_CHARACTERS,
            "contains invisible or text-direction characters (zero-width, bidi controls, BOM)",
        ));
    }
    Ok(())
}

// --- money ------------------------------------------------------------------------------

/// ISO 4217 alphabetic codes in use with their minor units (ISO 4217:2015 list one as
/// maintained by SIX, the ISO 4217 maintenance agency). Funds codes and precious metals are
/// left out on purpose: no consumer disputes an amount in them.
#[rustfmt::skip]
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2),
    ("AUD", 2), ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2),
    ("BHD", 3), ("BIF", 0), ("BMD", 2), ("BND", 2), ("BOB", 2), ("BRL", 2), ("BSD", 2),
    ("BTN", 2), ("BWP", 2), ("BYN", 2), ("BZD", 2), ("CAD", 2), ("CDF", 2), ("CHF", 2),
    ("CLP", 0), ("CNY", 2), ("COP", 2), ("CRC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2),
    ("DJF", 0), ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2), ("ETB", 2),
    ("EUR", 2), ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2), ("GIP", 2),
    ("GMD", 2), ("GNF", 0), ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HTG", 2),
    ("HUF", 2), ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0),
    ("JMD", 2), ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2), ("KMF", 0),
    ("KPW", 2), ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2), ("LBP", 2),
    ("LKR", 2), ("LRD", 2), ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2),
    ("MKD", 2), ("MMK", 2), ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2),
    ("MWK", 2), ("MXN", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2), ("NIO", 2),
    ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2), ("PGK", 2),
    ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2), ("RSD", 2),
    ("RUB", 2), ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2),
    ("SGD", 2), ("SHP", 2), ("SLE", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2), ("STN", 2),
    ("SVC", 2), ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2), ("TND", 3),
    ("TOP", 2), ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2), ("UGX", 0),
    ("USD", 2), ("UYU", 2), ("UZS", 2), ("VED", 2), ("VES", 2), ("VND", 0), ("VUV", 0),
    ("WST", 2), ("XAF", 0), ("XCD", 2), ("XOF", 0), ("XPF", 0), ("YER", 2), ("ZAR", 2),
    ("ZMW", 2), ("ZWG", 2),
];

/// The largest amount a consumer dispute or a remedy may name, in whole units: far above any
/// retail dispute (¥100 billion), far below where `units × 10^9` would overflow `i64` sums in
/// reports. Anything larger is a typo or an attack.
pub const MAX_MONEY_UNITS: i64 = 100_000_000_000;

/// The minor units of an ISO 4217 currency in use (`CNY` → 2), `None` for anything else.
pub fn currency_minor_units(code: &str) -> Option<u8> {
    CURRENCIES
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .and_then(|i| CURRENCIES.get(i))
        .map(|(_, minor)| *minor)
}

impl Money {
    /// The one rule for an amount anywhere in Redress: an ISO 4217 currency in use, a
    /// non-negative amount of at most [`MAX_MONEY_UNITS`], `nanos` in range with no more
    /// precision than the currency's minor unit (two places when the currency is unknown).
    /// `field` is the amount's JSON path; every problem is reported.
    pub fn check(&self, field: &str) -> Result<(), Violations> {
        let mut v = Violations::default();
        let minor = currency_minor_units(&self.currency_code);
        if minor.is_none() {
            v.add(
                &format!("{field}.currencyCode"),
                code::UNKNOWN_VALUE,
                "not an ISO 4217 currency code in use, such as CNY",
            );
        }
        if self.units < 0 || self.nanos < 0 {
            v.add(field, code::OUT_OF_RANGE, "an amount cannot be negative");
        }
        if self.units > MAX_MONEY_UNITS {
            v.add(
                &format!("{field}.units"),
                code::OUT_OF_RANGE,
                format!("at most {MAX_MONEY_UNITS} whole units"),
            );
        }
        let minor = minor.unwrap_or(2);
        let step = 10_i32.pow(9 - u32::from(minor));
        if self.nanos.abs() >= 1_000_000_000 || self.nanos % step != 0 {
            v.add(
                &format!("{field}.nanos"),
                code::INVALID_FORMAT,
                format!("below 1,000,000,000 and in steps of {step} ({minor} decimal places)"),
            );
        }
        v.into_result(())
    }

    /// The amount in the currency's minor units (fen for CNY), for sums and thresholds.
    pub fn minor_units(&self) -> Option<i64> {
        let minor = currency_minor_units(&self.currency_code)?;
        let per_unit = 10_i64.pow(u32::from(minor));
        let fraction = i64::from(self.nanos) / 10_i64.pow(9 - u32::from(minor));
        self.units.checked_mul(per_unit)?.checked_add(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_tokens_are_the_lower_case_enum_suffix_and_round_trip() {
        for channel in Channel::ALL {
            let name = channel
                .as_str_name()
                .trim_start_matches("CHANNEL_")
                .to_lowercase();
            assert_eq!(channel.token(), name);
            assert_eq!(Channel::from_token(&name), Some(channel));
        }
        assert_eq!(Channel::from_token("fax"), None);
        assert_eq!(Channel::from_token("unspecified"), None);
        let error = Channel::parse_token("channel", "fax")
            .err()
            .unwrap_or_default();
        assert!(error.message.contains("app, web, hotline"), "{error}");
    }

    #[test]
    fn the_currency_list_is_sorted_and_knows_minor_units() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(currency_minor_units("CNY"), Some(2));
        assert_eq!(currency_minor_units("JPY"), Some(0));
        assert_eq!(currency_minor_units("KWD"), Some(3));
        assert_eq!(currency_minor_units("RMB"), None);
        assert_eq!(currency_minor_units("cny"), None);
    }

    fn money(currency: &str, units: i64, nanos: i32) -> Money {
        Money {
            currency_code: currency.into(),
            units,
            nanos,
        }
    }

    #[test]
    fn one_money_rule() {
        assert!(money("CNY", 1200, 500_000_000).check("a").is_ok());
        assert!(money("JPY", 1200, 0).check("a").is_ok());
        assert!(money("KWD", 1, 125_000_000).check("a").is_ok());
        let field = |m: Money| {
            m.check("amount")
                .err()
                .and_then(|v| v.0.into_iter().next())
                .map(|v| (v.field, v.code))
        };
        assert_eq!(
            field(money("RMB", 1, 0)),
            Some(("amount.currencyCode".into(), code::UNKNOWN_VALUE.into()))
        );
        assert_eq!(
            field(money("CNY", -1, 0)),
            Some(("amount".into(), code::OUT_OF_RANGE.into()))
        );
        assert_eq!(
            field(money("CNY", 9_200_000_000_000_000_000, 0)),
            Some(("amount.units".into(), code::OUT_OF_RANGE.into()))
        );
        assert_eq!(
            field(money("CNY", 1, 5)),
            Some(("amount.nanos".into(), code::INVALID_FORMAT.into()))
        );
        assert_eq!(
            field(money("JPY", 1, 500_000_000)),
            Some(("amount.nanos".into(), code::INVALID_FORMAT.into()))
        );
        assert_eq!(money("CNY", 12, 340_000_000).minor_units(), Some(1234));
        assert_eq!(money("JPY", 12, 0).minor_units(), Some(12));
    }

    #[test]
    fn text_refuses_control_and_invisible_characters() {
        let line = |s: &str| check_text("f", s, 10, TextKind::Line).err().map(|v| v.code);
        let prose = |s: &str| {
            check_text("f", s, 10, TextKind::Prose)
                .err()
                .map(|v| v.code)
        };
        assert_eq!(line("王小二"), None);
        assert_eq!(line("a\u{0}b"), Some(code::CONTROL_CHARACTERS.into()));
        assert_eq!(line("a\nb"), Some(code::CONTROL_CHARACTERS.into()));
        assert_eq!(prose("a\nb\tc"), None);
        assert_eq!(prose("a\u{0}"), Some(code::CONTROL_CHARACTERS.into()));
        for c in ['\u{202E}', '\u{2066}', '\u{FEFF}', '\u{200B}'] {
            assert_eq!(
                prose(&format!("a{c}b")),
                Some(code::INVISIBLE_CHARACTERS.into())
            );
        }
        assert_eq!(line("a\u{200D}b"), Some(code::INVISIBLE_CHARACTERS.into()));
        assert_eq!(prose("👩\u{200D}💻"), None);
        assert_eq!(line("01234567890"), Some(code::TOO_LONG.into()));
    }

    #[test]
    fn ids_and_severities() {
        assert!(parse_id("caseId", &Uuid::now_v7().to_string()).is_ok());
        assert_eq!(
            parse_id("caseId", "a\u{0}b").err().map(|v| v.code),
            Some(code::INVALID_FORMAT.into())
        );
        assert_eq!(
            parse_id("caseId", " ").err().map(|v| v.code),
            Some(code::REQUIRED.into())
        );
        assert_eq!(Severity::from_name("High"), Some(Severity::High));
        assert_eq!(Severity::Critical.name(), "critical");
        assert_eq!(Severity::from_name("urgent"), None);
    }
}
