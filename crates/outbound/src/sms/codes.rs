//! Which provider error codes mean "throttled", "try another provider", or "this recipient cannot
//! be reached" — data in `data/sms-codes.json`, with the provider pages it was read from.

use std::sync::OnceLock;

use serde::Deserialize;

use super::ProviderKind;

/// How a provider's error code is handled (see `data/sms-codes.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    Throttled,
    Unavailable,
    Recipient,
    /// Anything else: a problem with our account or configuration at that provider.
    Refused,
}

#[derive(Deserialize)]
struct Table {
    aliyun: Lists,
    tencent: Lists,
}

#[derive(Deserialize)]
struct Lists {
    throttled: Vec<String>,
    unavailable: Vec<String>,
    recipient: Vec<String>,
}

const DATA: &str = include_str!("../../data/sms-codes.json");

fn table() -> Option<&'static Table> {
    static TABLE: OnceLock<Option<Table>> = OnceLock::new();
    // Parsed once; `codes_file_parses` pins that it always does, so `None` is unreachable in a
    // built crate — but a parse failure must not panic a sender, it degrades to `Refused`.
    TABLE
        .get_or_init(|| serde_json::from_str(DATA).ok())
        .as_ref()
}

fn matches(list: &[String], code: &str) -> bool {
    list.iter().any(|entry| match entry.strip_suffix('*') {
        Some(prefix) => code.starts_with(prefix),
        None => entry == code,
    })
}

pub fn classify(provider: ProviderKind, code: &str) -> CodeClass {
    let Some(table) = table() else {
        return CodeClass::Refused;
    };
    let lists = match provider {
        ProviderKind::Aliyun => &table.aliyun,
        ProviderKind::Tencent => &table.tencent,
    };
    if matches(&lists.recipient, code) {
        CodeClass::Recipient
    } else if matches(&lists.throttled, code) {
        CodeClass::Throttled
    } else if matches(&lists.unavailable, code) {
        CodeClass::Unavailable
    } else {
        CodeClass::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_file_parses() {
        assert!(serde_json::from_str::<Table>(DATA).is_ok());
    }

    #[test]
    fn documented_codes_are_classified() {
        use CodeClass::*;
        use ProviderKind::*;
        assert_eq!(classify(Aliyun, "isv.BUSINESS_LIMIT_CONTROL"), Throttled);
        assert_eq!(classify(Aliyun, "Throttling.User"), Throttled);
        assert_eq!(classify(Aliyun, "isp.SYSTEM_ERROR"), Unavailable);
        assert_eq!(classify(Aliyun, "isv.MOBILE_NUMBER_ILLEGAL"), Recipient);
        assert_eq!(classify(Aliyun, "isv.SMS_TEMPLATE_ILLEGAL"), Refused);
        assert_eq!(classify(Aliyun, "SignatureDoesNotMatch"), Refused);
        assert_eq!(
            classify(Tencent, "LimitExceeded.PhoneNumberDailyLimit"),
            Throttled
        );
        assert_eq!(classify(Tencent, "RequestLimitExceeded"), Throttled);
        assert_eq!(classify(Tencent, "InternalError.Timeout"), Unavailable);
        assert_eq!(
            classify(Tencent, "InvalidParameterValue.IncorrectPhoneNumber"),
            Recipient
        );
        assert_eq!(classify(Tencent, "AuthFailure.SignatureFailure"), Refused);
    }
}
