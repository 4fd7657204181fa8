//! Recursive descent over the tokens, giving the [`Query`].
//!
//! Grammar (highest precedence last):
//!
//! ```text
//! query   = or EOF
//! or      = and ( "OR" and )*
//! and     = unary ( "AND"? unary )*          adjacent clauses are ANDed
//! unary   = ( "NOT" | "-" ) unary | near
//! near    = primary ( NEAR primary )?        both sides words or phrases
//! primary = word | phrase | field | "(" or ")"
//! ```
//!
//! Nesting (parentheses and `NOT`) is limited to [`MAX_DEPTH`] levels, so
//! no query can exhaust the stack, here or in the code that walks the tree.

use std::iter;

use super::ParseOptions;
use super::ast::{Filter, Phrase, Query, Term, Text};
use super::date::{DateClause, DateValue, time_filter};
use super::error::{QueryError, column, describe};
use super::lexer::{FieldToken, Op, Token, TokenKind};
use crate::event::EventKind;

/// Words allowed between the two sides of a `NEAR` written without `(n)`:
/// Purview KQL's default.
pub const DEFAULT_NEAR_DISTANCE: u32 = 8;

/// Deepest nesting of parentheses and `NOT` / `-` accepted.
pub const MAX_DEPTH: usize = 64;

const CLAUSE: &str = "a word, phrase, field or (";

/// The fields, in the order error messages list them.
const FIELDS: [(&str, FieldKind); 14] = [
    ("from", FieldKind::From),
    ("in", FieldKind::In),
    ("team", FieldKind::Team),
    ("kind", FieldKind::Kind),
    ("has", FieldKind::Has),
    ("is", FieldKind::Is),
    ("filename", FieldKind::Filename),
    ("emoji", FieldKind::Emoji),
    ("thread", FieldKind::Thread),
    ("exact", FieldKind::Exact),
    ("after", FieldKind::After),
    ("before", FieldKind::Before),
    ("on", FieldKind::On),
    ("sent", FieldKind::Sent),
];

/// Field names from Purview, Vault and Slack, and what to write instead.
const FIELD_ALIASES: [(&str, &str); 16] = [
    ("author", "from:"),
    ("sender", "from:"),
    ("user", "from:"),
    ("participants", "from:"),
    ("channel", "in:"),
    ("workspace", "team:"),
    ("type", "kind:"),
    ("date", "sent:"),
    ("received", "sent:"),
    ("during", "sent:"),
    ("hasattachment", "has:file"),
    ("attachment", "has:file"),
    ("attachments", "has:file"),
    ("filetype", "filename:"),
    ("file", "filename:"),
    ("reaction", "emoji:"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    From,
    In,
    Team,
    Kind,
    Has,
    Is,
    Filename,
    Emoji,
    Thread,
    Exact,
    After,
    Before,
    On,
    Sent,
}

impl FieldKind {
    /// What the value is, for "expected … after \"from:\"".
    fn noun(self) -> &'static str {
        match self {
            FieldKind::From => "a user name",
            FieldKind::In => "a channel name",
            FieldKind::Team => "a team name",
            FieldKind::Kind => "an event kind",
            FieldKind::Has => "file or reaction",
            FieldKind::Is => "edited or deleted",
            FieldKind::Filename => "a file name",
            FieldKind::Emoji => "an emoji name",
            FieldKind::Thread => "the thread's root post id",
            FieldKind::Exact => "a word or a quoted phrase",
            FieldKind::After | FieldKind::Before | FieldKind::On | FieldKind::Sent => {
                "a date like 2024-01-31"
            }
        }
    }
}

/// A parsed piece of the query with its byte span. For an `And`, `parts`
/// holds the span of each child (the conjunction checks point at them).
struct Node {
    query: Query,
    start: usize,
    end: usize,
    parts: Vec<(usize, usize)>,
}

impl Node {
    fn leaf(query: Query, start: usize, end: usize) -> Node {
        Node {
            query,
            start,
            end,
            parts: Vec::new(),
        }
    }
}

pub(crate) fn parse_tokens(
    query: &str,
    tokens: &[Token],
    options: &ParseOptions,
) -> Result<Query, QueryError> {
    let mut parser = Parser {
        query,
        tokens,
        next: 0,
        depth: 0,
        options,
    };
    if tokens.is_empty() {
        return Err(QueryError::new(query, 0, CLAUSE, "an empty query")
            .with_message("an empty query is refused rather than matching everything"));
    }
    let node = parser.or()?;
    if let Some(token) = parser.peek() {
        let error = parser.error_here("AND, OR, another clause or the end of the query");
        return Err(if token.kind == TokenKind::RParen {
            error.with_message("this ) has no matching (")
        } else {
            error
        });
    }
    Ok(node.query)
}

struct Parser<'q, 't, 'o> {
    query: &'q str,
    tokens: &'t [Token],
    next: usize,
    depth: usize,
    options: &'o ParseOptions,
}

impl<'t> Parser<'_, 't, '_> {
    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.next)
    }

    fn peek_is(&self, wanted: impl Fn(&TokenKind) -> bool) -> bool {
        self.peek().is_some_and(|token| wanted(&token.kind))
    }

    fn starts_clause(&self) -> bool {
        self.peek_is(|kind| {
            matches!(
                kind,
                TokenKind::Word(_)
                    | TokenKind::Phrase(_)
                    | TokenKind::Field(_)
                    | TokenKind::LParen
                    | TokenKind::Not
                    | TokenKind::Minus
            )
        })
    }

    /// The source text of a span.
    fn source(&self, start: usize, end: usize) -> &str {
        self.query.get(start..end).unwrap_or("")
    }

    /// An error at the next token, or just after the last one.
    fn error_here(&self, expected: impl Into<String>) -> QueryError {
        match self.peek() {
            Some(token) => QueryError::new(
                self.query,
                token.start,
                expected,
                describe(self.source(token.start, token.end)),
            ),
            None => QueryError::new(
                self.query,
                self.query.trim_end().len(),
                expected,
                describe(""),
            ),
        }
    }

    /// "Expected a clause" at the next token, `after` an operator if any.
    fn expected_clause(&self, after: Option<&str>) -> QueryError {
        let expected = match after {
            Some(operator) => format!("{CLAUSE} after {operator}"),
            None => CLAUSE.to_owned(),
        };
        let error = self.error_here(expected);
        match self.peek().map(|token| &token.kind) {
            Some(TokenKind::And | TokenKind::Or) => {
                error.with_message("AND and OR join two clauses: put one on each side")
            }
            Some(TokenKind::Near(_)) => {
                error.with_message("NEAR joins two words or phrases: put one on each side")
            }
            None => match after {
                Some(operator) => error.with_message(format!("{operator} needs a clause after it")),
                None => error,
            },
            _ => error,
        }
    }

    fn enter(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self
                .error_here(format!("at most {MAX_DEPTH} levels of parentheses and NOT"))
                .with_message("the query is nested too deeply"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn or(&mut self) -> Result<Node, QueryError> {
        let first = self.and()?;
        if !self.peek_is(|kind| *kind == TokenKind::Or) {
            return Ok(first);
        }
        let start = first.start;
        let mut end = first.end;
        let mut children = Vec::new();
        push_flattened_or(&mut children, first.query);
        while self.peek_is(|kind| *kind == TokenKind::Or) {
            self.next += 1;
            if !self.starts_clause() {
                return Err(self.expected_clause(Some("OR")));
            }
            let node = self.and()?;
            end = node.end;
            push_flattened_or(&mut children, node.query);
        }
        Ok(Node::leaf(Query::Or(children), start, end))
    }

    fn and(&mut self) -> Result<Node, QueryError> {
        let first = self.unary()?;
        let mut rest = Vec::new();
        loop {
            if self.peek_is(|kind| *kind == TokenKind::And) {
                self.next += 1;
                if !self.starts_clause() {
                    return Err(self.expected_clause(Some("AND")));
                }
            } else if !self.starts_clause() {
                break;
            }
            rest.push(self.unary()?);
        }
        if rest.is_empty() {
            return Ok(first);
        }
        let start = first.start;
        let end = rest.last().map_or(first.end, |node| node.end);
        let mut children = Vec::new();
        let mut parts = Vec::new();
        for node in iter::once(first).chain(rest) {
            match node.query {
                // A parenthesised AND inside an AND: the same conjunction.
                Query::And(grandchildren) => {
                    children.extend(grandchildren);
                    parts.extend(node.parts);
                }
                query => {
                    children.push(query);
                    parts.push((node.start, node.end));
                }
            }
        }
        self.check_conjunction(&children, &parts)?;
        Ok(Node {
            query: Query::And(children),
            start,
            end,
            parts,
        })
    }

    fn unary(&mut self) -> Result<Node, QueryError> {
        let Some(token) = self.peek() else {
            return Err(self.expected_clause(None));
        };
        let operator = match token.kind {
            TokenKind::Not => "NOT",
            TokenKind::Minus => "-",
            _ => return self.near(),
        };
        self.enter()?;
        self.next += 1;
        if !self.starts_clause() {
            return Err(self.expected_clause(Some(operator)));
        }
        let inner = self.unary()?;
        self.leave();
        Ok(Node::leaf(
            Query::Not(Box::new(inner.query)),
            token.start,
            inner.end,
        ))
    }

    fn near(&mut self) -> Result<Node, QueryError> {
        let left = self.primary()?;
        let Some(near) = self.peek() else {
            return Ok(left);
        };
        let TokenKind::Near(distance) = near.kind else {
            return Ok(left);
        };
        let Some(left_text) = into_text(left.query) else {
            return Err(QueryError::new(
                self.query,
                left.start,
                "a word or phrase before NEAR",
                describe(self.source(left.start, left.end)),
            )
            .with_message("NEAR joins two words or phrases"));
        };
        self.next += 1;
        let right_may_be_text = self.peek_is(|kind| {
            matches!(
                kind,
                TokenKind::Word(_) | TokenKind::Phrase(_) | TokenKind::Field(_) | TokenKind::LParen
            )
        });
        if !right_may_be_text {
            return Err(self
                .error_here("a word or phrase after NEAR")
                .with_message("NEAR joins two words or phrases"));
        }
        let right = self.primary()?;
        let Some(right_text) = into_text(right.query) else {
            return Err(QueryError::new(
                self.query,
                right.start,
                "a word or phrase after NEAR",
                describe(self.source(right.start, right.end)),
            )
            .with_message("NEAR joins two words or phrases"));
        };
        if self.peek_is(|kind| matches!(kind, TokenKind::Near(_))) {
            return Err(self
                .error_here("AND, OR, another clause or the end of the query after a NEAR")
                .with_message(
                    "NEAR joins exactly two words or phrases; join several NEARs with AND",
                ));
        }
        Ok(Node::leaf(
            Query::Near {
                left: left_text,
                right: right_text,
                distance: distance.unwrap_or(DEFAULT_NEAR_DISTANCE),
            },
            left.start,
            right.end,
        ))
    }

    fn primary(&mut self) -> Result<Node, QueryError> {
        let Some(token) = self.peek() else {
            return Err(self.expected_clause(None));
        };
        let (start, end) = (token.start, token.end);
        let query = match &token.kind {
            TokenKind::Word(text) => Query::Term(self.term(text, start, false)?),
            TokenKind::Phrase(text) => {
                Query::Phrase(self.phrase(text, start, self.source(start, end), false)?)
            }
            TokenKind::Field(field) => self.field(field, start, end)?,
            TokenKind::LParen => return self.group(token),
            _ => return Err(self.expected_clause(None)),
        };
        self.next += 1;
        Ok(Node::leaf(query, start, end))
    }

    fn group(&mut self, open: &Token) -> Result<Node, QueryError> {
        self.enter()?;
        self.next += 1;
        if self.peek_is(|kind| *kind == TokenKind::RParen) {
            return Err(self
                .error_here(format!("{CLAUSE} inside the parentheses"))
                .with_message("empty parentheses are not a search"));
        }
        if !self.starts_clause() {
            return Err(self.expected_clause(Some("(")));
        }
        let inner = self.or()?;
        match self.peek() {
            Some(close) if close.kind == TokenKind::RParen => {
                self.next += 1;
                self.leave();
                Ok(Node {
                    query: inner.query,
                    start: open.start,
                    end: close.end,
                    parts: inner.parts,
                })
            }
            _ => Err(self.error_here(format!(
                ") to close the ( at column {}",
                column(self.query, open.start)
            ))),
        }
    }

    fn term(&self, text: &str, position: usize, exact: bool) -> Result<Term, QueryError> {
        let error = |at: usize, expected: &str, message: &str| {
            Err(QueryError::new(self.query, at, expected, describe(text)).with_message(message))
        };
        if text == "*" {
            return error(
                position,
                "a word before *",
                "a lone * would match every message",
            );
        }
        let (stem, prefix) = match text.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (text, false),
        };
        if let Some(star) = stem.find('*') {
            return error(
                position + star,
                "* only at the end of a word",
                "a prefix search is written invest*; * inside or before a word is not supported",
            );
        }
        if !stem.chars().any(char::is_alphanumeric) {
            return error(
                position,
                "a word with a letter or digit",
                "punctuation alone is not searchable",
            );
        }
        if prefix && !stem.chars().next_back().is_some_and(is_word_char) {
            return error(
                position + stem.len(),
                "a letter or digit right before *",
                "a prefix search is written invest*",
            );
        }
        Ok(Term {
            text: stem.to_owned(),
            prefix,
            exact,
        })
    }

    fn phrase(
        &self,
        text: &str,
        position: usize,
        source: &str,
        exact: bool,
    ) -> Result<Phrase, QueryError> {
        if !text.chars().any(char::is_alphanumeric) {
            return Err(QueryError::new(
                self.query,
                position,
                "a phrase with a letter or digit",
                describe(source),
            )
            .with_message("an empty phrase, or one of punctuation only, is not searchable"));
        }
        if text.contains('*') {
            return Err(QueryError::new(
                self.query,
                position,
                "a phrase without *",
                describe(source),
            )
            .with_message("* is not a wildcard inside quotes; for a prefix, write the word outside them: invest*"));
        }
        Ok(Phrase {
            text: text.to_owned(),
            exact,
        })
    }

    fn field(&self, field: &FieldToken, start: usize, end: usize) -> Result<Query, QueryError> {
        let name = field.name.to_ascii_lowercase();
        let Some(kind) = FIELDS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, kind)| *kind)
        else {
            return Err(self.unknown_field(field, &name, start, end));
        };
        if kind != FieldKind::Sent && field.op != Op::Colon {
            return Err(QueryError::new(
                self.query,
                field.op_position,
                format!("\":\" after \"{name}\""),
                describe(field.op.as_str()),
            )
            .with_message("only sent compares dates with =, >=, <=, > and <: sent>=2024-01-01"));
        }
        let written = format!("{name}{}", field.op.as_str());
        let value_source = self.source(field.value_position, end);
        let expected = format!("{} after {written:?}", kind.noun());
        let missing = || {
            let error = if value_source.is_empty() {
                let rest = self.query.get(field.value_position..).unwrap_or("");
                let found = match rest.chars().next() {
                    None => describe(""),
                    Some(c) if c.is_whitespace() => "a space".to_owned(),
                    Some(c) => describe(&c.to_string()),
                };
                QueryError::new(self.query, field.value_position, expected.as_str(), found)
            } else {
                QueryError::new(
                    self.query,
                    field.value_position,
                    expected.as_str(),
                    describe(value_source),
                )
            };
            error.with_message(format!(
                "write the value right after {written:?}, in quotes if it has spaces"
            ))
        };
        if field.value.trim().is_empty() {
            return Err(missing());
        }
        let value = field.value.as_str();
        let name_value = |stripped: &str| -> Result<String, QueryError> {
            if stripped.trim().is_empty() {
                return Err(missing());
            }
            if !field.quoted
                && let Some(star) = value.find('*')
            {
                return Err(QueryError::new(
                    self.query,
                    field.value_position + star,
                    format!("{} without wildcards after {written:?}", kind.noun()),
                    describe(value_source),
                )
                .with_message("names are matched whole; to match a * in a name, quote the value"));
            }
            Ok(stripped.to_owned())
        };
        let bare_strip = |prefix: char| {
            if field.quoted {
                value
            } else {
                value.strip_prefix(prefix).unwrap_or(value)
            }
        };
        let list_error = |choices: &[&str]| {
            let suggestion = closest(&value.to_lowercase(), choices)
                .map(|choice| format!("did you mean {name}:{choice}?"))
                .unwrap_or_default();
            QueryError::new(
                self.query,
                field.value_position,
                format!("one of {} after {written:?}", choices.join(", ")),
                describe(value_source),
            )
            .with_message(suggestion)
        };
        let filter = match kind {
            FieldKind::From => Filter::From(name_value(bare_strip('@'))?),
            FieldKind::In => Filter::In(name_value(bare_strip('#'))?),
            FieldKind::Team => Filter::Team(name_value(value)?),
            FieldKind::Thread => Filter::Thread(name_value(value)?),
            FieldKind::Filename => Filter::Filename(name_value(value)?),
            FieldKind::Emoji => {
                let stripped = if field.quoted {
                    value
                } else {
                    let value = value.strip_prefix(':').unwrap_or(value);
                    value.strip_suffix(':').unwrap_or(value)
                };
                Filter::Emoji(name_value(stripped)?)
            }
            FieldKind::Kind => {
                let names = EventKind::ALL.map(EventKind::as_str);
                match EventKind::parse(&value.to_lowercase()) {
                    Some(event_kind) => Filter::Kind(event_kind),
                    None => return Err(list_error(&names)),
                }
            }
            FieldKind::Has => match value.to_lowercase().as_str() {
                "file" => Filter::HasFile,
                "reaction" => Filter::HasReaction,
                lower if lower.starts_with("attach") => {
                    return Err(
                        list_error(&["file", "reaction"]).with_message("did you mean has:file?")
                    );
                }
                _ => return Err(list_error(&["file", "reaction"])),
            },
            FieldKind::Is => match value.to_lowercase().as_str() {
                "edited" => Filter::IsEdited,
                "deleted" => Filter::IsDeleted,
                _ => return Err(list_error(&["edited", "deleted"])),
            },
            FieldKind::Exact => {
                return if field.quoted {
                    self.phrase(value, field.value_position, value_source, true)
                        .map(Query::Phrase)
                } else {
                    self.term(value, field.value_position, true)
                        .map(Query::Term)
                };
            }
            FieldKind::After | FieldKind::Before | FieldKind::On | FieldKind::Sent => {
                let clause = match kind {
                    FieldKind::After => DateClause::After,
                    FieldKind::Before => DateClause::Before,
                    FieldKind::On => DateClause::On,
                    _ => DateClause::Sent(field.op),
                };
                let date_value = DateValue {
                    text: value,
                    quoted: field.quoted,
                    position: field.value_position,
                    end,
                };
                time_filter(self.query, clause, &date_value, self.options)?
            }
        };
        Ok(Query::Filter(filter))
    }

    fn unknown_field(
        &self,
        field: &FieldToken,
        name: &str,
        start: usize,
        end: usize,
    ) -> QueryError {
        let names: Vec<&str> = FIELDS.iter().map(|(known, _)| *known).collect();
        let suggestion = FIELD_ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map(|(_, instead)| (*instead).to_owned())
            .or_else(|| closest(name, &names).map(|known| format!("{known}:")));
        let whole = self.source(start, end);
        let message = match (suggestion, field.quoted) {
            (Some(instead), false) => format!(
                "did you mean {instead:?}? If you meant the text itself, put it in quotes: {whole:?}"
            ),
            (Some(instead), true) => format!("did you mean {instead:?}?"),
            (None, false) => {
                format!("to search for the text itself, put it in quotes: {whole:?}")
            }
            (None, true) => String::new(),
        };
        let known: Vec<String> = names.iter().map(|known| format!("{known}:")).collect();
        QueryError::new(
            self.query,
            start,
            format!("a field ({})", known.join(" ")),
            describe(self.source(start, field.value_position)),
        )
        .with_message(message)
    }

    /// Refuses an AND group that can match nothing: two different values of
    /// a field an event has only one of (`from:alice from:bob`), or dates
    /// that exclude each other.
    fn check_conjunction(
        &self,
        children: &[Query],
        parts: &[(usize, usize)],
    ) -> Result<(), QueryError> {
        let mut seen: Vec<(&str, String, (usize, usize))> = Vec::new();
        let mut from_us: Option<i64> = None;
        let mut to_us: Option<i64> = None;
        for (child, &(start, end)) in children.iter().zip(parts) {
            let Query::Filter(filter) = child else {
                continue;
            };
            let (field, noun, value) = match filter {
                Filter::From(value) => ("from", "sender", value.to_lowercase()),
                Filter::In(value) => ("in", "channel", value.to_lowercase()),
                Filter::Team(value) => ("team", "team", value.to_lowercase()),
                Filter::Thread(value) => ("thread", "thread", value.to_lowercase()),
                Filter::Kind(kind) => ("kind", "kind", kind.as_str().to_owned()),
                Filter::TimeRange {
                    from_us: from,
                    to_us: to,
                } => {
                    from_us = combine_bounds(from_us, *from, i64::max);
                    to_us = combine_bounds(to_us, *to, i64::min);
                    if let (Some(from_us), Some(to_us)) = (from_us, to_us)
                        && from_us >= to_us
                    {
                        return Err(QueryError::new(
                            self.query,
                            start,
                            "a time that overlaps the other dates of this AND group",
                            describe(self.source(start, end)),
                        )
                        .with_message("no event can be in both: these dates exclude each other"));
                    }
                    continue;
                }
                _ => continue,
            };
            if let Some((_, _, (first_start, first_end))) = seen
                .iter()
                .find(|(seen_field, seen_value, _)| *seen_field == field && *seen_value != value)
            {
                let first = self.source(*first_start, *first_end);
                let this = self.source(start, end);
                return Err(QueryError::new(
                    self.query,
                    start,
                    format!("{field}: once in a group joined by AND"),
                    describe(this),
                )
                .with_message(format!(
                    "an event has one {noun}, so {first} AND {this} matches nothing; write ({first} OR {this}) to match either"
                )));
            }
            seen.push((field, value, (start, end)));
        }
        Ok(())
    }
}

/// Combines two optional bounds with `pick` (max for lower bounds, min for
/// upper ones); `None` is unbounded.
fn combine_bounds(a: Option<i64>, b: Option<i64>, pick: fn(i64, i64) -> i64) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

fn push_flattened_or(children: &mut Vec<Query>, query: Query) {
    match query {
        Query::Or(grandchildren) => children.extend(grandchildren),
        query => children.push(query),
    }
}

fn into_text(query: Query) -> Option<Text> {
    match query {
        Query::Term(term) => Some(Text::Term(term)),
        Query::Phrase(phrase) => Some(Text::Phrase(phrase)),
        _ => None,
    }
}

/// A letter, a digit, or a combining mark (an accent typed as its own
/// character, as in decomposed `é`).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(c,
            '\u{0300}'..='\u{036F}'
                | '\u{1AB0}'..='\u{1AFF}'
                | '\u{1DC0}'..='\u{1DFF}'
                | '\u{20D0}'..='\u{20FF}'
                | '\u{FE20}'..='\u{FE2F}')
}

/// The choice closest to `word` by edit distance, if close enough to be a
/// typo (at most 2 edits, and fewer than half the word's length).
fn closest<'c>(word: &str, choices: &[&'c str]) -> Option<&'c str> {
    let length = word.chars().count();
    choices
        .iter()
        .map(|choice| (edit_distance(word, choice), *choice))
        .filter(|(distance, _)| *distance <= 2 && distance * 2 <= length)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, choice)| choice)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (a_idx, a_char) in a.chars().enumerate() {
        let mut current = vec![a_idx + 1];
        for (b_idx, b_char) in b.iter().enumerate() {
            let substitution = previous[b_idx] + usize::from(a_char != *b_char);
            let deletion = previous[b_idx + 1] + 1;
            let insertion = current[b_idx] + 1;
            current.push(substitution.min(deletion).min(insertion));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance("frm", "from"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("frm", &["from", "in"]), Some("from"));
        assert_eq!(closest("x", &["in"]), None);
        assert_eq!(closest("re", &["on", "in"]), None);
        assert_eq!(
            closest("reaction_ad", &["post", "reaction_add"]),
            Some("reaction_add")
        );
    }

    #[test]
    fn word_characters_include_combining_accents() {
        assert!(is_word_char('é'));
        assert!(is_word_char('\u{0301}'));
        assert!(is_word_char('调'));
        assert!(!is_word_char('-'));
        assert!(!is_word_char('🚀'));
    }

    #[test]
    fn every_field_is_listed_once() {
        for (idx, (name, _)) in FIELDS.iter().enumerate() {
            assert!(
                FIELDS[..idx].iter().all(|(other, _)| other != name),
                "{name}"
            );
            assert!(
                FIELD_ALIASES.iter().all(|(alias, _)| alias != name),
                "{name}"
            );
        }
    }
}
