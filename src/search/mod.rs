//! The query language investigators search with (`docs/search.md`).
//!
//! [`parse`] turns a query such as
//! `"wire transfer" NEAR(5) offshore from:allen-p after:2024-01-01` into a
//! [`Query`] tree, or a [`QueryError`] that says where the query went wrong,
//! what was expected there and what was found. The syntax follows the
//! operators investigators know from Microsoft Purview (KQL), Google Vault
//! and Slack. The index translates the tree into its own queries; `Display`
//! on a [`Query`] writes its canonical form, which parses back to the same
//! tree.
//!
//! [`search`] runs a parsed query within a [`Scope`]: the index finds the
//! events, the store decrypts them, and `run.rs` builds the hits (latest
//! version of each post, flags, reactions, snippets); [`context`] returns a
//! post with its versions, thread and neighbours.
//!
//! The parser (`lexer.rs`, `parser.rs`, `date.rs`, `ast.rs`) must never:
//! - panic, whatever the input (it is fuzzed with proptest), or recurse
//!   without bound (nesting is limited to [`MAX_DEPTH`]);
//! - turn a mistake into a search that matches everything: an empty query, a
//!   dangling operator, a lone `*`, an unknown field or a bad date is an
//!   error, never a silent match-all;
//! - read the clock: relative dates (`today`) use [`ParseOptions::now`], so a
//!   saved query (a legal hold) keeps its meaning when `now` is not given;
//! - touch the index or the store (only `run.rs` does). It depends on `event` only
//!   (for [`EventKind`](crate::event::EventKind) and the archive's time range).

mod ast;
mod date;
mod error;
mod lexer;
mod parser;
mod run;
mod scope;

use chrono::{DateTime, FixedOffset, Utc};

pub use crate::index::Sort;
pub use ast::{Filter, Phrase, Query, Term, Text};
pub use error::QueryError;
pub use lexer::MAX_NEAR_DISTANCE;
pub use parser::{DEFAULT_NEAR_DISTANCE, MAX_DEPTH};
pub use run::{
    Context, DEFAULT_PAGE, Hit, MAX_AROUND, MAX_PAGE, SearchError, SearchPage, SearchRequest,
    Snippet, Versions, context, make_snippet, search,
};
pub use scope::{ChannelRef, Scope};

/// Longest query accepted, in bytes (Purview's own limit is of this order).
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// What a query's meaning depends on besides its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// The zone of dates and times written without one (`on:2024-01-31` is
    /// that day in this zone). UTC by default.
    pub default_zone: FixedOffset,
    /// The current time, for `today` and `yesterday`. `None` refuses
    /// relative dates: a query stored for later (a legal hold, a scheduled
    /// export) must not change meaning as days pass.
    pub now: Option<DateTime<Utc>>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            default_zone: FixedOffset::east_opt(0).expect("an offset of zero is valid"),
            now: None,
        }
    }
}

/// Parses a query (see `docs/search.md` for the language).
pub fn parse(query: &str, options: &ParseOptions) -> Result<Query, QueryError> {
    if query.len() > MAX_QUERY_BYTES {
        let mut position = MAX_QUERY_BYTES;
        while !query.is_char_boundary(position) {
            position -= 1;
        }
        return Err(QueryError::new(
            query,
            position,
            format!("a query of at most {MAX_QUERY_BYTES} bytes"),
            format!("{} bytes", query.len()),
        )
        .with_message("split the search into several"));
    }
    let tokens = lexer::lex(query)?;
    parser::parse_tokens(query, &tokens, options)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::{EventKind, MAX_AT_US, MIN_AT_US};

    const JAN_1_2024_US: i64 = 1_704_067_200_000_000;
    const DAY_US: i64 = 86_400_000_000;
    const HOUR_US: i64 = 3_600_000_000;

    fn parse_ok(query: &str) -> Query {
        parse(query, &ParseOptions::default()).unwrap_or_else(|error| panic!("{query}: {error}"))
    }

    fn parse_err(query: &str) -> QueryError {
        match parse(query, &ParseOptions::default()) {
            Ok(parsed) => panic!("{query} parsed as {parsed:?}"),
            Err(error) => error,
        }
    }

    fn term(text: &str) -> Query {
        Query::Term(Term {
            text: text.to_owned(),
            prefix: false,
            exact: false,
        })
    }

    fn prefix(text: &str) -> Query {
        Query::Term(Term {
            text: text.to_owned(),
            prefix: true,
            exact: false,
        })
    }

    fn exact(text: &str) -> Query {
        Query::Term(Term {
            text: text.to_owned(),
            prefix: false,
            exact: true,
        })
    }

    fn phrase(text: &str) -> Query {
        Query::Phrase(Phrase {
            text: text.to_owned(),
            exact: false,
        })
    }

    fn and(children: Vec<Query>) -> Query {
        Query::And(children)
    }

    fn or(children: Vec<Query>) -> Query {
        Query::Or(children)
    }

    fn not(child: Query) -> Query {
        Query::Not(Box::new(child))
    }

    fn near(left: Query, right: Query, distance: u32) -> Query {
        let text = |query| match query {
            Query::Term(term) => Text::Term(term),
            Query::Phrase(phrase) => Text::Phrase(phrase),
            other => panic!("not text: {other:?}"),
        };
        Query::Near {
            left: text(left),
            right: text(right),
            distance,
        }
    }

    fn filter(filter: Filter) -> Query {
        Query::Filter(filter)
    }

    fn range(from_us: Option<i64>, to_us: Option<i64>) -> Query {
        Query::Filter(Filter::TimeRange { from_us, to_us })
    }

    /// Parses, checks the canonical form and that it parses back.
    fn assert_parses(query: &str, expected: &Query, canonical: &str) {
        let parsed = parse_ok(query);
        assert_eq!(&parsed, expected, "{query}");
        assert_eq!(parsed.to_string(), canonical, "{query}");
        assert_eq!(parse_ok(canonical), parsed, "{canonical}");
    }

    #[test]
    fn terms_phrases_and_implicit_and() {
        assert_parses("wire", &term("wire"), "wire");
        assert_parses(
            "wire transfer",
            &and(vec![term("wire"), term("transfer")]),
            "wire AND transfer",
        );
        assert_parses(
            "wire AND transfer",
            &and(vec![term("wire"), term("transfer")]),
            "wire AND transfer",
        );
        assert_parses(
            "\"wire transfer\"  offshore",
            &and(vec![phrase("wire transfer"), term("offshore")]),
            "\"wire transfer\" AND offshore",
        );
        assert_parses(
            "“wire transfer”",
            &phrase("wire transfer"),
            "\"wire transfer\"",
        );
        assert_parses(r#""say \"hi\"""#, &phrase("say \"hi\""), r#""say \"hi\"""#);
        assert_parses("wire-transfer", &term("wire-transfer"), "wire-transfer");
        assert_parses("$5,000", &term("$5,000"), "$5,000");
    }

    #[test]
    fn lowercase_operators_are_words() {
        assert_parses(
            "rock and roll or not",
            &and(vec![
                term("rock"),
                term("and"),
                term("roll"),
                term("or"),
                term("not"),
            ]),
            "rock AND and AND roll AND or AND not",
        );
        assert_parses("\"AND\"", &phrase("AND"), "\"AND\"");
    }

    #[test]
    fn or_and_not() {
        assert_parses(
            "a OR b OR c",
            &or(vec![term("a"), term("b"), term("c")]),
            "a OR b OR c",
        );
        assert_parses("NOT wire", &not(term("wire")), "NOT wire");
        assert_parses("-wire", &not(term("wire")), "NOT wire");
        assert_parses(
            "wire -transfer",
            &and(vec![term("wire"), not(term("transfer"))]),
            "wire AND NOT transfer",
        );
        assert_parses(
            "wire NOT transfer",
            &and(vec![term("wire"), not(term("transfer"))]),
            "wire AND NOT transfer",
        );
        assert_parses(
            "-\"wire transfer\" -from:bot -(a OR b)",
            &and(vec![
                not(phrase("wire transfer")),
                not(filter(Filter::From("bot".to_owned()))),
                not(or(vec![term("a"), term("b")])),
            ]),
            "NOT \"wire transfer\" AND NOT from:bot AND NOT (a OR b)",
        );
        assert_parses("NOT NOT a", &not(not(term("a"))), "NOT NOT a");
        assert_parses("--a", &not(not(term("a"))), "NOT NOT a");
        assert_parses("NOT(a)", &not(term("a")), "NOT a");
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        assert_parses(
            "a OR b c",
            &or(vec![term("a"), and(vec![term("b"), term("c")])]),
            "a OR (b AND c)",
        );
        assert_parses(
            "a b OR c",
            &or(vec![and(vec![term("a"), term("b")]), term("c")]),
            "(a AND b) OR c",
        );
        assert_parses(
            "a OR b AND c OR d",
            &or(vec![term("a"), and(vec![term("b"), term("c")]), term("d")]),
            "a OR (b AND c) OR d",
        );
        assert_parses(
            "NOT a b",
            &and(vec![not(term("a")), term("b")]),
            "NOT a AND b",
        );
        assert_parses(
            "NOT a OR b",
            &or(vec![not(term("a")), term("b")]),
            "NOT a OR b",
        );
        assert_parses(
            "(a OR b) c",
            &and(vec![or(vec![term("a"), term("b")]), term("c")]),
            "(a OR b) AND c",
        );
        assert_parses(
            "NOT (a OR b) c",
            &and(vec![not(or(vec![term("a"), term("b")])), term("c")]),
            "NOT (a OR b) AND c",
        );
        // NEAR binds tighter than everything else.
        assert_parses(
            "NOT a NEAR b OR c",
            &or(vec![not(near(term("a"), term("b"), 8)), term("c")]),
            "NOT a NEAR(8) b OR c",
        );
        assert_parses(
            "x a NEAR(2) b",
            &and(vec![term("x"), near(term("a"), term("b"), 2)]),
            "x AND a NEAR(2) b",
        );
    }

    #[test]
    fn groups_flatten_into_their_parent() {
        assert_parses(
            "(a b) (c AND d)",
            &and(vec![term("a"), term("b"), term("c"), term("d")]),
            "a AND b AND c AND d",
        );
        assert_parses(
            "(a OR b) OR (c OR d)",
            &or(vec![term("a"), term("b"), term("c"), term("d")]),
            "a OR b OR c OR d",
        );
        assert_parses("((a))", &term("a"), "a");
        assert_parses(
            "(a OR (b (c OR d)))",
            &or(vec![
                term("a"),
                and(vec![term("b"), or(vec![term("c"), term("d")])]),
            ]),
            "a OR (b AND (c OR d))",
        );
    }

    #[test]
    fn prefix_search() {
        assert_parses("invest*", &prefix("invest"), "invest*");
        assert_parses("Инвест*", &prefix("Инвест"), "Инвест*");
        assert_parses("cafe\u{301}*", &prefix("cafe\u{301}"), "cafe\u{301}*");
        assert_parses("e-mai*", &prefix("e-mai"), "e-mai*");
        for (query, expected, column) in [
            ("*", "a word before *", 1),
            ("wire *", "a word before *", 6),
            ("in*vest", "* only at the end of a word", 3),
            ("*vest", "* only at the end of a word", 1),
            ("invest**", "* only at the end of a word", 7),
            ("wire-*", "a letter or digit right before *", 6),
            ("!!!", "a word with a letter or digit", 1),
            ("\"wire trans*\"", "a phrase without *", 1),
        ] {
            let error = parse_err(query);
            assert_eq!(
                (error.expected.as_str(), error.column),
                (expected, column),
                "{query}"
            );
        }
        assert!(parse_err("*").message.contains("would match every message"));
    }

    #[test]
    fn near_between_words_and_phrases() {
        assert_parses(
            "\"wire transfer\" NEAR(5) offshore",
            &near(phrase("wire transfer"), term("offshore"), 5),
            "\"wire transfer\" NEAR(5) offshore",
        );
        assert_parses(
            "wire NEAR offshore",
            &near(term("wire"), term("offshore"), DEFAULT_NEAR_DISTANCE),
            "wire NEAR(8) offshore",
        );
        assert_parses(
            "wire NEAR(n=0) exact:Offshore*",
            &near(
                term("wire"),
                Query::Term(Term {
                    text: "Offshore".to_owned(),
                    prefix: true,
                    exact: true,
                }),
                0,
            ),
            "wire NEAR(0) exact:Offshore*",
        );
        assert_parses(
            "a NEAR (b)",
            &near(term("a"), term("b"), DEFAULT_NEAR_DISTANCE),
            "a NEAR(8) b",
        );
        assert_parses(
            "(wire) NEAR(3) (\"off shore\")",
            &near(term("wire"), phrase("off shore"), 3),
            "wire NEAR(3) \"off shore\"",
        );
        for (query, expected, column) in [
            ("NEAR b", "a word, phrase, field or (", 1),
            ("a NEAR", "a word or phrase after NEAR", 7),
            ("a NEAR (b OR c)", "a word or phrase after NEAR", 8),
            ("a NEAR -b", "a word or phrase after NEAR", 8),
            ("a NEAR NEAR b", "a word or phrase after NEAR", 8),
            ("has:file NEAR b", "a word or phrase before NEAR", 1),
            ("a NEAR from:x", "a word or phrase after NEAR", 8),
            ("(a b) NEAR c", "a word or phrase before NEAR", 1),
            ("a AND NEAR b", "a word, phrase, field or ( after AND", 7),
            (
                "a NEAR b NEAR c",
                "AND, OR, another clause or the end of the query after a NEAR",
                10,
            ),
            ("a NEAR(x) b", "a distance like NEAR(5), from 0 to 1000", 7),
            ("a near(3) b", "NEAR in capital letters", 3),
        ] {
            let error = parse_err(query);
            assert_eq!(
                (error.expected.as_str(), error.column),
                (expected, column),
                "{query}"
            );
        }
        assert_eq!(
            parse_err("NEAR b").message,
            "NEAR joins two words or phrases: put one on each side"
        );
    }

    #[test]
    fn exact_matching_is_opt_in() {
        assert_parses("Café", &term("Café"), "Café");
        assert_parses("exact:Café", &exact("Café"), "exact:Café");
        assert_parses("EXACT:Café", &exact("Café"), "exact:Café");
        assert_parses(
            "exact:\"Café au lait\"",
            &Query::Phrase(Phrase {
                text: "Café au lait".to_owned(),
                exact: true,
            }),
            "exact:\"Café au lait\"",
        );
        assert_parses("-exact:Café", &not(exact("Café")), "NOT exact:Café");
        assert_parses("exact:AND", &exact("AND"), "exact:AND");
        for (query, expected) in [
            ("exact:", "a word or a quoted phrase after \"exact:\""),
            ("exact:*", "a word before *"),
            ("exact:\"\"", "a word or a quoted phrase after \"exact:\""),
            ("exact:\"...\"", "a phrase with a letter or digit"),
            ("exact>=x", "\":\" after \"exact\""),
        ] {
            assert_eq!(parse_err(query).expected, expected, "{query}");
        }
    }

    #[test]
    fn fields_with_bare_and_quoted_values() {
        let cases = [
            (
                "from:allen-p",
                Filter::From("allen-p".to_owned()),
                "from:allen-p",
            ),
            (
                "FROM:@allen-p",
                Filter::From("allen-p".to_owned()),
                "from:allen-p",
            ),
            (
                "from:\"@allen\"",
                Filter::From("@allen".to_owned()),
                "from:\"@allen\"",
            ),
            (
                "in:\"gas desk\"",
                Filter::In("gas desk".to_owned()),
                "in:\"gas desk\"",
            ),
            (
                "in:#trading",
                Filter::In("trading".to_owned()),
                "in:trading",
            ),
            ("team:legal", Filter::Team("legal".to_owned()), "team:legal"),
            ("kind:post", Filter::Kind(EventKind::Post), "kind:post"),
            (
                "kind:Reaction_Add",
                Filter::Kind(EventKind::ReactionAdd),
                "kind:reaction_add",
            ),
            (
                "kind:\"member_leave\"",
                Filter::Kind(EventKind::MemberLeave),
                "kind:member_leave",
            ),
            ("has:file", Filter::HasFile, "has:file"),
            ("has:Reaction", Filter::HasReaction, "has:reaction"),
            ("is:edited", Filter::IsEdited, "is:edited"),
            ("is:deleted", Filter::IsDeleted, "is:deleted"),
            (
                "filename:memo.pdf",
                Filter::Filename("memo.pdf".to_owned()),
                "filename:memo.pdf",
            ),
            (
                "filename:\"Q3 *final*.xlsx\"",
                Filter::Filename("Q3 *final*.xlsx".to_owned()),
                "filename:\"Q3 *final*.xlsx\"",
            ),
            (
                "emoji::thumbsup:",
                Filter::Emoji("thumbsup".to_owned()),
                "emoji:thumbsup",
            ),
            ("emoji:+1", Filter::Emoji("+1".to_owned()), "emoji:\"+1\""),
            (
                "thread:p-1001",
                Filter::Thread("p-1001".to_owned()),
                "thread:p-1001",
            ),
            (
                "in:торговля",
                Filter::In("торговля".to_owned()),
                "in:торговля",
            ),
            ("from:张伟", Filter::From("张伟".to_owned()), "from:张伟"),
        ];
        for (query, expected, canonical) in cases {
            assert_parses(query, &filter(expected), canonical);
        }
        for kind in EventKind::ALL {
            assert_parses(
                &format!("kind:{kind}"),
                &filter(Filter::Kind(kind)),
                &format!("kind:{kind}"),
            );
        }
    }

    #[test]
    fn field_errors_name_the_field() {
        let error = parse_err("wire frm:alice");
        assert_eq!((error.position, error.column), (5, 6));
        assert_eq!(error.found, "\"frm:\"");
        assert!(
            error.expected.starts_with("a field (from: in: team: kind:"),
            "{error}"
        );
        assert_eq!(
            error.message,
            "did you mean \"from:\"? If you meant the text itself, put it in quotes: \"frm:alice\""
        );
        assert!(
            parse_err("author:alice")
                .message
                .starts_with("did you mean \"from:\"?")
        );
        assert!(
            parse_err("hasattachment:true")
                .message
                .starts_with("did you mean \"has:file\"?")
        );
        assert!(parse_err("channel:\"gas desk\"").message == "did you mean \"in:\"?");
        assert_eq!(
            parse_err("http://example.com").message,
            "to search for the text itself, put it in quotes: \"http://example.com\""
        );
        assert_eq!(parse_err("a=b").found, "\"a=\"");

        let error = parse_err("kind:message");
        assert_eq!(
            error.to_string(),
            "at column 6: expected one of post, edit, delete, reaction_add, reaction_remove, file, \
             channel_create, channel_rename, channel_archive, member_join, member_leave after \
             \"kind:\", found \"message\""
        );
        assert_eq!(
            parse_err("kind:reaction_ad").message,
            "did you mean kind:reaction_add?"
        );
        assert_eq!(
            parse_err("has:attachment").message,
            "did you mean has:file?"
        );
        assert_eq!(parse_err("has:files").message, "did you mean has:file?");
        assert_eq!(
            parse_err("is:thread").expected,
            "one of edited, deleted after \"is:\""
        );

        for (query, expected, found, column) in [
            (
                "from:",
                "a user name after \"from:\"",
                "the end of the query",
                6,
            ),
            ("from: alice", "a user name after \"from:\"", "a space", 6),
            ("(from:)", "a user name after \"from:\"", "\")\"", 7),
            (
                "from:\"\"",
                "a user name after \"from:\"",
                "\"\\\"\\\"\"",
                6,
            ),
            (
                "in:\"  \"",
                "a channel name after \"in:\"",
                "\"\\\"  \\\"\"",
                4,
            ),
            ("from:@", "a user name after \"from:\"", "\"@\"", 6),
            ("emoji:::", "an emoji name after \"emoji:\"", "\"::\"", 7),
            (
                "from:all*",
                "a user name without wildcards after \"from:\"",
                "\"all*\"",
                9,
            ),
            ("from>=alice", "\":\" after \"from\"", "\">=\"", 5),
            ("on>2024-01-01", "\":\" after \"on\"", "\">\"", 3),
        ] {
            let error = parse_err(query);
            assert_eq!(
                (error.expected.as_str(), error.found.as_str(), error.column),
                (expected, found, column),
                "{query}"
            );
        }
    }

    #[test]
    fn dates_and_their_boundaries() {
        let jan_1 = JAN_1_2024_US;
        let jan_2 = jan_1 + DAY_US;
        let cases = [
            // after = strictly after the whole day; before = strictly before it.
            ("after:2024-01-01", range(Some(jan_2), None)),
            ("before:2024-01-01", range(None, Some(jan_1))),
            ("on:2024-01-01", range(Some(jan_1), Some(jan_2))),
            ("sent:2024-01-01", range(Some(jan_1), Some(jan_2))),
            ("sent=2024-01-01", range(Some(jan_1), Some(jan_2))),
            ("sent>=2024-01-01", range(Some(jan_1), None)),
            ("sent>2024-01-01", range(Some(jan_2), None)),
            ("sent<=2024-01-01", range(None, Some(jan_2))),
            ("sent<2024-01-01", range(None, Some(jan_1))),
            (
                "sent:2024-01-01..2024-03-31",
                range(Some(jan_1), Some(jan_1 + 91 * DAY_US)),
            ),
            (
                "sent:2024-01-01..2024-01-01",
                range(Some(jan_1), Some(jan_2)),
            ),
            (
                "sent:\"2024-01-01 09:00..2024-01-01 17:30\"",
                range(
                    Some(jan_1 + 9 * HOUR_US),
                    Some(jan_1 + 17 * HOUR_US + HOUR_US / 2 + 1),
                ),
            ),
            // An instant is one microsecond: `sent=` finds events with exactly that `at`.
            (
                "sent=2024-01-01T00:00:00Z",
                range(Some(jan_1), Some(jan_1 + 1)),
            ),
            (
                "after:2024-01-01T09:00:00+02:00",
                range(Some(jan_1 + 7 * HOUR_US + 1), None),
            ),
            (
                "before:2024-01-01T09:00:00.5-01:00",
                range(None, Some(jan_1 + 10 * HOUR_US + 500_000)),
            ),
            ("sent>=1970-01-01", range(None, None)),
            ("sent<=9999-12-31", range(None, None)),
            ("after:1969-06-01", range(None, None)),
            (
                "before:9999-12-31",
                range(None, Some(MAX_AT_US + 1 - DAY_US)),
            ),
            ("on:1970-01-01", range(None, Some(DAY_US))),
            ("sent:1960-01-01..1970-01-01", range(None, Some(DAY_US))),
        ];
        for (query, expected) in cases {
            let parsed = parse_ok(query);
            assert_eq!(parsed, expected, "{query}");
            assert_eq!(parse_ok(&parsed.to_string()), parsed, "{query}: {parsed}");
        }
        assert_eq!(
            parse_ok("sent:2024-01-01..2024-03-31").to_string(),
            "sent:2024-01-01T00:00:00Z..2024-03-31T23:59:59.999999Z"
        );
        assert_eq!(
            parse_ok("after:2024-01-01").to_string(),
            "sent>=2024-01-02T00:00:00Z"
        );
        assert_eq!(
            parse_ok("before:2024-01-01").to_string(),
            "sent<=2023-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn day_boundaries_partition_time_without_gaps_or_overlaps() {
        // An event at exactly midnight belongs to the day it starts.
        let midnight = JAN_1_2024_US + DAY_US;
        let selects = |query: &str, at_us: i64| {
            let Query::Filter(Filter::TimeRange { from_us, to_us }) = parse_ok(query) else {
                panic!("{query} is not a time range");
            };
            from_us.is_none_or(|from_us| from_us <= at_us)
                && to_us.is_none_or(|to_us| at_us < to_us)
        };
        for at_us in [midnight - 1, midnight, midnight + 1] {
            let on_first = selects("on:2024-01-01", at_us);
            let on_second = selects("on:2024-01-02", at_us);
            assert!(on_first != on_second, "{at_us}");
            assert_eq!(selects("before:2024-01-02", at_us), on_first);
            assert_eq!(selects("after:2024-01-01", at_us), on_second);
            assert_eq!(
                selects("sent<2024-01-02", at_us),
                !selects("sent>=2024-01-02", at_us)
            );
            assert_eq!(
                selects("sent<=2024-01-01", at_us),
                !selects("sent>2024-01-01", at_us)
            );
        }
        // Two events with the same timestamp: both or neither.
        let instant = "2024-01-02T00:00:00Z";
        assert!(selects(&format!("sent={instant}"), midnight));
        assert!(!selects(&format!("sent={instant}"), midnight + 1));
        assert!(!selects(&format!("after:{instant}"), midnight));
        assert!(selects(&format!("sent>={instant}"), midnight));
        assert!(!selects(&format!("before:{instant}"), midnight));
    }

    #[test]
    fn zones_shift_days() {
        let paris = ParseOptions {
            default_zone: FixedOffset::east_opt(3600).expect("valid offset"),
            now: None,
        };
        let parsed = parse("on:2024-01-01", &paris).expect("valid");
        assert_eq!(
            parsed,
            range(
                Some(JAN_1_2024_US - HOUR_US),
                Some(JAN_1_2024_US + DAY_US - HOUR_US)
            )
        );
        assert_eq!(
            parsed.to_string(),
            "sent:2023-12-31T23:00:00Z..2024-01-01T22:59:59.999999Z"
        );
        // The canonical form is in UTC, so it means the same under any zone.
        assert_eq!(parse_ok(&parsed.to_string()), parsed);
        // A written zone wins over the default.
        assert_eq!(
            parse("sent>=2024-01-01T00:00:00Z", &paris).expect("valid"),
            range(Some(JAN_1_2024_US), None)
        );
        assert_eq!(
            parse("sent>=2024-01-01T00:00:00", &paris).expect("valid"),
            range(Some(JAN_1_2024_US - HOUR_US), None)
        );
    }

    #[test]
    fn relative_dates_need_now() {
        let error = parse_err("wire after:yesterday");
        assert_eq!(
            error.to_string(),
            "at column 12: expected a date like 2024-01-31 after \"after:\", found \"yesterday\"; \
             relative dates need the current time, which this search was not given: write the date"
        );
        let options = ParseOptions {
            default_zone: FixedOffset::east_opt(0).expect("valid offset"),
            now: DateTime::from_timestamp_micros(JAN_1_2024_US + 13 * HOUR_US),
        };
        assert_eq!(
            parse("on:today", &options),
            Ok(range(Some(JAN_1_2024_US), Some(JAN_1_2024_US + DAY_US)))
        );
        assert_eq!(
            parse("after:yesterday", &options),
            Ok(range(Some(JAN_1_2024_US), None))
        );
    }

    #[test]
    fn date_errors() {
        for (query, expected, column, message) in [
            (
                "after:2024-02-30",
                "a date like 2024-01-31 after \"after:\"",
                7,
                "2024-02-30 is not a day of the calendar",
            ),
            (
                "sent>=01/31/2024",
                "a date like 2024-01-31 after \"sent>=\"",
                7,
                "write dates as YYYY-MM-DD: 01/02/2024 could be January or February",
            ),
            (
                "sent:2024-03-31..2024-01-01",
                "an end on or after the start \"2024-03-31\"",
                18,
                "the range is inverted: write the earlier date first",
            ),
            (
                "sent:2024-01-02..2024-01-01T23:00Z",
                "an end on or after the start \"2024-01-02\"",
                18,
                "the range is inverted: write the earlier date first",
            ),
            (
                "sent:2024-01-01..",
                "a date like 2024-01-31 after \"sent:\"",
                18,
                "write dates as YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SS with an optional zone like Z or +02:00",
            ),
            (
                "after:2024-01-01..2024-02-01",
                "a date like 2024-01-31 after \"after:\"",
                7,
                "only sent: takes a range: sent:2024-01-01..2024-03-31",
            ),
            (
                "sent>=2024-01-01..2024-02-01",
                "a date like 2024-01-31 after \"sent>=\"",
                7,
                "only sent: takes a range: sent:2024-01-01..2024-03-31",
            ),
            (
                "before:1970-01-01",
                "a date between 1970-01-01 and 9999-12-31",
                8,
                "before:1970-01-01 matches nothing: the archive holds events from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z",
            ),
            (
                "after:9999-12-31",
                "a date between 1970-01-01 and 9999-12-31",
                7,
                "after:9999-12-31 matches nothing: the archive holds events from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z",
            ),
            (
                "on:",
                "a date like 2024-01-31 after \"on:\"",
                4,
                "write the value right after \"on:\", in quotes if it has spaces",
            ),
            (
                "sent:\"2024-13-01\"",
                "a date like 2024-01-31 after \"sent:\"",
                6,
                "2024-13-01 is not a day of the calendar",
            ),
        ] {
            let error = parse_err(query);
            assert_eq!(
                (
                    error.expected.as_str(),
                    error.column,
                    error.message.as_str()
                ),
                (expected, column, message),
                "{query}"
            );
        }
    }

    #[test]
    fn groups_that_can_match_nothing_are_refused() {
        let error = parse_err("from:alice wire from:bob");
        assert_eq!(error.column, 17);
        assert_eq!(error.expected, "from: once in a group joined by AND");
        assert_eq!(
            error.message,
            "an event has one sender, so from:alice AND from:bob matches nothing; \
             write (from:alice OR from:bob) to match either"
        );
        assert_eq!(parse_err("(in:a x) in:b").column, 10);
        assert_eq!(parse_err("kind:post kind:edit").column, 11);
        assert_eq!(parse_err("thread:p-1 AND thread:p-2").column, 16);
        assert_eq!(parse_err("team:a team:b").column, 8);
        let error = parse_err("on:2024-01-01 on:2024-01-02");
        assert_eq!(error.column, 15);
        assert_eq!(
            error.message,
            "no event can be in both: these dates exclude each other"
        );
        assert!(
            parse(
                "after:2024-03-01 before:2024-02-01",
                &ParseOptions::default()
            )
            .is_err()
        );

        // Same value twice, either of two, or one excluded: fine.
        for query in [
            "from:alice from:Alice",
            "from:alice OR from:bob",
            "from:alice -from:bob",
            "(from:alice OR from:bob) in:x",
            "after:2024-01-01 before:2024-02-01",
            "on:2024-01-01 sent=2024-01-01T12:00:00Z",
        ] {
            parse_ok(query);
        }
    }

    #[test]
    fn structural_errors_point_at_the_problem() {
        for (query, expected, found, column) in [
            ("", "a word, phrase, field or (", "an empty query", 1),
            ("   ", "a word, phrase, field or (", "an empty query", 1),
            (
                "wire AND",
                "a word, phrase, field or ( after AND",
                "the end of the query",
                9,
            ),
            (
                "wire AND  ",
                "a word, phrase, field or ( after AND",
                "the end of the query",
                9,
            ),
            ("AND wire", "a word, phrase, field or (", "\"AND\"", 1),
            (
                "wire OR",
                "a word, phrase, field or ( after OR",
                "the end of the query",
                8,
            ),
            ("OR", "a word, phrase, field or (", "\"OR\"", 1),
            (
                "a AND OR b",
                "a word, phrase, field or ( after AND",
                "\"OR\"",
                7,
            ),
            (
                "a OR AND b",
                "a word, phrase, field or ( after OR",
                "\"AND\"",
                6,
            ),
            (
                "NOT",
                "a word, phrase, field or ( after NOT",
                "the end of the query",
                4,
            ),
            (
                "a NOT",
                "a word, phrase, field or ( after NOT",
                "the end of the query",
                6,
            ),
            (
                "NOT OR a",
                "a word, phrase, field or ( after NOT",
                "\"OR\"",
                5,
            ),
            (
                "-",
                "a word, phrase, field or ( right after -",
                "the end of the query",
                1,
            ),
            (
                "wire - offshore",
                "a word, phrase, field or ( right after -",
                "the end of the query",
                6,
            ),
            ("-AND x", "a word, phrase, field or ( after -", "\"AND\"", 2),
            (
                "(wire",
                ") to close the ( at column 1",
                "the end of the query",
                6,
            ),
            (
                "((a) OR (b)",
                ") to close the ( at column 1",
                "the end of the query",
                12,
            ),
            (
                "wire)",
                "AND, OR, another clause or the end of the query",
                "\")\"",
                5,
            ),
            (")", "a word, phrase, field or (", "\")\"", 1),
            (
                "()",
                "a word, phrase, field or ( inside the parentheses",
                "\")\"",
                2,
            ),
            (
                "a ( ) b",
                "a word, phrase, field or ( inside the parentheses",
                "\")\"",
                5,
            ),
            ("(OR a)", "a word, phrase, field or ( after (", "\"OR\"", 2),
            ("\"wire", "a closing quote", "the end of the query", 1),
            ("\"\"", "a phrase with a letter or digit", "\"\\\"\\\"\"", 1),
            (
                "\"...\"",
                "a phrase with a letter or digit",
                "\"\\\"...\\\"\"",
                1,
            ),
        ] {
            let error = parse_err(query);
            assert_eq!(
                (error.expected.as_str(), error.found.as_str(), error.column),
                (expected, found, column),
                "{query}"
            );
        }
        assert_eq!(parse_err("wire)").message, "this ) has no matching (");
        assert_eq!(
            parse_err("AND wire").message,
            "AND and OR join two clauses: put one on each side"
        );
        assert_eq!(parse_err("wire AND").message, "AND needs a clause after it");
        assert_eq!(
            parse_err("").message,
            "an empty query is refused rather than matching everything"
        );
    }

    #[test]
    fn non_latin_text() {
        assert_parses(
            "Привет мир",
            &and(vec![term("Привет"), term("мир")]),
            "Привет AND мир",
        );
        assert_parses(
            "调查 OR 資金",
            &or(vec![term("调查"), term("資金")]),
            "调查 OR 資金",
        );
        assert_parses("\"资金转移\"", &phrase("资金转移"), "\"资金转移\"");
        assert_parses(
            "\"перевод средств\" NEAR(3) офшор*",
            &near(phrase("перевод средств"), prefix("офшор"), 3),
            "\"перевод средств\" NEAR(3) офшор*",
        );
        assert_parses(
            "café -crème",
            &and(vec![term("café"), not(term("crème"))]),
            "café AND NOT crème",
        );
        assert_parses(
            "東京\u{3000}大阪",
            &and(vec![term("東京"), term("大阪")]),
            "東京 AND 大阪",
        );
        let error = parse_err("Привет frm:x");
        assert_eq!((error.position, error.column), (13, 8));
        let error = parse_err("调查 (");
        assert_eq!((error.position, error.column), (8, 5));
    }

    #[test]
    fn a_lone_negation_means_everything_else() {
        assert_parses("NOT wire", &not(term("wire")), "NOT wire");
        assert_parses(
            "-from:svc-bot",
            &not(filter(Filter::From("svc-bot".to_owned()))),
            "NOT from:svc-bot",
        );
    }

    #[test]
    fn limits_keep_the_parser_bounded() {
        let deep = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(parse_ok(&deep), term("a"));
        let deeper = format!(
            "{}a{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let error = parse_err(&deeper);
        assert_eq!(
            error.expected,
            format!("at most {MAX_DEPTH} levels of parentheses and NOT")
        );
        assert_eq!(error.column, MAX_DEPTH + 1);
        let nots = format!("{}a", "NOT ".repeat(1_000));
        assert_eq!(parse_err(&nots).column, MAX_DEPTH * 4 + 1);
        let minuses = format!("{}a", "-".repeat(5_000));
        assert!(parse(&minuses, &ParseOptions::default()).is_err());
        let parens = "(".repeat(MAX_QUERY_BYTES);
        assert!(parse(&parens, &ParseOptions::default()).is_err());

        let long = format!("{}é", "a".repeat(MAX_QUERY_BYTES - 1));
        let error = parse_err(&long);
        // Not in the middle of the é.
        assert_eq!(error.position, MAX_QUERY_BYTES - 1);
        assert_eq!(error.found, format!("{} bytes", MAX_QUERY_BYTES + 1));
        let many_terms = "a ".repeat(MAX_QUERY_BYTES / 2);
        let Query::And(children) = parse_ok(&many_terms) else {
            panic!("an AND of terms");
        };
        assert_eq!(children.len(), MAX_QUERY_BYTES / 2);
    }

    /// The shapes `parse` promises on `Query`.
    fn assert_well_formed(query: &Query) {
        match query {
            Query::Term(term) => {
                assert!(
                    !term.text.is_empty() && !term.text.contains('*'),
                    "{term:?}"
                );
                assert!(term.text.chars().any(char::is_alphanumeric), "{term:?}");
            }
            Query::Phrase(phrase) => {
                assert!(phrase.text.chars().any(char::is_alphanumeric), "{phrase:?}");
                assert!(!phrase.text.contains('*'), "{phrase:?}");
            }
            Query::Near { distance, .. } => assert!(*distance <= MAX_NEAR_DISTANCE),
            Query::And(children) => {
                assert!(children.len() >= 2, "{query:?}");
                for child in children {
                    assert!(!matches!(child, Query::And(_)), "{query:?}");
                    assert_well_formed(child);
                }
            }
            Query::Or(children) => {
                assert!(children.len() >= 2, "{query:?}");
                for child in children {
                    assert!(!matches!(child, Query::Or(_)), "{query:?}");
                    assert_well_formed(child);
                }
            }
            Query::Not(child) => assert_well_formed(child),
            Query::Filter(Filter::TimeRange { from_us, to_us }) => {
                for bound in [from_us, to_us].into_iter().flatten() {
                    assert!((MIN_AT_US + 1..=MAX_AT_US).contains(bound), "{query:?}");
                }
                if let (Some(from_us), Some(to_us)) = (from_us, to_us) {
                    assert!(from_us < to_us, "{query:?}");
                }
            }
            Query::Filter(_) => {}
        }
    }

    /// Whatever the input: no panic; an answer that parses back from its
    /// canonical form, or an error inside the query.
    fn check_any(query: &str, options: &ParseOptions) -> Result<(), TestCaseError> {
        match parse(query, options) {
            Ok(parsed) => {
                assert_well_formed(&parsed);
                let canonical = parsed.to_string();
                let again = parse(&canonical, options);
                prop_assert_eq!(again.as_ref(), Ok(&parsed), "{} -> {}", query, canonical);
                // The canonical form does not depend on the options.
                prop_assert_eq!(parse(&canonical, &ParseOptions::default()), Ok(parsed));
            }
            Err(error) => {
                prop_assert!(error.position <= query.len());
                prop_assert!(query.is_char_boundary(error.position));
                prop_assert_eq!(error.column, query[..error.position].chars().count() + 1);
                prop_assert!(!error.expected.is_empty() && !error.found.is_empty());
                prop_assert!(error.to_string().starts_with("at column "));
            }
        }
        Ok(())
    }

    /// Pieces of the grammar, good and bad, for the token-sequence fuzzing.
    const FRAGMENTS: &[&str] = &[
        "wire",
        "transfer",
        "invest*",
        "Café",
        "Привет",
        "调查",
        "\"wire transfer\"",
        "“memo”",
        "\"\"",
        "\"a\\\"b\"",
        "AND",
        "OR",
        "NOT",
        "-",
        "-x",
        "(",
        ")",
        "NEAR",
        "NEAR(3)",
        "NEAR(n=0)",
        "NEAR(",
        "near(2)",
        "*",
        "in*vest",
        "!!!",
        "from:alice",
        "from:bob",
        "from:",
        "from:\"\"",
        "from:@x",
        "in:\"gas desk\"",
        "in:#trading",
        "team:legal",
        "kind:post",
        "kind:edit",
        "kind:bogus",
        "has:file",
        "has:reaction",
        "has:x",
        "is:edited",
        "is:deleted",
        "filename:memo.pdf",
        "emoji::tada:",
        "thread:p-1",
        "exact:Café",
        "exact:\"Wire\"",
        "exact:",
        "frm:x",
        "http://x",
        "after:2024-01-01",
        "before:2024-03-01",
        "on:2024-02-29",
        "on:2023-02-29",
        "after:yesterday",
        "on:today",
        "sent>=2024-01-01T09:00:00+02:00",
        "sent<2024-01-01T09:00",
        "sent=2024-01-01T00:00:00Z",
        "sent:2024-01-01..2024-03-31",
        "sent:2024-03-31..2024-01-01",
        "sent>1969-01-01",
        "before:1970-01-01",
        "after:9999-12-31",
        "sent<=9999-12-31",
        "sent:\"2024-01-01 10:00\"",
        "\"",
        "\\",
        ":",
        "..",
        "=",
        "a=b",
    ];

    /// Clauses that are valid alone and with each other (no two values of
    /// one single-valued field, dates that overlap).
    const GOOD_CLAUSES: &[&str] = &[
        "wire",
        "invest*",
        "Café",
        "exact:Café",
        "Привет",
        "调查",
        "\"wire transfer\"",
        "exact:\"Wire Transfer\"",
        "a NEAR(2) \"off shore\"",
        "b NEAR c*",
        "from:alice",
        "in:\"gas desk\"",
        "team:legal",
        "kind:post",
        "has:file",
        "has:reaction",
        "is:edited",
        "is:deleted",
        "filename:memo.pdf",
        "emoji::tada:",
        "thread:p-1",
        "after:2024-01-01",
        "before:2024-12-31",
        "on:2024-06-15",
        "sent:2024-03-01..2024-09-30",
        "sent>=2024-06-01T09:00:00+02:00",
        "sent<2024-06-30",
    ];

    /// Queries built from the grammar: they must all parse.
    fn grammatical_query() -> impl Strategy<Value = String> {
        let clause = proptest::sample::select(GOOD_CLAUSES).prop_map(str::to_owned);
        clause.prop_recursive(5, 48, 3, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
                inner.clone().prop_map(|a| format!("NOT {a}")),
                inner.clone().prop_map(|a| format!("-({a})")),
                inner.prop_map(|a| format!("({a})")),
            ]
        })
    }

    fn zones() -> impl Strategy<Value = ParseOptions> {
        (
            -86_399i32..86_400,
            proptest::option::of(0i64..253_402_300_799_999_999),
        )
            .prop_map(|(offset, now_us)| ParseOptions {
                default_zone: FixedOffset::east_opt(offset)
                    .unwrap_or(ParseOptions::default().default_zone),
                now: now_us.and_then(DateTime::from_timestamp_micros),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn arbitrary_text_never_panics(query in any::<String>()) {
            check_any(&query, &ParseOptions::default())?;
        }

        #[test]
        fn arbitrary_query_like_text_never_panics(query in "[a-zA-Z0-9 ()\"*:.<>=#@_\\-\\\\“”é调]{0,40}") {
            check_any(&query, &ParseOptions::default())?;
        }

        #[test]
        fn arbitrary_token_sequences_never_panic(
            fragments in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..12),
            glue in proptest::collection::vec(proptest::sample::select(&[" ", " ", "", "  "][..]), 12),
            options in zones(),
        ) {
            let mut query = String::new();
            for (fragment, glue) in fragments.iter().zip(&glue) {
                query.push_str(fragment);
                query.push_str(glue);
            }
            check_any(&query, &options)?;
        }

        #[test]
        fn grammatical_queries_parse_and_round_trip(query in grammatical_query(), options in zones()) {
            prop_assert!(parse(&query, &options).is_ok(), "{}: {:?}", query, parse(&query, &options));
            check_any(&query, &options)?;
        }
    }
}
