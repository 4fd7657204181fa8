//! Translates a parsed [`search::Query`](crate::search::Query) and the
//! searcher's [`Scope`] into one tantivy query.
//!
//! The scope is a required clause of the top query (never a filter applied
//! to results), so no document outside it can match. Words are analysed with
//! the same analysers as the indexed text; a word that analyses into several
//! (`wire-transfer`, a CJK word) becomes a phrase. Filters score nothing, so
//! relevance comes from the words alone.
//!
//! Prefixes are expanded here against every segment's dictionary, and a
//! prefix that expands to more than [`MAX_PREFIX_EXPANSIONS`] words is an
//! error: tantivy would otherwise silently use only the first ones.

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, EmptyQuery, Occur, PhrasePrefixQuery, PhraseQuery,
    Query as TantivyQuery, RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, Score, Searcher, SegmentReader, Term};

use super::guard::Guarded;
use super::near::{NearQuery, Side};
use super::{EXACT_TOKENIZER, IndexError, NAME_TOKENIZER, SearchIndex, TEXT_TOKENIZER};
use crate::event::EventKind;
use crate::search::{Filter, Phrase, Query, Scope, Text};

/// Most words one prefix may stand for.
pub const MAX_PREFIX_EXPANSIONS: usize = 10_000;

type Boxed = Box<dyn TantivyQuery>;

/// The tantivy query of `query` within `scope`.
pub(crate) fn compile(
    index: &SearchIndex,
    searcher: &Searcher,
    query: &Query,
    scope: &Scope,
) -> Result<Boxed, IndexError> {
    let Some(scope_query) = scope_query(index, scope) else {
        return Ok(Box::new(EmptyQuery));
    };
    let compiler = Compiler {
        index,
        searcher,
        scope: scope_query.box_clone(),
    };
    let body = compiler.query(query)?;
    Ok(Box::new(BooleanQuery::new(vec![
        (Occur::Must, body),
        (
            Occur::Must,
            Box::new(ConstScoreQuery::new(scope_query, 0.0)),
        ),
    ])))
}

/// The documents of `scope`, or `None` when it sees nothing.
pub(crate) fn scope_query(index: &SearchIndex, scope: &Scope) -> Option<Boxed> {
    let fields = index.fields();
    match scope {
        Scope::All => Some(Box::new(AllQuery)),
        Scope::Nothing => None,
        Scope::Limited { teams, channels } => {
            let mut clauses: Vec<(Occur, Boxed)> = Vec::new();
            if !teams.is_empty() {
                clauses.push((
                    Occur::Should,
                    Box::new(TermSetQuery::new(
                        teams
                            .iter()
                            .map(|team| Term::from_field_text(fields.team_exact, team)),
                    )),
                ));
            }
            for channel in channels {
                clauses.push((
                    Occur::Should,
                    Box::new(BooleanQuery::new(vec![
                        (Occur::Must, raw(fields.team_exact, &channel.team)),
                        (Occur::Must, raw(fields.channel_exact, &channel.channel)),
                    ])),
                ));
            }
            if clauses.is_empty() {
                None
            } else {
                Some(Box::new(BooleanQuery::new(clauses)))
            }
        }
    }
}

fn raw(field: Field, value: &str) -> Boxed {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

fn filter(query: Boxed) -> Boxed {
    Box::new(ConstScoreQuery::new(query, 0.0))
}

struct Compiler<'a> {
    index: &'a SearchIndex,
    searcher: &'a Searcher,
    /// The scope's query: post-level facts (edited, deleted, reacted to)
    /// are learnt from events inside the scope only.
    scope: Boxed,
}

impl Compiler<'_> {
    fn query(&self, query: &Query) -> Result<Boxed, IndexError> {
        Ok(match query {
            Query::Term(term) => self.text(&Text::Term(term.clone()))?,
            Query::Phrase(phrase) => self.text(&Text::Phrase(phrase.clone()))?,
            Query::Near {
                left,
                right,
                distance,
            } => {
                let (left, right) = (self.side(left)?, self.side(right)?);
                if left.is_empty()
                    || right.is_empty()
                    || left.iter().chain(&right).any(Vec::is_empty)
                {
                    Box::new(EmptyQuery)
                } else {
                    Box::new(NearQuery {
                        left,
                        right,
                        distance: *distance,
                    })
                }
            }
            Query::And(children) => {
                let mut clauses: Vec<(Occur, Boxed)> = Vec::with_capacity(children.len() + 1);
                for child in children {
                    match child {
                        Query::Not(negated) => clauses.push((Occur::MustNot, self.query(negated)?)),
                        _ => clauses.push((Occur::Must, self.query(child)?)),
                    }
                }
                if clauses.iter().all(|(occur, _)| *occur == Occur::MustNot) {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Box::new(BooleanQuery::new(clauses))
            }
            Query::Or(children) => {
                let mut clauses: Vec<(Occur, Boxed)> = Vec::with_capacity(children.len());
                for child in children {
                    clauses.push((Occur::Should, self.query(child)?));
                }
                Box::new(BooleanQuery::new(clauses))
            }
            Query::Not(negated) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, filter(Box::new(AllQuery))),
                (Occur::MustNot, self.query(negated)?),
            ])),
            Query::Filter(condition) => filter(self.filter(condition)?),
        })
    }

    fn filter(&self, condition: &Filter) -> Result<Boxed, IndexError> {
        let fields = self.index.fields();
        Ok(match condition {
            Filter::From(user) => self.name(fields.user, user),
            Filter::In(channel) => self.name(fields.channel, channel),
            Filter::Team(team) => self.name(fields.team, team),
            Filter::Emoji(emoji) => self.name(fields.emoji, emoji),
            Filter::Kind(kind) => raw(fields.kind, kind.as_str()),
            Filter::HasFile => Box::new(TermQuery::new(
                Term::from_field_u64(fields.has_file, 1),
                IndexRecordOption::Basic,
            )),
            Filter::Filename(words) => {
                let tokens = self.index.analyze(TEXT_TOKENIZER, words);
                self.sequence(fields.filename, &tokens, false)?
            }
            Filter::Thread(root) => Box::new(BooleanQuery::new(vec![
                (Occur::Should, raw(fields.post, root)),
                (Occur::Should, raw(fields.parent, root)),
            ])),
            Filter::IsEdited => self.posts_with(EventKind::Edit)?,
            Filter::IsDeleted => self.posts_with(EventKind::Delete)?,
            Filter::HasReaction => self.posts_with(EventKind::ReactionAdd)?,
            Filter::TimeRange { from_us, to_us } => {
                let lower = match from_us {
                    Some(from) => Bound::Included(Term::from_field_i64(fields.at_us, *from)),
                    None => Bound::Unbounded,
                };
                let upper = match to_us {
                    Some(to) => Bound::Excluded(Term::from_field_i64(fields.at_us, *to)),
                    None => Bound::Unbounded,
                };
                if lower == Bound::Unbounded && upper == Bound::Unbounded {
                    Box::new(AllQuery)
                } else {
                    Box::new(RangeQuery::new(lower, upper))
                }
            }
        })
    }

    /// A whole name, lowercased like the indexed names.
    fn name(&self, field: Field, value: &str) -> Boxed {
        let tokens = self.index.analyze(NAME_TOKENIZER, value);
        match tokens.into_iter().next() {
            Some(token) => raw(field, &token),
            None => Box::new(EmptyQuery),
        }
    }

    /// Every event of the posts that have an event of `kind` in the scope
    /// (a post is edited when it has an edit event, and so on). An event
    /// outside the scope tells nothing, not even that a post was edited.
    fn posts_with(&self, kind: EventKind) -> Result<Boxed, IndexError> {
        let fields = self.index.fields();
        let query = BooleanQuery::new(vec![
            (Occur::Must, raw(fields.kind, kind.as_str())),
            (Occur::Must, self.scope.box_clone()),
        ]);
        let keys = self
            .searcher
            .search(&query, &PostKeys)
            .map_err(|source| self.index.tantivy_error(source))?;
        Ok(Box::new(TermSetQuery::new(
            keys.into_iter()
                .map(|key| Term::from_field_u64(fields.post_key, key)),
        )))
    }

    fn text(&self, text: &Text) -> Result<Boxed, IndexError> {
        let fields = self.index.fields();
        let (words, exact, prefix) = match text {
            Text::Term(term) => (&term.text, term.exact, term.prefix),
            Text::Phrase(Phrase { text, exact }) => (text, *exact, false),
        };
        let (field, tokenizer) = if exact {
            (fields.text_exact, EXACT_TOKENIZER)
        } else {
            (fields.text, TEXT_TOKENIZER)
        };
        let tokens = self.index.analyze(tokenizer, words);
        self.sequence(field, &tokens, prefix)
    }

    /// Words next to each other in order; the last one a prefix if `prefix`.
    fn sequence(&self, field: Field, tokens: &[String], prefix: bool) -> Result<Boxed, IndexError> {
        let mut terms: Vec<Term> = tokens
            .iter()
            .map(|token| Term::from_field_text(field, token))
            .collect();
        Ok(match (terms.len(), prefix) {
            (0, _) => Box::new(EmptyQuery),
            (1, false) => Box::new(TermQuery::new(
                terms.remove(0),
                IndexRecordOption::WithFreqs,
            )),
            (_, false) => Box::new(Guarded(Box::new(PhraseQuery::new(terms)))),
            (1, true) => {
                let expanded = self.expand(field, &tokens[0])?;
                if expanded.is_empty() {
                    Box::new(EmptyQuery)
                } else {
                    Box::new(TermSetQuery::new(expanded))
                }
            }
            (_, true) => {
                let last = tokens.last().expect("two tokens or more");
                let expansions = self.expand(field, last)?.len();
                if expansions == 0 {
                    Box::new(EmptyQuery)
                } else {
                    let mut query = PhrasePrefixQuery::new(terms);
                    query.set_max_expansions(u32::try_from(expansions + 1).unwrap_or(u32::MAX));
                    Box::new(Guarded(Box::new(query)))
                }
            }
        })
    }

    /// One side of a `NEAR` as word slots.
    fn side(&self, text: &Text) -> Result<Side, IndexError> {
        let fields = self.index.fields();
        let (words, exact, prefix) = match text {
            Text::Term(term) => (&term.text, term.exact, term.prefix),
            Text::Phrase(Phrase { text, exact }) => (text, *exact, false),
        };
        let (field, tokenizer) = if exact {
            (fields.text_exact, EXACT_TOKENIZER)
        } else {
            (fields.text, TEXT_TOKENIZER)
        };
        let tokens = self.index.analyze(tokenizer, words);
        let n_tokens = tokens.len();
        let mut slots = Vec::with_capacity(n_tokens);
        for (token_idx, token) in tokens.iter().enumerate() {
            if prefix && token_idx + 1 == n_tokens {
                slots.push(self.expand(field, token)?);
            } else {
                slots.push(vec![Term::from_field_text(field, token)]);
            }
        }
        Ok(slots)
    }

    /// Every indexed word of `field` that starts with `prefix`.
    fn expand(&self, field: Field, prefix: &str) -> Result<Vec<Term>, IndexError> {
        let mut words: BTreeSet<Vec<u8>> = BTreeSet::new();
        for segment in self.searcher.segment_readers() {
            let inverted = segment
                .inverted_index(field)
                .map_err(|source| self.index.tantivy_error(source))?;
            let mut stream = inverted
                .terms()
                .range()
                .ge(prefix.as_bytes())
                .into_stream()
                .map_err(|source| self.index.io_error(source))?;
            while stream.advance() {
                let key = stream.key();
                if !key.starts_with(prefix.as_bytes()) {
                    break;
                }
                if words.insert(key.to_vec()) && words.len() > MAX_PREFIX_EXPANSIONS {
                    return Err(IndexError::PrefixTooBroad {
                        prefix: prefix.to_owned(),
                        limit: MAX_PREFIX_EXPANSIONS,
                    });
                }
            }
        }
        Ok(words
            .into_iter()
            .filter_map(|word| String::from_utf8(word).ok())
            .map(|word| Term::from_field_text(field, &word))
            .collect())
    }
}

/// Collects the distinct post keys of the matching documents.
struct PostKeys;

struct SegmentPostKeys {
    column: Option<Column<u64>>,
    keys: HashSet<u64>,
}

impl Collector for PostKeys {
    type Fruit = HashSet<u64>;
    type Child = SegmentPostKeys;

    fn for_segment(
        &self,
        _segment_local_id: u32,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentPostKeys> {
        Ok(SegmentPostKeys {
            column: segment.fast_fields().u64("post_key").ok(),
            keys: HashSet::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HashSet<u64>>) -> tantivy::Result<HashSet<u64>> {
        let mut all = HashSet::new();
        for fruit in fruits {
            all.extend(fruit);
        }
        Ok(all)
    }
}

impl SegmentCollector for SegmentPostKeys {
    type Fruit = HashSet<u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(key) = self.column.as_ref().and_then(|column| column.first(doc)) {
            self.keys.insert(key);
        }
    }

    fn harvest(self) -> HashSet<u64> {
        self.keys
    }
}

/// The byte ranges of `text` that the words of `query` match (outside any
/// `NOT`), merged and in order: what a snippet highlights. Analysed like the
/// index, so `cafe` highlights `Café` and a CJK word its characters.
pub(crate) fn highlights(index: &SearchIndex, query: &Query, text: &str) -> Vec<(usize, usize)> {
    let mut patterns: Vec<(&str, bool, bool)> = Vec::new();
    collect_words(query, &mut patterns);
    if patterns.is_empty() {
        return Vec::new();
    }
    let folded = index.analyze_with_offsets(TEXT_TOKENIZER, text);
    let exact = index.analyze_with_offsets(EXACT_TOKENIZER, text);
    let mut ranges = Vec::new();
    for (words, is_exact, prefix) in patterns {
        let (tokens, tokenizer) = if is_exact {
            (&exact, EXACT_TOKENIZER)
        } else {
            (&folded, TEXT_TOKENIZER)
        };
        let wanted = index.analyze(tokenizer, words);
        let Some(n) = std::num::NonZeroUsize::new(wanted.len()) else {
            continue;
        };
        let n = n.get();
        for start in 0..tokens.len().saturating_sub(n - 1) {
            let matches = wanted.iter().enumerate().all(|(offset, word)| {
                let token = &tokens[start + offset].0;
                if prefix && offset + 1 == n {
                    token.starts_with(word.as_str())
                } else {
                    token == word
                }
            });
            if matches {
                ranges.push((tokens[start].1, tokens[start + n - 1].2));
            }
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (from, to) in ranges {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

fn collect_words<'q>(query: &'q Query, out: &mut Vec<(&'q str, bool, bool)>) {
    fn push<'q>(text: &'q Text, out: &mut Vec<(&'q str, bool, bool)>) {
        match text {
            Text::Term(term) => out.push((&term.text, term.exact, term.prefix)),
            Text::Phrase(phrase) => out.push((&phrase.text, phrase.exact, false)),
        }
    }
    match query {
        Query::Term(term) => out.push((&term.text, term.exact, term.prefix)),
        Query::Phrase(phrase) => out.push((&phrase.text, phrase.exact, false)),
        Query::Near { left, right, .. } => {
            push(left, out);
            push(right, out);
        }
        Query::And(children) | Query::Or(children) => {
            for child in children {
                collect_words(child, out);
            }
        }
        Query::Not(_) | Query::Filter(_) => {}
    }
}
