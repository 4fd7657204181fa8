//! The contract between the export job and the format writers.
//!
//! The job walks the selection channel by channel (channels sorted by team,
//! then channel), and within a channel in (`at`, `seq`) order, and hands
//! every event to every writer of the package. A writer writes its files
//! under the package directory as it goes (streaming: it must not keep a
//! whole channel, let alone the export, in memory) and reports anything it
//! could not render faithfully as a [`Warning`]: nothing is skipped
//! silently.
//!
//! Writers are synchronous (`std::io`); the job runs them on a blocking
//! thread.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event::Event;

use super::ExportError;

/// One event handed to the writers.
#[derive(Debug, Clone)]
pub struct ExportEvent {
    /// The store's sequence number (unique, increasing in archive order).
    pub seq: u64,
    pub event: Event,
}

/// The channel the following events belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    pub team: String,
    pub channel: String,
    /// How many events of this channel the package holds (known before the
    /// channel starts).
    pub events: u64,
}

/// Bates numbering of PDF pages: `prefix` followed by a running number of
/// `digits` digits, starting at `start`, on every page of every volume.
/// As asked for (API, CLI, schedules): `start` defaults to 1, `digits` to 6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bates {
    pub prefix: String,
    #[serde(default = "first_bates_number")]
    pub start: u64,
    #[serde(default = "bates_digits")]
    pub digits: u8,
}

fn first_bates_number() -> u64 {
    1
}

fn bates_digits() -> u8 {
    6
}

/// What every writer may print about the package (the PDF cover page, the
/// Actiance and EML headers).
#[derive(Debug, Clone, Serialize)]
pub struct PackageInfo {
    /// The export's id, e.g. `exp-000042`.
    pub export_id: String,
    /// The case or matter the export is for, as given (may be empty).
    pub matter: String,
    /// What was selected, in words: the query, the hold, or the time range.
    pub selection: String,
    /// Who asked for it (user name, or `schedule:NAME`).
    pub requested_by: String,
    /// When the export started, epoch microseconds UTC.
    pub created_at_us: i64,
    /// Every channel of the package, in the order they will be written,
    /// with their event counts.
    pub channels: Vec<ChannelInfo>,
    /// Total events of the package.
    pub total_events: u64,
    /// PDF Bates numbering, when asked for.
    pub bates: Option<Bates>,
    /// Where templates are read from (`templates/` of the installation);
    /// `None` uses the layouts built into the binary.
    pub template_dir: Option<PathBuf>,
}

/// Something a writer could not render exactly as archived. Goes to the
/// package's `warnings.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The file the warning is about (relative to the package).
    pub file: String,
    /// The event, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// A stable machine-readable code, e.g. `glyph_replaced`.
    pub code: String,
    /// What happened, in words.
    pub message: String,
}

/// Collects the warnings of a package.
#[derive(Debug, Default)]
pub struct Warnings {
    items: Vec<Warning>,
    /// Warnings beyond [`Warnings::MAX_KEPT`] are counted, not kept.
    dropped: u64,
}

impl Warnings {
    /// At most this many warnings are kept in memory (and listed); the rest
    /// are counted and the count is listed.
    pub const MAX_KEPT: usize = 100_000;

    pub fn push(&mut self, warning: Warning) {
        if self.items.len() < Self::MAX_KEPT {
            self.items.push(warning);
        } else {
            self.dropped += 1;
        }
    }

    pub fn items(&self) -> &[Warning] {
        &self.items
    }

    /// Warnings counted beyond the kept ones.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn len(&self) -> u64 {
        self.items.len() as u64 + self.dropped
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One format's writer, for one package.
pub trait FormatWriter: Send {
    /// The events that follow, until the next `begin_channel` or `finish`,
    /// belong to `channel`.
    fn begin_channel(&mut self, channel: &ChannelInfo) -> Result<(), ExportError>;

    /// One event of the current channel, in (`at`, `seq`) order.
    fn write(&mut self, event: &ExportEvent, warnings: &mut Warnings) -> Result<(), ExportError>;

    /// The current channel has no more events.
    fn end_channel(&mut self, warnings: &mut Warnings) -> Result<(), ExportError>;

    /// Flushes and closes everything; returns the files written, relative
    /// to the package directory, in a stable order. Every file must be
    /// complete (flushed and synced) when this returns.
    fn finish(self: Box<Self>, warnings: &mut Warnings) -> Result<Vec<PathBuf>, ExportError>;
}

/// A path relative to the package directory, as written in the manifest
/// (forward slashes).
pub fn relative_name(package_dir: &Path, file: &Path) -> String {
    file.strip_prefix(package_dir)
        .unwrap_or(file)
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
