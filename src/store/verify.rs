//! `holdfast verify`: proves that nothing acknowledged was altered, removed,
//! reordered or truncated, and names where damage starts.
//!
//! Checks, per segment in metadata order: the header and its link to the
//! previous segment, every record's framing and chain hash, the sequence
//! numbers, every event's decryption under its epoch key, that the metadata
//! points at exactly these records, the seal and the checkpoint (record
//! count, end offset, last hash, file SHA-256). Read-only: it never repairs.
//!
//! After retention: a record whose key epoch was destroyed cannot be
//! decrypted; its chain link, seq and place are still checked, and its row
//! must be a tombstone (or point at the carry record that re-encrypted it).
//! A carry record is checked against the row that points at it. A range of a
//! sealed segment reclaimed by compaction is crossed with the chain hashes
//! recorded for it, and only when every record in it was shredded.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::sync::Arc;

use serde::Serialize;

use super::format::{self, HASH_LEN, RecordType, SEGMENT_HEADER_LEN};
use super::segment::{self, RecordReader};
use super::{Shared, StoreError};
use crate::db::retention::CompactedRange;
use crate::db::{EventRow, SegmentRow};

/// One place where the archive is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyProblem {
    pub segment_no: u64,
    pub file: String,
    /// 0-based index of the record in its segment, when the damage is in a record.
    pub record_index: Option<u64>,
    pub offset: Option<u64>,
    pub seq: Option<u64>,
    pub what: String,
}

impl std::fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "segment {} ({})", self.segment_no, self.file)?;
        if let Some(index) = self.record_index {
            write!(f, ", record {index}")?;
        }
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// The result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub segments: u64,
    pub sealed_segments: u64,
    pub records: u64,
    pub events: u64,
    pub bytes: u64,
    /// Event records whose key epoch retention destroyed (still chained,
    /// no longer readable), compacted ones included.
    pub shredded_records: u64,
    /// Records in ranges reclaimed by compaction.
    pub compacted_records: u64,
    pub head_seq: u64,
    pub head_hash: String,
    /// Bytes past the acknowledged head (in flight, or a torn tail that the
    /// next start cuts off). Not damage: nothing there was acknowledged.
    pub unacknowledged_tail_bytes: u64,
    /// Problems, the first of each segment (later ones follow from it).
    pub problems: Vec<VerifyProblem>,
    /// With an expected head (an earlier `head_seq`/`head_hash` kept
    /// elsewhere): whether the chain still passes through it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_head_matches: Option<bool>,
}

pub(super) async fn verify(
    shared: &Arc<Shared>,
    is_writer: bool,
    expect_head: Option<(u64, [u8; HASH_LEN])>,
) -> Result<VerifyReport, StoreError> {
    let segments = shared.db.segments().await?;
    let mut report = VerifyReport {
        segments: segments.len() as u64,
        ..VerifyReport::default()
    };
    // Files on disk that the metadata does not know. One numbered past the
    // head is a segment being started (or started just before a crash):
    // nothing in it was acknowledged, so it is a note like any tail.
    let known: BTreeSet<String> = segments
        .iter()
        .map(|s| format::segment_file_name(s.segment_no as u64))
        .collect();
    let head_segment = segments.last().map_or(0, |s| s.segment_no as u64);
    let entries = std::fs::read_dir(&shared.segments_dir).map_err(|source| StoreError::Io {
        path: shared.segments_dir.display().to_string(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if known.contains(&name) {
            continue;
        }
        let past_head = name
            .strip_suffix(".seg")
            .and_then(|number| number.parse::<u64>().ok())
            .is_some_and(|number| number > head_segment);
        if past_head {
            report.unacknowledged_tail_bytes += entry.metadata().map_or(0, |m| m.len());
            continue;
        }
        report.problems.push(VerifyProblem {
            segment_no: 0,
            file: name,
            record_index: None,
            offset: None,
            seq: None,
            what: "a file in the segments directory that the metadata does not list".to_owned(),
        });
    }

    let mut retention = RetentionState {
        relocated: shared.db.relocated_rows().await?,
        destroyed: shared.db.destroyed_epoch_ids().await?,
        ranges: HashMap::new(),
        carries_seen: HashSet::new(),
    };
    for range in shared.db.compacted_ranges().await? {
        retention
            .ranges
            .entry(range.segment_no)
            .or_default()
            .push(range);
    }
    let mut expected_prev_hash = [0u8; HASH_LEN];
    let mut expected_seq: u64 = 1;
    // Rows committed after the segments were read belong to a later head.
    let head_seq = segments.last().map_or(0, |s| s.last_seq);
    let mut rows = RowCursor::new(shared, head_seq);
    for (segment_idx, checkpoint) in segments.iter().enumerate() {
        let is_last = segment_idx + 1 == segments.len();
        // Rows of an earlier damaged segment that was not read to its end
        // belong to it, not to this one.
        rows.skip_before(expected_seq).await?;
        let mut outcome = verify_segment(
            shared,
            checkpoint,
            expected_prev_hash,
            expected_seq,
            &mut rows,
            &mut retention,
            is_last,
            expect_head,
        )
        .await?;
        // A compaction that recorded new ranges of this segment while verify
        // read it looks like damage: read it again with the ranges as now.
        if outcome.problem.is_some() && checkpoint.sealed_at_ms.is_some() {
            let now: Vec<CompactedRange> = shared
                .db
                .compacted_ranges()
                .await?
                .into_iter()
                .filter(|range| range.segment_no == checkpoint.segment_no)
                .collect();
            let before = retention.ranges.get(&checkpoint.segment_no);
            if before.map_or(!now.is_empty(), |before| *before != now) {
                retention.ranges.insert(checkpoint.segment_no, now);
                let mut again = RowCursor::new(shared, head_seq);
                again.skip_before(expected_seq).await?;
                outcome = verify_segment(
                    shared,
                    checkpoint,
                    expected_prev_hash,
                    expected_seq,
                    &mut again,
                    &mut retention,
                    is_last,
                    expect_head,
                )
                .await?;
                rows = again;
            }
        }
        if let Some(matches) = outcome.expected_head_matches {
            // The head may be seq N's record, the seal after it, or the
            // chain start of the segment after that: any one matching counts.
            report.expected_head_matches =
                Some(matches || report.expected_head_matches == Some(true));
        }
        report.records += outcome.records;
        report.events += outcome.events;
        report.bytes += outcome.bytes;
        report.shredded_records += outcome.shredded;
        report.compacted_records += outcome.compacted;
        report.unacknowledged_tail_bytes += outcome.tail_bytes;
        if checkpoint.sealed_at_ms.is_some() {
            report.sealed_segments += 1;
        }
        if let Some(problem) = outcome.problem {
            report.problems.push(problem);
        }
        // Continue from the checkpoint, so one damaged segment does not hide another's state.
        expected_prev_hash = checkpoint
            .last_hash
            .as_slice()
            .try_into()
            .unwrap_or([0; HASH_LEN]);
        expected_seq = checkpoint.last_seq as u64 + 1;
        if is_last {
            report.head_seq = checkpoint.last_seq as u64;
            report.head_hash = hex::encode(&checkpoint.last_hash);
        }
    }
    // Rows pointing at carry records that do not exist.
    for (record_seq, row) in &retention.relocated {
        if *record_seq as u64 <= report.head_seq && !retention.carries_seen.contains(record_seq) {
            report.problems.push(VerifyProblem {
                segment_no: row.segment_no as u64,
                file: format::segment_file_name(row.segment_no as u64),
                record_index: None,
                offset: Some(row.record_offset as u64),
                seq: Some(row.seq as u64),
                what: format!(
                    "the metadata says event {:?} was re-encrypted into record seq {record_seq}, which does not exist",
                    row.event_id
                ),
            });
            break;
        }
    }
    // Metadata rows pointing past every record.
    if let Some(row) = rows.next_row().await? {
        report.problems.push(VerifyProblem {
            segment_no: row.segment_no as u64,
            file: format::segment_file_name(row.segment_no as u64),
            record_index: None,
            offset: Some(row.record_offset as u64),
            seq: Some(row.seq as u64),
            what: format!(
                "the metadata lists event {:?} at seq {} but no such record exists",
                row.event_id, row.seq
            ),
        });
    }
    if !is_writer && report.unacknowledged_tail_bytes > 0 {
        tracing::info!(
            bytes = report.unacknowledged_tail_bytes,
            "bytes past the acknowledged head: in flight, or a torn tail the next start truncates"
        );
    }
    if let Some((seq, hash)) = expect_head {
        let what = match report.expected_head_matches {
            Some(true) => None,
            Some(false) => Some(format!(
                "the chain hash at seq {seq} is not the expected {}: the history up to it was rewritten",
                hex::encode(hash)
            )),
            None => {
                report.expected_head_matches = Some(false);
                Some(format!(
                    "the expected head seq {seq} is not in the archive (head is seq {}): records were removed",
                    report.head_seq
                ))
            }
        };
        if let Some(what) = what {
            report.problems.push(VerifyProblem {
                segment_no: 0,
                file: String::new(),
                record_index: None,
                offset: None,
                seq: Some(seq),
                what,
            });
        }
    }
    report.ok = report.problems.is_empty();
    Ok(report)
}

/// Walks the metadata's event rows in seq order, a page at a time.
struct RowCursor<'a> {
    shared: &'a Shared,
    page: std::collections::VecDeque<EventRow>,
    next_seq: i64,
    exhausted: bool,
    /// Rows past this seq are ignored.
    last_seq: i64,
}

impl<'a> RowCursor<'a> {
    fn new(shared: &'a Shared, last_seq: i64) -> Self {
        RowCursor {
            shared,
            last_seq,
            page: Default::default(),
            next_seq: 0,
            exhausted: false,
        }
    }

    async fn peek(&mut self) -> Result<Option<&EventRow>, StoreError> {
        if self.page.is_empty() && !self.exhausted {
            let rows = self
                .shared
                .db
                .events_from_seq(self.next_seq, 10_000)
                .await?;
            self.exhausted = rows.len() < 10_000;
            if let Some(last) = rows.last() {
                self.next_seq = last.seq + 1;
            }
            let last_seq = self.last_seq;
            self.page
                .extend(rows.into_iter().filter(|row| row.seq <= last_seq));
            if self.next_seq > last_seq {
                self.exhausted = true;
            }
        }
        Ok(self.page.front())
    }

    /// Drops rows with a seq below `seq`.
    async fn skip_before(&mut self, seq: u64) -> Result<(), StoreError> {
        while let Some(row) = self.peek().await? {
            if row.seq as u64 >= seq {
                break;
            }
            self.page.pop_front();
        }
        Ok(())
    }

    async fn next_row(&mut self) -> Result<Option<EventRow>, StoreError> {
        self.peek().await?;
        Ok(self.page.pop_front())
    }
}

/// What retention changed, as verify needs it.
struct RetentionState {
    /// Rows of events moved to a carry record, by that record's seq.
    relocated: HashMap<i64, EventRow>,
    destroyed: HashSet<i64>,
    ranges: HashMap<i64, Vec<CompactedRange>>,
    carries_seen: HashSet<i64>,
}

impl RetentionState {
    /// Whether an epoch's key was destroyed (asking again when it was not
    /// when verify started: a run may have destroyed it since).
    async fn is_destroyed(&mut self, shared: &Shared, epoch_id: i64) -> Result<bool, StoreError> {
        if self.destroyed.contains(&epoch_id) {
            return Ok(true);
        }
        let destroyed = shared
            .db
            .get_epoch(epoch_id)
            .await?
            .is_some_and(|epoch| epoch.wrapped_key.is_none());
        if destroyed {
            self.destroyed.insert(epoch_id);
        }
        Ok(destroyed)
    }
}

/// Checks that every event in a compacted range was deleted by retention
/// (or moved out of it before), and consumes its rows. Returns the problem.
async fn check_compacted_rows(
    rows: &mut RowCursor<'_>,
    retention: &mut RetentionState,
    range: &CompactedRange,
) -> Result<Option<String>, StoreError> {
    while let Some(row) = rows.peek().await? {
        if row.seq > range.last_seq {
            break;
        }
        let moved_out = row.record_seq.is_some_and(|at| at > range.last_seq);
        if row.shredded_run.is_none() && !moved_out {
            return Ok(Some(format!(
                "a compacted range holds event {:?} (seq {}), which retention did not delete",
                row.event_id, row.seq
            )));
        }
        rows.next_row().await?;
    }
    for seq in range.first_seq..=range.last_seq {
        if let Some(row) = retention.relocated.get(&seq) {
            retention.carries_seen.insert(seq);
            if row.shredded_run.is_none() {
                return Ok(Some(format!(
                    "a compacted range holds the re-encrypted event {:?}, which retention did not delete",
                    row.event_id
                )));
            }
        }
    }
    Ok(None)
}

struct SegmentOutcome {
    shredded: u64,
    compacted: u64,
    records: u64,
    events: u64,
    bytes: u64,
    tail_bytes: u64,
    problem: Option<VerifyProblem>,
    expected_head_matches: Option<bool>,
}

#[allow(clippy::too_many_arguments)] // one call site; the walk's whole state
async fn verify_segment(
    shared: &Arc<Shared>,
    checkpoint: &SegmentRow,
    expected_prev_hash: [u8; HASH_LEN],
    mut expected_seq: u64,
    rows: &mut RowCursor<'_>,
    retention: &mut RetentionState,
    is_last: bool,
    expect_head: Option<(u64, [u8; HASH_LEN])>,
) -> Result<SegmentOutcome, StoreError> {
    let segment_no = checkpoint.segment_no as u64;
    let file_name = format::segment_file_name(segment_no);
    let path = segment::segment_path(&shared.segments_dir, segment_no);
    let mut outcome = SegmentOutcome {
        shredded: 0,
        compacted: 0,
        records: 0,
        events: 0,
        bytes: 0,
        tail_bytes: 0,
        problem: None,
        expected_head_matches: None,
    };
    let problem =
        |record_index: Option<u64>, offset: Option<u64>, seq: Option<u64>, what: String| {
            Some(VerifyProblem {
                segment_no,
                file: file_name.clone(),
                record_index,
                offset,
                seq,
                what,
            })
        };
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) => {
            outcome.problem = problem(
                None,
                None,
                None,
                format!("segment file cannot be opened: {error}"),
            );
            return Ok(outcome);
        }
    };
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let end_offset = checkpoint.end_offset as u64;
    outcome.bytes = file_len.min(end_offset);
    let (header, header_bytes) = match segment::read_header(&file) {
        Ok(header) => header,
        Err(what) => {
            outcome.problem = problem(None, Some(0), None, what);
            return Ok(outcome);
        }
    };
    if header.segment_no != segment_no {
        outcome.problem = problem(
            None,
            Some(0),
            None,
            format!("the header says segment {}", header.segment_no),
        );
        return Ok(outcome);
    }
    if header.prev_hash != expected_prev_hash {
        outcome.problem = problem(
            None,
            Some(0),
            None,
            "the header does not link to the end of the previous segment: segments were removed, reordered or replaced".to_owned(),
        );
        return Ok(outcome);
    }
    let chain_start = format::chain_start(&header_bytes);
    // A head taken when this segment was new and empty is its chain start.
    if let Some((head_seq, hash)) = expect_head
        && head_seq + 1 == expected_seq
        && hash == chain_start
    {
        outcome.expected_head_matches = Some(true);
    }
    let ranges: Vec<CompactedRange> = retention
        .ranges
        .get(&(segment_no as i64))
        .cloned()
        .unwrap_or_default();
    let mut next_range = 0;
    let reopen = match file.try_clone() {
        Ok(reopen) => reopen,
        Err(error) => {
            outcome.problem = problem(None, None, None, format!("read error: {error}"));
            return Ok(outcome);
        }
    };
    let mut reader = match RecordReader::new(file, SEGMENT_HEADER_LEN as u64, chain_start) {
        Ok(reader) => reader,
        Err(error) => {
            outcome.problem = problem(None, None, None, format!("read error: {error}"));
            return Ok(outcome);
        }
    };
    let mut record_index: u64 = 0;
    let mut sealed_with: Option<u64> = None;
    let mut last_seq_seen = expected_seq.saturating_sub(1);
    while reader.offset() < end_offset {
        if let Some(range) = ranges.get(next_range)
            && range.start_offset as u64 == reader.offset()
        {
            next_range += 1;
            let here = (Some(record_index), Some(reader.offset()));
            if range.prev_hash.as_slice() != reader.prev_hash().as_slice()
                || range.first_seq as u64 != expected_seq
                || range.last_seq < range.first_seq
                || range.n_records != range.last_seq - range.first_seq + 1
                || range.end_offset as u64 > end_offset
            {
                outcome.problem = problem(
                    here.0,
                    here.1,
                    Some(expected_seq),
                    "a compacted range does not continue the chain (previous hash, first seq or count)"
                        .to_owned(),
                );
                return Ok(outcome);
            }
            let zeroed = range_is_zero(&reopen, range).map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
            if zeroed {
                if let Some(what) = check_compacted_rows(rows, retention, range).await? {
                    outcome.problem = problem(here.0, here.1, None, what);
                    return Ok(outcome);
                }
                let n = range.n_records as u64;
                outcome.records += n;
                outcome.events += n;
                outcome.shredded += n;
                outcome.compacted += n;
                record_index += n;
                expected_seq = range.last_seq as u64 + 1;
                last_seq_seen = range.last_seq as u64;
                let last_hash: [u8; HASH_LEN] = range
                    .last_hash
                    .as_slice()
                    .try_into()
                    .unwrap_or([0; HASH_LEN]);
                reader = match reopen
                    .try_clone()
                    .and_then(|file| RecordReader::new(file, range.end_offset as u64, last_hash))
                {
                    Ok(reader) => reader,
                    Err(error) => {
                        outcome.problem = problem(None, None, None, format!("read error: {error}"));
                        return Ok(outcome);
                    }
                };
                continue;
            }
            // Recorded but not yet reclaimed (a compaction was interrupted):
            // the records are still there and are checked one by one.
        }
        let record = match reader.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(fault) => {
                let what = if fault.incomplete {
                    format!(
                        "truncated: {}; acknowledged records are missing",
                        fault.reason
                    )
                } else {
                    fault.reason
                };
                outcome.problem = problem(Some(record_index), Some(fault.offset), None, what);
                return Ok(outcome);
            }
        };
        let here = (Some(record_index), Some(record.offset));
        outcome.records += 1;
        if sealed_with.is_some() {
            outcome.problem = problem(here.0, here.1, None, "a record follows the seal".to_owned());
            return Ok(outcome);
        }
        match record.header.record_type {
            RecordType::Seal => {
                sealed_with = format::decode_seal(&record.payload).map(|(n, _)| n);
                if let Some((head_seq, hash)) = expect_head
                    && head_seq + 1 == expected_seq
                    && hash == record.chain_hash
                {
                    outcome.expected_head_matches = Some(true);
                }
            }
            RecordType::Event => {
                let seq = record.header.seq;
                if seq != expected_seq {
                    outcome.problem = problem(
                        here.0,
                        here.1,
                        Some(seq),
                        format!("out of sequence: expected seq {expected_seq}"),
                    );
                    return Ok(outcome);
                }
                let here_problem = |what: String| problem(here.0, here.1, Some(seq), what);
                let row = match retention.relocated.get(&(seq as i64)).cloned() {
                    // A carry record: the row of the event it re-encrypted.
                    Some(row) => {
                        retention.carries_seen.insert(seq as i64);
                        row
                    }
                    None => match rows.peek().await?.cloned() {
                        Some(row) if row.seq as u64 == seq => {
                            rows.next_row().await?;
                            row
                        }
                        Some(row) if (row.seq as u64) < seq => {
                            outcome.problem = here_problem(format!(
                                "the metadata lists event {:?} at seq {} but the store has no such record",
                                row.event_id, row.seq
                            ));
                            return Ok(outcome);
                        }
                        _ => {
                            outcome.problem =
                                here_problem(format!("event record seq {seq} has no metadata row"));
                            return Ok(outcome);
                        }
                    },
                };
                let epoch_id = record.header.epoch_id as i64;
                let destroyed = retention.is_destroyed(shared, epoch_id).await?;
                if row.record_seq() as u64 == seq {
                    if row.segment_no as u64 != segment_no
                        || row.record_offset as u64 != record.offset
                        || row.record_len as u64 != record.record_len()
                        || row.epoch_id != epoch_id
                    {
                        outcome.problem = here_problem(format!(
                            "the metadata row of event {:?} disagrees with its record (location or key epoch)",
                            row.event_id
                        ));
                        return Ok(outcome);
                    }
                    if destroyed {
                        if row.shredded_run.is_none() {
                            outcome.problem = here_problem(format!(
                                "the key of event {:?} was destroyed but the event is not recorded as deleted by retention",
                                row.event_id
                            ));
                            return Ok(outcome);
                        }
                        outcome.shredded += 1;
                    } else {
                        if row.shredded_run.is_some() {
                            outcome.problem = here_problem(format!(
                                "event {:?} is recorded as deleted by retention but its key still exists",
                                row.event_id
                            ));
                            return Ok(outcome);
                        }
                        let event = match decrypt_record(shared, segment_no, &record).await? {
                            Ok(event) => event,
                            Err(what) => {
                                outcome.problem = here_problem(what);
                                return Ok(outcome);
                            }
                        };
                        let mut expected_row = super::writer::event_row(
                            &event,
                            row.seq as u64,
                            segment_no,
                            record.offset,
                            record.record_len(),
                            record.header.epoch_id,
                        );
                        expected_row.record_seq = row.record_seq;
                        if row != expected_row {
                            let what = if row.event_id == event.id {
                                format!(
                                    "the metadata row of event {:?} disagrees with its record (location, kind, time, team, channel, user or post)",
                                    row.event_id
                                )
                            } else {
                                format!(
                                    "the metadata row for seq {} names event {:?}, the record holds another",
                                    row.seq, row.event_id
                                )
                            };
                            outcome.problem = here_problem(what);
                            return Ok(outcome);
                        }
                    }
                } else {
                    // The event was re-encrypted into a later carry record;
                    // this original copy stays in the chain.
                    if row.record_seq() as u64 <= seq {
                        outcome.problem = here_problem(format!(
                            "the metadata says event {:?} moved to an earlier record (seq {})",
                            row.event_id,
                            row.record_seq()
                        ));
                        return Ok(outcome);
                    }
                    if destroyed {
                        outcome.shredded += 1;
                    } else {
                        match decrypt_record(shared, segment_no, &record).await? {
                            Ok(event) if event.id == row.event_id => {}
                            Ok(_) => {
                                outcome.problem = here_problem(format!(
                                    "the record at seq {seq} holds another event than {:?}",
                                    row.event_id
                                ));
                                return Ok(outcome);
                            }
                            Err(what) => {
                                outcome.problem = here_problem(what);
                                return Ok(outcome);
                            }
                        }
                    }
                }
                if let Some((expected_seq_of_head, hash)) = expect_head
                    && expected_seq_of_head == seq
                {
                    outcome.expected_head_matches = Some(
                        record.chain_hash == hash || outcome.expected_head_matches == Some(true),
                    );
                }
                outcome.events += 1;
                last_seq_seen = seq;
                expected_seq += 1;
            }
        }
        record_index += 1;
    }
    // The checkpoint must describe exactly what was read.
    let at_end = (Some(record_index), Some(reader.offset()));
    if reader.offset() != end_offset {
        outcome.problem = problem(
            at_end.0,
            at_end.1,
            None,
            format!(
                "the segment ends at offset {} but the checkpoint says {end_offset}: acknowledged records are missing",
                reader.offset()
            ),
        );
        return Ok(outcome);
    }
    let last_hash = reader.prev_hash();
    if last_hash.as_slice() != checkpoint.last_hash.as_slice()
        || last_seq_seen != checkpoint.last_seq as u64
        || outcome.events != checkpoint.n_records as u64
    {
        outcome.problem = problem(
            at_end.0,
            at_end.1,
            None,
            "the records do not match the segment's checkpoint (count, last seq or last hash)"
                .to_owned(),
        );
        return Ok(outcome);
    }
    match (checkpoint.sealed_at_ms.is_some(), sealed_with) {
        (true, None) => {
            outcome.problem = problem(
                at_end.0,
                at_end.1,
                None,
                "the checkpoint says sealed but the seal record is missing".to_owned(),
            );
            return Ok(outcome);
        }
        (false, Some(_)) if !is_last => {}
        (false, Some(_)) => {
            outcome.problem = problem(
                at_end.0,
                at_end.1,
                None,
                "a seal record in a segment the checkpoint lists as open".to_owned(),
            );
            return Ok(outcome);
        }
        (true, Some(n)) if n != outcome.events => {
            outcome.problem = problem(
                at_end.0,
                at_end.1,
                None,
                format!(
                    "the seal counts {n} events, the segment holds {}",
                    outcome.events
                ),
            );
            return Ok(outcome);
        }
        _ => {}
    }
    if let Some(expected_sha) = &checkpoint.file_sha256 {
        let hashed = path.clone();
        let zeroed: Vec<(u64, u64)> = ranges.iter().map(super::compact::released).collect();
        let actual = tokio::task::spawn_blocking(move || file_sha256(&hashed, end_offset, &zeroed))
            .await
            .map_err(|error| StoreError::WriteFailed(format!("hashing thread failed: {error}")))?
            .map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        if actual.as_slice() != expected_sha.as_slice() {
            outcome.problem = problem(
                None,
                None,
                None,
                "the sealed file's SHA-256 differs from its checkpoint".to_owned(),
            );
            return Ok(outcome);
        }
    }
    if file_len > end_offset {
        if checkpoint.sealed_at_ms.is_some() {
            outcome.problem = problem(
                at_end.0,
                at_end.1,
                None,
                format!("{} bytes appended after the seal", file_len - end_offset),
            );
        } else {
            outcome.tail_bytes = file_len - end_offset;
        }
    }
    Ok(outcome)
}

/// Decrypts an event record under its epoch's key. The outer error is one
/// that stops verify (a database failure, a key rotated meanwhile); the
/// inner one is damage of this record.
async fn decrypt_record(
    shared: &Arc<Shared>,
    segment_no: u64,
    record: &segment::ScannedRecord,
) -> Result<Result<crate::event::Event, String>, StoreError> {
    match shared.cipher(record.header.epoch_id as i64).await {
        Ok(cipher) => Ok(super::Shared::decrypt(
            &cipher,
            segment_no,
            record.offset,
            &record.header,
            &record.payload,
        )),
        Err(error) => {
            // A key rotation that committed while verify ran is not
            // damage: say that verify could not finish.
            if let Some(check) = shared.db.get_meta("kek_check").await?
                && let Some(fingerprint) = shared.db.get_meta("kek_fingerprint").await?
                && let Err(key_error) = shared.master_key.verify_check(&check, &fingerprint)
            {
                return Err(StoreError::Key(key_error));
            }
            Ok(Err(format!("no usable data key: {error}")))
        }
    }
}

/// Whether every released byte of a compacted range reads as zero (all but
/// the chain hash of its last record, which stays).
fn range_is_zero(file: &File, range: &CompactedRange) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut buffer = vec![0u8; 1 << 20];
    let mut offset = range.start_offset as u64;
    let (_, end) = super::compact::released(range);
    while offset < end {
        let want = ((end - offset) as usize).min(buffer.len());
        let read = file.read_at(&mut buffer[..want], offset)?;
        if read == 0 {
            return Ok(false);
        }
        if buffer[..read].iter().any(|&byte| byte != 0) {
            return Ok(false);
        }
        offset += read as u64;
    }
    Ok(true)
}

/// SHA-256 of a sealed file's first `len` bytes, with compacted ranges
/// counted as zeros whether or not their bytes were reclaimed yet.
pub(super) fn file_sha256(
    path: &std::path::Path,
    len: u64,
    zeroed: &[(u64, u64)],
) -> std::io::Result<Vec<u8>> {
    use sha2::Digest;
    use std::os::unix::fs::FileExt;
    let file = File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < len {
        let want = ((len - offset) as usize).min(buffer.len());
        let read = file.read_at(&mut buffer[..want], offset)?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than its checkpoint",
            ));
        }
        let chunk = &mut buffer[..read];
        for &(start, end) in zeroed {
            let from = start.max(offset);
            let to = end.min(offset + read as u64);
            if from < to {
                chunk[(from - offset) as usize..(to - offset) as usize].fill(0);
            }
        }
        hasher.update(&*chunk);
        offset += read as u64;
    }
    Ok(hasher.finalize().to_vec())
}
