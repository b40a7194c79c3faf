//! The Chinese cause lexicon: a cold-start cause classifier from domain knowledge
//! (`lexicon/zh-causes-v1.toml`, embedded), not fitted to any labelled data.
//!
//! Each entry is a list of phrases pointing at a taxonomy cause with a tier — decisive
//! (names the cause outright), strong (usually is the grievance) or weak (often only context)
//! — and cites the regulation or industry category it reflects. The cause with the strongest
//! evidence wins; its confidence is declared in the file per kind of decision (decisive and
//! uncontested, contested, strong, tied, weak), so only uncontested decisive evidence clears a
//! 0.9 target precision. Negated phrases ([`Negation`]) do not count. An annual rate above the
//! file's limit (24 %) is decisive evidence of a pricing complaint.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Location, Result};
use crate::negation::Negation;
use crate::rules::{Evidence, Reason, fold};
use crate::taxonomy::{Dimension, Taxonomy};

/// The embedded default lexicon.
pub const EMBEDDED_LEXICON: &str = include_str!("../lexicon/zh-causes-v1.toml");

/// What one matched phrase says about its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Often only context or a demand.
    Weak = 1,
    /// Usually is the grievance.
    Strong = 2,
    /// Names the cause outright.
    Decisive = 3,
}

impl Tier {
    /// `weak`, `strong` or `decisive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Weak => "weak",
            Tier::Strong => "strong",
            Tier::Decisive => "decisive",
        }
    }
}

/// The kind of a lexicon decision, which sets its confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Decisive evidence; nothing stronger than weak for another cause.
    Decisive,
    /// Decisive evidence, strong evidence for another cause too.
    DecisiveContested,
    /// Strong evidence, nothing stronger than weak elsewhere.
    Strong,
    /// Another cause has evidence of the same tier.
    Contested,
    /// Weak evidence only.
    Weak,
}

/// Declared confidence per kind of decision.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confidences {
    /// [`DecisionKind::Decisive`].
    pub decisive: f32,
    /// [`DecisionKind::DecisiveContested`].
    pub decisive_contested: f32,
    /// [`DecisionKind::Strong`].
    pub strong: f32,
    /// [`DecisionKind::Contested`].
    pub tied: f32,
    /// [`DecisionKind::Weak`].
    pub weak: f32,
}

impl Confidences {
    fn of(&self, kind: DecisionKind) -> f32 {
        match kind {
            DecisionKind::Decisive => self.decisive,
            DecisionKind::DecisiveContested => self.decisive_contested,
            DecisionKind::Strong => self.strong,
            DecisionKind::Contested => self.tied,
            DecisionKind::Weak => self.weak,
        }
    }
}

/// One lexicon entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Entry id, e.g. `collection.abuse`.
    pub id: String,
    /// Taxonomy cause code.
    pub cause: String,
    /// What a match says.
    pub tier: Tier,
    /// The regulation or industry category it reflects.
    pub cites: String,
    /// Its phrases (folded).
    pub patterns: Vec<String>,
}

/// A phrase found in a complaint.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Index of the entry in [`Lexicon::entries`].
    pub entry: usize,
    /// Where (in the folded text).
    pub evidence: Evidence,
    /// Whether a negation denies it.
    pub negated: bool,
}

/// The lexicon's cause for a complaint.
#[derive(Debug, Clone, PartialEq)]
pub struct CauseDecision {
    /// Taxonomy cause code.
    pub code: String,
    /// Declared confidence of this kind of decision.
    pub confidence: f32,
    /// Which kind of decision.
    pub kind: DecisionKind,
    /// Evidence for the cause, competing causes and denied phrases.
    pub reasons: Vec<Reason>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: Spanned<String>,
    cause: Spanned<String>,
    tier: Tier,
    cites: Spanned<String>,
    patterns: Spanned<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    cause: Spanned<String>,
    triggers: Vec<String>,
    limit_percent: f32,
    window: usize,
    cites: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLexicon {
    version: String,
    taxonomy: String,
    confidence: Spanned<Confidences>,
    #[serde(default)]
    rate: Option<Spanned<RawRate>>,
    #[serde(default)]
    entry: Vec<RawEntry>,
}

/// The rate rule: a percentage above `limit` after a rate word.
#[derive(Debug, Clone)]
struct RateRule {
    cause: String,
    limit: f32,
    window: usize,
    cites: String,
    triggers: AhoCorasick,
}

/// A compiled lexicon.
#[derive(Debug, Clone)]
pub struct Lexicon {
    version: String,
    entries: Vec<Entry>,
    confidence: Confidences,
    matcher: Option<AhoCorasick>,
    /// Entry of each pattern of `matcher`.
    owner: Vec<usize>,
    rate: Option<RateRule>,
}

fn automaton(words: &[String]) -> std::result::Result<AhoCorasick, String> {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::DFA))
        .build(words)
        .map_err(|e| e.to_string())
}

/// Per cause: strongest tier, distinct phrases at that tier, first position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    tier: Tier,
    distinct: usize,
    first: usize,
}

impl Lexicon {
    /// The embedded default lexicon, checked against `taxonomy`.
    pub fn embedded(taxonomy: &Taxonomy) -> Result<Lexicon> {
        Lexicon::parse_named(EMBEDDED_LEXICON, "<embedded zh-causes-v1.toml>", taxonomy)
    }

    /// Read a lexicon file, checked against `taxonomy`.
    pub fn load(path: impl AsRef<Path>, taxonomy: &Taxonomy) -> Result<Lexicon> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Lexicon::parse_named(&src, &path.display().to_string(), taxonomy)
    }

    /// Parse lexicon TOML: every cause must be a cause of `taxonomy`, every id unique, no
    /// phrase in two entries, every confidence in [0, 1].
    pub fn parse_named(source: &str, file: &str, taxonomy: &Taxonomy) -> Result<Lexicon> {
        let at = |offset: usize, field: Option<String>, message: String| Error::Data {
            location: Location::at(file, source, offset, field),
            message,
        };
        let raw: RawLexicon = toml::from_str(source).map_err(|e| {
            at(
                e.span().map(|s| s.start).unwrap_or(0),
                None,
                e.message().trim().to_string(),
            )
        })?;
        let c = raw.confidence.get_ref();
        let all = [c.decisive, c.decisive_contested, c.strong, c.tied, c.weak];
        if all.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(at(
                raw.confidence.span().start,
                Some("confidence".into()),
                "every confidence must be in [0, 1]".into(),
            ));
        }
        let (entries, patterns, owner) = parse_entries(&raw.entry, taxonomy, &at)?;
        let rate = match &raw.rate {
            Some(r) => Some(parse_rate(r, taxonomy, &at)?),
            None => None,
        };
        let matcher = if patterns.is_empty() {
            None
        } else {
            Some(automaton(&patterns).map_err(|m| at(0, Some("entry.patterns".into()), m))?)
        };
        let _ = raw.taxonomy;
        Ok(Lexicon {
            version: raw.version,
            entries,
            confidence: *c,
            matcher,
            owner,
            rate,
        })
    }

    /// Version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The entries.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Declared confidences.
    pub fn confidences(&self) -> &Confidences {
        &self.confidence
    }

    /// Every phrase found in folded text ([`fold`]), leftmost-longest, with whether a
    /// negation denies it.
    pub fn hits(&self, folded: &str, negation: Option<&Negation>) -> Vec<Hit> {
        let Some(m) = &self.matcher else {
            return Vec::new();
        };
        m.find_iter(folded)
            .filter_map(|m| {
                let entry = *self.owner.get(m.pattern().as_usize())?;
                Some(Hit {
                    entry,
                    evidence: Evidence {
                        start: m.start(),
                        end: m.end(),
                        text: folded.get(m.start()..m.end())?.to_string(),
                    },
                    negated: negation.is_some_and(|n| n.is_negated(folded, m.start())),
                })
            })
            .collect()
    }

    /// The first rate above the limit after a (not negated) rate word: its evidence.
    fn rate_hit(&self, folded: &str, negation: Option<&Negation>) -> Option<Evidence> {
        let rule = self.rate.as_ref()?;
        rule.triggers.find_iter(folded).find_map(|m| {
            if negation.is_some_and(|n| n.is_negated(folded, m.start())) {
                return None;
            }
            let after = folded.get(m.end()..)?;
            let (len, value) = first_percentage(after, rule.window)?;
            (value > rule.limit).then(|| Evidence {
                start: m.start(),
                end: m.end() + len,
                text: folded
                    .get(m.start()..m.end() + len)
                    .unwrap_or("")
                    .to_string(),
            })
        })
    }

    /// Decide the cause of folded text, or `None` when no phrase is asserted.
    pub fn decide(&self, folded: &str, negation: Option<&Negation>) -> Option<CauseDecision> {
        let hits = self.hits(folded, negation);
        let rate = self.rate_hit(folded, negation);
        let mut standings: Standings<'_> = BTreeMap::new();
        for h in hits.iter().filter(|h| !h.negated) {
            if let Some(e) = self.entries.get(h.entry) {
                note(
                    &mut standings,
                    &e.cause,
                    e.tier,
                    &h.evidence.text,
                    h.evidence.start,
                );
            }
        }
        if let (Some(rule), Some(ev)) = (&self.rate, &rate) {
            note(
                &mut standings,
                &rule.cause,
                Tier::Decisive,
                &ev.text,
                ev.start,
            );
        }
        let mut ranked: Vec<(&str, Standing)> =
            standings.iter().map(|(c, (s, _))| (*c, *s)).collect();
        ranked.sort_by(|a, b| {
            (b.1.tier, b.1.distinct)
                .cmp(&(a.1.tier, a.1.distinct))
                .then(a.1.first.cmp(&b.1.first))
        });
        let (code, top) = *ranked.first()?;
        let kind = kind_of(top, ranked.get(1).map(|r| r.1));
        let reasons = self.reasons(code, &hits, rate.as_ref(), &ranked);
        Some(CauseDecision {
            code: code.to_string(),
            confidence: self.confidence.of(kind),
            kind,
            reasons,
        })
    }

    /// The winner's evidence (one reason per entry), the competing causes, and denied phrases.
    fn reasons(
        &self,
        code: &str,
        hits: &[Hit],
        rate: Option<&Evidence>,
        ranked: &[(&str, Standing)],
    ) -> Vec<Reason> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for h in hits.iter().filter(|h| !h.negated) {
            let Some(e) = self.entries.get(h.entry).filter(|e| e.cause == code) else {
                continue;
            };
            if seen.insert(h.entry) {
                out.push(Reason {
                    code: format!("lexicon:{}", e.id),
                    detail: format!(
                        "{} evidence for {}: “{}” ({})",
                        e.tier.as_str(),
                        e.cause,
                        h.evidence.text,
                        e.cites
                    ),
                    evidence: Some(h.evidence.clone()),
                });
            }
        }
        if let (Some(rule), Some(ev)) = (&self.rate, rate)
            && rule.cause == code
        {
            out.push(Reason {
                code: "lexicon:pricing.rate-above-limit".into(),
                detail: format!("rate above {}% “{}” ({})", rule.limit, ev.text, rule.cites),
                evidence: Some(ev.clone()),
            });
        }
        let others: Vec<String> = ranked
            .iter()
            .skip(1)
            .map(|(c, s)| format!("{c} ({}, {})", s.tier.as_str(), s.distinct))
            .collect();
        if !others.is_empty() {
            out.push(Reason {
                code: "lexicon:competing".into(),
                detail: format!("other causes with evidence: {}", others.join(", ")),
                evidence: None,
            });
        }
        for h in hits.iter().filter(|h| h.negated) {
            if let Some(e) = self.entries.get(h.entry) {
                out.push(Reason {
                    code: format!("negated:{}", e.id),
                    detail: format!("“{}” is denied in the text, not counted", h.evidence.text),
                    evidence: Some(h.evidence.clone()),
                });
            }
        }
        out
    }
}

type Standings<'a> = BTreeMap<&'a str, (Standing, HashSet<&'a str>)>;

/// Count a phrase for its cause: a stronger tier resets the count of distinct phrases.
fn note<'a>(
    standings: &mut Standings<'a>,
    cause: &'a str,
    tier: Tier,
    text: &'a str,
    start: usize,
) {
    let slot = standings.entry(cause).or_insert((
        Standing {
            tier,
            distinct: 0,
            first: start,
        },
        HashSet::new(),
    ));
    if tier > slot.0.tier {
        slot.0.tier = tier;
        slot.1.clear();
        slot.0.distinct = 0;
    }
    if tier == slot.0.tier && slot.1.insert(text) {
        slot.0.distinct += 1;
    }
    slot.0.first = slot.0.first.min(start);
}

/// The kind of decision for the winner's standing against the runner-up's.
fn kind_of(top: Standing, runner: Option<Standing>) -> DecisionKind {
    let r = runner.map(|r| (r.tier, r.distinct));
    let same_tier = r.is_some_and(|(t, _)| t == top.tier);
    match top.tier {
        Tier::Weak => DecisionKind::Weak,
        _ if same_tier => DecisionKind::Contested,
        Tier::Decisive if r.is_some_and(|(t, _)| t == Tier::Strong) => {
            DecisionKind::DecisiveContested
        }
        Tier::Decisive => DecisionKind::Decisive,
        Tier::Strong => DecisionKind::Strong,
    }
}

/// The first `<number>%` within `window` characters of `text` (a number of digits with at
/// most one decimal point): its byte length from the start of `text` and its value.
fn first_percentage(text: &str, window: usize) -> Option<(usize, f32)> {
    let chars: Vec<(usize, char)> = text.char_indices().take(window + 8).collect();
    let mut i = 0;
    while i < chars.len().min(window) {
        let (start, c) = chars[i];
        if !c.is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && (chars[j].1.is_ascii_digit() || chars[j].1 == '.') {
            j += 1;
        }
        let (end, next) = chars.get(j).copied()?;
        if next == '%' {
            let value: f32 = text.get(start..end)?.parse().ok()?;
            return Some((end + next.len_utf8(), value));
        }
        i = j;
    }
    None
}

type Parsed = (Vec<Entry>, Vec<String>, Vec<usize>);

fn parse_entries(
    raw: &[RawEntry],
    taxonomy: &Taxonomy,
    at: &dyn Fn(usize, Option<String>, String) -> Error,
) -> Result<Parsed> {
    let mut entries = Vec::new();
    let mut patterns = Vec::new();
    let mut owner = Vec::new();
    let mut ids = HashSet::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (i, r) in raw.iter().enumerate() {
        let field = |f: &str| Some(format!("entry[{i}].{f}"));
        let id = r.id.get_ref().trim();
        if id.is_empty() || !ids.insert(id.to_string()) {
            return Err(at(
                r.id.span().start,
                field("id"),
                format!("empty or duplicate id `{id}`"),
            ));
        }
        let cause = r.cause.get_ref().trim();
        if taxonomy.entry(Dimension::Cause, cause).is_none() {
            return Err(at(
                r.cause.span().start,
                field("cause"),
                format!(
                    "`{cause}` is not a cause of taxonomy {}",
                    taxonomy.version()
                ),
            ));
        }
        if r.cites.get_ref().trim().is_empty() {
            return Err(at(
                r.cites.span().start,
                field("cites"),
                "must cite its source".into(),
            ));
        }
        let folded: Vec<String> = r
            .patterns
            .get_ref()
            .iter()
            .map(|p| fold(p.trim()))
            .filter(|p| !p.is_empty())
            .collect();
        if folded.is_empty() {
            return Err(at(
                r.patterns.span().start,
                field("patterns"),
                "needs a phrase".into(),
            ));
        }
        for p in &folded {
            if let Some(other) = seen.insert(p.clone(), id.to_string()) {
                return Err(at(
                    r.patterns.span().start,
                    field("patterns"),
                    format!("phrase `{p}` is also in entry `{other}`"),
                ));
            }
            patterns.push(p.clone());
            owner.push(i);
        }
        entries.push(Entry {
            id: id.to_string(),
            cause: cause.to_string(),
            tier: r.tier,
            cites: r.cites.get_ref().trim().to_string(),
            patterns: folded,
        });
    }
    Ok((entries, patterns, owner))
}

fn parse_rate(
    r: &Spanned<RawRate>,
    taxonomy: &Taxonomy,
    at: &dyn Fn(usize, Option<String>, String) -> Error,
) -> Result<RateRule> {
    let raw = r.get_ref();
    let start = r.span().start;
    let cause = raw.cause.get_ref().trim();
    if taxonomy.entry(Dimension::Cause, cause).is_none() {
        return Err(at(
            raw.cause.span().start,
            Some("rate.cause".into()),
            format!("`{cause}` is not a cause"),
        ));
    }
    let triggers: Vec<String> = raw
        .triggers
        .iter()
        .map(|t| fold(t.trim()))
        .filter(|t| !t.is_empty())
        .collect();
    if triggers.is_empty() || !(raw.limit_percent.is_finite() && raw.limit_percent > 0.0) {
        return Err(at(
            start,
            Some("rate".into()),
            "needs triggers and a positive limit_percent".into(),
        ));
    }
    if raw.window == 0 || raw.window > 64 {
        return Err(at(
            start,
            Some("rate.window".into()),
            "window must be 1 to 64".into(),
        ));
    }
    Ok(RateRule {
        cause: cause.to_string(),
        limit: raw.limit_percent,
        window: raw.window,
        cites: raw.cites.clone(),
        triggers: automaton(&triggers).map_err(|m| at(start, Some("rate.triggers".into()), m))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(text: &str) -> Option<CauseDecision> {
        let t = Taxonomy::embedded().expect("taxonomy");
        let lex = Lexicon::embedded(&t).expect("lexicon");
        let neg = Negation::embedded().expect("negation");
        lex.decide(&fold(text), Some(&neg))
    }

    fn code(text: &str) -> Option<(String, DecisionKind)> {
        decide(text).map(|d| (d.code, d.kind))
    }

    #[test]
    fn every_cause_group_decides_its_cause() {
        let d = |t: &str| code(t).map(|(c, _)| c);
        assert_eq!(d("催收人员爆通讯录，还辱骂我").as_deref(), Some("C12"));
        assert_eq!(d("借款被收取砍头息").as_deref(), Some("C11"));
        assert_eq!(d("合同里全是霸王条款").as_deref(), Some("C08"));
        assert_eq!(d("平台虚假宣传，诱导我借款").as_deref(), Some("C04"));
        assert_eq!(d("没打招呼就上报征信了").as_deref(), Some("C13"));
        assert_eq!(d("还款后仍被重复扣款").as_deref(), Some("C09"));
        assert_eq!(
            d("我的个人信息被泄露，天天接到贷款推销").as_deref(),
            Some("C10")
        );
        assert_eq!(d("客服互相推诿").as_deref(), Some("C01"));
        assert_eq!(d("办理贷款时被强制购买保险").as_deref(), Some("C07"));
        assert_eq!(d("今天天气很好"), None);
    }

    #[test]
    fn confidence_follows_the_evidence() {
        let t = Taxonomy::embedded().expect("taxonomy");
        let c = *Lexicon::embedded(&t).expect("lexicon").confidences();
        let conf = |text: &str| decide(text).map(|d| d.confidence);
        // Decisive and alone: clears 0.9; weak context alongside does not contest it.
        assert_eq!(conf("暴力催收，客服也不管"), Some(c.decisive_contested));
        assert_eq!(conf("暴力催收，联系客服未处理"), Some(c.decisive));
        assert!(c.decisive >= 0.9 && c.strong < 0.9 && c.decisive_contested < 0.9);
        // Two decisive causes: contested, left to a specialist.
        assert_eq!(
            code("被暴力催收，还收取砍头息").map(|x| x.1),
            Some(DecisionKind::Contested)
        );
        // Strong only.
        assert_eq!(
            code("催收电话每天打来").map(|x| x.1),
            Some(DecisionKind::Strong)
        );
        assert_eq!(code("联系客服").map(|x| x.1), Some(DecisionKind::Weak));
    }

    #[test]
    fn negated_phrases_are_not_evidence() {
        // “没有催收”, “并未”, “不是…”: not collection.
        assert_eq!(
            code("平台没有催收，只是利息太高").map(|x| x.0).as_deref(),
            Some("C11")
        );
        assert_eq!(code("对方并未暴力催收"), None);
        assert_eq!(code("这不是暴力催收，是正常提醒"), None);
        let d = decide("我没有被爆通讯录，但是被收取砍头息").expect("decided");
        assert_eq!((d.code.as_str(), d.kind), ("C11", DecisionKind::Decisive));
        assert!(
            d.reasons
                .iter()
                .any(|r| r.code == "negated:collection.abuse")
        );
        // A negation in another clause, or a turn (却), leaves the assertion.
        assert_eq!(
            code("我没有逾期却被暴力催收").map(|x| x.0).as_deref(),
            Some("C12")
        );
        // Quoted denial by the firm: denied inside the quotation only.
        let d = decide("客服说“我们没有暴力催收”，可他们天天爆通讯录").expect("decided");
        assert_eq!((d.code.as_str(), d.kind), ("C12", DecisionKind::Decisive));
        assert_eq!(
            d.reasons
                .iter()
                .filter(|r| r.code.starts_with("negated:"))
                .count(),
            1
        );
    }

    #[test]
    fn rates_above_the_limit_are_pricing_complaints() {
        let d = decide("实际年化利率高达35.9%").expect("decided");
        assert_eq!((d.code.as_str(), d.kind), ("C11", DecisionKind::Decisive));
        assert!(d.reasons.iter().any(|r| {
            r.code == "lexicon:pricing.rate-above-limit"
                && r.evidence
                    .as_ref()
                    .is_some_and(|e| e.text.ends_with("35.9%"))
        }));
        // At or below the limit: only the rate word (strong).
        assert_eq!(
            code("年化利率为7.2%").map(|x| x.1),
            Some(DecisionKind::Strong)
        );
        assert_eq!(first_percentage("高达 36% 以上", 12), Some((10, 36.0)));
        assert_eq!(first_percentage("12.5.3%", 12), None);
        assert_eq!(first_percentage("没有数字", 12), None);
    }

    #[test]
    fn the_file_is_checked() {
        let t = Taxonomy::embedded().expect("taxonomy");
        let head = "version = \"l\"\ntaxonomy = \"t\"\n[confidence]\ndecisive = 0.9\ndecisive_contested = 0.7\nstrong = 0.8\ntied = 0.4\nweak = 0.4\n";
        let entry = |cause: &str, pats: &str| {
            format!(
                "[[entry]]\nid = \"a{cause}\"\ncause = \"{cause}\"\ntier = \"strong\"\ncites = \"x\"\npatterns = [{pats}]\n"
            )
        };
        let ok = format!("{head}{}", entry("C12", "\"催收\""));
        assert!(Lexicon::parse_named(&ok, "l.toml", &t).is_ok());
        let bad_cause = format!("{head}{}", entry("B01", "\"催收\""));
        match Lexicon::parse_named(&bad_cause, "l.toml", &t) {
            Err(Error::Data { location, message }) => {
                assert_eq!(
                    location.field.as_deref(),
                    Some("entry[0].cause"),
                    "{message}"
                );
            }
            other => panic!("expected a data error, got {other:?}"),
        }
        let twice = format!(
            "{head}{}{}",
            entry("C12", "\"催收\""),
            entry("C11", "\"催收\"")
        );
        let e = Lexicon::parse_named(&twice, "l.toml", &t).expect_err("phrase twice");
        assert!(e.to_string().contains("also in entry"), "{e}");
        let range = ok.replace("weak = 0.4", "weak = 1.4");
        assert!(Lexicon::parse_named(&range, "l.toml", &t).is_err());
        // Every embedded entry cites its source and points at a cause.
        let lex = Lexicon::embedded(&t).expect("lexicon");
        assert!(lex.entries().iter().all(|e| !e.cites.is_empty()));
        assert!(lex.entries().len() >= 20);
    }
}
