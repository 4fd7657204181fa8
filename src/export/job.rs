//! Building one export package: resolving what is selected within the
//! caller's scope, walking it channel by channel, feeding the format
//! writers on a blocking thread, and sealing the package with its signed
//! manifest.
//!
//! Memory is bounded by a few pages of events in flight between the reader
//! and the writer thread (plus, for a query, the matching seqs and their
//! posts). The package is built under a hidden temporary name and renamed
//! into place only when its manifest is signed, so a reader never sees a
//! half package. Never changes the archive.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::db::EventRow;
use crate::db::exports::ExportFilter;
use crate::index::SearchIndex;
use crate::retention::holds::{self, HoldCriteria, HoldMatcher};
use crate::search::{self, ParseOptions, Scope};
use crate::store::Store;

use super::manifest::{FileEntry, MANIFEST_FILE, Manifest, SIGNATURE_FILE, SeqRange, StoreHead};
use super::sign::Signer;
use super::{
    Bates, ChannelInfo, ExportError, ExportEvent, ExportFormat, FormatWriter, PackageInfo, Warnings,
};

/// Rows read from the database per page of a channel walk.
const PAGE_ROWS: i64 = 2_000;
/// Pages in flight between the reader and the writer thread.
const PAGES_IN_FLIGHT: usize = 4;
/// Seqs per query when looking up the posts of query hits.
const POSTS_CHUNK: usize = 500;
/// The warnings file of every package.
pub const WARNINGS_FILE: &str = "warnings.jsonl";

/// What an export selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// The events a search query matches, with every other event of their
    /// posts (a hit's edits, deletion, reactions and attachments).
    Query { query: String },
    /// What a legal hold protects now (post-level, as retention sees it).
    Hold { hold: String },
    /// A time range, optionally limited to teams, channels and custodians
    /// (the criteria of a hold, without a query).
    Criteria {
        #[serde(flatten)]
        criteria: HoldCriteria,
    },
}

/// An export to build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub source: Source,
    pub formats: Vec<ExportFormat>,
    /// The case or matter, printed on the cover page and in the manifest.
    #[serde(default)]
    pub matter: String,
    /// Bates numbering of the PDF transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bates: Option<Bates>,
}

/// A request that cannot be exported as given; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidRequest {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidRequest {
    InvalidRequest {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl ExportRequest {
    /// Checks everything that can be checked without the archive.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        if self.formats.is_empty() {
            return Err(invalid(
                "formats",
                "at least one format is needed (csv, pdf, jsonl, actiance, eml)",
            ));
        }
        let distinct: BTreeSet<_> = self.formats.iter().collect();
        if distinct.len() != self.formats.len() {
            return Err(invalid("formats", "a format is listed twice"));
        }
        if self.matter.len() > 1024 {
            return Err(invalid("matter", "longer than 1024 bytes"));
        }
        if let Some(bates) = &self.bates {
            if bates.prefix.is_empty()
                || bates.prefix.len() > 32
                || !bates
                    .prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(invalid(
                    "bates.prefix",
                    "1 to 32 characters of A-Z, a-z, 0-9, '-', '_', '.'",
                ));
            }
            if !(1..=12).contains(&bates.digits) {
                return Err(invalid("bates.digits", "between 1 and 12"));
            }
            if !self.formats.contains(&ExportFormat::Pdf) {
                return Err(invalid(
                    "bates",
                    "Bates numbers are printed on the PDF transcript: add the pdf format",
                ));
            }
        }
        match &self.source {
            Source::Query { query } => {
                if query.trim().is_empty() {
                    return Err(invalid("source.query", "empty query"));
                }
                search::parse(query, &ParseOptions::default())
                    .map_err(|error| invalid("source.query", error.to_string()))?;
            }
            Source::Hold { hold } => {
                if hold.trim().is_empty() {
                    return Err(invalid("source.hold", "name or id of a hold needed"));
                }
            }
            Source::Criteria { criteria } => {
                if criteria.query.is_some() {
                    return Err(invalid(
                        "source.query",
                        "a query goes in a source of type \"query\"",
                    ));
                }
                if criteria.from.is_none() && criteria.to.is_none() {
                    return Err(invalid(
                        "source.from",
                        "a time range export needs from or to (or both)",
                    ));
                }
                criteria
                    .at_range_us()
                    .map_err(|error| invalid("source", error.to_string()))?;
            }
        }
        Ok(())
    }

    /// The selection, in words, for the cover page and the manifest.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Query { query } => format!("search query {query:?}"),
            Source::Hold { hold } => format!("legal hold {hold}"),
            Source::Criteria { criteria } => criteria.to_string(),
        }
    }
}

/// Where everything an export needs lives.
#[derive(Clone)]
pub struct Exporter {
    pub store: Store,
    pub index: Arc<SearchIndex>,
    pub signer: Arc<Signer>,
    /// Packages go here, one directory each (`exp-000042`).
    pub exports_dir: PathBuf,
    /// The installation's `templates/` (None: the built-in layouts).
    pub template_dir: Option<PathBuf>,
}

/// Who an export is for, with the scope they may export (already checked).
#[derive(Debug, Clone)]
pub struct Requester {
    pub name: String,
    pub scope: Scope,
}

/// A running export's progress, shared with whoever watches or cancels it.
#[derive(Debug, Default)]
pub struct Progress {
    pub total: AtomicU64,
    pub exported: AtomicU64,
    cancelled: AtomicBool,
    stage: Mutex<&'static str>,
}

impl Progress {
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub fn stage(&self) -> &'static str {
        *self
            .stage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_stage(&self, stage: &'static str) {
        *self
            .stage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = stage;
    }
}

/// Why a build stopped without a package.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Invalid(#[from] InvalidRequest),
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Export(#[from] ExportError),
    #[error("reading the archive: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("reading the archive: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("{0}")]
    Hold(#[from] holds::HoldError),
    #[error("search index: {0}")]
    Index(#[from] crate::index::IndexError),
    #[error("{0}")]
    Task(String),
}

/// A finished package.
#[derive(Debug, Clone)]
pub struct Built {
    pub package_dir: PathBuf,
    pub manifest: Manifest,
    /// SHA-256 of `manifest.json` as written.
    pub manifest_sha256: String,
}

/// The export id as printed: `exp-000042`.
pub fn export_name(export_id: i64) -> String {
    format!("exp-{export_id:06}")
}

/// Which events of the walked rows are in the export.
enum Include {
    All,
    Matched {
        seqs: HashSet<u64>,
        /// Posts of the hits by team, then channel: post ids repeat
        /// across channels. Nested so that a row is looked up by
        /// borrowed strings, without allocating.
        posts: HashMap<String, HashMap<String, HashSet<String>>>,
    },
    Held(HoldMatcher),
}

/// A resolved selection.
struct Selection {
    filter_from_us: i64,
    filter_to_us: i64,
    seq_after: i64,
    seq_upto: i64,
    teams: Option<Vec<String>>,
    custodians: Option<HashSet<String>>,
    scope: Scope,
    include: Include,
}

impl Selection {
    fn filter(&self) -> ExportFilter<'_> {
        ExportFilter {
            from_us: self.filter_from_us,
            to_us: self.filter_to_us,
            seq_after: self.seq_after,
            seq_upto: self.seq_upto,
            teams: self.teams.as_deref(),
        }
    }

    /// The rows of a page that are in the export.
    async fn keep(
        &self,
        exporter: &Exporter,
        rows: Vec<EventRow>,
    ) -> Result<Vec<EventRow>, BuildError> {
        let rows: Vec<EventRow> = match &self.custodians {
            Some(users) => rows
                .into_iter()
                .filter(|row| users.contains(&row.user_name))
                .collect(),
            None => rows,
        };
        Ok(match &self.include {
            Include::All => rows,
            Include::Matched { seqs, posts } => rows
                .into_iter()
                .filter(|row| {
                    seqs.contains(&(row.seq as u64))
                        || row.post_id.as_ref().is_some_and(|post| {
                            posts
                                .get(&row.team)
                                .and_then(|channels| channels.get(&row.channel))
                                .is_some_and(|posts| posts.contains(post))
                        })
                })
                .collect(),
            Include::Held(matcher) => {
                let held = matcher.held(exporter.store.db(), &rows).await?;
                rows.into_iter()
                    .filter(|row| held.contains_key(&row.seq))
                    .collect()
            }
        })
    }
}

/// The hold `name_or_id` if the requester may see it and it is active.
async fn active_hold(
    exporter: &Exporter,
    requester: &Requester,
    name_or_id: &str,
) -> Result<holds::Hold, BuildError> {
    let hold = holds::find_hold(exporter.store.db(), &requester.scope, name_or_id).await?;
    if !hold.is_active() {
        return Err(invalid(
            "source.hold",
            format!("hold {} was released: it holds nothing", hold.name),
        )
        .into());
    }
    Ok(hold)
}

/// Checks what can be checked before an export starts: the request itself,
/// and that a hold it names exists, is visible to the requester and active
/// (so that the caller hears of a mistake at once, not from a failed job).
pub async fn check_request(
    exporter: &Exporter,
    request: &ExportRequest,
    requester: &Requester,
) -> Result<(), BuildError> {
    request.validate()?;
    if let Source::Hold { hold } = &request.source {
        active_hold(exporter, requester, hold).await?;
    }
    Ok(())
}

/// Resolves `request` within `requester`'s scope (and, for schedules, a
/// seq range).
async fn resolve(
    exporter: &Exporter,
    request: &ExportRequest,
    requester: &Requester,
    seq_range: Option<(u64, u64)>,
) -> Result<Selection, BuildError> {
    let (seq_after, seq_upto) = match seq_range {
        Some((after, upto)) => (after as i64, upto as i64),
        None => (0, i64::MAX),
    };
    let mut selection = Selection {
        filter_from_us: i64::MIN,
        filter_to_us: i64::MAX,
        seq_after,
        seq_upto,
        teams: None,
        custodians: None,
        scope: requester.scope.clone(),
        include: Include::All,
    };
    match &request.source {
        Source::Query { query } => {
            let parsed = search::parse(query, &ParseOptions::default())
                .map_err(|error| invalid("source.query", error.to_string()))?;
            let index = Arc::clone(&exporter.index);
            let scope = requester.scope.clone();
            let mut seqs: Vec<u64> =
                tokio::task::spawn_blocking(move || index.matching_seqs(&parsed, &scope))
                    .await
                    .map_err(|error| BuildError::Task(error.to_string()))??;
            seqs.sort_unstable();
            let mut posts: HashMap<String, HashMap<String, HashSet<String>>> = HashMap::new();
            for chunk in seqs.chunks(POSTS_CHUNK) {
                let chunk: Vec<i64> = chunk.iter().map(|&seq| seq as i64).collect();
                for (team, channel, post) in exporter.store.db().post_ids_of_seqs(&chunk).await? {
                    posts
                        .entry(team)
                        .or_default()
                        .entry(channel)
                        .or_default()
                        .insert(post);
                }
            }
            selection.include = Include::Matched {
                seqs: seqs.into_iter().collect(),
                posts,
            };
        }
        Source::Hold { hold } => {
            let hold = active_hold(exporter, requester, hold).await?;
            let matcher =
                HoldMatcher::prepare_off_thread(&exporter.index, std::slice::from_ref(&hold))
                    .await?;
            selection.include = Include::Held(matcher);
        }
        Source::Criteria { criteria } => {
            let (from_us, to_us) = criteria
                .at_range_us()
                .map_err(|error| invalid("source", error.to_string()))?;
            selection.filter_from_us = from_us;
            selection.filter_to_us = to_us;
            if !criteria.teams.is_empty() || !criteria.channels.is_empty() {
                // The SQL prefilter: the teams asked for and the teams of
                // the channels asked for; `criteria_channel_selected`
                // decides per channel.
                let mut teams = criteria.teams.clone();
                teams.extend(criteria.channels.iter().map(|c| c.team.clone()));
                teams.sort();
                teams.dedup();
                selection.teams = Some(teams);
            }
            if !criteria.custodians.is_empty() {
                selection.custodians = Some(criteria.custodians.iter().cloned().collect());
            }
        }
    }
    Ok(selection)
}

/// Whether a channel is selected, for criteria mixing teams and channels:
/// the team list given to SQL is widened by the channels' teams, so a
/// channel passes when its team was asked for or it was named itself.
fn criteria_channel_selected(request: &ExportRequest, team: &str, channel: &str) -> bool {
    match &request.source {
        Source::Criteria { criteria } => {
            let by_team = criteria.teams.iter().any(|t| t == team);
            let by_channel = criteria
                .channels
                .iter()
                .any(|c| c.team == team && c.channel == channel);
            match (criteria.teams.is_empty(), criteria.channels.is_empty()) {
                (true, true) => true,
                (false, true) => by_team,
                (true, false) => by_channel,
                (false, false) => by_team || by_channel,
            }
        }
        _ => true,
    }
}

/// The channels of the selection with their counts, in package order.
async fn channels_of(
    exporter: &Exporter,
    request: &ExportRequest,
    selection: &Selection,
    progress: &Progress,
) -> Result<Vec<ChannelInfo>, BuildError> {
    let counts = exporter
        .store
        .db()
        .export_channel_counts(&selection.filter())
        .await?;
    let exact = matches!(selection.include, Include::All) && selection.custodians.is_none();
    let mut channels = Vec::new();
    for (team, channel, count) in counts {
        if !selection.scope.allows(&team, &channel)
            || !criteria_channel_selected(request, &team, &channel)
        {
            continue;
        }
        let events = if exact {
            count as u64
        } else {
            let mut n = 0u64;
            let mut pages = ChannelPages::new(exporter, selection, progress, &team, &channel);
            while let Some(rows) = pages.next().await? {
                n += rows.len() as u64;
            }
            n
        };
        if events > 0 {
            channels.push(ChannelInfo {
                team,
                channel,
                events,
            });
        }
    }
    Ok(channels)
}

/// One channel's selected rows, a page at a time, in (`at`, `seq`) order.
struct ChannelPages<'a> {
    exporter: &'a Exporter,
    selection: &'a Selection,
    progress: &'a Progress,
    team: &'a str,
    channel: &'a str,
    after: Option<(i64, i64)>,
    done: bool,
}

impl<'a> ChannelPages<'a> {
    fn new(
        exporter: &'a Exporter,
        selection: &'a Selection,
        progress: &'a Progress,
        team: &'a str,
        channel: &'a str,
    ) -> ChannelPages<'a> {
        ChannelPages {
            exporter,
            selection,
            progress,
            team,
            channel,
            after: None,
            done: false,
        }
    }

    /// The next non-empty page of selected rows; `None` at the end.
    /// Stops with [`BuildError::Cancelled`] once the export is cancelled.
    async fn next(&mut self) -> Result<Option<Vec<EventRow>>, BuildError> {
        while !self.done {
            if self.progress.is_cancelled() {
                return Err(BuildError::Cancelled);
            }
            let rows = self
                .exporter
                .store
                .db()
                .export_channel_page(
                    self.team,
                    self.channel,
                    &self.selection.filter(),
                    self.after,
                    PAGE_ROWS,
                )
                .await?;
            let Some(last) = rows.last() else { break };
            self.after = Some((last.at_us, last.seq));
            self.done = (rows.len() as i64) < PAGE_ROWS;
            let kept = self.selection.keep(self.exporter, rows).await?;
            if !kept.is_empty() {
                return Ok(Some(kept));
            }
        }
        self.done = true;
        Ok(None)
    }
}

/// What the writer thread is told.
enum Feed {
    Begin(ChannelInfo),
    Events(Vec<ExportEvent>),
    End,
}

/// Builds the package of export `export_id`. On any error or cancel, the
/// partial package is removed.
pub async fn build(
    exporter: &Exporter,
    export_id: i64,
    request: &ExportRequest,
    requester: &Requester,
    schedule: Option<&str>,
    seq_range: Option<(u64, u64)>,
    progress: Arc<Progress>,
) -> Result<Built, BuildError> {
    request.validate()?;
    let name = export_name(export_id);
    let partial = exporter.exports_dir.join(format!(".partial-{name}"));
    let final_dir = exporter.exports_dir.join(&name);
    let result = build_in(
        exporter, export_id, request, requester, schedule, seq_range, &progress, &partial,
        &final_dir,
    )
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_dir_all(&partial).await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn build_in(
    exporter: &Exporter,
    export_id: i64,
    request: &ExportRequest,
    requester: &Requester,
    schedule: Option<&str>,
    seq_range: Option<(u64, u64)>,
    progress: &Arc<Progress>,
    partial: &Path,
    final_dir: &Path,
) -> Result<Built, BuildError> {
    let created_at_us = chrono::Utc::now().timestamp_micros();
    progress.set_stage("selecting");
    // The head before reading: every exported event is at or before it.
    let head = StoreHead::of(exporter.store.db()).await?;
    let mut selection = resolve(exporter, request, requester, seq_range).await?;
    if seq_range.is_none() {
        // Nothing archived after the head is exported: the manifest's head
        // covers the package.
        selection.seq_upto = head.seq as i64;
    }
    let channels = channels_of(exporter, request, &selection, progress).await?;
    let total: u64 = channels.iter().map(|c| c.events).sum();
    progress.total.store(total, Ordering::SeqCst);

    create_private_dir(&exporter.exports_dir).await?;
    let _ = tokio::fs::remove_dir_all(partial).await;
    create_private_dir(partial).await?;

    let info = PackageInfo {
        export_id: export_name(export_id),
        matter: request.matter.clone(),
        selection: request.describe(),
        requested_by: requester.name.clone(),
        created_at_us,
        channels: channels.clone(),
        total_events: total,
        bates: request.bates.clone(),
        template_dir: exporter.template_dir.clone(),
    };

    progress.set_stage("writing");
    let (sender, mut receiver) = mpsc::channel::<Feed>(PAGES_IN_FLIGHT);
    let formats = request.formats.clone();
    let dir = partial.to_path_buf();
    let writer_info = info.clone();
    let writer =
        tokio::task::spawn_blocking(move || -> Result<(Vec<PathBuf>, Warnings), ExportError> {
            let mut warnings = Warnings::default();
            let mut writers: Vec<Box<dyn FormatWriter>> = Vec::new();
            for format in formats {
                writers.push(format.writer(&dir, &writer_info)?);
            }
            while let Some(feed) = receiver.blocking_recv() {
                match feed {
                    Feed::Begin(channel) => {
                        for writer in &mut writers {
                            writer.begin_channel(&channel)?;
                        }
                    }
                    Feed::Events(events) => {
                        for event in &events {
                            for writer in &mut writers {
                                writer.write(event, &mut warnings)?;
                            }
                        }
                    }
                    Feed::End => {
                        for writer in &mut writers {
                            writer.end_channel(&mut warnings)?;
                        }
                    }
                }
            }
            let mut files = Vec::new();
            for writer in writers {
                files.extend(writer.finish(&mut warnings)?);
            }
            Ok((files, warnings))
        });

    let fed = feed_writers(exporter, &selection, &channels, progress, &sender).await;
    drop(sender);
    let written = writer
        .await
        .map_err(|error| BuildError::Task(error.to_string()))?;
    // A writer error explains a closed channel better than the send error.
    let (files, warnings) = match (fed, written) {
        (Err(BuildError::Cancelled), _) => return Err(BuildError::Cancelled),
        (_, Err(error)) => return Err(error.into()),
        (Err(error), Ok(_)) => return Err(error),
        (Ok(()), Ok(done)) => done,
    };
    if progress.is_cancelled() {
        return Err(BuildError::Cancelled);
    }

    progress.set_stage("sealing");
    let exported = progress.exported.load(Ordering::SeqCst);
    let manifest_input = SealInput {
        info,
        request: request.clone(),
        requester: requester.clone(),
        schedule: schedule.map(str::to_owned),
        seq_range: seq_range.map(|(after, upto)| SeqRange { after, upto }),
        head,
        exported,
    };
    let signer = Arc::clone(&exporter.signer);
    let dir = partial.to_path_buf();
    let (manifest, manifest_sha256) =
        tokio::task::spawn_blocking(move || seal(&dir, &files, &warnings, manifest_input, &signer))
            .await
            .map_err(|error| BuildError::Task(error.to_string()))??;

    tokio::fs::rename(partial, final_dir)
        .await
        .map_err(|error| ExportError::io(final_dir, error))?;
    sync_dir(&exporter.exports_dir).await?;
    progress.set_stage("done");
    Ok(Built {
        package_dir: final_dir.to_path_buf(),
        manifest,
        manifest_sha256,
    })
}

async fn feed_writers(
    exporter: &Exporter,
    selection: &Selection,
    channels: &[ChannelInfo],
    progress: &Progress,
    sender: &mpsc::Sender<Feed>,
) -> Result<(), BuildError> {
    let closed = || BuildError::Task("the writer thread stopped".to_owned());
    for channel in channels {
        sender
            .send(Feed::Begin(channel.clone()))
            .await
            .map_err(|_| closed())?;
        let mut pages = ChannelPages::new(
            exporter,
            selection,
            progress,
            &channel.team,
            &channel.channel,
        );
        let mut written = 0u64;
        while let Some(kept) = pages.next().await? {
            let events = exporter.store.read_event_rows(&kept).await?;
            let page: Vec<ExportEvent> = events
                .into_iter()
                .map(|stored| ExportEvent {
                    seq: stored.seq,
                    event: stored.event,
                })
                .collect();
            written += page.len() as u64;
            progress
                .exported
                .fetch_add(page.len() as u64, Ordering::SeqCst);
            sender
                .send(Feed::Events(page))
                .await
                .map_err(|_| closed())?;
        }
        if written != channel.events {
            // Retention deleted events between counting and reading: the
            // counts in the manifest would be wrong.
            return Err(BuildError::Task(format!(
                "{}/{}: counted {} events but read {written}; the archive changed under the export (a retention run?): run it again",
                channel.team, channel.channel, channel.events
            )));
        }
        sender.send(Feed::End).await.map_err(|_| closed())?;
    }
    Ok(())
}

struct SealInput {
    info: PackageInfo,
    request: ExportRequest,
    requester: Requester,
    schedule: Option<String>,
    seq_range: Option<SeqRange>,
    head: StoreHead,
    exported: u64,
}

/// Writes the warnings file, hashes every file, writes and signs the
/// manifest. Blocking.
fn seal(
    dir: &Path,
    files: &[PathBuf],
    warnings: &Warnings,
    input: SealInput,
    signer: &Signer,
) -> Result<(Manifest, String), ExportError> {
    use std::io::Write;
    let warnings_path = dir.join(WARNINGS_FILE);
    {
        let file = std::fs::File::create(&warnings_path)
            .map_err(|error| ExportError::io(&warnings_path, error))?;
        let mut out = std::io::BufWriter::new(file);
        for warning in warnings.items() {
            let line = serde_json::to_string(warning).expect("warnings serialize");
            writeln!(out, "{line}").map_err(|error| ExportError::io(&warnings_path, error))?;
        }
        if warnings.dropped() > 0 {
            let line = serde_json::json!({
                "file": "*",
                "code": "warnings_truncated",
                "message": format!("{} more warnings were counted but not listed", warnings.dropped()),
            });
            writeln!(out, "{line}").map_err(|error| ExportError::io(&warnings_path, error))?;
        }
        let file = out
            .into_inner()
            .map_err(|error| ExportError::io(&warnings_path, error.into_error()))?;
        file.sync_all()
            .map_err(|error| ExportError::io(&warnings_path, error))?;
    }
    let mut entries = Vec::new();
    let mut all: Vec<PathBuf> = files.iter().map(|file| dir.join(file)).collect();
    all.push(warnings_path);
    for path in all {
        entries.push(FileEntry::of(dir, &path)?);
    }
    let manifest = Manifest::new(
        &input.info,
        &input.request,
        &input.requester,
        input.schedule,
        input.seq_range,
        input.head,
        input.exported,
        warnings.len(),
        entries,
        signer,
    );
    let bytes = manifest.to_bytes();
    let signature = signer.sign(&bytes);
    let manifest_path = dir.join(MANIFEST_FILE);
    write_synced(&manifest_path, &bytes)?;
    let signature_path = dir.join(SIGNATURE_FILE);
    let mut signature_text = serde_json::to_vec_pretty(&signature).expect("signatures serialize");
    signature_text.push(b'\n');
    write_synced(&signature_path, &signature_text)?;
    let std_dir = std::fs::File::open(dir).map_err(|error| ExportError::io(dir, error))?;
    std_dir
        .sync_all()
        .map_err(|error| ExportError::io(dir, error))?;
    Ok((manifest, hex::encode(Sha256::digest(&bytes))))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|error| ExportError::io(path, error))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| ExportError::io(path, error))
}

async fn create_private_dir(path: &Path) -> Result<(), ExportError> {
    use std::os::unix::fs::DirBuilderExt;
    let path_buf = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path_buf)
            .map_err(|error| ExportError::io(&path_buf, error))
    })
    .await
    .map_err(|error| ExportError::Format {
        format: "package",
        message: error.to_string(),
    })?
}

async fn sync_dir(path: &Path) -> Result<(), ExportError> {
    let path_buf = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&path_buf)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| ExportError::io(&path_buf, error))
    })
    .await
    .map_err(|error| ExportError::Format {
        format: "package",
        message: error.to_string(),
    })?
}
