//! Typed errors for every fallible operation in the crate.

use std::path::PathBuf;

/// Where in a data file (taxonomy, rules, severity) a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File name or a label such as `<embedded taxonomy-v1.toml>`.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column number (in characters).
    pub column: usize,
    /// The offending field, when known (e.g. `category[3].code`).
    pub field: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        Ok(())
    }
}

impl Location {
    /// Build a location from a byte offset into `source`.
    pub fn at(file: &str, source: &str, offset: usize, field: Option<String>) -> Self {
        let offset = offset.min(source.len());
        // Walk back to a char boundary so slicing never panics.
        let mut cut = offset;
        while cut > 0 && !source.is_char_boundary(cut) {
            cut -= 1;
        }
        let before = &source[..cut];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        Location {
            file: file.to_string(),
            line,
            column,
            field,
        }
    }
}

/// Every error the crate returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file (taxonomy, rules, severity) failed to parse or validate.
    #[error("{location}: {message}")]
    Data {
        /// Where the problem is.
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A model artifact is malformed, truncated, from another format version, or corrupted.
    #[error("model artifact: {0}")]
    Artifact(String),
    /// Training could not run (no examples, a single class, bad options...).
    #[error("training: {0}")]
    Training(String),
    /// A labelled CSV could not be read.
    #[error("{}: {message}", path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// What is wrong (missing column, bad record...).
        message: String,
    },
    /// A classifier was assembled from parts that do not fit together.
    #[error("configuration: {0}")]
    Config(String),
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
