//! The single writer task: group commit of appends, and crash recovery.
//!
//! The writer takes every request waiting in its channel (up to a limit),
//! drops duplicates, makes sure each event's key epoch exists durably,
//! encrypts and appends the records on a blocking thread, syncs once, records
//! the batch's locations and the new head in the metadata database, and only
//! then answers. Whatever reached the disk but not the database is found by
//! [`recover`] on the next start (or after a failed write) and indexed; a torn
//! tail past the acknowledged head is cut off.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Payload};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::format::{
    self, HASH_LEN, Hash, NONCE_LEN, RECORD_HEADER_LEN, RecordHeader, RecordType, SEAL_PAYLOAD_LEN,
    SEGMENT_HEADER_LEN, SegmentHeader,
};
use super::keys::{DataKey, EpochLabel};
use super::segment::{self, RecordReader};
use super::{
    AppendStatus, Durability, RecoveryReport, Shared, StoreError, StoreOptions, WriteRequest,
    WriterMessage,
};
use crate::db::retention::{DestroyOutcome, Relocation, base_day};
use crate::db::{EventRow, NewEpoch, SegmentRow};
use crate::event::Event;

const TAG_LEN: usize = 16;
const SEAL_RECORD_LEN: u64 = (RECORD_HEADER_LEN + SEAL_PAYLOAD_LEN + HASH_LEN) as u64;

#[derive(Debug, Clone, Copy)]
pub(super) struct WriterOptions {
    durability: Durability,
    segment_max_bytes: u64,
    max_group_events: usize,
}

impl From<&StoreOptions> for WriterOptions {
    fn from(options: &StoreOptions) -> Self {
        WriterOptions {
            durability: options.durability,
            segment_max_bytes: options
                .segment_max_bytes
                .max(SEGMENT_HEADER_LEN as u64 + 4096),
            max_group_events: options.max_group_events.max(1),
        }
    }
}

/// The segment being appended to.
pub(super) struct ActiveSegment {
    segment_no: u64,
    file: File,
    created_at_ms: i64,
    first_seq: u64,
    n_records: u64,
    end_offset: u64,
    last_hash: Hash,
    /// SHA-256 of the file's bytes so far, for the seal checkpoint.
    file_hasher: Sha256,
}

pub(super) struct WriterState {
    active: ActiveSegment,
    last_seq: u64,
}

impl WriterState {
    pub(super) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    fn segment_row(&self, sealed: Option<(i64, Vec<u8>)>) -> SegmentRow {
        let (sealed_at_ms, file_sha256) = match sealed {
            Some((at, sha)) => (Some(at), Some(sha)),
            None => (None, None),
        };
        SegmentRow {
            segment_no: self.active.segment_no as i64,
            created_at_ms: self.active.created_at_ms,
            sealed_at_ms,
            first_seq: self.active.first_seq as i64,
            n_records: self.active.n_records as i64,
            end_offset: self.active.end_offset as i64,
            last_seq: self.last_seq as i64,
            last_hash: self.active.last_hash.to_vec(),
            file_sha256,
        }
    }

    /// Starts a new segment after `self`'s (sealed) one.
    fn start_segment(&mut self, segments_dir: &Path) -> std::io::Result<()> {
        let segment_no = self.active.segment_no + 1;
        self.active = new_segment(
            segments_dir,
            segment_no,
            self.active.last_hash,
            self.last_seq,
        )?;
        Ok(())
    }

    /// Appends the seal record and syncs; returns the sealed checkpoint.
    fn seal(&mut self) -> std::io::Result<SegmentRow> {
        let sealed_at_ms = chrono::Utc::now().timestamp_millis();
        let payload = format::encode_seal(self.active.n_records, sealed_at_ms);
        let header = RecordHeader {
            record_type: RecordType::Seal,
            seq: 0,
            epoch_id: 0,
            nonce: [0; NONCE_LEN],
            payload_len: SEAL_PAYLOAD_LEN as u32,
        }
        .encode();
        let chain = format::chain_hash(&self.active.last_hash, &header, &payload);
        let bytes = [header.as_slice(), &payload, &chain].concat();
        self.active
            .file
            .write_all_at(&bytes, self.active.end_offset)?;
        self.active.file.sync_data()?;
        self.active.file_hasher.update(&bytes);
        self.active.end_offset += bytes.len() as u64;
        self.active.last_hash = chain;
        let sha = self.active.file_hasher.clone().finalize().to_vec();
        Ok(self.segment_row(Some((sealed_at_ms, sha))))
    }
}

fn new_segment(
    segments_dir: &Path,
    segment_no: u64,
    prev_hash: Hash,
    last_seq: u64,
) -> std::io::Result<ActiveSegment> {
    let header = SegmentHeader {
        segment_no,
        created_at_ms: chrono::Utc::now().timestamp_millis(),
        prev_hash,
    };
    let (file, header_bytes) = segment::create_segment(segments_dir, &header)?;
    let mut file_hasher = Sha256::new();
    file_hasher.update(header_bytes);
    Ok(ActiveSegment {
        segment_no,
        file,
        created_at_ms: header.created_at_ms,
        first_seq: last_seq + 1,
        n_records: 0,
        end_offset: SEGMENT_HEADER_LEN as u64,
        last_hash: format::chain_start(&header_bytes),
        file_hasher,
    })
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

// ---------------------------------------------------------------- recovery

/// A record found durable past the recorded head.
struct Found {
    segment_no: u64,
    record: segment::ScannedRecord,
}

struct ScanOutcome {
    state: WriterState,
    found: Vec<Found>,
    sealed: Vec<SegmentRow>,
    truncated: Option<(u64, u64, u64)>,
}

/// What recovery does with whole records found past the acknowledged head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecoveryMode {
    /// At start: they reached the disk before a crash; sync and index them.
    Startup,
    /// After a failed write or commit in this process: nothing past the head
    /// was acknowledged, and after a failed sync the page cache may hold
    /// bytes the disk does not. Cut everything past the head.
    AfterFailure,
}

/// Brings the writer state in line with the disk: checks that the
/// acknowledged head is intact, indexes (or, after a failure, cuts) durable
/// records past it, and cuts off a torn tail. Refuses, before writing
/// anything, when acknowledged data is damaged.
pub(super) async fn recover(
    shared: &Arc<Shared>,
    mode: RecoveryMode,
) -> Result<(WriterState, RecoveryReport), StoreError> {
    let segments = shared.db.segments().await?;
    let segments_dir = shared.segments_dir.clone();
    let Some(head) = segments.last().cloned() else {
        // A new archive: its first segment.
        let state = tokio::task::spawn_blocking(move || {
            new_segment(&segments_dir, 1, [0; HASH_LEN], 0)
                .map(|active| WriterState {
                    active,
                    last_seq: 0,
                })
                .map_err(io_error(&segments_dir))
        })
        .await
        .map_err(|error| StoreError::WriteFailed(error.to_string()))??;
        shared
            .db
            .commit_batch(&[], &[state.segment_row(None)])
            .await?;
        return Ok((state, RecoveryReport::default()));
    };
    let outcome = tokio::task::spawn_blocking(move || match mode {
        RecoveryMode::Startup => scan_from_head(&segments_dir, &head),
        RecoveryMode::AfterFailure => discard_past_head(&segments_dir, &head),
    })
    .await
    .map_err(|error| StoreError::WriteFailed(error.to_string()))??;

    let mut rows = Vec::with_capacity(outcome.found.len());
    for found in &outcome.found {
        let header = &found.record.header;
        let damaged = |what: String| StoreError::Damaged {
            segment_no: found.segment_no,
            offset: found.record.offset,
            what,
        };
        let cipher = match shared.cipher(header.epoch_id as i64).await {
            Ok(cipher) => cipher,
            // The database not answering is not damage of the segment.
            Err(StoreError::Db(error)) => return Err(StoreError::Db(error)),
            Err(error) => {
                return Err(damaged(format!(
                    "record past the head has no usable key: {error}"
                )));
            }
        };
        let event = Shared::decrypt(
            &cipher,
            found.segment_no,
            found.record.offset,
            header,
            &found.record.payload,
        )
        .map_err(damaged)?;
        rows.push(event_row(
            &event,
            header.seq,
            found.segment_no,
            found.record.offset,
            found.record.record_len(),
            header.epoch_id,
        ));
    }
    let mut segment_rows = outcome.sealed;
    segment_rows.push(outcome.state.segment_row(None));
    // A record indexed before (a retried crash) must not stop recovery. A
    // record of an event already stored under another seq is a retention
    // carry that reached the disk but not the database: finish moving it.
    let known: HashMap<String, EventRow> = shared
        .db
        .events_by_ids(
            &rows
                .iter()
                .map(|row| row.event_id.as_str())
                .collect::<Vec<_>>(),
        )
        .await?
        .into_iter()
        .map(|row| (row.event_id.clone(), row))
        .collect();
    let mut relocations = Vec::new();
    rows.retain(|row| match known.get(&row.event_id) {
        None => true,
        Some(stored) => {
            if stored.seq != row.seq
                && stored.record_seq() != row.seq
                && stored.shredded_run.is_none()
            {
                relocations.push(Relocation {
                    seq: stored.seq,
                    record_seq: row.seq,
                    segment_no: row.segment_no,
                    record_offset: row.record_offset,
                    record_len: row.record_len,
                    epoch_id: row.epoch_id,
                });
            }
            false
        }
    });
    if !relocations.is_empty() {
        tracing::warn!(
            events = relocations.len(),
            "finished an interrupted retention carry found past the head"
        );
        shared.db.commit_relocations(&relocations, &[]).await?;
    }
    shared.db.commit_batch(&rows, &segment_rows).await?;
    Ok((
        outcome.state,
        RecoveryReport {
            recovered_records: outcome.found.len() as u64,
            truncated: outcome.truncated,
        },
    ))
}

fn scan_from_head(segments_dir: &Path, head: &SegmentRow) -> Result<ScanOutcome, StoreError> {
    let mut segment_no = head.segment_no as u64;
    let path = segment::segment_path(segments_dir, segment_no);
    let damaged = |segment_no: u64, offset: u64, what: String| StoreError::Damaged {
        segment_no,
        offset,
        what,
    };
    if head.sealed_at_ms.is_some() {
        return Err(damaged(
            segment_no,
            head.end_offset as u64,
            "the last segment is sealed but no segment follows it".to_owned(),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|error| {
            damaged(
                segment_no,
                0,
                format!("the segment holding the acknowledged head cannot be opened: {error}"),
            )
        })?;
    let file_len = file.metadata().map_err(io_error(&path))?.len();
    let end_offset = head.end_offset as u64;
    if file_len < end_offset {
        return Err(damaged(
            segment_no,
            file_len,
            format!(
                "the file is {file_len} bytes but acknowledged records reach offset {end_offset}: acknowledged events are missing"
            ),
        ));
    }
    let (header, header_bytes) =
        segment::read_header(&file).map_err(|what| damaged(segment_no, 0, what))?;
    if header.segment_no != segment_no {
        return Err(damaged(
            segment_no,
            0,
            format!("the header says segment {}", header.segment_no),
        ));
    }
    let stored_last_hash: Hash = if end_offset == SEGMENT_HEADER_LEN as u64 {
        format::chain_start(&header_bytes)
    } else {
        let mut hash = [0u8; HASH_LEN];
        file.read_exact_at(&mut hash, end_offset - HASH_LEN as u64)
            .map_err(io_error(&path))?;
        hash
    };
    if stored_last_hash.as_slice() != head.last_hash.as_slice() {
        return Err(damaged(
            segment_no,
            end_offset,
            "the last acknowledged record does not match the checkpoint in the metadata".to_owned(),
        ));
    }
    let mut file_hasher = Sha256::new();
    hash_prefix(&file, end_offset, &mut file_hasher).map_err(io_error(&path))?;
    let mut state = WriterState {
        active: ActiveSegment {
            segment_no,
            file: file.try_clone().map_err(io_error(&path))?,
            created_at_ms: header.created_at_ms,
            first_seq: head.first_seq as u64,
            n_records: head.n_records as u64,
            end_offset,
            last_hash: stored_last_hash,
            file_hasher,
        },
        last_seq: head.last_seq as u64,
    };
    let mut found = Vec::new();
    let mut sealed = Vec::new();
    let mut truncated = None;
    // Files whose records past the head are indexed: synced before that,
    // since a killed process may have left them in the page cache only.
    let mut touched = vec![file.try_clone().map_err(io_error(&path))?];
    let mut reader =
        RecordReader::new(file, end_offset, stored_last_hash).map_err(io_error(&path))?;
    loop {
        let fault = match reader.next_record() {
            Ok(None) => break,
            Ok(Some(record)) => match record.header.record_type {
                RecordType::Event if record.header.seq == state.last_seq + 1 => {
                    let bytes = record_bytes(&record);
                    state.active.file_hasher.update(&bytes);
                    state.active.n_records += 1;
                    state.active.end_offset = reader.offset();
                    state.active.last_hash = record.chain_hash;
                    state.last_seq = record.header.seq;
                    found.push(Found { segment_no, record });
                    continue;
                }
                RecordType::Seal
                    if format::decode_seal(&record.payload)
                        .is_some_and(|(n, _)| n == state.active.n_records) =>
                {
                    let bytes = record_bytes(&record);
                    state.active.file_hasher.update(&bytes);
                    state.active.end_offset = reader.offset();
                    state.active.last_hash = record.chain_hash;
                    let (_, sealed_at_ms) =
                        format::decode_seal(&record.payload).expect("checked in the match guard");
                    let sha = state.active.file_hasher.clone().finalize().to_vec();
                    sealed.push(state.segment_row(Some((sealed_at_ms, sha))));
                    // The seal is durable; the next segment may be missing or torn.
                    segment_no += 1;
                    let next_path = segment::segment_path(segments_dir, segment_no);
                    state.active = match open_next_segment(&next_path, segment_no, &state) {
                        Some(active) => active,
                        None => new_segment(
                            segments_dir,
                            segment_no,
                            state.active.last_hash,
                            state.last_seq,
                        )
                        .map_err(io_error(&next_path))?,
                    };
                    touched.push(
                        state
                            .active
                            .file
                            .try_clone()
                            .map_err(io_error(&next_path))?,
                    );
                    reader = RecordReader::new(
                        state
                            .active
                            .file
                            .try_clone()
                            .map_err(io_error(&next_path))?,
                        SEGMENT_HEADER_LEN as u64,
                        state.active.last_hash,
                    )
                    .map_err(io_error(&next_path))?;
                    continue;
                }
                _ => segment::RecordFault {
                    offset: record.offset,
                    reason: "record out of sequence".to_owned(),
                    incomplete: false,
                },
            },
            Err(fault) => fault,
        };
        // Past the acknowledged head: a torn or partial write. Cut it off,
        // unless something follows that a crash cannot explain.
        let later = segment::segment_path(segments_dir, segment_no + 1);
        if later.exists() {
            return Err(damaged(
                segment_no + 1,
                0,
                format!(
                    "unexpected segment file {} after a damaged tail of segment {segment_no}",
                    later.display()
                ),
            ));
        }
        let path = segment::segment_path(segments_dir, segment_no);
        let len = state.active.file.metadata().map_err(io_error(&path))?.len();
        state
            .active
            .file
            .set_len(fault.offset)
            .map_err(io_error(&path))?;
        state.active.file.sync_all().map_err(io_error(&path))?;
        tracing::warn!(
            segment_no,
            offset = fault.offset,
            bytes = len - fault.offset,
            reason = %fault.reason,
            "truncated a torn tail past the acknowledged head"
        );
        truncated = Some((segment_no, fault.offset, len - fault.offset));
        break;
    }
    let later = segment::segment_path(segments_dir, segment_no + 1);
    if later.exists() {
        return Err(damaged(
            segment_no + 1,
            0,
            format!("unexpected segment file {} after the head", later.display()),
        ));
    }
    if !found.is_empty() || !sealed.is_empty() {
        for file in &touched {
            file.sync_all().map_err(io_error(segments_dir))?;
        }
    }
    Ok(ScanOutcome {
        state,
        found,
        sealed,
        truncated,
    })
}

/// After a failure in this process: checks the head like a start does, then
/// cuts the head segment back to the head and removes segment files past it
/// (all written by the failed groups, none acknowledged).
fn discard_past_head(segments_dir: &Path, head: &SegmentRow) -> Result<ScanOutcome, StoreError> {
    let segment_no = head.segment_no as u64;
    let path = segment::segment_path(segments_dir, segment_no);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_error(&path))?;
    let end_offset = head.end_offset as u64;
    let len = file.metadata().map_err(io_error(&path))?.len();
    if len < end_offset {
        return Err(StoreError::Damaged {
            segment_no,
            offset: len,
            what: format!(
                "the file is {len} bytes but acknowledged records reach offset {end_offset}: acknowledged events are missing"
            ),
        });
    }
    let mut truncated = None;
    if len > end_offset {
        file.set_len(end_offset).map_err(io_error(&path))?;
        truncated = Some((segment_no, end_offset, len - end_offset));
    }
    let mut later_no = segment_no + 1;
    loop {
        let later = segment::segment_path(segments_dir, later_no);
        match std::fs::remove_file(&later) {
            Ok(()) => later_no += 1,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => break,
            Err(error) => return Err(io_error(&later)(error)),
        }
    }
    file.sync_all().map_err(io_error(&path))?;
    segment::sync_dir(segments_dir).map_err(io_error(segments_dir))?;
    if let Some((segment_no, offset, bytes)) = truncated {
        tracing::warn!(
            segment_no,
            offset,
            bytes,
            "discarded unacknowledged bytes after a failed write"
        );
    }
    // With nothing past the head, a start-up scan only rebuilds the state.
    let mut outcome = scan_from_head(segments_dir, head)?;
    outcome.truncated = truncated;
    Ok(outcome)
}

/// Opens the segment after a seal if its header is whole and links to it.
fn open_next_segment(path: &Path, segment_no: u64, sealed: &WriterState) -> Option<ActiveSegment> {
    let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    let (header, header_bytes) = segment::read_header(&file).ok()?;
    if header.segment_no != segment_no || header.prev_hash != sealed.active.last_hash {
        return None;
    }
    let mut file_hasher = Sha256::new();
    file_hasher.update(header_bytes);
    Some(ActiveSegment {
        segment_no,
        file,
        created_at_ms: header.created_at_ms,
        first_seq: sealed.last_seq + 1,
        n_records: 0,
        end_offset: SEGMENT_HEADER_LEN as u64,
        last_hash: format::chain_start(&header_bytes),
        file_hasher,
    })
}

fn record_bytes(record: &segment::ScannedRecord) -> Vec<u8> {
    [
        record.header.encode().as_slice(),
        &record.payload,
        &record.chain_hash,
    ]
    .concat()
}

fn hash_prefix(file: &File, len: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut reader = std::io::BufReader::new(file.try_clone()?);
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(0))?;
    let mut limited = reader.take(len);
    std::io::copy(&mut limited, hasher)?;
    Ok(())
}

pub(super) fn event_row(
    event: &Event,
    seq: u64,
    segment_no: u64,
    offset: u64,
    len: u64,
    epoch_id: u64,
) -> EventRow {
    EventRow {
        event_id: event.id.clone(),
        seq: seq as i64,
        segment_no: segment_no as i64,
        record_offset: offset as i64,
        record_len: len as i64,
        epoch_id: epoch_id as i64,
        kind: event.kind.as_str().to_owned(),
        at_us: event.at_us,
        team: event.team.clone(),
        channel: event.channel.clone(),
        user_name: event.user.clone(),
        post_id: event.post.clone(),
        record_seq: None,
        shredded_run: None,
        shredded_policy: None,
    }
}

// ---------------------------------------------------------------- writing

type EpochKey = (String, String, String);

/// The writer's own cache of epoch ids and ciphers by (team, channel, day).
#[derive(Default)]
struct EpochCache {
    by_key: HashMap<EpochKey, (i64, Arc<Aes256Gcm>)>,
}

const MAX_CACHED_EPOCHS: usize = 50_000;

impl EpochCache {
    /// Makes sure every key has an epoch, creating missing ones durably.
    async fn resolve(
        &mut self,
        shared: &Shared,
        keys: HashSet<EpochKey>,
    ) -> Result<(), StoreError> {
        let mut missing: Vec<EpochKey> = keys
            .iter()
            .filter(|key| !self.by_key.contains_key(*key))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if self.by_key.len() + missing.len() > MAX_CACHED_EPOCHS {
            // Start over, and load every key of this group, not only the
            // missing ones: the ones cached before are gone too.
            self.by_key.clear();
            missing = keys.into_iter().collect();
        }
        let mut rows = shared.db.find_epochs(&missing).await?;
        let found: HashSet<EpochKey> = rows
            .iter()
            .map(|row| (row.team.clone(), row.channel.clone(), row.day.clone()))
            .collect();
        let new_epochs: Vec<NewEpoch> = missing
            .iter()
            .filter(|key| !found.contains(*key))
            .map(|(team, channel, day)| NewEpoch {
                wrapped_key: shared
                    .master_key
                    .wrap(&DataKey::generate(), &EpochLabel { team, channel, day }),
                team: team.clone(),
                channel: channel.clone(),
                day: day.clone(),
                kek_fingerprint: shared.master_key.fingerprint().to_owned(),
            })
            .collect();
        if !new_epochs.is_empty() {
            rows.extend(shared.db.insert_epochs(&new_epochs).await?);
        }
        for mut row in rows {
            if row.wrapped_key.is_none() {
                // The day's epoch was destroyed by retention: late events of
                // that day go to a later generation, never under a lost key.
                row = live_generation(shared, &row).await?;
            }
            let wrapped = row
                .wrapped_key
                .as_deref()
                .ok_or(super::KeyError::UnwrapFailed {
                    epoch_id: row.epoch_id,
                })?;
            let label = EpochLabel {
                team: &row.team,
                channel: &row.channel,
                day: &row.day,
            };
            let cipher = Arc::new(
                shared
                    .master_key
                    .unwrap(wrapped, &label, row.epoch_id)?
                    .cipher(),
            );
            let day = base_day(&row.day).to_owned();
            self.by_key
                .insert((row.team, row.channel, day), (row.epoch_id, cipher));
        }
        Ok(())
    }

    fn get(&self, key: &EpochKey) -> Option<&(i64, Arc<Aes256Gcm>)> {
        self.by_key.get(key)
    }
}

/// The live epoch for new events of a destroyed epoch's day: the newest
/// later generation, or a new one.
async fn live_generation(
    shared: &Shared,
    destroyed: &crate::db::EpochRow,
) -> Result<crate::db::EpochRow, StoreError> {
    let day = base_day(&destroyed.day);
    if let Some(live) = shared
        .db
        .live_day_epoch(&destroyed.team, &destroyed.channel, day)
        .await?
    {
        return Ok(live);
    }
    let next = shared
        .db
        .next_generation_day(&destroyed.team, &destroyed.channel, day)
        .await?;
    let wrapped = shared.master_key.wrap(
        &DataKey::generate(),
        &EpochLabel {
            team: &destroyed.team,
            channel: &destroyed.channel,
            day: &next,
        },
    );
    Ok(shared
        .db
        .create_generation_epoch(
            &NewEpoch {
                team: destroyed.team.clone(),
                channel: destroyed.channel.clone(),
                day: next,
                wrapped_key: wrapped,
                kek_fingerprint: shared.master_key.fingerprint().to_owned(),
            },
            None,
        )
        .await?)
}

struct WriteOutcome {
    rows: Vec<EventRow>,
    /// For each row, the index of its event in the group.
    row_events: Vec<usize>,
    /// Events refused as too large to be a record: (index, bytes).
    too_large: Vec<(usize, usize)>,
    segment_rows: Vec<SegmentRow>,
    fsyncs: u64,
    bytes: u64,
}

/// A group whose records are durable and whose metadata commit runs while
/// the writer appends the next group. Its requests are answered when the
/// commit ends: the answer still comes only after both.
struct InFlight {
    requests: Vec<WriteRequest>,
    statuses: Vec<Vec<AppendStatus>>,
    ids: HashSet<String>,
    counts: GroupCounts,
    commit: tokio::task::JoinHandle<Result<(), StoreError>>,
}

#[derive(Clone, Copy)]
struct GroupCounts {
    last_seq: u64,
    events: u64,
    fsyncs: u64,
    bytes: u64,
}

type Joined = Result<Result<(), StoreError>, tokio::task::JoinError>;

impl InFlight {
    /// Waits for the commit and answers the group. Returns whether it succeeded.
    async fn finish(mut self, shared: &Shared, started: std::time::Instant) -> bool {
        let joined = (&mut self.commit).await;
        self.answer(joined, shared, started)
    }

    /// Answers the group with the commit's outcome.
    fn answer(self, joined: Joined, shared: &Shared, started: std::time::Instant) -> bool {
        let result = match joined {
            Ok(result) => result,
            Err(error) => Err(StoreError::WriteFailed(format!(
                "metadata commit task failed: {error}"
            ))),
        };
        match result {
            Ok(()) => {
                let metrics = &shared.metrics;
                metrics
                    .metadata_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.events_stored.inc_by(self.counts.events);
                metrics.last_seq.set(self.counts.last_seq as i64);
                metrics.fsyncs.inc_by(self.counts.fsyncs);
                metrics.bytes_written.inc_by(self.counts.bytes);
                metrics.group_commits.inc();
                metrics
                    .group_commit_events
                    .observe(self.counts.events as f64);
                for (request, status) in self.requests.into_iter().zip(self.statuses) {
                    let _ = request.reply.send(Ok(status));
                }
                true
            }
            Err(error) => {
                tracing::error!(%error, "metadata commit failed; the group was not acknowledged");
                fail_all(self.requests, &error);
                false
            }
        }
    }
}

fn fail_all(requests: Vec<WriteRequest>, error: &StoreError) {
    let message = error.to_string();
    for request in requests {
        let _ = request
            .reply
            .send(Err(StoreError::WriteFailed(message.clone())));
    }
}

/// The writer task: runs until every sender is dropped.
///
/// Group N+1 is deduplicated, encrypted and appended while group N's
/// metadata commits; commits run strictly in order. If a commit fails, the
/// groups after it are failed too and the next group starts with
/// [`recover`], which indexes whatever did reach the disk.
pub(super) async fn run(
    shared: Arc<Shared>,
    state: WriterState,
    mut receiver: mpsc::Receiver<WriterMessage>,
    options: WriterOptions,
) {
    let mut state = Some(state);
    let mut epochs = EpochCache::default();
    let mut in_flight: Option<(InFlight, std::time::Instant)> = None;
    // A retention request met while gathering a group waits here.
    let mut stash: Option<WriterMessage> = None;
    loop {
        let message = match (stash.take(), in_flight.as_mut()) {
            (Some(message), _) => message,
            (None, None) => match receiver.recv().await {
                Some(message) => message,
                None => break,
            },
            (None, Some((flight, _))) => tokio::select! {
                biased;
                message = receiver.recv() => match message {
                    Some(message) => message,
                    None => break,
                },
                joined = &mut flight.commit => {
                    // Done: answer it now rather than with the next group.
                    let (flight, started) = in_flight.take().expect("matched Some");
                    if !flight.answer(joined, &shared, started) {
                        state = None;
                    }
                    continue;
                }
            },
        };
        let first = match message {
            WriterMessage::Append(request) => request,
            WriterMessage::Carry(carry) => {
                if let Some((flight, started)) = in_flight.take()
                    && !flight.finish(&shared, started).await
                {
                    state = None;
                }
                let result = match ready_state(&shared, state.take()).await {
                    Ok(current) => {
                        let (back, result) = carry_events(&shared, current, &carry, options).await;
                        state = back;
                        result
                    }
                    Err(error) => Err(error),
                };
                let _ = carry.reply.send(result);
                continue;
            }
            WriterMessage::Destroy(destroy) => {
                if let Some((flight, started)) = in_flight.take()
                    && !flight.finish(&shared, started).await
                {
                    state = None;
                }
                let result = shared.db.destroy_epochs(&destroy.destruction).await;
                if matches!(result, Ok(DestroyOutcome::Destroyed { .. })) {
                    // No key of a destroyed epoch may stay in memory.
                    epochs.by_key.clear();
                    shared.ciphers_lock().clear();
                }
                let _ = destroy.reply.send(result.map_err(StoreError::from));
                continue;
            }
        };
        let mut n_events = first.events.len();
        let mut requests = vec![first];
        while n_events < options.max_group_events {
            match receiver.try_recv() {
                Ok(WriterMessage::Append(request)) => {
                    n_events += request.events.len();
                    requests.push(request);
                }
                Ok(other) => {
                    stash = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let current = match state.take() {
            Some(current) => current,
            None => {
                debug_assert!(
                    in_flight.is_none(),
                    "a failure finishes the group in flight"
                );
                match recover(&shared, RecoveryMode::AfterFailure).await {
                    Ok((recovered, report)) => {
                        tracing::warn!(?report, "writer recovered after a failed write");
                        recovered
                    }
                    Err(error) => {
                        tracing::error!(%error, "writer cannot recover; refusing writes");
                        fail_all(requests, &error);
                        continue;
                    }
                }
            }
        };
        let pending_ids = in_flight.as_ref().map(|(flight, _)| &flight.ids);
        let appended = append_group(
            &shared,
            &mut epochs,
            current,
            &mut requests,
            pending_ids,
            options,
        )
        .await;
        // Commits run in order: the previous group's finishes first.
        let previous_ok = match in_flight.take() {
            Some((flight, started)) => flight.finish(&shared, started).await,
            None => true,
        };
        match appended {
            Ok(appended) if previous_ok => {
                if appended.rows.is_empty() {
                    state = Some(appended.state);
                    for (request, status) in requests.into_iter().zip(appended.statuses) {
                        let _ = request.reply.send(Ok(status));
                    }
                    continue;
                }
                let db = shared.db.clone();
                let (rows, segment_rows) = (appended.rows, appended.segment_rows);
                let ids = rows.iter().map(|row| row.event_id.clone()).collect();
                let counts = GroupCounts {
                    last_seq: appended.state.last_seq,
                    events: rows.len() as u64,
                    fsyncs: appended.fsyncs,
                    bytes: appended.bytes,
                };
                let commit = tokio::spawn(async move {
                    db.commit_batch(&rows, &segment_rows).await?;
                    Ok(())
                });
                state = Some(appended.state);
                in_flight = Some((
                    InFlight {
                        requests,
                        statuses: appended.statuses,
                        ids,
                        counts,
                        commit,
                    },
                    std::time::Instant::now(),
                ));
            }
            Ok(_) => {
                // Appended after a group whose metadata failed: not acknowledged;
                // recovery indexes both from the disk.
                fail_all(
                    requests,
                    &StoreError::WriteFailed(
                        "an earlier group's metadata commit failed".to_owned(),
                    ),
                );
                state = None;
            }
            Err(error) => {
                tracing::error!(%error, "group commit failed; nothing in it was acknowledged");
                fail_all(requests, &error);
                state = None;
            }
        }
    }
    if let Some((flight, started)) = in_flight.take() {
        flight.finish(&shared, started).await;
    }
}

/// The writer state, recovered first when a failure dropped it.
async fn ready_state(
    shared: &Arc<Shared>,
    state: Option<WriterState>,
) -> Result<WriterState, StoreError> {
    match state {
        Some(state) => Ok(state),
        None => {
            let (recovered, report) = recover(shared, RecoveryMode::AfterFailure).await?;
            tracing::warn!(?report, "writer recovered after a failed write");
            Ok(recovered)
        }
    }
}

/// Re-encrypts events under a new carry epoch of their day: appends them as
/// new records (new seqs) and points their rows at those records, with the
/// new head, in one transaction. The state is `None` after a failure.
async fn carry_events(
    shared: &Arc<Shared>,
    mut state: WriterState,
    carry: &super::CarryRequest,
    options: WriterOptions,
) -> (Option<WriterState>, Result<u64, StoreError>) {
    if carry.events.is_empty() {
        return (Some(state), Ok(0));
    }
    let made = async {
        let day = shared
            .db
            .next_generation_day(&carry.team, &carry.channel, &carry.day)
            .await?;
        let data_key = DataKey::generate();
        let wrapped = shared.master_key.wrap(
            &data_key,
            &EpochLabel {
                team: &carry.team,
                channel: &carry.channel,
                day: &day,
            },
        );
        let epoch = shared
            .db
            .create_generation_epoch(
                &NewEpoch {
                    team: carry.team.clone(),
                    channel: carry.channel.clone(),
                    day,
                    wrapped_key: wrapped,
                    kek_fingerprint: shared.master_key.fingerprint().to_owned(),
                },
                Some(carry.from_epoch),
            )
            .await?;
        Ok::<_, StoreError>((epoch.epoch_id, Arc::new(data_key.cipher())))
    }
    .await;
    let (epoch_id, cipher) = match made {
        Ok(made) => made,
        Err(error) => return (Some(state), Err(error)),
    };
    let events: Vec<Event> = carry
        .events
        .iter()
        .map(|(_, event)| event.clone())
        .collect();
    let ciphers = vec![(epoch_id, cipher); events.len()];
    let segments_dir = shared.segments_dir.clone();
    let written = tokio::task::spawn_blocking(move || {
        let outcome = write_records(&mut state, &segments_dir, &events, &ciphers, options)
            .map_err(io_error(&segments_dir));
        (state, outcome)
    })
    .await;
    let (state, outcome) = match written {
        Ok((state, Ok(outcome))) => (state, outcome),
        Ok((_, Err(error))) => return (None, Err(error)),
        Err(error) => {
            return (
                None,
                Err(StoreError::WriteFailed(format!(
                    "writer thread failed: {error}"
                ))),
            );
        }
    };
    let relocations: Vec<Relocation> = outcome
        .row_events
        .iter()
        .zip(&outcome.rows)
        .map(|(&index, row)| Relocation {
            seq: carry.events[index].0.seq,
            record_seq: row.seq,
            segment_no: row.segment_no,
            record_offset: row.record_offset,
            record_len: row.record_len,
            epoch_id: row.epoch_id,
        })
        .collect();
    if let Err(error) = shared
        .db
        .commit_relocations(&relocations, &outcome.segment_rows)
        .await
    {
        return (None, Err(error.into()));
    }
    shared.metrics.last_seq.set(state.last_seq as i64);
    (Some(state), Ok(relocations.len() as u64))
}

/// A group appended and synced, its metadata not yet committed.
struct Appended {
    state: WriterState,
    statuses: Vec<Vec<AppendStatus>>,
    rows: Vec<EventRow>,
    segment_rows: Vec<SegmentRow>,
    fsyncs: u64,
    bytes: u64,
}

/// Deduplicates a group (against the metadata, the group itself and the
/// group in flight), makes sure its key epochs exist, and appends it. On
/// error the state is dropped: the next group starts with [`recover`].
async fn append_group(
    shared: &Arc<Shared>,
    epochs: &mut EpochCache,
    mut state: WriterState,
    requests: &mut [WriteRequest],
    pending_ids: Option<&HashSet<String>>,
    options: WriterOptions,
) -> Result<Appended, StoreError> {
    let mut statuses: Vec<Vec<AppendStatus>> = requests
        .iter()
        .map(|request| vec![AppendStatus::Duplicate; request.events.len()])
        .collect();
    // First occurrence of each id in the group, not already in flight.
    let mut seen = HashSet::new();
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    for (request_idx, request) in requests.iter().enumerate() {
        for (event_idx, event) in request.events.iter().enumerate() {
            if pending_ids.is_some_and(|pending| pending.contains(&event.id)) {
                continue;
            }
            if seen.insert(event.id.as_str()) {
                candidates.push((request_idx, event_idx));
            }
        }
    }
    let ids: Vec<&str> = candidates
        .iter()
        .map(|&(r, e)| requests[r].events[e].id.as_str())
        .collect();
    let started = std::time::Instant::now();
    let existing = shared.db.existing_event_ids(&ids).await?;
    shared
        .metrics
        .dedupe_seconds
        .observe(started.elapsed().as_secs_f64());
    drop(ids);
    let new: Vec<(usize, usize)> = candidates
        .into_iter()
        .filter(|&(r, e)| !existing.contains(&requests[r].events[e].id))
        .collect();
    let n_duplicates = requests.iter().map(|r| r.events.len()).sum::<usize>() - new.len();
    shared.metrics.duplicates.inc_by(n_duplicates as u64);
    if new.is_empty() {
        return Ok(Appended {
            state,
            statuses,
            rows: Vec::new(),
            segment_rows: Vec::new(),
            fsyncs: 0,
            bytes: 0,
        });
    }

    // The events to store, moved out of their requests (answers need only statuses).
    let mut taken: Vec<Vec<Option<Event>>> = requests
        .iter_mut()
        .map(|request| {
            std::mem::take(&mut request.events)
                .into_iter()
                .map(Some)
                .collect()
        })
        .collect();
    let events: Vec<Event> = new
        .iter()
        .map(|&(r, e)| taken[r][e].take().expect("each new event is taken once"))
        .collect();
    drop(taken);

    let keys: Vec<EpochKey> = events.iter().map(epoch_key).collect();
    epochs
        .resolve(shared, keys.iter().cloned().collect())
        .await?;
    let ciphers: Vec<(i64, Arc<Aes256Gcm>)> = keys
        .iter()
        .map(|key| {
            let (epoch_id, cipher) = epochs
                .get(key)
                .expect("resolve() created every epoch of the group");
            (*epoch_id, Arc::clone(cipher))
        })
        .collect();
    drop(keys);

    let segments_dir = shared.segments_dir.clone();
    let started = std::time::Instant::now();
    let (state, outcome) = tokio::task::spawn_blocking(move || {
        let outcome = write_records(&mut state, &segments_dir, &events, &ciphers, options)
            .map_err(io_error(&segments_dir));
        (state, outcome)
    })
    .await
    .map_err(|error| StoreError::WriteFailed(format!("writer thread failed: {error}")))?;
    let outcome = outcome?;
    shared
        .metrics
        .append_seconds
        .observe(started.elapsed().as_secs_f64());
    for (&event_idx, row) in outcome.row_events.iter().zip(&outcome.rows) {
        let (r, e) = new[event_idx];
        statuses[r][e] = AppendStatus::Stored {
            seq: row.seq as u64,
        };
    }
    for &(event_idx, bytes) in &outcome.too_large {
        let (r, e) = new[event_idx];
        statuses[r][e] = AppendStatus::TooLarge { bytes };
    }
    Ok(Appended {
        state,
        statuses,
        rows: outcome.rows,
        segment_rows: outcome.segment_rows,
        fsyncs: outcome.fsyncs,
        bytes: outcome.bytes,
    })
}

fn epoch_key(event: &Event) -> EpochKey {
    (event.team.clone(), event.channel.clone(), event.utc_day())
}

/// Encrypts and appends records, sealing and starting segments as they
/// fill, then syncs. Runs on a blocking thread.
fn write_records(
    state: &mut WriterState,
    segments_dir: &Path,
    events: &[Event],
    ciphers: &[(i64, Arc<Aes256Gcm>)],
    options: WriterOptions,
) -> std::io::Result<WriteOutcome> {
    let mut outcome = WriteOutcome {
        rows: Vec::with_capacity(events.len()),
        row_events: Vec::with_capacity(events.len()),
        too_large: Vec::new(),
        segment_rows: Vec::new(),
        fsyncs: 0,
        bytes: 0,
    };
    let mut buffer: Vec<u8> = Vec::with_capacity(events.len() * 512);
    let mut buffer_start = state.active.end_offset;
    let mut rng = rand::thread_rng();
    for (event_idx, (event, (epoch_id, cipher))) in events.iter().zip(ciphers).enumerate() {
        let plaintext = zeroize::Zeroizing::new(event.to_json_bytes());
        // Validation bounds what comes in as JSON text; an `Event` built in
        // code (an importer) may still be too large to be read back.
        if plaintext.len() > crate::event::MAX_CANONICAL_EVENT_BYTES {
            outcome.too_large.push((event_idx, plaintext.len()));
            continue;
        }
        let payload_len = plaintext.len() + TAG_LEN;
        let record_len = (RECORD_HEADER_LEN + payload_len + HASH_LEN) as u64;
        if state.active.n_records > 0
            && state.active.end_offset + record_len + SEAL_RECORD_LEN > options.segment_max_bytes
        {
            flush(state, &mut buffer, buffer_start, &mut outcome)?;
            outcome.segment_rows.push(state.seal()?);
            outcome.fsyncs += 1;
            state.start_segment(segments_dir)?;
            outcome.fsyncs += 1;
            buffer_start = state.active.end_offset;
        }
        let seq = state.last_seq + 1;
        let offset = state.active.end_offset;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let ad = format::associated_data(state.active.segment_no, offset, seq, *epoch_id as u64);
        let ciphertext = cipher
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &ad,
                },
            )
            .map_err(|_| std::io::Error::other("encryption failed"))?;
        let header = RecordHeader {
            record_type: RecordType::Event,
            seq,
            epoch_id: *epoch_id as u64,
            nonce,
            payload_len: ciphertext.len() as u32,
        }
        .encode();
        let chain = format::chain_hash(&state.active.last_hash, &header, &ciphertext);
        buffer.extend_from_slice(&header);
        buffer.extend_from_slice(&ciphertext);
        buffer.extend_from_slice(&chain);
        state.active.end_offset += record_len;
        state.active.n_records += 1;
        state.active.last_hash = chain;
        state.last_seq = seq;
        outcome.rows.push(event_row(
            event,
            seq,
            state.active.segment_no,
            offset,
            record_len,
            *epoch_id as u64,
        ));
        outcome.row_events.push(event_idx);
        if options.durability == Durability::Every {
            flush(state, &mut buffer, buffer_start, &mut outcome)?;
            state.active.file.sync_data()?;
            outcome.fsyncs += 1;
            buffer_start = state.active.end_offset;
        }
    }
    if !buffer.is_empty() {
        flush(state, &mut buffer, buffer_start, &mut outcome)?;
        state.active.file.sync_data()?;
        outcome.fsyncs += 1;
    }
    outcome.segment_rows.push(state.segment_row(None));
    Ok(outcome)
}

fn flush(
    state: &mut WriterState,
    buffer: &mut Vec<u8>,
    buffer_start: u64,
    outcome: &mut WriteOutcome,
) -> std::io::Result<()> {
    if buffer.is_empty() {
        return Ok(());
    }
    state.active.file.write_all_at(buffer, buffer_start)?;
    state.active.file_hasher.update(&buffer[..]);
    outcome.bytes += buffer.len() as u64;
    buffer.clear();
    Ok(())
}
