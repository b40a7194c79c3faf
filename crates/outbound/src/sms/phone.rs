//! A phone number in E.164, the one form both providers can be given.

use std::fmt;

/// `+` and 8 to 15 digits, the first not 0 (ITU-T E.164).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("phone number must be E.164: `+`, country code and number, 8 to 15 digits")]
    NotE164,
}

impl PhoneNumber {
    pub fn parse(value: &str) -> Result<Self, PhoneError> {
        let compact: String = value.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact.strip_prefix('+').ok_or(PhoneError::NotE164)?;
        let ok = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(PhoneNumber(compact))
        } else {
            Err(PhoneError::NotE164)
        }
    }

    pub fn e164(&self) -> &str {
        &self.0
    }

    /// Aliyun's form: mainland numbers without a country code, others with it and no `+`.
    pub fn aliyun(&self) -> &str {
        self.0
            .strip_prefix("+86")
            .unwrap_or_else(|| self.0.trim_start_matches('+'))
    }

    /// `138****5678`: what a delivery record may keep (last four, first three of the national
    /// number).
    pub fn masked(&self) -> String {
        let national = self.aliyun();
        let n = national.len();
        if n <= 7 {
            return "*".repeat(n);
        }
        format!(
            "{}{}{}",
            &national[..3],
            "*".repeat(n - 7),
            &national[n - 4..]
        )
    }
}

// Never print a whole number in logs.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_e164_and_forms() {
        let p = PhoneNumber::parse("+86 138-0013-5678").unwrap();
        assert_eq!(p.e164(), "+8613800135678");
        assert_eq!(p.aliyun(), "13800135678");
        assert_eq!(p.masked(), "138****5678");
        assert_eq!(
            PhoneNumber::parse("+85261234567").unwrap().aliyun(),
            "85261234567"
        );
        assert_eq!(format!("{p:?}"), "PhoneNumber(138****5678)");
    }

    #[test]
    fn rejects_what_is_not_e164() {
        for bad in [
            "13800135678",
            "+0123456789",
            "+12",
            "+86abc12345678",
            "+1234567890123456",
        ] {
            assert_eq!(PhoneNumber::parse(bad), Err(PhoneError::NotE164), "{bad}");
        }
    }
}
