//! `holdfast verify`: proves that nothing acknowledged was altered, removed,
//! reordered or truncated, and names where damage starts.
//!
//! Checks, per segment in metadata order: the header and its link to the
//! previous segment, every record's framing and chain hash, the sequence
//! numbers, every event's decryption under its epoch key, that the metadata
//! points at exactly these records, the seal and the checkpoint (record
//! count, end offset, last hash, file SHA-256). Read-only: it never repairs.

use std::collections::BTreeSet;
use std::fs::File;
use std::sync::Arc;

use serde::Serialize;

use super::format::{self, HASH_LEN, RecordType, SEGMENT_HEADER_LEN};
use super::segment::{self, RecordReader};
use super::{Shared, StoreError};
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
        let outcome = verify_segment(
            shared,
            checkpoint,
            expected_prev_hash,
            expected_seq,
            &mut rows,
            is_last,
            expect_head,
        )
        .await?;
        if let Some(matches) = outcome.expected_head_matches {
            // The head may be seq N's record, the seal after it, or the
            // chain start of the segment after that: any one matching counts.
            report.expected_head_matches =
                Some(matches || report.expected_head_matches == Some(true));
        }
        report.records += outcome.records;
        report.events += outcome.events;
        report.bytes += outcome.bytes;
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

struct SegmentOutcome {
    records: u64,
    events: u64,
    bytes: u64,
    tail_bytes: u64,
    problem: Option<VerifyProblem>,
    expected_head_matches: Option<bool>,
}

async fn verify_segment(
    shared: &Arc<Shared>,
    checkpoint: &SegmentRow,
    expected_prev_hash: [u8; HASH_LEN],
    mut expected_seq: u64,
    rows: &mut RowCursor<'_>,
    is_last: bool,
    expect_head: Option<(u64, [u8; HASH_LEN])>,
) -> Result<SegmentOutcome, StoreError> {
    let segment_no = checkpoint.segment_no as u64;
    let file_name = format::segment_file_name(segment_no);
    let path = segment::segment_path(&shared.segments_dir, segment_no);
    let mut outcome = SegmentOutcome {
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
                let event = match shared.cipher(record.header.epoch_id as i64).await {
                    Ok(cipher) => super::Shared::decrypt(
                        &cipher,
                        segment_no,
                        record.offset,
                        &record.header,
                        &record.payload,
                    ),
                    Err(error) => {
                        // A key rotation that committed while verify ran is
                        // not damage: say that verify could not finish.
                        if let Some(check) = shared.db.get_meta("kek_check").await?
                            && let Some(fingerprint) = shared.db.get_meta("kek_fingerprint").await?
                            && let Err(key_error) =
                                shared.master_key.verify_check(&check, &fingerprint)
                        {
                            return Err(StoreError::Key(key_error));
                        }
                        Err(format!("no usable data key: {error}"))
                    }
                };
                let event = match event {
                    Ok(event) => event,
                    Err(what) => {
                        outcome.problem = problem(here.0, here.1, Some(seq), what);
                        return Ok(outcome);
                    }
                };
                let row = rows.peek().await?.cloned();
                let expected_row = super::writer::event_row(
                    &event,
                    seq,
                    segment_no,
                    record.offset,
                    record.record_len(),
                    record.header.epoch_id,
                );
                if row.as_ref() != Some(&expected_row) {
                    let what = match row {
                        Some(row) if (row.seq as u64) < seq => format!(
                            "the metadata lists event {:?} at seq {} but the store has no such record",
                            row.event_id, row.seq
                        ),
                        Some(row) if row.seq as u64 == seq && row.event_id == event.id => format!(
                            "the metadata row of event {:?} disagrees with its record (location, kind, time, team, channel, user or post)",
                            row.event_id
                        ),
                        Some(row) if row.seq as u64 == seq => format!(
                            "the metadata row for seq {seq} names event {:?}, the record holds another",
                            row.event_id
                        ),
                        _ => format!("event record seq {seq} has no metadata row"),
                    };
                    outcome.problem = problem(here.0, here.1, Some(seq), what);
                    return Ok(outcome);
                }
                if let Some((expected_seq_of_head, hash)) = expect_head
                    && expected_seq_of_head == seq
                {
                    outcome.expected_head_matches = Some(
                        record.chain_hash == hash || outcome.expected_head_matches == Some(true),
                    );
                }
                rows.next_row().await?;
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
        let actual = tokio::task::spawn_blocking(move || file_sha256(&hashed, end_offset))
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

fn file_sha256(path: &std::path::Path, len: u64) -> std::io::Result<Vec<u8>> {
    use sha2::Digest;
    use std::io::Read;
    let mut hasher = sha2::Sha256::new();
    let mut reader = std::io::BufReader::new(File::open(path)?).take(len);
    std::io::copy(&mut reader, &mut hasher)?;
    Ok(hasher.finalize().to_vec())
}
