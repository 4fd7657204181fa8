//! The event wire format and its validation.
//!
//! This is the contract with the chat system (see `docs/event-format.md` and
//! `docs/event.schema.json`): one JSON object per event, a batch is NDJSON or
//! a JSON array. [`Event::from_json`] turns one object into a validated
//! [`Event`] or returns *every* problem, each naming its field.
//!
//! This module depends on nothing else in holdfast. It must never drop data
//! from the source: unknown top-level fields are kept in `props`, and `props`
//! is kept verbatim.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// Longest accepted `id`, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Longest accepted `team`, `channel`, `user`, `post`, `parent`, `emoji`, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest accepted `text`, in bytes (64 KiB).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Largest accepted event, as its JSON text, in bytes (1 MiB).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Largest event once normalised to its canonical form (what the store
/// encrypts); well below the store's 2 MiB record payload limit.
pub const MAX_CANONICAL_EVENT_BYTES: usize = 3 * 512 * 1024;
/// Earliest accepted `at`: 1970-01-01T00:00:00Z.
pub const MIN_AT_US: i64 = 0;
/// Latest accepted `at`: 9999-12-31T23:59:59.999999Z.
pub const MAX_AT_US: i64 = 253_402_300_799_999_999;

/// What happened in the chat system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Post,
    Edit,
    Delete,
    ReactionAdd,
    ReactionRemove,
    File,
    ChannelCreate,
    ChannelRename,
    ChannelArchive,
    MemberJoin,
    MemberLeave,
}

impl EventKind {
    /// Every kind, in the order of the design document.
    pub const ALL: [EventKind; 11] = [
        EventKind::Post,
        EventKind::Edit,
        EventKind::Delete,
        EventKind::ReactionAdd,
        EventKind::ReactionRemove,
        EventKind::File,
        EventKind::ChannelCreate,
        EventKind::ChannelRename,
        EventKind::ChannelArchive,
        EventKind::MemberJoin,
        EventKind::MemberLeave,
    ];

    /// The wire name, e.g. `reaction_add`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Post => "post",
            EventKind::Edit => "edit",
            EventKind::Delete => "delete",
            EventKind::ReactionAdd => "reaction_add",
            EventKind::ReactionRemove => "reaction_remove",
            EventKind::File => "file",
            EventKind::ChannelCreate => "channel_create",
            EventKind::ChannelRename => "channel_rename",
            EventKind::ChannelArchive => "channel_archive",
            EventKind::MemberJoin => "member_join",
            EventKind::MemberLeave => "member_leave",
        }
    }

    /// Parses a wire name; `None` for anything that is not a kind.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// Whether events of this kind must name the `post` they are about.
    pub fn requires_post(self) -> bool {
        matches!(
            self,
            EventKind::Post
                | EventKind::Edit
                | EventKind::Delete
                | EventKind::ReactionAdd
                | EventKind::ReactionRemove
                | EventKind::File
        )
    }

    /// Whether events of this kind must carry `text`.
    pub fn requires_text(self) -> bool {
        matches!(self, EventKind::Post | EventKind::Edit)
    }

    /// Whether events of this kind must carry `emoji`.
    pub fn requires_emoji(self) -> bool {
        matches!(self, EventKind::ReactionAdd | EventKind::ReactionRemove)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An attachment's metadata (content storage is optional and not done here).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileRef {
    pub name: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Any other field of the attachment object, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One validated chat event.
///
/// Its JSON form ([`Event::to_json_bytes`]) is the wire format with `at`
/// normalised to RFC 3339 UTC; parsing that form again gives the same event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    /// When it happened in the source system, microseconds since the Unix epoch (UTC).
    #[serde(rename = "at", serialize_with = "serialize_at")]
    pub at_us: i64,
    pub team: String,
    pub channel: String,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRef>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub props: Map<String, Value>,
}

/// One problem with one field of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field, as a path: `text`, `files[2].size`, or `(event)` for the whole object.
    pub field: String,
    /// What is wrong with it, lowercase, no trailing period.
    pub problem: String,
}

impl FieldError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Every problem found in one event. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join_problems(.0))]
pub struct EventError(pub Vec<FieldError>);

fn join_problems(problems: &[FieldError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

const KNOWN_FIELDS: [&str; 12] = [
    "id", "kind", "at", "team", "channel", "user", "post", "parent", "text", "emoji", "files",
    "props",
];

impl Event {
    /// Parses one event from its JSON text (one NDJSON line, say).
    ///
    /// Checks the size limit, UTF-8 and JSON syntax, then validates the object.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Event, EventError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(EventError(vec![FieldError::new(
                "(event)",
                format!(
                    "event is {} bytes, more than the limit of {MAX_EVENT_BYTES}",
                    bytes.len()
                ),
            )]));
        }
        let event = Event::from_stored_json_bytes(bytes)?;
        // Normalisation can lengthen an event (`at`, number formats): a large
        // one must still fit a store record once normalised.
        if bytes.len() > MAX_EVENT_BYTES / 4 {
            let canonical = event.to_json_bytes().len();
            if canonical > MAX_CANONICAL_EVENT_BYTES {
                return Err(EventError(vec![FieldError::new(
                    "(event)",
                    format!(
                        "event is {canonical} bytes once normalised, more than the limit of {MAX_CANONICAL_EVENT_BYTES}"
                    ),
                )]));
            }
        }
        Ok(event)
    }

    /// Parses an event in its canonical form, as the store keeps it: the
    /// input size limit was checked at ingest, on the form the source sent.
    pub fn from_stored_json_bytes(bytes: &[u8]) -> Result<Event, EventError> {
        let text = std::str::from_utf8(bytes).map_err(|error| {
            EventError(vec![FieldError::new(
                "(event)",
                format!("invalid UTF-8 at byte {}", error.valid_up_to()),
            )])
        })?;
        let StrictValue(value) = serde_json::from_str(text).map_err(|error| {
            EventError(vec![FieldError::new(
                "(event)",
                format!("malformed JSON: {error}"),
            )])
        })?;
        Event::from_json(value)
    }

    /// Validates one event object, returning every problem with its field.
    pub fn from_json(value: Value) -> Result<Event, EventError> {
        let Value::Object(mut object) = value else {
            return Err(EventError(vec![FieldError::new(
                "(event)",
                format!("expected a JSON object, found {}", json_type(&value)),
            )]));
        };
        let mut problems = Vec::new();

        let id = take_string(&mut object, "id", true, MAX_ID_BYTES, &mut problems);
        let kind_name = take_string(&mut object, "kind", true, MAX_NAME_BYTES, &mut problems);
        let kind = kind_name.as_deref().and_then(|name| {
            let kind = EventKind::parse(name);
            if kind.is_none() {
                problems.push(FieldError::new(
                    "kind",
                    format!(
                        "unknown kind {name:?}; expected one of {}",
                        EventKind::ALL.map(EventKind::as_str).join(", ")
                    ),
                ));
            }
            kind
        });
        let at_us = take_at(&mut object, &mut problems);
        let team = take_string(&mut object, "team", true, MAX_NAME_BYTES, &mut problems);
        let channel = take_string(&mut object, "channel", true, MAX_NAME_BYTES, &mut problems);
        let user = take_string(&mut object, "user", true, MAX_NAME_BYTES, &mut problems);
        let post = take_string(
            &mut object,
            "post",
            kind.is_some_and(EventKind::requires_post),
            MAX_NAME_BYTES,
            &mut problems,
        );
        let parent = take_string(&mut object, "parent", false, MAX_NAME_BYTES, &mut problems);
        let text = take_text(
            &mut object,
            kind.is_some_and(EventKind::requires_text),
            &mut problems,
        );
        let emoji = take_string(
            &mut object,
            "emoji",
            kind.is_some_and(EventKind::requires_emoji),
            MAX_NAME_BYTES,
            &mut problems,
        );
        let files = take_files(&mut object, &mut problems);
        let mut props = match object.remove("props") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(props)) => props,
            Some(other) => {
                problems.push(FieldError::new(
                    "props",
                    format!("expected an object, found {}", json_type(&other)),
                ));
                Map::new()
            }
        };
        // What is left is unknown top-level fields: kept in props.
        for (key, value) in object {
            debug_assert!(!KNOWN_FIELDS.contains(&key.as_str()));
            if props.contains_key(&key) {
                problems.push(FieldError::new(
                    key.clone(),
                    format!(
                        "unknown top-level field {key:?} is also a key of props; it would be lost"
                    ),
                ));
            } else {
                props.insert(key, value);
            }
        }

        match (id, kind, at_us, team, channel, user) {
            (Some(id), Some(kind), Some(at_us), Some(team), Some(channel), Some(user))
                if problems.is_empty() =>
            {
                Ok(Event {
                    id,
                    kind,
                    at_us,
                    team,
                    channel,
                    user,
                    post,
                    parent,
                    text,
                    emoji,
                    files,
                    props,
                })
            }
            _ => {
                debug_assert!(!problems.is_empty(), "a missing field records a problem");
                Err(EventError(problems))
            }
        }
    }

    /// The event's JSON text in the canonical form (`at` as RFC 3339 UTC).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event always serializes: all keys are strings")
    }

    /// `at` as RFC 3339 UTC, with microseconds when they are not zero.
    pub fn at_rfc3339(&self) -> String {
        format_at(self.at_us)
    }

    /// The UTC day of `at`, as `YYYY-MM-DD` (the day part of the key epoch).
    pub fn utc_day(&self) -> String {
        use chrono::Datelike;
        let date = DateTime::<Utc>::from_timestamp_micros(self.at_us)
            .expect("at_us was range-checked at validation")
            .date_naive();
        format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
    }
}

/// A JSON value whose objects have no duplicate keys, at any depth: with
/// duplicates, all but one value would be silently lost.
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Formats epoch microseconds as RFC 3339 UTC (millisecond or microsecond precision).
pub fn format_at(at_us: i64) -> String {
    let Some(at) = DateTime::<Utc>::from_timestamp_micros(at_us) else {
        return at_us.to_string();
    };
    let format = if at_us % 1000 == 0 {
        SecondsFormat::Millis
    } else {
        SecondsFormat::Micros
    };
    at.to_rfc3339_opts(format, true)
}

fn serialize_at<S: serde::Serializer>(at_us: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_at(*at_us))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn take_string(
    object: &mut Map<String, Value>,
    field: &str,
    required: bool,
    max_bytes: usize,
    problems: &mut Vec<FieldError>,
) -> Option<String> {
    match object.remove(field) {
        None | Some(Value::Null) => {
            if required {
                problems.push(FieldError::new(field, "required field is missing"));
            }
            None
        }
        Some(Value::String(value)) => {
            if value.is_empty() {
                problems.push(FieldError::new(field, "must not be empty"));
                None
            } else if value.contains('\0') {
                problems.push(FieldError::new(
                    field,
                    "must not contain NUL (U+0000) characters",
                ));
                None
            } else if value.len() > max_bytes {
                problems.push(FieldError::new(
                    field,
                    format!(
                        "is {} bytes, more than the limit of {max_bytes}",
                        value.len()
                    ),
                ));
                None
            } else {
                Some(value)
            }
        }
        Some(other) => {
            problems.push(FieldError::new(
                field,
                format!("expected a string, found {}", json_type(&other)),
            ));
            None
        }
    }
}

fn take_text(
    object: &mut Map<String, Value>,
    required: bool,
    problems: &mut Vec<FieldError>,
) -> Option<String> {
    match object.remove("text") {
        None | Some(Value::Null) => {
            if required {
                problems.push(FieldError::new("text", "required field is missing"));
            }
            None
        }
        Some(Value::String(text)) if text.len() > MAX_TEXT_BYTES => {
            problems.push(FieldError::new(
                "text",
                format!(
                    "is {} bytes, more than the limit of {MAX_TEXT_BYTES}",
                    text.len()
                ),
            ));
            None
        }
        // An empty text is a real message body (an attachment-only post).
        Some(Value::String(text)) => Some(text),
        Some(other) => {
            problems.push(FieldError::new(
                "text",
                format!("expected a string, found {}", json_type(&other)),
            ));
            None
        }
    }
}

fn take_at(object: &mut Map<String, Value>, problems: &mut Vec<FieldError>) -> Option<i64> {
    let range_problem = || {
        FieldError::new(
            "at",
            "timestamp out of range: must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z",
        )
    };
    match object.remove("at") {
        None | Some(Value::Null) => {
            problems.push(FieldError::new("at", "required field is missing"));
            None
        }
        Some(Value::String(text)) => match DateTime::parse_from_rfc3339(&text) {
            Ok(at) => {
                let at_us = at.timestamp_micros();
                if (MIN_AT_US..=MAX_AT_US).contains(&at_us) {
                    Some(at_us)
                } else {
                    problems.push(range_problem());
                    None
                }
            }
            Err(error) => {
                problems.push(FieldError::new(
                    "at",
                    format!("{text:?} is not an RFC 3339 timestamp ({error})"),
                ));
                None
            }
        },
        Some(Value::Number(number)) => match number.as_i64() {
            Some(at_ms) => match at_ms.checked_mul(1000) {
                Some(at_us) if (MIN_AT_US..=MAX_AT_US).contains(&at_us) => Some(at_us),
                _ => {
                    problems.push(range_problem());
                    None
                }
            },
            None => {
                problems.push(FieldError::new(
                    "at",
                    format!("epoch milliseconds must be an integer, found {number}"),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(FieldError::new(
                "at",
                format!(
                    "expected an RFC 3339 string or integer epoch milliseconds, found {}",
                    json_type(&other)
                ),
            ));
            None
        }
    }
}

fn take_files(object: &mut Map<String, Value>, problems: &mut Vec<FieldError>) -> Vec<FileRef> {
    let files = match object.remove("files") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(files)) => files,
        Some(other) => {
            problems.push(FieldError::new(
                "files",
                format!("expected an array, found {}", json_type(&other)),
            ));
            return Vec::new();
        }
    };
    let mut result = Vec::with_capacity(files.len());
    for (file_idx, file) in files.into_iter().enumerate() {
        let path = format!("files[{file_idx}]");
        let Value::Object(mut file) = file else {
            problems.push(FieldError::new(
                path,
                format!("expected an object, found {}", json_type(&file)),
            ));
            continue;
        };
        let n_problems = problems.len();
        let mut sub = Vec::new();
        let name = take_string(&mut file, "name", true, 4096, &mut sub);
        let mime = take_string(&mut file, "mime", false, MAX_NAME_BYTES, &mut sub);
        let sha256 = take_string(&mut file, "sha256", false, 64, &mut sub);
        if let Some(sha256) = &sha256
            && (sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            sub.push(FieldError::new("sha256", "expected 64 hexadecimal digits"));
        }
        let size = match file.remove("size") {
            None | Some(Value::Null) => {
                sub.push(FieldError::new("size", "required field is missing"));
                None
            }
            Some(Value::Number(size)) => {
                let size = size.as_u64();
                if size.is_none() {
                    sub.push(FieldError::new(
                        "size",
                        "expected a non-negative integer number of bytes",
                    ));
                }
                size
            }
            Some(other) => {
                sub.push(FieldError::new(
                    "size",
                    format!("expected an integer, found {}", json_type(&other)),
                ));
                None
            }
        };
        problems.extend(
            sub.into_iter().map(|problem| {
                FieldError::new(format!("{path}.{}", problem.field), problem.problem)
            }),
        );
        if problems.len() == n_problems
            && let (Some(name), Some(size)) = (name, size)
        {
            result.push(FileRef {
                name,
                size,
                sha256: sha256.map(|sha| sha.to_ascii_lowercase()),
                mime,
                extra: file,
            });
        }
    }
    result
}

/// One entry of a batch: its position and what validation made of it.
#[derive(Debug)]
pub struct BatchEntry {
    /// 0-based position in the batch (NDJSON: the line index, blank lines counted).
    pub index: usize,
    /// 1-based line number for NDJSON bodies, `None` for JSON arrays.
    pub line: Option<usize>,
    /// The entry's `id` when one could be read, for rejection reports.
    pub id: Option<String>,
    pub event: Result<Event, EventError>,
}

/// Why a whole batch could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("empty body: expected NDJSON or a JSON array of events")]
    Empty,
    #[error("body is not a valid JSON array: {0}")]
    MalformedArray(String),
}

/// Splits a batch body into entries: a JSON array when the first non-blank
/// byte is `[`, NDJSON otherwise (blank lines are skipped, `\r\n` accepted).
///
/// Each entry is validated on its own, so one bad line never takes the
/// good lines of the same batch with it.
pub fn parse_batch(body: &[u8]) -> Result<Vec<BatchEntry>, BatchError> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(BatchError::Empty);
    };
    // A single object (pretty-printed, say) is a batch of one.
    if body[first] == b'{'
        && let Ok(raw) = serde_json::from_slice::<&serde_json::value::RawValue>(body)
    {
        let bytes = raw.get().as_bytes();
        return Ok(vec![BatchEntry {
            index: 0,
            line: None,
            id: peek_id(bytes),
            event: Event::from_json_bytes(bytes),
        }]);
    }
    if body[first] == b'[' {
        let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
            .map_err(|error| BatchError::MalformedArray(error.to_string()))?;
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(index, raw)| {
                let bytes = raw.get().as_bytes();
                BatchEntry {
                    index,
                    line: None,
                    id: peek_id(bytes),
                    event: Event::from_json_bytes(bytes),
                }
            })
            .collect());
    }
    Ok(parse_ndjson(body))
}

/// Splits an NDJSON body into entries, one a line; blank lines are skipped.
pub fn parse_ndjson(body: &[u8]) -> Vec<BatchEntry> {
    let mut entries = Vec::new();
    for (index, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        entries.push(BatchEntry {
            index,
            line: Some(index + 1),
            id: peek_id(line),
            event: Event::from_json_bytes(line),
        });
    }
    entries
}

/// Best-effort read of an entry's `id`, for naming a rejected entry.
fn peek_id(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<Value>,
    }
    if bytes.len() > MAX_EVENT_BYTES {
        return None;
    }
    let parsed: IdOnly = serde_json::from_slice(bytes).ok()?;
    match parsed.id? {
        Value::String(id) if id.len() <= MAX_ID_BYTES => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid_post() -> Value {
        json!({
            "id": "ev-1", "kind": "post", "at": "2024-03-01T12:00:00.250+02:00",
            "team": "legal", "channel": "town-square", "user": "allen-p",
            "post": "p-1", "text": "wire transfer to the offshore account"
        })
    }

    #[test]
    fn parses_a_valid_post_and_normalises_at_to_utc() {
        let event = Event::from_json(valid_post()).expect("valid");
        assert_eq!(event.kind, EventKind::Post);
        assert_eq!(event.at_rfc3339(), "2024-03-01T10:00:00.250Z");
        assert_eq!(event.utc_day(), "2024-03-01");
    }

    #[test]
    fn epoch_milliseconds_and_rfc3339_agree() {
        let mut value = valid_post();
        value["at"] = json!(1_709_287_200_250_i64);
        let from_ms = Event::from_json(value).expect("valid");
        let from_text = Event::from_json(valid_post()).expect("valid");
        assert_eq!(from_ms.at_us, from_text.at_us);
    }

    #[test]
    fn microseconds_are_kept() {
        let mut value = valid_post();
        value["at"] = json!("2024-03-01T10:00:00.123456Z");
        let event = Event::from_json(value).expect("valid");
        assert_eq!(event.at_us % 1_000_000, 123_456);
        assert_eq!(event.at_rfc3339(), "2024-03-01T10:00:00.123456Z");
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let error = Event::from_json(json!({"kind": "post", "at": 1.5, "team": 3, "user": ""}))
            .expect_err("invalid");
        let fields: Vec<&str> = error.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["id", "at", "team", "channel", "user", "post", "text"]
        );
    }

    #[test]
    fn unknown_kind_is_named() {
        let mut value = valid_post();
        value["kind"] = json!("shout");
        let error = Event::from_json(value).expect_err("invalid");
        assert_eq!(error.0[0].field, "kind");
        assert!(error.0[0].problem.contains("\"shout\""), "{error}");
    }

    #[test]
    fn kind_specific_fields_are_required() {
        let error = Event::from_json(json!({
            "id": "r", "kind": "reaction_add", "at": 0, "team": "t", "channel": "c", "user": "u"
        }))
        .expect_err("invalid");
        let fields: Vec<&str> = error.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["post", "emoji"]);
        Event::from_json(json!({
            "id": "j", "kind": "member_join", "at": 0, "team": "t", "channel": "c", "user": "u"
        }))
        .expect("a join needs no post");
    }

    #[test]
    fn limits_are_enforced() {
        let mut value = valid_post();
        value["id"] = json!("x".repeat(MAX_ID_BYTES + 1));
        value["text"] = json!("é".repeat(MAX_TEXT_BYTES / 2 + 1));
        let error = Event::from_json(value).expect_err("invalid");
        let fields: Vec<&str> = error.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["id", "text"]);

        let mut value = valid_post();
        value["id"] = json!("x".repeat(MAX_ID_BYTES));
        value["text"] = json!("x".repeat(MAX_TEXT_BYTES));
        Event::from_json(value).expect("exactly at the limits is fine");

        let huge = format!(r#"{{"id":"{}"}}"#, "x".repeat(MAX_EVENT_BYTES));
        let error = Event::from_json_bytes(huge.as_bytes()).expect_err("too big");
        assert!(error.to_string().contains("limit of 1048576"), "{error}");
    }

    #[test]
    fn timestamps_out_of_range_are_refused() {
        for at in [
            json!(-1),
            json!("1969-12-31T23:59:59Z"),
            json!(i64::MAX),
            json!("10000-01-01T00:00:00Z"),
        ] {
            let mut value = valid_post();
            value["at"] = at.clone();
            let error = Event::from_json(value).expect_err("out of range");
            assert_eq!(error.0[0].field, "at", "{at}");
        }
    }

    #[test]
    fn unknown_fields_go_to_props_and_props_are_verbatim() {
        let mut value = valid_post();
        value["is_pinned"] = json!(true);
        value["props"] = json!({"z": 1, "a": {"nested": [1, 2]}});
        let event = Event::from_json(value).expect("valid");
        let keys: Vec<&String> = event.props.keys().collect();
        assert_eq!(keys, ["z", "a", "is_pinned"]);

        let mut value = valid_post();
        value["z"] = json!(2);
        value["props"] = json!({"z": 1});
        let error = Event::from_json(value).expect_err("collision");
        assert_eq!(error.0[0].field, "z");
    }

    #[test]
    fn files_are_validated_with_their_index() {
        let mut value = valid_post();
        value["files"] = json!([
            {"name": "a.pdf", "size": 10, "sha256": "AB".repeat(32), "mime": "application/pdf", "x": 1},
            {"name": "b.pdf", "size": -1, "sha256": "zz"},
            "c.pdf"
        ]);
        let error = Event::from_json(value).expect_err("invalid");
        let fields: Vec<&str> = error.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["files[1].sha256", "files[1].size", "files[2]"]);
    }

    #[test]
    fn canonical_form_round_trips() {
        let mut value = valid_post();
        value["files"] = json!([{"name": "a.pdf", "size": 10, "extra": "kept"}]);
        value["props"] = json!({"k": "v"});
        value["parent"] = json!("p-0");
        let event = Event::from_json(value).expect("valid");
        let again =
            Event::from_json_bytes(&event.to_json_bytes()).expect("canonical form is valid");
        assert_eq!(event, again);
    }

    #[test]
    fn invalid_utf8_and_malformed_json_are_named() {
        let error = Event::from_json_bytes(b"{\"id\":\"\xff\"}").expect_err("bad utf8");
        assert!(
            error.to_string().contains("invalid UTF-8 at byte 7"),
            "{error}"
        );
        let error = Event::from_json_bytes(b"{\"id\":").expect_err("truncated");
        assert!(error.to_string().contains("malformed JSON"), "{error}");
        let error = Event::from_json_bytes(b"[1]").expect_err("not an object");
        assert!(
            error
                .to_string()
                .contains("expected a JSON object, found an array"),
            "{error}"
        );
    }

    #[test]
    fn ndjson_batches_keep_good_lines_and_name_bad_ones() {
        let body = format!(
            "{}\r\n\n{{\"id\":\"x\",\"kind\":\"post\"\n{}",
            valid_post(),
            json!({"id": "j", "kind": "member_join", "at": 0, "team": "t", "channel": "c", "user": "u"})
        );
        let entries = parse_batch(body.as_bytes()).expect("readable");
        assert_eq!(entries.len(), 3);
        assert!(entries[0].event.is_ok());
        assert_eq!(entries[1].line, Some(3));
        assert!(entries[1].event.is_err());
        assert_eq!(entries[2].index, 3);
        assert!(entries[2].event.is_ok());
    }

    #[test]
    fn a_single_pretty_printed_object_is_a_batch_of_one() {
        let body = serde_json::to_string_pretty(&valid_post()).expect("json");
        let entries = parse_batch(body.as_bytes()).expect("readable");
        assert_eq!(entries.len(), 1);
        assert!(entries[0].event.is_ok());
        // Two objects on two lines stay NDJSON.
        let two = format!("{}\n{}", valid_post(), valid_post());
        assert_eq!(parse_batch(two.as_bytes()).expect("readable").len(), 2);
    }

    #[test]
    fn array_batches_and_unreadable_bodies() {
        let body = json!([valid_post(), {"id": "bad", "kind": "post"}]).to_string();
        let entries = parse_batch(body.as_bytes()).expect("readable");
        assert!(entries[0].event.is_ok());
        assert_eq!(entries[1].id.as_deref(), Some("bad"));
        assert!(entries[1].event.is_err());
        assert!(matches!(parse_batch(b" \n "), Err(BatchError::Empty)));
        assert!(matches!(
            parse_batch(b"[{\"id\": 1}"),
            Err(BatchError::MalformedArray(_))
        ));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for line in [
            r#"{"id":"a","id":"b","kind":"member_join","at":0,"team":"t","channel":"c","user":"u"}"#,
            r#"{"id":"a","kind":"member_join","at":0,"team":"t","channel":"c","user":"u","props":{"x":1,"x":2}}"#,
        ] {
            let error = Event::from_json_bytes(line.as_bytes()).expect_err("duplicate");
            assert!(error.to_string().contains("duplicate key"), "{error}");
        }
        let nested = r#"{"id":"a","kind":"member_join","at":0,"team":"t","channel":"c","user":"u","props":{"x":[{"y":1},{"y":2}],"f":1.5}}"#;
        let event =
            Event::from_json_bytes(nested.as_bytes()).expect("same key in different objects");
        assert_eq!(event.props["f"], json!(1.5));
    }

    #[test]
    fn names_with_nul_characters_are_refused_but_text_keeps_them() {
        let mut value = valid_post();
        value["user"] = json!("allen\u{0}p");
        value["text"] = json!("a\u{0}b");
        let error = Event::from_json(value).expect_err("nul in user");
        assert_eq!(error.0.len(), 1);
        assert_eq!(error.0[0].field, "user");
    }

    #[test]
    fn an_event_at_the_size_limit_reads_back_after_normalisation() {
        let mut value = valid_post();
        value["at"] = json!(1_709_287_200_250_i64);
        value["text"] = json!("");
        let skeleton = value.to_string().len();
        value["props"] = json!({"pad": "x".repeat(MAX_EVENT_BYTES - skeleton - 20)});
        let mut bytes = value.to_string().into_bytes();
        while bytes.len() < MAX_EVENT_BYTES {
            bytes.insert(1, b' ');
        }
        assert_eq!(bytes.len(), MAX_EVENT_BYTES);
        let event = Event::from_json_bytes(&bytes).expect("exactly at the limit");
        let canonical = event.to_json_bytes();
        assert!(
            canonical.len() > MAX_EVENT_BYTES - 64,
            "{}",
            canonical.len()
        );
        assert_eq!(
            Event::from_stored_json_bytes(&canonical).expect("reads back"),
            event
        );
    }

    #[test]
    fn an_event_that_grows_past_the_record_limit_is_refused() {
        // `1e15` (4 bytes) is written back as `1000000000000000.0` (18 bytes).
        let numbers = vec!["1e15"; (MAX_EVENT_BYTES - 1024) / 5].join(",");
        let line = format!(
            r#"{{"id":"n","kind":"member_join","at":0,"team":"t","channel":"c","user":"u","props":{{"n":[{numbers}]}}}}"#
        );
        assert!(line.len() <= MAX_EVENT_BYTES);
        let error = Event::from_json_bytes(line.as_bytes()).expect_err("too big once normalised");
        assert!(error.to_string().contains("once normalised"), "{error}");
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Event::from_json_bytes(&bytes);
        }
    }
}
