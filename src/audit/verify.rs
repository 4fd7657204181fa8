//! Verification of the whole trail: every record's hash recomputed, every
//! link and `seq` checked, the head row compared with the last record, and
//! optionally a head or a count recorded elsewhere.

use crate::db::Db;
use crate::db::audit::AuditRow;

use super::AuditError;
use super::chain::{AuditHash, AuditHead, AuditKey, ChainFields, ExpectedHead};

/// How many records verification reads at a time (memory stays bounded).
const VERIFY_BATCH: i64 = 1000;

/// At most this many problems are kept in a report; all are counted.
pub const MAX_REPORTED_PROBLEMS: usize = 100;

/// What verification checks beyond the trail's own consistency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// A head recorded outside the server: the trail must still contain it.
    /// Catches a truncated tail, or a trail rewritten by someone who has
    /// the key.
    pub expect_head: Option<ExpectedHead>,
    /// The trail must hold at least this many records.
    pub expect_min_count: Option<u64>,
}

/// One thing wrong with the trail. Each names the record (`seq`) concerned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum AuditProblem {
    /// The record's stored hash is not the hash of its content: the record
    /// (any of its fields) or its hash was altered, or the key is not the
    /// one the trail was made with.
    HashMismatch { seq: u64 },
    /// The record's `prev_hash` is not the hash of the record before it:
    /// records were removed, inserted or reordered before this one, or the
    /// previous record's hash was altered.
    BrokenLink {
        seq: u64,
        previous_seq: u64,
        expected: AuditHash,
        found: AuditHash,
    },
    /// Records `after_seq + 1 ..= next_seq - 1` are missing.
    Gap { after_seq: u64, next_seq: u64 },
    /// A record whose `seq` is not above the one before it (the database
    /// returned rows out of order or a duplicate `seq`).
    OutOfOrder { seq: u64, previous_seq: u64 },
    /// A row that cannot be read as a record (a hash of the wrong length, a
    /// `seq` out of range).
    Malformed { seq: i64, what: String },
    /// The head row does not name the last record: records at the end were
    /// removed (or the head row was altered).
    HeadMismatch {
        head_row: AuditHead,
        last: AuditHead,
    },
    /// The trail holds records but the key it was made with is not recorded.
    KeyNotRecorded,
    /// The expected head is not in the trail: it was truncated before it,
    /// or rewritten.
    ExpectedHeadMissing { expected: String },
    /// The record at the expected head's `seq` has a different hash.
    ExpectedHeadDiffers {
        seq: u64,
        expected: AuditHash,
        found: AuditHash,
    },
    /// Fewer records than expected: the tail was truncated.
    TooFewRecords { expected_min: u64, found: u64 },
}

impl std::fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditProblem::HashMismatch { seq } => write!(
                f,
                "record {seq} was altered: its stored hash does not match its content"
            ),
            AuditProblem::BrokenLink {
                seq,
                previous_seq,
                expected,
                found,
            } => write!(
                f,
                "record {seq} does not follow record {previous_seq}: its prev_hash is {found}, \
                 the hash of record {previous_seq} is {expected} (records removed, inserted or \
                 reordered, or record {previous_seq}'s hash altered)"
            ),
            AuditProblem::Gap {
                after_seq,
                next_seq,
            } if after_seq + 2 == *next_seq => write!(
                f,
                "record {} is missing (between {after_seq} and {next_seq})",
                after_seq + 1
            ),
            AuditProblem::Gap {
                after_seq,
                next_seq,
            } => write!(
                f,
                "records {} to {} are missing",
                after_seq + 1,
                next_seq - 1
            ),
            AuditProblem::OutOfOrder { seq, previous_seq } => write!(
                f,
                "record {seq} comes after record {previous_seq}: the trail is out of order"
            ),
            AuditProblem::Malformed { seq, what } => {
                write!(f, "record {seq} is malformed: {what}")
            }
            AuditProblem::HeadMismatch { head_row, last } => write!(
                f,
                "the head row says the trail ends at {head_row}, but its last record is {last}: \
                 records at the end were removed, or the head row was altered"
            ),
            AuditProblem::KeyNotRecorded => write!(
                f,
                "the trail holds records but no key fingerprint is recorded: the head row was altered"
            ),
            AuditProblem::ExpectedHeadMissing { expected } => write!(
                f,
                "the expected head {expected} is not in the trail: it was truncated or rewritten"
            ),
            AuditProblem::ExpectedHeadDiffers {
                seq,
                expected,
                found,
            } => write!(
                f,
                "record {seq} has hash {found}, the expected head says {expected}: the trail \
                 was rewritten from there on"
            ),
            AuditProblem::TooFewRecords {
                expected_min,
                found,
            } => write!(
                f,
                "the trail holds {found} records, at least {expected_min} were expected: the tail \
                 was truncated"
            ),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditVerification {
    /// Records read.
    pub count: u64,
    /// The last record read (`seq`, stored hash): record it elsewhere and
    /// pass it as [`VerifyOptions::expect_head`] next time.
    pub head: AuditHead,
    /// The first [`MAX_REPORTED_PROBLEMS`] problems, in trail order.
    pub problems: Vec<AuditProblem>,
    /// All problems found, including those not kept.
    pub n_problems: u64,
}

impl AuditVerification {
    pub fn is_ok(&self) -> bool {
        self.n_problems == 0
    }
}

/// Verifies the whole trail with `key`, reading it in batches.
///
/// Every row is checked, including any beyond the head row. Records
/// appended while verification runs are checked too: the head row is
/// compared with the last record only once both agree that nothing more
/// is left to read. Returns `Err` only when the trail cannot be read or
/// `key` is not the trail's key; damage is reported in
/// [`AuditVerification::problems`].
pub async fn verify(
    db: &Db,
    key: &AuditKey,
    options: &VerifyOptions,
) -> Result<AuditVerification, AuditError> {
    let head_row = db.audit_head().await?.ok_or(AuditError::HeadMissing)?;
    let mut walker = Walker::new(key, options);
    match &head_row.key_fingerprint {
        Some(fingerprint) if fingerprint != key.fingerprint() => {
            return Err(AuditError::WrongKey {
                expected: fingerprint.clone(),
                actual: key.fingerprint().to_owned(),
            });
        }
        Some(_) => {}
        None => walker.key_not_recorded = true,
    }
    let mut after_seq = 0;
    let mut looked_again = false;
    let head_row = loop {
        let rows = db.audit_rows(after_seq, VERIFY_BATCH).await?;
        if let Some(last) = rows.last() {
            after_seq = last.seq;
            looked_again = false;
            for row in &rows {
                walker.feed(row);
            }
            continue;
        }
        let head_row = db.audit_head().await?.ok_or(AuditError::HeadMissing)?;
        if head_row.seq > after_seq && !looked_again {
            // Appended since the last read (a commit writes its records and
            // the head together), or removed: one more look tells which.
            looked_again = true;
            continue;
        }
        break head_row;
    };
    let head_row = AuditHead {
        seq: u64::try_from(head_row.seq).unwrap_or(0),
        hash: AuditHash::from_slice(&head_row.hash).unwrap_or_default(),
    };
    Ok(walker.finish(head_row))
}

/// Walks the trail in `seq` order, one row at a time.
pub(super) struct Walker<'a> {
    key: &'a AuditKey,
    options: &'a VerifyOptions,
    /// The last record seen (`seq` 0 and the genesis hash before the first).
    last: AuditHead,
    count: u64,
    expected_head_seen: bool,
    key_not_recorded: bool,
    problems: Vec<AuditProblem>,
    n_problems: u64,
}

impl<'a> Walker<'a> {
    pub(super) fn new(key: &'a AuditKey, options: &'a VerifyOptions) -> Walker<'a> {
        Walker {
            key,
            options,
            last: AuditHead::EMPTY,
            count: 0,
            expected_head_seen: false,
            key_not_recorded: false,
            problems: Vec::new(),
            n_problems: 0,
        }
    }

    fn report(&mut self, problem: AuditProblem) {
        self.n_problems += 1;
        if self.problems.len() < MAX_REPORTED_PROBLEMS {
            self.problems.push(problem);
        }
    }

    /// Checks one row; rows must come in ascending `seq` order.
    pub(super) fn feed(&mut self, row: &AuditRow) {
        let malformed = match (
            u64::try_from(row.seq).ok().filter(|seq| *seq >= 1),
            AuditHash::from_slice(&row.prev_hash),
            AuditHash::from_slice(&row.hash),
        ) {
            (Some(seq), Some(prev_hash), Some(hash)) => Ok((seq, prev_hash, hash)),
            (None, _, _) => Err("seq below 1"),
            (_, None, _) => Err("prev_hash is not 32 bytes"),
            (_, _, None) => Err("hash is not 32 bytes"),
        };
        let (seq, prev_hash, hash) = match malformed {
            Ok(fields) => fields,
            Err(what) => {
                self.report(AuditProblem::Malformed {
                    seq: row.seq,
                    what: what.to_owned(),
                });
                return;
            }
        };
        self.count += 1;
        if seq <= self.last.seq {
            self.report(AuditProblem::OutOfOrder {
                seq,
                previous_seq: self.last.seq,
            });
        } else if seq != self.last.seq + 1 {
            self.report(AuditProblem::Gap {
                after_seq: self.last.seq,
                next_seq: seq,
            });
        }
        if prev_hash != self.last.hash {
            self.report(AuditProblem::BrokenLink {
                seq,
                previous_seq: self.last.seq,
                expected: self.last.hash,
                found: prev_hash,
            });
        }
        let computed = self.key.chain_hash(&ChainFields {
            seq,
            prev_hash: &prev_hash,
            at_us: row.at_us,
            actor: &row.actor,
            role: row.role.as_deref(),
            client: row.client.as_deref(),
            action: &row.action,
            params: &row.params,
            outcome: &row.outcome,
            detail: row.detail.as_deref(),
        });
        if computed != hash {
            self.report(AuditProblem::HashMismatch { seq });
        }
        if let Some(expected) = self.options.expect_head {
            match expected.seq {
                Some(expected_seq) if expected_seq == seq => {
                    self.expected_head_seen = true;
                    if hash != expected.hash {
                        self.report(AuditProblem::ExpectedHeadDiffers {
                            seq,
                            expected: expected.hash,
                            found: hash,
                        });
                    }
                }
                Some(_) => {}
                None => self.expected_head_seen |= hash == expected.hash,
            }
        }
        // Later links are checked against what is stored, so one altered
        // record is one problem, not a cascade.
        self.last = AuditHead { seq, hash };
    }

    /// The report, given the head row read before the walk.
    pub(super) fn finish(mut self, head_row: AuditHead) -> AuditVerification {
        if self.key_not_recorded && self.count > 0 {
            // Reported first: it concerns the whole trail.
            self.n_problems += 1;
            self.problems.insert(0, AuditProblem::KeyNotRecorded);
            self.problems.truncate(MAX_REPORTED_PROBLEMS);
        }
        if head_row != self.last {
            self.report(AuditProblem::HeadMismatch {
                head_row,
                last: self.last,
            });
        }
        if let Some(expected) = self.options.expect_head
            && !self.expected_head_seen
        {
            self.report(AuditProblem::ExpectedHeadMissing {
                expected: expected.to_string(),
            });
        }
        if let Some(expected_min) = self.options.expect_min_count
            && self.count < expected_min
        {
            self.report(AuditProblem::TooFewRecords {
                expected_min,
                found: self.count,
            });
        }
        AuditVerification {
            count: self.count,
            head: self.last,
            problems: self.problems,
            n_problems: self.n_problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use zeroize::Zeroizing;

    use super::*;

    fn key() -> AuditKey {
        AuditKey::from_bytes(Zeroizing::new([3u8; 32]))
    }

    /// A valid chain of `n` rows.
    fn chain(key: &AuditKey, n: u64) -> Vec<AuditRow> {
        let mut rows = Vec::new();
        let mut prev = AuditHash::GENESIS;
        for seq in 1..=n {
            let mut row = AuditRow {
                seq: seq as i64,
                at_us: 1_700_000_000_000_000 + seq as i64,
                actor: format!("user-{}", seq % 3),
                role: (seq % 2 == 0).then(|| "auditor".to_owned()),
                client: Some("10.0.0.1".to_owned()),
                action: "search".to_owned(),
                params: format!(r#"{{"query":"q{seq}","hits":{seq}}}"#),
                outcome: "ok".to_owned(),
                detail: None,
                prev_hash: prev.0.to_vec(),
                hash: Vec::new(),
            };
            let hash = key.chain_hash(&ChainFields {
                seq,
                prev_hash: &prev,
                at_us: row.at_us,
                actor: &row.actor,
                role: row.role.as_deref(),
                client: row.client.as_deref(),
                action: &row.action,
                params: &row.params,
                outcome: &row.outcome,
                detail: None,
            });
            row.hash = hash.0.to_vec();
            prev = hash;
            rows.push(row);
        }
        rows
    }

    fn walk(key: &AuditKey, rows: &[AuditRow], options: &VerifyOptions) -> AuditVerification {
        let mut walker = Walker::new(key, options);
        for row in rows {
            walker.feed(row);
        }
        let head = rows.last().map_or(AuditHead::EMPTY, |row| AuditHead {
            seq: row.seq as u64,
            hash: AuditHash::from_slice(&row.hash).expect("32 bytes"),
        });
        walker.finish(head)
    }

    #[test]
    fn a_valid_chain_verifies() {
        let key = key();
        let rows = chain(&key, 10);
        let report = walk(&key, &rows, &VerifyOptions::default());
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(report.count, 10);
        assert_eq!(report.head.seq, 10);
        assert!(walk(&key, &[], &VerifyOptions::default()).is_ok());
    }

    #[test]
    fn reordering_is_caught() {
        let key = key();
        let mut rows = chain(&key, 5);
        // Swap the contents of records 2 and 3, keeping seq in order.
        let (a, b) = (rows[1].clone(), rows[2].clone());
        rows[1] = AuditRow { seq: 2, ..b };
        rows[2] = AuditRow { seq: 3, ..a };
        let report = walk(&key, &rows, &VerifyOptions::default());
        assert!(
            report
                .problems
                .contains(&AuditProblem::HashMismatch { seq: 2 })
        );
        assert!(
            report
                .problems
                .contains(&AuditProblem::HashMismatch { seq: 3 })
        );
    }

    #[test]
    fn the_wrong_key_fails_every_record() {
        let rows = chain(&key(), 3);
        let other = AuditKey::from_bytes(Zeroizing::new([4u8; 32]));
        let report = walk(&other, &rows, &VerifyOptions::default());
        assert_eq!(report.n_problems, 3);
    }

    /// Which field of a row to change, and how.
    #[derive(Debug, Clone)]
    enum Tamper {
        Text(usize, usize, u8),
        At(u32),
        Seq(i64),
        Hash(usize, u8),
        PrevHash(usize, u8),
        Remove,
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        prop_oneof![
            (0..6usize, 0..64usize, 1..=255u8).prop_map(|(f, i, x)| Tamper::Text(f, i, x)),
            (0..64u32).prop_map(Tamper::At),
            prop_oneof![Just(-1i64), Just(1), Just(7)].prop_map(Tamper::Seq),
            (0..32usize, 1..=255u8).prop_map(|(i, x)| Tamper::Hash(i, x)),
            (0..32usize, 1..=255u8).prop_map(|(i, x)| Tamper::PrevHash(i, x)),
            Just(Tamper::Remove),
        ]
    }

    fn flip_byte(text: &mut String, index: usize, xor: u8) {
        let mut bytes = std::mem::take(text).into_bytes();
        if bytes.is_empty() {
            bytes.push(xor);
        } else {
            let index = index % bytes.len();
            bytes[index] ^= xor;
        }
        *text = String::from_utf8_lossy(&bytes).into_owned();
    }

    proptest! {
        /// Any single change to any one record is reported, with an
        /// expected head or count when the change is the removal of the
        /// last record (and the head row is fixed up to match).
        #[test]
        fn any_single_change_is_caught(target in 0..8usize, change in tamper()) {
            let key = key();
            let original = chain(&key, 8);
            let mut rows = original.clone();
            let row = &mut rows[target];
            match change {
                Tamper::Text(field, index, xor) => {
                    let text = match field {
                        0 => &mut row.actor,
                        1 => row.role.get_or_insert_with(String::new),
                        2 => row.client.get_or_insert_with(String::new),
                        3 => &mut row.action,
                        4 => &mut row.params,
                        _ => &mut row.outcome,
                    };
                    flip_byte(text, index, xor);
                }
                Tamper::At(bit) => row.at_us ^= 1 << bit,
                Tamper::Seq(delta) => row.seq += delta,
                Tamper::Hash(index, xor) => row.hash[index] ^= xor,
                Tamper::PrevHash(index, xor) => row.prev_hash[index] ^= xor,
                Tamper::Remove => {
                    rows.remove(target);
                }
            }
            rows.sort_by_key(|row| row.seq);
            prop_assume!(rows != original);
            let options = VerifyOptions {
                expect_head: Some(ExpectedHead {
                    seq: Some(8),
                    hash: AuditHash::from_slice(&original[7].hash).expect("32 bytes"),
                }),
                expect_min_count: None,
            };
            let report = walk(&key, &rows, &options);
            prop_assert!(!report.is_ok(), "undetected: {:?}", rows);
        }
    }
}
