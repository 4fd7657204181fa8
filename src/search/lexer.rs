//! Splits a query into tokens: parentheses, operators, words, quoted
//! phrases and `field:value` clauses, each with its byte span.
//!
//! The lexer decides what a piece of text *is* (an operator, a field, a
//! word); the parser decides whether it is allowed *there*. It never panics
//! and never drops text: every byte of the query is in a token or is
//! whitespace.

use super::error::{QueryError, describe};

/// Largest `NEAR(n)` accepted.
pub const MAX_NEAR_DISTANCE: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    LParen,
    RParen,
    And,
    Or,
    Not,
    /// A `-` glued to the start of the next clause.
    Minus,
    /// `NEAR`, `NEAR(5)` or `NEAR(n=5)`.
    Near(Option<u32>),
    /// Any other run of characters up to whitespace, a parenthesis or a quote.
    Word(String),
    /// Quoted text, escapes resolved.
    Phrase(String),
    Field(FieldToken),
}

/// `name:value`, `sent>=value`, ...: letters or `_`, an operator, a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldToken {
    /// As typed (any case).
    pub name: String,
    pub op: Op,
    pub op_position: usize,
    /// The value, escapes resolved when quoted. May be empty (an error for
    /// the parser to report, with the field's name).
    pub value: String,
    pub quoted: bool,
    /// Byte offset of the value (of its opening quote when quoted).
    pub value_position: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Colon,
    Eq,
    Ge,
    Le,
    Gt,
    Lt,
}

impl Op {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Colon => ":",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    /// Byte span in the query.
    pub start: usize,
    pub end: usize,
}

/// The straight double quote and the curly quotes word processors put in
/// (queries are often pasted from memos). Any of them opens or closes a phrase.
pub(crate) fn is_quote(c: char) -> bool {
    matches!(c, '"' | '\u{201C}' | '\u{201D}')
}

fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')' || is_quote(c)
}

pub(crate) fn lex(query: &str) -> Result<Vec<Token>, QueryError> {
    let mut lexer = Lexer { query, at: 0 };
    let mut tokens = Vec::new();
    loop {
        while lexer.peek().is_some_and(char::is_whitespace) {
            lexer.bump();
        }
        let start = lexer.at;
        let Some(c) = lexer.peek() else {
            return Ok(tokens);
        };
        let kind = match c {
            '(' => {
                lexer.bump();
                TokenKind::LParen
            }
            ')' => {
                lexer.bump();
                TokenKind::RParen
            }
            c if is_quote(c) => TokenKind::Phrase(lexer.quoted()?),
            '-' => {
                lexer.bump();
                match lexer.peek() {
                    Some(next) if !next.is_whitespace() && next != ')' => TokenKind::Minus,
                    _ => {
                        return Err(QueryError::new(
                            query,
                            start,
                            "a word, phrase, field or ( right after -",
                            describe(lexer.rest_of_word()),
                        )
                        .with_message(
                            "- excludes what follows it, with no space: -offshore, -from:bot",
                        ));
                    }
                }
            }
            _ => lexer.word(start)?,
        };
        tokens.push(Token {
            kind,
            start,
            end: lexer.at,
        });
    }
}

struct Lexer<'q> {
    query: &'q str,
    /// Byte offset of the next character; always on a character boundary.
    at: usize,
}

impl<'q> Lexer<'q> {
    fn rest(&self) -> &'q str {
        self.query.get(self.at..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    /// The text from here up to the next whitespace (for error messages).
    fn rest_of_word(&self) -> &'q str {
        let rest = self.rest();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        &rest[..end]
    }

    /// A quoted string starting at the opening quote. `\` escapes a quote or
    /// a backslash; before anything else it is kept as it is.
    fn quoted(&mut self) -> Result<String, QueryError> {
        let open = self.at;
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(
                        QueryError::new(self.query, open, "a closing quote", describe(""))
                            .with_message("this quote is never closed"),
                    );
                }
                Some('\\') => match self.peek() {
                    Some(next) if next == '\\' || is_quote(next) => {
                        self.bump();
                        text.push(next);
                    }
                    _ => text.push('\\'),
                },
                Some(c) if is_quote(c) => return Ok(text),
                Some(c) => text.push(c),
            }
        }
    }

    /// A word, an operator, `NEAR(n)` or a field clause starting at `start`.
    fn word(&mut self, start: usize) -> Result<TokenKind, QueryError> {
        while self.peek().is_some_and(|c| !is_delimiter(c)) {
            self.bump();
        }
        let raw = &self.query[start..self.at];
        match raw {
            "AND" => return Ok(TokenKind::And),
            "OR" => return Ok(TokenKind::Or),
            "NOT" => return Ok(TokenKind::Not),
            "NEAR" => return self.near_distance(),
            _ => {}
        }
        if raw.eq_ignore_ascii_case("near") && self.peek() == Some('(') {
            return Err(QueryError::new(
                self.query,
                start,
                "NEAR in capital letters",
                describe(raw),
            )
            .with_message("operators are written in capitals: NEAR(5), AND, OR, NOT"));
        }
        if let Some(field) = self.field(start, raw)? {
            return Ok(TokenKind::Field(field));
        }
        Ok(TokenKind::Word(raw.to_owned()))
    }

    /// After `NEAR`: an optional `(n)` or `(n=n)` glued to it.
    fn near_distance(&mut self) -> Result<TokenKind, QueryError> {
        if self.peek() != Some('(') {
            return Ok(TokenKind::Near(None));
        }
        let open = self.at;
        self.bump();
        let inside_start = self.at;
        while self.peek().is_some_and(|c| c != ')' && !is_delimiter(c)) {
            self.bump();
        }
        let inside = &self.query[inside_start..self.at];
        let closed = self.peek() == Some(')');
        let digits = inside.strip_prefix("n=").unwrap_or(inside);
        let distance = (closed && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u32>().ok())
            .flatten()
            .filter(|distance| *distance <= MAX_NEAR_DISTANCE);
        match distance {
            Some(distance) => {
                self.bump();
                Ok(TokenKind::Near(Some(distance)))
            }
            None => {
                let found_end = if closed { self.at + 1 } else { self.at };
                Err(QueryError::new(
                    self.query,
                    open,
                    format!("a distance like NEAR(5), from 0 to {MAX_NEAR_DISTANCE}"),
                    describe(&self.query[open..found_end]),
                )
                .with_message("the distance is the most words allowed between the two sides"))
            }
        }
    }

    /// `raw` as a field clause, if it starts with letters (or `_`) and an
    /// operator. An empty bare value followed by a quote takes the quoted
    /// text as its value (`in:"gas desk"`).
    fn field(&mut self, start: usize, raw: &str) -> Result<Option<FieldToken>, QueryError> {
        let name_len = raw
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic() || *b == b'_')
            .count();
        if name_len == 0 {
            return Ok(None);
        }
        let after_name = &raw[name_len..];
        let op = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            (":", Op::Colon),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ]
        .into_iter()
        .find(|(text, _)| after_name.starts_with(text));
        let Some((op_text, op)) = op else {
            return Ok(None);
        };
        let op_position = start + name_len;
        let value_position = op_position + op_text.len();
        let bare = &raw[name_len + op_text.len()..];
        let (value, quoted) = if bare.is_empty() && self.peek().is_some_and(is_quote) {
            (self.quoted()?, true)
        } else {
            (bare.to_owned(), false)
        };
        Ok(Some(FieldToken {
            name: raw[..name_len].to_owned(),
            op,
            op_position,
            value,
            quoted,
            value_position,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(query: &str) -> Vec<TokenKind> {
        lex(query)
            .expect("lexes")
            .into_iter()
            .map(|token| token.kind)
            .collect()
    }

    fn word(text: &str) -> TokenKind {
        TokenKind::Word(text.to_owned())
    }

    #[test]
    fn operators_are_capitals_only() {
        assert_eq!(
            kinds("a AND b OR NOT c and or not Near"),
            vec![
                word("a"),
                TokenKind::And,
                word("b"),
                TokenKind::Or,
                TokenKind::Not,
                word("c"),
                word("and"),
                word("or"),
                word("not"),
                word("Near"),
            ]
        );
    }

    #[test]
    fn near_takes_an_optional_distance() {
        assert_eq!(
            kinds("NEAR NEAR(0) NEAR(n=12) NEAR(1000)"),
            vec![
                TokenKind::Near(None),
                TokenKind::Near(Some(0)),
                TokenKind::Near(Some(12)),
                TokenKind::Near(Some(1000)),
            ]
        );
        for bad in [
            "a NEAR(x) b",
            "a NEAR() b",
            "a NEAR(5 b",
            "a NEAR(1001) b",
            "a NEAR(99999999999) b",
            "a NEAR(-1) b",
        ] {
            let error = lex(bad).expect_err(bad);
            assert_eq!(error.position, 6, "{bad}");
            assert!(
                error.expected.starts_with("a distance like NEAR(5)"),
                "{bad}"
            );
        }
        let error = lex("a near(5) b").expect_err("lowercase");
        assert_eq!(error.expected, "NEAR in capital letters");
    }

    #[test]
    fn minus_glues_to_the_next_clause() {
        assert_eq!(
            kinds("-a -\"b c\" -(d) a-b"),
            vec![
                TokenKind::Minus,
                word("a"),
                TokenKind::Minus,
                TokenKind::Phrase("b c".to_owned()),
                TokenKind::Minus,
                TokenKind::LParen,
                word("d"),
                TokenKind::RParen,
                word("a-b"),
            ]
        );
        for bad in ["a - b", "a -", "(a -)"] {
            let error = lex(bad).expect_err(bad);
            assert_eq!(error.expected, "a word, phrase, field or ( right after -");
        }
    }

    #[test]
    fn quotes_escape_and_curly_quotes() {
        assert_eq!(
            kinds(r#""say \"hi\" \\ \x" “memo”"#),
            vec![
                TokenKind::Phrase(r#"say "hi" \ \x"#.to_owned()),
                TokenKind::Phrase("memo".to_owned()),
            ]
        );
        let error = lex("wire \"transfer").expect_err("unterminated");
        assert_eq!((error.position, error.column), (5, 6));
        assert_eq!(error.expected, "a closing quote");
        assert_eq!(error.found, "the end of the query");
        let error = lex(r#"a "b\""#).expect_err("escaped closing quote");
        assert_eq!(error.position, 2);
    }

    #[test]
    fn fields_take_bare_or_quoted_values() {
        let tokens =
            lex(r#"in:"gas desk" sent>=2024-01-01 From:@allen x:y 10:30 été:x"#).expect("lexes");
        let TokenKind::Field(field) = &tokens[0].kind else {
            panic!("{tokens:?}");
        };
        assert_eq!(
            (
                field.name.as_str(),
                field.op,
                field.value.as_str(),
                field.quoted
            ),
            ("in", Op::Colon, "gas desk", true)
        );
        assert_eq!((field.op_position, field.value_position), (2, 3));
        assert_eq!((tokens[0].start, tokens[0].end), (0, 13));
        let TokenKind::Field(field) = &tokens[1].kind else {
            panic!("{tokens:?}");
        };
        assert_eq!(
            (field.name.as_str(), field.op, field.value.as_str()),
            ("sent", Op::Ge, "2024-01-01")
        );
        let TokenKind::Field(field) = &tokens[2].kind else {
            panic!("{tokens:?}");
        };
        assert_eq!(
            (field.name.as_str(), field.value.as_str()),
            ("From", "@allen")
        );
        assert!(matches!(&tokens[3].kind, TokenKind::Field(f) if f.name == "x"));
        assert_eq!(tokens[4].kind, word("10:30"));
        assert_eq!(tokens[5].kind, word("été:x"));
    }

    #[test]
    fn words_stop_at_parentheses_and_quotes() {
        assert_eq!(
            kinds("(wire)transfer\"x\""),
            vec![
                TokenKind::LParen,
                word("wire"),
                TokenKind::RParen,
                word("transfer"),
                TokenKind::Phrase("x".to_owned()),
            ]
        );
        assert_eq!(kinds("  \t\u{3000} "), vec![]);
        assert_eq!(
            kinds("调查\u{3000}Привет"),
            vec![word("调查"), word("Привет")]
        );
    }
}
