//! How close two complaint texts are, for `duplicate_suspected` (same consumer, similar text,
//! within 30 days). Jaccard similarity of character shingles: bigrams for CJK text, where a
//! character is nearly a word, trigrams of letters elsewhere. Cheap, language-neutral and
//! robust to the small edits of a resent complaint.

use std::collections::HashSet;

/// The method name carried on the event, so readers know what the number means.
pub const METHOD: &str = "jaccard-char-shingles-v1";

pub fn shingles(text: &str) -> HashSet<String> {
    let chars: Vec<char> = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    let cjk = chars.iter().filter(|c| is_cjk(**c)).count();
    let n = if cjk * 2 >= chars.len() { 2 } else { 3 };
    if chars.len() < n {
        return chars.iter().map(|c| c.to_string()).collect();
    }
    chars.windows(n).map(|w| w.iter().collect()).collect()
}

pub fn similarity(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(a: &str, b: &str) -> f64 {
        similarity(&shingles(a), &shingles(b))
    }

    #[test]
    fn a_resent_complaint_is_close_and_a_different_one_is_not() {
        let first =
            "我在贵平台借款后被多次暴力催收，催收人员威胁联系我的家人和同事，要求立即停止。";
        let resent = "我在贵平台借款后被多次暴力催收，催收员威胁联系我的家人同事，请立即停止！";
        let other = "信用卡年费未经同意被扣除，客服一直推诿，要求退还年费。";
        assert!(sim(first, resent) > 0.6, "{}", sim(first, resent));
        assert!(sim(first, other) < 0.1, "{}", sim(first, other));

        let en = "The lender charged me a late fee even though my payment was on time.";
        let en_resent = "The lender charged me a late fee even though my payment arrived on time!";
        assert!(sim(en, en_resent) > 0.6);
        assert!(sim(en, "My mortgage servicer lost my documents twice.") < 0.15);
    }

    #[test]
    fn empty_texts_are_not_similar() {
        assert_eq!(sim("", ""), 0.0);
        assert_eq!(sim("a", "a"), 1.0);
    }
}
