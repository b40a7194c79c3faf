//! Notice templates: one file per notice × channel × language × version under `templates/`
//! (`decision.email.zh-CN.v1.j2`), rendered with minijinja. An e-mail template's first line is
//! `Subject: …`; an SMS is prefixed with the 【signature】 Chinese carriers require, and its
//! length is counted as carriers do (GSM-7 or UCS-2 units per segment).

use std::collections::BTreeMap;

use minijinja::Environment;
use sha2::{Digest, Sha256};

/// Every shipped template, by name (`<kind>.<channel>.<language>.v<version>`).
const SHIPPED: &[(&str, &str)] = &[
    (
        "assigned.email.en.v1",
        include_str!("../templates/assigned.email.en.v1.j2"),
    ),
    (
        "assigned.email.zh-CN.v1",
        include_str!("../templates/assigned.email.zh-CN.v1.j2"),
    ),
    (
        "assigned.sms.en.v1",
        include_str!("../templates/assigned.sms.en.v1.j2"),
    ),
    (
        "assigned.sms.zh-CN.v1",
        include_str!("../templates/assigned.sms.zh-CN.v1.j2"),
    ),
    (
        "clock_paused.email.en.v1",
        include_str!("../templates/clock_paused.email.en.v1.j2"),
    ),
    (
        "clock_paused.email.zh-CN.v1",
        include_str!("../templates/clock_paused.email.zh-CN.v1.j2"),
    ),
    (
        "clock_paused.sms.en.v1",
        include_str!("../templates/clock_paused.sms.en.v1.j2"),
    ),
    (
        "clock_paused.sms.zh-CN.v1",
        include_str!("../templates/clock_paused.sms.zh-CN.v1.j2"),
    ),
    (
        "decision.email.en.v1",
        include_str!("../templates/decision.email.en.v1.j2"),
    ),
    (
        "decision.email.zh-CN.v1",
        include_str!("../templates/decision.email.zh-CN.v1.j2"),
    ),
    (
        "decision.sms.en.v1",
        include_str!("../templates/decision.sms.en.v1.j2"),
    ),
    (
        "decision.sms.zh-CN.v1",
        include_str!("../templates/decision.sms.zh-CN.v1.j2"),
    ),
    (
        "extended.email.en.v1",
        include_str!("../templates/extended.email.en.v1.j2"),
    ),
    (
        "extended.email.zh-CN.v1",
        include_str!("../templates/extended.email.zh-CN.v1.j2"),
    ),
    (
        "extended.sms.en.v1",
        include_str!("../templates/extended.sms.en.v1.j2"),
    ),
    (
        "extended.sms.zh-CN.v1",
        include_str!("../templates/extended.sms.zh-CN.v1.j2"),
    ),
    (
        "input_requested.email.en.v1",
        include_str!("../templates/input_requested.email.en.v1.j2"),
    ),
    (
        "input_requested.email.zh-CN.v1",
        include_str!("../templates/input_requested.email.zh-CN.v1.j2"),
    ),
    (
        "input_requested.sms.en.v1",
        include_str!("../templates/input_requested.sms.en.v1.j2"),
    ),
    (
        "input_requested.sms.zh-CN.v1",
        include_str!("../templates/input_requested.sms.zh-CN.v1.j2"),
    ),
    (
        "receipt.email.en.v1",
        include_str!("../templates/receipt.email.en.v1.j2"),
    ),
    (
        "receipt.email.zh-CN.v1",
        include_str!("../templates/receipt.email.zh-CN.v1.j2"),
    ),
    (
        "receipt.sms.en.v1",
        include_str!("../templates/receipt.sms.en.v1.j2"),
    ),
    (
        "receipt.sms.zh-CN.v1",
        include_str!("../templates/receipt.sms.zh-CN.v1.j2"),
    ),
    (
        "review_outcome.email.en.v1",
        include_str!("../templates/review_outcome.email.en.v1.j2"),
    ),
    (
        "review_outcome.email.zh-CN.v1",
        include_str!("../templates/review_outcome.email.zh-CN.v1.j2"),
    ),
    (
        "review_outcome.sms.en.v1",
        include_str!("../templates/review_outcome.sms.en.v1.j2"),
    ),
    (
        "review_outcome.sms.zh-CN.v1",
        include_str!("../templates/review_outcome.sms.zh-CN.v1.j2"),
    ),
    (
        "satisfaction_reminder.email.en.v1",
        include_str!("../templates/satisfaction_reminder.email.en.v1.j2"),
    ),
    (
        "satisfaction_reminder.email.zh-CN.v1",
        include_str!("../templates/satisfaction_reminder.email.zh-CN.v1.j2"),
    ),
    (
        "satisfaction_reminder.sms.en.v1",
        include_str!("../templates/satisfaction_reminder.sms.en.v1.j2"),
    ),
    (
        "satisfaction_reminder.sms.zh-CN.v1",
        include_str!("../templates/satisfaction_reminder.sms.zh-CN.v1.j2"),
    ),
    (
        "satisfaction_survey.email.en.v1",
        include_str!("../templates/satisfaction_survey.email.en.v1.j2"),
    ),
    (
        "satisfaction_survey.email.zh-CN.v1",
        include_str!("../templates/satisfaction_survey.email.zh-CN.v1.j2"),
    ),
    (
        "satisfaction_survey.sms.en.v1",
        include_str!("../templates/satisfaction_survey.sms.en.v1.j2"),
    ),
    (
        "satisfaction_survey.sms.zh-CN.v1",
        include_str!("../templates/satisfaction_survey.sms.zh-CN.v1.j2"),
    ),
    (
        "withdrawal_confirmed.email.en.v1",
        include_str!("../templates/withdrawal_confirmed.email.en.v1.j2"),
    ),
    (
        "withdrawal_confirmed.email.zh-CN.v1",
        include_str!("../templates/withdrawal_confirmed.email.zh-CN.v1.j2"),
    ),
    (
        "withdrawal_confirmed.sms.en.v1",
        include_str!("../templates/withdrawal_confirmed.sms.en.v1.j2"),
    ),
    (
        "withdrawal_confirmed.sms.zh-CN.v1",
        include_str!("../templates/withdrawal_confirmed.sms.zh-CN.v1.j2"),
    ),
];

pub const LANGUAGES: [&str; 2] = ["zh-CN", "en"];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("no template for {kind} by {channel} in {language}")]
    Missing {
        kind: String,
        channel: String,
        language: String,
    },
    #[error("template {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// A notice as rendered: what the proof records is the id, version and hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub template_id: String,
    pub version: u32,
    pub language: String,
    /// E-mail only.
    pub subject: Option<String>,
    pub body: String,
    /// Lower-case hex SHA-256 of the subject, a blank line and the body (the body alone for SMS).
    pub sha256: String,
    /// SMS only: the template's variables in the order they appear, with their values. The
    /// providers carry only pre-approved templates, filled from these (Tencent by position).
    pub params: Vec<(String, String)>,
}

impl Rendered {
    /// The key a provider's approved template is configured under: `receipt.sms.zh-CN.v1`
    /// (an approved text is one version of ours).
    pub fn provider_key(&self) -> String {
        format!("{}.v{}", self.template_id, self.version)
    }
}

/// The variables of a template's `{{ … }}` expressions, first appearance first.
fn variables(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name: String = after[..end]
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
        rest = &after[end + 2..];
    }
    out
}

fn param_value(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

pub struct Templates {
    env: Environment<'static>,
    /// (kind, channel, language) → (template name, latest version).
    latest: BTreeMap<(String, String, String), (String, u32)>,
    sms_signature: String,
}

impl Templates {
    pub fn shipped(sms_signature: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let mut latest: BTreeMap<(String, String, String), (String, u32)> = BTreeMap::new();
        for (name, text) in SHIPPED {
            let invalid = |reason: String| TemplateError::Invalid {
                name: (*name).to_owned(),
                reason,
            };
            let parts: Vec<&str> = name.split('.').collect();
            let [kind, channel, language, version] = parts[..] else {
                return Err(invalid("name is not kind.channel.language.vN".into()));
            };
            let version: u32 = version
                .strip_prefix('v')
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| invalid("version is not vN".into()))?;
            env.add_template(name, text)
                .map_err(|e| invalid(e.to_string()))?;
            let key = (kind.to_owned(), channel.to_owned(), language.to_owned());
            let entry = latest.entry(key).or_insert(((*name).to_owned(), version));
            if version > entry.1 {
                *entry = ((*name).to_owned(), version);
            }
        }
        Ok(Self {
            env,
            latest,
            sms_signature: sms_signature.to_owned(),
        })
    }

    /// Renders the latest version of the template for `kind` by `channel` in `language`.
    pub fn render(
        &self,
        kind: &str,
        channel: &str,
        language: &str,
        facts: &serde_json::Value,
    ) -> Result<Rendered, TemplateError> {
        let key = (kind.to_owned(), channel.to_owned(), language.to_owned());
        let (name, version) = self
            .latest
            .get(&key)
            .ok_or_else(|| TemplateError::Missing {
                kind: kind.to_owned(),
                channel: channel.to_owned(),
                language: language.to_owned(),
            })?;
        let invalid = |reason: String| TemplateError::Invalid {
            name: name.clone(),
            reason,
        };
        let text = self
            .env
            .get_template(name)
            .and_then(|t| t.render(facts))
            .map_err(|e| invalid(format!("{e:#}")))?;
        let template_id = name
            .rsplit_once('.')
            .map_or(name.as_str(), |(id, _)| id)
            .to_owned();
        let params = if channel == "sms" {
            let source = self
                .env
                .get_template(name)
                .map(|t| t.source().to_owned())
                .unwrap_or_default();
            variables(&source)
                .into_iter()
                .map(|v| {
                    let value = param_value(facts.get(&v));
                    (v, value)
                })
                .collect()
        } else {
            Vec::new()
        };
        let (subject, body) = if channel == "email" {
            let (first, rest) = text.split_once("\n\n").unwrap_or((&text, ""));
            let subject = first
                .strip_prefix("Subject: ")
                .ok_or_else(|| invalid("an e-mail template begins `Subject: `".into()))?;
            // One final line break, as the mail carries it: the hash is of what was sent.
            (
                Some(subject.trim().to_owned()),
                format!("{}\n", rest.trim_end()),
            )
        } else {
            let body = format!("【{}】{}", self.sms_signature, text.trim());
            (None, body)
        };
        let mut hasher = Sha256::new();
        if let Some(subject) = &subject {
            hasher.update(subject.as_bytes());
            hasher.update(b"\n\n");
        }
        hasher.update(body.as_bytes());
        Ok(Rendered {
            template_id,
            version: *version,
            language: language.to_owned(),
            subject,
            body,
            sha256: hex::encode(hasher.finalize()),
            params,
        })
    }

    /// Every (kind, channel, language) there is a template for.
    pub fn keys(&self) -> impl Iterator<Item = &(String, String, String)> {
        self.latest.keys()
    }
}

/// The language a notice is written in: English when the consumer asked for it, Chinese
/// otherwise.
pub fn language(requested: &str) -> &'static str {
    if requested.to_ascii_lowercase().starts_with("en") {
        "en"
    } else {
        "zh-CN"
    }
}

/// Data to preview any template with (`redress notification preview`, the Preview RPC, tests).
pub fn sample_facts() -> serde_json::Value {
    serde_json::json!({
        "reference": "RD-20261203-000123",
        "received_date": "2026-12-03",
        "decision_due_date": "2026-12-18",
        "new_due_date": "2027-01-02",
        "tier": 1,
        "reason": "需调取第三方交易记录",
        "pause_reason_zh": "外部鉴定",
        "pause_reason_en": "an external appraisal",
        "outcome_zh": "部分支持",
        "outcome_en": "partly upheld",
        "remedy": "退还重复扣款 CNY 128.00",
        "explanation": "经核查交易流水，2026-11-20 同一笔消费扣款两次，第二笔为系统重复扣款。",
        "article": "第十八条、第十九条",
        "reply_code": "5821",
    })
}

/// How an SMS is counted by carriers: GSM-7 when every character is in the GSM 03.38 set
/// (extension characters count twice), UCS-2 (UTF-16 units) otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsLength {
    pub encoding: SmsEncoding,
    pub units: usize,
    pub segments: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    Gsm7,
    Ucs2,
}

impl SmsEncoding {
    pub fn name(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "gsm7",
            SmsEncoding::Ucs2 => "ucs2",
        }
    }
}

// GSM 03.38 basic character set and its extension table (3GPP TS 23.038 §6.2.1).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{c}";
// Units per segment: one message, and each part of a concatenated one (the UDH takes 6
// octets: 160→153 septets, 70→67 UCS-2 characters; 3GPP TS 23.040 §9.2.3.24.1).
const GSM7_SINGLE: usize = 160;
const GSM7_PART: usize = 153;
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

pub fn sms_length(text: &str) -> SmsLength {
    let gsm: Option<usize> = text
        .chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (encoding, units, single, part) = match gsm {
        Some(units) => (SmsEncoding::Gsm7, units, GSM7_SINGLE, GSM7_PART),
        None => (
            SmsEncoding::Ucs2,
            text.encode_utf16().count(),
            UCS2_SINGLE,
            UCS2_PART,
        ),
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(part)
    };
    SmsLength {
        encoding,
        units,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        Templates::shipped("某银行").unwrap()
    }

    #[test]
    fn every_file_under_templates_is_shipped_and_every_kind_has_every_channel_and_language() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let shipped: Vec<String> = SHIPPED.iter().map(|(n, _)| format!("{n}.j2")).collect();
        assert_eq!(files, shipped, "list each template file in SHIPPED");
        let t = templates();
        for kind in crate::notices::ALL_KINDS {
            let kind = crate::notices::kind_token(kind);
            for channel in ["email", "sms"] {
                for language in LANGUAGES {
                    let r = t.render(&kind, channel, language, &sample_facts()).unwrap();
                    assert!(!r.body.trim().is_empty(), "{kind}.{channel}.{language}");
                    assert_eq!(r.sha256.len(), 64);
                }
            }
        }
    }

    /// cn-nfra Art. 19: the decision tells what was verified, the basis and reasons, and the
    /// remedies open — review (核查) within 30 days (Art. 20), mediation, arbitration, court.
    #[test]
    fn every_decision_template_holds_the_art_19_elements() {
        let elements = [
            (
                "zh-CN",
                [
                    "核查情况",
                    "依据",
                    "理由",
                    "30日内",
                    "核查",
                    "调解",
                    "仲裁",
                    "诉讼",
                ],
            ),
            (
                "en",
                [
                    "verified",
                    "basis",
                    "reasons",
                    "30 days",
                    "review",
                    "mediation",
                    "arbitration",
                    "court",
                ],
            ),
        ];
        for (name, text) in SHIPPED {
            if !name.starts_with("decision.") {
                continue;
            }
            let language = name.split('.').nth(2).unwrap();
            let (_, wanted) = elements.iter().find(|(l, _)| *l == language).unwrap();
            for element in wanted {
                assert!(text.contains(element), "{name} lacks `{element}` (Art. 19)");
            }
        }
    }

    #[test]
    fn an_email_has_its_subject_and_an_sms_its_signature() {
        let t = templates();
        let mail = t
            .render("decision", "email", "zh-CN", &sample_facts())
            .unwrap();
        assert_eq!(mail.template_id, "decision.email.zh-CN");
        assert_eq!(mail.version, 1);
        assert_eq!(
            mail.subject.as_deref(),
            Some("投诉处理决定（编号 RD-20261203-000123）")
        );
        assert!(mail.body.contains("退还重复扣款"));
        let sms = t.render("receipt", "sms", "en", &sample_facts()).unwrap();
        assert!(
            sms.body.starts_with("【某银行】Your complaint"),
            "{}",
            sms.body
        );
        assert!(
            t.render("receipt", "letter", "en", &sample_facts())
                .is_err()
        );
        let missing = t.render("receipt", "email", "en", &serde_json::json!({}));
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("receipt.email.en")
        );
    }

    /// What the providers' approved templates are filled with: each variable once, in order.
    #[test]
    fn an_sms_carries_its_variables_in_order_for_the_providers() {
        let t = templates();
        let sms = t
            .render("receipt", "sms", "zh-CN", &sample_facts())
            .unwrap();
        assert_eq!(sms.provider_key(), "receipt.sms.zh-CN.v1");
        assert_eq!(
            sms.params,
            [
                ("reference".to_owned(), "RD-20261203-000123".to_owned()),
                ("decision_due_date".to_owned(), "2026-12-18".to_owned()),
            ]
        );
        assert_eq!(
            variables("{{ a }}x{{b|upper}}{{ a }}{{ c_1 }}"),
            ["a", "b", "c_1"]
        );
        let mail = t.render("receipt", "email", "en", &sample_facts()).unwrap();
        assert!(mail.params.is_empty());
    }

    #[test]
    fn sms_length_counts_as_carriers_do() {
        assert_eq!(sms_length(&"a".repeat(160)).segments, 1);
        assert_eq!(sms_length(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_length(&"a".repeat(306)).segments, 2);
        assert_eq!(sms_length(&"a".repeat(307)).segments, 3);
        assert_eq!(sms_length(&"€".repeat(80)).units, 160);
        let zh = sms_length(&"字".repeat(70));
        assert_eq!((zh.encoding, zh.segments), (SmsEncoding::Ucs2, 1));
        assert_eq!(sms_length(&"字".repeat(71)).segments, 2);
        assert_eq!(sms_length(&"字".repeat(134)).segments, 2);
        assert_eq!(sms_length(&"字".repeat(135)).segments, 3);
        // One Chinese character makes the whole message UCS-2.
        assert_eq!(sms_length(&format!("{}字", "a".repeat(69))).segments, 1);
        assert_eq!(sms_length(&format!("{}字", "a".repeat(70))).segments, 2);
    }

    /// Every shipped SMS, with a signature and sample data, fits in two segments (what the
    /// providers bill as one notice's budget here) — with the default signature and a Chinese one.
    #[test]
    fn every_sms_fits_in_two_segments() {
        for t in [templates(), Templates::shipped("Redress").unwrap()] {
            every_sms_fits(&t);
        }
    }

    fn every_sms_fits(t: &Templates) {
        for (kind, channel, language) in t.keys() {
            if channel != "sms" {
                continue;
            }
            let r = t.render(kind, channel, language, &sample_facts()).unwrap();
            let length = sms_length(&r.body);
            assert!(length.segments <= 2, "{}: {length:?}", r.template_id);
        }
    }
}
