//! Chinese negation scope: whether a keyword match is denied ("没有催收", "并未扣款", "不是暴力
//! 催收") rather than asserted. The cues, exceptions and breakers are data
//! (`lexicon/negation-zh-v1.toml`, embedded); the method is NegEx's (a cue within a window
//! before the match, in the same scope).
//!
//! Scope: a match is looked at from its start backwards, at most `window` characters, up to
//! the nearest clause punctuation or quotation mark (so a negation outside a quotation does not
//! reach into it, and one inside stays there), and from the last breaker word on ("没有逾期却被
//! 催收" asserts the collection). A cue inside an exception word (未经, 没完没了, 无法…) is no cue.

use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde::Deserialize;

use crate::error::{Error, Location, Result};
use crate::rules::fold;

/// The embedded default negation file.
pub const EMBEDDED_NEGATION: &str = include_str!("../lexicon/negation-zh-v1.toml");

/// Characters that end a negation's scope: clause punctuation, quotation marks, brackets and
/// line breaks (text is folded to half-width first, so full-width forms arrive half-width).
fn ends_scope(c: char) -> bool {
    matches!(
        c,
        ',' | '.'
            | '!'
            | '?'
            | ';'
            | '、'
            | '。'
            | '\n'
            | '\r'
            | '"'
            | '\''
            | '“'
            | '”'
            | '‘'
            | '’'
            | '「'
            | '」'
            | '『'
            | '』'
            | '('
            | ')'
            | '【'
            | '】'
            | '《'
            | '》'
            | '…'
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNegation {
    version: String,
    window: usize,
    cues: Vec<String>,
    #[serde(default)]
    exceptions: Vec<String>,
    #[serde(default)]
    breakers: Vec<String>,
}

/// Compiled negation rules.
#[derive(Debug, Clone)]
pub struct Negation {
    version: String,
    window: usize,
    /// Cues and exceptions in one leftmost-longest automaton, so an exception that contains
    /// a cue consumes it; patterns below `cue_count` are cues.
    words: AhoCorasick,
    cue_count: usize,
    /// Longest exception, in characters: how far before the window to look so an exception
    /// cut by the window's edge is still seen whole.
    longest_exception: usize,
    breakers: Option<AhoCorasick>,
}

fn automaton(words: &[String]) -> std::result::Result<AhoCorasick, String> {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::DFA))
        .build(words)
        .map_err(|e| e.to_string())
}

impl Negation {
    /// The embedded default (`negation-zh-v1.toml`).
    pub fn embedded() -> Result<Negation> {
        Negation::parse_named(EMBEDDED_NEGATION, "<embedded negation-zh-v1.toml>")
    }

    /// Read a negation file.
    pub fn load(path: impl AsRef<Path>) -> Result<Negation> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Negation::parse_named(&src, &path.display().to_string())
    }

    /// Parse negation TOML; `file` names it in errors.
    pub fn parse_named(source: &str, file: &str) -> Result<Negation> {
        let fail = |message: String| Error::Data {
            location: Location::at(file, source, 0, None),
            message,
        };
        let raw: RawNegation = toml::from_str(source).map_err(|e| Error::Data {
            location: Location::at(file, source, e.span().map(|s| s.start).unwrap_or(0), None),
            message: e.message().trim().to_string(),
        })?;
        let clean = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|w| fold(w.trim()))
                .filter(|w| !w.is_empty())
                .collect()
        };
        let cues = clean(&raw.cues);
        let exceptions = clean(&raw.exceptions);
        let breakers = clean(&raw.breakers);
        if cues.is_empty() {
            return Err(fail("`cues` needs at least one word".into()));
        }
        if raw.window == 0 || raw.window > 64 {
            return Err(fail(format!(
                "`window` must be 1 to 64 characters, got {}",
                raw.window
            )));
        }
        let words = automaton(&[cues.clone(), exceptions.clone()].concat()).map_err(fail)?;
        let breakers = if breakers.is_empty() {
            None
        } else {
            Some(automaton(&breakers).map_err(fail)?)
        };
        Ok(Negation {
            version: raw.version,
            window: raw.window,
            words,
            cue_count: cues.len(),
            longest_exception: exceptions
                .iter()
                .map(|e| e.chars().count())
                .max()
                .unwrap_or(0),
            breakers,
        })
    }

    /// Version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the match starting at byte `start` of `folded` (text folded by
    /// [`crate::rules::fold`]) is in the scope of a negation.
    pub fn is_negated(&self, folded: &str, start: usize) -> bool {
        let Some(before) = folded.get(..start) else {
            return false;
        };
        // Walk back over at most window + longest exception characters of the same scope.
        let mut window_start = start;
        let mut look_start = start;
        for (n, (i, c)) in before.char_indices().rev().enumerate() {
            if ends_scope(c) || n >= self.window + self.longest_exception {
                break;
            }
            look_start = i;
            if n < self.window {
                window_start = i;
            }
        }
        let Some(mut scope) = folded.get(look_start..start) else {
            return false;
        };
        let mut offset = look_start;
        if let Some(cut) = self
            .breakers
            .as_ref()
            .and_then(|b| b.find_iter(scope).map(|m| m.end()).last())
        {
            offset += cut;
            scope = scope.get(cut..).unwrap_or("");
        }
        self.words
            .find_iter(scope)
            .any(|m| m.pattern().as_usize() < self.cue_count && offset + m.start() >= window_start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the first occurrence of `word` in `text` is negated.
    fn negated(text: &str, word: &str) -> bool {
        let n = Negation::embedded().expect("embedded negation");
        let folded = fold(text);
        let at = folded.find(word).expect("word in text");
        n.is_negated(&folded, at)
    }

    #[test]
    fn cues_deny_what_follows_in_their_scope() {
        assert!(negated("我从来没有被催收过", "催收"));
        assert!(negated("对方并未催收", "催收"));
        assert!(negated("这不是暴力催收", "暴力催收"));
        assert!(negated("并非乱收费", "乱收费"));
        assert!(
            negated("平台没收到我的还款就说我逾期", "收到"),
            "没 before 收到"
        );
        // Asserted: no cue, a cue in another clause, or out of the window.
        assert!(!negated("催收人员每天打电话", "催收"));
        assert!(!negated("我没有逾期，催收却天天打电话", "催收"));
        assert!(!negated(
            "我没有办理过任何借款业务的那家公司一直在催收",
            "催收"
        ));
    }

    #[test]
    fn breakers_and_exceptions_keep_an_assertion() {
        assert!(!negated("我没有逾期却被催收", "催收"));
        assert!(!negated("没有任何理由就暴力催收", "暴力催收"));
        assert!(!negated("在没有告知的情况下收取服务费", "服务费"));
        assert!(!negated("未经同意爆通讯录", "爆通讯录"));
        assert!(!negated("没完没了的催收电话", "催收"));
        assert!(!negated("无法承受催收的压力", "催收"));
        assert!(!negated("这已经不是第一次被催收了", "催收"));
        assert!(!negated("本人从未逾期过也被催收", "催收"));
    }

    #[test]
    fn quotation_marks_bound_the_scope() {
        // The negation is inside the quotation with the word: denied there.
        assert!(negated("客服说“我们没有暴力催收”", "暴力催收"));
        assert!(negated("他们回复“并未扣款”", "扣款"));
        // A negation outside a quotation does not reach into it.
        assert!(!negated("我没有说过“催收”这个词的意思", "催收"));
        // A quoted threat is evidence, not a denial.
        assert!(!negated("短信称“将上门催收”", "上门催收"));
        // Full-width quotation marks and punctuation are folded first.
        assert!(!negated("没有逾期！催收还是来了", "催收"));
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(Negation::parse_named("version = \"x\"\nwindow = 4\ncues = []\n", "n").is_err());
        assert!(
            Negation::parse_named("version = \"x\"\nwindow = 0\ncues = [\"没\"]\n", "n").is_err()
        );
        assert!(Negation::parse_named("version = 1", "n").is_err());
        let n = Negation::parse_named("version = \"x\"\nwindow = 4\ncues = [\"没\"]\n", "n")
            .expect("minimal file");
        assert_eq!(n.version(), "x");
        // Offsets that are not character boundaries or past the end never panic.
        assert!(!n.is_negated("没催收", 1));
        assert!(!n.is_negated("没催收", 100));
    }
}
