//! The CSV writer: `events.csv`, one row per event (every kind, every
//! version), RFC 4180 (CRLF line ends, fields quoted only when needed),
//! UTF-8.
//!
//! # Column sets
//!
//! The columns come from a template, `csv-mattermost.toml`: the one in the
//! package's template directory when it exists, else the one built into
//! the binary (`templates/csv-mattermost.toml`). The default set is
//! Mattermost's compliance export (so tooling written for it reads
//! holdfast's file) followed by holdfast's own columns. A template lists
//! `[[column]]`s in order, each a header `name` and a `field` key from the
//! fixed list below; an unknown key (field key or TOML key) is an
//! [`ExportError::Template`] naming it and its line.
//!
//! | field key | Mattermost column | holds |
//! |---|---|---|
//! | `post_creation_time` | Post Creation Time | epoch ms (floor of `at`): a `post`'s own `at`; for `edit`, `delete`, `reaction_*`, `file` the `at` of the post's `post` event when this export holds it earlier in the channel, else empty; channel and member events: their `at` |
//! | `post_update_time` | Post Update Time | epoch ms of the event's `at`, every row |
//! | `post_update_type` | Post Update Type | `edit` `EditedNewMsg`, `delete` `Deleted`, `reaction_add`/`reaction_remove` `UpdatedNoMsgChange`, anything else empty |
//! | `team_id`, `team_name` | Team Id, Team Name | `team` |
//! | `team_display_name` | Team Display Name | prop `team_display_name` |
//! | `channel_id`, `channel_name` | Channel Id, Channel Name | `channel` |
//! | `channel_display_name` | Channel Display Name | prop `channel_display_name`, else the latest `props.display_name` of a `channel_create`/`channel_rename` seen in this channel so far (the event itself included) |
//! | `channel_type` | Channel Type | prop `channel_type` |
//! | `user_id`, `username` | User Id, Username | `user` |
//! | `user_email` | User Email | prop `user_email` |
//! | `post_id` | Post Id | `post` (empty for channel and member events, which name none) |
//! | `edited_by_post_id` | Edited By Post Id | prop `edited_by_post_id` |
//! | `replied_to_post_id` | Replied to Post Id | `parent` |
//! | `post_message` | Post Message | `text`, verbatim (empty when the event has none) |
//! | `post_type` | Post Type | prop `type`, else by kind: `file` `attachment`, `channel_create` `system_channel_created` (Mattermost has no such post), `channel_rename` `system_displayname_change`, `channel_archive` `system_channel_deleted`, `member_join` `system_join_channel`, `member_leave` `system_leave_channel`, others empty |
//! | `user_type` | User Type | prop `user_type` (Mattermost: `user` or `bot`) |
//! | `previews_post_id` | Previews Post Id | prop `previews_post_id`, else `props.props.previewed_post` (a Mattermost post's own props, as the importer keeps them) |
//! | `event_kind` | | the wire kind, e.g. `reaction_add` |
//! | `event_id` | | `id` |
//! | `version` | | the version of the post's text as seen in this export's stream: `1` for a `post`, `2`, `3`, ... for its edits; `>=N` for an edit whose `post` event is not in this channel of the export (or was forgotten, see below): it is at least version N; empty for other kinds |
//! | `reactions` | | `+emoji` for `reaction_add`, `-emoji` for `reaction_remove` |
//! | `attachments` | | `files`: `name (size bytes)`, joined by `; ` |
//! | `event_time` | | `at` as RFC 3339 UTC with microseconds, e.g. `2026-03-02T09:00:00.000250Z` |
//! | `seq` | | the store's sequence number |
//! | `props` | | `props` as compact JSON (empty when there are none); not in the default set |
//!
//! "prop `k`" is `props.mattermost.k`, else `props.k`, when it is a string;
//! else the cell is empty. holdfast only has the team, channel and user
//! strings of the source, so those fill both the Id and the Name columns.
//! No `EditedOriginalMsg` rows are written: every version already has its
//! own row, written as it happened (the `post`, then each edit).
//!
//! Versions and creation times need a per-channel map post → (version,
//! creation time). It is bounded: two generations of half of
//! [`MAX_TRACKED_POSTS`] posts each; when both are full the older one is
//! forgotten (edits of its posts then show `>=N` and no creation time) and
//! a warning says so at the end of the channel. It is cleared at the end of
//! every channel.
//!
//! # Spreadsheet formulas
//!
//! Cells are verbatim by default: the file parses back to exactly the
//! archived data, as evidence must. A cell beginning with `=`, `+`, `-`,
//! `@`, TAB or CR may run as a formula when opened in a spreadsheet; a
//! template with `escape_formulas = true` prefixes such cells with `'`
//! (which then is part of the cell for any other reader). `bom = true`
//! writes a UTF-8 byte order mark first (older Excel needs it).
//!
//! Streams: one row is formatted and written at a time through a large
//! buffer (reused scratch buffers, no per-row allocation beyond the post
//! map's key); nothing of a channel is kept but that map. Never drops or
//! reorders an event, and never changes a cell's data unless the template
//! asks for formula escaping.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike, Utc};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use crate::event::{Event, EventKind};

use super::{ChannelInfo, ExportError, ExportEvent, FormatWriter, PackageInfo, Warning, Warnings};

/// The file this writer produces, relative to the package directory.
pub const FILE_NAME: &str = "events.csv";

/// The template file the writer reads from the template directory.
pub const TEMPLATE_FILE: &str = "csv-mattermost.toml";

/// The default column set, built into the binary.
const BUILTIN_TEMPLATE: &str = include_str!("../../templates/csv-mattermost.toml");

/// How the built-in template is named in messages.
const BUILTIN_TEMPLATE_NAME: &str = "csv-mattermost.toml (built in)";

/// The only template format version.
const TEMPLATE_VERSION: i64 = 1;

/// Most posts a channel's version map holds (in two generations of half).
pub const MAX_TRACKED_POSTS: usize = 200_000;

/// Size of the buffer between the CSV encoder and the file.
const FILE_BUFFER_BYTES: usize = 1024 * 1024;

/// Size of the CSV encoder's own buffer.
const CSV_BUFFER_BYTES: usize = 64 * 1024;

/// What a column is filled from. The keys are a fixed list; see the module
/// documentation for what each holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CsvField {
    PostCreationTime,
    PostUpdateTime,
    PostUpdateType,
    TeamId,
    TeamName,
    TeamDisplayName,
    ChannelId,
    ChannelName,
    ChannelDisplayName,
    ChannelType,
    UserId,
    UserEmail,
    Username,
    PostId,
    EditedByPostId,
    RepliedToPostId,
    PostMessage,
    PostType,
    UserType,
    PreviewsPostId,
    EventKind,
    EventId,
    Version,
    Reactions,
    Attachments,
    EventTime,
    Seq,
    Props,
}

impl CsvField {
    /// Every field, in the order of the default column set (then `props`).
    pub const ALL: [CsvField; 28] = [
        CsvField::PostCreationTime,
        CsvField::PostUpdateTime,
        CsvField::PostUpdateType,
        CsvField::TeamId,
        CsvField::TeamName,
        CsvField::TeamDisplayName,
        CsvField::ChannelId,
        CsvField::ChannelName,
        CsvField::ChannelDisplayName,
        CsvField::ChannelType,
        CsvField::UserId,
        CsvField::UserEmail,
        CsvField::Username,
        CsvField::PostId,
        CsvField::EditedByPostId,
        CsvField::RepliedToPostId,
        CsvField::PostMessage,
        CsvField::PostType,
        CsvField::UserType,
        CsvField::PreviewsPostId,
        CsvField::EventKind,
        CsvField::EventId,
        CsvField::Version,
        CsvField::Reactions,
        CsvField::Attachments,
        CsvField::EventTime,
        CsvField::Seq,
        CsvField::Props,
    ];

    /// The key templates use, e.g. `post_creation_time`.
    pub fn as_str(self) -> &'static str {
        match self {
            CsvField::PostCreationTime => "post_creation_time",
            CsvField::PostUpdateTime => "post_update_time",
            CsvField::PostUpdateType => "post_update_type",
            CsvField::TeamId => "team_id",
            CsvField::TeamName => "team_name",
            CsvField::TeamDisplayName => "team_display_name",
            CsvField::ChannelId => "channel_id",
            CsvField::ChannelName => "channel_name",
            CsvField::ChannelDisplayName => "channel_display_name",
            CsvField::ChannelType => "channel_type",
            CsvField::UserId => "user_id",
            CsvField::UserEmail => "user_email",
            CsvField::Username => "username",
            CsvField::PostId => "post_id",
            CsvField::EditedByPostId => "edited_by_post_id",
            CsvField::RepliedToPostId => "replied_to_post_id",
            CsvField::PostMessage => "post_message",
            CsvField::PostType => "post_type",
            CsvField::UserType => "user_type",
            CsvField::PreviewsPostId => "previews_post_id",
            CsvField::EventKind => "event_kind",
            CsvField::EventId => "event_id",
            CsvField::Version => "version",
            CsvField::Reactions => "reactions",
            CsvField::Attachments => "attachments",
            CsvField::EventTime => "event_time",
            CsvField::Seq => "seq",
            CsvField::Props => "props",
        }
    }

    /// Parses a template's field key; `None` for anything else.
    pub fn parse(key: &str) -> Option<CsvField> {
        CsvField::ALL
            .into_iter()
            .find(|field| field.as_str() == key)
    }

    /// Whether filling this field needs the channel's post map.
    fn needs_post_map(self) -> bool {
        matches!(self, CsvField::PostCreationTime | CsvField::Version)
    }
}

/// One column: its header and what fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvColumn {
    pub name: String,
    pub field: CsvField,
}

/// A column set, read from a template file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvTemplate {
    /// In order; never empty, names unique.
    pub columns: Vec<CsvColumn>,
    /// Prefix formula-like cells with `'` (see the module documentation).
    pub escape_formulas: bool,
    /// Write a UTF-8 byte order mark first.
    pub bom: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    version: Spanned<i64>,
    #[serde(default)]
    escape_formulas: bool,
    #[serde(default)]
    bom: bool,
    #[serde(default)]
    column: Vec<Spanned<RawColumn>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: Spanned<String>,
    field: Spanned<String>,
}

impl CsvTemplate {
    /// The default column set built into the binary.
    pub fn builtin() -> CsvTemplate {
        CsvTemplate::parse(BUILTIN_TEMPLATE, BUILTIN_TEMPLATE_NAME)
            .expect("the built-in template is valid (checked by a test)")
    }

    /// The template of `template_dir` when it has one, else the built-in.
    pub fn load(template_dir: Option<&Path>) -> Result<CsvTemplate, ExportError> {
        let Some(template_dir) = template_dir else {
            return Ok(CsvTemplate::builtin());
        };
        let path = template_dir.join(TEMPLATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|error| ExportError::Template {
                    file: path.display().to_string(),
                    message: format!("invalid UTF-8 at byte {}", error.utf8_error().valid_up_to()),
                })?;
                CsvTemplate::parse(&text, &path.display().to_string())
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(CsvTemplate::builtin())
            }
            Err(error) => Err(ExportError::io(&path, error)),
        }
    }

    /// Parses and checks a template's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<CsvTemplate, ExportError> {
        let invalid = |message: String| ExportError::Template {
            file: file.to_owned(),
            message,
        };
        let raw: RawTemplate = toml::from_str(text).map_err(|error| {
            let message = error.message().trim_end().to_owned();
            invalid(match error.span() {
                Some(span) => format!("{}: {message}", place(text, span.start)),
                None => message,
            })
        })?;
        if *raw.version.get_ref() != TEMPLATE_VERSION {
            return Err(invalid(format!(
                "{}: unsupported version {}; this holdfast reads version {TEMPLATE_VERSION}",
                place(text, raw.version.span().start),
                raw.version.get_ref()
            )));
        }
        if raw.column.is_empty() {
            return Err(invalid(
                "no [[column]]: a column set needs at least one column".to_owned(),
            ));
        }
        let mut columns: Vec<CsvColumn> = Vec::with_capacity(raw.column.len());
        let mut name_places: Vec<usize> = Vec::with_capacity(raw.column.len());
        for column in raw.column {
            let column = column.into_inner();
            let name_at = column.name.span().start;
            let name = column.name.into_inner();
            if name.is_empty() {
                return Err(invalid(format!(
                    "{}: column name must not be empty",
                    place(text, name_at)
                )));
            }
            if let Some(first) = columns.iter().position(|seen| seen.name == name) {
                return Err(invalid(format!(
                    "{}: column name {name:?} appears twice (first at {})",
                    place(text, name_at),
                    place(text, name_places[first])
                )));
            }
            let key = column.field.get_ref();
            let Some(field) = CsvField::parse(key) else {
                return Err(invalid(format!(
                    "{}: unknown field key {key:?} in column {name:?}; expected one of {}",
                    place(text, column.field.span().start),
                    CsvField::ALL.map(CsvField::as_str).join(", ")
                )));
            };
            columns.push(CsvColumn { name, field });
            name_places.push(name_at);
        }
        Ok(CsvTemplate {
            columns,
            escape_formulas: raw.escape_formulas,
            bom: raw.bom,
        })
    }
}

/// `line L, column C` of a byte offset in `text`.
fn place(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    format!("line {line}, column {column}")
}

/// Writes `events.csv`.
pub struct CsvWriter {
    /// The file's full path, for errors.
    path: PathBuf,
    csv: ::csv::Writer<BufWriter<File>>,
    fields: Vec<CsvField>,
    escape_formulas: bool,
    /// Whether any column needs the post map (else it is not kept).
    track_posts: bool,
    channel: ChannelState,
    /// Reused buffer for formatted cells.
    scratch: Vec<u8>,
    /// Reused buffer for escaped cells.
    escaped: Vec<u8>,
}

/// What the writer remembers of the current channel.
#[derive(Default)]
struct ChannelState {
    team: String,
    channel: String,
    /// The latest display name given by a channel event.
    display_name: String,
    posts: PostMap,
}

impl CsvWriter {
    /// Opens `events.csv` in `package_dir` with the template of
    /// `info.template_dir` (or the built-in one) and writes the header.
    pub fn create(package_dir: &Path, info: &PackageInfo) -> Result<CsvWriter, ExportError> {
        let template = CsvTemplate::load(info.template_dir.as_deref())?;
        CsvWriter::with_template(package_dir, &template)
    }

    /// Opens `events.csv` in `package_dir` with `template` and writes the
    /// header.
    pub fn with_template(
        package_dir: &Path,
        template: &CsvTemplate,
    ) -> Result<CsvWriter, ExportError> {
        let path = package_dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| ExportError::io(&path, error))?;
        let mut buffered = BufWriter::with_capacity(FILE_BUFFER_BYTES, file);
        if template.bom {
            buffered
                .write_all("\u{feff}".as_bytes())
                .map_err(|error| ExportError::io(&path, error))?;
        }
        let csv = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::CRLF)
            .quote_style(::csv::QuoteStyle::Necessary)
            .buffer_capacity(CSV_BUFFER_BYTES)
            .from_writer(buffered);
        let fields: Vec<CsvField> = template.columns.iter().map(|column| column.field).collect();
        let mut writer = CsvWriter {
            track_posts: fields.iter().any(|field| field.needs_post_map()),
            path,
            csv,
            fields,
            escape_formulas: template.escape_formulas,
            channel: ChannelState::default(),
            scratch: Vec::with_capacity(256),
            escaped: Vec::with_capacity(256),
        };
        for column in &template.columns {
            write_cell(
                &mut writer.csv,
                writer.escape_formulas,
                column.name.as_bytes(),
                &mut writer.escaped,
            )
            .map_err(|error| csv_error(&writer.path, error))?;
        }
        writer
            .csv
            .write_record(None::<&[u8]>)
            .map_err(|error| csv_error(&writer.path, error))?;
        Ok(writer)
    }

    fn write_row(&mut self, seq: u64, event: &Event) -> Result<(), ::csv::Error> {
        let CsvWriter {
            csv,
            fields,
            escape_formulas,
            track_posts,
            channel,
            scratch,
            escaped,
            ..
        } = self;
        let at_ms = event.at_us.div_euclid(1000);

        if matches!(
            event.kind,
            EventKind::ChannelCreate | EventKind::ChannelRename
        ) && let Some(name) = channel_display_name(&event.props)
        {
            name.clone_into(&mut channel.display_name);
        }
        let (created_ms, version) = if *track_posts {
            post_facts(&mut channel.posts, event, at_ms)
        } else {
            (None, None)
        };

        for field in fields.iter() {
            scratch.clear();
            let cell: &[u8] = match field {
                CsvField::PostCreationTime => match created_ms {
                    Some(ms) => {
                        push_u64(scratch, ms.unsigned_abs());
                        scratch
                    }
                    None => b"",
                },
                CsvField::PostUpdateTime => {
                    push_u64(scratch, at_ms.unsigned_abs());
                    scratch
                }
                CsvField::PostUpdateType => update_type(event.kind).as_bytes(),
                CsvField::TeamId | CsvField::TeamName => event.team.as_bytes(),
                CsvField::TeamDisplayName => prop_str(&event.props, "team_display_name")
                    .unwrap_or("")
                    .as_bytes(),
                CsvField::ChannelId | CsvField::ChannelName => event.channel.as_bytes(),
                CsvField::ChannelDisplayName => prop_str(&event.props, "channel_display_name")
                    .unwrap_or(&channel.display_name)
                    .as_bytes(),
                CsvField::ChannelType => prop_str(&event.props, "channel_type")
                    .unwrap_or("")
                    .as_bytes(),
                CsvField::UserId | CsvField::Username => event.user.as_bytes(),
                CsvField::UserEmail => prop_str(&event.props, "user_email")
                    .unwrap_or("")
                    .as_bytes(),
                CsvField::PostId => event.post.as_deref().unwrap_or("").as_bytes(),
                CsvField::EditedByPostId => prop_str(&event.props, "edited_by_post_id")
                    .unwrap_or("")
                    .as_bytes(),
                CsvField::RepliedToPostId => event.parent.as_deref().unwrap_or("").as_bytes(),
                CsvField::PostMessage => event.text.as_deref().unwrap_or("").as_bytes(),
                CsvField::PostType => prop_str(&event.props, "type")
                    .unwrap_or_else(|| default_post_type(event.kind))
                    .as_bytes(),
                CsvField::UserType => prop_str(&event.props, "user_type").unwrap_or("").as_bytes(),
                CsvField::PreviewsPostId => previews_post_id(&event.props).unwrap_or("").as_bytes(),
                CsvField::EventKind => event.kind.as_str().as_bytes(),
                CsvField::EventId => event.id.as_bytes(),
                CsvField::Version => match version {
                    Some(PostVersion { number, exact }) => {
                        if !exact {
                            scratch.extend_from_slice(b">=");
                        }
                        push_u64(scratch, u64::from(number));
                        scratch
                    }
                    None => b"",
                },
                CsvField::Reactions => {
                    let sign: &[u8] = match event.kind {
                        EventKind::ReactionAdd => b"+",
                        EventKind::ReactionRemove => b"-",
                        _ => b"",
                    };
                    if !sign.is_empty() {
                        scratch.extend_from_slice(sign);
                        scratch.extend_from_slice(event.emoji.as_deref().unwrap_or("").as_bytes());
                    }
                    scratch
                }
                CsvField::Attachments => {
                    for (file_idx, file) in event.files.iter().enumerate() {
                        if file_idx > 0 {
                            scratch.extend_from_slice(b"; ");
                        }
                        scratch.extend_from_slice(file.name.as_bytes());
                        scratch.extend_from_slice(b" (");
                        push_u64(scratch, file.size);
                        scratch.extend_from_slice(b" bytes)");
                    }
                    scratch
                }
                CsvField::EventTime => {
                    push_rfc3339_micros(scratch, event.at_us);
                    scratch
                }
                CsvField::Seq => {
                    push_u64(scratch, seq);
                    scratch
                }
                CsvField::Props => {
                    if !event.props.is_empty() {
                        serde_json::to_writer(&mut *scratch, &event.props)
                            .expect("a JSON map always serializes: all keys are strings");
                    }
                    scratch
                }
            };
            write_cell(csv, *escape_formulas, cell, escaped)?;
        }
        csv.write_record(None::<&[u8]>)
    }
}

impl FormatWriter for CsvWriter {
    fn begin_channel(&mut self, channel: &ChannelInfo) -> Result<(), ExportError> {
        channel.team.clone_into(&mut self.channel.team);
        channel.channel.clone_into(&mut self.channel.channel);
        self.channel.display_name.clear();
        self.channel.posts.clear();
        Ok(())
    }

    fn write(&mut self, event: &ExportEvent, _warnings: &mut Warnings) -> Result<(), ExportError> {
        self.write_row(event.seq, &event.event)
            .map_err(|error| csv_error(&self.path, error))
    }

    fn end_channel(&mut self, warnings: &mut Warnings) -> Result<(), ExportError> {
        let forgotten = self.channel.posts.forgotten();
        if forgotten > 0 {
            warnings.push(Warning {
                file: FILE_NAME.to_owned(),
                event_id: None,
                code: "csv_posts_forgotten".to_owned(),
                message: format!(
                    "channel {}/{} has more posts than the {MAX_TRACKED_POSTS} the CSV writer \
                     tracks: {forgotten} were forgotten, so later edits of them show their \
                     version as a lower bound (>=N) and no post creation time",
                    self.channel.team, self.channel.channel
                ),
            });
        }
        self.channel.posts.clear();
        Ok(())
    }

    fn finish(self: Box<Self>, _warnings: &mut Warnings) -> Result<Vec<PathBuf>, ExportError> {
        let CsvWriter { path, csv, .. } = *self;
        let buffered = csv
            .into_inner()
            .map_err(|error| ExportError::io(&path, error.into_error()))?;
        let file = buffered
            .into_inner()
            .map_err(|error| ExportError::io(&path, error.into_error()))?;
        file.sync_all()
            .map_err(|error| ExportError::io(&path, error))?;
        Ok(vec![PathBuf::from(FILE_NAME)])
    }
}

/// A `csv` error as an export error: I/O errors keep their source.
fn csv_error(path: &Path, error: ::csv::Error) -> ExportError {
    let message = error.to_string();
    match error.into_kind() {
        ::csv::ErrorKind::Io(source) => ExportError::io(path, source),
        _ => ExportError::Format {
            format: "csv",
            message,
        },
    }
}

/// Writes one cell, with the `'` prefix when asked for and it is needed.
fn write_cell(
    csv: &mut ::csv::Writer<BufWriter<File>>,
    escape_formulas: bool,
    cell: &[u8],
    escaped: &mut Vec<u8>,
) -> Result<(), ::csv::Error> {
    if escape_formulas && is_formula_risk(cell) {
        escaped.clear();
        escaped.push(b'\'');
        escaped.extend_from_slice(cell);
        csv.write_field(&escaped[..])
    } else {
        csv.write_field(cell)
    }
}

/// Whether a spreadsheet may take the cell for a formula.
fn is_formula_risk(cell: &[u8]) -> bool {
    matches!(
        cell.first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

fn update_type(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Edit => "EditedNewMsg",
        EventKind::Delete => "Deleted",
        EventKind::ReactionAdd | EventKind::ReactionRemove => "UpdatedNoMsgChange",
        EventKind::Post
        | EventKind::File
        | EventKind::ChannelCreate
        | EventKind::ChannelRename
        | EventKind::ChannelArchive
        | EventKind::MemberJoin
        | EventKind::MemberLeave => "",
    }
}

fn default_post_type(kind: EventKind) -> &'static str {
    match kind {
        EventKind::File => "attachment",
        EventKind::ChannelCreate => "system_channel_created",
        EventKind::ChannelRename => "system_displayname_change",
        EventKind::ChannelArchive => "system_channel_deleted",
        EventKind::MemberJoin => "system_join_channel",
        EventKind::MemberLeave => "system_leave_channel",
        EventKind::Post
        | EventKind::Edit
        | EventKind::Delete
        | EventKind::ReactionAdd
        | EventKind::ReactionRemove => "",
    }
}

/// `props.mattermost.<key>`, else `props.<key>`, when it is a string.
fn prop_str<'a>(props: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    if props.is_empty() {
        return None;
    }
    props
        .get("mattermost")
        .and_then(|mattermost| mattermost.get(key))
        .and_then(Value::as_str)
        .or_else(|| props.get(key).and_then(Value::as_str))
}

/// The display name a channel event gives its channel.
fn channel_display_name(props: &Map<String, Value>) -> Option<&str> {
    prop_str(props, "channel_display_name").or_else(|| prop_str(props, "display_name"))
}

fn previews_post_id(props: &Map<String, Value>) -> Option<&str> {
    prop_str(props, "previews_post_id").or_else(|| {
        props
            .get("props")
            .and_then(|post_props| post_props.get("previewed_post"))
            .and_then(Value::as_str)
    })
}

/// The creation time of the event's post and the version of its text, as
/// far as this channel's stream tells; updates the map.
fn post_facts(
    posts: &mut PostMap,
    event: &Event,
    at_ms: i64,
) -> (Option<i64>, Option<PostVersion>) {
    let post = event.post.as_deref();
    match (event.kind, post) {
        (EventKind::Post, Some(post)) => {
            posts.record_post(post, at_ms);
            (
                Some(at_ms),
                Some(PostVersion {
                    number: 1,
                    exact: true,
                }),
            )
        }
        (EventKind::Edit, Some(post)) => {
            let state = posts.record_edit(post);
            (
                state.created_ms,
                Some(PostVersion {
                    number: state.version,
                    exact: state.created_ms.is_some(),
                }),
            )
        }
        (
            EventKind::Delete
            | EventKind::ReactionAdd
            | EventKind::ReactionRemove
            | EventKind::File,
            Some(post),
        ) => (posts.get(post).and_then(|state| state.created_ms), None),
        (
            EventKind::ChannelCreate
            | EventKind::ChannelRename
            | EventKind::ChannelArchive
            | EventKind::MemberJoin
            | EventKind::MemberLeave,
            _,
        ) => (Some(at_ms), None),
        // Validation makes every post kind name its post.
        (_, None) => (None, None),
    }
}

/// The version cell of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PostVersion {
    number: u32,
    /// `false`: the post's `post` event was not seen, `number` is a lower
    /// bound.
    exact: bool,
}

/// What the map keeps of one post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PostState {
    /// The latest version seen (1: the post itself).
    version: u32,
    /// The post's creation time, epoch ms, when its `post` event was seen.
    created_ms: Option<i64>,
}

/// post → [`PostState`] for one channel, bounded: two generations of at most
/// `generation_capacity` posts each. A post found in the older generation
/// moves to the newer; when the newer is full, the older is forgotten and
/// the newer becomes the older.
struct PostMap {
    current: FxHashMap<Box<str>, PostState>,
    previous: FxHashMap<Box<str>, PostState>,
    generation_capacity: usize,
    /// Posts forgotten since the last `clear`.
    forgotten: u64,
}

impl Default for PostMap {
    fn default() -> PostMap {
        PostMap::with_generation_capacity(MAX_TRACKED_POSTS / 2)
    }
}

impl PostMap {
    fn with_generation_capacity(generation_capacity: usize) -> PostMap {
        PostMap {
            current: FxHashMap::default(),
            previous: FxHashMap::default(),
            generation_capacity: generation_capacity.max(1),
            forgotten: 0,
        }
    }

    fn clear(&mut self) {
        self.current.clear();
        self.previous.clear();
        self.forgotten = 0;
    }

    fn forgotten(&self) -> u64 {
        self.forgotten
    }

    fn insert(&mut self, post: Box<str>, state: PostState) {
        if self.current.len() >= self.generation_capacity {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.forgotten += self.current.len() as u64;
            self.current.clear();
        }
        self.current.insert(post, state);
    }

    /// The post's state, moved to the newer generation when found.
    fn get(&mut self, post: &str) -> Option<PostState> {
        if let Some(state) = self.current.get(post) {
            return Some(*state);
        }
        let (post, state) = self.previous.remove_entry(post)?;
        self.insert(post, state);
        Some(state)
    }

    fn record_post(&mut self, post: &str, created_ms: i64) {
        let state = PostState {
            version: 1,
            created_ms: Some(created_ms),
        };
        if let Some(known) = self.current.get_mut(post) {
            *known = state;
        } else {
            self.previous.remove(post);
            self.insert(post.into(), state);
        }
    }

    /// Counts one more version of `post`; returns its state after the edit.
    fn record_edit(&mut self, post: &str) -> PostState {
        match self.get(post) {
            Some(mut state) => {
                state.version = state.version.saturating_add(1);
                if let Some(known) = self.current.get_mut(post) {
                    *known = state;
                }
                state
            }
            None => {
                let state = PostState {
                    version: 2,
                    created_ms: None,
                };
                self.insert(post.into(), state);
                state
            }
        }
    }
}

/// Appends `value` in decimal.
fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends `value` with at least `width` digits.
fn push_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut n_digits = 1;
    let mut rest = value;
    while rest >= 10 {
        rest /= 10;
        n_digits += 1;
    }
    for _ in n_digits..width {
        out.push(b'0');
    }
    push_u64(out, value);
}

/// Appends epoch microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn push_rfc3339_micros(out: &mut Vec<u8>, at_us: i64) {
    let Some(at) = DateTime::<Utc>::from_timestamp_micros(at_us) else {
        // Out of chrono's range; validation keeps such events out.
        push_u64(out, at_us.unsigned_abs());
        return;
    };
    push_padded(out, u64::from(at.year().unsigned_abs()), 4);
    out.push(b'-');
    push_padded(out, u64::from(at.month()), 2);
    out.push(b'-');
    push_padded(out, u64::from(at.day()), 2);
    out.push(b'T');
    push_padded(out, u64::from(at.hour()), 2);
    out.push(b':');
    push_padded(out, u64::from(at.minute()), 2);
    out.push(b':');
    push_padded(out, u64::from(at.second()), 2);
    out.push(b'.');
    push_padded(out, at_us.rem_euclid(1_000_000).unsigned_abs(), 6);
    out.push(b'Z');
}

#[cfg(test)]
pub(crate) mod tests {
    use std::process::Command;

    use chrono::SecondsFormat;
    use serde_json::json;

    use super::*;
    use crate::event::{MAX_AT_US, format_at};

    const CORPUS: &str = include_str!("../../tests/fixtures/export/corpus.ndjson");
    const MINIMAL_TEMPLATE: &str = include_str!("../../templates/csv-minimal.toml");

    /// The fixture corpus as the export job hands it over: channels sorted
    /// by (team, channel), events by (`at`, seq); seq is the line number.
    pub(crate) fn corpus_by_channel() -> Vec<(ChannelInfo, Vec<ExportEvent>)> {
        let mut events: Vec<ExportEvent> = CORPUS
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(line_idx, line)| ExportEvent {
                seq: line_idx as u64 + 1,
                event: Event::from_json_bytes(line.as_bytes()).expect("the fixture is valid"),
            })
            .collect();
        events.sort_by(|a, b| {
            (&a.event.team, &a.event.channel, a.event.at_us, a.seq).cmp(&(
                &b.event.team,
                &b.event.channel,
                b.event.at_us,
                b.seq,
            ))
        });
        let mut channels: Vec<(ChannelInfo, Vec<ExportEvent>)> = Vec::new();
        for event in events {
            match channels.last_mut() {
                Some((info, channel_events))
                    if info.team == event.event.team && info.channel == event.event.channel =>
                {
                    info.events += 1;
                    channel_events.push(event);
                }
                _ => channels.push((
                    ChannelInfo {
                        team: event.event.team.clone(),
                        channel: event.event.channel.clone(),
                        events: 1,
                    },
                    vec![event],
                )),
            }
        }
        channels
    }

    /// The events of a corpus in package order.
    pub(crate) fn package_order(channels: &[(ChannelInfo, Vec<ExportEvent>)]) -> Vec<&ExportEvent> {
        channels.iter().flat_map(|(_, events)| events).collect()
    }

    pub(crate) fn package_info(template_dir: Option<PathBuf>) -> PackageInfo {
        PackageInfo {
            export_id: "exp-000001".to_owned(),
            matter: "Müller v. Enron".to_owned(),
            selection: "all".to_owned(),
            requested_by: "test".to_owned(),
            created_at_us: 1_772_500_000_000_000,
            channels: corpus_by_channel()
                .into_iter()
                .map(|(info, _)| info)
                .collect(),
            total_events: 23,
            bates: None,
            template_dir,
        }
    }

    /// Drives a writer as the export job does.
    pub(crate) fn run(
        mut writer: Box<dyn FormatWriter>,
        channels: &[(ChannelInfo, Vec<ExportEvent>)],
    ) -> (Vec<PathBuf>, Warnings) {
        let mut warnings = Warnings::default();
        for (info, events) in channels {
            writer.begin_channel(info).expect("begin");
            for event in events {
                writer.write(event, &mut warnings).expect("write");
            }
            writer.end_channel(&mut warnings).expect("end");
        }
        let files = writer.finish(&mut warnings).expect("finish");
        (files, warnings)
    }

    fn write_corpus(template: &CsvTemplate) -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = CsvWriter::with_template(dir.path(), template).expect("create");
        let (files, warnings) = run(Box::new(writer), &corpus_by_channel());
        assert_eq!(files, [PathBuf::from("events.csv")]);
        assert!(warnings.is_empty(), "{:?}", warnings.items());
        let bytes = std::fs::read(dir.path().join("events.csv")).expect("read back");
        (dir, bytes)
    }

    fn read_with_csv_crate(bytes: &[u8]) -> Vec<Vec<String>> {
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes)
            .records()
            .map(|record| {
                record
                    .expect("a valid record")
                    .iter()
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    fn read_with_python(path: &Path) -> Vec<Vec<String>> {
        let script = "import csv, json, sys\n\
                      with open(sys.argv[1], newline='', encoding='utf-8') as f:\n    \
                      rows = list(csv.reader(f, strict=True))\n\
                      print(json.dumps(rows))\n";
        let output = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(path)
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("python printed JSON")
    }

    /// The rows of a file, by header name.
    struct Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    }

    impl Table {
        fn new(mut records: Vec<Vec<String>>) -> Table {
            assert!(!records.is_empty(), "no header");
            let header = records.remove(0);
            Table {
                header,
                rows: records,
            }
        }

        fn cell<'a>(&self, row: &'a [String], column: &str) -> &'a str {
            let idx = self
                .header
                .iter()
                .position(|name| name == column)
                .unwrap_or_else(|| panic!("no column {column:?}"));
            &row[idx]
        }

        fn row(&self, event_id: &str) -> &[String] {
            self.rows
                .iter()
                .find(|row| self.cell(row, "Event Id") == event_id)
                .unwrap_or_else(|| panic!("no row for {event_id}"))
        }

        fn get(&self, event_id: &str, column: &str) -> &str {
            self.cell(self.row(event_id), column)
        }
    }

    fn ms(rfc3339: &str) -> String {
        let at = DateTime::parse_from_rfc3339(rfc3339).expect("a time");
        at.timestamp_millis().to_string()
    }

    /// Every row equals its source event in the columns that carry it.
    fn assert_rows_match_events(table: &Table, events: &[&ExportEvent]) {
        let template = CsvTemplate::builtin();
        let names: Vec<&str> = template
            .columns
            .iter()
            .map(|column| column.name.as_str())
            .collect();
        assert_eq!(table.header, names);
        assert_eq!(table.rows.len(), events.len());
        for (row, ExportEvent { seq, event }) in table.rows.iter().zip(events) {
            let cell = |column: &str| table.cell(row, column);
            assert_eq!(cell("Event Id"), event.id);
            assert_eq!(cell("Event Kind"), event.kind.as_str(), "{}", event.id);
            assert_eq!(cell("Seq"), seq.to_string());
            assert_eq!(cell("Post Message"), event.text.as_deref().unwrap_or(""));
            assert_eq!(cell("Post Id"), event.post.as_deref().unwrap_or(""));
            assert_eq!(
                cell("Replied to Post Id"),
                event.parent.as_deref().unwrap_or("")
            );
            for column in ["Team Id", "Team Name"] {
                assert_eq!(cell(column), event.team);
            }
            for column in ["Channel Id", "Channel Name"] {
                assert_eq!(cell(column), event.channel);
            }
            for column in ["User Id", "Username"] {
                assert_eq!(cell(column), event.user);
            }
            assert_eq!(cell("Post Update Time"), (event.at_us / 1000).to_string());
            let event_time = DateTime::parse_from_rfc3339(cell("Event Time")).expect("RFC 3339");
            assert_eq!(event_time.timestamp_micros(), event.at_us);
            assert!(cell("Event Time").ends_with('Z'));
        }
    }

    #[test]
    fn the_builtin_template_is_mattermosts_column_set_then_holdfasts() {
        let template = CsvTemplate::builtin();
        let names: Vec<&str> = template
            .columns
            .iter()
            .map(|column| column.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Post Creation Time",
                "Post Update Time",
                "Post Update Type",
                "Team Id",
                "Team Name",
                "Team Display Name",
                "Channel Id",
                "Channel Name",
                "Channel Display Name",
                "Channel Type",
                "User Id",
                "User Email",
                "Username",
                "Post Id",
                "Edited By Post Id",
                "Replied to Post Id",
                "Post Message",
                "Post Type",
                "User Type",
                "Previews Post Id",
                "Event Kind",
                "Event Id",
                "Version",
                "Reactions",
                "Attachments",
                "Event Time",
                "Seq",
            ]
        );
        let fields: Vec<CsvField> = template.columns.iter().map(|column| column.field).collect();
        assert_eq!(fields, CsvField::ALL[..27]);
        assert!(!template.escape_formulas);
        assert!(!template.bom);

        let minimal = CsvTemplate::parse(MINIMAL_TEMPLATE, "csv-minimal.toml").expect("valid");
        assert_eq!(minimal.columns.len(), 11);
        assert!(minimal.escape_formulas && minimal.bom);
        for field in CsvField::ALL {
            assert_eq!(CsvField::parse(field.as_str()), Some(field));
        }
    }

    #[test]
    fn corpus_reads_back_equal_with_the_csv_crate() {
        let (_dir, bytes) = write_corpus(&CsvTemplate::builtin());
        assert!(
            !bytes.starts_with("\u{feff}".as_bytes()),
            "no BOM by default"
        );
        assert!(bytes.ends_with(b"\r\n"));
        let text = std::str::from_utf8(&bytes).expect("UTF-8");
        // Every record ends with CRLF; the one bare LF is inside a quoted cell.
        assert_eq!(text.matches("\r\n").count(), 1 + 23 + 1);
        let corpus = corpus_by_channel();
        let table = Table::new(read_with_csv_crate(&bytes));
        assert_rows_match_events(&table, &package_order(&corpus));
        assert_eq!(
            table.get("ev-008", "Post Message"),
            "=HYPERLINK(\"http://evil.example\",\"click\") is not a formula here\nsecond line\r\nthird line, with a comma"
        );
    }

    #[test]
    fn corpus_reads_back_equal_with_python() {
        let (dir, _bytes) = write_corpus(&CsvTemplate::builtin());
        let corpus = corpus_by_channel();
        let table = Table::new(read_with_python(&dir.path().join("events.csv")));
        assert_rows_match_events(&table, &package_order(&corpus));
        assert!(
            table
                .get("ev-014", "Post Message")
                .contains("한국어 and emoji 🚀")
        );
        assert!(table.get("ev-010", "Post Message").starts_with("Третье"));
        assert!(table.get("ev-005", "Post Message").ends_with("& \"notes\""));
    }

    #[test]
    fn kinds_map_to_mattermost_update_and_post_types() {
        let (_dir, bytes) = write_corpus(&CsvTemplate::builtin());
        let table = Table::new(read_with_csv_crate(&bytes));
        let post_p1 = ms("2026-03-02T09:00:00Z");

        // A post: created at its own time, version 1.
        assert_eq!(table.get("ev-003", "Post Update Type"), "");
        assert_eq!(table.get("ev-003", "Post Creation Time"), post_p1);
        assert_eq!(table.get("ev-003", "Version"), "1");
        // Edits: the new text, the post's creation time, the next version.
        assert_eq!(table.get("ev-007", "Post Update Type"), "EditedNewMsg");
        assert_eq!(
            table.get("ev-007", "Post Creation Time"),
            ms("2026-03-02T09:05:00Z")
        );
        assert_eq!(
            table.get("ev-007", "Post Update Time"),
            ms("2026-03-02T09:07:00Z")
        );
        assert_eq!(table.get("ev-007", "Version"), "2");
        assert_eq!(table.get("ev-018", "Version"), "1");
        assert_eq!(table.get("ev-020", "Version"), "2");
        assert_eq!(table.get("ev-021", "Version"), "3");
        assert_eq!(table.get("ev-021", "Post Creation Time"), post_p1);
        // Delete.
        assert_eq!(table.get("ev-011", "Post Update Type"), "Deleted");
        assert_eq!(table.get("ev-011", "Post Id"), "p-3");
        assert_eq!(
            table.get("ev-011", "Post Creation Time"),
            ms("2026-03-02T09:10:00Z")
        );
        assert_eq!(table.get("ev-011", "Version"), "");
        // Reactions.
        assert_eq!(
            table.get("ev-006", "Post Update Type"),
            "UpdatedNoMsgChange"
        );
        assert_eq!(table.get("ev-006", "Reactions"), "+thumbsup");
        assert_eq!(table.get("ev-012", "Reactions"), "+white_check_mark");
        assert_eq!(
            table.get("ev-013", "Post Update Type"),
            "UpdatedNoMsgChange"
        );
        assert_eq!(table.get("ev-013", "Reactions"), "-white_check_mark");
        assert_eq!(table.get("ev-003", "Reactions"), "");
        // Files.
        assert_eq!(
            table.get("ev-004", "Attachments"),
            "settlement-draft-v3.docx (48213 bytes)"
        );
        assert_eq!(table.get("ev-004", "Post Type"), "attachment");
        assert_eq!(table.get("ev-004", "Post Creation Time"), post_p1);
        assert_eq!(
            table.get("ev-022", "Attachments"),
            "positions.xlsx (1024 bytes); Überblick Q1.pdf (2048 bytes)"
        );
        assert_eq!(table.get("ev-022", "Post Creation Time"), "", "t-3 unseen");
        // Channel and member events.
        assert_eq!(table.get("ev-001", "Post Type"), "system_channel_created");
        assert_eq!(table.get("ev-001", "Post Id"), "");
        assert_eq!(
            table.get("ev-001", "Post Creation Time"),
            ms("2026-03-02T08:59:00Z")
        );
        assert_eq!(table.get("ev-002", "Post Type"), "system_join_channel");
        assert_eq!(
            table.get("ev-016", "Post Type"),
            "system_displayname_change"
        );
        assert_eq!(table.get("ev-017", "Post Type"), "system_leave_channel");
        // Display names follow the channel's create and rename, per channel.
        for (event_id, display_name) in [
            ("ev-001", "Case 4711 – Müller v. Enron"),
            ("ev-015", "Case 4711 – Müller v. Enron"),
            ("ev-016", "Case 4711 (privileged)"),
            ("ev-017", "Case 4711 (privileged)"),
            ("ev-018", ""),
        ] {
            assert_eq!(
                table.get(event_id, "Channel Display Name"),
                display_name,
                "{event_id}"
            );
        }
        // Microseconds: floor to ms in Mattermost's columns, kept in Event Time.
        assert_eq!(table.get("ev-019", "Post Creation Time"), post_p1);
        assert_eq!(
            table.get("ev-019", "Event Time"),
            "2026-03-02T09:00:00.000250Z"
        );
        assert_eq!(
            table.get("ev-018", "Event Time"),
            "2026-03-02T09:00:00.000000Z"
        );
        // props.mattermost.type is the post type.
        assert_eq!(table.get("ev-023", "Post Type"), "");
        // Nothing invented.
        for row in &table.rows {
            for column in [
                "Team Display Name",
                "Channel Type",
                "User Email",
                "User Type",
            ] {
                assert_eq!(table.cell(row, column), "");
            }
        }
    }

    #[test]
    fn identical_timestamps_are_all_exported_in_seq_order() {
        let (_dir, bytes) = write_corpus(&CsvTemplate::builtin());
        let table = Table::new(read_with_csv_crate(&bytes));
        let same_second = ms("2026-03-02T09:10:00Z");
        let ids: Vec<&str> = table
            .rows
            .iter()
            .filter(|row| table.cell(row, "Post Update Time") == same_second)
            .map(|row| table.cell(row, "Event Id"))
            .collect();
        assert_eq!(ids, ["ev-008", "ev-009", "ev-010"]);
    }

    #[test]
    fn golden_header_and_first_rows() {
        let (_dir, bytes) = write_corpus(&CsvTemplate::builtin());
        let text = std::str::from_utf8(&bytes).expect("UTF-8");
        let first: String = text.split_inclusive("\r\n").take(4).collect();
        let expected = "Post Creation Time,Post Update Time,Post Update Type,Team Id,Team Name,\
Team Display Name,Channel Id,Channel Name,Channel Display Name,Channel Type,User Id,User Email,\
Username,Post Id,Edited By Post Id,Replied to Post Id,Post Message,Post Type,User Type,\
Previews Post Id,Event Kind,Event Id,Version,Reactions,Attachments,Event Time,Seq\r\n\
1772441940000,1772441940000,,legal,legal,,case-4711,case-4711,Case 4711 – Müller v. Enron,,\
kay.mann,,kay.mann,,,,,system_channel_created,,,channel_create,ev-001,,,,\
2026-03-02T08:59:00.000000Z,1\r\n\
1772441970000,1772441970000,,legal,legal,,case-4711,case-4711,Case 4711 – Müller v. Enron,,\
sara.shackleton,,sara.shackleton,,,,,system_join_channel,,,member_join,ev-002,,,,\
2026-03-02T08:59:30.000000Z,2\r\n\
1772442000000,1772442000000,,legal,legal,,case-4711,case-4711,Case 4711 – Müller v. Enron,,\
kay.mann,,kay.mann,p-1,,,Draft settlement for Müller attached; please review by Friday.,,,,\
post,ev-003,1,,,2026-03-02T09:00:00.000000Z,3\r\n";
        assert_eq!(first, expected);
    }

    #[test]
    fn escape_formulas_prefixes_risky_cells_and_nothing_else() {
        let mut template = CsvTemplate::builtin();
        template.escape_formulas = true;
        let (_dir, bytes) = write_corpus(&template);
        let table = Table::new(read_with_csv_crate(&bytes));
        let hyperlink = corpus_by_channel()
            .into_iter()
            .flat_map(|(_, events)| events)
            .find(|event| event.event.id == "ev-008")
            .and_then(|event| event.event.text)
            .expect("ev-008 has text");
        assert_eq!(table.get("ev-008", "Post Message"), format!("'{hyperlink}"));
        assert_eq!(table.get("ev-006", "Reactions"), "'+thumbsup");
        assert_eq!(table.get("ev-013", "Reactions"), "'-white_check_mark");
        assert_eq!(
            table.get("ev-009", "Post Message"),
            "Same second as the message above: both must be exported."
        );
        assert_eq!(
            table.get("ev-018", "Post Message"),
            "Cal-27 at 42.10, moving size after the close."
        );

        for risky in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(is_formula_risk(risky.as_bytes()), "{risky:?}");
        }
        for safe in ["", "1", "a=b", " =1", "'=1", "kay.mann"] {
            assert!(!is_formula_risk(safe.as_bytes()), "{safe:?}");
        }
    }

    #[test]
    fn bom_is_written_only_when_asked() {
        let mut template = CsvTemplate::builtin();
        template.bom = true;
        let (_dir, bytes) = write_corpus(&template);
        let rest = bytes
            .strip_prefix("\u{feff}".as_bytes())
            .expect("starts with a BOM");
        assert!(rest.starts_with(b"Post Creation Time,"));
    }

    #[test]
    fn the_template_directory_overrides_the_builtin_set() {
        let corpus = corpus_by_channel();

        let templates = tempfile::tempdir().expect("temp dir");
        std::fs::write(templates.path().join(TEMPLATE_FILE), MINIMAL_TEMPLATE).expect("write");
        let package = tempfile::tempdir().expect("temp dir");
        let info = package_info(Some(templates.path().to_path_buf()));
        let writer = CsvWriter::create(package.path(), &info).expect("create");
        run(Box::new(writer), &corpus);
        let bytes = std::fs::read(package.path().join(FILE_NAME)).expect("read");
        let bytes = bytes
            .strip_prefix("\u{feff}".as_bytes())
            .expect("the minimal set asks for a BOM");
        let table = Table::new(read_with_csv_crate(bytes));
        assert_eq!(
            table.header,
            [
                "Time",
                "Team",
                "Channel",
                "User",
                "Kind",
                "Post",
                "Version",
                "Message",
                "Reactions",
                "Attachments",
                "Event Id"
            ]
        );
        assert_eq!(table.rows.len(), 23);
        assert_eq!(table.get("ev-021", "Version"), "3");
        assert!(table.get("ev-008", "Message").starts_with("'=HYPERLINK"));

        // A template directory without the file: the built-in set.
        let empty = tempfile::tempdir().expect("temp dir");
        let package = tempfile::tempdir().expect("temp dir");
        let info = package_info(Some(empty.path().to_path_buf()));
        let writer = CsvWriter::create(package.path(), &info).expect("create");
        run(Box::new(writer), &corpus);
        let bytes = std::fs::read(package.path().join(FILE_NAME)).expect("read");
        assert!(bytes.starts_with(b"Post Creation Time,Post Update Time,"));

        // A bad one is an error naming its path.
        std::fs::write(
            templates.path().join(TEMPLATE_FILE),
            "version = 1\n[[column]]\nname = \"X\"\nfield = \"nope\"\n",
        )
        .expect("write");
        let package = tempfile::tempdir().expect("temp dir");
        let info = package_info(Some(templates.path().to_path_buf()));
        let Err(ExportError::Template { file, message }) = CsvWriter::create(package.path(), &info)
        else {
            panic!("expected a template error");
        };
        assert!(file.ends_with("csv-mattermost.toml"), "{file}");
        assert!(message.contains("\"nope\""), "{message}");
        assert!(
            !package.path().join(FILE_NAME).exists(),
            "no file is created for a bad template"
        );
    }

    fn template_error(text: &str) -> String {
        match CsvTemplate::parse(text, "bad.toml") {
            Err(ExportError::Template { file, message }) => {
                assert_eq!(file, "bad.toml");
                message
            }
            other => panic!("expected a template error, got {other:?}"),
        }
    }

    #[test]
    fn bad_templates_are_errors_naming_the_key_and_line() {
        let message = template_error(
            "version = 1\n\n[[column]]\nname = \"Id\"\nfield = \"event_id\"\n\n\
             [[column]]\nname = \"Text\"\nfield = \"post_text\"\n",
        );
        assert!(message.contains("\"post_text\""), "{message}");
        assert!(message.starts_with("line 9, column 9:"), "{message}");
        assert!(
            message.contains("post_message"),
            "lists the keys: {message}"
        );

        let message = template_error(
            "version = 1\nescape_formula = true\n[[column]]\nname = \"Id\"\nfield = \"event_id\"\n",
        );
        assert!(message.contains("escape_formula"), "{message}");
        assert!(message.starts_with("line 2"), "{message}");

        let message =
            template_error("version = 1\n[[column]]\nname = \"Id\"\nfeild = \"event_id\"\n");
        assert!(message.contains("feild"), "{message}");
        assert!(message.starts_with("line 4"), "{message}");

        let message =
            template_error("version = 2\n[[column]]\nname = \"Id\"\nfield = \"event_id\"\n");
        assert!(message.contains("unsupported version 2"), "{message}");

        let message = template_error("[[column]]\nname = \"Id\"\nfield = \"event_id\"\n");
        assert!(message.contains("version"), "{message}");

        let message = template_error("version = 1\n");
        assert!(message.contains("at least one column"), "{message}");

        let message = template_error(
            "version = 1\n[[column]]\nname = \"Id\"\nfield = \"event_id\"\n\
             [[column]]\nname = \"Id\"\nfield = \"seq\"\n",
        );
        assert!(
            message.contains("appears twice (first at line 3"),
            "{message}"
        );

        let message =
            template_error("version = 1\n[[column]]\nname = \"\"\nfield = \"event_id\"\n");
        assert!(message.contains("must not be empty"), "{message}");
    }

    fn event(value: serde_json::Value) -> Event {
        Event::from_json(value).expect("a valid event")
    }

    fn write_events(writer: &mut CsvWriter, events: Vec<Event>, warnings: &mut Warnings) {
        for (event_idx, event) in events.into_iter().enumerate() {
            let event = ExportEvent {
                seq: event_idx as u64 + 1,
                event,
            };
            writer.write(&event, warnings).expect("write");
        }
    }

    #[test]
    fn edits_of_unseen_or_forgotten_posts_show_a_lower_bound() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut writer =
            CsvWriter::with_template(dir.path(), &CsvTemplate::builtin()).expect("create");
        let info = ChannelInfo {
            team: "t".to_owned(),
            channel: "c".to_owned(),
            events: 7,
        };
        writer.begin_channel(&info).expect("begin");
        writer.channel.posts = PostMap::with_generation_capacity(1);
        let base = json!({"kind": "post", "at": 1000, "team": "t", "channel": "c", "user": "u"});
        let make = |id: &str, kind: &str, post: &str| {
            let mut value = base.clone();
            value["id"] = json!(id);
            value["kind"] = json!(kind);
            value["post"] = json!(post);
            if kind != "delete" {
                value["text"] = json!(format!("{id} text"));
            }
            event(value)
        };
        let mut warnings = Warnings::default();
        write_events(
            &mut writer,
            vec![
                make("e1", "edit", "never-posted"),
                make("e2", "edit", "never-posted"),
                make("e3", "post", "a"),
                make("e4", "post", "b"),
                make("e5", "post", "c"),
                make("e6", "edit", "a"),
                make("e7", "edit", "c"),
            ],
            &mut warnings,
        );
        writer.end_channel(&mut warnings).expect("end");
        Box::new(writer).finish(&mut warnings).expect("finish");
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).expect("read");
        let table = Table::new(read_with_csv_crate(&bytes));
        assert_eq!(table.get("e1", "Version"), ">=2");
        assert_eq!(table.get("e1", "Post Creation Time"), "");
        assert_eq!(table.get("e2", "Version"), ">=3");
        assert_eq!(table.get("e6", "Version"), ">=2", "a was forgotten");
        assert_eq!(table.get("e7", "Version"), "2", "c is still known");
        assert_eq!(table.get("e7", "Post Creation Time"), "1000");
        assert_eq!(warnings.len(), 1);
        let warning = &warnings.items()[0];
        assert_eq!(warning.code, "csv_posts_forgotten");
        assert!(
            warning.message.contains("channel t/c"),
            "{}",
            warning.message
        );
    }

    #[test]
    fn the_post_map_keeps_at_most_two_generations() {
        let mut posts = PostMap::with_generation_capacity(2);
        for (idx, post) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            posts.record_post(post, idx as i64);
            assert!(posts.current.len() + posts.previous.len() <= 4);
        }
        // a and b were forgotten when e arrived; c and d are the older generation.
        assert_eq!(posts.forgotten(), 2);
        assert_eq!(posts.get("a"), None);
        assert_eq!(posts.get("c").map(|state| state.created_ms), Some(Some(2)));
        // Found in the older generation, c moved to the newer one.
        assert!(posts.current.contains_key("c"));
        assert_eq!(posts.record_edit("c").version, 2);
        assert_eq!(posts.record_edit("c").version, 3);
        posts.record_post("c", 9);
        assert_eq!(
            posts.get("c"),
            Some(PostState {
                version: 1,
                created_ms: Some(9)
            })
        );
        posts.clear();
        assert_eq!(posts.forgotten(), 0);
        assert_eq!(posts.get("d"), None);
    }

    #[test]
    fn props_fill_mattermost_columns_when_present() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut template = CsvTemplate::builtin();
        template.columns.push(CsvColumn {
            name: "Props".to_owned(),
            field: CsvField::Props,
        });
        let mut writer = CsvWriter::with_template(dir.path(), &template).expect("create");
        let mut warnings = Warnings::default();
        write_events(
            &mut writer,
            vec![event(json!({
                "id": "x1", "kind": "post", "at": 5, "team": "t", "channel": "c", "user": "u",
                "post": "p", "text": "hi",
                "props": {
                    "mattermost": {
                        "team_display_name": "Team T",
                        "channel_type": "P",
                        "user_email": "u@example.com",
                        "user_type": "bot",
                        "type": "custom_plugin",
                    },
                    "channel_display_name": "Channel C",
                    "edited_by_post_id": "p2",
                    "props": {"previewed_post": "p0"},
                }
            }))],
            &mut warnings,
        );
        Box::new(writer).finish(&mut warnings).expect("finish");
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).expect("read");
        let table = Table::new(read_with_csv_crate(&bytes));
        for (column, value) in [
            ("Team Display Name", "Team T"),
            ("Channel Display Name", "Channel C"),
            ("Channel Type", "P"),
            ("User Email", "u@example.com"),
            ("User Type", "bot"),
            ("Post Type", "custom_plugin"),
            ("Edited By Post Id", "p2"),
            ("Previews Post Id", "p0"),
            ("Post Creation Time", "5"),
            ("Event Time", "1970-01-01T00:00:00.005000Z"),
        ] {
            assert_eq!(table.get("x1", column), value, "{column}");
        }
        let props: Value = serde_json::from_str(table.get("x1", "Props")).expect("props are JSON");
        assert_eq!(props["mattermost"]["user_type"], json!("bot"));
    }

    #[test]
    fn event_time_matches_chrono_over_the_whole_range() {
        let mut buffer = Vec::new();
        for at_us in [
            0,
            1,
            999_999,
            1_000_000,
            951_782_400_000_000, // 2000-02-29
            1_772_442_000_000_250,
            MAX_AT_US,
        ] {
            buffer.clear();
            push_rfc3339_micros(&mut buffer, at_us);
            let expected = DateTime::<Utc>::from_timestamp_micros(at_us)
                .expect("in range")
                .to_rfc3339_opts(SecondsFormat::Micros, true);
            assert_eq!(std::str::from_utf8(&buffer).expect("ASCII"), expected);
            // The wire form names the same instant.
            let wire = DateTime::parse_from_rfc3339(&format_at(at_us)).expect("RFC 3339");
            assert_eq!(wire.timestamp_micros(), at_us);
        }
        for value in [0, 7, 10, 99, 1000, u64::MAX] {
            buffer.clear();
            push_u64(&mut buffer, value);
            assert_eq!(buffer, value.to_string().as_bytes());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn any_text_reads_back_verbatim(texts in proptest::collection::vec(".{0,40}|[\r\n\",=+ a-z\u{feff}]{0,20}", 1..6)) {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut writer =
                CsvWriter::with_template(dir.path(), &CsvTemplate::builtin()).expect("create");
            let mut warnings = Warnings::default();
            let events: Vec<Event> = texts
                .iter()
                .enumerate()
                .map(|(idx, text)| event(json!({
                    "id": format!("e{idx}"), "kind": "post", "at": 0, "team": "t",
                    "channel": "c", "user": "u", "post": format!("p{idx}"), "text": text,
                })))
                .collect();
            write_events(&mut writer, events, &mut warnings);
            Box::new(writer).finish(&mut warnings).expect("finish");
            let bytes = std::fs::read(dir.path().join(FILE_NAME)).expect("read");
            let table = Table::new(read_with_csv_crate(&bytes));
            proptest::prop_assert_eq!(table.rows.len(), texts.len());
            for (row, text) in table.rows.iter().zip(&texts) {
                proptest::prop_assert_eq!(table.cell(row, "Post Message"), text.as_str());
            }
        }
    }
}
