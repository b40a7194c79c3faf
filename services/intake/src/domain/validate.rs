//! What a valid submission is. [`validate`] turns a `ComplaintSubmission` into a
//! [`Registration`] whose values are parsed types, or lists *every* problem at once, each
//! naming its field by proto3 JSON path (`consumer.idNumber`) and a machine-readable code.

use chrono::{DateTime, Duration, Utc};
use redress_proto::{
    Violations,
    common::v1::{Channel, Money},
    events::v1::{ComplaintKind, Vulnerability},
    intake::v1::{Attachment, ComplaintSubmission, ContactMethod},
    vocab::{TextKind, check_text},
};
use redress_runtime::event::from_timestamp;

use super::redact::{Known, redact};

pub use redress_proto::vocab::code;

/// Size limits of the contract (services/intake/README.md).
pub mod limits {
    pub const MESSAGE_BYTES: usize = 256 * 1024;
    pub const DESCRIPTION_CHARS: usize = 20_000;
    pub const TITLE_CHARS: usize = 200;
    pub const SHORT_CHARS: usize = 128;
    pub const NAME_CHARS: usize = 100;
    pub const ADDRESS_CHARS: usize = 500;
    pub const RESOLUTION_CHARS: usize = 5_000;
    pub const URI_CHARS: usize = 2_048;
    pub const ATTACHMENTS: usize = 50;
    /// A clock on a channel's machine may run a little ahead of ours.
    pub const CLOCK_SKEW_SECONDS: i64 = 300;
}

/// A value that looks like personal data where none may be (identifiers, references, URIs).
pub const PERSONAL_DATA: &str = "personal_data";

/// The earliest time a complaint can have been received, 2000-01-01T00:00:00Z: no channel of
/// the platform existed before it, so an earlier `receivedAt` is a mistake (a zeroed date,
/// 1970), whatever the configured backdating allows.
const EARLIEST_SECONDS: i64 = 946_684_800;

/// URI schemes an attachment may live under: HTTPS and the object stores in use in China
/// and elsewhere. Never `file:` or plain `http:`.
const ATTACHMENT_SCHEMES: &[&str] = &["https", "s3", "oss", "cos", "obs", "gs"];

/// A mainland mobile number or an E.164 number, kept in E.164 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(text: &str) -> Option<Self> {
        let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact.strip_prefix('+').unwrap_or(&compact);
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mainland = |d: &str| {
            d.len() == 11
                && d.starts_with('1')
                && d.as_bytes()
                    .get(1)
                    .is_some_and(|c| (b'3'..=b'9').contains(c))
        };
        if !compact.starts_with('+') && mainland(digits) {
            return Some(Self(format!("+86{digits}")));
        }
        let e164 = compact.starts_with('+')
            && (8..=15).contains(&digits.len())
            && !digits.starts_with('0');
        let mainland_with_code = digits.strip_prefix("86").is_some_and(mainland);
        (e164 && (!digits.starts_with("86") || mainland_with_code)).then(|| Self(compact.clone()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An 18-character resident identity number whose GB 11643-1999 check character is right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentId(String);

#[derive(Debug, PartialEq, Eq)]
pub enum ResidentIdError {
    Format,
    BirthDate,
    Checksum,
}

impl ResidentId {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

    pub fn parse(text: &str) -> Result<Self, ResidentIdError> {
        let id = text.trim().to_ascii_uppercase();
        let bytes = id.as_bytes();
        if bytes.len() != 18
            || !bytes[..17].iter().all(u8::is_ascii_digit)
            || !(bytes[17].is_ascii_digit() || bytes[17] == b'X')
        {
            return Err(ResidentIdError::Format);
        }
        let birth = chrono::NaiveDate::parse_from_str(&id[6..14], "%Y%m%d")
            .map_err(|_| ResidentIdError::BirthDate)?;
        if birth.format("%Y").to_string().as_str() < "1900" || birth > Utc::now().date_naive() {
            return Err(ResidentIdError::BirthDate);
        }
        let sum: u32 = bytes[..17]
            .iter()
            .zip(Self::WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        if Self::CHECK[(sum % 11) as usize] as u8 != bytes[17] {
            return Err(ResidentIdError::Checksum);
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The consumer's contact details as validated; stored only encrypted.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contact {
    pub name: String,
    pub phone: String,
    pub email: String,
    pub id_number: String,
    pub customer_id: String,
    pub address: String,
}

/// A submission that passed every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub channel: Channel,
    pub channel_ref: String,
    pub received_at: DateTime<Utc>,
    pub kind: ComplaintKind,
    pub contact: Contact,
    pub preferred_contact: ContactMethod,
    pub language: String,
    pub vulnerability: Vulnerability,
    pub product: String,
    pub title: String,
    pub description: String,
    pub desired_resolution: String,
    pub amount: Option<Money>,
    pub attachments: Vec<Attachment>,
    pub regulator_ref: String,
    pub incident_at: Option<DateTime<Utc>>,
    pub locale: String,
}

/// What registration allows beyond the contract's fixed limits (configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long before registration a complaint may say it was received.
    pub max_backdate: Duration,
}

/// Checks every rule of the contract. `subject_channel` is the channel token of the subject
/// the message came on (None through gRPC). No violation repeats the value it refuses: a
/// refused value may be personal data, and rejections travel on the bus.
pub fn validate(
    submission: ComplaintSubmission,
    subject_channel: Option<&str>,
    now: DateTime<Utc>,
    rules: Rules,
) -> Result<Registration, Violations> {
    let mut v = Violations::default();
    let s = submission;
    let channel = check_channel(&mut v, s.channel, subject_channel);
    let (received_at, incident_at) = check_times(&mut v, &s, now, &rules);
    let kind = match ComplaintKind::try_from(s.kind) {
        Ok(ComplaintKind::Unspecified) => ComplaintKind::Complaint,
        Ok(kind) => kind,
        Err(_) => {
            v.add(
                "kind",
                code::UNKNOWN_VALUE,
                "not COMPLAINT_KIND_COMPLAINT or COMPLAINT_KIND_INQUIRY",
            );
            ComplaintKind::Complaint
        }
    };
    check_texts(&mut v, &s, channel);
    let amount = s.amount_in_dispute.clone();
    if let Some(Err(found)) = amount.as_ref().map(|m| m.check("amountInDispute")) {
        v.0.extend(found.0);
    }
    check_attachments(&mut v, &s.attachments);
    let (contact, preferred_contact, language, vulnerability) = check_consumer(&mut v, &s);
    // Identifiers travel on every event: none may carry personal data.
    let known = Known::of(&contact);
    not_personal(&mut v, "channelRef", &s.channel_ref, &known);
    not_personal(&mut v, "regulatorRef", &s.regulator_ref, &known);
    not_personal(&mut v, "product", &s.product, &known);
    for (i, a) in s.attachments.iter().enumerate() {
        not_personal(&mut v, &format!("attachments[{i}].uri"), &a.uri, &known);
    }

    if !v.0.is_empty() {
        return Err(v);
    }
    Ok(Registration {
        channel: channel.unwrap_or(Channel::Other),
        channel_ref: s.channel_ref.trim().to_owned(),
        received_at,
        kind,
        contact,
        preferred_contact,
        language,
        vulnerability,
        product: s.product.trim().to_owned(),
        title: s.title.trim().to_owned(),
        description: s.description.trim().to_owned(),
        desired_resolution: s.desired_resolution.trim().to_owned(),
        amount,
        attachments: s.attachments,
        regulator_ref: s.regulator_ref.trim().to_owned(),
        incident_at,
        locale: s.locale,
    })
}

/// The message's channel, which must be one and match the subject's (None when it is not).
fn check_channel(
    v: &mut Violations,
    channel: i32,
    subject_channel: Option<&str>,
) -> Option<Channel> {
    let channel = Channel::try_from(channel)
        .ok()
        .filter(|c| *c != Channel::Unspecified);
    let valid_channels = Channel::tokens();
    match (channel, subject_channel) {
        (_, Some(token)) if Channel::from_token(token).is_none() => v.add(
            "channel",
            code::UNKNOWN_VALUE,
            format!(
                "the subject names no channel: publish on redress.intake.v1.submit.<channel>, \
                 one of {valid_channels}"
            ),
        ),
        (None, _) => v.add(
            "channel",
            code::UNKNOWN_VALUE,
            format!("not a channel; the channels are {valid_channels} (CHANNEL_APP …)"),
        ),
        (Some(c), Some(token)) if c.token() != token => v.add(
            "channel",
            code::MISMATCH,
            format!(
                "{} was published on another channel's subject",
                c.as_str_name()
            ),
        ),
        _ => {}
    }
    channel
}

/// When the channel received it (now when not given) and when the incident happened.
fn check_times(
    v: &mut Violations,
    s: &ComplaintSubmission,
    now: DateTime<Utc>,
    rules: &Rules,
) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    let skew = Duration::seconds(limits::CLOCK_SKEW_SECONDS);
    let received_at = match s.received_at.as_ref() {
        None => now,
        Some(ts) => match from_timestamp(ts) {
            None => {
                v.add("receivedAt", code::OUT_OF_RANGE, "not a valid timestamp");
                now
            }
            Some(t) if t > now + skew => {
                v.add(
                    "receivedAt",
                    code::IN_FUTURE,
                    "a complaint cannot be received in the future",
                );
                now
            }
            Some(t) if t < now - rules.max_backdate || t.timestamp() < EARLIEST_SECONDS => {
                v.add(
                    "receivedAt",
                    code::TOO_OLD,
                    format!(
                        "more than {} days before registration (REDRESS_INTAKE_MAX_BACKDATE): \
                         give the day the channel received it",
                        rules.max_backdate.num_days()
                    ),
                );
                now
            }
            Some(t) => t,
        },
    };
    let incident_at = s
        .incident_at
        .as_ref()
        .and_then(|ts| match from_timestamp(ts) {
            None => {
                v.add("incidentAt", code::OUT_OF_RANGE, "not a valid timestamp");
                None
            }
            Some(t) if t > now + skew => {
                v.add(
                    "incidentAt",
                    code::IN_FUTURE,
                    "an incident cannot happen in the future",
                );
                None
            }
            Some(t) => Some(t),
        });
    (received_at, incident_at)
}

/// Lengths and characters of the free-text and reference fields.
fn check_texts(v: &mut Violations, s: &ComplaintSubmission, channel: Option<Channel>) {
    use TextKind::{Line, Prose};
    let fields = [
        (
            "channelRef",
            &s.channel_ref,
            limits::SHORT_CHARS,
            true,
            Line,
        ),
        ("product", &s.product, limits::SHORT_CHARS, false, Line),
        ("title", &s.title, limits::TITLE_CHARS, false, Line),
        (
            "description",
            &s.description,
            limits::DESCRIPTION_CHARS,
            true,
            Prose,
        ),
        (
            "desiredResolution",
            &s.desired_resolution,
            limits::RESOLUTION_CHARS,
            false,
            Prose,
        ),
        ("locale", &s.locale, 35, false, Line),
        (
            "regulatorRef",
            &s.regulator_ref,
            limits::SHORT_CHARS,
            false,
            Line,
        ),
    ];
    for (field, value, max, required, kind) in fields {
        text(v, field, value, max, required, kind);
    }
    if !s.locale.is_empty() && !is_language_tag(&s.locale) {
        v.add(
            "locale",
            code::INVALID_FORMAT,
            "not a BCP 47 language tag such as zh-CN or en-US",
        );
    }
    if channel == Some(Channel::RegulatorReferral) && s.regulator_ref.trim().is_empty() {
        v.add(
            "regulatorRef",
            code::REQUIRED,
            "a regulator referral must carry the regulator's reference",
        );
    }
}

/// Length and character checks of one text field (see [`check_text`]).
fn text(v: &mut Violations, field: &str, value: &str, max: usize, required: bool, kind: TextKind) {
    if required && value.trim().is_empty() {
        v.add(field, code::REQUIRED, "required");
        return;
    }
    v.check(check_text(field, value, max, kind));
}

/// A field that identifies something (a reference, a product, a URI) and that redaction
/// would change holds personal data: refused, since it travels on every event unmasked.
fn not_personal(v: &mut Violations, field: &str, value: &str, known: &Known<'_>) {
    if !value.trim().is_empty() && redact(value, known) != value {
        v.add(
            field,
            PERSONAL_DATA,
            "looks like personal data (a phone, e-mail, ID or card number, or the consumer's \
             name or address); identifiers travel on events and must not hold any",
        );
    }
}

fn check_attachments(v: &mut Violations, attachments: &[Attachment]) {
    if attachments.len() > limits::ATTACHMENTS {
        v.add(
            "attachments",
            code::TOO_LARGE,
            format!("at most {} attachments", limits::ATTACHMENTS),
        );
    }
    for (i, a) in attachments.iter().enumerate() {
        let field = |name: &str| format!("attachments[{i}].{name}");
        text(
            v,
            &field("uri"),
            &a.uri,
            limits::URI_CHARS,
            true,
            TextKind::Line,
        );
        let scheme = a
            .uri
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        let authority = a
            .uri
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or_default());
        match scheme {
            _ if a.uri.is_empty() => {}
            None => v.add(&field("uri"), code::INVALID_FORMAT, "not an absolute URI"),
            Some(scheme) if !ATTACHMENT_SCHEMES.contains(&scheme.as_str()) => v.add(
                &field("uri"),
                code::INVALID_FORMAT,
                format!(
                    "the scheme must be one of {}",
                    ATTACHMENT_SCHEMES.join(", ")
                ),
            ),
            Some(_) if authority.is_none_or(|a| a.is_empty() || a.contains('@')) => v.add(
                &field("uri"),
                code::INVALID_FORMAT,
                "needs a host and no user name or password",
            ),
            Some(_) => {}
        }
        if a.sha256.len() != 64
            || !a
                .sha256
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            v.add(
                &field("sha256"),
                code::INVALID_FORMAT,
                "64 lower-case hex digits",
            );
        }
        let media = a.media_type.split_once('/');
        if !media.is_some_and(|(t, s)| {
            !t.is_empty() && !s.is_empty() && !a.media_type.contains(char::is_whitespace)
        }) {
            v.add(
                &field("mediaType"),
                code::INVALID_FORMAT,
                "a media type such as audio/mpeg",
            );
        }
    }
}

fn check_consumer(
    v: &mut Violations,
    s: &ComplaintSubmission,
) -> (Contact, ContactMethod, String, Vulnerability) {
    let Some(c) = s.consumer.as_ref() else {
        v.add(
            "consumer",
            code::REQUIRED,
            "who is complaining, and how to reach them",
        );
        return (
            Contact::default(),
            ContactMethod::Unspecified,
            String::new(),
            Vulnerability::default(),
        );
    };
    use TextKind::Line;
    let fields = [
        ("consumer.name", &c.name, limits::NAME_CHARS),
        ("consumer.customerId", &c.customer_id, limits::SHORT_CHARS),
        ("consumer.address", &c.address, limits::ADDRESS_CHARS),
        ("consumer.language", &c.language, 35),
    ];
    for (field, value, max) in fields {
        text(v, field, value, max, false, Line);
    }
    let phone = check_phone(v, &c.phone);
    let email = match c.email.trim() {
        "" => String::new(),
        raw if raw.len() <= 254 && raw.parse::<email_address::EmailAddress>().is_ok() => {
            raw.to_owned()
        }
        _ => {
            v.add(
                "consumer.email",
                code::INVALID_FORMAT,
                "not an e-mail address",
            );
            String::new()
        }
    };
    let id_number = check_id_number(v, &c.id_number);
    let preferred = ContactMethod::try_from(c.preferred_contact).unwrap_or_else(|_| {
        v.add(
            "consumer.preferredContact",
            code::UNKNOWN_VALUE,
            "not a ContactMethod (CONTACT_METHOD_PHONE …)",
        );
        ContactMethod::Unspecified
    });
    let reachable = [&c.phone, &c.email, &c.address, &c.customer_id]
        .iter()
        .any(|x| !x.trim().is_empty());
    if !reachable {
        v.add(
            "consumer",
            code::UNREACHABLE,
            "give at least one of phone, email, address or customerId",
        );
    }
    let contact = Contact {
        name: c.name.trim().to_owned(),
        phone,
        email,
        id_number,
        customer_id: c.customer_id.trim().to_owned(),
        address: c.address.trim().to_owned(),
    };
    (
        contact,
        preferred,
        c.language.clone(),
        c.vulnerable.unwrap_or_default(),
    )
}

fn check_phone(v: &mut Violations, phone: &str) -> String {
    match phone.trim() {
        "" => String::new(),
        raw => match Phone::parse(raw) {
            Some(p) => p.as_str().to_owned(),
            None => {
                v.add(
                    "consumer.phone",
                    code::INVALID_FORMAT,
                    "a mainland mobile number (11 digits, 13x–19x) or an E.164 number \
                     (+ country code, at most 15 digits)",
                );
                String::new()
            }
        },
    }
}

fn check_id_number(v: &mut Violations, id_number: &str) -> String {
    let raw = id_number.trim();
    if raw.is_empty() {
        return String::new();
    }
    let (code, reason) = match ResidentId::parse(raw) {
        Ok(id) => return id.as_str().to_owned(),
        Err(ResidentIdError::Format) => (
            code::INVALID_FORMAT,
            "18 characters: 17 digits and a digit or X",
        ),
        Err(ResidentIdError::BirthDate) => (
            code::INVALID_FORMAT,
            "the birth date in it is not a real date",
        ),
        Err(ResidentIdError::Checksum) => (
            code::CHECKSUM,
            "the GB 11643 check character does not match",
        ),
    };
    v.add("consumer.idNumber", code, reason);
    String::new()
}

/// A loose BCP 47 check: letters, digits and hyphens, starting with a 2–3 letter language.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split(['-', '_']);
    let language = parts.next().unwrap_or_default();
    (2..=3).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redress_proto::intake::v1::Consumer;

    const RULES: Rules = Rules {
        max_backdate: Duration::days(30),
    };

    fn valid() -> ComplaintSubmission {
        ComplaintSubmission {
            channel: Channel::Web as i32,
            channel_ref: "web-1".into(),
            description: "我的借款被重复扣款".into(),
            consumer: Some(Consumer {
                name: "张三".into(),
                phone: "13812345678".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn violations(s: ComplaintSubmission) -> Vec<(String, String)> {
        match validate(s, Some("web"), Utc::now(), RULES) {
            Ok(_) => Vec::new(),
            Err(v) => v.0.into_iter().map(|f| (f.field, f.code)).collect(),
        }
    }

    fn has(s: ComplaintSubmission, field: &str, code: &str) -> bool {
        violations(s).contains(&(field.to_owned(), code.to_owned()))
    }

    #[test]
    fn a_complete_submission_registers_with_normalised_values() {
        let r = validate(valid(), Some("web"), Utc::now(), RULES);
        let Ok(r) = r else { panic!("{r:?}") };
        assert_eq!(r.contact.phone, "+8613812345678");
        assert_eq!(r.kind, ComplaintKind::Complaint);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut s = valid();
        s.channel_ref.clear();
        s.description.clear();
        let found = violations(s);
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn resident_ids_are_checked_by_gb_11643() {
        assert!(ResidentId::parse("11010519491231002X").is_ok());
        assert!(ResidentId::parse("11010519491231002x").is_ok());
        assert_eq!(
            ResidentId::parse("110105194912310021"),
            Err(ResidentIdError::Checksum)
        );
        assert_eq!(
            ResidentId::parse("110105194913310023"),
            Err(ResidentIdError::BirthDate)
        );
        assert_eq!(
            ResidentId::parse("1101051949123100"),
            Err(ResidentIdError::Format)
        );
        let mut s = valid();
        if let Some(c) = s.consumer.as_mut() {
            c.id_number = "110105194912310021".into();
        }
        assert!(has(s, "consumer.idNumber", code::CHECKSUM));
    }

    #[test]
    fn phones_are_mainland_mobile_or_e164() {
        assert_eq!(
            Phone::parse("138 1234 5678").map(|p| p.0),
            Some("+8613812345678".into())
        );
        assert!(Phone::parse("+14155550100").is_some());
        assert!(Phone::parse("+8613812345678").is_some());
        for bad in [
            "12812345678",
            "1381234567",
            "+0123456789",
            "phone",
            "+86123",
        ] {
            assert!(Phone::parse(bad).is_none(), "{bad}");
        }
        let mut s = valid();
        if let Some(c) = s.consumer.as_mut() {
            c.phone = "12345".into();
        }
        assert!(has(s, "consumer.phone", code::INVALID_FORMAT));
    }

    #[test]
    fn emails_currencies_and_amounts() {
        let mut s = valid();
        if let Some(c) = s.consumer.as_mut() {
            c.email = "not-an-email".into();
        }
        s.amount_in_dispute = Some(Money {
            currency_code: "RMB".into(),
            units: -5,
            nanos: 1_000,
        });
        let found = violations(s);
        for expected in [
            ("consumer.email", code::INVALID_FORMAT),
            ("amountInDispute.currencyCode", code::UNKNOWN_VALUE),
            ("amountInDispute", code::OUT_OF_RANGE),
            ("amountInDispute.nanos", code::INVALID_FORMAT),
        ] {
            assert!(
                found.contains(&(expected.0.into(), expected.1.into())),
                "{expected:?} in {found:?}"
            );
        }
        let mut ok = valid();
        ok.amount_in_dispute = Some(Money {
            currency_code: "CNY".into(),
            units: 1200,
            nanos: 500_000_000,
        });
        assert!(violations(ok).is_empty());
    }

    #[test]
    fn sizes_control_characters_and_reachability() {
        let mut s = valid();
        s.description = "字".repeat(limits::DESCRIPTION_CHARS + 1);
        s.title = "bad\u{7}title".into();
        s.consumer = Some(Consumer::default());
        let found = violations(s);
        assert!(found.contains(&("description".into(), code::TOO_LONG.into())));
        assert!(found.contains(&("title".into(), code::CONTROL_CHARACTERS.into())));
        assert!(found.contains(&("consumer".into(), code::UNREACHABLE.into())));
        let mut multiline = valid();
        multiline.description = "line one\nline two\ttabbed".into();
        assert!(violations(multiline).is_empty());
    }

    #[test]
    fn times_channels_enums_and_regulator_referrals() {
        let mut s = valid();
        s.received_at = Some(redress_runtime::event::timestamp(
            Utc::now() + Duration::hours(2),
        ));
        s.kind = 9;
        if let Some(c) = s.consumer.as_mut() {
            c.preferred_contact = 42;
        }
        let found = violations(s);
        assert!(found.contains(&("receivedAt".into(), code::IN_FUTURE.into())));
        assert!(found.contains(&("kind".into(), code::UNKNOWN_VALUE.into())));
        assert!(found.contains(&(
            "consumer.preferredContact".into(),
            code::UNKNOWN_VALUE.into()
        )));

        let mut wrong_subject = valid();
        wrong_subject.channel = Channel::App as i32;
        assert!(has(wrong_subject, "channel", code::MISMATCH));

        let mut unknown = valid();
        unknown.channel = 77;
        assert!(has(unknown, "channel", code::UNKNOWN_VALUE));

        let mut referral = valid();
        referral.channel = Channel::RegulatorReferral as i32;
        let found = match validate(referral, Some("regulator_referral"), Utc::now(), RULES) {
            Err(v) => v.0,
            Ok(_) => Vec::new(),
        };
        assert_eq!(
            found.first().map(|f| f.field.as_str()),
            Some("regulatorRef")
        );
    }

    #[test]
    fn attachments_need_a_uri_a_digest_and_a_media_type() {
        let mut s = valid();
        s.attachments = vec![Attachment {
            uri: "recording.mp3".into(),
            sha256: "ABC".into(),
            media_type: "audio".into(),
            size_bytes: 10,
        }];
        let found = violations(s);
        assert!(found.contains(&("attachments[0].uri".into(), code::INVALID_FORMAT.into())));
        assert!(found.contains(&("attachments[0].sha256".into(), code::INVALID_FORMAT.into())));
        assert!(found.contains(&(
            "attachments[0].mediaType".into(),
            code::INVALID_FORMAT.into()
        )));
    }
}
