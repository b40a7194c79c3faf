//! Masked addresses: what the proof keeps instead of the address (`138****5678`,
//! `z***@example.com`) — enough for a consumer to recognise it, not to contact them.

/// A phone number with all but its first three and last four digits hidden (all but the last
/// two when it is too short for that).
pub fn phone(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(|c| c.is_ascii_digit()).collect();
    let n = digits.len();
    let (head, tail) = if n >= 11 { (3, 4) } else { (0, n.min(2)) };
    let hidden = n.saturating_sub(head + tail).max(4);
    let mut out: String = digits.iter().take(head).collect();
    out.push_str(&"*".repeat(hidden));
    out.extend(digits.iter().skip(n.saturating_sub(tail)));
    out
}

/// An e-mail address with its local part reduced to its first character.
pub fn email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_as_the_proof_shows_them() {
        assert_eq!(phone("13812345678"), "138****5678");
        assert_eq!(phone("+86 138-1234-5678"), "861******5678");
        assert_eq!(phone("12345"), "****45");
        assert_eq!(email("zhang.san@example.com"), "z***@example.com");
        assert_eq!(email("nobody"), "***");
    }
}
