//! Slack workspace export → events.
//!
//! A Slack export (a zip, or the folder it unpacks to) has `users.json`
//! (`org_users.json` on Enterprise Grid), `channels.json` and, when the
//! export includes them, `groups.json` (private channels), `mpims.json`
//! (group DMs) and `dms.json`; then one folder per conversation (public and
//! private channels and group DMs by name, DMs by id) holding one JSON array
//! of messages per day (`2024-01-02.json`).
//!
//! Mapping (the full table is in `docs/import.md`): team = the workspace id,
//! channel = the conversation id, user = the Slack username, `at` = `ts` to
//! the microsecond, ids `slack:{team}:{channel}:{ts}` with suffixes. Every
//! message field that is not mapped to an event field stays in `props`.
//!
//! This reader must never guess ids: if a file that ids or names depend on
//! (`users.json`, the conversation lists) is unreadable, it imports nothing
//! rather than store events under ids that a fixed re-import would not match.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::Deserializer as _;
use serde::de::{SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::source::{Container, Entry, looks_like_zip};
use super::{ImportError, ImportOptions, Location, Output, UNKNOWN_USER, new_event, set_text};
use crate::event::EventKind;

/// Files at the root of an export that describe it (not conversations).
pub(crate) const METADATA_FILES: [&str; 6] = [
    "users.json",
    "org_users.json",
    "channels.json",
    "groups.json",
    "mpims.json",
    "dms.json",
];

/// Root files Slack writes that are not chat history; reported as not imported.
const OTHER_KNOWN_FILES: [(&str, &str); 3] = [
    ("integration_logs.json", "app and integration activity log"),
    ("canvases.json", "links to canvases"),
    ("content_flags.json", "content flags"),
];

/// Conversation lists, in the order they are imported, with the type each
/// conversation gets in `props.conversation_type`.
const CONVERSATION_FILES: [(&str, &str); 4] = [
    ("channels.json", "public_channel"),
    ("groups.json", "private_channel"),
    ("mpims.json", "mpim"),
    ("dms.json", "im"),
];

/// Subtypes that are messages people see and that map to a `post` (the
/// subtype is kept in `props.source_subtype`). Any other subtype that no rule
/// below maps also becomes a `post`, with the whole message in `props.raw`.
const POST_SUBTYPES: [&str; 22] = [
    "bot_message",
    "me_message",
    "file_share",
    "file_comment",
    "file_mention",
    "thread_broadcast",
    "channel_topic",
    "channel_purpose",
    "group_topic",
    "group_purpose",
    "pinned_item",
    "unpinned_item",
    "reminder_add",
    "slackbot_response",
    "bot_add",
    "bot_remove",
    "channel_unarchive",
    "group_unarchive",
    "channel_convert_to_private",
    "channel_convert_to_public",
    "huddle_thread",
    "tombstone_unfurl",
];

/// Slack's own bot: never in `users.json`.
const SLACKBOT_ID: &str = "USLACKBOT";

struct Conversation {
    id: String,
    name: String,
}

/// An export opened and recognised: its files, and the folder inside it
/// that holds them ("" or "name/").
pub(crate) struct SlackExport {
    container: Container,
    entries: Vec<Entry>,
    root: String,
}

/// Opens `path` and checks that it is a Slack export (naming the other
/// format when it is a Mattermost one).
pub(crate) fn open(path: &Path) -> Result<SlackExport, ImportError> {
    let export = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|source| ImportError::io(path, source))?;
    if metadata.is_file() && !looks_like_zip(path)? {
        return Err(not_a_slack_file(path));
    }
    let container = Container::open(path)?;
    let entries = container.entries(1)?;
    let names = || entries.iter().map(|entry| entry.name.as_str());
    match find_root(names()) {
        Some(root) if !root.is_empty() && matches!(container, Container::Dir(_)) => {
            // An export unpacked into a folder of its own, one level down.
            let container = Container::open(&path.join(root.trim_end_matches('/')))?;
            let entries = container.entries(1)?;
            Ok(SlackExport {
                container,
                entries,
                root: String::new(),
            })
        }
        Some(root) => Ok(SlackExport {
            container,
            entries,
            root,
        }),
        None if names().any(|name| name.ends_with(".jsonl")) => Err(ImportError::WrongFormat {
            path: export,
            expected: super::Format::Slack,
            found: super::Format::Mattermost,
        }),
        None => Err(ImportError::NotAnExport {
            path: export,
            expected: super::Format::Slack,
            detail: "no users.json or channels.json at its top level".to_owned(),
        }),
    }
}

/// Reads a Slack export at `path` into `out`.
pub(crate) fn read(
    path: &Path,
    options: &ImportOptions,
    out: &mut Output<'_>,
) -> Result<(), ImportError> {
    let SlackExport {
        mut container,
        entries,
        root,
    } = open(path)?;
    read_entries(
        &path.display().to_string(),
        &root,
        &mut container,
        &entries,
        options,
        out,
    )
}

fn read_entries(
    export: &str,
    root: &str,
    container: &mut Container,
    entries: &[Entry],
    options: &ImportOptions,
    out: &mut Output<'_>,
) -> Result<(), ImportError> {
    // Sort the export's files into metadata, day files by folder, and the rest.
    let mut metadata: BTreeMap<&str, &Entry> = BTreeMap::new();
    let mut folders: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    let mut total_bytes = 0;
    for entry in entries {
        let Some(name) = entry.name.strip_prefix(root) else {
            out.report.warning(
                Location::file(&entry.name),
                "not imported: outside the export's top-level folder",
            );
            continue;
        };
        match name.split_once('/') {
            None if METADATA_FILES.contains(&name) => {
                metadata.insert(name, entry);
                total_bytes += entry.size;
            }
            None => {
                let what = OTHER_KNOWN_FILES
                    .iter()
                    .find(|(file, _)| *file == name)
                    .map_or("not part of the Slack export format", |(_, what)| *what);
                out.report
                    .warning(Location::file(&entry.name), format!("not imported: {what}"));
                out.report.directory("files_not_imported", 1);
            }
            Some((folder, day)) if is_day_file(day) => {
                folders.entry(folder).or_default().push(entry);
                total_bytes += entry.size;
            }
            Some(_) => {
                out.report.warning(
                    Location::file(&entry.name),
                    "not imported: not a day file (YYYY-MM-DD.json) of a conversation folder",
                );
                out.report.directory("files_not_imported", 1);
            }
        }
    }
    out.total_bytes(total_bytes)?;

    let mut reader = SlackReader {
        export,
        container,
        team: String::new(),
        users: HashMap::new(),
        out,
    };
    let users = match (metadata.get("users.json"), metadata.get("org_users.json")) {
        (Some(entry), _) | (None, Some(entry)) => reader.read_array_file(entry)?,
        (None, None) => {
            reader.out.report.warning(
                Location::file(format!("{root}users.json")),
                "the export has no users.json: users are kept as their Slack ids",
            );
            Vec::new()
        }
    };
    reader.team = match &options.slack_team {
        Some(team) => team.clone(),
        None => most_common_team(&users).ok_or_else(|| ImportError::NoWorkspace {
            path: export.to_owned(),
        })?,
    };
    reader.out.report.team = Some(reader.team.clone());
    reader.load_users(&users);
    drop(users);

    let mut conversations: Vec<Conversation> = Vec::new();
    let mut by_folder: HashMap<String, usize> = HashMap::new();
    for (file, conversation_type) in CONVERSATION_FILES {
        let Some(entry) = metadata.get(file) else {
            continue;
        };
        let items = reader.read_array_file(entry)?;
        reader
            .out
            .report
            .directory(conversation_type, items.len() as u64);
        for (at, item) in items {
            if let Some(conversation) = reader.conversation(conversation_type, item, &at)? {
                let index = conversations.len();
                by_folder.entry(conversation.id.clone()).or_insert(index);
                // A folder is named by the conversation's name (by its id for DMs).
                by_folder.insert(conversation.name.clone(), index);
                conversations.push(conversation);
            }
        }
    }

    for (folder, days) in folders {
        let (channel, name) = match by_folder.get(folder) {
            Some(&index) => (
                conversations[index].id.clone(),
                conversations[index].name.clone(),
            ),
            None => {
                reader.out.report.warning(
                    Location::file(format!("{root}{folder}/")),
                    "folder is in no conversation list (channels.json, groups.json, mpims.json, dms.json): its name is used as the channel id",
                );
                (folder.to_owned(), folder.to_owned())
            }
        };
        let team = reader.team.clone();
        reader.out.report.channel_name(&team, &channel, &name);
        for day in days {
            reader.read_day_file(day, &channel)?;
        }
    }
    Ok(())
}

/// The export's top-level folder ("" or "name/") holding its metadata files.
fn find_root<'a>(names: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut roots: Vec<String> = Vec::new();
    for name in names {
        let (folder, base) = match name.rsplit_once('/') {
            Some((folder, base)) if !folder.contains('/') => (format!("{folder}/"), base),
            Some(_) => continue,
            None => (String::new(), name),
        };
        if METADATA_FILES.contains(&base) && !roots.contains(&folder) {
            roots.push(folder);
        }
    }
    if roots.iter().any(String::is_empty) {
        return Some(String::new());
    }
    match roots.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    }
}

fn is_day_file(name: &str) -> bool {
    let Some(date) = name.strip_suffix(".json") else {
        return false;
    };
    date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// The error for a plain file given as a Slack export.
fn not_a_slack_file(path: &Path) -> ImportError {
    let export = path.display().to_string();
    match super::mattermost::first_line_is_version(path) {
        Ok(true) => ImportError::WrongFormat {
            path: export,
            expected: super::Format::Slack,
            found: super::Format::Mattermost,
        },
        _ => ImportError::NotAnExport {
            path: export,
            expected: super::Format::Slack,
            detail: "expected the export's zip file or the folder it unpacks to".to_owned(),
        },
    }
}

/// The `team_id` most users have (ties: the smallest).
fn most_common_team(users: &[(Location, Value)]) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, user) in users {
        if let Some(team) = user.get("team_id").and_then(Value::as_str)
            && !team.is_empty()
        {
            *counts.entry(team).or_default() += 1;
        }
    }
    let best = counts.values().copied().max()?;
    counts
        .into_iter()
        .find(|(_, n)| *n == best)
        .map(|(team, _)| team.to_owned())
}

/// Parses a Slack `ts` ("1704164645.123456") into microseconds since the
/// epoch, exactly (no floating point).
pub(crate) fn parse_ts(ts: &str) -> Option<i64> {
    let (seconds, fraction) = ts.split_once('.').unwrap_or((ts, ""));
    if seconds.is_empty()
        || seconds.len() > 12
        || fraction.len() > 9
        || !seconds.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds: i64 = seconds.parse().ok()?;
    let mut micros: i64 = 0;
    for i in 0..6 {
        let digit = fraction
            .as_bytes()
            .get(i)
            .map_or(0, |b| i64::from(b - b'0'));
        micros = micros * 10 + digit;
    }
    seconds.checked_mul(1_000_000)?.checked_add(micros)
}

struct SlackReader<'r, 'o> {
    export: &'r str,
    container: &'r mut Container,
    team: String,
    /// User id → username.
    users: HashMap<String, String>,
    out: &'r mut Output<'o>,
}

impl SlackReader<'_, '_> {
    /// Reads a metadata file (a JSON array of objects); unreadable is fatal.
    fn read_array_file(&mut self, entry: &Entry) -> Result<Vec<(Location, Value)>, ImportError> {
        let fatal = |detail: String| ImportError::BadMetadata {
            path: self.export.to_owned(),
            file: entry.name.clone(),
            detail,
        };
        let text = self
            .container
            .read_to_string(entry)
            .map_err(|error| fatal(error.0))?;
        self.out.report.files_read += 1;
        self.out.report.bytes_read += text.len() as u64;
        self.out.advance(entry.size);
        let (items, error) = parse_array(&text);
        if let Some(error) = error {
            return Err(fatal(error.to_string()));
        }
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            let at = Location {
                column: Some(item.column),
                ..Location::line(&entry.name, item.line)
            };
            let value: Value = serde_json::from_str(item.raw.get())
                .map_err(|error| fatal(format!("line {}: {error}", item.line)))?;
            values.push((at, value));
        }
        Ok(values)
    }

    fn load_users(&mut self, users: &[(Location, Value)]) {
        self.out.report.directory("users", users.len() as u64);
        for (at, user) in users {
            let Some(id) = user.get("id").and_then(Value::as_str) else {
                self.out
                    .report
                    .warning(at.clone(), "user without an id: ignored");
                continue;
            };
            let profile = |field: &str| {
                user.get("profile")
                    .and_then(|profile| profile.get(field))
                    .and_then(Value::as_str)
            };
            let name = [
                user.get("name").and_then(Value::as_str),
                profile("display_name_normalized"),
                profile("display_name"),
                user.get("real_name").and_then(Value::as_str),
            ]
            .into_iter()
            .flatten()
            .find(|name| !name.is_empty())
            .unwrap_or(id);
            self.users.insert(id.to_owned(), name.to_owned());
        }
    }

    /// One entry of a conversation list: remembered, and its creation stored
    /// as a `channel_create` event.
    fn conversation(
        &mut self,
        conversation_type: &str,
        item: Value,
        at: &Location,
    ) -> Result<Option<Conversation>, ImportError> {
        let Value::Object(mut item) = item else {
            self.out
                .report
                .error(at.clone(), "not a JSON object: not imported");
            return Ok(None);
        };
        let Some(id) = item.get("id").and_then(Value::as_str).map(str::to_owned) else {
            self.out
                .report
                .error(at.clone(), "conversation without an id: not imported");
            return Ok(None);
        };
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .unwrap_or(&id)
            .to_owned();
        let at = at.with_item(format!("conversation {id}"));
        let created = item.remove("created");
        let creator = item.remove("creator");
        item.remove("id");
        item.insert("conversation_type".into(), Value::from(conversation_type));
        match created.as_ref().and_then(Value::as_i64) {
            Some(seconds) if seconds > 0 => {
                let user = match creator.as_ref().and_then(Value::as_str) {
                    Some(creator) if !creator.is_empty() => self.user_name(creator, &at),
                    _ => UNKNOWN_USER.to_owned(),
                };
                let event_id = format!("slack:{}:{id}:channel_create", self.team);
                let mut event = new_event(
                    &event_id,
                    EventKind::ChannelCreate,
                    seconds.saturating_mul(1_000_000),
                    &self.team,
                    &id,
                    &user,
                );
                event.insert("props".into(), Value::Object(item));
                self.out.emit(event, &at)?;
            }
            _ => self.out.report.warning(
                at,
                "no creation time (created): the conversation is imported without a channel_create event",
            ),
        }
        Ok(Some(Conversation { id, name }))
    }

    /// A day file: every message in it. A file that cannot be read whole is
    /// reported; the messages before a truncation are imported.
    fn read_day_file(&mut self, entry: &Entry, channel: &str) -> Result<(), ImportError> {
        let text = match self.container.read_to_string(entry) {
            Ok(text) => text,
            Err(error) => {
                self.out.advance(entry.size);
                self.out.report.error(
                    Location::file(&entry.name),
                    format!("not imported: {}", error.0),
                );
                return Ok(());
            }
        };
        self.out.report.files_read += 1;
        self.out.report.bytes_read += text.len() as u64;
        let (items, error) = parse_array(&text);
        let n_items = items.len();
        for (index, item) in items.into_iter().enumerate() {
            let at = Location {
                column: Some(item.column),
                ..Location::line(&entry.name, item.line)
            }
            .with_item(format!("message {}", index + 1));
            match serde_json::from_str::<Value>(item.raw.get()) {
                Ok(Value::Object(message)) => self.message(message, channel, &at)?,
                Ok(_) => self.out.report.error(at, "not a JSON object: not imported"),
                Err(error) => self.out.report.error(at, format!("not imported: {error}")),
            }
        }
        if let Some(error) = error {
            let what = match error.classify() {
                serde_json::error::Category::Eof => "truncated JSON (the file ends inside a value)",
                _ => "malformed JSON",
            };
            let at = Location {
                column: Some(error.column() as u64),
                ..Location::line(&entry.name, error.line() as u64)
            };
            self.out.report.error(
                at,
                format!(
                    "{what}: {error}; the {n_items} message(s) before this point were imported, the rest of the file was not"
                ),
            );
        }
        self.out.advance(entry.size);
        Ok(())
    }

    /// The username for a user id, or the id itself (reported) when the
    /// export does not list it.
    fn user_name(&mut self, id: &str, at: &Location) -> String {
        if let Some(name) = self.users.get(id) {
            return name.clone();
        }
        if id == SLACKBOT_ID {
            return "slackbot".to_owned();
        }
        self.out.report.unknown_user(id, at);
        id.to_owned()
    }

    /// Who did it: the message's user, else the bot's name, else unknown.
    fn actor(&mut self, message: &Map<String, Value>, at: &Location) -> String {
        if let Some(user) = message.get("user").and_then(Value::as_str)
            && !user.is_empty()
        {
            return self.user_name(user, at);
        }
        let bot_name = message
            .get("username")
            .and_then(Value::as_str)
            .or_else(|| {
                message
                    .get("bot_profile")
                    .and_then(|profile| profile.get("name"))
                    .and_then(Value::as_str)
            })
            .or_else(|| message.get("bot_id").and_then(Value::as_str));
        match bot_name {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => {
                self.out.report.warning(
                    at.clone(),
                    format!("the message names no user: filed under {UNKNOWN_USER:?}"),
                );
                UNKNOWN_USER.to_owned()
            }
        }
    }

    fn post_id(&self, channel: &str, ts: &str) -> String {
        format!("slack:{}:{channel}:{ts}", self.team)
    }

    /// One message: a post (with its edit and reactions), or a join, leave,
    /// rename, archive or delete.
    fn message(
        &mut self,
        message: Map<String, Value>,
        channel: &str,
        at: &Location,
    ) -> Result<(), ImportError> {
        let Some(ts) = message.get("ts").and_then(Value::as_str).map(str::to_owned) else {
            self.out
                .report
                .error(at.clone(), "message without a ts: not imported");
            return Ok(());
        };
        let Some(at_us) = parse_ts(&ts) else {
            self.out.report.error(
                at.clone(),
                format!("ts {ts:?} is not a Slack timestamp: not imported"),
            );
            return Ok(());
        };
        let subtype = message
            .get("subtype")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let post_id = self.post_id(channel, &ts);
        let team = self.team.clone();
        let membership = match subtype.as_deref() {
            Some("channel_join" | "group_join") => Some(EventKind::MemberJoin),
            Some("channel_leave" | "group_leave") => Some(EventKind::MemberLeave),
            Some("channel_name" | "group_name") => Some(EventKind::ChannelRename),
            Some("channel_archive" | "group_archive") => Some(EventKind::ChannelArchive),
            _ => None,
        };
        if let Some(kind) = membership {
            let user = self.actor(&message, at);
            let mut event = new_event(&post_id, kind, at_us, &team, channel, &user);
            event.insert("props".into(), Value::Object(props_of(message)));
            return self.out.emit(event, at);
        }
        match subtype.as_deref() {
            Some("tombstone") => {
                // A deleted thread parent: its text is gone, its replies are not.
                let user = self.actor(&message, at);
                let mut event = new_event(
                    &format!("{post_id}:delete"),
                    EventKind::Delete,
                    at_us,
                    &team,
                    channel,
                    &user,
                );
                event.insert("post".into(), Value::from(post_id.as_str()));
                let mut props = props_of(message);
                props.insert("at_is_message_time".into(), Value::Bool(true));
                event.insert("props".into(), Value::Object(props));
                self.out.emit(event, at)
            }
            Some("message_deleted") => {
                let deleted_ts = message
                    .get("deleted_ts")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let Some(deleted_ts) = deleted_ts.filter(|deleted| parse_ts(deleted).is_some())
                else {
                    return self.unknown_subtype(message, channel, &ts, at_us, at);
                };
                let user = self.actor(&message, at);
                let deleted_post = self.post_id(channel, &deleted_ts);
                let mut event = new_event(
                    &format!("{deleted_post}:delete"),
                    EventKind::Delete,
                    at_us,
                    &team,
                    channel,
                    &user,
                );
                event.insert("post".into(), Value::from(deleted_post));
                event.insert("props".into(), Value::Object(props_of(message)));
                self.out.emit(event, at)
            }
            Some("message_changed") => {
                let Some(Value::Object(inner)) = message.get("message").cloned() else {
                    return self.unknown_subtype(message, channel, &ts, at_us, at);
                };
                let original_ts = inner.get("ts").and_then(Value::as_str).unwrap_or(&ts);
                let edited_post = self.post_id(channel, original_ts);
                let edited = inner.get("edited").cloned();
                let edited_ts = edited
                    .as_ref()
                    .and_then(|edited| edited.get("ts"))
                    .and_then(Value::as_str)
                    .unwrap_or(&ts)
                    .to_owned();
                let user = self.actor(&inner, at);
                let text = inner.get("text").and_then(Value::as_str).unwrap_or("");
                let mut event = new_event(
                    &format!("{edited_post}:edit:{edited_ts}"),
                    EventKind::Edit,
                    parse_ts(&edited_ts).unwrap_or(at_us),
                    &team,
                    channel,
                    &user,
                );
                event.insert("post".into(), Value::from(edited_post));
                let mut props = Map::new();
                set_text(&mut event, &mut props, text);
                props.extend(props_of(message));
                event.insert("props".into(), Value::Object(props));
                self.out.emit(event, at)
            }
            Some(known) if POST_SUBTYPES.contains(&known) => {
                self.post(message, channel, &ts, at_us, at, false)
            }
            None => self.post(message, channel, &ts, at_us, at, false),
            Some(_) => self.unknown_subtype(message, channel, &ts, at_us, at),
        }
    }

    /// A subtype no rule maps: a post, with the whole message in `props.raw`.
    fn unknown_subtype(
        &mut self,
        message: Map<String, Value>,
        channel: &str,
        ts: &str,
        at_us: i64,
        at: &Location,
    ) -> Result<(), ImportError> {
        self.post(message, channel, ts, at_us, at, true)
    }

    /// A message people see: the post, its edit (when `edited`), one
    /// `reaction_add` per reacting user, its files as the post's `files`.
    fn post(
        &mut self,
        mut message: Map<String, Value>,
        channel: &str,
        ts: &str,
        at_us: i64,
        at: &Location,
        keep_raw: bool,
    ) -> Result<(), ImportError> {
        let raw = keep_raw.then(|| Value::Object(message.clone()));
        let team = self.team.clone();
        let post_id = self.post_id(channel, ts);
        let user = self.actor(&message, at);
        let mut event = new_event(&post_id, EventKind::Post, at_us, &team, channel, &user);
        event.insert("post".into(), Value::from(post_id.as_str()));
        if let Some(thread_ts) = message.get("thread_ts").and_then(Value::as_str)
            && thread_ts != ts
        {
            event.insert(
                "parent".into(),
                Value::from(self.post_id(channel, thread_ts)),
            );
            message.remove("thread_ts");
        }
        let text = match message.remove("text") {
            Some(Value::String(text)) => text,
            Some(other) => {
                message.insert("text".into(), other);
                String::new()
            }
            None => String::new(),
        };
        let reactions = message.remove("reactions");
        let files = match message.remove("files") {
            Some(Value::Array(files)) => files,
            Some(other) => {
                message.insert("files".into(), other);
                Vec::new()
            }
            None => Vec::new(),
        };
        let edited = message.get("edited").cloned();
        let mut props = props_of(message);
        if let Some(raw) = raw {
            props.insert("raw".into(), raw);
        }
        set_text(&mut event, &mut props, &text);
        if props.contains_key("text_overflow") {
            self.out.report.warning(
                at.clone(),
                "text longer than 64 KiB: the rest is kept in props.text_overflow",
            );
        }
        if !files.is_empty() {
            event.insert(
                "files".into(),
                Value::Array(files.into_iter().map(file_ref).collect()),
            );
        }
        event.insert("props".into(), Value::Object(props));
        self.out.emit(event, at)?;

        if let Some(edited) = edited {
            self.edit(&edited, &post_id, channel, &user, &text, at)?;
        }
        if let Some(reactions) = reactions {
            self.reactions(reactions, &post_id, channel, at_us, at)?;
        }
        Ok(())
    }

    /// The `edited` mark: an `edit` event at the edit's time. A Slack export
    /// keeps only the latest text, so it carries the exported text.
    fn edit(
        &mut self,
        edited: &Value,
        post_id: &str,
        channel: &str,
        author: &str,
        text: &str,
        at: &Location,
    ) -> Result<(), ImportError> {
        let at = at.with_item("edited");
        let Some(edited_ts) = edited.get("ts").and_then(Value::as_str) else {
            self.out
                .report
                .warning(at, "edited without a ts: no edit event");
            return Ok(());
        };
        let Some(edit_at_us) = parse_ts(edited_ts) else {
            self.out.report.warning(
                at,
                format!("edited.ts {edited_ts:?} is not a Slack timestamp: no edit event"),
            );
            return Ok(());
        };
        let editor = match edited.get("user").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => self.user_name(id, &at),
            _ => author.to_owned(),
        };
        let team = self.team.clone();
        let mut event = new_event(
            &format!("{post_id}:edit:{edited_ts}"),
            EventKind::Edit,
            edit_at_us,
            &team,
            channel,
            &editor,
        );
        event.insert("post".into(), Value::from(post_id));
        let mut props = Map::new();
        set_text(&mut event, &mut props, text);
        if !props.is_empty() {
            event.insert("props".into(), Value::Object(props));
        }
        self.out.emit(event, &at)
    }

    /// `reactions: [{name, users, count}]`: one `reaction_add` per user, at
    /// the message's time (exports do not say when a reaction was added).
    fn reactions(
        &mut self,
        reactions: Value,
        post_id: &str,
        channel: &str,
        at_us: i64,
        at: &Location,
    ) -> Result<(), ImportError> {
        let Value::Array(reactions) = reactions else {
            self.out.report.error(
                at.with_item("reactions"),
                "reactions is not an array: not imported",
            );
            return Ok(());
        };
        let team = self.team.clone();
        for reaction in reactions {
            let name = reaction.get("name").and_then(Value::as_str).unwrap_or("");
            let users: Vec<&str> = reaction
                .get("users")
                .and_then(Value::as_array)
                .map(|users| users.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let reaction_at = at.with_item(format!("reaction {name}"));
            if name.is_empty() {
                self.out.report.error(
                    reaction_at,
                    format!("reaction without a name: not imported: {reaction}"),
                );
                continue;
            }
            if let Some(count) = reaction.get("count").and_then(Value::as_u64)
                && count > users.len() as u64
            {
                self.out.report.warning(
                    reaction_at.clone(),
                    format!(
                        "{count} reactions but the export names only {} users: the others cannot be imported",
                        users.len()
                    ),
                );
            }
            for user_id in users {
                let user = self.user_name(user_id, &reaction_at);
                let mut event = new_event(
                    &format!("{post_id}:reaction:{name}:{user_id}"),
                    EventKind::ReactionAdd,
                    at_us,
                    &team,
                    channel,
                    &user,
                );
                event.insert("post".into(), Value::from(post_id));
                event.insert("emoji".into(), Value::from(name));
                let mut props = Map::new();
                props.insert("at_is_message_time".into(), Value::Bool(true));
                event.insert("props".into(), Value::Object(props));
                self.out.emit(event, &reaction_at)?;
            }
        }
        Ok(())
    }
}

/// What stays in `props`: the message minus the fields mapped elsewhere
/// (`type` when it is "message", `subtype` (kept as `source_subtype`),
/// `user`, `ts`).
fn props_of(mut message: Map<String, Value>) -> Map<String, Value> {
    if message.get("type").and_then(Value::as_str) == Some("message") {
        message.remove("type");
    }
    message.remove("user");
    message.remove("ts");
    if let Some(subtype) = message.remove("subtype") {
        message.insert("source_subtype".into(), subtype);
    }
    message
}

/// A Slack file object as an attachment: `name`, `size`, `mimetype` → `mime`,
/// everything else kept beside them. A file without a name or size (hidden,
/// deleted) keeps its id as the name and size 0, marked `size_unknown`.
fn file_ref(file: Value) -> Value {
    let mut file = match file {
        Value::Object(file) => file,
        other => {
            let mut wrapper = Map::new();
            wrapper.insert("name".into(), Value::from("(not a file object)"));
            wrapper.insert("size".into(), Value::from(0));
            wrapper.insert("size_unknown".into(), Value::Bool(true));
            wrapper.insert("raw".into(), other);
            return Value::Object(wrapper);
        }
    };
    let mut mapped = Map::new();
    let name = [file.get("name"), file.get("title"), file.get("id")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|name| !name.is_empty())
        .unwrap_or("(unnamed file)")
        .to_owned();
    if file.get("name").and_then(Value::as_str) == Some(name.as_str()) {
        file.remove("name");
    }
    mapped.insert("name".into(), Value::from(name));
    match file.get("size").and_then(Value::as_u64) {
        Some(size) => {
            file.remove("size");
            mapped.insert("size".into(), Value::from(size));
        }
        None => {
            mapped.insert("size".into(), Value::from(0));
            mapped.insert("size_unknown".into(), Value::Bool(true));
        }
    }
    if let Some(mime) = file.get("mimetype").and_then(Value::as_str)
        && !mime.is_empty()
    {
        mapped.insert("mime".into(), Value::from(mime));
        file.remove("mimetype");
    }
    // Keys the wire format gives a meaning to are renamed rather than reinterpreted.
    for key in ["sha256", "mime", "size_unknown"] {
        if let Some(value) = file.remove(key) {
            mapped.insert(format!("source_{key}"), value);
        }
    }
    for (key, value) in file {
        mapped.entry(key).or_insert(value);
    }
    Value::Object(mapped)
}

/// One element of a JSON array, with where it starts.
struct ArrayItem<'a> {
    raw: &'a RawValue,
    line: u64,
    column: u64,
}

/// Splits a JSON array into its elements without parsing them, each with
/// its line and column. On a syntax error (a truncated file, say), returns
/// the complete elements before it and the error.
fn parse_array(text: &str) -> (Vec<ArrayItem<'_>>, Option<serde_json::Error>) {
    struct Collect<'a, 'de>(&'a mut Vec<&'de RawValue>);
    impl<'de> Visitor<'de> for Collect<'_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                self.0.push(raw);
            }
            Ok(())
        }
    }
    let mut raws = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let error = deserializer
        .deserialize_seq(Collect(&mut raws))
        .and_then(|()| deserializer.end())
        .err();
    // Line and column of each element, counting from the previous one.
    let base = text.as_ptr() as usize;
    let (mut line, mut line_start, mut scanned) = (1u64, 0usize, 0usize);
    let items = raws
        .into_iter()
        .map(|raw| {
            let offset = (raw.get().as_ptr() as usize).saturating_sub(base);
            for (i, byte) in text.as_bytes()[scanned..offset].iter().enumerate() {
                if *byte == b'\n' {
                    line += 1;
                    line_start = scanned + i + 1;
                }
            }
            scanned = offset;
            let column = text[line_start..offset].chars().count() as u64 + 1;
            ArrayItem { raw, line, column }
        })
        .collect();
    (items, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_is_read_exactly_to_the_microsecond() {
        assert_eq!(parse_ts("1704164645.123456"), Some(1_704_164_645_123_456));
        assert_eq!(parse_ts("1704164645.1"), Some(1_704_164_645_100_000));
        assert_eq!(parse_ts("1704164645"), Some(1_704_164_645_000_000));
        assert_eq!(parse_ts("1704164645.1234567"), Some(1_704_164_645_123_456));
        for bad in ["", ".5", "17e9", "-1.0", "1704164645.12a", "abc"] {
            assert_eq!(parse_ts(bad), None, "{bad}");
        }
    }

    #[test]
    fn array_elements_carry_their_line_and_column() {
        let text = "[\n  {\"a\": 1},\n  {\"b\": [1,\n 2]}, {\"c\": \"é\"}\n]";
        let (items, error) = parse_array(text);
        assert!(error.is_none());
        let places: Vec<(u64, u64)> = items.iter().map(|i| (i.line, i.column)).collect();
        assert_eq!(places, [(2, 3), (3, 3), (4, 7)]);
    }

    #[test]
    fn a_truncated_array_keeps_the_complete_elements_before_the_cut() {
        let (items, error) = parse_array("[{\"a\": 1}, {\"b\": 2}, {\"c\": ");
        assert_eq!(items.len(), 2);
        let error = error.expect("truncated");
        assert_eq!(error.classify(), serde_json::error::Category::Eof);
        let (items, error) = parse_array("{\"not\": \"an array\"}");
        assert!(items.is_empty());
        assert!(error.is_some());
    }

    #[test]
    fn day_files_are_recognised_by_name() {
        assert!(is_day_file("2024-01-02.json"));
        assert!(!is_day_file("2024-1-02.json"));
        assert!(!is_day_file("canvas.json"));
    }

    #[test]
    fn the_root_is_the_top_level_or_one_folder() {
        assert_eq!(
            find_root(["channels.json", "general/2024-01-02.json"].into_iter()),
            Some(String::new())
        );
        assert_eq!(
            find_root(["Acme Slack export/users.json"].into_iter()),
            Some("Acme Slack export/".to_owned())
        );
        assert_eq!(
            find_root(["a/users.json", "b/users.json"].into_iter()),
            None
        );
        assert_eq!(find_root(["import.jsonl"].into_iter()), None);
    }

    #[test]
    fn files_keep_every_field() {
        let file = file_ref(serde_json::json!({
            "id": "F01", "name": "memo.pdf", "title": "Memo", "mimetype": "application/pdf",
            "size": 48213, "url_private": "https://files.example/F01"
        }));
        assert_eq!(
            file,
            serde_json::json!({
                "name": "memo.pdf", "size": 48213, "mime": "application/pdf",
                "id": "F01", "title": "Memo", "url_private": "https://files.example/F01"
            })
        );
        let hidden = file_ref(serde_json::json!({"id": "F02", "mode": "hidden_by_limit"}));
        assert_eq!(hidden["name"], "F02");
        assert_eq!(hidden["size_unknown"], true);
        assert_eq!(hidden["id"], "F02");
    }
}
