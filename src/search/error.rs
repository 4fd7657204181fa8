//! The one error of the query language: where, what was expected, what was found.

use thiserror::Error;

/// A query that could not be parsed.
///
/// Displayed as `at column 12: expected a date like 2024-01-31 after
/// "after:", found "yesterday"`, followed by `; ` and [`QueryError::message`]
/// when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at column {column}: expected {expected}, found {found}{}", suffix(.message))]
pub struct QueryError {
    /// Byte offset into the query where the problem starts (0-based; always on
    /// a character boundary, and `query.len()` for "the end of the query").
    pub position: usize,
    /// The same place counted in characters, 1-based: what an investigator
    /// sees in a text box.
    pub column: usize,
    /// What the parser expected there, e.g. `a word, phrase, field or ( after AND`.
    pub expected: String,
    /// What it found: the offending text in quotes, or `the end of the query`.
    pub found: String,
    /// One more sentence: why, or what to write instead. May be empty.
    pub message: String,
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!("; {message}")
    }
}

/// Longest piece of the query quoted in `found`, in characters.
const MAX_FOUND_CHARS: usize = 40;

impl QueryError {
    pub(crate) fn new(
        query: &str,
        position: usize,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        QueryError {
            position,
            column: column(query, position),
            expected: expected.into(),
            found: found.into(),
            message: String::new(),
        }
    }

    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}

/// The 1-based character column of byte offset `position`.
pub(crate) fn column(query: &str, position: usize) -> usize {
    query
        .char_indices()
        .take_while(|(index, _)| *index < position)
        .count()
        + 1
}

/// How `found` names a piece of the query: quoted (control characters
/// escaped, long text cut), or `the end of the query` when there is none.
pub(crate) fn describe(text: &str) -> String {
    if text.is_empty() {
        return "the end of the query".to_owned();
    }
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX_FOUND_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        let query = "Привет frm:x";
        let position = query.find("frm").expect("present");
        let error = QueryError::new(query, position, "a field", describe("frm:"));
        assert_eq!(error.position, 13);
        assert_eq!(error.column, 8);
        assert_eq!(
            error.to_string(),
            r#"at column 8: expected a field, found "frm:""#
        );
        let error = error.with_message("did you mean \"from:\"?");
        assert!(error.to_string().ends_with("; did you mean \"from:\"?"));
    }

    #[test]
    fn found_text_is_quoted_escaped_and_cut() {
        assert_eq!(describe(""), "the end of the query");
        assert_eq!(describe("a\"b\n"), r#""a\"b\n""#);
        assert_eq!(describe("调查"), "\"调查\"");
        let long = "x".repeat(100);
        assert_eq!(describe(&long), format!("\"{}\"…", "x".repeat(40)));
    }
}
