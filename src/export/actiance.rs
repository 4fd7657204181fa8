//! Actiance (Smarsh) XML: `actiance.xml`, one `<Conversation>` per channel,
//! in the structure of Mattermost's Actiance compliance export.
//!
//! ```text
//! <FileDump xmlns:xsi="...">
//!   <Conversation Perspective="case-4711">
//!     <RoomID>legal - case-4711</RoomID>
//!     <StartTimeUTC>ms</StartTimeUTC>           first event of the channel
//!     <ParticipantEntered>                      first event of a user, or a join
//!     <Message>                                 post, edit, delete, reaction, channel change
//!     <FileTransferStarted>/<FileTransferEnded> every attachment
//!     <ParticipantLeft>                         a leave, and everyone present at the end
//!     <EndTimeUTC>ms</EndTimeUTC>               last event of the channel
//!   </Conversation>
//! </FileDump>
//! ```
//!
//! How events map (Mattermost's conventions where it has one):
//! - Times are epoch milliseconds UTC, as Mattermost writes them. Events with
//!   sub-millisecond precision are truncated (their order in the file stays
//!   the archive's); one `time_truncated_ms` warning counts them.
//! - `LoginName` is the holdfast user name (what LDAP and holds name), not the
//!   e-mail address Mattermost puts there: holdfast often has no address, and
//!   a made-up one must not become the identity. The address is in
//!   `CorporateEmailID` (see [`participant_email`]).
//! - A post is a `Message` with `MessageId` = post id. An edit is a `Message`
//!   with the same id, `UpdatedType` `EditedNewMsg`, `UpdatedDateTimeUTC` the
//!   edit time and `DateTimeUTC` the original post's time. A delete is a
//!   `Message` with `UpdatedType` `Deleted` and `Content` `delete <last
//!   text>`, as Mattermost writes it. The original post's time and text come
//!   from a bounded memory of the channel's recent posts; for a post outside
//!   the export (or beyond that memory) the edit or delete carries its own
//!   time and a delete's content is `delete` alone: the text is in the
//!   earlier `Message` of the same id, or outside the selection. Mattermost's
//!   `EditedOriginalMsg` rewrite of the earlier message is not possible when
//!   streaming: the earlier version stays as it was written.
//! - Mattermost exports no reactions; here a reaction is a `Message` with the
//!   event id as `MessageId` and `Content` `reacted :emoji: to post P` or
//!   `removed reaction :emoji: from post P`, so nothing is lost.
//! - Channel creation, renaming and archiving are `Message`s with the event id
//!   (`created channel C (display name: D)`, `renamed the channel to "D"`,
//!   `archived the channel`), the source's system message text appended.
//! - Joins and leaves are `ParticipantEntered` / `ParticipantLeft`; text on
//!   such an event (rare) becomes a `Message` too.
//! - Attachments are `FileTransferStarted` + `FileTransferEnded` (`Status`
//!   `Completed`), `UserFileName` and `FileName` both the file's name: holdfast
//!   keeps metadata only. Size, hash and MIME type are in the CSV and JSONL.
//! - Threads (`parent`) and other `props` have no place in the format; the
//!   JSONL of the package is lossless.
//!
//! Never keeps a channel in memory (only its participants and a bounded
//! memory of recent posts), never writes malformed XML, and never drops a
//! character silently: characters XML 1.0 cannot carry become U+FFFD with an
//! `xml_invalid_char` warning.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::event::{Event, EventKind};

use super::{ChannelInfo, ExportError, ExportEvent, FormatWriter, PackageInfo, Warning, Warnings};

/// The file this writer makes, relative to the package.
pub const FILE_NAME: &str = "actiance.xml";

const FORMAT: &str = "actiance";

/// How much post text (and ids) a channel's memory of recent posts keeps.
const POST_MEMORY_BYTES: usize = 8 * 1024 * 1024;

/// Writes `actiance.xml`, channel by channel, as the events stream in.
pub struct ActianceWriter {
    xml: XmlOut,
    created_at_ms: i64,
    conversation: Option<Conversation>,
    /// Events whose time had sub-millisecond precision.
    n_truncated_times: u64,
}

/// The channel being written.
struct Conversation {
    info: ChannelInfo,
    /// Whether `<Conversation>`, `<RoomID>` and `<StartTimeUTC>` are written.
    started: bool,
    last_ms: i64,
    participants: HashMap<String, Participant>,
    posts: PostMemory,
}

struct Participant {
    email: String,
    /// Whether `email` came from the source rather than [`fallback_email`].
    email_from_source: bool,
    user_type: &'static str,
    present: bool,
}

impl ActianceWriter {
    /// Creates `actiance.xml` in `package_dir` and writes its prologue.
    pub fn create(package_dir: &Path, info: &PackageInfo) -> Result<ActianceWriter, ExportError> {
        let path = package_dir.join(FILE_NAME);
        let file = File::create(&path).map_err(|error| ExportError::io(&path, error))?;
        let mut xml = XmlOut {
            path,
            file: BufWriter::with_capacity(256 * 1024, file),
            buf: String::with_capacity(4096),
            n_replaced: 0,
        };
        xml.buf.push_str(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <FileDump xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n",
        );
        xml.commit()?;
        Ok(ActianceWriter {
            xml,
            created_at_ms: info.created_at_us.div_euclid(1000),
            conversation: None,
            n_truncated_times: 0,
        })
    }

    /// Writes the opening of the current conversation, starting at `start_ms`.
    fn start_conversation(
        &mut self,
        start_ms: i64,
        warnings: &mut Warnings,
    ) -> Result<(), ExportError> {
        let conversation = self
            .conversation
            .as_mut()
            .expect("start_conversation is called inside a channel");
        let xml = &mut self.xml;
        xml.buf.push_str("  <Conversation Perspective=\"");
        xml.n_replaced += push_xml_escaped(&mut xml.buf, &conversation.info.channel, true);
        xml.buf.push_str("\">\n");
        let room_id = format!("{} - {}", conversation.info.team, conversation.info.channel);
        xml.field(2, "RoomID", &room_id);
        xml.number(2, "StartTimeUTC", start_ms);
        conversation.started = true;
        conversation.last_ms = start_ms;
        let n_replaced = xml.commit()?;
        if n_replaced > 0 {
            warnings.push(invalid_char_warning(None, n_replaced, "the channel's name"));
        }
        Ok(())
    }
}

impl FormatWriter for ActianceWriter {
    fn begin_channel(&mut self, channel: &ChannelInfo) -> Result<(), ExportError> {
        if let Some(open) = &self.conversation {
            return Err(ExportError::channel_still_open(FORMAT, channel, &open.info));
        }
        self.conversation = Some(Conversation {
            info: channel.clone(),
            started: false,
            last_ms: self.created_at_ms,
            participants: HashMap::new(),
            posts: PostMemory::default(),
        });
        Ok(())
    }

    fn write(&mut self, event: &ExportEvent, warnings: &mut Warnings) -> Result<(), ExportError> {
        let event = &event.event;
        let conversation =
            ExportError::open_channel(FORMAT, event, self.conversation.as_ref(), |open| {
                &open.info
            })?;
        let at_ms = event.at_us.div_euclid(1000);
        if event.at_us.rem_euclid(1000) != 0 {
            self.n_truncated_times += 1;
        }
        if !conversation.started {
            self.start_conversation(at_ms, warnings)?;
        }
        let conversation = self
            .conversation
            .as_mut()
            .expect("checked to be inside a channel above");
        conversation.last_ms = at_ms;
        let xml = &mut self.xml;

        // The participant: entered on first sight (or a join), left on a leave.
        let email_from_event = source_email(event);
        let participant = conversation
            .participants
            .entry(event.user.clone())
            .or_insert_with(|| Participant {
                email: participant_email(event),
                email_from_source: email_from_event.is_some(),
                user_type: user_type(event),
                present: false,
            });
        if let Some(email) = email_from_event
            && !participant.email_from_source
        {
            participant.email = email.to_owned();
            participant.email_from_source = true;
        }
        if event.kind == EventKind::MemberLeave {
            participant.present = false;
            xml.participant("ParticipantLeft", &event.user, participant, at_ms);
        } else if !participant.present {
            participant.present = true;
            xml.participant("ParticipantEntered", &event.user, participant, at_ms);
        }

        let text = full_text(event);
        let kind_user_type = user_type(event);
        let post = event.post.as_deref().unwrap_or("");
        match event.kind {
            EventKind::Post => {
                xml.message(&MessageFields {
                    message_id: post,
                    login_name: &event.user,
                    user_type: kind_user_type,
                    at_ms,
                    updated: None,
                    content: text.as_deref().unwrap_or(""),
                    previews_post: event.props.get("previewed_post").and_then(Value::as_str),
                });
                conversation
                    .posts
                    .remember(post, at_ms, text.as_deref().unwrap_or(""));
            }
            EventKind::Edit => {
                let posted_ms = conversation.posts.posted_ms(post).unwrap_or(at_ms);
                xml.message(&MessageFields {
                    message_id: post,
                    login_name: &event.user,
                    user_type: kind_user_type,
                    at_ms: posted_ms,
                    updated: Some(("EditedNewMsg", at_ms)),
                    content: text.as_deref().unwrap_or(""),
                    previews_post: event.props.get("previewed_post").and_then(Value::as_str),
                });
                conversation
                    .posts
                    .remember(post, posted_ms, text.as_deref().unwrap_or(""));
            }
            EventKind::Delete => {
                let remembered = conversation.posts.forget(post);
                let mut content = String::from("delete");
                if let Some((_, last_text)) = &remembered {
                    content.push(' ');
                    content.push_str(last_text);
                }
                append_line(&mut content, text.as_deref());
                xml.message(&MessageFields {
                    message_id: post,
                    login_name: &event.user,
                    user_type: kind_user_type,
                    at_ms: remembered.as_ref().map_or(at_ms, |(posted, _)| *posted),
                    updated: Some(("Deleted", at_ms)),
                    content: &content,
                    previews_post: None,
                });
            }
            EventKind::ReactionAdd | EventKind::ReactionRemove => {
                let emoji = event.emoji.as_deref().unwrap_or("");
                let mut content = if event.kind == EventKind::ReactionAdd {
                    format!("reacted :{emoji}: to post {post}")
                } else {
                    format!("removed reaction :{emoji}: from post {post}")
                };
                append_line(&mut content, text.as_deref());
                xml.message(&MessageFields::event(
                    event,
                    kind_user_type,
                    at_ms,
                    &content,
                ));
            }
            EventKind::ChannelCreate | EventKind::ChannelRename | EventKind::ChannelArchive => {
                let mut content = channel_change(event);
                append_line(
                    &mut content,
                    event.props.get("message").and_then(Value::as_str),
                );
                append_line(&mut content, text.as_deref());
                xml.message(&MessageFields::event(
                    event,
                    kind_user_type,
                    at_ms,
                    &content,
                ));
            }
            EventKind::File | EventKind::MemberJoin | EventKind::MemberLeave => {
                // Their own elements say it all; text on them is rare but kept.
                if let Some(text) = text.as_deref().filter(|text| !text.is_empty()) {
                    let message_id = event.post.as_deref().unwrap_or(&event.id);
                    let mut fields = MessageFields::event(event, kind_user_type, at_ms, text);
                    fields.message_id = message_id;
                    xml.message(&fields);
                }
            }
        }
        for file in &event.files {
            xml.file_transfer(&event.user, at_ms, &file.name);
        }

        let n_replaced = xml.commit()?;
        if n_replaced > 0 {
            warnings.push(invalid_char_warning(
                Some(&event.id),
                n_replaced,
                "the event",
            ));
        }
        Ok(())
    }

    fn end_channel(&mut self, warnings: &mut Warnings) -> Result<(), ExportError> {
        let Some(conversation) = &self.conversation else {
            return Err(ExportError::Format {
                format: FORMAT,
                message: "a channel ends that did not begin".into(),
            });
        };
        if !conversation.started {
            // A channel without events still appears, empty.
            self.start_conversation(self.created_at_ms, warnings)?;
        }
        let conversation = self
            .conversation
            .take()
            .expect("checked to be inside a channel above");
        let xml = &mut self.xml;
        let mut present: Vec<(&String, &Participant)> = conversation
            .participants
            .iter()
            .filter(|(_, participant)| participant.present)
            .collect();
        present.sort_by(|a, b| a.0.cmp(b.0));
        for (user, participant) in present {
            xml.participant("ParticipantLeft", user, participant, conversation.last_ms);
        }
        xml.number(2, "EndTimeUTC", conversation.last_ms);
        xml.buf.push_str("  </Conversation>\n");
        let n_replaced = xml.commit()?;
        if n_replaced > 0 {
            warnings.push(invalid_char_warning(
                None,
                n_replaced,
                "a participant's name",
            ));
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, warnings: &mut Warnings) -> Result<Vec<PathBuf>, ExportError> {
        if self.conversation.is_some() {
            self.end_channel(warnings)?;
        }
        if self.n_truncated_times > 0 {
            warnings.push(Warning {
                file: FILE_NAME.into(),
                event_id: None,
                code: "time_truncated_ms".into(),
                message: format!(
                    "{} event(s) have sub-millisecond times; Actiance times are epoch milliseconds, \
                     so they are truncated (their order is kept)",
                    self.n_truncated_times
                ),
            });
        }
        let ActianceWriter { mut xml, .. } = *self;
        xml.buf.push_str("</FileDump>\n");
        xml.commit()?;
        let path = xml.path;
        let file = xml
            .file
            .into_inner()
            .map_err(|error| ExportError::io(&path, error.into_error()))?;
        file.sync_all()
            .map_err(|error| ExportError::io(&path, error))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(vec![PathBuf::from(FILE_NAME)])
    }
}

/// The output file and the element being built. Every element is built in
/// `buf` and written by [`XmlOut::commit`].
struct XmlOut {
    path: PathBuf,
    file: BufWriter<File>,
    buf: String,
    /// Characters replaced in `buf` since the last commit.
    n_replaced: usize,
}

/// The children of one `<Message>`.
struct MessageFields<'a> {
    message_id: &'a str,
    login_name: &'a str,
    user_type: &'a str,
    at_ms: i64,
    /// `UpdatedType` and `UpdatedDateTimeUTC`.
    updated: Option<(&'static str, i64)>,
    content: &'a str,
    previews_post: Option<&'a str>,
}

impl<'a> MessageFields<'a> {
    /// A message about the event itself (a reaction, a channel change).
    fn event(event: &'a Event, user_type: &'a str, at_ms: i64, content: &'a str) -> Self {
        MessageFields {
            message_id: &event.id,
            login_name: &event.user,
            user_type,
            at_ms,
            updated: None,
            content,
            previews_post: None,
        }
    }
}

impl XmlOut {
    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.buf.push_str("  ");
        }
    }

    fn field(&mut self, depth: usize, tag: &str, value: &str) {
        self.indent(depth);
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push('>');
        self.n_replaced += push_xml_escaped(&mut self.buf, value, false);
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push_str(">\n");
    }

    fn number(&mut self, depth: usize, tag: &str, value: i64) {
        self.field(depth, tag, &value.to_string());
    }

    fn participant(&mut self, tag: &str, user: &str, participant: &Participant, at_ms: i64) {
        self.indent(2);
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push_str(">\n");
        self.field(3, "LoginName", user);
        self.field(3, "UserType", participant.user_type);
        self.number(3, "DateTimeUTC", at_ms);
        self.field(3, "CorporateEmailID", &participant.email);
        self.indent(2);
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push_str(">\n");
    }

    fn message(&mut self, fields: &MessageFields<'_>) {
        self.buf.push_str("    <Message>\n");
        self.field(3, "MessageId", fields.message_id);
        self.field(3, "LoginName", fields.login_name);
        self.field(3, "UserType", fields.user_type);
        self.number(3, "DateTimeUTC", fields.at_ms);
        if let Some((updated_type, updated_ms)) = fields.updated {
            self.field(3, "UpdatedType", updated_type);
            self.number(3, "UpdatedDateTimeUTC", updated_ms);
        }
        self.field(3, "Content", fields.content);
        if let Some(previews_post) = fields.previews_post {
            self.field(3, "PreviewsPost", previews_post);
        }
        self.buf.push_str("    </Message>\n");
    }

    fn file_transfer(&mut self, user: &str, at_ms: i64, name: &str) {
        for (tag, status) in [
            ("FileTransferStarted", None),
            ("FileTransferEnded", Some("Completed")),
        ] {
            self.indent(2);
            self.buf.push('<');
            self.buf.push_str(tag);
            self.buf.push_str(">\n");
            self.field(3, "LoginName", user);
            self.number(3, "DateTimeUTC", at_ms);
            self.field(3, "UserFileName", name);
            self.field(3, "FileName", name);
            if let Some(status) = status {
                self.field(3, "Status", status);
            }
            self.indent(2);
            self.buf.push_str("</");
            self.buf.push_str(tag);
            self.buf.push_str(">\n");
        }
    }

    /// Writes what was built; returns how many characters were replaced in it.
    fn commit(&mut self) -> Result<usize, ExportError> {
        self.file
            .write_all(self.buf.as_bytes())
            .map_err(|error| ExportError::io(&self.path, error))?;
        self.buf.clear();
        Ok(std::mem::take(&mut self.n_replaced))
    }
}

/// The recent posts of a channel: their time and latest text, so that an
/// edit or a delete can name them as Mattermost does. Bounded by
/// [`POST_MEMORY_BYTES`] (texts and ids, forgotten ones included); the
/// oldest are forgotten first.
#[derive(Default)]
struct PostMemory {
    posts: HashMap<String, (i64, String)>,
    /// Post ids in the order they were remembered.
    order: VecDeque<String>,
    n_bytes: usize,
}

impl PostMemory {
    fn posted_ms(&self, post: &str) -> Option<i64> {
        self.posts.get(post).map(|(posted_ms, _)| *posted_ms)
    }

    fn remember(&mut self, post: &str, posted_ms: i64, text: &str) {
        if let Some((_, old_text)) = self.posts.get_mut(post) {
            self.n_bytes = self.n_bytes - old_text.len() + text.len();
            text.clone_into(old_text);
        } else {
            self.n_bytes += 2 * post.len() + text.len();
            self.posts
                .insert(post.to_owned(), (posted_ms, text.to_owned()));
            self.order.push_back(post.to_owned());
        }
        while self.n_bytes > POST_MEMORY_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.n_bytes -= oldest.len();
            if let Some((_, text)) = self.posts.remove(&oldest) {
                self.n_bytes -= oldest.len() + text.len();
            }
        }
    }

    /// Takes a post out (it was deleted); its id stays counted in `order`
    /// until it reaches the front.
    fn forget(&mut self, post: &str) -> Option<(i64, String)> {
        let removed = self.posts.remove(post)?;
        self.n_bytes -= post.len() + removed.1.len();
        Some(removed)
    }
}

/// Appends `text` to `out`, escaped for XML 1.0 element content or (with
/// `attribute`) a double-quoted attribute value, and returns how many
/// characters XML 1.0 cannot carry were replaced with U+FFFD.
///
/// Carriage returns (and in attributes line feeds and tabs) are written as
/// character references, which XML parsers keep as they are instead of
/// normalising them.
pub(super) fn push_xml_escaped(out: &mut String, text: &str, attribute: bool) -> usize {
    let mut n_replaced = 0;
    let mut clean_from = 0;
    for (index, ch) in text.char_indices() {
        let replacement = match ch {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&apos;",
            '\r' => "&#13;",
            '\n' if attribute => "&#10;",
            '\t' if attribute => "&#9;",
            ch if is_xml_char(ch) => continue,
            _ => {
                n_replaced += 1;
                "\u{FFFD}"
            }
        };
        out.push_str(&text[clean_from..index]);
        out.push_str(replacement);
        clean_from = index + ch.len_utf8();
    }
    out.push_str(&text[clean_from..]);
    n_replaced
}

/// Whether XML 1.0 allows `ch` in a document (its `Char` production).
pub(super) fn is_xml_char(ch: char) -> bool {
    matches!(ch,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

fn invalid_char_warning(event_id: Option<&str>, n_replaced: usize, what: &str) -> Warning {
    Warning {
        file: FILE_NAME.into(),
        event_id: event_id.map(str::to_owned),
        code: "xml_invalid_char".into(),
        message: format!(
            "{what} has characters XML 1.0 cannot carry (control characters): \
             {n_replaced} replacement(s) with U+FFFD written"
        ),
    }
}

/// The event's text in full: `text`, then `props.text_overflow`, where
/// importers keep the part of a message beyond the 64 KiB text limit.
pub(super) fn full_text(event: &Event) -> Option<Cow<'_, str>> {
    let overflow = event.props.get("text_overflow").and_then(Value::as_str);
    match (event.text.as_deref(), overflow) {
        (Some(text), Some(overflow)) => Some(Cow::Owned(format!("{text}{overflow}"))),
        (None, Some(overflow)) => Some(Cow::Borrowed(overflow)),
        (Some(text), None) => Some(Cow::Borrowed(text)),
        (None, None) => None,
    }
}

/// `props.display_name` of a channel event, if it is a non-empty string.
pub(super) fn display_name(event: &Event) -> Option<&str> {
    event
        .props
        .get("display_name")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
}

/// What a channel creation, renaming or archiving says, in words.
pub(super) fn channel_change(event: &Event) -> String {
    match (event.kind, display_name(event)) {
        (EventKind::ChannelCreate, Some(name)) => {
            format!("created channel {} (display name: {name})", event.channel)
        }
        (EventKind::ChannelCreate, None) => format!("created channel {}", event.channel),
        (EventKind::ChannelRename, Some(name)) => format!("renamed the channel to \"{name}\""),
        (EventKind::ChannelRename, None) => "renamed the channel".into(),
        _ => "archived the channel".into(),
    }
}

fn append_line(content: &mut String, line: Option<&str>) {
    if let Some(line) = line.filter(|line| !line.is_empty()) {
        content.push('\n');
        content.push_str(line);
    }
}

/// `bot` when the source marks the event as a bot's (`props.from_bot`), else `user`.
pub(super) fn user_type(event: &Event) -> &'static str {
    match event.props.get("from_bot") {
        Some(Value::Bool(true)) => "bot",
        Some(Value::String(value)) if value == "true" => "bot",
        _ => "user",
    }
}

/// The actor's address as the source gave it (`props.email`, else
/// `props.user_email`), when it is a plain ASCII `local@domain` address that
/// can be written in a mail header as it is.
pub(super) fn source_email(event: &Event) -> Option<&str> {
    ["email", "user_email"]
        .into_iter()
        .filter_map(|key| event.props.get(key).and_then(Value::as_str))
        .find(|address| is_plain_address(address))
}

/// The address of a participant: the source's (see [`source_email`]), else
/// this made-up one, `<user>@<team>.holdfast.invalid` (the `.invalid` top
/// level domain never delivers), with the characters an address cannot
/// carry unquoted replaced by `_` (user) or `-` (team); see
/// [`fallback_email`].
pub(super) fn participant_email(event: &Event) -> String {
    source_email(event)
        .map(str::to_owned)
        .unwrap_or_else(|| fallback_email(&event.user, &event.team))
}

/// `<user>@<team>.holdfast.invalid`, made safe for a mail header and short
/// enough (user part at most 32 characters, team part 24) for a header line
/// of 78. The full user name is always beside it (`LoginName`, the display
/// name of a mailbox).
pub(super) fn fallback_email(user: &str, team: &str) -> String {
    let mut local = String::with_capacity(user.len().min(32));
    for ch in user.chars() {
        if local.len() >= 32 {
            break;
        }
        let ch = if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-' | '+') {
            ch
        } else {
            '_'
        };
        // A dot-atom: no leading, trailing or doubled dots.
        if ch == '.' && (local.is_empty() || local.ends_with('.')) {
            local.push('_');
        } else {
            local.push(ch);
        }
    }
    if local.ends_with('.') {
        local.pop();
        local.push('_');
    }
    if local.is_empty() {
        local.push_str("user");
    }
    let mut label = String::with_capacity(team.len().min(24));
    for ch in team.chars() {
        if label.len() >= 24 {
            break;
        }
        if ch.is_ascii_alphanumeric() {
            label.push(ch.to_ascii_lowercase());
        } else if !label.is_empty() && !label.ends_with('-') {
            label.push('-');
        }
    }
    while label.ends_with('-') {
        label.pop();
    }
    if label.is_empty() {
        label.push_str("team");
    }
    format!("{local}@{label}.holdfast.invalid")
}

/// A plain `local@domain` address: ASCII letters, digits and `.!#$%&'*+/=?^_`{|}~-`
/// in the local part (a dot-atom), a host name after the `@`.
pub(super) fn is_plain_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let dot_atom = |part: &str, allowed: fn(u8) -> bool| {
        !part.is_empty()
            && part
                .split('.')
                .all(|atom| !atom.is_empty() && atom.bytes().all(allowed))
    };
    local.len() <= 64
        && domain.len() <= 253
        && dot_atom(local, |byte| {
            byte.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&byte)
        })
        && dot_atom(domain, |byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

/// Syncs a directory, so that the files created or renamed in it are durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), ExportError> {
    File::open(dir)
        .and_then(|dir_file| dir_file.sync_all())
        .map_err(|error| ExportError::io(dir, error))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::export::{ChannelInfo, PackageInfo};
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::process::Command;

    pub(in crate::export) const CORPUS: &str =
        include_str!("../../tests/fixtures/export/corpus.ndjson");

    /// The corpus as the job hands it out: channels sorted by (team,
    /// channel), events by (at, line order).
    pub(in crate::export) fn channels_of(lines: &str) -> Vec<(ChannelInfo, Vec<ExportEvent>)> {
        let mut channels: BTreeMap<(String, String), Vec<ExportEvent>> = BTreeMap::new();
        for (index, line) in lines.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event = Event::from_json_bytes(line.as_bytes()).expect("corpus line is valid");
            channels
                .entry((event.team.clone(), event.channel.clone()))
                .or_default()
                .push(ExportEvent {
                    seq: index as u64 + 1,
                    event,
                });
        }
        channels
            .into_iter()
            .map(|((team, channel), mut events)| {
                events.sort_by_key(|event| (event.event.at_us, event.seq));
                let info = ChannelInfo {
                    team,
                    channel,
                    events: events.len() as u64,
                };
                (info, events)
            })
            .collect()
    }

    pub(in crate::export) fn package_info(
        channels: &[(ChannelInfo, Vec<ExportEvent>)],
    ) -> PackageInfo {
        PackageInfo {
            export_id: "exp-000042".into(),
            matter: "Müller v. Enron".into(),
            selection: "channel:case-4711 OR channel:west-desk".into(),
            requested_by: "kay.mann".into(),
            created_at_us: 1_772_500_000_000_000,
            channels: channels.iter().map(|(info, _)| info.clone()).collect(),
            total_events: channels.iter().map(|(info, _)| info.events).sum(),
            bates: None,
            template_dir: None,
        }
    }

    /// Feeds `channels` to `writer` as the job does.
    pub(in crate::export) fn feed(
        mut writer: Box<dyn FormatWriter>,
        channels: &[(ChannelInfo, Vec<ExportEvent>)],
    ) -> (Vec<PathBuf>, Warnings) {
        let mut warnings = Warnings::default();
        for (info, events) in channels {
            writer.begin_channel(info).expect("begin channel");
            for event in events {
                writer.write(event, &mut warnings).expect("write event");
            }
            writer.end_channel(&mut warnings).expect("end channel");
        }
        let files = writer.finish(&mut warnings).expect("finish");
        (files, warnings)
    }

    pub(in crate::export) fn run_python(script: &str, args: &[&Path]) -> String {
        let output = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .expect("python3 runs (it is needed by these tests)");
        assert!(
            output.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("python prints UTF-8")
    }

    fn write_package(lines: &str) -> (tempfile::TempDir, Vec<PathBuf>, Warnings) {
        let dir = tempfile::tempdir().expect("temp dir");
        let channels = channels_of(lines);
        let info = package_info(&channels);
        let writer = ActianceWriter::create(dir.path(), &info).expect("create");
        let (files, warnings) = feed(Box::new(writer), &channels);
        (dir, files, warnings)
    }

    fn xmllint(path: &Path) {
        let output = match Command::new("xmllint").arg("--noout").arg(path).output() {
            Ok(output) => output,
            Err(error) => panic!(
                "xmllint is needed by this test: install the package libxml2-utils \
                 (apt-get install -y libxml2-utils): {error}"
            ),
        };
        assert!(
            output.status.success(),
            "xmllint rejects {}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The document as parsed by Python's ElementTree: per conversation its
    /// attributes and its children, each a tag with its own children's text.
    const PARSE_XML: &str = r#"
import json, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "FileDump", root.tag
out = []
for conversation in root:
    children = []
    for child in conversation:
        if len(child):
            fields = {grandchild.tag: grandchild.text or "" for grandchild in child}
            assert len(fields) == len(child), "duplicate child in " + child.tag
            children.append({"tag": child.tag, "fields": fields})
        else:
            children.append({"tag": child.tag, "text": child.text or ""})
    out.append({"tag": conversation.tag, "attrib": conversation.attrib, "children": children})
json.dump(out, sys.stdout, ensure_ascii=True)
"#;

    fn parse(path: &Path) -> Vec<Value> {
        let parsed = run_python(PARSE_XML, &[path]);
        serde_json::from_str(&parsed).expect("parser output is JSON")
    }

    fn children<'a>(conversation: &'a Value, tag: &str) -> Vec<&'a Value> {
        conversation["children"]
            .as_array()
            .expect("children")
            .iter()
            .filter(|child| child["tag"] == tag)
            .collect()
    }

    #[test]
    fn corpus_gives_valid_actiance_xml_with_every_message() {
        let (dir, files, warnings) = write_package(CORPUS);
        assert_eq!(files, [PathBuf::from("actiance.xml")]);
        let path = dir.path().join("actiance.xml");
        xmllint(&path);
        // ev-019 is at 09:00:00.000250: the only thing not written exactly.
        let codes: Vec<&str> = warnings.items().iter().map(|w| w.code.as_str()).collect();
        assert_eq!(codes, ["time_truncated_ms"]);
        assert!(warnings.items()[0].message.starts_with("1 event(s)"));

        let conversations = parse(&path);
        assert_eq!(conversations.len(), 2);
        let legal = &conversations[0];
        let trading = &conversations[1];
        assert_eq!(legal["tag"], "Conversation");
        assert_eq!(legal["attrib"]["Perspective"], "case-4711");
        let tags: Vec<&str> = legal["children"]
            .as_array()
            .expect("children")
            .iter()
            .map(|child| child["tag"].as_str().expect("tag"))
            .collect();
        assert_eq!(tags[..2], ["RoomID", "StartTimeUTC"]);
        assert_eq!(tags.last(), Some(&"EndTimeUTC"));
        assert_eq!(children(legal, "RoomID")[0]["text"], "legal - case-4711");
        // 2026-03-02T08:59:00Z and 17:00:00Z in epoch milliseconds.
        assert_eq!(children(legal, "StartTimeUTC")[0]["text"], "1772441940000");
        assert_eq!(children(legal, "EndTimeUTC")[0]["text"], "1772470800000");
        assert_eq!(
            children(trading, "RoomID")[0]["text"],
            "trading - west-desk"
        );

        // Every participant enters once, and leaves once (a leave, or the end).
        let entered: Vec<&str> = children(legal, "ParticipantEntered")
            .iter()
            .map(|entry| entry["fields"]["LoginName"].as_str().expect("login"))
            .collect();
        assert_eq!(entered, ["kay.mann", "sara.shackleton", "jeff.dasovich"]);
        let first = &children(legal, "ParticipantEntered")[0]["fields"];
        assert_eq!(first["UserType"], "user");
        assert_eq!(first["DateTimeUTC"], "1772441940000");
        assert_eq!(first["CorporateEmailID"], "kay.mann@legal.holdfast.invalid");
        let left: Vec<(&str, &str)> = children(legal, "ParticipantLeft")
            .iter()
            .map(|entry| {
                (
                    entry["fields"]["LoginName"].as_str().expect("login"),
                    entry["fields"]["DateTimeUTC"].as_str().expect("time"),
                )
            })
            .collect();
        assert_eq!(
            left,
            [
                ("jeff.dasovich", "1772470800000"),
                ("kay.mann", "1772470800000"),
                ("sara.shackleton", "1772470800000"),
            ]
        );

        // Every post and edit of the corpus is there with its exact text.
        let messages: Vec<&Value> = conversations
            .iter()
            .flat_map(|conversation| children(conversation, "Message"))
            .map(|message| &message["fields"])
            .collect();
        for (_, events) in channels_of(CORPUS) {
            for event in events.iter().map(|event| &event.event) {
                if let Some(text) = &event.text {
                    let post = event.post.as_deref().expect("post");
                    assert!(
                        messages.iter().any(|message| message["MessageId"] == post
                            && message["Content"] == text.as_str()),
                        "{} is missing",
                        event.id
                    );
                }
            }
        }
        let find = |id: &str, updated: Option<&str>| {
            messages
                .iter()
                .copied()
                .find(|message| {
                    message["MessageId"] == id
                        && message.get("UpdatedType").and_then(Value::as_str) == updated
                })
                .unwrap_or_else(|| panic!("no message {id} {updated:?}"))
        };
        assert_eq!(
            find("p-2", None)["Content"],
            "Clause 7 conflicts with the ISDA schedule. <see redline> & \"notes\""
        );
        assert_eq!(
            find("p-3", None)["Content"],
            "=HYPERLINK(\"http://evil.example\",\"click\") is not a formula here\nsecond line\r\nthird line, with a comma"
        );
        assert!(
            find("p-5", None)["Content"]
                .as_str()
                .expect("content")
                .starts_with("Третье сообщение в ту же секунду. Ελληνικά")
        );
        assert!(
            find("p-6", None)["Content"]
                .as_str()
                .expect("content")
                .contains("中文和日本語のテキスト、한국어 and emoji 🚀")
        );
        // An edit keeps the post's time and says when it changed.
        let edit = find("p-2", Some("EditedNewMsg"));
        assert_eq!(edit["DateTimeUTC"], "1772442300000");
        assert_eq!(edit["UpdatedDateTimeUTC"], "1772442420000");
        // A delete repeats the text it deleted, as Mattermost does.
        let delete = find("p-3", Some("Deleted"));
        assert_eq!(delete["LoginName"], "kay.mann");
        assert_eq!(delete["UpdatedDateTimeUTC"], "1772442720000");
        assert!(
            delete["Content"]
                .as_str()
                .expect("content")
                .starts_with("delete =HYPERLINK")
        );
        // Reactions and channel changes are messages of their own.
        assert_eq!(
            find("ev-006", None)["Content"],
            "reacted :thumbsup: to post p-2"
        );
        assert_eq!(
            find("ev-013", None)["Content"],
            "removed reaction :white_check_mark: from post p-5"
        );
        assert_eq!(
            find("ev-001", None)["Content"],
            "created channel case-4711 (display name: Case 4711 – Müller v. Enron)"
        );
        assert_eq!(
            find("ev-016", None)["Content"],
            "renamed the channel to \"Case 4711 (privileged)\""
        );
        // Two edits of the same post are both there, in order.
        let edits: Vec<&str> = messages
            .iter()
            .filter(|message| message["MessageId"] == "t-1")
            .map(|message| message["Content"].as_str().expect("content"))
            .collect();
        assert_eq!(edits.len(), 3);
        assert!(edits[2].contains("42.20 (final)"));

        // Attachments: started and ended, with their names.
        let started: Vec<&str> = conversations
            .iter()
            .flat_map(|conversation| children(conversation, "FileTransferStarted"))
            .map(|file| file["fields"]["UserFileName"].as_str().expect("name"))
            .collect();
        assert_eq!(
            started,
            [
                "settlement-draft-v3.docx",
                "positions.xlsx",
                "Überblick Q1.pdf"
            ]
        );
        let ended = children(trading, "FileTransferEnded");
        assert_eq!(ended.len(), 2);
        assert_eq!(ended[1]["fields"]["FileName"], "Überblick Q1.pdf");
        assert_eq!(ended[1]["fields"]["Status"], "Completed");
        assert_eq!(ended[1]["fields"]["LoginName"], "phillip.allen");
    }

    #[test]
    fn control_characters_become_replacement_characters_with_a_warning() {
        let line = json!({
            "id": "ev-ctl", "kind": "post", "at": "2026-03-02T09:00:00.000250Z",
            "team": "legal", "channel": "case-4711", "user": "kay.mann", "post": "p-ctl",
            "text": "bell\u{7} vertical\u{b} tab\tkept 'quoted'",
            "files": [{"name": "form\u{c}feed.pdf", "size": 1}]
        });
        let (dir, _, warnings) = write_package(&line.to_string());
        let path = dir.path().join("actiance.xml");
        xmllint(&path);
        let conversations = parse(&path);
        let message = &children(&conversations[0], "Message")[0]["fields"];
        assert_eq!(
            message["Content"],
            "bell\u{FFFD} vertical\u{FFFD} tab\tkept 'quoted'"
        );
        let file = &children(&conversations[0], "FileTransferStarted")[0]["fields"];
        assert_eq!(file["UserFileName"], "form\u{FFFD}feed.pdf");

        let codes: Vec<(&str, Option<&str>)> = warnings
            .items()
            .iter()
            .map(|warning| (warning.code.as_str(), warning.event_id.as_deref()))
            .collect();
        assert_eq!(
            codes,
            [
                ("xml_invalid_char", Some("ev-ctl")),
                ("time_truncated_ms", None)
            ]
        );
        // Two in the text, four in the file name (two elements, two fields each).
        assert!(
            warnings.items()[0]
                .message
                .ends_with(": 6 replacement(s) with U+FFFD written"),
            "{}",
            warnings.items()[0].message
        );
        assert_eq!(warnings.items()[0].file, "actiance.xml");
    }

    #[test]
    fn a_package_without_channels_is_an_empty_file_dump() {
        let (dir, files, warnings) = write_package("");
        assert_eq!(files, [PathBuf::from("actiance.xml")]);
        assert!(warnings.is_empty());
        let path = dir.path().join("actiance.xml");
        xmllint(&path);
        assert!(parse(&path).is_empty());
    }

    #[test]
    fn escaping_covers_markup_quotes_and_line_ends() {
        let mut out = String::new();
        let n = push_xml_escaped(&mut out, "a<b>&\"c'\r\n\td\u{0}\u{FFFE}", false);
        assert_eq!(
            out,
            "a&lt;b&gt;&amp;&quot;c&apos;&#13;\n\td\u{FFFD}\u{FFFD}"
        );
        assert_eq!(n, 2);
        let mut out = String::new();
        assert_eq!(push_xml_escaped(&mut out, "x\n\ty", true), 0);
        assert_eq!(out, "x&#10;&#9;y");
    }

    #[test]
    fn deletes_of_unknown_posts_and_sources_emails() {
        let lines = [
            json!({"id": "e1", "kind": "delete", "at": 1000, "team": "T", "channel": "c",
                   "user": "ann", "post": "old"}),
            json!({"id": "e2", "kind": "post", "at": 2000, "team": "T", "channel": "c",
                   "user": "bob", "post": "p", "text": "hi",
                   "props": {"email": "bob@example.com", "from_bot": true}}),
            json!({"id": "e3", "kind": "member_leave", "at": 3000, "team": "T", "channel": "c",
                   "user": "carl"}),
        ]
        .map(|line| line.to_string())
        .join("\n");
        let (dir, _, warnings) = write_package(&lines);
        assert!(warnings.is_empty(), "{:?}", warnings.items());
        let path = dir.path().join("actiance.xml");
        xmllint(&path);
        let conversations = parse(&path);
        let conversation = &conversations[0];
        let delete = &children(conversation, "Message")[0]["fields"];
        assert_eq!(delete["Content"], "delete");
        assert_eq!(delete["DateTimeUTC"], "1000");
        let entered = children(conversation, "ParticipantEntered");
        assert_eq!(entered[1]["fields"]["CorporateEmailID"], "bob@example.com");
        assert_eq!(entered[1]["fields"]["UserType"], "bot");
        assert_eq!(
            entered[0]["fields"]["CorporateEmailID"],
            "ann@t.holdfast.invalid"
        );
        // carl left without having been seen: one leave, not two.
        let left: Vec<&str> = children(conversation, "ParticipantLeft")
            .iter()
            .map(|entry| entry["fields"]["LoginName"].as_str().expect("login"))
            .collect();
        assert_eq!(left, ["carl", "ann", "bob"]);
    }

    #[test]
    fn fallback_emails_are_plain_addresses() {
        for (user, team, expected) in [
            ("kay.mann", "legal", "kay.mann@legal.holdfast.invalid"),
            (".x..y.", "Team Ω 1", "_x._y_@team-1.holdfast.invalid"),
            ("Ωμέγα", "Ω", "_____@team.holdfast.invalid"),
            ("a b<c>\"d\"@e", "--", "a_b_c__d__e@team.holdfast.invalid"),
        ] {
            let email = fallback_email(user, team);
            assert_eq!(email, expected);
            assert!(is_plain_address(&email), "{email}");
        }
        assert!(!is_plain_address("a@b@c"));
        assert!(!is_plain_address("a b@c"));
        assert!(!is_plain_address("a@b\r\nBcc: x"));
        assert!(!is_plain_address("a..b@c"));
    }

    #[test]
    fn post_memory_stays_bounded() {
        let mut memory = PostMemory::default();
        let text = "x".repeat(1024 * 1024);
        for index in 0..20 {
            memory.remember(&format!("p{index}"), index, &text);
        }
        assert!(memory.n_bytes <= POST_MEMORY_BYTES);
        assert_eq!(memory.posted_ms("p0"), None);
        assert_eq!(memory.posted_ms("p19"), Some(19));
        assert!(memory.forget("p19").is_some());
        assert_eq!(memory.posted_ms("p19"), None);
    }
}
