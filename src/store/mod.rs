//! The append-only encrypted event store.
//!
//! Events are encrypted one per record with AES-256-GCM under the data key
//! of their key epoch (team × channel × UTC day), appended to segment files,
//! linked by a SHA-256 hash chain, and acknowledged only once durable (group
//! commit: one `fdatasync` for every batch the writer task takes in). The
//! metadata database maps event ids to records and holds the wrapped data
//! keys and the segment checkpoints; the head it records is the boundary of
//! what was acknowledged.
//!
//! Invariants:
//! - The store has no update and no delete. Records are only appended; a
//!   torn tail past the acknowledged head is the only thing ever truncated.
//! - Data keys are committed (durably) before any record uses them.
//! - One writer per data directory (a lock file names the holder).
//! - Nothing here logs or returns message text, data keys or the master key.

pub mod compact;
pub mod format;
pub mod keys;
pub mod lock;
pub mod segment;
pub mod verify;
mod writer;

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Payload};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::{mpsc, oneshot};

use crate::db::retention::{DestroyOutcome, Destruction};
use crate::db::{Db, DbError, EventRow};
use crate::event::Event;
use keys::{EpochLabel, KekSource, KeyError, MasterKey};
use lock::DataDirLock;

pub use verify::{VerifyProblem, VerifyReport};

/// How appends reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// One fsync per group of batches (group commit). The default.
    #[default]
    Batch,
    /// One fsync per event: slower, for the paranoid.
    Every,
}

/// What the store needs to open.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    pub database_url: String,
    /// `None`: the file `master.key` in the data directory, created with a new
    /// archive (and never for an existing one).
    pub kek: Option<KekSource>,
    pub durability: Durability,
    /// A segment is sealed when the next record would take it past this size.
    pub segment_max_bytes: u64,
    /// At most this many events go into one group commit.
    pub max_group_events: usize,
}

impl StoreOptions {
    /// Defaults for a data directory: SQLite inside it, a generated key.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> StoreOptions {
        let data_dir = data_dir.into();
        StoreOptions {
            database_url: default_database_url(&data_dir),
            data_dir,
            kek: None,
            durability: Durability::Batch,
            segment_max_bytes: 256 * 1024 * 1024,
            max_group_events: 20_000,
        }
    }

    fn kek_source(&self) -> KekSource {
        self.kek
            .clone()
            .unwrap_or_else(|| KekSource::File(self.data_dir.join("master.key")))
    }
}

/// The embedded default: `sqlite:<data_dir>/holdfast.db`.
pub fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite:{}", data_dir.join("holdfast.db").display())
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("data directory {data_dir} is in use by another writer: {holder}")]
    Locked { data_dir: String, holder: String },
    #[error("no archive at {data_dir}: run `holdfast serve` or `holdfast ingest` to create one")]
    NoArchive { data_dir: String },
    #[error(
        "the metadata database has no archive but segment files exist in {segments_dir}: is database_url pointing at the wrong database?"
    )]
    OrphanSegments { segments_dir: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Db(#[from] DbError),
    /// Acknowledged data is missing or altered: the store refuses to write
    /// on top of it. `holdfast verify` says more.
    #[error("segment {segment_no} is damaged at offset {offset}: {what}")]
    Damaged {
        segment_no: u64,
        offset: u64,
        what: String,
    },
    /// An event record that cannot be read back.
    #[error("event {event_id} (segment {segment_no}, offset {offset}) cannot be read: {what}")]
    Unreadable {
        event_id: String,
        segment_no: u64,
        offset: u64,
        what: String,
    },
    /// The event was deleted by a retention run (crypto-shredded): only its
    /// tombstone is left.
    #[error("{0}")]
    Shredded(Box<Tombstone>),
    #[error("the store is not accepting writes: {0}")]
    WriteFailed(String),
    #[error("the store is closed")]
    Closed,
}

/// What is left of an event deleted by retention.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event {event_id} was deleted by retention policy {policy:?} on {deleted_on} (run {run_id})"
)]
pub struct Tombstone {
    pub event_id: String,
    pub policy: String,
    pub run_id: i64,
    /// The UTC day of the run, `YYYY-MM-DD`.
    pub deleted_on: String,
    /// Where it was (for scope checks; not in the message).
    pub team: String,
    pub channel: String,
}

/// What became of one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendStatus {
    /// Newly stored, durable, with its sequence number.
    Stored { seq: u64 },
    /// The same id was stored before (or earlier in the same batch).
    Duplicate,
    /// Not stored: once normalised the event is larger than a record may
    /// hold (`bytes` of JSON; the limit is `MAX_CANONICAL_EVENT_BYTES`).
    TooLarge { bytes: usize },
}

/// An event read back from the store, with where it lives.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: u64,
    pub segment_no: u64,
    pub offset: u64,
    pub event: Event,
}

/// Counters exported on `/metrics`.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    pub events_stored: Counter,
    pub duplicates: Counter,
    pub fsyncs: Counter,
    pub bytes_written: Counter,
    pub group_commits: Counter,
    pub group_commit_events: Histogram,
    /// Sequence number of the newest acknowledged event.
    pub last_seq: Gauge,
    /// Seconds per group commit spent looking up duplicates in the metadata.
    pub dedupe_seconds: Histogram,
    /// Seconds per group commit spent encrypting, appending and syncing.
    pub append_seconds: Histogram,
    /// Seconds per group commit spent committing the metadata.
    pub metadata_seconds: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            events_stored: Counter::default(),
            duplicates: Counter::default(),
            fsyncs: Counter::default(),
            bytes_written: Counter::default(),
            group_commits: Counter::default(),
            group_commit_events: Histogram::new(exponential_buckets(1.0, 4.0, 9)),
            last_seq: Gauge::default(),
            dedupe_seconds: Histogram::new(exponential_buckets(0.0001, 4.0, 9)),
            append_seconds: Histogram::new(exponential_buckets(0.0001, 4.0, 9)),
            metadata_seconds: Histogram::new(exponential_buckets(0.0001, 4.0, 9)),
        }
    }
}

/// What opening the store had to repair.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// Records found durable past the recorded head and indexed again.
    pub recovered_records: u64,
    /// A torn tail that was cut off: (segment, offset, bytes).
    pub truncated: Option<(u64, u64, u64)>,
}

struct Shared {
    data_dir: PathBuf,
    segments_dir: PathBuf,
    db: Db,
    master_key: MasterKey,
    /// Unwrapped data keys by epoch id. Never printed; dropped with the store.
    ciphers: Mutex<HashMap<i64, Arc<Aes256Gcm>>>,
    metrics: StoreMetrics,
    /// The writer lock: held as long as anything (the writer task included)
    /// can still write.
    _lock: Option<DataDirLock>,
}

const MAX_CACHED_CIPHERS: usize = 50_000;

/// Largest single read of adjacent records in `events_from`.
const MAX_RUN_BYTES: i64 = 8 * 1024 * 1024;

impl Shared {
    async fn cipher(&self, epoch_id: i64) -> Result<Arc<Aes256Gcm>, StoreError> {
        if let Some(cipher) = self.ciphers_lock().get(&epoch_id) {
            return Ok(Arc::clone(cipher));
        }
        let epoch = self
            .db
            .get_epoch(epoch_id)
            .await?
            .ok_or(KeyError::UnwrapFailed { epoch_id })?;
        let wrapped = epoch
            .wrapped_key
            .as_deref()
            .ok_or(KeyError::UnwrapFailed { epoch_id })?;
        let label = EpochLabel {
            team: &epoch.team,
            channel: &epoch.channel,
            day: &epoch.day,
        };
        let cipher = Arc::new(self.master_key.unwrap(wrapped, &label, epoch_id)?.cipher());
        let mut ciphers = self.ciphers_lock();
        if ciphers.len() >= MAX_CACHED_CIPHERS {
            ciphers.clear();
        }
        ciphers.insert(epoch_id, Arc::clone(&cipher));
        Ok(cipher)
    }

    fn ciphers_lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Aes256Gcm>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.ciphers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decrypts an event record's payload.
    fn decrypt(
        cipher: &Aes256Gcm,
        segment_no: u64,
        offset: u64,
        header: &format::RecordHeader,
        payload: &[u8],
    ) -> Result<Event, String> {
        let ad = format::associated_data(segment_no, offset, header.seq, header.epoch_id);
        let plaintext = zeroize::Zeroizing::new(
            cipher
                .decrypt(
                    aes_gcm::Nonce::from_slice(&header.nonce),
                    Payload {
                        msg: payload,
                        aad: &ad,
                    },
                )
                .map_err(|_| {
                    "decryption failed: the record was altered, moved, or its key is wrong"
                        .to_owned()
                })?,
        );
        Event::from_stored_json_bytes(&plaintext)
            .map_err(|_| "the decrypted record is not a valid event".to_owned())
    }

    async fn read_event(&self, row: &EventRow) -> Result<StoredEvent, StoreError> {
        let segment_no = row.segment_no as u64;
        let offset = row.record_offset as u64;
        let unreadable = |what: String| unreadable(row, what);
        let path = segment::segment_path(&self.segments_dir, segment_no);
        let len = row.record_len as u64;
        let record = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).map_err(|error| error.to_string())?;
            segment::read_record_at(&file, offset, len)
        })
        .await
        .map_err(|error| unreadable(error.to_string()))?
        .map_err(unreadable)?;
        self.open_record(row, &record).await
    }

    /// Checks a record read from disk against its metadata row and decrypts it.
    async fn open_record(
        &self,
        row: &EventRow,
        record: &segment::ScannedRecord,
    ) -> Result<StoredEvent, StoreError> {
        let segment_no = row.segment_no as u64;
        let offset = row.record_offset as u64;
        let unreadable = |what: String| unreadable(row, what);
        if record.offset != offset
            || record.header.seq != row.record_seq() as u64
            || record.header.epoch_id != row.epoch_id as u64
        {
            return Err(unreadable(
                "the record's place, sequence number or epoch differs from the metadata".to_owned(),
            ));
        }
        let cipher = self.cipher(row.epoch_id).await?;
        let event = Shared::decrypt(&cipher, segment_no, offset, &record.header, &record.payload)
            .map_err(unreadable)?;
        if event.id != row.event_id {
            return Err(unreadable(
                "the record holds a different event than the metadata says".to_owned(),
            ));
        }
        Ok(StoredEvent {
            seq: row.seq as u64,
            segment_no,
            offset,
            event,
        })
    }
}

/// The error for an event whose record cannot be read back.
fn unreadable(row: &EventRow, what: String) -> StoreError {
    StoreError::Unreadable {
        event_id: row.event_id.clone(),
        segment_no: row.segment_no as u64,
        offset: row.record_offset as u64,
        what,
    }
}

/// What the writer task is asked to do.
enum WriterMessage {
    Append(WriteRequest),
    Carry(CarryRequest),
    Destroy(DestroyRequest),
}

/// Re-encrypt events of one expiring epoch under a new carry epoch.
struct CarryRequest {
    team: String,
    channel: String,
    /// The events' UTC day.
    day: String,
    from_epoch: i64,
    events: Vec<(EventRow, Event)>,
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

struct DestroyRequest {
    destruction: Destruction,
    reply: oneshot::Sender<Result<DestroyOutcome, StoreError>>,
}

struct WriteRequest {
    events: Vec<Event>,
    reply: oneshot::Sender<Result<Vec<AppendStatus>, StoreError>>,
}

/// The archive's event store. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    writer: Option<mpsc::Sender<WriterMessage>>,
    writer_task: Option<Arc<tokio::task::JoinHandle<()>>>,
}

impl Store {
    /// Opens the data directory for writing (creating a new archive when it
    /// is empty): takes the writer lock, checks the master key, recovers from
    /// a crash (truncating a torn tail past the acknowledged head), and starts
    /// the writer task.
    pub async fn open(options: &StoreOptions) -> Result<(Store, RecoveryReport), StoreError> {
        Store::open_for_writing(options, true).await
    }

    /// As [`Store::open`], but for commands that must not create an archive
    /// (`keys rotate`): a missing archive is an error and nothing is created.
    pub async fn open_existing(
        options: &StoreOptions,
    ) -> Result<(Store, RecoveryReport), StoreError> {
        check_archive_files_exist(options)?;
        Store::open_for_writing(options, false).await
    }

    async fn open_for_writing(
        options: &StoreOptions,
        may_create: bool,
    ) -> Result<(Store, RecoveryReport), StoreError> {
        create_private_dir(&options.data_dir)?;
        let segments_dir = options.data_dir.join("segments");
        create_private_dir(&segments_dir)?;
        let lock = DataDirLock::acquire(&options.data_dir)?;
        let db = Db::connect(&options.database_url).await?;
        let opened = match db.get_meta("archive_id").await {
            Ok(Some(_)) => load_and_check_key(&db, &options.kek_source()).await,
            Ok(None) if may_create => initialise_archive(&db, options, &segments_dir).await,
            Ok(None) => Err(StoreError::NoArchive {
                data_dir: options.data_dir.display().to_string(),
            }),
            Err(error) => Err(error.into()),
        };
        let master_key = match opened {
            Ok(key) => key,
            Err(error) => {
                db.close().await;
                return Err(error);
            }
        };
        let shared = Arc::new(Shared {
            data_dir: options.data_dir.clone(),
            segments_dir,
            db,
            master_key,
            ciphers: Mutex::new(HashMap::new()),
            metrics: StoreMetrics::default(),
            _lock: Some(lock),
        });
        let (state, report) = writer::recover(&shared, writer::RecoveryMode::Startup).await?;
        shared.metrics.last_seq.set(state.last_seq() as i64);
        if report.recovered_records > 0 || report.truncated.is_some() {
            tracing::warn!(
                recovered_records = report.recovered_records,
                truncated = ?report.truncated,
                "recovered the store after an unclean stop"
            );
        }
        let (sender, receiver) = mpsc::channel(1024);
        let task = tokio::spawn(writer::run(
            Arc::clone(&shared),
            state,
            receiver,
            writer::WriterOptions::from(options),
        ));
        Ok((
            Store {
                shared,
                writer: Some(sender),
                writer_task: Some(Arc::new(task)),
            },
            report,
        ))
    }

    /// Opens an existing archive for reading only: no lock, no recovery, no
    /// writes. For `get`, `stats` and `verify` beside a running server.
    pub async fn open_read_only(options: &StoreOptions) -> Result<Store, StoreError> {
        check_archive_files_exist(options)?;
        let db = Db::connect(&options.database_url).await?;
        let checked = match db.get_meta("archive_id").await {
            Ok(Some(_)) => load_and_check_key(&db, &options.kek_source()).await,
            Ok(None) => Err(no_archive(options)),
            Err(error) => Err(error.into()),
        };
        let master_key = match checked {
            Ok(key) => key,
            Err(error) => {
                db.close().await;
                return Err(error);
            }
        };
        Ok(Store {
            shared: Arc::new(Shared {
                data_dir: options.data_dir.clone(),
                segments_dir: options.data_dir.join("segments"),
                db,
                master_key,
                ciphers: Mutex::new(HashMap::new()),
                metrics: StoreMetrics::default(),
                _lock: None,
            }),
            writer: None,
            writer_task: None,
        })
    }

    /// Appends events; returns once every stored one is durable. Each status
    /// matches the event at the same position.
    pub async fn append(&self, events: Vec<Event>) -> Result<Vec<AppendStatus>, StoreError> {
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| StoreError::WriteFailed("the store was opened read-only".to_owned()))?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, response) = oneshot::channel();
        writer
            .send(WriterMessage::Append(WriteRequest { events, reply }))
            .await
            .map_err(|_| StoreError::Closed)?;
        response.await.map_err(|_| StoreError::Closed)?
    }

    /// Retention: re-encrypts `events` (live events of epoch `from_epoch`,
    /// read back with [`Store::read_for_carry`]) under a new carry epoch of
    /// the same team, channel and day. They keep their seq and id; their
    /// rows point at the new records once those are durable. Returns how
    /// many were carried.
    pub async fn carry(
        &self,
        from_epoch: i64,
        events: Vec<(EventRow, Event)>,
    ) -> Result<u64, StoreError> {
        let Some((first, _)) = events.first() else {
            return Ok(0);
        };
        let (team, channel) = (first.team.clone(), first.channel.clone());
        let day = chrono::DateTime::from_timestamp_micros(first.at_us)
            .map(|at| at.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        if events.iter().any(|(row, _)| {
            row.team != team || row.channel != channel || row.epoch_id != from_epoch
        }) {
            return Err(StoreError::WriteFailed(
                "a carry moves events of one epoch only".to_owned(),
            ));
        }
        let (reply, response) = oneshot::channel();
        self.send(WriterMessage::Carry(CarryRequest {
            team,
            channel,
            day,
            from_epoch,
            events,
            reply,
        }))
        .await?;
        response.await.map_err(|_| StoreError::Closed)?
    }

    /// Retention: destroys the data keys of epochs and makes their events
    /// tombstones, through the writer (which then forgets every cached key).
    pub async fn destroy(&self, destruction: Destruction) -> Result<DestroyOutcome, StoreError> {
        let (reply, response) = oneshot::channel();
        self.send(WriterMessage::Destroy(DestroyRequest {
            destruction,
            reply,
        }))
        .await?;
        response.await.map_err(|_| StoreError::Closed)?
    }

    /// Retention: reclaims the disk of shredded records in sealed segments
    /// (those in `only`, or all), keeping the chain provable. Needs the
    /// writer lock.
    pub async fn compact(
        &self,
        run_id: i64,
        only: Option<&std::collections::HashSet<i64>>,
    ) -> Result<compact::CompactionReport, StoreError> {
        if self.writer.is_none() {
            return Err(StoreError::WriteFailed(
                "compaction needs the writer lock".to_owned(),
            ));
        }
        compact::compact(&self.shared, run_id, only).await
    }

    /// The events of `rows` with their rows, for [`Store::carry`].
    pub async fn read_for_carry(
        &self,
        rows: Vec<EventRow>,
    ) -> Result<Vec<(EventRow, Event)>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let stored = self.shared.read_event(&row).await?;
            out.push((row, stored.event));
        }
        Ok(out)
    }

    async fn send(&self, message: WriterMessage) -> Result<(), StoreError> {
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| StoreError::WriteFailed("the store was opened read-only".to_owned()))?;
        writer.send(message).await.map_err(|_| StoreError::Closed)
    }

    /// Reads and checks the records of `rows`, in their order. Rows of
    /// events deleted by retention are left out.
    async fn read_rows(&self, rows: &[EventRow]) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events = Vec::with_capacity(rows.len());
        for row in rows.iter().filter(|row| row.shredded_run.is_none()) {
            events.push(self.shared.read_event(row).await?);
        }
        Ok(events)
    }

    /// Reads one event by id. An event deleted by retention is
    /// [`StoreError::Shredded`], naming the policy and the day.
    pub async fn get_event(&self, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        match self.shared.db.event_by_id(event_id).await? {
            Some(row) if row.shredded_run.is_some() => Err(self.shredded(&row).await),
            Some(row) => Ok(Some(self.shared.read_event(&row).await?)),
            None => Ok(None),
        }
    }

    /// The error for a tombstone row.
    async fn shredded(&self, row: &EventRow) -> StoreError {
        let run_id = row.shredded_run.unwrap_or_default();
        let deleted_on = match self.shared.db.retention_run_started(run_id).await {
            Ok(Some(ms)) => chrono::DateTime::from_timestamp_millis(ms)
                .map(|at| at.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            Ok(None) | Err(_) => "an unknown day".to_owned(),
        };
        StoreError::Shredded(Box::new(Tombstone {
            event_id: row.event_id.clone(),
            policy: row.shredded_policy.clone().unwrap_or_default(),
            run_id,
            deleted_on,
            team: row.team.clone(),
            channel: row.channel.clone(),
        }))
    }

    /// Every event about one post (creation, edits, deletes, reactions,
    /// files), in store order.
    pub async fn post_events(&self, post_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self.shared.db.events_of_post(post_id).await?;
        self.read_rows(&rows).await
    }

    /// Every event about any of `posts`, in store order (one query for a
    /// page of search hits).
    pub async fn events_of_posts(&self, posts: &[&str]) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self.shared.db.events_of_posts(posts).await?;
        self.read_rows(&rows).await
    }

    /// The events with these sequence numbers (those that exist), in `seq`
    /// order: the hits of a search page.
    pub async fn events_by_seqs(&self, seqs: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        let seqs: Vec<i64> = seqs.iter().map(|&seq| seq as i64).collect();
        let rows = self.shared.db.events_by_seqs(&seqs).await?;
        self.read_rows(&rows).await
    }

    /// Events with `seq >= from_seq`, in order, at most `limit`: for readers
    /// that follow the archive in order (the search index, exports). Each run
    /// of adjacent records is read with one read, and every record's chain
    /// link, sequence number, metadata and decryption are checked. Events
    /// deleted by retention are left out.
    pub async fn events_from(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(self.events_page(from_seq, limit).await?.0)
    }

    /// As [`Store::events_from`], and the seq of the last row looked at
    /// (`None` when there was none at or past `from_seq`): a page may hold
    /// fewer events than rows when some were deleted by retention, so a
    /// reader continues after that seq, not after its last event.
    pub async fn events_page(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<u64>), StoreError> {
        let mut rows = self
            .shared
            .db
            .events_from_seq(from_seq as i64, limit as i64)
            .await?;
        let scanned = rows.last().map(|row| row.seq as u64);
        rows.retain(|row| row.shredded_run.is_none());
        let events = self.read_adjacent(&rows).await?;
        Ok((events, scanned))
    }

    /// Reads these live rows (as returned by the `db` walks of exports),
    /// in the order given. Records are read in store order, each run of
    /// adjacent records with one read; every record is checked as in
    /// [`Store::events_from`]. A tombstone row is [`StoreError::Shredded`].
    pub async fn read_event_rows(&self, rows: &[EventRow]) -> Result<Vec<StoredEvent>, StoreError> {
        if let Some(row) = rows.iter().find(|row| row.shredded_run.is_some()) {
            return Err(self.shredded(row).await);
        }
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_unstable_by_key(|&i| (rows[i].segment_no, rows[i].record_offset));
        let sorted: Vec<EventRow> = order.iter().map(|&i| rows[i].clone()).collect();
        let events = self.read_adjacent(&sorted).await?;
        let mut placed: Vec<Option<StoredEvent>> = Vec::with_capacity(rows.len());
        placed.resize_with(rows.len(), || None);
        for (event, &i) in events.into_iter().zip(&order) {
            placed[i] = Some(event);
        }
        Ok(placed.into_iter().flatten().collect())
    }

    /// Reads `rows` (live, in store order), each run of adjacent records of
    /// one segment with one read.
    async fn read_adjacent(&self, rows: &[EventRow]) -> Result<Vec<StoredEvent>, StoreError> {
        // Runs: adjacent records of one segment, at most a few MiB each.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let mut end = start + 1;
            let mut run_bytes = rows[start].record_len;
            while end < rows.len()
                && rows[end].segment_no == rows[start].segment_no
                && rows[end].record_offset == rows[end - 1].record_offset + rows[end - 1].record_len
                && run_bytes + rows[end].record_len <= MAX_RUN_BYTES
            {
                run_bytes += rows[end].record_len;
                end += 1;
            }
            runs.push((start, end));
            start = end;
        }
        // Every run with one blocking call, each segment file opened once:
        // a page of scattered records (an export walking one channel) costs
        // one hand-off to the blocking pool, not one per record.
        let plan: Vec<(u64, u64, Vec<u64>)> = runs
            .iter()
            .map(|&(start, end)| {
                (
                    rows[start].segment_no as u64,
                    rows[start].record_offset as u64,
                    rows[start..end]
                        .iter()
                        .map(|row| row.record_len as u64)
                        .collect(),
                )
            })
            .collect();
        let segments_dir = self.shared.segments_dir.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut files: HashMap<u64, std::fs::File> = HashMap::new();
            let mut out = Vec::with_capacity(plan.len());
            for (i, (segment_no, offset, lens)) in plan.iter().enumerate() {
                let file = match files.entry(*segment_no) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        let path = segment::segment_path(&segments_dir, *segment_no);
                        let file =
                            std::fs::File::open(&path).map_err(|error| (i, error.to_string()))?;
                        entry.insert(file)
                    }
                };
                out.push(
                    segment::read_records_at(file, *offset, lens).map_err(|error| (i, error))?,
                );
            }
            Ok::<_, (usize, String)>(out)
        })
        .await
        .map_err(|error| unreadable(&rows[0], error.to_string()))?
        .map_err(|(i, what)| unreadable(&rows[runs[i].0], what))?;
        let mut events = Vec::with_capacity(rows.len());
        for (&(start, end), records) in runs.iter().zip(read) {
            for (row, record) in rows[start..end].iter().zip(records) {
                events.push(self.shared.open_record(row, &record).await?);
            }
        }
        Ok(events)
    }

    /// The sequence number of the newest acknowledged event (0 when empty).
    pub async fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .shared
            .db
            .segments()
            .await?
            .last()
            .map_or(0, |segment| segment.last_seq as u64))
    }

    /// Checks every record, the chain, the checkpoints and the metadata.
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        verify::verify(&self.shared, self.writer.is_some(), None).await
    }

    /// As [`Store::verify`], and also that the chain still passes through
    /// an earlier head (`seq`, chain hash) kept outside the server.
    pub async fn verify_expecting_head(
        &self,
        seq: u64,
        hash: [u8; format::HASH_LEN],
    ) -> Result<VerifyReport, StoreError> {
        verify::verify(&self.shared, self.writer.is_some(), Some((seq, hash))).await
    }

    /// Rewraps every data key under `new_key` in one transaction, without
    /// touching a segment. Afterwards only `new_key` opens the archive.
    ///
    /// Consumes the store: the writer is stopped first (it would otherwise
    /// wrap new data keys under the old key), and the store must be reopened
    /// with the new key. Refused while other handles of the store are open.
    pub async fn rotate_master_key(mut self, new_key: &MasterKey) -> Result<u64, StoreError> {
        if self.writer.is_none() {
            return Err(StoreError::WriteFailed(
                "key rotation needs the writer lock".to_owned(),
            ));
        }
        if !self.stop_writer().await || Arc::strong_count(&self.shared) != 1 {
            return Err(StoreError::WriteFailed(
                "other handles of the store are open; close them before rotating the key"
                    .to_owned(),
            ));
        }
        let epochs = self.shared.db.all_epochs().await?;
        let mut rewrapped = Vec::with_capacity(epochs.len());
        for epoch in &epochs {
            let Some(wrapped) = &epoch.wrapped_key else {
                continue; // destroyed by retention: nothing to rewrap
            };
            let label = EpochLabel {
                team: &epoch.team,
                channel: &epoch.channel,
                day: &epoch.day,
            };
            let data_key = self
                .shared
                .master_key
                .unwrap(wrapped, &label, epoch.epoch_id)?;
            rewrapped.push((epoch.epoch_id, new_key.wrap(&data_key, &label)));
        }
        let check = new_key.check_value();
        self.shared
            .db
            .rewrap_epochs(
                &rewrapped,
                new_key.fingerprint(),
                &[
                    ("kek_check", check.as_str()),
                    ("kek_fingerprint", new_key.fingerprint()),
                ],
            )
            .await?;
        tracing::info!(
            n_epochs = rewrapped.len(),
            new_fingerprint = new_key.fingerprint(),
            "master key rotated"
        );
        self.shared.db.close().await;
        Ok(rewrapped.len() as u64)
    }

    pub fn db(&self) -> &Db {
        &self.shared.db
    }

    pub fn metrics(&self) -> &StoreMetrics {
        &self.shared.metrics
    }

    pub fn data_dir(&self) -> &Path {
        &self.shared.data_dir
    }

    pub fn master_key_fingerprint(&self) -> &str {
        self.shared.master_key.fingerprint()
    }

    /// Stops the writer after the requests already sent, then closes the
    /// database. Only the last handle waits: the writer ends (and releases
    /// the lock) when every handle's sender is gone.
    pub async fn close(mut self) {
        self.stop_writer().await;
        if Arc::strong_count(&self.shared) == 1 {
            self.shared.db.close().await;
        }
    }

    /// Drops this handle's sender; if it was the last, waits for the writer
    /// to answer what it holds and end. Returns whether the writer ended.
    async fn stop_writer(&mut self) -> bool {
        self.writer = None;
        match self.writer_task.take().map(Arc::try_unwrap) {
            Some(Ok(handle)) => {
                let _ = handle.await;
                true
            }
            Some(Err(_)) => false,
            None => true,
        }
    }
}

/// Refuses early, creating nothing, when the data directory (or the SQLite
/// file) of an archive is missing.
fn check_archive_files_exist(options: &StoreOptions) -> Result<(), StoreError> {
    if !options.data_dir.is_dir() {
        return Err(no_archive(options));
    }
    if let Some(path) = options
        .database_url
        .strip_prefix("sqlite://")
        .or_else(|| options.database_url.strip_prefix("sqlite:"))
        && !Path::new(path.split('?').next().unwrap_or(path)).exists()
    {
        return Err(no_archive(options));
    }
    Ok(())
}

/// "No archive", or, when segments exist, the more likely wrong database.
fn no_archive(options: &StoreOptions) -> StoreError {
    let segments_dir = options.data_dir.join("segments");
    let has_segments = std::fs::read_dir(&segments_dir)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if has_segments {
        StoreError::OrphanSegments {
            segments_dir: segments_dir.display().to_string(),
        }
    } else {
        StoreError::NoArchive {
            data_dir: options.data_dir.display().to_string(),
        }
    }
}

/// Loads the configured master key and checks that it opens this archive.
async fn load_and_check_key(db: &Db, source: &KekSource) -> Result<MasterKey, StoreError> {
    let key = MasterKey::load(source)?;
    let check = db.get_meta("kek_check").await?.unwrap_or_default();
    let fingerprint = db.get_meta("kek_fingerprint").await?.unwrap_or_default();
    let Err(wrong_key) = key.verify_check(&check, &fingerprint) else {
        return Ok(key);
    };
    // A rotation that committed but crashed before replacing the key file.
    if let KekSource::File(path) = source {
        let staged = keys::staged_key_path(path);
        if let Ok(staged_key) = MasterKey::load(&KekSource::File(staged.clone()))
            && staged_key.verify_check(&check, &fingerprint).is_ok()
        {
            std::fs::rename(&staged, path)
                .and_then(|()| keys::sync_parent_dir(path))
                .map_err(|source| StoreError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
            tracing::warn!(path = %path.display(), "finished an interrupted key rotation");
            return Ok(staged_key);
        }
    }
    Err(wrong_key.into())
}

/// Sets up a new archive: refuses when segments already exist (the database
/// would be the wrong one), loads or generates the master key.
async fn initialise_archive(
    db: &Db,
    options: &StoreOptions,
    segments_dir: &Path,
) -> Result<MasterKey, StoreError> {
    let has_segments = std::fs::read_dir(segments_dir)
        .map_err(|source| StoreError::Io {
            path: segments_dir.display().to_string(),
            source,
        })?
        .next()
        .is_some();
    if has_segments {
        return Err(StoreError::OrphanSegments {
            segments_dir: segments_dir.display().to_string(),
        });
    }
    let key = match &options.kek {
        Some(source) => MasterKey::load(source)?,
        None => {
            let path = options.data_dir.join("master.key");
            if path.exists() {
                MasterKey::load(&KekSource::File(path))?
            } else {
                let key = MasterKey::generate();
                key.write_new_file(&path)?;
                tracing::warn!(
                    path = %path.display(),
                    "generated a new master key inside the data directory; move it to separate storage and set keys.kek_file"
                );
                key
            }
        }
    };
    let archive_id = hex::encode(rand::random::<[u8; 16]>());
    db.set_meta("kek_check", &key.check_value()).await?;
    db.set_meta("kek_fingerprint", key.fingerprint()).await?;
    db.set_meta("format_version", &format::FORMAT_VERSION.to_string())
        .await?;
    db.set_meta(
        "created_at",
        &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
    .await?;
    // Written last: an archive exists once its key check does.
    db.set_meta("archive_id", &archive_id).await?;
    tracing::info!(
        archive_id,
        fingerprint = key.fingerprint(),
        "created a new archive"
    );
    Ok(key)
}

fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    let io_error = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io_error)
}
