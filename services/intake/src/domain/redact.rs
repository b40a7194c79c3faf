//! Masking personal data in free text before it leaves intake (DESIGN §4): phone numbers,
//! e-mail addresses, 18-character resident ID numbers, Luhn-valid card numbers, and the
//! consumer's own name and contact values wherever they appear.
//!
//! Numbers are found as runs of digits that may be split by single spaces or hyphens
//! (`6222 0212 3456 7890`, `138-1234-5678`); a run that is not personal data as a whole is
//! looked at group by group, so a phone number beside a date is still caught.

use std::sync::LazyLock;

pub const PHONE: &str = "[phone]";
pub const EMAIL: &str = "[email]";
pub const ID: &str = "[id]";
pub const CARD: &str = "[card]";
pub const NAME: &str = "[name]";

static EMAIL_PATTERN: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    regex::Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}").ok()
});

pub const ADDRESS: &str = "[address]";

/// The consumer's own values, masked wherever they appear verbatim.
#[derive(Debug, Default, Clone)]
pub struct Known<'a> {
    pub name: &'a str,
    pub phone: &'a str,
    pub email: &'a str,
    pub id_number: &'a str,
    pub address: &'a str,
}

impl<'a> Known<'a> {
    pub fn of(contact: &'a super::validate::Contact) -> Self {
        Self {
            name: &contact.name,
            phone: &contact.phone,
            email: &contact.email,
            id_number: &contact.id_number,
            address: &contact.address,
        }
    }
}

/// `text` with personal data masked.
pub fn redact(text: &str, known: &Known<'_>) -> String {
    let mut text = fold_full_width(text);
    // Verbatim values first: a name is not a pattern.
    // The address before the name: a name may appear inside an address, not the reverse.
    for (value, mask) in [
        (known.address, ADDRESS),
        (known.email, EMAIL),
        (known.id_number, ID),
        (known.phone, PHONE),
        (known.name, NAME),
    ] {
        let value = value.trim();
        if value.chars().count() >= 2 {
            text = text.replace(value, mask);
        }
    }
    if let Some(pattern) = EMAIL_PATTERN.as_ref() {
        text = pattern.replace_all(&text, EMAIL).into_owned();
    }
    mask_numbers(&text)
}

/// Full-width digits, letters and the `＋＠－` of phone numbers and addresses, common in
/// Chinese text, as their ASCII selves; Chinese punctuation (，。) stays as written.
fn fold_full_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '０'..='９' | 'Ａ'..='Ｚ' | 'ａ'..='ｚ' | '＋' | '＠' | '－' => {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
            _ => c,
        })
        .collect()
}

fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_number = chars[i].is_ascii_digit()
            || (chars[i] == '+' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()));
        if !starts_number {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let end = number_end(&chars, i);
        let run: String = chars[i..end].iter().collect();
        out.push_str(&mask_run(&run));
        i = end;
    }
    out
}

/// The end of a number run starting at `start`: digits, single separators between digits,
/// and a trailing X of an ID number.
fn number_end(chars: &[char], start: usize) -> usize {
    let mut end = start + 1;
    while end < chars.len() {
        let c = chars[end];
        let next_is_digit = chars.get(end + 1).is_some_and(|n| n.is_ascii_digit());
        if c.is_ascii_digit() || ((c == ' ' || c == '-') && next_is_digit) {
            end += 1;
        } else if (c == 'X' || c == 'x') && chars[end - 1].is_ascii_digit() {
            end += 1;
            break;
        } else {
            break;
        }
    }
    end
}

fn mask_run(run: &str) -> String {
    let groups: Vec<&str> = run.split([' ', '-']).collect();
    // A group that is personal data on its own (a phone number next to a year) is masked
    // alone; otherwise the run is judged whole (a card number written in groups of four).
    if !groups.iter().any(|g| classify(g).is_some()) {
        return classify(run)
            .map(str::to_owned)
            .unwrap_or_else(|| run.to_owned());
    }
    let mut out = String::with_capacity(run.len());
    let mut group = String::new();
    for c in run.chars() {
        if c == ' ' || c == '-' {
            out.push_str(classify(&group).unwrap_or(&group));
            out.push(c);
            group.clear();
        } else {
            group.push(c);
        }
    }
    out.push_str(classify(&group).unwrap_or(&group));
    out
}

fn classify(run: &str) -> Option<&'static str> {
    let plus = run.starts_with('+');
    let digits: String = run.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let all_digits = digits.chars().all(|c| c.is_ascii_digit());
    let len = digits.len();
    if len == 18 && digits[..17].chars().all(|c| c.is_ascii_digit()) && !plus {
        return Some(ID);
    }
    if !all_digits {
        return None;
    }
    if is_mainland_mobile(&digits) || (plus && (7..=15).contains(&len)) {
        return Some(PHONE);
    }
    if (13..=19).contains(&len) && luhn_valid(&digits) {
        return Some(CARD);
    }
    // Landlines: 0 + area code + 7–8 digits, e.g. 010-12345678, 0755 1234 5678.
    if digits.starts_with('0') && (10..=12).contains(&len) && run.contains(['-', ' ']) {
        return Some(PHONE);
    }
    None
}

fn is_mainland_mobile(digits: &str) -> bool {
    let national = digits
        .strip_prefix("86")
        .filter(|d| d.len() == 11)
        .unwrap_or(digits);
    national.len() == 11
        && national.starts_with('1')
        && national
            .as_bytes()
            .get(1)
            .is_some_and(|d| (b'3'..=b'9').contains(d))
}

/// The Luhn check (ISO/IEC 7812-1) that payment card numbers carry.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> String {
        redact(text, &Known::default())
    }

    #[test]
    fn phones_emails_ids_and_cards_are_masked_in_chinese_and_english() {
        assert_eq!(plain("请回电13812345678谢谢"), "请回电[phone]谢谢");
        assert_eq!(plain("call +1 415 555 0100 now"), "call [phone] now");
        assert_eq!(plain("电话138-1234-5678"), "电话[phone]");
        assert_eq!(plain("邮箱 zhang.san@example.com。"), "邮箱 [email]。");
        assert_eq!(plain("身份证11010519491231002X已提供"), "身份证[id]已提供");
        assert_eq!(
            plain("卡号 4111 1111 1111 1111 被盗刷"),
            "卡号 [card] 被盗刷"
        );
        assert_eq!(plain("card 4539578763621486."), "card [card].");
        assert_eq!(plain("座机010-12345678"), "座机[phone]");
    }

    #[test]
    fn ordinary_numbers_stay() {
        assert_eq!(plain("借款5000元，利率24%"), "借款5000元，利率24%");
        assert_eq!(
            plain("on 2023-01-02 I paid 1234567890123"),
            "on 2023-01-02 I paid 1234567890123"
        );
        // 16 digits that fail Luhn are an order number, not a card.
        assert_eq!(plain("order 4111111111111112"), "order 4111111111111112");
    }

    #[test]
    fn a_phone_beside_other_digits_is_still_caught() {
        assert_eq!(plain("13812345678 2023"), "[phone] 2023");
    }

    #[test]
    fn the_consumers_own_name_and_values_are_masked() {
        let known = Known {
            name: "张三",
            phone: "13812345678",
            email: "z@example.com",
            id_number: "",
            address: "北京市朝阳区建国路1号张三收",
        };
        assert_eq!(
            redact("我是张三，张三的账户", &known),
            "我是[name]，[name]的账户"
        );
        // The address as a whole first, so the name inside it does not split it.
        assert_eq!(
            redact("寄到北京市朝阳区建国路1号张三收即可", &known),
            "寄到[address]即可"
        );
        // A one-character "name" would mask too much and is left alone.
        let short = Known {
            name: "A",
            ..Default::default()
        };
        assert_eq!(redact("A bank", &short), "A bank");
    }

    #[test]
    fn luhn_matches_known_numbers() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn no_input_panics() {
        for text in [
            "", "+", "X", "1X", "+86", "- - -", "\u{0}", "1 -2", "\u{FF5E}",
        ] {
            let _ = plain(text);
        }
        assert_eq!(plain("手机１３８１２３４５６７８"), "手机[phone]");
    }
}
