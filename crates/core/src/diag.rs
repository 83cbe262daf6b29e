//! Validation diagnostics: one finding with file, line, column, field path and a
//! one-line reason. Owns formatting and "did you mean" suggestions; never decides
//! what is valid.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// Where a value came from: file, position and field path (`spec.sql.size`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: Arc<PathBuf>,
    pub line: u32,
    pub column: u32,
    pub field: String,
}

impl Origin {
    pub fn new(file: &Arc<PathBuf>, pos: Pos, field: impl Into<String>) -> Self {
        Origin {
            file: file.clone(),
            line: pos.line,
            column: pos.column,
            field: field.into(),
        }
    }

    /// An origin for a whole file (missing file, unreadable bytes).
    pub fn file(file: &Path) -> Self {
        Origin {
            file: Arc::new(file.to_path_buf()),
            line: 1,
            column: 1,
            field: String::new(),
        }
    }
}

/// One validation error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    #[serde(flatten)]
    pub origin: Origin,
    pub message: String,
}

impl Diagnostic {
    pub fn new(origin: Origin, message: impl Into<String>) -> Self {
        Diagnostic {
            origin,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(f, "{}:{}:{}: ", o.file.display(), o.line, o.column)?;
        if !o.field.is_empty() {
            write!(f, "{}: ", o.field)?;
        }
        f.write_str(&self.message)
    }
}

/// All errors of one validation run, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, origin: Origin, message: impl Into<String>) {
        self.0.push(Diagnostic::new(origin, message));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (&a.origin.file, a.origin.line, a.origin.column).cmp(&(
                &b.origin.file,
                b.origin.line,
                b.origin.column,
            ))
        });
        self.0.dedup();
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        write!(
            f,
            "{} error{} found",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate within a small edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let limit = (word.len() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let fields = ["frontends", "sql", "addressSpace"];
        assert_eq!(did_you_mean("frontend", fields), Some("frontends"));
        assert_eq!(did_you_mean("adressSpace", fields), Some("addressSpace"));
        assert_eq!(did_you_mean("AddressSpace", fields), Some("addressSpace"));
        assert_eq!(did_you_mean("banana", fields), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}

/// Why `text` is refused when it holds a control character (a terminal escape,
/// a NUL, a line break in a name): such text cannot be signed into XML, breaks
/// Markdown and rewrites terminal lines. `None` when it is printable.
pub fn control_character(text: &str) -> Option<String> {
    let (i, c) = text.char_indices().find(|(_, c)| c.is_control())?;
    Some(format!(
        "contains the control character U+{:04X} at character {}: names, reasons and other text must be printable",
        c as u32,
        text[..i].chars().count() + 1
    ))
}

/// Where a node starts in its file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// A value read from a manifest together with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T: serde::Serialize> serde::Serialize for At<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}
