//! The import report: what was read, what became of it, and everything the
//! importer could not map, each with its file and position.
//!
//! Counts are always exact; the list of problems keeps the first
//! [`MAX_LISTED_PROBLEMS`] in full and counts the rest, so that a broken
//! export of millions of lines cannot exhaust memory through its report.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;

use super::Format;
use crate::event::EventKind;

/// Problems listed in full in a report; more are counted in `problems_omitted`.
pub const MAX_LISTED_PROBLEMS: usize = 10_000;

/// Unknown users listed in full in a report; more are counted.
pub const MAX_LISTED_UNKNOWN_USERS: usize = 10_000;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something in the source was not imported (or not completely): the
    /// import exits non-zero.
    Error,
    /// Imported, but not exactly as the source said (a raw user id kept as
    /// the user, a reaction time taken from its message, a file not read).
    Warning,
}

/// Where in the export something is: a file (relative to the export's
/// root, `/`-separated) and, when known, a line and column of that file and
/// the item at that place (`reply 2`, `reaction thumbsup by U02`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

impl Location {
    pub fn file(file: impl Into<String>) -> Location {
        Location {
            file: file.into(),
            line: None,
            column: None,
            item: None,
        }
    }

    pub fn line(file: impl Into<String>, line: u64) -> Location {
        Location {
            line: Some(line),
            ..Location::file(file)
        }
    }

    pub fn with_item(&self, item: impl Into<String>) -> Location {
        Location {
            item: Some(item.into()),
            ..self.clone()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(item) = &self.item {
            write!(f, " ({item})")?;
        }
        Ok(())
    }
}

/// One thing the importer could not map exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    #[serde(flatten)]
    pub at: Location,
    /// The event id concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: {}: ", self.at)?;
        if let Some(id) = &self.id {
            write!(f, "{id}: ")?;
        }
        f.write_str(&self.problem)
    }
}

/// What became of the events of one kind (in one channel, or in all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    /// Events the importer made from the source.
    pub mapped: u64,
    /// Newly stored (durable).
    pub accepted: u64,
    /// Already in the archive (an earlier import, a live stream) or twice in
    /// the source: nothing written.
    pub duplicates: u64,
    /// Made, but refused by validation (listed in `problems`).
    pub rejected: u64,
}

impl KindCounts {
    fn add(&mut self, other: &KindCounts) {
        self.mapped += other.mapped;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
    }
}

/// Counts for one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelReport {
    pub team: String,
    pub channel: String,
    /// The channel's name in the source, when `channel` is an id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub total: KindCounts,
    pub kinds: BTreeMap<String, KindCounts>,
}

/// A user id or name that the export's user list does not have: events keep
/// it as their `user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownUser {
    pub user: String,
    /// Events that name it.
    pub events: u64,
    /// Where it first appears.
    pub first_seen: Location,
}

/// The whole report of one import (or dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub format: Format,
    /// The path given to the importer.
    pub source: String,
    /// The team (Slack: workspace id) the events were filed under; for a
    /// Mattermost export, every team is in `channels`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// True when nothing was stored (`--dry-run`): `accepted` and
    /// `duplicates` are then zero.
    pub dry_run: bool,
    /// Source files read (day files, metadata files, JSONL files).
    pub files_read: u64,
    /// Bytes of those files, uncompressed.
    pub bytes_read: u64,
    pub totals: KindCounts,
    pub by_kind: BTreeMap<String, KindCounts>,
    pub channels: Vec<ChannelReport>,
    /// Entries of the export that are not events (users, teams, channel
    /// lists, custom emoji, ...), by type: read, counted, not stored.
    pub directory: BTreeMap<String, u64>,
    pub unknown_users: Vec<UnknownUser>,
    pub unknown_users_omitted: u64,
    /// Problems of severity `error`: source data not (or not fully) imported.
    pub errors: u64,
    pub warnings: u64,
    pub problems: Vec<Problem>,
    /// Problems counted in `errors`/`warnings` but not listed.
    pub problems_omitted: u64,
}

impl ImportReport {
    /// Whether everything in the source was imported (warnings allowed).
    pub fn is_complete(&self) -> bool {
        self.errors == 0
    }
}

/// Builds a report while an import runs.
#[derive(Debug)]
pub(crate) struct ReportBuilder {
    format: Format,
    source: String,
    pub(crate) team: Option<String>,
    pub(crate) files_read: u64,
    pub(crate) bytes_read: u64,
    channels: ChannelMap,
    channel_names: HashMap<(String, String), String>,
    directory: BTreeMap<String, u64>,
    unknown_users: BTreeMap<String, UnknownUser>,
    unknown_users_omitted: u64,
    errors: u64,
    warnings: u64,
    problems: Vec<Problem>,
    problems_omitted: u64,
}

impl ReportBuilder {
    pub(crate) fn new(format: Format, source: String) -> ReportBuilder {
        ReportBuilder {
            format,
            source,
            team: None,
            files_read: 0,
            bytes_read: 0,
            channels: BTreeMap::new(),
            channel_names: HashMap::new(),
            directory: BTreeMap::new(),
            unknown_users: BTreeMap::new(),
            unknown_users_omitted: 0,
            errors: 0,
            warnings: 0,
            problems: Vec::new(),
            problems_omitted: 0,
        }
    }

    pub(crate) fn problem(
        &mut self,
        severity: Severity,
        at: Location,
        id: Option<String>,
        problem: impl Into<String>,
    ) {
        match severity {
            Severity::Error => self.errors += 1,
            Severity::Warning => self.warnings += 1,
        }
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(Problem {
                severity,
                at,
                id,
                problem: problem.into(),
            });
        } else {
            self.problems_omitted += 1;
        }
    }

    pub(crate) fn error(&mut self, at: Location, problem: impl Into<String>) {
        self.problem(Severity::Error, at, None, problem);
    }

    pub(crate) fn warning(&mut self, at: Location, problem: impl Into<String>) {
        self.problem(Severity::Warning, at, None, problem);
    }

    fn counts(&mut self, team: &str, channel: &str, kind: EventKind) -> &mut KindCounts {
        counts_in(&mut self.channels, team, channel, kind)
    }

    pub(crate) fn mapped(&mut self, team: &str, channel: &str, kind: EventKind) {
        self.counts(team, channel, kind).mapped += 1;
    }

    pub(crate) fn rejected(&mut self, team: &str, channel: &str, kind: EventKind) {
        self.counts(team, channel, kind).rejected += 1;
    }

    /// Adds a consumer's tally (accepted and duplicates) to the counts.
    pub(crate) fn merge_tally(&mut self, tally: Tally) {
        for ((team, channel), kinds) in tally.names.into_iter().zip(tally.counts) {
            for (kind, counts) in kinds {
                counts_in(&mut self.channels, &team, &channel, kind).add(&counts);
            }
        }
    }

    pub(crate) fn channel_name(&mut self, team: &str, channel: &str, name: &str) {
        if name != channel {
            self.channel_names
                .insert((team.to_owned(), channel.to_owned()), name.to_owned());
        }
    }

    pub(crate) fn directory(&mut self, what: &str, n: u64) {
        *self.directory.entry(what.to_owned()).or_default() += n;
    }

    /// Records one event naming a user the export does not list; the first
    /// time also adds a warning.
    pub(crate) fn unknown_user(&mut self, user: &str, at: &Location) {
        if let Some(known) = self.unknown_users.get_mut(user) {
            known.events += 1;
            return;
        }
        if self.unknown_users.len() >= MAX_LISTED_UNKNOWN_USERS {
            self.unknown_users_omitted += 1;
            return;
        }
        self.warning(
            at.clone(),
            format!(
                "user {user:?} is not in the export's user list: kept as the user of its events"
            ),
        );
        self.unknown_users.insert(
            user.to_owned(),
            UnknownUser {
                user: user.to_owned(),
                events: 1,
                first_seen: at.clone(),
            },
        );
    }

    pub(crate) fn finish(self, dry_run: bool) -> ImportReport {
        let mut totals = KindCounts::default();
        let mut by_kind: BTreeMap<String, KindCounts> = BTreeMap::new();
        let mut channels = Vec::new();
        let flat = self.channels.into_iter().flat_map(|(team, channels)| {
            channels
                .into_iter()
                .map(move |(channel, kinds)| (team.clone(), channel, kinds))
        });
        for (team, channel, kinds) in flat {
            let mut total = KindCounts::default();
            for (kind, counts) in &kinds {
                total.add(counts);
                by_kind.entry((*kind).to_owned()).or_default().add(counts);
            }
            totals.add(&total);
            let name = self
                .channel_names
                .get(&(team.clone(), channel.clone()))
                .cloned();
            channels.push(ChannelReport {
                team,
                channel,
                name,
                total,
                kinds: kinds
                    .into_iter()
                    .map(|(kind, counts)| (kind.to_owned(), counts))
                    .collect(),
            });
        }
        ImportReport {
            format: self.format,
            source: self.source,
            team: self.team,
            dry_run,
            files_read: self.files_read,
            bytes_read: self.bytes_read,
            totals,
            by_kind,
            channels,
            directory: self.directory,
            unknown_users: self.unknown_users.into_values().collect(),
            unknown_users_omitted: self.unknown_users_omitted,
            errors: self.errors,
            warnings: self.warnings,
            problems: self.problems,
            problems_omitted: self.problems_omitted,
        }
    }
}

/// What the store made of the events, per channel and kind: kept by the
/// consumer side of an import and merged into the report at the end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    names: Vec<(String, String)>,
    index: HashMap<String, HashMap<String, usize>>,
    counts: Vec<BTreeMap<EventKind, KindCounts>>,
}

impl Tally {
    /// A small number standing for (team, channel), to remember per event
    /// while the store has the events.
    pub(crate) fn tag(&mut self, team: &str, channel: &str) -> usize {
        if let Some(tag) = self.index.get(team).and_then(|map| map.get(channel)) {
            return *tag;
        }
        let tag = self.names.len();
        self.names.push((team.to_owned(), channel.to_owned()));
        self.counts.push(BTreeMap::new());
        self.index
            .entry(team.to_owned())
            .or_default()
            .insert(channel.to_owned(), tag);
        tag
    }

    pub(crate) fn record(&mut self, tag: usize, kind: EventKind, stored: bool) {
        let counts = self.counts[tag].entry(kind).or_default();
        if stored {
            counts.accepted += 1;
        } else {
            counts.duplicates += 1;
        }
    }
}

/// Counts by team, channel and kind (nested, so that a lookup by `&str`
/// allocates nothing: this runs once per event).
type ChannelMap = BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, KindCounts>>>;

fn counts_in<'a>(
    map: &'a mut ChannelMap,
    team: &str,
    channel: &str,
    kind: EventKind,
) -> &'a mut KindCounts {
    if !map.contains_key(team) {
        map.insert(team.to_owned(), BTreeMap::new());
    }
    let channels = map.get_mut(team).expect("inserted above");
    if !channels.contains_key(channel) {
        channels.insert(channel.to_owned(), BTreeMap::new());
    }
    channels
        .get_mut(channel)
        .expect("inserted above")
        .entry(kind.as_str())
        .or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_past_the_limit_are_counted_not_listed() {
        let mut builder = ReportBuilder::new(Format::Slack, "x".to_owned());
        for i in 0..MAX_LISTED_PROBLEMS + 5 {
            builder.error(Location::line("a.json", i as u64), "broken");
        }
        builder.warning(Location::file("b.json"), "odd");
        let report = builder.finish(false);
        assert_eq!(report.errors, MAX_LISTED_PROBLEMS as u64 + 5);
        assert_eq!(report.warnings, 1);
        assert_eq!(report.problems.len(), MAX_LISTED_PROBLEMS);
        assert_eq!(report.problems_omitted, 6);
        assert!(!report.is_complete());
    }

    #[test]
    fn counts_add_up_per_channel_kind_and_total() {
        let mut builder = ReportBuilder::new(Format::Mattermost, "x".to_owned());
        builder.mapped("t", "c", EventKind::Post);
        builder.mapped("t", "c", EventKind::Post);
        builder.mapped("t", "d", EventKind::ReactionAdd);
        builder.rejected("t", "d", EventKind::Post);
        let mut tally = Tally::default();
        let (c, d) = (tally.tag("t", "c"), tally.tag("t", "d"));
        assert_eq!(tally.tag("t", "c"), c);
        tally.record(c, EventKind::Post, true);
        tally.record(c, EventKind::Post, false);
        tally.record(d, EventKind::ReactionAdd, true);
        builder.merge_tally(tally);
        builder.channel_name("t", "c", "general");
        let report = builder.finish(false);
        assert_eq!(report.totals.mapped, 3);
        assert_eq!(report.totals.accepted, 2);
        assert_eq!(report.totals.duplicates, 1);
        assert_eq!(report.totals.rejected, 1);
        assert_eq!(report.by_kind["post"].mapped, 2);
        assert_eq!(report.channels[0].name.as_deref(), Some("general"));
        assert_eq!(report.channels[1].kinds["post"].rejected, 1);
    }

    #[test]
    fn locations_print_file_line_column_and_item() {
        let mut at = Location::line("general/2024-01-02.json", 12);
        at.column = Some(5);
        assert_eq!(
            at.with_item("message 3").to_string(),
            "general/2024-01-02.json:12:5 (message 3)"
        );
    }
}
