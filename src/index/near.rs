//! `NEAR(n)`: two words or phrases in the same text with at most `n` words
//! between them, in either order.
//!
//! tantivy has no span queries (its phrase slop is a budget shared by every
//! word of the phrase, and counts a swap as two), so this is a query of our
//! own: each side is a sequence of slots (one slot per word; a prefix slot
//! holds every word the prefix expands to), the documents holding every
//! slot's words are walked in step, and each candidate is confirmed from the
//! words' positions. Both sides must occupy different words: `wire NEAR(2)
//! wire` needs two of them.

use tantivy::postings::{Postings, SegmentPostings};
use tantivy::query::{EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED, Term};

/// A sequence of word slots; slot `i` must hold a word at position `start + i`.
pub(crate) type Side = Vec<Vec<Term>>;

#[derive(Debug, Clone)]
pub(crate) struct NearQuery {
    pub left: Side,
    pub right: Side,
    pub distance: u32,
}

impl Query for NearQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(NearWeight(self.clone())))
    }
}

struct NearWeight(NearQuery);

impl Weight for NearWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let mut slots = Vec::new();
        for slot_terms in self.0.left.iter().chain(self.0.right.iter()) {
            let mut postings = Vec::new();
            for term in slot_terms {
                let inverted = reader.inverted_index(term.field())?;
                if let Some(found) =
                    inverted.read_postings(term, IndexRecordOption::WithFreqsAndPositions)?
                {
                    postings.push(found);
                }
            }
            if postings.is_empty() {
                return Ok(Box::new(EmptyScorer));
            }
            slots.push(Slot {
                postings,
                positions: Vec::new(),
            });
        }
        if slots.is_empty() {
            return Ok(Box::new(EmptyScorer));
        }
        let mut scorer = NearScorer {
            slots,
            n_left: self.0.left.len(),
            distance: self.0.distance,
            doc: 0,
            score: boost,
            buffer: Vec::new(),
            left_starts: Vec::new(),
            right_starts: Vec::new(),
        };
        scorer.doc = scorer.align(0);
        Ok(Box::new(scorer))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.doc() < doc {
            scorer.seek(doc);
        }
        if scorer.doc() == doc {
            Ok(Explanation::new("NEAR", scorer.score()))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} does not match the NEAR query"
            )))
        }
    }
}

struct Slot {
    postings: Vec<SegmentPostings>,
    /// Positions of the slot's words in the current document.
    positions: Vec<u32>,
}

impl Slot {
    /// Moves every posting list to `target` or past it; the slot's smallest document.
    fn seek(&mut self, target: DocId) -> DocId {
        let mut smallest = TERMINATED;
        for postings in &mut self.postings {
            let doc = if postings.doc() < target {
                postings.seek(target)
            } else {
                postings.doc()
            };
            smallest = smallest.min(doc);
        }
        smallest
    }

    fn load_positions(&mut self, doc: DocId, buffer: &mut Vec<u32>) {
        self.positions.clear();
        for postings in &mut self.postings {
            if postings.doc() == doc {
                buffer.clear();
                postings.positions(buffer);
                self.positions.extend_from_slice(buffer);
            }
        }
        self.positions.sort_unstable();
        self.positions.dedup();
    }
}

struct NearScorer {
    slots: Vec<Slot>,
    n_left: usize,
    distance: u32,
    doc: DocId,
    score: Score,
    buffer: Vec<u32>,
    left_starts: Vec<u32>,
    right_starts: Vec<u32>,
}

impl NearScorer {
    /// The first document at or after `target` that matches.
    fn align(&mut self, mut target: DocId) -> DocId {
        loop {
            let mut highest = target;
            let mut all_on_target = true;
            for slot in &mut self.slots {
                let doc = slot.seek(target);
                if doc == TERMINATED {
                    return TERMINATED;
                }
                if doc != target {
                    all_on_target = false;
                }
                highest = highest.max(doc);
            }
            if all_on_target {
                if self.confirm(target) {
                    return target;
                }
                target += 1;
            } else {
                target = highest;
            }
        }
    }

    /// Whether the words of `doc` (every slot holds it) are near enough.
    fn confirm(&mut self, doc: DocId) -> bool {
        for slot in &mut self.slots {
            slot.load_positions(doc, &mut self.buffer);
        }
        let (left, right) = self.slots.split_at(self.n_left);
        starts(left, &mut self.left_starts);
        starts(right, &mut self.right_starts);
        let left_len = left.len() as u32;
        let right_len = right.len() as u32;
        let distance = self.distance;
        self.left_starts.iter().any(|&l| {
            self.right_starts.iter().any(|&r| {
                let (l_end, r_end) = (l + left_len, r + right_len);
                if l_end <= r {
                    r - l_end <= distance
                } else if r_end <= l {
                    l - r_end <= distance
                } else {
                    false
                }
            })
        })
    }
}

/// The positions where every slot of `side` holds its word in sequence.
fn starts(side: &[Slot], out: &mut Vec<u32>) {
    out.clear();
    let Some((first, rest)) = side.split_first() else {
        return;
    };
    'start: for &start in &first.positions {
        for (offset, slot) in rest.iter().enumerate() {
            if slot
                .positions
                .binary_search(&(start + offset as u32 + 1))
                .is_err()
            {
                continue 'start;
            }
        }
        out.push(start);
    }
}

impl DocSet for NearScorer {
    fn advance(&mut self) -> DocId {
        if self.doc == TERMINATED {
            return TERMINATED;
        }
        self.doc = self.align(self.doc + 1);
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc == TERMINATED || target <= self.doc {
            return self.doc;
        }
        self.doc = self.align(target);
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.slots
            .iter()
            .map(|slot| {
                slot.postings
                    .iter()
                    .map(|postings| postings.size_hint())
                    .sum::<u32>()
            })
            .min()
            .unwrap_or(0)
    }
}

impl Scorer for NearScorer {
    fn score(&mut self) -> Score {
        self.score
    }
}
