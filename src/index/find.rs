//! Runs a compiled query: collects every match (so totals are exact), groups
//! the versions of a post into one hit when asked, orders the hits and cuts
//! one page after a cursor.
//!
//! Order is total: ties on time (or score) are broken by `seq`, which is
//! unique, so a cursor (the sort key of the last hit of a page) never skips
//! or repeats a hit, even among events with identical timestamps.

use std::cmp::Ordering;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, ColumnIndex, ColumnValues};
use tantivy::{DocId, Score, SegmentReader};

/// How hits are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Latest first (the default).
    #[default]
    Newest,
    /// Earliest first, as a transcript reads.
    Oldest,
    /// Best score first (BM25 over the words), then latest first.
    Relevance,
}

/// Where a page starts: the sort key of the last hit of the previous page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CursorKey {
    pub score: Score,
    pub at_us: i64,
    pub seq: u64,
}

/// One hit: a matching event, or a post (the versions of it that matched).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// The matching event; for a post, its earliest matching version (by
    /// time, then seq), whose time orders the hit.
    pub seq: u64,
    pub at_us: i64,
    /// The post's number (the smallest seq of an event about it); an event
    /// without a post has its own seq.
    pub post_key: u64,
    /// The best score of the hit's matching events (0 when not scoring).
    pub score: Score,
    /// How many of the post's events matched (1 for an event hit).
    pub matched: u32,
}

impl Found {
    pub fn key(&self) -> CursorKey {
        CursorKey {
            score: self.score,
            at_us: self.at_us,
            seq: self.seq,
        }
    }
}

/// A page of hits.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundPage {
    /// Hits in all pages together.
    pub total: u64,
    pub hits: Vec<Found>,
    /// The key to ask for the next page with, when there is one.
    pub next: Option<CursorKey>,
}

/// Compares two keys in `sort` order (`Less`: `a` comes first).
pub fn compare(sort: Sort, a: &CursorKey, b: &CursorKey) -> Ordering {
    let by_time = (a.at_us, a.seq).cmp(&(b.at_us, b.seq));
    match sort {
        Sort::Oldest => by_time,
        Sort::Newest => by_time.reverse(),
        Sort::Relevance => b.score.total_cmp(&a.score).then(by_time.reverse()),
    }
}

/// Groups (when `collapse`), orders and cuts a page from every match.
pub(crate) fn page(
    matches: Vec<Found>,
    collapse: bool,
    sort: Sort,
    after: Option<CursorKey>,
    limit: usize,
) -> FoundPage {
    let mut hits = if collapse {
        let mut posts: FxHashMap<u64, Found> =
            FxHashMap::with_capacity_and_hasher(matches.len(), Default::default());
        for found in matches {
            posts
                .entry(found.post_key)
                .and_modify(|hit| {
                    if (found.at_us, found.seq) < (hit.at_us, hit.seq) {
                        hit.at_us = found.at_us;
                        hit.seq = found.seq;
                    }
                    hit.score = hit.score.max(found.score);
                    hit.matched += 1;
                })
                .or_insert(found);
        }
        posts.into_values().collect()
    } else {
        matches
    };
    let total = hits.len() as u64;
    if let Some(after) = after {
        hits.retain(|hit| compare(sort, &after, &hit.key()) == Ordering::Less);
    }
    let more = hits.len() > limit;
    if more {
        hits.select_nth_unstable_by(limit, |a, b| compare(sort, &a.key(), &b.key()));
        hits.truncate(limit);
    }
    hits.sort_unstable_by(|a, b| compare(sort, &a.key(), &b.key()));
    let next = if more {
        hits.last().map(Found::key)
    } else {
        None
    };
    FoundPage { total, hits, next }
}

/// Collects every matching document's key fields.
pub(crate) struct AllMatches {
    pub scoring: bool,
}

pub(crate) struct SegmentMatches {
    columns: Option<Columns>,
    found: Vec<Found>,
    /// Scratch space for `collect_block`.
    buffers: Buffers,
}

/// Scratch columns of one block: seq, at_us, post_key.
type Buffers = (Vec<Option<u64>>, Vec<Option<i64>>, Vec<Option<u64>>);

/// The three fast fields of a segment. Every document has each of them, so
/// they are read directly from their values (no optional-index lookup).
struct Columns {
    seq: Reader<u64>,
    at_us: Reader<i64>,
    post_key: Reader<u64>,
}

enum Reader<T: PartialOrd + Copy + std::fmt::Debug + Send + Sync + 'static> {
    /// Every document has exactly one value: read by document number.
    Full(Arc<dyn ColumnValues<T>>),
    Other(Column<T>),
}

impl<T> Reader<T>
where
    T: PartialOrd + Copy + std::fmt::Debug + Send + Sync + 'static,
{
    fn new(column: Column<T>) -> Reader<T> {
        match column.index {
            ColumnIndex::Full => Reader::Full(Arc::clone(&column.values)),
            _ => Reader::Other(column),
        }
    }

    fn get(&self, doc: DocId) -> Option<T> {
        match self {
            Reader::Full(values) => Some(values.get_val(doc)),
            Reader::Other(column) => column.first(doc),
        }
    }

    fn get_block(&self, docs: &[DocId], out: &mut Vec<Option<T>>) {
        out.clear();
        out.resize(docs.len(), None);
        match self {
            Reader::Full(values) => values.get_vals_opt(docs, out),
            Reader::Other(column) => column.first_vals(docs, out),
        }
    }
}

impl Collector for AllMatches {
    type Fruit = Vec<Found>;
    type Child = SegmentMatches;

    fn for_segment(
        &self,
        _segment_local_id: u32,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentMatches> {
        let fast = segment.fast_fields();
        let columns = match (fast.u64("seq"), fast.i64("at_us"), fast.u64("post_key")) {
            (Ok(seq), Ok(at_us), Ok(post_key)) => Some(Columns {
                seq: Reader::new(seq),
                at_us: Reader::new(at_us),
                post_key: Reader::new(post_key),
            }),
            _ => None,
        };
        Ok(SegmentMatches {
            columns,
            found: Vec::new(),
            buffers: (Vec::new(), Vec::new(), Vec::new()),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scoring
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Found>>) -> tantivy::Result<Vec<Found>> {
        let mut all = Vec::with_capacity(fruits.iter().map(Vec::len).sum());
        for fruit in fruits {
            all.extend(fruit);
        }
        Ok(all)
    }
}

impl SegmentCollector for SegmentMatches {
    type Fruit = Vec<Found>;

    fn collect(&mut self, doc: DocId, score: Score) {
        let Some(columns) = &self.columns else {
            return;
        };
        let (Some(seq), Some(at_us)) = (columns.seq.get(doc), columns.at_us.get(doc)) else {
            return;
        };
        self.found.push(Found {
            seq,
            at_us,
            post_key: columns.post_key.get(doc).unwrap_or(seq),
            score,
            matched: 1,
        });
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        let Some(columns) = &self.columns else {
            return;
        };
        let (seqs, ats, keys) = &mut self.buffers;
        columns.seq.get_block(docs, seqs);
        columns.at_us.get_block(docs, ats);
        columns.post_key.get_block(docs, keys);
        for ((seq, at_us), key) in seqs.iter().zip(ats.iter()).zip(keys.iter()) {
            if let (Some(seq), Some(at_us)) = (*seq, *at_us) {
                self.found.push(Found {
                    seq,
                    at_us,
                    post_key: key.unwrap_or(seq),
                    score: 0.0,
                    matched: 1,
                });
            }
        }
    }

    fn harvest(self) -> Vec<Found> {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(seq: u64, at_us: i64, post_key: u64, score: Score) -> Found {
        Found {
            seq,
            at_us,
            post_key,
            score,
            matched: 1,
        }
    }

    #[test]
    fn pages_never_skip_or_repeat_identical_timestamps() {
        let matches: Vec<Found> = (1..=25).map(|seq| found(seq, 1000, seq, 0.0)).collect();
        for sort in [Sort::Newest, Sort::Oldest, Sort::Relevance] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = page(matches.clone(), false, sort, after, 4);
                assert_eq!(page.total, 25);
                seen.extend(page.hits.iter().map(|hit| hit.seq));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 25, "{sort:?}: {seen:?}");
            assert_eq!(seen.len(), 25);
        }
    }

    #[test]
    fn collapse_keeps_one_hit_per_post_at_its_earliest_match() {
        let matches = vec![
            found(5, 300, 1, 1.0),
            found(1, 100, 1, 3.0),
            found(9, 200, 9, 2.0),
        ];
        let page = page(matches, true, Sort::Oldest, None, 10);
        assert_eq!(page.total, 2);
        assert_eq!(page.hits[0].seq, 1);
        assert_eq!(page.hits[0].matched, 2);
        assert_eq!(page.hits[0].score, 3.0);
        assert_eq!(page.hits[1].seq, 9);
        assert_eq!(page.next, None);
    }

    #[test]
    fn relevance_orders_by_score_then_newest() {
        let matches = vec![
            found(1, 100, 1, 1.0),
            found(2, 100, 2, 5.0),
            found(3, 300, 3, 1.0),
        ];
        let page = page(matches, false, Sort::Relevance, None, 10);
        let order: Vec<u64> = page.hits.iter().map(|hit| hit.seq).collect();
        assert_eq!(order, vec![2, 3, 1]);
    }
}
