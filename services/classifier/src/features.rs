//! Feature extraction: hashed word n-grams and character n-grams of normalised text.
//!
//! Every feature is a 32-bit hash of (feature kind, token bytes), computed with FNV-1a so the
//! same text gives the same features on every machine and in every release. The model keeps
//! only the hashes it saw often enough in training (its vocabulary), so collisions among kept
//! features are rare and unseen features cost nothing.

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

const KIND_WORD: u8 = 1;
const KIND_CJK_CHAR: u8 = 2;
const KIND_LATIN_CHAR: u8 = 3;
const KIND_HEAD_WORD: u8 = 4;

/// Receives every feature occurrence: its block, its hash, and a way to render its text
/// (only called when an explanation is wanted).
pub type Sink<'s> = dyn FnMut(Block, u32, &dyn Fn() -> String) + 's;

/// Extract features from *normalised* text (see [`tokenize::normalize`]).
pub fn extract(normalized: &str, cfg: &FeatureConfig, sink: &mut Sink<'_>) {
    let marked = if cfg.mark_tokens {
        tokenize::mark_redactions(normalized)
    } else {
        std::borrow::Cow::Borrowed(normalized)
    };
    let normalized: &str = &marked;
    let words = tokenize::words(normalized, cfg.jieba_hmm);
    let max_n = usize::from(cfg.word_ngram_max.clamp(1, 4));
    for i in 0..words.len() {
        let mut h = Hasher::new(KIND_WORD);
        for n in 1..=max_n {
            let Some(w) = words.get(i + n - 1) else { break };
            if n > 1 {
                h.byte(0x1f);
            }
            h.bytes(w.as_bytes());
            let span = &words[i..i + n];
            sink(Block::Word, h.finish(), &|| span.join(" "));
        }
    }
    let head = words.len().min(usize::from(cfg.head_words));
    for i in 0..head {
        let mut h = Hasher::new(KIND_HEAD_WORD);
        for n in 1..=max_n {
            if i + n > head {
                break;
            }
            if n > 1 {
                h.byte(0x1f);
            }
            h.bytes(words[i + n - 1].as_bytes());
            let span = &words[i..i + n];
            sink(Block::Word, h.finish(), &|| format!("^{}", span.join(" ")));
        }
    }
    let (cmin, cmax) = cfg.cjk_char_ngrams;
    let (lmin, lmax) = cfg.latin_char_ngrams;
    if cmax == 0 && lmax == 0 {
        return;
    }
    let mut chars: Vec<char> = Vec::new();
    for seg in tokenize::segments(normalized) {
        let (kind, min, max, padded) = match seg {
            Segment::Han(s) => {
                if cmax == 0 {
                    continue;
                }
                chars.clear();
                chars.extend(s.chars());
                (KIND_CJK_CHAR, cmin.max(1), cmax, false)
            }
            Segment::Word(s) => {
                if lmax == 0 || (cfg.mark_tokens && tokenize::is_marker(s)) {
                    continue;
                }
                chars.clear();
                chars.push(' ');
                chars.extend(s.chars());
                chars.push(' ');
                (KIND_LATIN_CHAR, lmin.max(1), lmax, true)
            }
        };
        let (min, max) = (usize::from(min), usize::from(max.max(min)));
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
                sink(Block::Char, h.finish(), &|| span.iter().collect::<String>());
            }
        }
    }
}

/// Sparse counts of a text's features: sorted `(hash, count)` pairs per block.
pub fn counts(normalized: &str, cfg: &FeatureConfig) -> [Vec<(u32, f32)>; 2] {
    let mut raw: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    extract(normalized, cfg, &mut |b, h, _| raw[b as usize].push(h));
    raw.map(|mut v| {
        v.sort_unstable();
        let mut out: Vec<(u32, f32)> = Vec::with_capacity(v.len());
        for h in v {
            match out.last_mut() {
                Some((last, c)) if *last == h => *c += 1.0,
                _ => out.push((h, 1.0)),
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
        extract(&text, &cfg, &mut |_, _, render| seen.push(render()));
        assert!(seen.contains(&"credit card".to_string()), "{seen:?}");
        assert!(
            seen.contains(&"盗刷".to_string()) || seen.contains(&"被盗".to_string()),
            "{seen:?}"
        );
        assert!(seen.contains(&" cr".to_string()), "{seen:?}");
    }

    #[test]
    fn empty_text_has_no_features() {
        let c = counts("", &FeatureConfig::default());
        assert!(c[0].is_empty() && c[1].is_empty());
    }
}
