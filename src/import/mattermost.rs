//! Mattermost bulk export → events.
//!
//! A bulk export (`mmctl export create`, or the server's export job) is a
//! JSONL file, plain or inside a zip with the attachments under `data/`: a
//! `version` line first, then one object a line: `team`, `channel`, `user`
//! (with its team and channel memberships), `post` (with nested `replies`,
//! `reactions` and `attachments`), `direct_channel`, `direct_post`, `emoji`
//! (and `role`, `scheme`, `bot` in some versions).
//!
//! Posts have no ids in a bulk export: a post's id is derived from its team,
//! channel, `create_at`, user and a hash of its message
//! (`mm:{team}:{channel}:{create_at}:{user}:{hash}`), which is stable across
//! re-imports of the same or a later export. Team, channel and user lines
//! carry no time: they are counted in the report and used to check the
//! posts, not stored as events (a channel's `deleted_at` is: as a
//! `channel_archive`).
//!
//! This reader must never hold more than one line in memory (a line is one
//! post with its whole thread), and never stops at a bad line: it reports
//! the line and goes on with the next.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::source::{Container, Entry, looks_like_zip, safe_join};
use super::{
    Format, ImportError, Location, Output, UNKNOWN_USER, has_slack_metadata, new_event, set_text,
    short_hash,
};
use crate::event::{EventKind, MAX_ID_BYTES};

/// The team of direct and group messages, which belong to no team in
/// Mattermost; the parentheses keep it apart from any real team name.
pub const DIRECT_TEAM: &str = "(direct)";

/// Longest line read: one post with its whole thread. Longer lines are
/// reported and skipped.
const MAX_LINE_BYTES: usize = 256 << 20;

/// Longest channel name made from the members of a direct channel; longer
/// ones become `group-{hash}` (the members stay in `props.channel_members`).
const MAX_DIRECT_NAME_BYTES: usize = 64;

/// Where attachments are looked up, to record their size.
pub(crate) enum Attachments {
    /// Paths relative to this folder (the JSONL file's).
    Dir(PathBuf),
    /// Entry name → size, for every file of the zip.
    Zip(HashMap<String, u64>),
}

impl Attachments {
    fn size(&self, path: &str) -> Option<u64> {
        let candidates = [path.to_owned(), format!("data/{path}")];
        match self {
            Attachments::Dir(root) => candidates.iter().find_map(|candidate| {
                let full = safe_join(root, candidate)?;
                std::fs::metadata(full)
                    .ok()
                    .filter(std::fs::Metadata::is_file)
                    .map(|metadata| metadata.len())
            }),
            Attachments::Zip(sizes) => candidates
                .iter()
                .find_map(|candidate| sizes.get(candidate.as_str()).copied()),
        }
    }
}

/// Whether the first non-blank line of the file at `path` is a bulk export
/// `version` line.
pub(crate) fn first_line_is_version(path: &Path) -> io::Result<bool> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        let (n, too_long) = read_line(&mut reader, &mut line, 1 << 20)?;
        if n == 0 || too_long {
            return Ok(false);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Ok(is_version_line(&line));
    }
}

fn is_version_line(line: &[u8]) -> bool {
    serde_json::from_slice::<Value>(trim_bom(line))
        .ok()
        .and_then(|value| {
            value
                .get("type")
                .and_then(Value::as_str)
                .map(|t| t == "version")
        })
        .unwrap_or(false)
}

fn trim_bom(line: &[u8]) -> &[u8] {
    line.strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(line)
}

/// An export opened and recognised.
pub(crate) enum MattermostExport {
    /// A JSONL file on its own.
    Plain {
        path: PathBuf,
        size: u64,
        attachments: Attachments,
    },
    /// A zip or folder with JSONL files at its top level.
    Container {
        container: Container,
        jsonl: Vec<Entry>,
        attachments: Attachments,
    },
}

/// Opens `path` and checks that it is a Mattermost bulk export (naming the
/// other format when it is a Slack one).
pub(crate) fn open(path: &Path) -> Result<MattermostExport, ImportError> {
    let export = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|source| ImportError::io(path, source))?;
    let wrong_format = || ImportError::WrongFormat {
        path: export.clone(),
        expected: Format::Mattermost,
        found: Format::Slack,
    };
    if metadata.is_file() && !looks_like_zip(path)? {
        if !first_line_is_version(path).map_err(|source| ImportError::io(path, source))? {
            if starts_with_array(path) {
                return Err(wrong_format());
            }
            return Err(ImportError::NotAnExport {
                path: export,
                expected: Format::Mattermost,
                detail:
                    "the first line is not a bulk export version line ({\"type\":\"version\",...})"
                        .to_owned(),
            });
        }
        let attachments = Attachments::Dir(
            path.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        );
        return Ok(MattermostExport::Plain {
            path: path.to_path_buf(),
            size: metadata.len(),
            attachments,
        });
    }
    let container = Container::open(path)?;
    let entries = container.entries(0)?;
    let jsonl: Vec<Entry> = entries
        .iter()
        .filter(|entry| entry.name.ends_with(".jsonl") && !entry.name.contains('/'))
        .cloned()
        .collect();
    if jsonl.is_empty() {
        if has_slack_metadata(entries.iter().map(|entry| entry.name.as_str())) {
            return Err(wrong_format());
        }
        return Err(ImportError::NotAnExport {
            path: export,
            expected: Format::Mattermost,
            detail: "no .jsonl file at its top level".to_owned(),
        });
    }
    let attachments = match &container {
        Container::Dir(root) => Attachments::Dir(root.clone()),
        Container::Zip { .. } => Attachments::Zip(
            entries
                .iter()
                .filter(|entry| !entry.name.ends_with(".jsonl"))
                .map(|entry| (entry.name.clone(), entry.size))
                .collect(),
        ),
    };
    Ok(MattermostExport::Container {
        container,
        jsonl,
        attachments,
    })
}

/// Reads a Mattermost bulk export at `path` into `out`.
pub(crate) fn read(path: &Path, out: &mut Output<'_>) -> Result<(), ImportError> {
    let export = path.display().to_string();
    match open(path)? {
        MattermostExport::Plain {
            path,
            size,
            attachments,
        } => {
            let name = path.file_name().map_or_else(
                || export.clone(),
                |name| name.to_string_lossy().into_owned(),
            );
            out.total_bytes(size)?;
            let file = File::open(&path).map_err(|source| ImportError::io(&path, source))?;
            let mut reader = MattermostReader::new(&export, attachments, out);
            reader.read_jsonl(&name, &mut BufReader::with_capacity(1 << 20, file))?;
            reader.finish()
        }
        MattermostExport::Container {
            mut container,
            jsonl,
            attachments,
        } => {
            out.total_bytes(jsonl.iter().map(|entry| entry.size).sum())?;
            let mut reader = MattermostReader::new(&export, attachments, out);
            for entry in &jsonl {
                let result =
                    container.with_reader(entry, |input| reader.read_jsonl(&entry.name, input));
                match result {
                    Ok(outcome) => outcome?,
                    Err(error) => reader.out.report.error(
                        Location::file(&entry.name),
                        format!("not imported: {}", error.0),
                    ),
                }
            }
            reader.finish()
        }
    }
}

/// Whether a file's first non-blank byte opens a JSON array (a Slack file).
fn starts_with_array(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut reader = BufReader::new(file);
    loop {
        let Ok(buffer) = reader.fill_buf() else {
            return false;
        };
        if buffer.is_empty() {
            return false;
        }
        if let Some(byte) = buffer.iter().find(|b| !b.is_ascii_whitespace()) {
            return *byte == b'[';
        }
        let n = buffer.len();
        reader.consume(n);
    }
}

/// Reads one line (up to and including `\n`) into `line`, storing at most
/// `max` bytes of it. Returns the bytes consumed and whether the line was
/// longer than `max` (then `line` holds only its start).
fn read_line(
    reader: &mut dyn BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<(usize, bool)> {
    let (mut consumed, mut too_long) = (0, false);
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if buffer.is_empty() {
            return Ok((consumed, too_long));
        }
        let (take, done) = match buffer.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buffer.len(), false),
        };
        if line.len() + take <= max {
            line.extend_from_slice(&buffer[..take]);
        } else {
            too_long = true;
        }
        reader.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, too_long));
        }
    }
}

/// Where a post lives: a team channel, or a direct channel of some members.
struct Place {
    team: String,
    channel: String,
}

struct MattermostReader<'r, 'o> {
    export: &'r str,
    attachments: Attachments,
    out: &'r mut Output<'o>,
    /// Usernames from `user` lines.
    users: HashSet<String>,
    /// (team, channel) from `channel` lines.
    channels: HashSet<(String, String)>,
    /// Channels already reported as undeclared.
    undeclared: HashSet<(String, String)>,
    attachments_missing: u64,
    /// The JSONL file read first, to name in export-wide warnings.
    first_file: Option<String>,
}

impl<'r, 'o> MattermostReader<'r, 'o> {
    fn new(
        export: &'r str,
        attachments: Attachments,
        out: &'r mut Output<'o>,
    ) -> MattermostReader<'r, 'o> {
        MattermostReader {
            export,
            attachments,
            out,
            users: HashSet::new(),
            channels: HashSet::new(),
            undeclared: HashSet::new(),
            attachments_missing: 0,
            first_file: None,
        }
    }

    fn finish(self) -> Result<(), ImportError> {
        if self.attachments_missing > 0 {
            self.out
                .report
                .directory("attachments_missing", self.attachments_missing);
            let file = self.first_file.as_deref().unwrap_or(self.export);
            self.out.report.warning(
                Location::file(file),
                format!(
                    "{} attachment(s) are not in the export (exported without attachments?): recorded by path with size 0 and size_unknown",
                    self.attachments_missing
                ),
            );
        }
        Ok(())
    }

    /// Every line of one JSONL file.
    fn read_jsonl(&mut self, file: &str, input: &mut dyn BufRead) -> Result<(), ImportError> {
        self.out.report.files_read += 1;
        if self.first_file.is_none() {
            self.first_file = Some(file.to_owned());
        }
        let mut line = Vec::new();
        let mut line_no = 0u64;
        let mut seen_version = false;
        loop {
            line.clear();
            let (consumed, too_long) = match read_line(input, &mut line, MAX_LINE_BYTES) {
                Ok(read) => read,
                Err(error) => {
                    self.out.report.error(
                        Location::line(file, line_no + 1),
                        format!(
                            "{}; the rest of the file was not imported",
                            super::source::describe_read_error(&error)
                        ),
                    );
                    return Ok(());
                }
            };
            if consumed == 0 {
                break;
            }
            line_no += 1;
            self.out.advance(consumed as u64);
            self.out.report.bytes_read += consumed as u64;
            let at = Location::line(file, line_no);
            if too_long {
                self.out.report.error(
                    at,
                    format!("line longer than {MAX_LINE_BYTES} bytes: not imported"),
                );
                continue;
            }
            let text = trim_bom(line.strip_suffix(b"\n").unwrap_or(&line));
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: Value = match serde_json::from_slice(text) {
                Ok(value) => value,
                Err(error) => {
                    if !seen_version {
                        return Err(self.not_an_export(file, line_no, &error.to_string()));
                    }
                    let what = match error.classify() {
                        serde_json::error::Category::Eof => {
                            "truncated JSON (the line ends inside a value)"
                        }
                        _ => "malformed JSON",
                    };
                    self.out.report.error(
                        Location {
                            column: Some(error.column() as u64),
                            ..at
                        },
                        format!("{what}: {error}; this line was not imported"),
                    );
                    continue;
                }
            };
            let line_type = value.get("type").and_then(Value::as_str).unwrap_or("");
            if !seen_version {
                if line_type != "version" {
                    return Err(self.not_an_export(
                        file,
                        line_no,
                        "the first line is not a version line",
                    ));
                }
                seen_version = true;
                if value.get("version").and_then(Value::as_i64) != Some(1) {
                    self.out.report.warning(
                        at,
                        format!(
                            "bulk export version {} (holdfast reads version 1): imported as version 1",
                            value.get("version").unwrap_or(&Value::Null)
                        ),
                    );
                }
                continue;
            }
            self.line(value, &at)?;
        }
        if !seen_version {
            return Err(self.not_an_export(file, line_no, "the file is empty"));
        }
        Ok(())
    }

    fn not_an_export(&self, file: &str, line: u64, detail: &str) -> ImportError {
        ImportError::NotAnExport {
            path: self.export.to_owned(),
            expected: Format::Mattermost,
            detail: format!("{file}: line {line}: {detail}"),
        }
    }

    /// One line after the version line.
    fn line(&mut self, mut value: Value, at: &Location) -> Result<(), ImportError> {
        let line_type = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let object = match value.get_mut(&line_type).map(Value::take) {
            Some(Value::Object(object)) => object,
            _ if line_type.is_empty() => {
                self.out
                    .report
                    .error(at.clone(), "line without a type: not imported");
                return Ok(());
            }
            _ => {
                self.out.report.error(
                    at.clone(),
                    format!("{line_type} line without its {line_type:?} object: not imported"),
                );
                return Ok(());
            }
        };
        match line_type.as_str() {
            "version" => self
                .out
                .report
                .warning(at.clone(), "a second version line: ignored"),
            "team" => {
                self.out.report.directory("teams", 1);
            }
            "channel" => self.channel(object, at)?,
            "user" => self.user(&object),
            "post" => {
                let team = object.get("team").and_then(Value::as_str);
                let channel = object.get("channel").and_then(Value::as_str);
                let (Some(team), Some(channel)) = (team, channel) else {
                    self.out
                        .report
                        .error(at.clone(), "post without a team or channel: not imported");
                    return Ok(());
                };
                let place = Place {
                    team: team.to_owned(),
                    channel: channel.to_owned(),
                };
                self.check_channel(&place, at);
                self.post(object, &place, None, at)?;
            }
            "direct_post" => {
                let members: Vec<String> = object
                    .get("channel_members")
                    .and_then(Value::as_array)
                    .map(|members| {
                        members
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if members.is_empty() {
                    self.out.report.error(
                        at.clone(),
                        "direct post without channel_members: not imported",
                    );
                    return Ok(());
                }
                let place = Place {
                    team: DIRECT_TEAM.to_owned(),
                    channel: direct_channel_name(&members),
                };
                self.post(object, &place, None, at)?;
            }
            "direct_channel" => self.out.report.directory("direct_channels", 1),
            "emoji" => self.out.report.directory("emoji", 1),
            "role" | "scheme" | "bot" => self.out.report.directory(&format!("{line_type}s"), 1),
            other => {
                self.out.report.directory("unknown_lines", 1);
                self.out.report.warning(
                    at.clone(),
                    format!("line type {other:?} is not part of the bulk export format holdfast knows: not imported"),
                );
            }
        }
        Ok(())
    }

    fn channel(
        &mut self,
        mut channel: Map<String, Value>,
        at: &Location,
    ) -> Result<(), ImportError> {
        self.out.report.directory("channels", 1);
        let team = channel
            .get("team")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let name = channel
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (Some(team), Some(name)) = (team, name) else {
            self.out
                .report
                .warning(at.clone(), "channel without a team or name");
            return Ok(());
        };
        self.channels.insert((team.clone(), name.clone()));
        if let Some(display_name) = channel.get("display_name").and_then(Value::as_str) {
            self.out.report.channel_name(&team, &name, display_name);
        }
        let deleted_at = channel.get("deleted_at").and_then(Value::as_i64);
        if let Some(deleted_at) = deleted_at.filter(|at| *at > 0) {
            let id = format!("mm:{team}:{name}:channel_archive:{deleted_at}");
            let mut event = new_event(
                &id,
                EventKind::ChannelArchive,
                deleted_at.saturating_mul(1000),
                &team,
                &name,
                UNKNOWN_USER,
            );
            channel.remove("team");
            channel.remove("name");
            event.insert("props".into(), Value::Object(channel));
            self.out.emit(event, at)?;
        }
        Ok(())
    }

    fn user(&mut self, user: &Map<String, Value>) {
        self.out.report.directory("users", 1);
        if let Some(name) = user.get("username").and_then(Value::as_str) {
            self.users.insert(name.to_owned());
        }
        let memberships: usize = user
            .get("teams")
            .and_then(Value::as_array)
            .map(|teams| {
                teams
                    .iter()
                    .filter_map(|team| team.get("channels").and_then(Value::as_array))
                    .map(Vec::len)
                    .sum()
            })
            .unwrap_or(0);
        self.out
            .report
            .directory("channel_memberships", memberships as u64);
    }

    fn check_channel(&mut self, place: &Place, at: &Location) {
        let key = (place.team.clone(), place.channel.clone());
        if !self.channels.is_empty() && !self.channels.contains(&key) && self.undeclared.insert(key)
        {
            self.out.report.warning(
                at.clone(),
                format!(
                    "channel {:?} of team {:?} has no channel line: its posts are imported under that name",
                    place.channel, place.team
                ),
            );
        }
    }

    /// The username of an actor, checked against the `user` lines.
    fn user_name(&mut self, user: Option<&str>, at: &Location) -> String {
        match user {
            Some(user) if !user.is_empty() => {
                if !self.users.is_empty() && !self.users.contains(user) {
                    self.out.report.unknown_user(user, at);
                }
                user.to_owned()
            }
            _ => {
                self.out
                    .report
                    .warning(at.clone(), format!("no user: filed under {UNKNOWN_USER:?}"));
                UNKNOWN_USER.to_owned()
            }
        }
    }

    /// A post or reply, with its edit, reactions, attachments and (for a
    /// root) replies. `parent` is the root's post id for a reply.
    fn post(
        &mut self,
        mut post: Map<String, Value>,
        place: &Place,
        parent: Option<(&str, &mut HashMap<String, u32>)>,
        at: &Location,
    ) -> Result<(), ImportError> {
        let Some(create_at) = post.get("create_at").and_then(Value::as_i64) else {
            self.out
                .report
                .error(at.clone(), "post without create_at: not imported");
            return Ok(());
        };
        let author = self.user_name(post.get("user").and_then(Value::as_str), at);
        let message = match post.remove("message") {
            Some(Value::String(message)) => message,
            Some(other) => {
                post.insert("message".into(), other);
                String::new()
            }
            None => String::new(),
        };
        let base_id = post_id(&place.team, &place.channel, create_at, &author, &message);
        let (post_id, parent_id) = match parent {
            Some((parent_id, seen)) => {
                // Two identical replies in one thread are two replies.
                let n = seen.entry(base_id.clone()).or_insert(0);
                *n += 1;
                let id = if *n == 1 {
                    base_id
                } else {
                    format!("{base_id}~{n}")
                };
                (id, Some(parent_id.to_owned()))
            }
            None => (base_id, None),
        };
        let at_us = create_at.saturating_mul(1000);
        let replies = post.remove("replies");
        let reactions = post.remove("reactions");
        let attachments = post.remove("attachments");
        for mapped in ["team", "channel", "user", "create_at"] {
            post.remove(mapped);
        }
        let post_type = post
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let source_props = post.get("props").cloned().unwrap_or(Value::Null);
        let prop = |name: &str| source_props.get(name).and_then(Value::as_str);
        let (kind, actor) = match post_type.as_str() {
            "system_join_channel" | "system_join_team" => (EventKind::MemberJoin, author.clone()),
            "system_add_to_channel" => (
                EventKind::MemberJoin,
                prop("addedUsername").unwrap_or(&author).to_owned(),
            ),
            "system_leave_channel" | "system_leave_team" => {
                (EventKind::MemberLeave, author.clone())
            }
            "system_remove_from_channel" => (
                EventKind::MemberLeave,
                prop("removedUsername").unwrap_or(&author).to_owned(),
            ),
            "system_displayname_change" => (EventKind::ChannelRename, author.clone()),
            "system_channel_deleted" => (EventKind::ChannelArchive, author.clone()),
            _ => (EventKind::Post, author.clone()),
        };
        let mut event = new_event(&post_id, kind, at_us, &place.team, &place.channel, &actor);
        let mut props = post;
        if kind == EventKind::Post {
            event.insert("post".into(), Value::from(post_id.as_str()));
            if let Some(parent_id) = &parent_id {
                event.insert("parent".into(), Value::from(parent_id.as_str()));
            }
            set_text(&mut event, &mut props, &message);
            if props.contains_key("text_overflow") {
                self.out.report.warning(
                    at.clone(),
                    "message longer than 64 KiB: the rest is kept in props.text_overflow",
                );
            }
            let files = self.files(attachments, at);
            if !files.is_empty() {
                event.insert("files".into(), Value::Array(files));
            }
        } else {
            // A system message: its text stays in props, with who posted it.
            props.insert("message".into(), Value::from(message.as_str()));
            if actor != author {
                props.insert("posted_by".into(), Value::from(author.as_str()));
            }
            if let Some(attachments) = attachments {
                props.insert("attachments".into(), attachments);
            }
        }
        let edit_at = props.get("edit_at").and_then(Value::as_i64).unwrap_or(0);
        event.insert("props".into(), Value::Object(props));
        self.out.emit(event, at)?;

        if kind == EventKind::Post && edit_at > 0 {
            let mut edit = new_event(
                &format!("{post_id}:edit:{edit_at}"),
                EventKind::Edit,
                edit_at.saturating_mul(1000),
                &place.team,
                &place.channel,
                &author,
            );
            edit.insert("post".into(), Value::from(post_id.as_str()));
            let mut edit_props = Map::new();
            set_text(&mut edit, &mut edit_props, &message);
            if !edit_props.is_empty() {
                edit.insert("props".into(), Value::Object(edit_props));
            }
            self.out.emit(edit, &at.with_item("edit_at"))?;
        }
        if let Some(reactions) = reactions {
            self.reactions(reactions, &post_id, place, at_us, at)?;
        }
        match replies {
            Some(Value::Array(replies)) if parent_id.is_none() => {
                let mut seen = HashMap::new();
                for (index, reply) in replies.into_iter().enumerate() {
                    let reply_at = at.with_item(format!("reply {}", index + 1));
                    match reply {
                        Value::Object(reply) => {
                            self.post(reply, place, Some((&post_id, &mut seen)), &reply_at)?;
                        }
                        _ => self
                            .out
                            .report
                            .error(reply_at, "reply is not a JSON object: not imported"),
                    }
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => self.out.report.error(
                at.with_item("replies"),
                "replies is not an array (or a reply has replies): not imported",
            ),
        }
        Ok(())
    }

    fn reactions(
        &mut self,
        reactions: Value,
        post_id: &str,
        place: &Place,
        post_at_us: i64,
        at: &Location,
    ) -> Result<(), ImportError> {
        let Value::Array(reactions) = reactions else {
            if !reactions.is_null() {
                self.out.report.error(
                    at.with_item("reactions"),
                    "reactions is not an array: not imported",
                );
            }
            return Ok(());
        };
        for reaction in reactions {
            let emoji = reaction
                .get("emoji_name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let reaction_at = at.with_item(format!("reaction {emoji}"));
            if emoji.is_empty() {
                self.out.report.error(
                    reaction_at,
                    format!("reaction without an emoji_name: not imported: {reaction}"),
                );
                continue;
            }
            let user = self.user_name(reaction.get("user").and_then(Value::as_str), &reaction_at);
            let at_us = reaction
                .get("create_at")
                .and_then(Value::as_i64)
                .filter(|at| *at > 0)
                .map_or(post_at_us, |at| at.saturating_mul(1000));
            let mut event = new_event(
                &format!("{post_id}:reaction:{emoji}:{user}"),
                EventKind::ReactionAdd,
                at_us,
                &place.team,
                &place.channel,
                &user,
            );
            event.insert("post".into(), Value::from(post_id));
            event.insert("emoji".into(), Value::from(emoji));
            self.out.emit(event, &reaction_at)?;
        }
        Ok(())
    }

    /// `attachments: [{path}]` as the post's files: the file name, its size
    /// when the export has the file, the path and anything else kept.
    fn files(&mut self, attachments: Option<Value>, at: &Location) -> Vec<Value> {
        let Some(Value::Array(attachments)) = attachments else {
            if let Some(other) = attachments.filter(|value| !value.is_null()) {
                self.out.report.error(
                    at.with_item("attachments"),
                    format!("attachments is not an array: not imported: {other}"),
                );
            }
            return Vec::new();
        };
        attachments
            .into_iter()
            .map(|attachment| {
                let mut file = match attachment {
                    Value::Object(file) => file,
                    other => {
                        let mut file = Map::new();
                        file.insert("raw".into(), other);
                        file
                    }
                };
                let path = file.get("path").and_then(Value::as_str).unwrap_or("");
                let name = path
                    .rsplit('/')
                    .next()
                    .filter(|name| !name.is_empty())
                    .unwrap_or("(unnamed attachment)")
                    .to_owned();
                let size = if path.is_empty() {
                    None
                } else {
                    self.attachments.size(path)
                };
                let mut mapped = Map::new();
                mapped.insert("name".into(), Value::from(name));
                match size {
                    Some(size) => {
                        mapped.insert("size".into(), Value::from(size));
                    }
                    None => {
                        self.attachments_missing += 1;
                        mapped.insert("size".into(), Value::from(0));
                        mapped.insert("size_unknown".into(), Value::Bool(true));
                    }
                }
                for key in ["name", "size", "sha256", "mime", "size_unknown"] {
                    if let Some(value) = file.remove(key) {
                        mapped.insert(format!("source_{key}"), value);
                    }
                }
                mapped.extend(file);
                Value::Object(mapped)
            })
            .collect()
    }
}

/// `mm:{team}:{channel}:{create_at}:{user}:{first 16 hex digits of the
/// message's SHA-256}`; hashed whole when longer than an id may be.
pub(crate) fn post_id(
    team: &str,
    channel: &str,
    create_at: i64,
    user: &str,
    message: &str,
) -> String {
    let id = format!(
        "mm:{team}:{channel}:{create_at}:{user}:{}",
        short_hash(message.as_bytes(), 16)
    );
    if id.len() + 24 <= MAX_ID_BYTES {
        id
    } else {
        format!("mm:h:{}", short_hash(id.as_bytes(), 64))
    }
}

/// The channel of a direct or group message: its members' usernames,
/// sorted, joined by `__`; `group-{hash}` when that would be long.
pub(crate) fn direct_channel_name(members: &[String]) -> String {
    let mut sorted: Vec<&str> = members.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let joined = sorted.join("__");
    if joined.len() <= MAX_DIRECT_NAME_BYTES {
        joined
    } else {
        format!("group-{}", short_hash(joined.as_bytes(), 16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_ids_depend_on_every_part_and_nothing_else() {
        let id = post_id("legal", "town-square", 1_704_164_645_123, "allen-p", "hi");
        assert_eq!(
            id,
            format!(
                "mm:legal:town-square:1704164645123:allen-p:{}",
                short_hash(b"hi", 16)
            )
        );
        assert_ne!(
            id,
            post_id("legal", "town-square", 1_704_164_645_123, "allen-p", "hi!")
        );
        assert_ne!(
            id,
            post_id("legal", "town-square", 1_704_164_645_123, "kean-s", "hi")
        );
        let long = "x".repeat(120);
        let hashed = post_id(&long, &long, 1, "u", "m");
        assert!(hashed.starts_with("mm:h:") && hashed.len() <= MAX_ID_BYTES);
    }

    #[test]
    fn direct_channels_are_named_by_sorted_members() {
        let members = ["zoé".to_owned(), "allen-p".to_owned()];
        assert_eq!(direct_channel_name(&members), "allen-p__zoé");
        let many: Vec<String> = (0..20).map(|i| format!("user-{i:02}")).collect();
        assert!(direct_channel_name(&many).starts_with("group-"));
    }

    #[test]
    fn long_lines_are_cut_and_flagged_but_fully_consumed() {
        let input = format!("{}\nnext\n", "x".repeat(100));
        let mut reader = io::Cursor::new(input.into_bytes());
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut line, 10).expect("read"),
            (101, true)
        );
        line.clear();
        assert_eq!(
            read_line(&mut reader, &mut line, 10).expect("read"),
            (5, false)
        );
        assert_eq!(line, b"next\n");
        line.clear();
        assert_eq!(
            read_line(&mut reader, &mut line, 10).expect("read"),
            (0, false)
        );
    }
}
