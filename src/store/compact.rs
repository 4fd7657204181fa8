//! Compaction: reclaims the disk of records whose key epoch retention
//! destroyed, in sealed segments, without breaking what `verify` proves.
//!
//! A run of adjacent dead records becomes a *compacted range*: its first
//! seq, last seq, record count, the chain hash before it and the chain hash
//! of its last record are recorded in the metadata together with the
//! segment's new file hash (its bytes with every compacted range counted as
//! zeros), and only then are the bytes released with
//! `fallocate(PUNCH_HOLE)` (or overwritten with zeros where the file system
//! cannot punch holes). The last 32 bytes of a range (its last record's
//! chain hash) stay: a read of the record after it checks its link against
//! them. Nothing moves: every surviving record keeps its offset, so its
//! associated data still authenticates it. An interrupted
//! compaction is finished by the next one; until then verify reads the
//! recorded-but-intact records normally.
//!
//! Never touches the open segment, a seal, a segment header, or any record
//! whose key still exists.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::format::{HASH_LEN, Hash, RecordType, SEGMENT_HEADER_LEN, chain_start};
use super::segment::{self, RecordReader};
use super::{Shared, StoreError};
use crate::db::SegmentRow;
use crate::db::retention::CompactedRange;

/// Runs of dead records shorter than this are left in place: their
/// ciphertext is unreadable already and punching less than a file-system
/// block reclaims nothing.
const MIN_RANGE_BYTES: u64 = 4096;

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactionReport {
    /// Sealed segments read.
    pub segments_scanned: u64,
    /// Segments with a new compacted range.
    pub segments_compacted: u64,
    pub ranges: u64,
    pub records: u64,
    /// Logical bytes of the new ranges.
    pub range_bytes: u64,
    /// Disk blocks released, in bytes (from the files' allocated size).
    pub bytes_reclaimed: u64,
    /// Whether every range was released as a hole (false: overwritten with zeros).
    pub holes_punched: bool,
}

/// Compacts the sealed segments in `only` (all sealed ones when `None`).
pub(super) async fn compact(
    shared: &Arc<Shared>,
    run_id: i64,
    only: Option<&HashSet<i64>>,
) -> Result<CompactionReport, StoreError> {
    let segments = shared.db.segments().await?;
    let destroyed = shared.db.destroyed_epoch_ids().await?;
    let existing = shared.db.compacted_ranges().await?;
    let mut report = CompactionReport {
        holes_punched: true,
        ..CompactionReport::default()
    };
    for checkpoint in segments.iter().filter(|s| s.sealed_at_ms.is_some()) {
        if only.is_some_and(|only| !only.contains(&checkpoint.segment_no)) {
            continue;
        }
        let known: Vec<CompactedRange> = existing
            .iter()
            .filter(|range| range.segment_no == checkpoint.segment_no)
            .cloned()
            .collect();
        let path = segment::segment_path(&shared.segments_dir, checkpoint.segment_no as u64);
        let scan_path = path.clone();
        let scan_checkpoint = checkpoint.clone();
        let scan_destroyed = destroyed.clone();
        let scan_known = known.clone();
        let found = tokio::task::spawn_blocking(move || {
            dead_runs(
                &scan_path,
                &scan_checkpoint,
                &scan_destroyed,
                &scan_known,
                run_id,
            )
        })
        .await
        .map_err(|error| StoreError::WriteFailed(format!("compaction thread failed: {error}")))?
        .map_err(|what| StoreError::Damaged {
            segment_no: checkpoint.segment_no as u64,
            offset: 0,
            what,
        })?;
        report.segments_scanned += 1;
        if found.is_empty() && known.is_empty() {
            continue;
        }
        let mut all: Vec<(u64, u64)> = known.iter().chain(&found).map(released).collect();
        all.sort_unstable();
        if !found.is_empty() {
            let hash_path = path.clone();
            let end = checkpoint.end_offset as u64;
            let zeroed = all.clone();
            let file_sha = tokio::task::spawn_blocking(move || {
                super::verify::file_sha256(&hash_path, end, &zeroed)
            })
            .await
            .map_err(|error| StoreError::WriteFailed(format!("hashing thread failed: {error}")))?
            .map_err(io_error(&path))?;
            // Recorded first: a crash after this leaves intact records that
            // verify still reads, and the next compaction releases them.
            shared
                .db
                .record_compaction(checkpoint.segment_no, &found, &file_sha)
                .await?;
            report.segments_compacted += 1;
            report.ranges += found.len() as u64;
            report.records += found.iter().map(|r| r.n_records as u64).sum::<u64>();
            report.range_bytes += found
                .iter()
                .map(|r| (r.end_offset - r.start_offset) as u64)
                .sum::<u64>();
        }
        let release_path = path.clone();
        let (reclaimed, punched) =
            tokio::task::spawn_blocking(move || release(&release_path, &all))
                .await
                .map_err(|error| {
                    StoreError::WriteFailed(format!("compaction thread failed: {error}"))
                })?
                .map_err(io_error(&path))?;
        report.bytes_reclaimed += reclaimed;
        report.holes_punched &= punched;
    }
    Ok(report)
}

/// The bytes of a range that are released: all but the chain hash of its
/// last record, which the next record's reads check their link against.
pub(super) fn released(range: &CompactedRange) -> (u64, u64) {
    (
        range.start_offset as u64,
        (range.end_offset as u64).saturating_sub(HASH_LEN as u64),
    )
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads a sealed segment and returns its new runs of dead records: event
/// records of destroyed epochs, adjacent, at least [`MIN_RANGE_BYTES`] long,
/// outside the ranges compacted before.
fn dead_runs(
    path: &Path,
    checkpoint: &SegmentRow,
    destroyed: &std::collections::HashSet<i64>,
    known: &[CompactedRange],
    run_id: i64,
) -> Result<Vec<CompactedRange>, String> {
    let file = File::open(path).map_err(|error| error.to_string())?;
    let (header, header_bytes) = segment::read_header(&file)?;
    if header.segment_no != checkpoint.segment_no as u64 {
        return Err(format!("the header says segment {}", header.segment_no));
    }
    let start_hash = chain_start(&header_bytes);
    let reopen = file.try_clone().map_err(|error| error.to_string())?;
    let mut reader = RecordReader::new(file, SEGMENT_HEADER_LEN as u64, start_hash)
        .map_err(|error| error.to_string())?;
    let end = checkpoint.end_offset as u64;
    let mut runs = Vec::new();
    let mut current: Option<CompactedRange> = None;
    let close = |current: &mut Option<CompactedRange>, runs: &mut Vec<CompactedRange>| {
        if let Some(range) = current.take()
            && (range.end_offset - range.start_offset) as u64 >= MIN_RANGE_BYTES
        {
            runs.push(range);
        }
    };
    while reader.offset() < end {
        if let Some(range) = known
            .iter()
            .find(|range| range.start_offset as u64 == reader.offset())
        {
            close(&mut current, &mut runs);
            let last: Hash = range
                .last_hash
                .as_slice()
                .try_into()
                .map_err(|_| "a compacted range's hash is not 32 bytes".to_owned())?;
            let file = reopen.try_clone().map_err(|error| error.to_string())?;
            reader = RecordReader::new(file, range.end_offset as u64, last)
                .map_err(|error| error.to_string())?;
            continue;
        }
        let prev = reader.prev_hash();
        let record = match reader.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(fault) => return Err(format!("at offset {}: {}", fault.offset, fault.reason)),
        };
        let dead = record.header.record_type == RecordType::Event
            && destroyed.contains(&(record.header.epoch_id as i64));
        if !dead {
            close(&mut current, &mut runs);
            continue;
        }
        let seq = record.header.seq as i64;
        let record_end = (record.offset + record.record_len()) as i64;
        match current.as_mut() {
            Some(range) => {
                range.end_offset = record_end;
                range.last_seq = seq;
                range.n_records += 1;
                range.last_hash = record.chain_hash.to_vec();
            }
            None => {
                current = Some(CompactedRange {
                    segment_no: checkpoint.segment_no,
                    start_offset: record.offset as i64,
                    end_offset: record_end,
                    first_seq: seq,
                    last_seq: seq,
                    n_records: 1,
                    prev_hash: prev.to_vec(),
                    last_hash: record.chain_hash.to_vec(),
                    run_id,
                });
            }
        }
    }
    close(&mut current, &mut runs);
    debug_assert!(runs.iter().all(|r| r.prev_hash.len() == HASH_LEN));
    Ok(runs)
}

/// Releases the bytes of `ranges` (punching holes, or writing zeros where
/// the file system cannot) and syncs. Returns the bytes of disk freed and
/// whether holes were punched.
fn release(path: &Path, ranges: &[(u64, u64)]) -> std::io::Result<(u64, bool)> {
    use rustix::fs::{FallocateFlags, fallocate};
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let before = file.metadata()?.blocks() * 512;
    let mut punched = true;
    for &(start, end) in ranges {
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        if fallocate(&file, flags, start, end - start).is_err() {
            punched = false;
            write_zeros(&file, start, end)?;
        }
    }
    file.sync_all()?;
    let after = file.metadata()?.blocks() * 512;
    Ok((before.saturating_sub(after), punched))
}

fn write_zeros(file: &File, start: u64, end: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut offset = start;
    while offset < end {
        let n = ((end - offset) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], offset)?;
        offset += n as u64;
    }
    Ok(())
}
