//! The parsed query: what an investigator asked for, independent of how the
//! index answers it.
//!
//! `Display` writes the canonical form of a query: explicit `AND`, `NOT`
//! instead of `-`, `NEAR(n)` with its distance, times as UTC instants. Parsing
//! the canonical form of a parsed query gives the same query back, whatever
//! the [`ParseOptions`](super::ParseOptions), so it is what an audit log
//! should record.

use std::fmt;

use chrono::{DateTime, SecondsFormat};

use crate::event::{EventKind, MAX_AT_US, MIN_AT_US};

/// A parsed query.
///
/// Every node is a set of events; the operators are set operations over the
/// events the searcher may see (their scope). Shapes [`parse`](super::parse)
/// guarantees, which the index may rely on:
/// - `And` and `Or` have at least two children; an `And` never directly
///   contains an `And`, an `Or` never directly contains an `Or`;
/// - there is no node that matches everything, except a `sent` range that
///   covers the whole archive because it was written that way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A word in the message text.
    Term(Term),
    /// Words in the message text, next to each other and in order.
    Phrase(Phrase),
    /// Two words or phrases in the same message text with at most `distance`
    /// words between them, in either order (`NEAR(0)`: adjacent).
    Near {
        left: Text,
        right: Text,
        distance: u32,
    },
    /// Events matching every child.
    And(Vec<Query>),
    /// Events matching at least one child.
    Or(Vec<Query>),
    /// Events in scope that do not match the child. Allowed at the top: `NOT
    /// wire` means every event in scope except those matching `wire`.
    Not(Box<Query>),
    /// A condition on the event's metadata.
    Filter(Filter),
}

/// A word searched in message text (the `text` of `post` and `edit` events).
///
/// `text` is what the investigator typed, without the trailing `*`; the
/// index analyses it like message text. A term with punctuation inside
/// (`wire-transfer`, `e-mail`) is expected to analyse into several words,
/// which then must appear next to each other, like a phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Never empty, never contains `*`, always contains a letter or digit.
    pub text: String,
    /// `invest*`: any word starting with `text`. `text` then ends with a
    /// letter or digit.
    pub prefix: bool,
    /// `exact:Café`: case and accents must match as written. Otherwise
    /// matching ignores case and accents (`cafe` finds `Café` and `CAFÉ`).
    pub exact: bool,
}

/// Words searched in message text, next to each other and in this order.
///
/// `text` is the quoted text as typed (escapes resolved); splitting it into
/// words is the index's analyser's job (CJK text has no spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// Contains a letter or digit, and no `*`.
    pub text: String,
    /// `exact:"Wire Transfer"`: case and accents must match as written.
    pub exact: bool,
}

/// One side of a `NEAR`: a word or a phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Term(Term),
    Phrase(Phrase),
}

/// A condition on an event's metadata.
///
/// Name values (`From`, `In`, `Team`, `Thread`, `Emoji`) are compared whole
/// (no partial match) and without regard to case; they are kept as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `from:allen-p`: the event's `user`.
    From(String),
    /// `in:trading`: the event's `channel`.
    In(String),
    /// `team:legal`: the event's `team`.
    Team(String),
    /// `kind:edit`: the event's `kind`.
    Kind(EventKind),
    /// `has:file`: the event carries at least one attachment (`files` is
    /// not empty).
    HasFile,
    /// `has:reaction`: the post has had at least one reaction added. Like
    /// `IsEdited` and `IsDeleted`, a property of the post (known from other
    /// events about it), true for every event of that post.
    HasReaction,
    /// `filename:budget`: an attachment's name contains these words, matched
    /// like text (ignoring case and accents): `filename:budget` finds
    /// `Q3-Budget.xlsx`, `filename:pdf` finds `memo.pdf`.
    Filename(String),
    /// `emoji:thumbsup`: a reaction with this emoji name (surrounding colons
    /// of a bare value are dropped: `emoji::thumbsup:`).
    Emoji(String),
    /// `thread:p-1001`: the thread whose root post id is this: the root post
    /// itself and every event whose `parent` it is.
    Thread(String),
    /// `is:edited`: the post has at least one `edit` event.
    IsEdited,
    /// `is:deleted`: the post has a `delete` event.
    IsDeleted,
    /// `after:`, `before:`, `on:`, `sent…`: the event's `at` is in
    /// `[from_us, to_us)`, in microseconds since the epoch, UTC. `None` means
    /// unbounded. Bounds outside the archive's range (1970-01-01T00:00:00Z to
    /// 9999-12-31T23:59:59.999999Z) are dropped by the parser, so when both
    /// are present `from_us < to_us`, and each lies in
    /// `MIN_AT_US + 1 ..= MAX_AT_US`.
    TimeRange {
        from_us: Option<i64>,
        to_us: Option<i64>,
    },
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Term(term) => term.fmt(f),
            Query::Phrase(phrase) => phrase.fmt(f),
            Query::Near {
                left,
                right,
                distance,
            } => write!(f, "{left} NEAR({distance}) {right}"),
            Query::And(children) => write_joined(f, children, " AND "),
            Query::Or(children) => write_joined(f, children, " OR "),
            Query::Not(child) => {
                f.write_str("NOT ")?;
                write_operand(f, child)
            }
            Query::Filter(filter) => filter.fmt(f),
        }
    }
}

fn write_joined(f: &mut fmt::Formatter<'_>, children: &[Query], separator: &str) -> fmt::Result {
    for (child_idx, child) in children.iter().enumerate() {
        if child_idx > 0 {
            f.write_str(separator)?;
        }
        write_operand(f, child)?;
    }
    Ok(())
}

/// Writes a child of `AND`, `OR` or `NOT`, in parentheses when it is itself
/// an `AND` or an `OR` (needed for `OR` under `AND` and `NOT`, clearer
/// everywhere else).
fn write_operand(f: &mut fmt::Formatter<'_>, child: &Query) -> fmt::Result {
    match child {
        Query::And(_) | Query::Or(_) => write!(f, "({child})"),
        _ => fmt::Display::fmt(child, f),
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exact {
            f.write_str("exact:")?;
        }
        f.write_str(&self.text)?;
        if self.prefix {
            f.write_str("*")?;
        }
        Ok(())
    }
}

impl fmt::Display for Phrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exact {
            f.write_str("exact:")?;
        }
        write_quoted(f, &self.text)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Text::Term(term) => term.fmt(f),
            Text::Phrase(phrase) => phrase.fmt(f),
        }
    }
}

impl From<Text> for Query {
    fn from(text: Text) -> Self {
        match text {
            Text::Term(term) => Query::Term(term),
            Text::Phrase(phrase) => Query::Phrase(phrase),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::From(value) => write_field(f, "from", value),
            Filter::In(value) => write_field(f, "in", value),
            Filter::Team(value) => write_field(f, "team", value),
            Filter::Kind(kind) => write!(f, "kind:{kind}"),
            Filter::HasFile => f.write_str("has:file"),
            Filter::HasReaction => f.write_str("has:reaction"),
            Filter::Filename(value) => write_field(f, "filename", value),
            Filter::Emoji(value) => write_field(f, "emoji", value),
            Filter::Thread(value) => write_field(f, "thread", value),
            Filter::IsEdited => f.write_str("is:edited"),
            Filter::IsDeleted => f.write_str("is:deleted"),
            Filter::TimeRange { from_us, to_us } => match (from_us, to_us) {
                (Some(from_us), Some(to_us)) => write!(
                    f,
                    "sent:{}..{}",
                    Instant(*from_us),
                    Instant(to_us.saturating_sub(1))
                ),
                (Some(from_us), None) => write!(f, "sent>={}", Instant(*from_us)),
                (None, Some(to_us)) => write!(f, "sent<={}", Instant(to_us.saturating_sub(1))),
                // Everything the archive can hold; parses back to no bounds.
                (None, None) => write!(f, "sent>={}", Instant(MIN_AT_US)),
            },
        }
    }
}

/// A field value: bare when that reads back the same, quoted otherwise.
fn write_field(f: &mut fmt::Formatter<'_>, name: &str, value: &str) -> fmt::Result {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    write!(f, "{name}:")?;
    if bare {
        f.write_str(value)
    } else {
        write_quoted(f, value)
    }
}

/// Writes `text` in double quotes, escaping backslashes and every quote
/// character the lexer knows.
pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in text.chars() {
        if c == '\\' || super::lexer::is_quote(c) {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

/// An instant written as RFC 3339 UTC with as many fractional digits as it
/// needs; clamped to the archive's range so that it always has a
/// four-digit year.
struct Instant(i64);

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at_us = self.0.clamp(MIN_AT_US, MAX_AT_US);
        match DateTime::from_timestamp_micros(at_us) {
            Some(at) => f.write_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            // Unreachable: the archive's range is well inside chrono's.
            None => f.write_str("1970-01-01T00:00:00Z"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(text: &str) -> Query {
        Query::Term(Term {
            text: text.to_owned(),
            prefix: false,
            exact: false,
        })
    }

    #[test]
    fn canonical_form_parenthesises_groups() {
        let query = Query::And(vec![
            term("a"),
            Query::Or(vec![term("b"), term("c")]),
            Query::Not(Box::new(Query::And(vec![term("d"), term("e")]))),
            Query::Not(Box::new(term("f"))),
        ]);
        assert_eq!(
            query.to_string(),
            "a AND (b OR c) AND NOT (d AND e) AND NOT f"
        );
        let query = Query::Or(vec![Query::And(vec![term("a"), term("b")]), term("c")]);
        assert_eq!(query.to_string(), "(a AND b) OR c");
    }

    #[test]
    fn canonical_form_of_text() {
        let near = Query::Near {
            left: Text::Phrase(Phrase {
                text: "wire \"big\" transfer\\".to_owned(),
                exact: false,
            }),
            right: Text::Term(Term {
                text: "Off".to_owned(),
                prefix: true,
                exact: true,
            }),
            distance: 5,
        };
        assert_eq!(
            near.to_string(),
            r#""wire \"big\" transfer\\" NEAR(5) exact:Off*"#
        );
        let curly = Query::Phrase(Phrase {
            text: "“a”".to_owned(),
            exact: false,
        });
        assert_eq!(curly.to_string(), r#""\“a\”""#);
    }

    #[test]
    fn canonical_form_of_filters() {
        let cases = [
            (Filter::From("allen-p".to_owned()), "from:allen-p"),
            (Filter::In("gas desk".to_owned()), r#"in:"gas desk""#),
            (Filter::In("#general".to_owned()), r##"in:"#general""##),
            (Filter::Kind(EventKind::ReactionAdd), "kind:reaction_add"),
            (Filter::HasFile, "has:file"),
            (Filter::HasReaction, "has:reaction"),
            (Filter::IsEdited, "is:edited"),
            (Filter::IsDeleted, "is:deleted"),
            (Filter::Emoji("+1".to_owned()), r#"emoji:"+1""#),
            (Filter::Filename("memo.pdf".to_owned()), "filename:memo.pdf"),
            (Filter::Thread("p-1".to_owned()), "thread:p-1"),
            (Filter::Team("Équipe".to_owned()), "team:Équipe"),
            (
                Filter::TimeRange {
                    from_us: Some(1_704_067_200_000_000),
                    to_us: Some(1_711_929_600_000_000),
                },
                "sent:2024-01-01T00:00:00Z..2024-03-31T23:59:59.999999Z",
            ),
            (
                Filter::TimeRange {
                    from_us: Some(1_704_067_200_250_000),
                    to_us: None,
                },
                "sent>=2024-01-01T00:00:00.250Z",
            ),
            (
                Filter::TimeRange {
                    from_us: None,
                    to_us: Some(1_704_067_200_000_000),
                },
                "sent<=2023-12-31T23:59:59.999999Z",
            ),
            (
                Filter::TimeRange {
                    from_us: None,
                    to_us: None,
                },
                "sent>=1970-01-01T00:00:00Z",
            ),
            (
                // Not something the parser makes; still printed, never a panic.
                Filter::TimeRange {
                    from_us: Some(i64::MIN),
                    to_us: Some(i64::MIN),
                },
                "sent:1970-01-01T00:00:00Z..1970-01-01T00:00:00Z",
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(filter.to_string(), expected);
        }
    }
}
