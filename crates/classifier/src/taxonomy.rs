//! The versioned complaint taxonomy: business categories (JR/T 0169-2018 dimension B), causes
//! (dimension C), and mappings from outside label schemes (CFPB products and issues, the
//! Chinese 黑猫 categories) onto them. The data lives in `taxonomy/taxonomy-v1.toml`; a copy is
//! embedded so [`Taxonomy::embedded`] always works.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Location, Result};

/// The embedded default taxonomy file.
pub const EMBEDDED_TAXONOMY: &str = include_str!("../taxonomy/taxonomy-v1.toml");

/// Which dimension an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    /// B 业务类别 — business category.
    Category,
    /// C 投诉原因 — complaint cause.
    Cause,
}

/// One taxonomy entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Code, unique across the taxonomy (e.g. `B03.02`, `C11`).
    pub code: String,
    /// Chinese name.
    pub zh: String,
    /// English name.
    pub en: String,
    /// Parent entry, for sub-categories.
    pub parent: Option<String>,
    /// The class name as given for JR/T 0169-2018, when known.
    pub jrt_name: Option<String>,
    /// Whether `code` is the standard's official code (confirmed from a source).
    pub code_confirmed: bool,
    /// Not in the standard: an internet-finance extension.
    pub extension: bool,
}

/// A label of an outside scheme mapped onto the taxonomy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// Category code it implies, if any.
    pub category: Option<String>,
    /// Cause code it implies, if any.
    pub cause: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    code: Spanned<String>,
    zh: Spanned<String>,
    en: Spanned<String>,
    #[serde(default)]
    parent: Option<Spanned<String>>,
    #[serde(default)]
    jrt_name: Option<String>,
    code_confirmed: bool,
    #[serde(default)]
    extension: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    scheme: Spanned<String>,
    label: Spanned<String>,
    #[serde(default)]
    category: Option<Spanned<String>>,
    #[serde(default)]
    cause: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaxonomy {
    version: Spanned<String>,
    standard: String,
    #[serde(default)]
    category: Vec<RawEntry>,
    #[serde(default)]
    cause: Vec<RawEntry>,
    #[serde(default)]
    map: Vec<RawMap>,
}

/// A validated taxonomy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taxonomy {
    version: String,
    standard: String,
    categories: Vec<Entry>,
    causes: Vec<Entry>,
    by_code: HashMap<String, (Dimension, usize)>,
    maps: HashMap<(String, String), Mapping>,
}

impl Taxonomy {
    /// The embedded default taxonomy (`taxonomy-v1.toml`).
    pub fn embedded() -> Result<Taxonomy> {
        Taxonomy::parse_named(EMBEDDED_TAXONOMY, "<embedded taxonomy-v1.toml>")
    }

    /// Parse and validate taxonomy TOML.
    pub fn parse(source: &str) -> Result<Taxonomy> {
        Taxonomy::parse_named(source, "<taxonomy>")
    }

    /// Read, parse and validate a taxonomy file; errors name the file, line and field.
    pub fn load(path: impl AsRef<Path>) -> Result<Taxonomy> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Taxonomy::parse_named(&source, &path.display().to_string())
    }

    /// Parse with a file name used in error messages.
    pub fn parse_named(source: &str, file: &str) -> Result<Taxonomy> {
        let raw: RawTaxonomy = toml::from_str(source).map_err(|e| Error::Data {
            location: Location::at(file, source, e.span().map(|s| s.start).unwrap_or(0), None),
            message: e.message().trim().to_string(),
        })?;
        let fail = |span: std::ops::Range<usize>, field: String, message: String| Error::Data {
            location: Location::at(file, source, span.start, Some(field)),
            message,
        };
        if raw.version.get_ref().trim().is_empty() {
            return Err(fail(
                raw.version.span(),
                "version".into(),
                "must not be empty".into(),
            ));
        }
        let (lists, by_code) = entries(&raw, &fail)?;
        check_parents(&raw, &by_code, &fail)?;
        if lists[0].is_empty() || lists[1].is_empty() {
            return Err(Error::Data {
                location: Location::at(file, source, 0, None),
                message: "needs at least one [[category]] and one [[cause]]".into(),
            });
        }
        let maps = mappings(&raw.map, &by_code, &fail)?;
        let [categories, causes] = lists;
        Ok(Taxonomy {
            version: raw.version.get_ref().trim().to_string(),
            standard: raw.standard,
            categories,
            causes,
            by_code,
            maps,
        })
    }

    /// Version string (e.g. `taxonomy-v1`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The standard the taxonomy follows.
    pub fn standard(&self) -> &str {
        &self.standard
    }

    /// Business categories (dimension B).
    pub fn categories(&self) -> &[Entry] {
        &self.categories
    }

    /// Causes (dimension C).
    pub fn causes(&self) -> &[Entry] {
        &self.causes
    }

    /// Look up an entry by code.
    pub fn get(&self, code: &str) -> Option<(Dimension, &Entry)> {
        let (dim, i) = *self.by_code.get(code)?;
        let list = match dim {
            Dimension::Category => &self.categories,
            Dimension::Cause => &self.causes,
        };
        list.get(i).map(|e| (dim, e))
    }

    /// Look up an entry of a given dimension by code.
    pub fn entry(&self, dim: Dimension, code: &str) -> Option<&Entry> {
        self.get(code).filter(|(d, _)| *d == dim).map(|(_, e)| e)
    }

    /// Map a label of an outside scheme (case-insensitive) onto the taxonomy.
    pub fn map(&self, scheme: &str, label: &str) -> Option<&Mapping> {
        self.maps
            .get(&(scheme.to_string(), label.trim().to_lowercase()))
    }

    /// Resolve a model label: a mapping in `scheme`, or the label itself when it is a code
    /// of the taxonomy (schemes `taxonomy_category` / `taxonomy_cause`).
    pub fn resolve(&self, scheme: &str, label: &str) -> Option<Mapping> {
        if let Some(m) = self.map(scheme, label) {
            return Some(m.clone());
        }
        match self.get(label.trim()) {
            Some((Dimension::Category, e)) => Some(Mapping {
                category: Some(e.code.clone()),
                cause: None,
            }),
            Some((Dimension::Cause, e)) => Some(Mapping {
                category: None,
                cause: Some(e.code.clone()),
            }),
            None => None,
        }
    }

    /// Find an entry of `dim` whose Chinese or English name equals `name` (case-insensitive),
    /// or that a mapping in any scheme gives for the label `name`.
    pub fn find_by_name(&self, dim: Dimension, name: &str) -> Option<&Entry> {
        let n = name.trim().to_lowercase();
        if n.is_empty() {
            return None;
        }
        let list = match dim {
            Dimension::Category => &self.categories,
            Dimension::Cause => &self.causes,
        };
        if let Some(e) = list.iter().find(|e| {
            e.zh.to_lowercase() == n || e.en.to_lowercase() == n || e.code.to_lowercase() == n
        }) {
            return Some(e);
        }
        let mut keys: Vec<&(String, String)> = self.maps.keys().filter(|(_, l)| *l == n).collect();
        keys.sort();
        keys.into_iter().find_map(|key| {
            let m = self.maps.get(key)?;
            let code = match dim {
                Dimension::Category => m.category.as_ref(),
                Dimension::Cause => m.cause.as_ref(),
            }?;
            self.entry(dim, code)
        })
    }
}

type Fail<'a> = dyn Fn(std::ops::Range<usize>, String, String) -> Error + 'a;
type Codes = HashMap<String, (Dimension, usize)>;

/// Both dimensions' entries: codes non-empty and unique across the taxonomy, names non-empty
/// in both languages.
fn entries(raw: &RawTaxonomy, fail: &Fail<'_>) -> Result<([Vec<Entry>; 2], Codes)> {
    let mut by_code: Codes = HashMap::new();
    let mut lists: [Vec<Entry>; 2] = [Vec::new(), Vec::new()];
    for (slot, dim, key, entries) in [
        (0, Dimension::Category, "category", &raw.category),
        (1, Dimension::Cause, "cause", &raw.cause),
    ] {
        for (i, e) in entries.iter().enumerate() {
            let code = e.code.get_ref().trim();
            if code.is_empty() {
                return Err(fail(
                    e.code.span(),
                    format!("{key}[{i}].code"),
                    "must not be empty".into(),
                ));
            }
            for (name, val) in [("zh", &e.zh), ("en", &e.en)] {
                if val.get_ref().trim().is_empty() {
                    return Err(fail(
                        val.span(),
                        format!("{key}[{i}].{name}"),
                        format!("name of {code} must not be empty"),
                    ));
                }
            }
            if by_code
                .insert(code.to_string(), (dim, lists[slot].len()))
                .is_some()
            {
                return Err(fail(
                    e.code.span(),
                    format!("{key}[{i}].code"),
                    format!("duplicate code `{code}`"),
                ));
            }
            lists[slot].push(Entry {
                code: code.to_string(),
                zh: e.zh.get_ref().trim().to_string(),
                en: e.en.get_ref().trim().to_string(),
                parent: e.parent.as_ref().map(|p| p.get_ref().trim().to_string()),
                jrt_name: e.jrt_name.clone(),
                code_confirmed: e.code_confirmed,
                extension: e.extension,
            });
        }
    }
    Ok((lists, by_code))
}

/// Every parent is a code of the same dimension.
fn check_parents(raw: &RawTaxonomy, by_code: &Codes, fail: &Fail<'_>) -> Result<()> {
    for (dim, key, entries) in [
        (Dimension::Category, "category", &raw.category),
        (Dimension::Cause, "cause", &raw.cause),
    ] {
        for (i, e) in entries.iter().enumerate() {
            let Some(p) = &e.parent else { continue };
            if !matches!(by_code.get(p.get_ref().trim()), Some((d, _)) if *d == dim) {
                return Err(fail(
                    p.span(),
                    format!("{key}[{i}].parent"),
                    format!("parent `{}` is not a {key} code", p.get_ref()),
                ));
            }
        }
    }
    Ok(())
}

/// Mappings: scheme and label non-empty, targets existing codes of their dimension, no
/// label twice in a scheme (labels compare case-insensitively).
fn mappings(
    raw: &[RawMap],
    by_code: &Codes,
    fail: &Fail<'_>,
) -> Result<HashMap<(String, String), Mapping>> {
    let mut maps = HashMap::new();
    for (i, m) in raw.iter().enumerate() {
        let scheme = m.scheme.get_ref().trim().to_string();
        let label = m.label.get_ref().trim().to_string();
        for (field, value, span) in [
            ("scheme", &scheme, m.scheme.span()),
            ("label", &label, m.label.span()),
        ] {
            if value.is_empty() {
                return Err(fail(
                    span,
                    format!("map[{i}].{field}"),
                    "must not be empty".into(),
                ));
            }
        }
        if m.category.is_none() && m.cause.is_none() {
            return Err(fail(
                m.label.span(),
                format!("map[{i}]"),
                "maps to neither a category nor a cause".into(),
            ));
        }
        for (field, target, dim) in [
            ("category", &m.category, Dimension::Category),
            ("cause", &m.cause, Dimension::Cause),
        ] {
            let Some(t) = target else { continue };
            if !matches!(by_code.get(t.get_ref().trim()), Some((d, _)) if *d == dim) {
                return Err(fail(
                    t.span(),
                    format!("map[{i}].{field}"),
                    format!("`{}` is not a {field} code", t.get_ref()),
                ));
            }
        }
        let mapping = Mapping {
            category: m.category.as_ref().map(|c| c.get_ref().trim().to_string()),
            cause: m.cause.as_ref().map(|c| c.get_ref().trim().to_string()),
        };
        if maps
            .insert((scheme.clone(), label.to_lowercase()), mapping)
            .is_some()
        {
            return Err(fail(
                m.label.span(),
                format!("map[{i}].label"),
                format!("`{label}` is mapped twice in scheme `{scheme}`"),
            ));
        }
    }
    Ok(maps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_taxonomy_is_valid_and_complete() {
        let t = Taxonomy::embedded().expect("embedded taxonomy");
        assert_eq!(t.version(), "taxonomy-v1");
        for label in [
            "Bank account or service, Savings account",
            "Consumer loan, Vehicle loan or lease, Payday loan, title loan, or personal loan",
            "Credit card or prepaid card",
            "Credit reporting, credit repair services, or other personal consumer reports",
            "Debt collection",
            "Money transfer, virtual currency, or money service",
            "Mortgage",
            "Student loan",
        ] {
            assert!(
                t.map("cfpb_product_group", label)
                    .and_then(|m| m.category.clone())
                    .is_some(),
                "{label}"
            );
        }
        for label in [
            "催收行为类",
            "其他类",
            "合同条款类",
            "定价收费类",
            "客户服务类",
            "营销宣传类",
        ] {
            assert!(
                t.map("cn_category", label)
                    .and_then(|m| m.cause.clone())
                    .is_some(),
                "{label}"
            );
        }
        for zh in [
            "网络借贷",
            "网络支付与转账汇款",
            "理财",
            "保险代销",
            "债务催收",
            "个人信息保护",
        ] {
            assert!(t.categories().iter().any(|e| e.zh == zh), "{zh}");
        }
        assert!(
            t.categories()
                .iter()
                .chain(t.causes())
                .all(|e| !e.code_confirmed)
        );
        assert_eq!(
            t.find_by_name(Dimension::Category, "mortgage")
                .map(|e| e.code.as_str()),
            Some("B02.01")
        );
    }

    fn err_of(src: &str) -> (usize, Option<String>, String) {
        match Taxonomy::parse(src) {
            Err(Error::Data { location, message }) => (location.line, location.field, message),
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    const HEAD: &str = "version = \"t\"\nstandard = \"s\"\n";

    #[test]
    fn broken_files_name_the_line_and_field() {
        // Duplicate code: reported at the second occurrence (line 9).
        let dup = format!(
            "{HEAD}[[category]]\ncode = \"B1\"\nzh = \"甲\"\nen = \"A\"\ncode_confirmed = false\n[[category]]\ncode = \"B1\"\nzh = \"乙\"\nen = \"B\"\ncode_confirmed = false\n[[cause]]\ncode = \"C1\"\nzh = \"丙\"\nen = \"C\"\ncode_confirmed = false\n"
        );
        let (line, field, msg) = err_of(&dup);
        assert_eq!(line, 9, "{msg}");
        assert_eq!(field.as_deref(), Some("category[1].code"));
        assert!(msg.contains("duplicate"));

        // Empty English name.
        let empty = format!(
            "{HEAD}[[category]]\ncode = \"B1\"\nzh = \"甲\"\nen = \"  \"\ncode_confirmed = false\n"
        );
        let (line, field, _) = err_of(&empty);
        assert_eq!((line, field.as_deref()), (6, Some("category[0].en")));

        // Mapping to a missing code.
        let bad_map = format!(
            "{HEAD}[[category]]\ncode = \"B1\"\nzh = \"甲\"\nen = \"A\"\ncode_confirmed = false\n[[cause]]\ncode = \"C1\"\nzh = \"丙\"\nen = \"C\"\ncode_confirmed = false\n[[map]]\nscheme = \"x\"\nlabel = \"y\"\ncause = \"C9\"\n"
        );
        let (line, field, _) = err_of(&bad_map);
        assert_eq!((line, field.as_deref()), (16, Some("map[0].cause")));

        // TOML syntax error.
        let (line, _, _) = err_of(&format!("{HEAD}[[category]]\ncode = \n"));
        assert_eq!(line, 4);

        // Unknown field is rejected rather than ignored.
        let (line, _, msg) = err_of(&format!("{HEAD}colour = 1\n"));
        assert!(line >= 1 && msg.contains("colour"), "{msg}");
    }

    #[test]
    fn load_reports_the_file() {
        let e = Taxonomy::load("/nonexistent/taxonomy.toml").expect_err("missing file");
        assert!(e.to_string().contains("/nonexistent/taxonomy.toml"));
    }
}
