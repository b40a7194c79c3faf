//! Severity: signals from the channel, the text and intake's flags, weighted by
//! `rules/severity-v1.toml` (embedded), turned into low / medium / high / critical.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Location, Result};
use crate::rules::{Matcher, Reason};

/// The embedded default severity file.
pub const EMBEDDED_SEVERITY: &str = include_str!("../rules/severity-v1.toml");

/// Severity levels, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Routine.
    Low,
    /// Needs attention.
    Medium,
    /// Prioritise.
    High,
    /// Escalate now.
    Critical,
}

impl Severity {
    /// `low`, `medium`, `high` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A disputed amount in minor units (分, cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Minor units.
    pub minor: i64,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: String,
}

/// What intake knows about the consumer's vulnerability.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnerableFlags {
    /// Elderly consumer.
    pub elderly: bool,
    /// Consumer with a disability.
    pub disabled: bool,
    /// Any other flag intake records (e.g. `serious_illness`).
    pub other: Vec<String>,
}

impl VulnerableFlags {
    fn any(&self) -> bool {
        self.elderly || self.disabled || !self.other.is_empty()
    }
}

/// Inputs to severity besides the text.
#[derive(Debug, Clone, Copy)]
pub struct SignalInput<'a> {
    /// Folded text (see [`crate::rules::fold`]).
    pub folded: &'a str,
    /// Channel as given by intake.
    pub channel: &'a str,
    /// Disputed amount.
    pub amount: Option<&'a Amount>,
    /// Vulnerability flags.
    pub vulnerable: &'a VulnerableFlags,
    /// Earlier complaints on the same matter.
    pub repeat_count: u32,
}

/// The assessed severity with the signals that raised it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// The level.
    pub level: Severity,
    /// Sum of the weights of the signals that fired.
    pub score: f32,
    /// One reason per signal (code `signal:<name>`), with evidence where the text gave it.
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignal {
    code: Spanned<String>,
    weight: f32,
    #[serde(default)]
    floor: Option<Severity>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    repeat_threshold: Option<u32>,
    #[serde(default)]
    very_large_extra: Option<f32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAmount {
    currency: Spanned<String>,
    large_minor: i64,
    very_large_minor: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Levels {
    medium: f32,
    high: f32,
    critical: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeverity {
    version: String,
    levels: Spanned<Levels>,
    signal: Vec<RawSignal>,
    #[serde(default)]
    amount: Vec<RawAmount>,
}

/// The known signal codes; the file must define each exactly once.
pub const SIGNALS: [&str; 7] = [
    "regulator_referral",
    "media_or_legal",
    "vulnerable_consumer",
    "large_amount",
    "group_or_repeat",
    "fraud_or_unauthorised",
    "data_leak",
];

/// Compiled severity configuration.
#[derive(Debug, Clone)]
pub struct SeverityConfig {
    version: String,
    levels: Levels,
    signals: Vec<RawSignal>,
    by_code: HashMap<String, usize>,
    amounts: HashMap<String, (i64, i64)>,
    matcher: Matcher,
}

impl SeverityConfig {
    /// The embedded default (`severity-v1.toml`).
    pub fn embedded() -> Result<SeverityConfig> {
        SeverityConfig::parse_named(EMBEDDED_SEVERITY, "<embedded severity-v1.toml>")
    }

    /// Read a severity file.
    pub fn load(path: impl AsRef<Path>) -> Result<SeverityConfig> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        SeverityConfig::parse_named(&src, &path.display().to_string())
    }

    /// Parse and validate severity TOML.
    pub fn parse_named(source: &str, file: &str) -> Result<SeverityConfig> {
        let raw: RawSeverity = toml::from_str(source).map_err(|e| Error::Data {
            location: Location::at(file, source, e.span().map(|s| s.start).unwrap_or(0), None),
            message: e.message().trim().to_string(),
        })?;
        let fail = |span: std::ops::Range<usize>, field: String, message: String| Error::Data {
            location: Location::at(file, source, span.start, Some(field)),
            message,
        };
        let l = raw.levels.get_ref();
        if !(l.medium > 0.0 && l.medium <= l.high && l.high <= l.critical) {
            return Err(fail(
                raw.levels.span(),
                "levels".into(),
                "need 0 < medium <= high <= critical".into(),
            ));
        }
        let (by_code, patterns) = check_signals(&raw.signal, &fail)?;
        if let Some(missing) = SIGNALS.iter().find(|c| !by_code.contains_key(**c)) {
            return Err(Error::Data {
                location: Location::at(file, source, 0, Some("signal".into())),
                message: format!("signal `{missing}` is not defined"),
            });
        }
        let amounts = check_amounts(&raw.amount, &fail)?;
        let matcher = Matcher::new(&patterns).map_err(|message| Error::Data {
            location: Location::at(file, source, 0, Some("signal.patterns".into())),
            message,
        })?;
        Ok(SeverityConfig {
            version: raw.version,
            levels: raw.levels.into_inner(),
            signals: raw.signal,
            by_code,
            amounts,
            matcher,
        })
    }

    /// Version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    fn signal(&self, code: &str) -> Option<&RawSignal> {
        self.by_code.get(code).and_then(|&i| self.signals.get(i))
    }

    /// Assess the severity of a complaint: the structured signals (channel, intake flags,
    /// repeats, amount) first, then the text's; each signal counts once.
    pub fn assess(&self, input: &SignalInput<'_>) -> Assessment {
        let mut fired: Vec<(usize, f32, Reason)> = Vec::new();
        for (code, extra, detail) in self.structured(input) {
            self.fire(&mut fired, code, extra, detail, None);
        }
        for m in self.matcher.find(input.folded) {
            if let Some(s) = self.signals.get(m.owner) {
                let code = s.code.get_ref().clone();
                let detail = format!("text mentions “{}”", m.evidence.text);
                self.fire(&mut fired, &code, 0.0, detail, Some(m.evidence));
            }
        }
        fired.sort_by_key(|(i, _, _)| *i);
        let score: f32 = fired.iter().map(|(_, w, _)| *w).sum();
        let mut level = if score >= self.levels.critical {
            Severity::Critical
        } else if score >= self.levels.high {
            Severity::High
        } else if score >= self.levels.medium {
            Severity::Medium
        } else {
            Severity::Low
        };
        for (i, _, _) in &fired {
            if let Some(floor) = self.signals.get(*i).and_then(|s| s.floor) {
                level = level.max(floor);
            }
        }
        Assessment {
            level,
            score,
            reasons: fired.into_iter().map(|(_, _, r)| r).collect(),
        }
    }

    /// Record a signal with its weight (plus `extra`), unless it fired already.
    fn fire(
        &self,
        fired: &mut Vec<(usize, f32, Reason)>,
        code: &str,
        extra: f32,
        detail: String,
        evidence: Option<crate::rules::Evidence>,
    ) {
        let Some(&i) = self.by_code.get(code) else {
            return;
        };
        if fired.iter().any(|(j, _, _)| *j == i) {
            return;
        }
        let w = self.signals.get(i).map(|s| s.weight).unwrap_or(0.0) + extra;
        let reason = Reason {
            code: format!("signal:{code}"),
            detail,
            evidence,
        };
        fired.push((i, w, reason));
    }

    /// Signals from intake's fields: (code, extra weight, detail).
    fn structured(&self, input: &SignalInput<'_>) -> Vec<(&'static str, f32, String)> {
        let mut out = Vec::new();
        let channel = input.channel.trim().to_ascii_lowercase();
        if let Some(s) = self.signal("regulator_referral")
            && !channel.is_empty()
            && s.channels.iter().any(|c| c.eq_ignore_ascii_case(&channel))
        {
            let detail = format!("received through channel `{}`", input.channel);
            out.push(("regulator_referral", 0.0, detail));
        }
        if input.vulnerable.any() {
            let mut what = Vec::new();
            if input.vulnerable.elderly {
                what.push("elderly".to_string());
            }
            if input.vulnerable.disabled {
                what.push("disabled".to_string());
            }
            what.extend(input.vulnerable.other.iter().cloned());
            out.push((
                "vulnerable_consumer",
                0.0,
                format!("intake flags: {}", what.join(", ")),
            ));
        }
        if let Some(s) = self.signal("group_or_repeat")
            && input.repeat_count >= s.repeat_threshold.unwrap_or(2).max(1)
        {
            let detail = format!(
                "{} earlier complaints on the same matter",
                input.repeat_count
            );
            out.push(("group_or_repeat", 0.0, detail));
        }
        out.extend(self.amount(input));
        out
    }

    /// The large-amount signal, with the extra weight of a very large amount.
    fn amount(&self, input: &SignalInput<'_>) -> Option<(&'static str, f32, String)> {
        let a = input.amount?;
        let &(large, very) = self.amounts.get(&a.currency.trim().to_ascii_uppercase())?;
        if a.minor < large {
            return None;
        }
        let extra = if a.minor >= very {
            self.signal("large_amount")
                .and_then(|s| s.very_large_extra)
                .unwrap_or(0.0)
        } else {
            0.0
        };
        let detail = format!(
            "disputed {} {} (threshold {} {})",
            format_minor(a.minor),
            a.currency,
            format_minor(if a.minor >= very { very } else { large }),
            a.currency
        );
        Some(("large_amount", extra, detail))
    }
}

type Fail<'a> = dyn Fn(std::ops::Range<usize>, String, String) -> Error + 'a;

/// Signal index by code, and (signal, pattern) pairs to compile.
type Signals = (HashMap<String, usize>, Vec<(usize, String)>);

/// Every signal known, defined once, with a non-negative weight; returns the index by code and
/// the (signal, pattern) pairs to compile.
fn check_signals(signals: &[RawSignal], fail: &Fail<'_>) -> Result<Signals> {
    let mut by_code = HashMap::new();
    let mut patterns = Vec::new();
    for (i, s) in signals.iter().enumerate() {
        let code = s.code.get_ref().as_str();
        if !SIGNALS.contains(&code) {
            return Err(fail(
                s.code.span(),
                format!("signal[{i}].code"),
                format!("unknown signal `{code}`; known: {}", SIGNALS.join(", ")),
            ));
        }
        if by_code.insert(code.to_string(), i).is_some() {
            return Err(fail(
                s.code.span(),
                format!("signal[{i}].code"),
                format!("signal `{code}` defined twice"),
            ));
        }
        if !(s.weight.is_finite() && s.weight >= 0.0) {
            return Err(fail(
                s.code.span(),
                format!("signal[{i}].weight"),
                "must be a non-negative number".into(),
            ));
        }
        for p in &s.patterns {
            patterns.push((i, p.clone()));
        }
    }
    Ok((by_code, patterns))
}

/// Amount thresholds per currency: positive, ordered, each currency once.
fn check_amounts(amounts: &[RawAmount], fail: &Fail<'_>) -> Result<HashMap<String, (i64, i64)>> {
    let mut out = HashMap::new();
    for (i, a) in amounts.iter().enumerate() {
        if a.large_minor <= 0 || a.very_large_minor < a.large_minor {
            return Err(fail(
                a.currency.span(),
                format!("amount[{i}]"),
                "need 0 < large_minor <= very_large_minor".into(),
            ));
        }
        let currency = a.currency.get_ref().to_ascii_uppercase();
        if out
            .insert(currency, (a.large_minor, a.very_large_minor))
            .is_some()
        {
            return Err(fail(
                a.currency.span(),
                format!("amount[{i}].currency"),
                "currency listed twice".into(),
            ));
        }
    }
    Ok(out)
}

fn format_minor(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, (minor % 100).abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fold;

    fn assess(
        text: &str,
        channel: &str,
        amount: Option<Amount>,
        vulnerable: VulnerableFlags,
        repeat: u32,
    ) -> Assessment {
        let cfg = SeverityConfig::embedded().expect("severity");
        let folded = fold(text);
        cfg.assess(&SignalInput {
            folded: &folded,
            channel,
            amount: amount.as_ref(),
            vulnerable: &vulnerable,
            repeat_count: repeat,
        })
    }

    fn codes(a: &Assessment) -> Vec<String> {
        a.reasons
            .iter()
            .map(|r| r.code.trim_start_matches("signal:").to_string())
            .collect()
    }

    fn fires(text: &str, signal: &str) {
        let a = assess(text, "web", None, VulnerableFlags::default(), 0);
        assert!(
            codes(&a).iter().any(|c| c == signal),
            "{signal} should fire on {text:?}: {a:?}"
        );
        assert!(a.reasons.iter().all(|r| r.evidence.is_some()));
    }

    #[test]
    fn each_signal_fires_in_chinese_and_english() {
        for (zh, en, signal) in [
            (
                "我已经向金融监管总局投诉",
                "I filed this with the CFPB",
                "regulator_referral",
            ),
            (
                "再不解决我就找媒体曝光",
                "I will contact my attorney and file a lawsuit",
                "media_or_legal",
            ),
            (
                "我父亲是老人，不会用手机",
                "my mother is elderly and disabled",
                "vulnerable_consumer",
            ),
            (
                "我们很多人集体投诉",
                "many customers have the same problem",
                "group_or_repeat",
            ),
            (
                "我的信用卡被盗刷了",
                "there were unauthorized charges on my card",
                "fraud_or_unauthorised",
            ),
            (
                "我的个人信息被泄露",
                "a data breach exposed my details",
                "data_leak",
            ),
        ] {
            fires(zh, signal);
            fires(en, signal);
        }
    }

    #[test]
    fn channel_flags_amounts_and_repeats() {
        let a = assess(
            "",
            "regulator_referral",
            None,
            VulnerableFlags::default(),
            0,
        );
        assert_eq!(codes(&a), vec!["regulator_referral"]);
        assert_eq!(a.level, Severity::High);

        let flags = VulnerableFlags {
            elderly: true,
            ..VulnerableFlags::default()
        };
        let a = assess("", "app", None, flags, 0);
        assert_eq!(
            (codes(&a), a.level),
            (vec!["vulnerable_consumer".to_string()], Severity::Medium)
        );

        let big = |minor, cur: &str| {
            Some(Amount {
                minor,
                currency: cur.into(),
            })
        };
        assert!(
            codes(&assess(
                "",
                "web",
                big(4_999_999, "CNY"),
                VulnerableFlags::default(),
                0
            ))
            .is_empty()
        );
        let a = assess(
            "",
            "web",
            big(5_000_000, "cny"),
            VulnerableFlags::default(),
            0,
        );
        assert_eq!(
            (codes(&a), a.level),
            (vec!["large_amount".to_string()], Severity::Medium)
        );
        let a = assess(
            "",
            "web",
            big(60_000_000, "CNY"),
            VulnerableFlags::default(),
            0,
        );
        assert_eq!(a.level, Severity::High);
        let a = assess(
            "",
            "web",
            big(2_000_000, "USD"),
            VulnerableFlags::default(),
            0,
        );
        assert_eq!(codes(&a), vec!["large_amount"]);
        assert!(
            codes(&assess(
                "",
                "web",
                big(i64::MAX, "XXX"),
                VulnerableFlags::default(),
                0
            ))
            .is_empty()
        );

        let a = assess("", "web", None, VulnerableFlags::default(), 3);
        assert_eq!(
            (codes(&a), a.level),
            (vec!["group_or_repeat".to_string()], Severity::Medium)
        );
    }

    #[test]
    fn levels_combine() {
        let a = assess(
            "nothing special, a question about my statement",
            "web",
            None,
            VulnerableFlags::default(),
            0,
        );
        assert_eq!(a.level, Severity::Low);
        let a = assess(
            "银保监会转来：我的卡被盗刷，我要起诉",
            "regulator_referral",
            None,
            VulnerableFlags::default(),
            0,
        );
        assert_eq!(a.level, Severity::Critical);
    }

    #[test]
    fn broken_severity_file_names_the_line() {
        let src = "version = \"s\"\n[levels]\nmedium = 1.0\nhigh = 3.0\ncritical = 6.0\n[[signal]]\ncode = \"bogus\"\nweight = 1.0\n";
        match SeverityConfig::parse_named(src, "s.toml") {
            Err(Error::Data { location, .. }) => assert_eq!(
                (location.line, location.field.as_deref()),
                (7, Some("signal[0].code"))
            ),
            other => panic!("expected a data error, got {other:?}"),
        }
    }
}
