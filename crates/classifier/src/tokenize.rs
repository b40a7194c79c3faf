//! Text normalisation, language detection by script, and tokenisation.
//!
//! * [`normalize`] folds full-width ASCII to half-width, lower-cases, folds every number
//!   (`2018.6.26`, `51000`, `1,918.90`) to a single `0`, drops apostrophes and collapses
//!   white space. Input is capped at [`MAX_CHARS`] characters so no input can make the
//!   classifier slow.
//! * [`words`] splits normalised text into words: runs of Han characters are segmented with
//!   `jieba-rs` (its embedded default dictionary, initialised once, lazily, only when Chinese
//!   text is seen), runs of letters/digits are Latin words; CFPB redaction marks (`XXXX`)
//!   become the single token `xx`.
//! * [`cjk_runs`] gives the Han runs, from which the model takes character n-grams.

use std::sync::OnceLock;

use jieba_rs::Jieba;

/// Longest input (in characters) that is looked at; the rest is ignored.
pub const MAX_CHARS: usize = 60_000;

/// Language of a complaint, as far as the classifier cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Chinese (Han script dominates).
    Zh,
    /// English or another Latin-script language.
    En,
}

impl Language {
    /// Parse a hint such as `zh`, `zh-CN`, `cn`, `en`, `en-US` (case-insensitive).
    pub fn from_hint(hint: &str) -> Option<Language> {
        let h = hint.trim().to_ascii_lowercase();
        let primary = h.split(['-', '_']).next().unwrap_or("");
        match primary {
            "zh" | "cn" | "chinese" | "zho" | "chi" => Some(Language::Zh),
            "en" | "english" | "eng" => Some(Language::En),
            _ => None,
        }
    }

    /// `zh` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }
}

/// True for Han ideographs (CJK Unified Ideographs and extensions, compatibility ideographs).
pub fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF | 0x2A700..=0x2EBEF | 0x30000..=0x3134F)
}

/// Share of Han characters among Han + alphabetic characters (0.0 for text with neither).
pub fn cjk_share(text: &str) -> f32 {
    let mut han = 0usize;
    let mut letters = 0usize;
    for c in text.chars().take(MAX_CHARS) {
        if is_han(c) {
            han += 1;
        } else if c.is_alphabetic() {
            letters += 1;
        }
    }
    if han + letters == 0 {
        0.0
    } else {
        han as f32 / (han + letters) as f32
    }
}

/// Share of Han characters at or above which a text is treated as Chinese. A Chinese
/// complaint often quotes Latin product names, URLs or app names, so the bar is well below 50%.
pub const CJK_THRESHOLD: f32 = 0.2;

/// Detect the language by script: Chinese when Han characters make up at least
/// [`CJK_THRESHOLD`] of the letters, English otherwise (including empty text).
pub fn detect_language(text: &str) -> Language {
    if cjk_share(text) >= CJK_THRESHOLD {
        Language::Zh
    } else {
        Language::En
    }
}

fn fold_width(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// Normalise text: full-width → half-width, lower case, numbers folded to `0`, apostrophes
/// dropped, control characters and runs of white space turned into one space. Never panics.
pub fn normalize(text: &str) -> String {
    let chars: Vec<char> = text.chars().take(MAX_CHARS).map(fold_width).collect();
    let mut out = String::with_capacity(text.len().min(MAX_CHARS * 4));
    let mut i = 0;
    let mut last_space = true;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || (c.is_numeric() && !is_han(c)) {
            // One `0` for the whole number, including inner separators: 1,918.90 / 2018.6.26
            out.push('0');
            last_space = false;
            i += 1;
            while i < chars.len() {
                let d = chars[i];
                if d.is_ascii_digit() || (d.is_numeric() && !is_han(d)) {
                    i += 1;
                } else if matches!(d, ',' | '.' | '/' | '-' | ':')
                    && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())
                {
                    i += 2;
                } else {
                    break;
                }
            }
            continue;
        }
        i += 1;
        if c == '\'' || c == '\u{2019}' || c == '\u{2018}' {
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
            continue;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if c.is_uppercase() {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        last_space = false;
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Marker token for a CFPB redaction run (`XXXX`), see [`mark_redactions`].
pub const MARK_REDACT: &str = "xxredact";
/// Marker token for a redacted date (`XX/XX/XXXX`, `XX/XX/2019`).
pub const MARK_DATE: &str = "xxdate";
/// Marker token for an amount (`{$1200.00}`, `$50`).
pub const MARK_AMOUNT: &str = "xxamount";

/// True for the marker tokens [`mark_redactions`] writes.
pub fn is_marker(word: &str) -> bool {
    matches!(word, MARK_REDACT | MARK_DATE | MARK_AMOUNT)
}

/// Rewrite redaction runs and amounts of *normalised* text as single marker tokens:
/// `xx/xx/xxxx` (and `xx/xx/0`) → [`MARK_DATE`], `xxxx` (also `xxxx-xxxx`) → [`MARK_REDACT`],
/// `{$0}` / `$0` → [`MARK_AMOUNT`]. A run is only rewritten when it stands alone (not glued to
/// other letters or digits). Text without such runs is returned unchanged.
// Long on purpose: one left-to-right scan whose states share the position and the output;
// split into functions they would pass all of it back and forth.
pub fn mark_redactions(normalized: &str) -> std::borrow::Cow<'_, str> {
    let in_run = |c: char| matches!(c, 'x' | '0' | '/' | '-' | '$' | '{' | '}' | '.' | ',');
    if !normalized.contains("xx") && !normalized.contains('$') {
        return std::borrow::Cow::Borrowed(normalized);
    }
    let mut out = String::with_capacity(normalized.len());
    let mut rest = normalized;
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let glued = prev.is_some_and(char::is_alphanumeric);
        if in_run(c) && !glued {
            let end = rest.find(|d: char| !in_run(d)).unwrap_or(rest.len());
            let run = &rest[..end];
            let next_glued = rest[end..]
                .chars()
                .next()
                .is_some_and(char::is_alphanumeric);
            let xs = run.bytes().filter(|&b| b == b'x').count();
            let marker = if next_glued {
                None
            } else if run.contains('$') && run.contains('0') && xs == 0 {
                Some(MARK_AMOUNT)
            } else if xs >= 2 && !run.contains('$') && !run.contains('{') {
                if run.contains('/') {
                    Some(MARK_DATE)
                } else if run.bytes().all(|b| matches!(b, b'x' | b'-' | b'.' | b',')) {
                    Some(MARK_REDACT)
                } else {
                    None
                }
            } else {
                None
            };
            match marker {
                Some(m) => {
                    out.push(' ');
                    out.push_str(m);
                    out.push(' ');
                }
                None => out.push_str(run),
            }
            prev = run.chars().last();
            rest = &rest[end..];
            continue;
        }
        out.push(c);
        prev = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

/// Segments of normalised text, by script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// A run of Han characters.
    Han(&'a str),
    /// A run of letters/digits that are not Han (one Latin word).
    Word(&'a str),
}

/// Split normalised text into Han runs and Latin words; punctuation and spaces separate.
pub fn segments(text: &str) -> Vec<Segment<'_>> {
    #[derive(PartialEq, Clone, Copy)]
    enum Kind {
        Han,
        Word,
        Sep,
    }
    let kind = |c: char| {
        if is_han(c) {
            Kind::Han
        } else if c.is_alphanumeric() {
            Kind::Word
        } else {
            Kind::Sep
        }
    };
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut current = Kind::Sep;
    for (i, c) in text.char_indices() {
        let k = kind(c);
        if k != current {
            push_segment(
                &mut out,
                text,
                start,
                i,
                current == Kind::Han,
                current == Kind::Word,
            );
            start = i;
            current = k;
        }
    }
    push_segment(
        &mut out,
        text,
        start,
        text.len(),
        current == Kind::Han,
        current == Kind::Word,
    );
    out
}

fn push_segment<'a>(
    out: &mut Vec<Segment<'a>>,
    text: &'a str,
    start: usize,
    end: usize,
    han: bool,
    word: bool,
) {
    if start >= end {
        return;
    }
    if let Some(s) = text.get(start..end) {
        if han {
            out.push(Segment::Han(s));
        } else if word {
            out.push(Segment::Word(s));
        }
    }
}

/// The Han runs of normalised text.
pub fn cjk_runs(text: &str) -> Vec<&str> {
    segments(text)
        .into_iter()
        .filter_map(|s| match s {
            Segment::Han(h) => Some(h),
            Segment::Word(_) => None,
        })
        .collect()
}

/// Words of normalised text: jieba segmentation for Han runs (`hmm` enables jieba's HMM for
/// unknown words), Latin words as they are, redaction marks (`xx`, `xxxx`) as `xx`.
pub fn words(text: &str, hmm: bool) -> Vec<&str> {
    words_of(&segments(text), hmm)
}

/// [`words`] of text already split into [`segments`].
pub fn words_of<'a>(segments: &[Segment<'a>], hmm: bool) -> Vec<&'a str> {
    let mut out = Vec::new();
    for &seg in segments {
        match seg {
            Segment::Han(h) => out.extend(jieba().cut(h, hmm).into_iter().map(|t| t.word)),
            Segment::Word(w) => {
                if w.len() >= 2 && w.bytes().all(|b| b == b'x') {
                    // A slice of the text (not a literal), so every word points into it.
                    out.push(&w[..2]);
                } else {
                    out.push(w);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_width_case_and_numbers() {
        assert_eq!(normalize("ＡＢＣ１２３　Ｄｅｆ"), "abc0 def");
        assert_eq!(normalize("paid $1,918.90 on 2018.6.26"), "paid $0 on 0");
        assert_eq!(normalize("I didn't  \n\t agree"), "i didnt agree");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn mixed_text_tokenises() {
        let n = normalize("我在ＡＰＰ上借款5000元，XXXX bank's Credit-Card 被盗刷了");
        let w = words(&n, false);
        assert!(w.contains(&"借款"), "{w:?}");
        assert!(w.contains(&"app"), "{w:?}");
        assert!(w.contains(&"xx"), "{w:?}");
        assert!(w.contains(&"credit") && w.contains(&"card"), "{w:?}");
        assert!(w.contains(&"0"), "{w:?}");
        assert!(w.iter().any(|t| t.contains('盗')), "{w:?}");
        let runs = cjk_runs(&n);
        assert_eq!(runs.first().copied(), Some("我在"));
    }

    #[test]
    fn detects_language_by_script() {
        assert_eq!(
            detect_language("我的信用卡被盗刷了 please help"),
            Language::Zh
        );
        assert_eq!(
            detect_language("My credit card was charged twice"),
            Language::En
        );
        assert_eq!(detect_language(""), Language::En);
        assert_eq!(Language::from_hint("zh-CN"), Some(Language::Zh));
        assert_eq!(Language::from_hint("fr"), None);
    }

    #[test]
    fn marks_redactions_dates_and_amounts() {
        let n = normalize(
            "On XX/XX/XXXX I paid {$1200.00} to XXXX XXXX (acct XXXX-XXXX), xxxbank $50.",
        );
        let m = mark_redactions(&n);
        let w = words(&m, false);
        assert!(w.contains(&MARK_DATE), "{w:?}");
        assert!(w.contains(&MARK_AMOUNT), "{w:?}");
        assert_eq!(w.iter().filter(|t| **t == MARK_REDACT).count(), 3, "{w:?}");
        assert!(w.contains(&"xxxbank"), "{w:?}");
        assert_eq!(mark_redactions("plain text"), "plain text");
        let _ = mark_redactions("x$x{}xx//--0\u{1F600}xx");
    }

    #[test]
    fn odd_unicode_never_panics() {
        let odd = "\u{0}\u{200d}\u{1F600}\u{FEFF}ǅ\u{10FFFF}𠀀𠀁٣٤五\u{301}";
        let n = normalize(odd);
        let _ = words(&n, true);
        let _ = segments(&n);
        let huge = "借".repeat(MAX_CHARS * 2);
        assert_eq!(normalize(&huge).chars().count(), MAX_CHARS);
    }
}
