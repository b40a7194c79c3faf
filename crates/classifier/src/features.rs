//! Feature extraction: hashed word n-grams and character n-grams of normalised text.
//!
//! Every feature is a 32-bit hash of (feature kind, token bytes), computed with FNV-1a so the
//! same text gives the same features on every machine and in every release. The model keeps
//! only the hashes it saw often enough in training (its vocabulary), so collisions among kept
//! features are rare and unseen features cost nothing.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::tokenize::{self, Segment};

/// Which block a feature belongs to; each block is TF-IDF weighted and l2-normalised on its
/// own, then scaled by its block weight (like scikit-learn's `FeatureUnion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Word unigrams and n-grams.
    Word = 0,
    /// Character n-grams.
    Char = 1,
}

/// How text becomes features. Stored inside every model artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// Longest word n-gram (1 = unigrams only, 2 = unigrams + bigrams, 3 = up to trigrams).
    pub word_ngram_max: u8,
    /// Character n-gram lengths over Han runs, inclusive (`(1, 3)`); `(0, 0)` turns them off.
    pub cjk_char_ngrams: (u8, u8),
    /// Character n-gram lengths inside Latin words padded with spaces (`char_wb`), inclusive;
    /// `(0, 0)` turns them off.
    pub latin_char_ngrams: (u8, u8),
    /// Weight of the character block relative to the word block (word block weight is 1).
    pub char_block_weight: f32,
    /// Use jieba's HMM for words missing from its dictionary (slower, slightly better recall).
    pub jieba_hmm: bool,
    /// Rewrite CFPB redaction runs (`XXXX`, `XX/XX/XXXX`) and amounts (`{$1200.00}`) as single
    /// marker words ([`tokenize::mark_redactions`]) and take no character n-grams from them.
    pub mark_tokens: bool,
    /// Also emit the word n-grams of the first `head_words` words as separate "head"
    /// features (a complaint usually names its product in its first sentence); 0 = off.
    pub head_words: u16,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            word_ngram_max: 2,
            cjk_char_ngrams: (1, 3),
            latin_char_ngrams: (0, 0),
            char_block_weight: 1.0,
            jieba_hmm: false,
            mark_tokens: false,
            head_words: 0,
        }
    }
}

impl FeatureConfig {
    /// Whether the features extracted under `self` contain every feature a model trained
    /// under `other` looks up. Head features are hashed under their own kind, so a model
    /// without them ignores them; any other difference changes the features themselves.
    pub fn covers(&self, other: &FeatureConfig) -> bool {
        let head_ok = other.head_words == 0 || other.head_words == self.head_words;
        head_ok
            && FeatureConfig {
                head_words: self.head_words,
                ..other.clone()
            } == *self
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Clone, Copy)]
struct Hasher(u64);

impl Hasher {
    fn new(kind: u8) -> Self {
        let mut h = Hasher(FNV_OFFSET);
        h.byte(kind);
        h
    }
    #[inline]
    fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(FNV_PRIME);
    }
    #[inline]
    fn bytes(&mut self, s: &[u8]) {
        for &b in s {
            self.byte(b);
        }
    }
    #[inline]
    fn char(&mut self, c: char) {
        if c.is_ascii() {
            // Same bytes as the UTF-8 encoding below, without the encoding.
            self.byte(c as u8);
            return;
        }
        let mut buf = [0u8; 4];
        self.bytes(c.encode_utf8(&mut buf).as_bytes());
    }
    #[inline]
    fn finish(self) -> u32 {
        // Fold the 64-bit state so both halves contribute.
        let x = self.0 ^ (self.0 >> 29) ^ (self.0 >> 47);
        (x ^ (x >> 32)) as u32
    }
}

/// FNV-1a for the per-document word table: std's SipHash costs more than the n-grams saved.
struct Fnv(Hasher);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(Hasher(FNV_OFFSET))
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.bytes(bytes);
    }
}

type WordTable<'a> = HashMap<&'a str, usize, std::hash::BuildHasherDefault<Fnv>>;

const KIND_WORD: u8 = 1;
const KIND_CJK_CHAR: u8 = 2;
const KIND_LATIN_CHAR: u8 = 3;
const KIND_HEAD_WORD: u8 = 4;

/// Receives features: block, hash, how many times it occurs (a feature may arrive more than
/// once), and a way to render its text (only called when an explanation is wanted).
pub type Sink<'s> = dyn FnMut(Block, u32, u32, &dyn Fn() -> String) + 's;

/// The text features are taken from: normalised, with marker tokens when configured.
fn marked<'a>(normalized: &'a str, cfg: &FeatureConfig) -> std::borrow::Cow<'a, str> {
    if cfg.mark_tokens {
        tokenize::mark_redactions(normalized)
    } else {
        std::borrow::Cow::Borrowed(normalized)
    }
}

/// Extract features from *normalised* text (see [`tokenize::normalize`]).
pub fn extract(normalized: &str, cfg: &FeatureConfig, sink: &mut Sink<'_>) {
    let marked = marked(normalized, cfg);
    let segments = tokenize::segments(&marked);
    let words = tokenize::words_of(&segments, cfg.jieba_hmm);
    word_features(&words, cfg, sink);
    char_features(&segments, cfg, sink);
}

/// Where a word-block feature comes from: `len` words from word `start`; `head` for the
/// head copy ([`FeatureConfig::head_words`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordSpan {
    /// Index of the first word.
    pub start: u32,
    /// Number of words.
    pub len: u8,
    /// A head feature (rendered with a leading `^`).
    pub head: bool,
}

impl WordSpan {
    /// The feature's text, from the words it was made of.
    pub fn render<W: AsRef<str>>(&self, words: &[W]) -> String {
        let start = self.start as usize;
        let span = words
            .get(start..start + usize::from(self.len))
            .unwrap_or(&[]);
        let mut s = String::from(if self.head { "^" } else { "" });
        for (i, w) in span.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(w.as_ref());
        }
        s
    }
}

/// The word-block features of a tokenised text: word n-grams, then head n-grams.
pub fn word_features<W: AsRef<str>>(words: &[W], cfg: &FeatureConfig, sink: &mut Sink<'_>) {
    word_ngrams(words, cfg, |h, span| {
        sink(Block::Word, h, 1, &|| span.render(words));
    });
}

fn word_ngrams<W: AsRef<str>>(
    words: &[W],
    cfg: &FeatureConfig,
    mut emit: impl FnMut(u32, WordSpan),
) {
    let max_n = usize::from(cfg.word_ngram_max.clamp(1, 4));
    let head = words.len().min(usize::from(cfg.head_words));
    for (kind, end) in [(KIND_WORD, words.len()), (KIND_HEAD_WORD, head)] {
        for i in 0..end {
            let mut h = Hasher::new(kind);
            for n in 1..=max_n.min(end - i) {
                if n > 1 {
                    h.byte(0x1f);
                }
                h.bytes(words[i + n - 1].as_ref().as_bytes());
                let span = WordSpan {
                    start: i as u32,
                    len: n as u8,
                    head: kind == KIND_HEAD_WORD,
                };
                emit(h.finish(), span);
            }
        }
    }
}

/// The character-block features: Han n-grams and n-grams inside padded Latin words. A Latin
/// word's n-grams are hashed once per distinct word, with its count: English repeats its
/// words, and this block is most of the features.
fn char_features(segments: &[Segment<'_>], cfg: &FeatureConfig, sink: &mut Sink<'_>) {
    let (cmin, cmax) = cfg.cjk_char_ngrams;
    let (lmin, lmax) = cfg.latin_char_ngrams;
    if cmax == 0 && lmax == 0 {
        return;
    }
    let mut chars: Vec<char> = Vec::new();
    let mut latin: Vec<(&str, u32)> = Vec::new();
    let mut seen = WordTable::default();
    for seg in segments {
        match *seg {
            Segment::Han(s) if cmax > 0 => {
                chars.clear();
                chars.extend(s.chars());
                char_ngrams(&chars, KIND_CJK_CHAR, (cmin, cmax), false, 1, sink);
            }
            Segment::Word(s) if lmax > 0 && !(cfg.mark_tokens && tokenize::is_marker(s)) => {
                match seen.get(s) {
                    Some(&i) => latin[i].1 += 1,
                    None => {
                        seen.insert(s, latin.len());
                        latin.push((s, 1));
                    }
                }
            }
            _ => {}
        }
    }
    for (word, count) in latin {
        chars.clear();
        chars.push(' ');
        chars.extend(word.chars());
        chars.push(' ');
        char_ngrams(&chars, KIND_LATIN_CHAR, (lmin, lmax), true, count, sink);
    }
}

/// N-grams of `chars` with lengths in `range`; `padded`: a lone padding space is no n-gram.
fn char_ngrams(
    chars: &[char],
    kind: u8,
    (min, max): (u8, u8),
    padded: bool,
    count: u32,
    sink: &mut Sink<'_>,
) {
    let min = usize::from(min.max(1));
    let max = usize::from(max).max(min);
    for i in 0..chars.len() {
        let mut h = Hasher::new(kind);
        for n in 1..=max {
            let Some(&c) = chars.get(i + n - 1) else {
                break;
            };
            h.char(c);
            if n < min || (padded && n == 1 && c == ' ') {
                continue;
            }
            let span = &chars[i..i + n];
            sink(Block::Char, h.finish(), count, &|| {
                span.iter().collect::<String>()
            });
        }
    }
}

/// A text's feature hashes per [`Block`], in order of occurrence with repeats, and the words
/// the text was tokenised into (to name word features later without tokenising again).
#[derive(Debug, Clone, PartialEq)]
pub struct Hashes {
    /// Per [`Block`]: `(hash, count)`; a hash may appear more than once.
    pub blocks: [Vec<(u32, u32)>; 2],
    /// Where each entry of the word block comes from (same length as `blocks[0]`).
    pub word_spans: Vec<WordSpan>,
    /// The text the features were taken from, and its words as byte ranges of it: one
    /// allocation instead of one per word.
    text: String,
    words: Vec<(u32, u32)>,
}

impl Hashes {
    /// The text's words, in order.
    pub fn words(&self) -> Vec<&str> {
        self.words
            .iter()
            .filter_map(|&(start, end)| self.text.get(start as usize..end as usize))
            .collect()
    }
}

/// Hash a normalised text's features.
pub fn hashes(normalized: &str, cfg: &FeatureConfig) -> Hashes {
    let marked = marked(normalized, cfg);
    let segments = tokenize::segments(&marked);
    let words = tokenize::words_of(&segments, cfg.jieba_hmm);
    let n_words = words.len() * usize::from(cfg.word_ngram_max.max(1));
    let mut word_block = Vec::with_capacity(n_words);
    let mut word_spans = Vec::with_capacity(n_words);
    word_ngrams(&words, cfg, |h, span| {
        word_block.push((h, 1));
        word_spans.push(span);
    });
    let mut char_block = Vec::with_capacity(marked.len() * 2);
    char_features(&segments, cfg, &mut |_, h, c, _| char_block.push((h, c)));
    // Every word is a slice of `marked` (see `tokenize::words_of`): keep its byte range.
    let base = marked.as_ptr() as usize;
    let words = words
        .iter()
        .map(|w| {
            let start = (w.as_ptr() as usize).saturating_sub(base);
            (start as u32, (start + w.len()) as u32)
        })
        .collect();
    Hashes {
        blocks: [word_block, char_block],
        word_spans,
        text: marked.into_owned(),
        words,
    }
}

/// Sparse counts of a text's features: sorted `(hash, count)` pairs per block.
pub fn counts(normalized: &str, cfg: &FeatureConfig) -> [Vec<(u32, f32)>; 2] {
    hashes(normalized, cfg).blocks.map(|mut v| {
        v.sort_unstable_by_key(|&(h, _)| h);
        let mut out: Vec<(u32, f32)> = Vec::with_capacity(v.len());
        for (h, n) in v {
            match out.last_mut() {
                Some((last, c)) if *last == h => *c += n as f32,
                _ => out.push((h, n as f32)),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_deterministic_and_explainable() {
        let cfg = FeatureConfig {
            latin_char_ngrams: (2, 4),
            ..FeatureConfig::default()
        };
        let text = tokenize::normalize("信用卡被盗刷 credit card fraud");
        let a = counts(&text, &cfg);
        let b = counts(&text, &cfg);
        assert_eq!(a, b);
        assert!(!a[0].is_empty() && !a[1].is_empty());
        let mut seen = Vec::new();
        extract(&text, &cfg, &mut |_, _, _, render| seen.push(render()));
        assert!(seen.contains(&"credit card".to_string()), "{seen:?}");
        assert!(
            seen.contains(&"盗刷".to_string()) || seen.contains(&"被盗".to_string()),
            "{seen:?}"
        );
        assert!(seen.contains(&" cr".to_string()), "{seen:?}");
    }

    #[test]
    fn empty_text_has_no_features() {
        let c = hashes("", &FeatureConfig::default());
        assert!(c.blocks[0].is_empty() && c.blocks[1].is_empty() && c.words().is_empty());
    }
}
