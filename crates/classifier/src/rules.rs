//! Keyword rules: evidence for a category or a cause, Chinese and English, from
//! `rules/rules-v1.toml` (embedded). Patterns are compiled once into one Aho-Corasick automaton.
//! A rule marked `certain` overrides the model; the others only add evidence.

use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Location, Result};
use crate::negation::Negation;
use crate::taxonomy::{Dimension, Taxonomy};
use crate::tokenize;

/// The embedded default rules file.
pub const EMBEDDED_RULES: &str = include_str!("../rules/rules-v1.toml");

/// Where a rule or signal matched: byte offsets into the *folded* text (half-width, lower
/// case — see [`fold`]) and the matched text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Start byte offset in the folded text.
    pub start: usize,
    /// End byte offset in the folded text.
    pub end: usize,
    /// The matched text.
    pub text: String,
}

/// Why a decision was made: a code (`rule:cat.mortgage`, `model:cfpb-product-v1`,
/// `signal:fraud_or_unauthorised`...), a human-readable detail, and evidence when there is a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// Machine-readable reason code.
    pub code: String,
    /// Human-readable detail.
    pub detail: String,
    /// Matched span, when the reason comes from the text.
    pub evidence: Option<Evidence>,
}

/// Fold text for matching: half-width, lower case, at most [`tokenize::MAX_CHARS`] characters.
/// Numbers are kept (unlike [`tokenize::normalize`]) so `12378` can match.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(tokenize::MAX_CHARS * 4));
    for c in text.chars().take(tokenize::MAX_CHARS) {
        let c = match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            _ => c,
        };
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if c == '\u{2019}' {
            out.push('\'');
        } else if c.is_uppercase() {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Clone)]
struct PatternMeta {
    owner: usize,
    check_start: bool,
    check_end: bool,
    /// Contains Han characters: Chinese negation applies to it.
    han: bool,
}

/// A compiled set of patterns, each belonging to an owner (a rule or a signal).
#[derive(Debug, Clone)]
pub struct Matcher {
    ac: Option<AhoCorasick>,
    meta: Vec<PatternMeta>,
}

/// A pattern match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of the owner.
    pub owner: usize,
    /// Where it matched.
    pub evidence: Evidence,
    /// The pattern contains Han characters (Chinese negation scope applies to it).
    pub han: bool,
}

impl Matcher {
    /// Compile `(owner, pattern)` pairs. Patterns are folded; Latin patterns match whole words
    /// unless they end with `*` (prefix).
    pub fn new(patterns: &[(usize, String)]) -> std::result::Result<Matcher, String> {
        let mut pats = Vec::new();
        let mut meta = Vec::new();
        for (owner, p) in patterns {
            let prefix = p.ends_with('*');
            let p = fold(p.trim_end_matches('*').trim());
            if p.is_empty() {
                continue;
            }
            let first = p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
            let last = p.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
            meta.push(PatternMeta {
                owner: *owner,
                check_start: first,
                check_end: last && !prefix,
                han: p.chars().any(tokenize::is_han),
            });
            pats.push(p);
        }
        let ac = if pats.is_empty() {
            None
        } else {
            Some(
                // A DFA: a few hundred patterns make a small one, and it scans every
                // complaint twice (rules, severity) with ~40 % fewer instructions than the NFA.
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&pats)
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(Matcher { ac, meta })
    }

    /// Every match (overlapping) in folded text.
    pub fn find(&self, folded: &str) -> Vec<Match> {
        let Some(ac) = &self.ac else {
            return Vec::new();
        };
        let bytes = folded.as_bytes();
        let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
        let mut out = Vec::new();
        for m in ac.find_overlapping_iter(folded) {
            let Some(meta) = self.meta.get(m.pattern().as_usize()) else {
                continue;
            };
            if meta.check_start && m.start() > 0 && word(bytes.get(m.start() - 1)) {
                continue;
            }
            if meta.check_end && word(bytes.get(m.end())) {
                continue;
            }
            out.push(Match {
                owner: meta.owner,
                evidence: Evidence {
                    start: m.start(),
                    end: m.end(),
                    text: folded.get(m.start()..m.end()).unwrap_or("").to_string(),
                },
                han: meta.han,
            });
        }
        out
    }
}

/// One keyword rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Rule id, e.g. `cat.mortgage`.
    pub id: String,
    /// Category or cause.
    pub target: Dimension,
    /// Taxonomy code it points at.
    pub code: String,
    /// Weight among competing rules.
    pub weight: f32,
    /// Overrides the model when it fires.
    pub certain: bool,
    /// Its patterns.
    pub patterns: Vec<String>,
}

/// A rule that fired, with the first place it matched and how many times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleHit {
    /// The rule's id.
    pub rule: String,
    /// Category or cause.
    pub target: Dimension,
    /// Taxonomy code.
    pub code: String,
    /// Weight × (1 + ln(matches)).
    pub score: f32,
    /// Whether the rule is certain.
    pub certain: bool,
    /// First match.
    pub evidence: Evidence,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    target: Dimension,
    code: Spanned<String>,
    #[serde(default = "one")]
    weight: f32,
    #[serde(default)]
    certain: bool,
    patterns: Spanned<Vec<String>>,
}

fn one() -> f32 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    version: String,
    #[serde(default)]
    rule: Vec<RawRule>,
}

/// A compiled rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {
    version: String,
    rules: Vec<Rule>,
    matcher: Matcher,
}

impl RuleSet {
    /// The embedded default rules, checked against `taxonomy`.
    pub fn embedded(taxonomy: &Taxonomy) -> Result<RuleSet> {
        RuleSet::parse_named(EMBEDDED_RULES, "<embedded rules-v1.toml>", taxonomy)
    }

    /// Read a rules file, checked against `taxonomy`.
    pub fn load(path: impl AsRef<Path>, taxonomy: &Taxonomy) -> Result<RuleSet> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        RuleSet::parse_named(&src, &path.display().to_string(), taxonomy)
    }

    /// Parse rules TOML; every rule's code must exist in `taxonomy` under its target dimension.
    pub fn parse_named(source: &str, file: &str, taxonomy: &Taxonomy) -> Result<RuleSet> {
        let raw: RawRules = toml::from_str(source).map_err(|e| Error::Data {
            location: Location::at(file, source, e.span().map(|s| s.start).unwrap_or(0), None),
            message: e.message().trim().to_string(),
        })?;
        let mut rules = Vec::new();
        let mut patterns = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for (i, r) in raw.rule.iter().enumerate() {
            let fail = |span: std::ops::Range<usize>, field: &str, message: String| Error::Data {
                location: Location::at(
                    file,
                    source,
                    span.start,
                    Some(format!("rule[{i}].{field}")),
                ),
                message,
            };
            if !ids.insert(r.id.get_ref().clone()) || r.id.get_ref().trim().is_empty() {
                return Err(fail(
                    r.id.span(),
                    "id",
                    format!("empty or duplicate rule id `{}`", r.id.get_ref()),
                ));
            }
            if taxonomy.entry(r.target, r.code.get_ref()).is_none() {
                return Err(fail(
                    r.code.span(),
                    "code",
                    format!(
                        "`{}` is not a {:?} code of the taxonomy",
                        r.code.get_ref(),
                        r.target
                    ),
                ));
            }
            if r.patterns
                .get_ref()
                .iter()
                .all(|p| p.trim().trim_end_matches('*').is_empty())
            {
                return Err(fail(
                    r.patterns.span(),
                    "patterns",
                    "needs at least one non-empty pattern".into(),
                ));
            }
            if !(r.weight.is_finite() && r.weight > 0.0) {
                return Err(fail(
                    r.id.span(),
                    "weight",
                    "must be a positive number".into(),
                ));
            }
            for p in r.patterns.get_ref() {
                patterns.push((i, p.clone()));
            }
            rules.push(Rule {
                id: r.id.get_ref().clone(),
                target: r.target,
                code: r.code.get_ref().clone(),
                weight: r.weight,
                certain: r.certain,
                patterns: r.patterns.get_ref().clone(),
            });
        }
        let matcher = Matcher::new(&patterns).map_err(|message| Error::Data {
            location: Location::at(file, source, 0, Some("rule.patterns".into())),
            message,
        })?;
        Ok(RuleSet {
            version: raw.version,
            rules,
            matcher,
        })
    }

    /// Version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Rules that fire on folded text (see [`fold`]), strongest first.
    pub fn hits(&self, folded: &str) -> Vec<RuleHit> {
        self.hits_scoped(folded, None)
    }

    /// Rules that fire on folded text, strongest first, not counting Chinese patterns that
    /// `negation` finds denied ("没有爆通讯录" fires nothing).
    pub fn hits_scoped(&self, folded: &str, negation: Option<&Negation>) -> Vec<RuleHit> {
        let mut per_rule: Vec<Option<(usize, Evidence)>> = vec![None; self.rules.len()];
        let asserted = |m: &Match| {
            !(m.han && negation.is_some_and(|n| n.is_negated(folded, m.evidence.start)))
        };
        for m in self.matcher.find(folded).into_iter().filter(asserted) {
            if let Some(slot) = per_rule.get_mut(m.owner) {
                match slot {
                    Some((n, _)) => *n += 1,
                    None => *slot = Some((1, m.evidence)),
                }
            }
        }
        let mut hits: Vec<RuleHit> = per_rule
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let (n, evidence) = s?;
                let r = self.rules.get(i)?;
                Some(RuleHit {
                    rule: r.id.clone(),
                    target: r.target,
                    code: r.code.clone(),
                    score: r.weight * (1.0 + (n as f32).ln()),
                    certain: r.certain,
                    evidence,
                })
            })
            .collect();
        hits.sort_by(|a, b| {
            b.certain
                .cmp(&a.certain)
                .then(b.score.total_cmp(&a.score))
                .then(a.rule.cmp(&b.rule))
        });
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RuleSet {
        let t = Taxonomy::embedded().expect("taxonomy");
        RuleSet::embedded(&t).expect("rules")
    }

    #[test]
    fn latin_patterns_match_whole_words_and_prefixes() {
        let m = Matcher::new(&[(0, "sue".into()), (1, "fraud*".into()), (2, "盗刷".into())])
            .expect("matcher");
        let f = fold("This issue is FRAUDULENT; I will sue. 被盗刷");
        let owners: Vec<usize> = m.find(&f).iter().map(|m| m.owner).collect();
        assert_eq!(owners, vec![1, 0, 2]);
        assert!(m.find(&fold("pursue the issue")).is_empty());
    }

    #[test]
    fn rules_fire_in_both_languages() {
        let r = rules();
        let zh = r.hits(&fold("催收人员爆通讯录，骚扰我的家人"));
        assert_eq!(
            zh.first().map(|h| (h.code.as_str(), h.certain)),
            Some(("C12", true))
        );
        let en = r.hits(&fold("My MORTGAGE servicer added escrow fees"));
        assert!(
            en.iter()
                .any(|h| h.code == "B02.01" && h.evidence.text == "mortgage")
        );
        assert!(en.iter().any(|h| h.code == "C11"));
        assert!(r.hits("").is_empty());
    }

    #[test]
    fn denied_chinese_patterns_do_not_fire() {
        let r = rules();
        let n = Negation::embedded().expect("negation");
        let certain = |t: &str| {
            r.hits_scoped(&fold(t), Some(&n))
                .iter()
                .any(|h| h.certain && h.code == "C12")
        };
        assert!(certain("催收人员爆通讯录"));
        assert!(!certain("他们并没有爆通讯录"));
        assert!(!certain("客服说“不是暴力催收”"));
        // Without a negation scope (English rules, or none given) every match counts.
        assert!(r.hits("他们并没有爆通讯录").iter().any(|h| h.certain));
    }

    #[test]
    fn rule_codes_are_checked_against_the_taxonomy() {
        let t = Taxonomy::embedded().expect("taxonomy");
        let src = "version = \"r\"\n[[rule]]\nid = \"x\"\ntarget = \"cause\"\ncode = \"B01\"\npatterns = [\"a\"]\n";
        match RuleSet::parse_named(src, "r.toml", &t) {
            Err(Error::Data { location, .. }) => {
                assert_eq!(location.line, 5);
                assert_eq!(location.field.as_deref(), Some("rule[0].code"));
            }
            other => panic!("expected a data error, got {other:?}"),
        }
    }
}
