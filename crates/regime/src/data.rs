//! Shared helpers for reading TOML data files: line numbers from byte spans, typed errors,
//! and the `Source` citation block every data file carries.

use chrono::NaiveDate;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::error::LoadError;

/// A data file being read: its label (path or embedded name) and its text.
#[derive(Clone, Copy)]
pub(crate) struct Src<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl<'a> Src<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Self { file, text }
    }

    /// 1-based line number of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text
            .as_bytes()
            .iter()
            .take(end)
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, LoadError> {
        toml::from_str(self.text).map_err(|e| LoadError::Syntax {
            file: self.file.to_owned(),
            line: e.span().map(|s| self.line_of(s.start)).unwrap_or(1),
            message: e.message().trim().to_owned(),
        })
    }

    pub(crate) fn invalid<T>(
        &self,
        spanned: &Spanned<T>,
        field: &str,
        message: impl Into<String>,
    ) -> LoadError {
        self.invalid_at(spanned.span().start, field, message)
    }

    /// Like [`Src::invalid`], for a problem located by a byte offset rather than one value (a
    /// whole table, or a field that may be absent).
    pub(crate) fn invalid_at(
        &self,
        offset: usize,
        field: &str,
        message: impl Into<String>,
    ) -> LoadError {
        LoadError::Invalid {
            file: self.file.to_owned(),
            line: self.line_of(offset),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn date(&self, s: &Spanned<String>, field: &str) -> Result<NaiveDate, LoadError> {
        NaiveDate::parse_from_str(s.get_ref(), "%Y-%m-%d").map_err(|e| {
            self.invalid(
                s,
                field,
                format!("`{}` is not a date YYYY-MM-DD ({e})", s.get_ref()),
            )
        })
    }

    pub(crate) fn time_zone(
        &self,
        s: &Spanned<String>,
        field: &str,
    ) -> Result<chrono_tz::Tz, LoadError> {
        s.get_ref().parse::<chrono_tz::Tz>().map_err(|_| {
            self.invalid(
                s,
                field,
                format!("unknown IANA time zone `{}`", s.get_ref()),
            )
        })
    }
}

/// Where a rule or a calendar comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Title of the document (e.g. 国务院办公厅关于2025年部分节假日安排的通知).
    pub title: String,
    /// Document number (e.g. 国办发明电〔2024〕12号), when it has one.
    pub document_number: Option<String>,
    /// Date the document was issued, when stated.
    pub issued: Option<NaiveDate>,
    /// Date it came into force, when stated.
    pub in_force: Option<NaiveDate>,
    /// Where to read it.
    pub url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    title: Spanned<String>,
    document_number: Option<String>,
    issued: Option<Spanned<String>>,
    in_force: Option<Spanned<String>>,
    url: Option<String>,
}

impl RawSource {
    pub(crate) fn check(self, src: &Src<'_>) -> Result<Source, LoadError> {
        if self.title.get_ref().trim().is_empty() {
            return Err(src.invalid(&self.title, "source.title", "must not be empty"));
        }
        let issued = match &self.issued {
            Some(s) => Some(src.date(s, "source.issued")?),
            None => None,
        };
        let in_force = match &self.in_force {
            Some(s) => Some(src.date(s, "source.in_force")?),
            None => None,
        };
        Ok(Source {
            title: self.title.into_inner(),
            document_number: self.document_number,
            issued,
            in_force,
            url: self.url,
        })
    }
}
