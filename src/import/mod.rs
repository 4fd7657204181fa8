//! Importers: the history a chat system already has, from its export files,
//! into the archive.
//!
//! [`slack`] reads a Slack workspace export (a zip or its unpacked folder),
//! [`mattermost`] a Mattermost bulk export (JSONL, plain or zipped). Both map
//! the source onto the event wire format (`crate::event`) with ids derived
//! only from the source (`slack:{workspace}:{channel}:{ts}`,
//! `mm:{team}:{channel}:{create_at}:{user}:{hash}`, with suffixes for edits,
//! reactions and the rest; see `docs/import.md`), so importing an export
//! twice, or again after an interruption, stores nothing twice.
//!
//! An import is a pipeline: a reader on a blocking thread walks the export one
//! file (zip entry) at a time, one Slack day file or one Mattermost line at a
//! time, and hands batches of a few thousand validated events through a
//! bounded channel to [`Store::append`]. Memory is bounded by the batch size
//! and the largest single file or line, never by the export.
//!
//! What this module must never do: drop source data silently. Whatever it
//! cannot map is either kept in an event's `props` (an unknown Slack subtype
//! becomes a `post` with `props.source_subtype` and `props.raw`) or listed in
//! the [`ImportReport`] with its file and line; a problem that loses data is
//! an error (the import goes on where that is safe and reports it at the
//! end). It never invents a time: entries without one (users, teams,
//! Mattermost channels) are counted, not stored as events. It never writes
//! anything but through `Store::append`, and never touches the export.

pub mod mattermost;
pub mod report;
pub mod slack;
mod source;

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::event::{Event, EventKind, MAX_TEXT_BYTES};
use crate::store::{AppendStatus, Store, StoreError};
pub use report::{
    ChannelReport, ImportReport, KindCounts, Location, Problem, Severity, UnknownUser,
};
use report::{ReportBuilder, Tally};

/// Events per `Store::append` call unless told otherwise.
pub const DEFAULT_BATCH_EVENTS: usize = 5000;

/// The `user` of an event whose source names no actor.
pub const UNKNOWN_USER: &str = "(unknown)";

/// Which exporter wrote the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A Slack workspace export (zip or folder).
    Slack,
    /// A Mattermost bulk export (JSONL, plain or zipped).
    Mattermost,
}

impl Format {
    /// The format in words: "a Slack export".
    pub fn described(self) -> &'static str {
        match self {
            Format::Slack => "a Slack export",
            Format::Mattermost => "a Mattermost bulk export",
        }
    }

    /// The `holdfast import` subcommand for it.
    pub fn command(self) -> &'static str {
        match self {
            Format::Slack => "slack",
            Format::Mattermost => "mattermost",
        }
    }
}

/// Why an import could not run (or stopped). Problems with single files or
/// lines are not errors: they are listed in the [`ImportReport`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The export, or a folder of it, cannot be opened or listed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// A file that should be a zip archive is not a readable one.
    #[error("{path}: corrupt zip archive: {detail}")]
    CorruptZip { path: String, detail: String },
    /// The export is of the other format.
    #[error(
        "{path}: this looks like {}, not {}; use `holdfast import {}`",
        .found.described(), .expected.described(), .found.command()
    )]
    WrongFormat {
        path: String,
        expected: Format,
        found: Format,
    },
    /// Neither format: the file or folder is not an export.
    #[error("{path}: not {}: {detail}", .expected.described())]
    NotAnExport {
        path: String,
        expected: Format,
        detail: String,
    },
    /// A file that every other file depends on (Slack's `users.json`,
    /// `channels.json`, ...) is unreadable: importing without it would
    /// store events under ids or names that a later, fixed import could not
    /// recognise, so nothing is imported.
    #[error("{path}: {file}: {detail}; nothing was imported")]
    BadMetadata {
        path: String,
        file: String,
        detail: String,
    },
    /// The Slack workspace id cannot be read from the export.
    #[error(
        "{path}: cannot tell the Slack workspace id (users.json names no team_id); pass --team"
    )]
    NoWorkspace { path: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The side storing the events went away (after a store error).
    #[error("the import was stopped before the end of the export")]
    Stopped,
    /// The reader thread panicked or was cancelled.
    #[error("the export reader failed: {0}")]
    ReaderFailed(String),
}

impl ImportError {
    pub(crate) fn io(path: &Path, source: io::Error) -> ImportError {
        ImportError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Events per `Store::append` (and so per group commit at most).
    pub batch_events: usize,
    /// Slack: the workspace id to file events under, instead of the one
    /// `users.json` names.
    pub slack_team: Option<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch_events: DEFAULT_BATCH_EVENTS,
            slack_team: None,
        }
    }
}

/// Where an import is, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Events made from the source so far.
    pub events_mapped: u64,
    /// Newly stored so far.
    pub events_stored: u64,
    /// Already in the archive so far.
    pub duplicates: u64,
    /// Source bytes read (uncompressed).
    pub bytes_read: u64,
    /// Source bytes to read in all (uncompressed), once known.
    pub bytes_total: u64,
}

/// What a reader sends to whoever stores its events.
enum ReaderMessage {
    /// The export's size, once its files are listed.
    Total { bytes: u64 },
    /// Validated events, and how far into the export the reader is.
    Batch { events: Vec<Event>, bytes_read: u64 },
}

/// Imports an export into `store`; returns once every stored event is
/// durable. `progress` is called after each batch.
///
/// The report lists what could not be imported; an [`ImportError`] means
/// the import could not start or had to stop (events stored before are
/// durable, and running the same import again stores only what is missing).
pub async fn import(
    store: &Store,
    format: Format,
    path: &Path,
    options: &ImportOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<ImportReport, ImportError> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<ReaderMessage>(2);
    let reader = {
        let path = path.to_path_buf();
        let options = options.clone();
        tokio::task::spawn_blocking(move || {
            let mut deliver = |message| sender.blocking_send(message).is_ok();
            read_export(format, &path, &options, &mut deliver)
        })
    };
    let mut tally = Tally::default();
    let mut state = Progress::default();
    let mut store_error = None;
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    while let Some(message) = receiver.recv().await {
        match message {
            ReaderMessage::Total { bytes } => state.bytes_total = bytes,
            ReaderMessage::Batch { events, bytes_read } => {
                let tags = events
                    .iter()
                    .map(|event| (tally.tag(&event.team, &event.channel), event.kind))
                    .collect();
                state.events_mapped += events.len() as u64;
                let writer = store.clone();
                in_flight.push_back(InFlight {
                    tags,
                    bytes_read,
                    append: tokio::spawn(async move { writer.append(events).await }),
                });
                if in_flight.len() >= APPENDS_IN_FLIGHT
                    && let Some(oldest) = in_flight.pop_front()
                    && let Err(error) = oldest.complete(&mut tally, &mut state, progress).await
                {
                    store_error = Some(error);
                    break;
                }
            }
        }
    }
    // Appends still in flight finish (or fail) before the answer.
    while let Some(flight) = in_flight.pop_front() {
        if let Err(error) = flight.complete(&mut tally, &mut state, progress).await {
            store_error.get_or_insert(error);
        }
    }
    // A reader blocked on a full channel now gets an error and stops.
    drop(receiver);
    let outcome = reader
        .await
        .map_err(|error| ImportError::ReaderFailed(error.to_string()))?;
    if let Some(error) = store_error {
        return Err(error.into());
    }
    let mut builder = outcome?;
    builder.merge_tally(tally);
    Ok(builder.finish(false))
}

/// Appends kept in flight at once: while one batch's metadata commits, the
/// store's writer already encrypts and appends the next (group commits stay
/// in order, and so do the answers).
const APPENDS_IN_FLIGHT: usize = 2;

/// One batch handed to the store and not answered yet.
struct InFlight {
    /// (channel tag, kind) of each event, in order.
    tags: Vec<(usize, EventKind)>,
    bytes_read: u64,
    append: tokio::task::JoinHandle<Result<Vec<AppendStatus>, StoreError>>,
}

impl InFlight {
    /// Waits for the store's answer and counts it.
    async fn complete(
        self,
        tally: &mut Tally,
        state: &mut Progress,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<(), StoreError> {
        let statuses = self.append.await.map_err(|error| {
            StoreError::WriteFailed(format!("the append task failed: {error}"))
        })??;
        for (&(tag, kind), status) in self.tags.iter().zip(&statuses) {
            let stored = matches!(status, AppendStatus::Stored { .. });
            tally.record(tag, kind, stored);
            if stored {
                state.events_stored += 1;
            } else {
                state.duplicates += 1;
            }
        }
        state.bytes_read = state.bytes_read.max(self.bytes_read);
        progress(state);
        Ok(())
    }
}

/// Checks, quickly, that `path` is an export of `format` (naming the other
/// format when it is one): call it before opening the archive, so that a
/// wrong path fails before anything is created.
pub fn probe(format: Format, path: &Path) -> Result<(), ImportError> {
    match format {
        Format::Slack => slack::open(path).map(drop),
        Format::Mattermost => mattermost::open(path).map(drop),
    }
}

/// Reads and maps an export without storing anything (`--dry-run`, tests):
/// `on_batch` gets each batch of validated events with the progress so far.
/// The report counts events as `mapped` only.
pub fn map_export(
    format: Format,
    path: &Path,
    options: &ImportOptions,
    on_batch: &mut dyn FnMut(Vec<Event>, &Progress),
) -> Result<ImportReport, ImportError> {
    let mut state = Progress::default();
    let mut deliver = |message| {
        match message {
            ReaderMessage::Total { bytes } => state.bytes_total = bytes,
            ReaderMessage::Batch { events, bytes_read } => {
                state.events_mapped += events.len() as u64;
                state.bytes_read = bytes_read;
                on_batch(events, &state);
            }
        }
        true
    };
    let builder = read_export(format, path, options, &mut deliver)?;
    Ok(builder.finish(true))
}

fn read_export(
    format: Format,
    path: &Path,
    options: &ImportOptions,
    deliver: &mut dyn FnMut(ReaderMessage) -> bool,
) -> Result<ReportBuilder, ImportError> {
    let mut output = Output {
        batch: Vec::new(),
        batch_events: options.batch_events.max(1),
        deliver,
        report: ReportBuilder::new(format, path.display().to_string()),
        bytes_read: 0,
    };
    match format {
        Format::Slack => slack::read(path, options, &mut output)?,
        Format::Mattermost => mattermost::read(path, &mut output)?,
    }
    output.flush()?;
    Ok(output.report)
}

/// The reader's end of the pipeline: validates events, batches them, and
/// keeps the report.
pub(crate) struct Output<'a> {
    batch: Vec<Event>,
    batch_events: usize,
    deliver: &'a mut dyn FnMut(ReaderMessage) -> bool,
    pub(crate) report: ReportBuilder,
    bytes_read: u64,
}

impl Output<'_> {
    /// Announces the export's total size (for the progress bar's ETA).
    pub(crate) fn total_bytes(&mut self, bytes: u64) -> Result<(), ImportError> {
        if (self.deliver)(ReaderMessage::Total { bytes }) {
            Ok(())
        } else {
            Err(ImportError::Stopped)
        }
    }

    /// Counts `n` more source bytes as read.
    pub(crate) fn advance(&mut self, n: u64) {
        self.bytes_read += n;
    }

    /// Validates one event built from the source and queues it; an event
    /// that fails validation is reported with where it came from.
    pub(crate) fn emit(
        &mut self,
        event: Map<String, Value>,
        at: &Location,
    ) -> Result<(), ImportError> {
        let str_field = |name: &str| {
            event
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or(UNKNOWN_USER)
                .to_owned()
        };
        let (team, channel, kind, id) = (
            str_field("team"),
            str_field("channel"),
            event
                .get("kind")
                .and_then(Value::as_str)
                .and_then(EventKind::parse),
            event.get("id").and_then(Value::as_str).map(str::to_owned),
        );
        match Event::from_json(Value::Object(event)) {
            Ok(event) => {
                self.report.mapped(&event.team, &event.channel, event.kind);
                self.batch.push(event);
                if self.batch.len() >= self.batch_events {
                    self.flush()?;
                }
            }
            Err(error) => {
                if let Some(kind) = kind {
                    self.report.rejected(&team, &channel, kind);
                }
                self.report.problem(
                    Severity::Error,
                    at.clone(),
                    id,
                    format!("not imported: the event made from it is invalid: {error}"),
                );
            }
        }
        Ok(())
    }

    /// Hands the queued events over (even fewer than a batch).
    pub(crate) fn flush(&mut self) -> Result<(), ImportError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let events = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_events));
        let message = ReaderMessage::Batch {
            events,
            bytes_read: self.bytes_read,
        };
        if (self.deliver)(message) {
            Ok(())
        } else {
            Err(ImportError::Stopped)
        }
    }
}

/// The common fields of an event, as the wire format's JSON object. `at_us`
/// is written as RFC 3339 with microseconds, so nothing of the source's
/// precision is lost.
pub(crate) fn new_event(
    id: &str,
    kind: EventKind,
    at_us: i64,
    team: &str,
    channel: &str,
    user: &str,
) -> Map<String, Value> {
    let mut event = Map::new();
    event.insert("id".into(), Value::from(id));
    event.insert("kind".into(), Value::from(kind.as_str()));
    event.insert("at".into(), at_value(at_us));
    event.insert("team".into(), Value::from(team));
    event.insert("channel".into(), Value::from(channel));
    event.insert("user".into(), Value::from(user));
    event
}

/// `at_us` as RFC 3339 UTC with six fractional digits (an out-of-range time
/// stays a number, for validation to name).
pub(crate) fn at_value(at_us: i64) -> Value {
    match DateTime::from_timestamp_micros(at_us) {
        Some(time) => Value::from(time.to_rfc3339_opts(SecondsFormat::Micros, true)),
        None => Value::from(at_us / 1000),
    }
}

/// Sets `text`; a text longer than the wire format allows is cut at a
/// character boundary and the rest kept in `props.text_overflow`.
pub(crate) fn set_text(event: &mut Map<String, Value>, props: &mut Map<String, Value>, text: &str) {
    if text.len() <= MAX_TEXT_BYTES {
        event.insert("text".into(), Value::from(text));
        return;
    }
    let mut cut = MAX_TEXT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    event.insert("text".into(), Value::from(&text[..cut]));
    props.insert("text_overflow".into(), Value::from(&text[cut..]));
}

/// Whether a list of file names (relative to an export's root) has the
/// files that make a Slack export.
pub(crate) fn has_slack_metadata<'a>(names: impl IntoIterator<Item = &'a str>) -> bool {
    names.into_iter().any(|name| {
        let depth = name.matches('/').count();
        let base = name.rsplit('/').next().unwrap_or(name);
        depth <= 1 && slack::METADATA_FILES.contains(&base)
    })
}

/// Hex SHA-256 of `bytes`, first `n` digits.
pub(crate) fn short_hash(bytes: &[u8], n: usize) -> String {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(bytes));
    digest[..n.min(digest.len())].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_keeps_microseconds() {
        assert_eq!(
            at_value(1_704_164_645_123_456),
            Value::from("2024-01-02T03:04:05.123456Z")
        );
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary_and_the_rest_kept() {
        let text = format!("a{}", "é".repeat(MAX_TEXT_BYTES / 2));
        let (mut event, mut props) = (Map::new(), Map::new());
        set_text(&mut event, &mut props, &text);
        let kept = event["text"].as_str().expect("text");
        let rest = props["text_overflow"].as_str().expect("overflow");
        assert!(kept.len() <= MAX_TEXT_BYTES);
        assert_eq!(format!("{kept}{rest}"), text);
    }

    #[test]
    fn slack_metadata_is_recognised_at_the_root_or_one_folder_down() {
        assert!(has_slack_metadata([
            "channels.json",
            "general/2024-01-01.json"
        ]));
        assert!(has_slack_metadata(["export/users.json"]));
        assert!(!has_slack_metadata(["a/b/users.json", "import.jsonl"]));
    }
}
