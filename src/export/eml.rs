//! Global Relay EML: one RFC 5322 message per channel (per batch of a
//! channel), under `eml/`, in the structure of Mattermost's Global Relay
//! compliance export.
//!
//! Each message is `eml/<NNNN>-<team>-<channel>.eml` (`NNNN` counts the
//! package's messages from 0001; team and channel reduced to
//! `[A-Za-z0-9._-]`, so names are unique and portable), and holds:
//! - headers: `Subject: Holdfast Compliance Export: <display name>
//!   (<team>/<channel>)`, `From` the first participant and `To` all of them
//!   (as Global Relay expects: who started the conversation, and everyone in
//!   it), `Date` the last event's time, a deterministic `Message-ID`, and
//!   `X-Holdfast-*` headers: export id, matter, team, channel, display name,
//!   part, event count, the channel's event count, first and last event
//!   time. Anything that is not short printable ASCII is written as RFC 2047
//!   encoded-words (`=?UTF-8?B?...?=`); header lines stay within 78
//!   characters (998 for an address longer than that from the source).
//! - a `multipart/alternative` body: `text/plain` and `text/html`, both
//!   UTF-8 and base64 (so the text arrives byte for byte, CR and LF
//!   included, in lines of 76). Each starts with the export's facts and the
//!   participant table (user, address, messages posted, events, first and
//!   last seen), then every event of the batch in order: time, user, what
//!   happened (posted, edited, deleted, reacted, removed a reaction,
//!   attached a file, joined, left, created, renamed, archived the channel),
//!   the post and thread it is about, its event id, and its text as
//!   archived.
//!
//! Addresses: the source's (`props.email`, `props.user_email`) when it is a
//! plain address, else `<user>@<team>.holdfast.invalid` (see
//! [`participant_email`]); the full user name is the mailbox's display name.
//!
//! Streaming: the participant table comes first but is known only at the
//! end, so the rendered events go to two spool files beside the messages
//! (`eml/.<name>.plain.spool`, `.html.spool`) and the message is assembled
//! when the batch ends, written to a temporary name, synced and renamed;
//! the spools are then deleted. A channel is split into several messages
//! (`part 2`, ...) beyond [`EmlLimits`] (events, or rendered bytes), like
//! Mattermost's size-limited batches; an event is never split.
//!
//! Never keeps a channel in memory (only its participants), never writes a
//! raw non-ASCII or control byte in a header, and never drops a character
//! silently: the plain text part is exact; the HTML part replaces characters
//! HTML cannot carry (control characters) with U+FFFD, with an
//! `html_invalid_char` warning.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::event::{Event, EventKind, format_at};

use super::actiance::{
    channel_change, display_name, full_text, is_xml_char, participant_email, source_email, sync_dir,
};
use super::{ChannelInfo, ExportError, ExportEvent, FormatWriter, PackageInfo, Warning, Warnings};

/// The directory of the messages, relative to the package.
pub const DIR_NAME: &str = "eml";

const FORMAT: &str = "eml";

/// The domain of made-up message ids (`.invalid` never resolves).
const MESSAGE_ID_DOMAIN: &str = "holdfast.invalid";

/// The longest header line written (RFC 5322's recommended limit).
const MAX_HEADER_LINE: usize = 78;

/// Longest run of bytes in one encoded-word of an unstructured header: 36
/// base64 characters, 48 with the `=?UTF-8?B?` `?=` frame, so that a header
/// of a name up to 28 characters and one word fit a line of 78.
const ENCODED_WORD_BYTES: usize = 27;

/// Longest run of bytes in one encoded-word of a display name: 72
/// characters, within RFC 2047's 75. Names up to this length are one word:
/// some parsers (Python's `email` up to at least 3.11) wrongly keep the
/// space between two encoded-words of a display name.
const PHRASE_WORD_BYTES: usize = 45;

/// Longest ASCII word written as it is in a header.
const MAX_RAW_WORD: usize = 48;

/// When a channel is split into several messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmlLimits {
    /// At most this many events in one message.
    pub events_per_message: u64,
    /// At most about this many bytes of rendered text (plain and HTML, before
    /// base64) in one message; a single larger event still gets a message.
    pub body_bytes_per_message: u64,
}

impl Default for EmlLimits {
    fn default() -> Self {
        EmlLimits {
            events_per_message: 10_000,
            body_bytes_per_message: 64 * 1024 * 1024,
        }
    }
}

/// Writes `eml/*.eml`, one message per channel and batch.
pub struct EmlWriter {
    dir: PathBuf,
    export_id: String,
    matter: String,
    created_at_us: i64,
    limits: EmlLimits,
    /// Messages started so far (the last `NNNN`).
    n_messages: u32,
    /// The messages written, relative to the package.
    files: Vec<PathBuf>,
    channel: Option<ChannelState>,
    /// Scratch space for one event's rendering.
    plain: String,
    html: String,
}

struct ChannelState {
    info: ChannelInfo,
    /// The latest display name seen (channel created or renamed).
    display_name: Option<String>,
    /// Parts started so far.
    n_parts: u32,
    /// Events in the parts already written.
    n_events_before: u64,
    batch: Option<Batch>,
}

/// The message being spooled.
struct Batch {
    number: u32,
    part: u32,
    /// `NNNN-team-channel.eml`.
    file_name: String,
    plain: Spool,
    html: Spool,
    participants: HashMap<String, ParticipantRow>,
    n_events: u64,
    n_body_bytes: u64,
    first_us: Option<i64>,
    last_us: Option<i64>,
}

struct ParticipantRow {
    /// Rank of first appearance in the batch.
    rank: usize,
    email: String,
    email_from_source: bool,
    n_messages: u64,
    n_events: u64,
    first_us: i64,
    last_us: i64,
}

impl EmlWriter {
    /// A writer with the default [`EmlLimits`].
    pub fn create(package_dir: &Path, info: &PackageInfo) -> Result<EmlWriter, ExportError> {
        EmlWriter::create_with_limits(package_dir, info, EmlLimits::default())
    }

    /// A writer that splits channels by `limits`.
    pub fn create_with_limits(
        package_dir: &Path,
        info: &PackageInfo,
        limits: EmlLimits,
    ) -> Result<EmlWriter, ExportError> {
        let dir = package_dir.join(DIR_NAME);
        fs::create_dir_all(&dir).map_err(|error| ExportError::io(&dir, error))?;
        Ok(EmlWriter {
            dir,
            export_id: info.export_id.clone(),
            matter: info.matter.clone(),
            created_at_us: info.created_at_us,
            limits: EmlLimits {
                events_per_message: limits.events_per_message.max(1),
                body_bytes_per_message: limits.body_bytes_per_message.max(1),
            },
            n_messages: 0,
            files: Vec::new(),
            channel: None,
            plain: String::new(),
            html: String::new(),
        })
    }

    /// Starts the next batch of the current channel.
    fn start_batch(&mut self) -> Result<(), ExportError> {
        let channel = self
            .channel
            .as_mut()
            .expect("start_batch is called inside a channel");
        self.n_messages += 1;
        channel.n_parts += 1;
        let file_name = format!(
            "{:04}-{}-{}.eml",
            self.n_messages,
            file_name_part(&channel.info.team),
            file_name_part(&channel.info.channel)
        );
        channel.batch = Some(Batch {
            number: self.n_messages,
            part: channel.n_parts,
            plain: Spool::create(self.dir.join(format!(".{file_name}.plain.spool")))?,
            html: Spool::create(self.dir.join(format!(".{file_name}.html.spool")))?,
            file_name,
            participants: HashMap::new(),
            n_events: 0,
            n_body_bytes: 0,
            first_us: None,
            last_us: None,
        });
        Ok(())
    }

    /// Writes the current batch as a message; `more_follow` when the channel
    /// continues in another part.
    fn finish_batch(
        &mut self,
        more_follow: bool,
        warnings: &mut Warnings,
    ) -> Result<(), ExportError> {
        let channel = self
            .channel
            .as_mut()
            .expect("finish_batch is called inside a channel");
        let batch = channel
            .batch
            .take()
            .expect("finish_batch is called with a batch");
        let split = more_follow || batch.part > 1;
        let message = MessageFacts {
            export_id: &self.export_id,
            matter: &self.matter,
            created_at_us: self.created_at_us,
            channel: &channel.info,
            display_name: channel.display_name.as_deref(),
            n_events_before: channel.n_events_before,
            split,
        };
        let (relative, n_events) = message.assemble(&self.dir, batch, warnings)?;
        self.files.push(relative);
        channel.n_events_before += n_events;
        Ok(())
    }
}

impl FormatWriter for EmlWriter {
    fn begin_channel(&mut self, channel: &ChannelInfo) -> Result<(), ExportError> {
        if let Some(open) = &self.channel {
            return Err(ExportError::channel_still_open(FORMAT, channel, &open.info));
        }
        self.channel = Some(ChannelState {
            info: channel.clone(),
            display_name: None,
            n_parts: 0,
            n_events_before: 0,
            batch: None,
        });
        Ok(())
    }

    fn write(&mut self, event: &ExportEvent, warnings: &mut Warnings) -> Result<(), ExportError> {
        let event = &event.event;
        let channel =
            ExportError::open_channel(FORMAT, event, self.channel.as_ref(), |open| &open.info)?;

        self.plain.clear();
        self.html.clear();
        render_plain(event, &mut self.plain);
        let n_replaced = render_html(event, &mut self.html);
        let n_bytes = (self.plain.len() + self.html.len()) as u64;

        let full = channel.batch.as_ref().is_some_and(|batch| {
            batch.n_events > 0
                && (batch.n_events >= self.limits.events_per_message
                    || batch.n_body_bytes + n_bytes > self.limits.body_bytes_per_message)
        });
        if full {
            self.finish_batch(true, warnings)?;
        }
        if self
            .channel
            .as_ref()
            .is_some_and(|channel| channel.batch.is_none())
        {
            self.start_batch()?;
        }
        let channel = self
            .channel
            .as_mut()
            .expect("checked to be inside a channel above");
        let batch = channel.batch.as_mut().expect("a batch was started above");

        batch.plain.write(self.plain.as_bytes())?;
        batch.html.write(self.html.as_bytes())?;
        batch.n_body_bytes += n_bytes;
        batch.n_events += 1;
        batch.first_us.get_or_insert(event.at_us);
        batch.last_us = Some(event.at_us);
        if n_replaced > 0 {
            warnings.push(html_warning(
                &batch.file_name,
                Some(&event.id),
                n_replaced,
                "the event",
            ));
        }

        let rank = batch.participants.len();
        let email_from_event = source_email(event);
        let row = batch
            .participants
            .entry(event.user.clone())
            .or_insert_with(|| ParticipantRow {
                rank,
                email: participant_email(event),
                email_from_source: email_from_event.is_some(),
                n_messages: 0,
                n_events: 0,
                first_us: event.at_us,
                last_us: event.at_us,
            });
        if let Some(email) = email_from_event
            && !row.email_from_source
        {
            row.email = email.to_owned();
            row.email_from_source = true;
        }
        row.n_events += 1;
        if event.kind == EventKind::Post {
            row.n_messages += 1;
        }
        row.last_us = event.at_us;

        if matches!(
            event.kind,
            EventKind::ChannelCreate | EventKind::ChannelRename
        ) && let Some(name) = display_name(event)
        {
            channel.display_name = Some(name.to_owned());
        }
        Ok(())
    }

    fn end_channel(&mut self, warnings: &mut Warnings) -> Result<(), ExportError> {
        let Some(channel) = &self.channel else {
            return Err(ExportError::Format {
                format: FORMAT,
                message: "a channel ends that did not begin".into(),
            });
        };
        if channel.batch.is_none() && channel.n_parts == 0 {
            // A channel without events still gets its (empty) message.
            self.start_batch()?;
        }
        if self
            .channel
            .as_ref()
            .is_some_and(|channel| channel.batch.is_some())
        {
            self.finish_batch(false, warnings)?;
        }
        self.channel = None;
        Ok(())
    }

    fn finish(mut self: Box<Self>, warnings: &mut Warnings) -> Result<Vec<PathBuf>, ExportError> {
        if self.channel.is_some() {
            self.end_channel(warnings)?;
        }
        // Every message was synced and renamed when its batch ended, and the
        // directory synced after each rename.
        if self.files.is_empty() {
            // No channel: no `eml/` (fails, harmlessly, if it is not empty).
            let _ = fs::remove_dir(&self.dir);
        }
        Ok(std::mem::take(&mut self.files))
    }
}

/// What a message says about its export and channel.
struct MessageFacts<'a> {
    export_id: &'a str,
    matter: &'a str,
    created_at_us: i64,
    channel: &'a ChannelInfo,
    display_name: Option<&'a str>,
    n_events_before: u64,
    /// Whether the channel has more than one part.
    split: bool,
}

impl MessageFacts<'_> {
    /// Writes the message of `batch` under `dir`; returns its path relative
    /// to the package and its event count.
    fn assemble(
        &self,
        dir: &Path,
        batch: Batch,
        warnings: &mut Warnings,
    ) -> Result<(PathBuf, u64), ExportError> {
        let Batch {
            number,
            part,
            file_name,
            plain,
            html,
            participants,
            n_events,
            first_us,
            last_us,
            ..
        } = batch;
        let relative = format!("{DIR_NAME}/{file_name}");
        let mut participants: Vec<(String, ParticipantRow)> = participants.into_iter().collect();
        participants.sort_by_key(|(_, row)| row.rank);

        let channel_label = format!("{}/{}", self.channel.team, self.channel.channel);
        let mut subject = format!(
            "Holdfast Compliance Export: {}",
            match self.display_name {
                Some(name) => format!("{name} ({channel_label})"),
                None => channel_label,
            }
        );
        if self.split {
            let _ = write!(subject, " (part {part})");
        }
        let date_us = last_us.unwrap_or(self.created_at_us);
        let boundary = format!("=_holdfast_{number:04}_{n_events}");

        // Headers.
        let mut head = String::with_capacity(4096);
        let mut addresses: Vec<Vec<String>> = participants
            .iter()
            .map(|(user, row)| mailbox_tokens(user, &row.email))
            .collect();
        if addresses.is_empty() {
            addresses.push(mailbox_tokens(
                "holdfast",
                &format!("export@{MESSAGE_ID_DOMAIN}"),
            ));
        }
        write_header(&mut head, "From", &addresses[0]);
        let mut to = Vec::new();
        for (index, mailbox) in addresses.iter().enumerate() {
            let mut mailbox = mailbox.clone();
            if index + 1 < addresses.len()
                && let Some(last) = mailbox.last_mut()
            {
                last.push(',');
            }
            to.extend(mailbox);
        }
        write_header(&mut head, "To", &to);
        write_header(&mut head, "Subject", &text_tokens(&subject));
        write_header(&mut head, "Date", &[rfc5322_date(date_us)]);
        write_header(
            &mut head,
            "Message-ID",
            &[format!(
                "<holdfast.{}.{number:04}@{MESSAGE_ID_DOMAIN}>",
                message_id_part(self.export_id)
            )],
        );
        write_header(&mut head, "MIME-Version", &["1.0".into()]);
        write_header(&mut head, "Auto-Submitted", &["auto-generated".into()]);
        write_header(&mut head, "Precedence", &["bulk".into()]);
        write_header(
            &mut head,
            "X-Holdfast-Export-Id",
            &text_tokens(self.export_id),
        );
        if !self.matter.is_empty() {
            write_header(&mut head, "X-Holdfast-Matter", &text_tokens(self.matter));
        }
        write_header(
            &mut head,
            "X-Holdfast-Team",
            &text_tokens(&self.channel.team),
        );
        write_header(
            &mut head,
            "X-Holdfast-Channel",
            &text_tokens(&self.channel.channel),
        );
        if let Some(name) = self.display_name {
            write_header(&mut head, "X-Holdfast-Display-Name", &text_tokens(name));
        }
        write_header(&mut head, "X-Holdfast-Part", &[part.to_string()]);
        write_header(&mut head, "X-Holdfast-Event-Count", &[n_events.to_string()]);
        write_header(
            &mut head,
            "X-Holdfast-Channel-Events",
            &[self.channel.events.to_string()],
        );
        if let (Some(first_us), Some(last_us)) = (first_us, last_us) {
            write_header(
                &mut head,
                "X-Holdfast-First-Event-At",
                &[format_at(first_us)],
            );
            write_header(&mut head, "X-Holdfast-Last-Event-At", &[format_at(last_us)]);
        }
        let _ = write!(
            head,
            "Content-Type: multipart/alternative;\r\n boundary=\"{boundary}\"\r\n\r\n\
             This is a multi-part message in MIME format.\r\n"
        );

        // The facts and the participant table, in both forms.
        let facts = self.facts(part, n_events, first_us, last_us);
        let mut plain_intro = String::from("Holdfast compliance export\r\n\r\n");
        for (name, value) in &facts {
            let _ = write!(plain_intro, "{name}: {value}\r\n");
        }
        plain_intro.push_str("\r\nParticipants\r\n");
        plain_intro.push_str("user | email | messages | events | first seen | last seen\r\n");
        for (user, row) in &participants {
            let _ = write!(
                plain_intro,
                "{user} | {} | {} | {} | {} | {}\r\n",
                row.email,
                row.n_messages,
                row.n_events,
                format_at(row.first_us),
                format_at(row.last_us)
            );
        }
        plain_intro.push_str("\r\nMessages\r\n\r\n");

        let mut n_replaced = 0;
        let mut html_intro = String::from(
            "<!DOCTYPE html>\r\n<html>\r\n<head>\r\n<meta charset=\"utf-8\">\r\n<title>",
        );
        n_replaced += push_html_escaped(&mut html_intro, &subject);
        html_intro.push_str(
            "</title>\r\n<style>\r\n\
             table { border-collapse: collapse; }\r\n\
             th, td { border: 1px solid #999; padding: 2px 6px; text-align: left; }\r\n\
             .event { margin: 0 0 0.8em 0; }\r\n\
             .meta { color: #555; margin: 0; }\r\n\
             .text { white-space: pre-wrap; margin: 0.2em 0 0 1em; }\r\n\
             </style>\r\n</head>\r\n<body>\r\n<h1>Holdfast compliance export</h1>\r\n\
             <table class=\"facts\">\r\n",
        );
        for (name, value) in &facts {
            html_intro.push_str("<tr><th>");
            html_intro.push_str(name);
            html_intro.push_str("</th><td>");
            n_replaced += push_html_escaped(&mut html_intro, value);
            html_intro.push_str("</td></tr>\r\n");
        }
        html_intro.push_str(
            "</table>\r\n<h2>Participants</h2>\r\n<table class=\"participants\">\r\n\
             <tr><th>User</th><th>Email</th><th>Messages</th><th>Events</th>\
             <th>First seen</th><th>Last seen</th></tr>\r\n",
        );
        for (user, row) in &participants {
            html_intro.push_str("<tr><td>");
            n_replaced += push_html_escaped(&mut html_intro, user);
            html_intro.push_str("</td><td>");
            n_replaced += push_html_escaped(&mut html_intro, &row.email);
            let _ = write!(
                html_intro,
                "</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\r\n",
                row.n_messages,
                row.n_events,
                format_at(row.first_us),
                format_at(row.last_us)
            );
        }
        html_intro.push_str("</table>\r\n<h2>Messages</h2>\r\n");
        if n_replaced > 0 {
            warnings.push(html_warning(
                &file_name,
                None,
                n_replaced,
                "the channel's names",
            ));
        }

        // The message: to a temporary name, synced, then renamed.
        let path = dir.join(&file_name);
        let temporary = dir.join(format!(".{file_name}.tmp"));
        let written = write_message(
            &temporary,
            &head,
            &boundary,
            [
                ("text/plain", plain_intro.as_str(), plain, ""),
                (
                    "text/html",
                    html_intro.as_str(),
                    html,
                    "</body>\r\n</html>\r\n",
                ),
            ],
        );
        if let Err(error) = written {
            // Best effort: the export fails with `error` either way.
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
        fs::rename(&temporary, &path).map_err(|error| ExportError::io(&path, error))?;
        sync_dir(dir)?;
        Ok((PathBuf::from(relative), n_events))
    }

    /// The export's and channel's facts, as (name, value) rows.
    fn facts(
        &self,
        part: u32,
        n_events: u64,
        first_us: Option<i64>,
        last_us: Option<i64>,
    ) -> Vec<(&'static str, String)> {
        let mut facts = vec![("Export", self.export_id.to_owned())];
        if !self.matter.is_empty() {
            facts.push(("Matter", self.matter.to_owned()));
        }
        facts.push(("Team", self.channel.team.clone()));
        facts.push(("Channel", self.channel.channel.clone()));
        if let Some(name) = self.display_name {
            facts.push(("Display name", name.to_owned()));
        }
        let events = if n_events == 0 {
            format!("none of {}", self.channel.events)
        } else {
            format!(
                "{} to {} of {}",
                self.n_events_before + 1,
                self.n_events_before + n_events,
                self.channel.events
            )
        };
        facts.push(("Part", format!("{part} (events {events})")));
        if let (Some(first_us), Some(last_us)) = (first_us, last_us) {
            facts.push((
                "Period",
                format!("{} to {}", format_at(first_us), format_at(last_us)),
            ));
        }
        facts.push(("Exported at", format_at(self.created_at_us)));
        facts
    }
}

/// Writes a message to `path` and syncs it: `head` (the headers, ending
/// with the multipart preamble), then each part's intro, spool and outro in
/// base64.
fn write_message(
    path: &Path,
    head: &str,
    boundary: &str,
    parts: [(&str, &str, Spool, &str); 2],
) -> Result<(), ExportError> {
    let io_error = |error| ExportError::io(path, error);
    let file = File::create(path).map_err(io_error)?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    out.write_all(head.as_bytes()).map_err(io_error)?;
    for (content_type, intro, spool, outro) in parts {
        write!(
            out,
            "\r\n--{boundary}\r\nContent-Type: {content_type}; charset=utf-8\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n"
        )
        .map_err(io_error)?;
        let mut encoder = Base64Lines::new(&mut out);
        encoder.write_all(intro.as_bytes()).map_err(io_error)?;
        spool.copy_to(&mut encoder)?;
        encoder.write_all(outro.as_bytes()).map_err(io_error)?;
        encoder.finish().map_err(io_error)?;
    }
    write!(out, "\r\n--{boundary}--\r\n").map_err(io_error)?;
    let file = out
        .into_inner()
        .map_err(|error| ExportError::io(path, error.into_error()))?;
    file.sync_all().map_err(io_error)
}

/// What the event says, in words, after the user's name: `posted p-1 in
/// thread p-0`, `reacted :x: to p-2`, ...
fn action(event: &Event) -> String {
    let post = event.post.as_deref().unwrap_or("?");
    let mut action = match event.kind {
        EventKind::Post => format!("posted {post}"),
        EventKind::Edit => format!("edited {post}"),
        EventKind::Delete => format!("deleted {post}"),
        EventKind::ReactionAdd => format!(
            "reacted :{}: to {post}",
            event.emoji.as_deref().unwrap_or("")
        ),
        EventKind::ReactionRemove => format!(
            "removed reaction :{}: from {post}",
            event.emoji.as_deref().unwrap_or("")
        ),
        EventKind::File => format!("attached files to {post}"),
        EventKind::ChannelCreate | EventKind::ChannelRename | EventKind::ChannelArchive => {
            channel_change(event)
        }
        EventKind::MemberJoin => "joined the channel".into(),
        EventKind::MemberLeave => "left the channel".into(),
    };
    if let Some(parent) = &event.parent {
        let _ = write!(action, " in thread {parent}");
    }
    action
}

/// One attachment, in words.
fn file_line(file: &crate::event::FileRef) -> String {
    let mut line = format!("{} ({} bytes", file.name, file.size);
    if let Some(mime) = &file.mime {
        let _ = write!(line, ", {mime}");
    }
    if let Some(sha256) = &file.sha256 {
        let _ = write!(line, ", sha256 {sha256}");
    }
    line.push(')');
    line
}

/// The source's system message text of a non-post event (kept by importers
/// in `props.message`).
fn system_message(event: &Event) -> Option<&str> {
    if matches!(event.kind, EventKind::Post | EventKind::Edit) {
        return None;
    }
    event
        .props
        .get("message")
        .and_then(Value::as_str)
        .filter(|message| !message.is_empty())
}

/// The event in the plain text part: a line of who, what and when, the text
/// as archived on the lines after it, attachments, then an empty line.
fn render_plain(event: &Event, out: &mut String) {
    let _ = write!(
        out,
        "[{}] {} {} (event {})\r\n",
        format_at(event.at_us),
        event.user,
        action(event),
        event.id
    );
    if let Some(text) = full_text(event).filter(|text| !text.is_empty()) {
        out.push_str(&text);
        out.push_str("\r\n");
    }
    if let Some(message) = system_message(event) {
        out.push_str("system message: ");
        out.push_str(message);
        out.push_str("\r\n");
    }
    for file in &event.files {
        out.push_str("attachment: ");
        out.push_str(&file_line(file));
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
}

/// The event in the HTML part; returns how many characters were replaced.
fn render_html(event: &Event, out: &mut String) -> usize {
    let mut n_replaced = 0;
    out.push_str("<div class=\"event\" data-event-id=\"");
    n_replaced += push_html_escaped(out, &event.id);
    let _ = write!(
        out,
        "\" data-kind=\"{}\">\r\n<p class=\"meta\"><span class=\"time\">{}</span> <b class=\"user\">",
        event.kind,
        format_at(event.at_us)
    );
    n_replaced += push_html_escaped(out, &event.user);
    out.push_str("</b> <span class=\"action\">");
    n_replaced += push_html_escaped(out, &action(event));
    out.push_str("</span> <span class=\"event-id\">(event ");
    n_replaced += push_html_escaped(out, &event.id);
    out.push_str(")</span></p>\r\n");
    if let Some(text) = full_text(event).filter(|text| !text.is_empty()) {
        out.push_str("<div class=\"text\">");
        n_replaced += push_html_escaped(out, &text);
        out.push_str("</div>\r\n");
    }
    if let Some(message) = system_message(event) {
        out.push_str("<div class=\"system\">system message: ");
        n_replaced += push_html_escaped(out, message);
        out.push_str("</div>\r\n");
    }
    if !event.files.is_empty() {
        out.push_str("<ul class=\"files\">\r\n");
        for file in &event.files {
            out.push_str("<li>");
            n_replaced += push_html_escaped(out, &file_line(file));
            out.push_str("</li>\r\n");
        }
        out.push_str("</ul>\r\n");
    }
    out.push_str("</div>\r\n");
    n_replaced
}

/// Appends `text` escaped for HTML text and double-quoted attributes;
/// characters that are not allowed (those XML 1.0 cannot carry: control
/// characters) become U+FFFD. Returns how many were replaced.
fn push_html_escaped(out: &mut String, text: &str) -> usize {
    let mut n_replaced = 0;
    let mut clean_from = 0;
    for (index, ch) in text.char_indices() {
        let replacement = match ch {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
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

fn html_warning(file_name: &str, event_id: Option<&str>, n_replaced: usize, what: &str) -> Warning {
    Warning {
        file: format!("{DIR_NAME}/{file_name}"),
        event_id: event_id.map(str::to_owned),
        code: "html_invalid_char".into(),
        message: format!(
            "{n_replaced} character(s) of {what} cannot be written in HTML (control characters); \
             replaced with U+FFFD in the HTML part, exact in the plain text part"
        ),
    }
}

/// A team or channel name for a file name: `[A-Za-z0-9._-]`, others `_`,
/// at most 40 characters.
fn file_name_part(name: &str) -> String {
    name.chars()
        .take(40)
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-') {
                ch
            } else {
                '_'
            }
        })
        .collect()
}

/// The export id as a dot-atom for a `Message-ID`.
fn message_id_part(export_id: &str) -> String {
    let part: String = export_id
        .chars()
        .take(64)
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' {
                ch
            } else {
                '-'
            }
        })
        .collect();
    if part.is_empty() {
        "export".into()
    } else {
        part
    }
}

/// `Mon, 02 Mar 2026 17:00:00 +0000`.
fn rfc5322_date(at_us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(at_us)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// An unstructured header value as words: the value's own words when it is
/// short-worded printable ASCII with single spaces, else RFC 2047
/// encoded-words.
fn text_tokens(value: &str) -> Vec<String> {
    let plain = !value.is_empty()
        && value.bytes().all(|byte| (0x20..0x7f).contains(&byte))
        && !value.contains("=?")
        && value
            .split(' ')
            .all(|word| !word.is_empty() && word.len() <= MAX_RAW_WORD);
    if plain {
        value.split(' ').map(str::to_owned).collect()
    } else {
        encoded_words(value, ENCODED_WORD_BYTES)
    }
}

/// `=?UTF-8?B?...?=` words of at most `max_bytes` bytes each, cut between
/// characters; none for an empty value.
fn encoded_words(value: &str, max_bytes: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (index, ch) in value.char_indices() {
        if index + ch.len_utf8() - start > max_bytes && end > start {
            words.push(encoded_word(&value[start..end]));
            start = end;
        }
        end = index + ch.len_utf8();
    }
    if end > start {
        words.push(encoded_word(&value[start..end]));
    }
    words
}

fn encoded_word(chunk: &str) -> String {
    format!("=?UTF-8?B?{}?=", BASE64.encode(chunk))
}

/// A mailbox as header words: `"user" <address>` for a simple user name,
/// else the name as encoded-words.
fn mailbox_tokens(user: &str, email: &str) -> Vec<String> {
    let simple = !user.is_empty()
        && user.len() <= 40
        && user
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    let mut tokens = if simple {
        vec![format!("\"{user}\"")]
    } else {
        encoded_words(user, PHRASE_WORD_BYTES)
    };
    tokens.push(format!("<{email}>"));
    tokens
}

/// Writes `name: tokens`, folded between tokens so that lines stay within
/// [`MAX_HEADER_LINE`] (a single longer token gets a line of its own).
fn write_header(out: &mut String, name: &str, tokens: &[String]) {
    out.push_str(name);
    out.push(':');
    let mut line_len = name.len() + 1;
    for (index, token) in tokens.iter().enumerate() {
        if index > 0 && line_len + 1 + token.len() > MAX_HEADER_LINE {
            out.push_str("\r\n");
            line_len = 0;
        }
        out.push(' ');
        out.push_str(token);
        line_len += 1 + token.len();
    }
    out.push_str("\r\n");
}

/// A spool file: rendered events of one part of a batch, on disk until the
/// message is assembled. Deleted when dropped.
struct Spool {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl Spool {
    fn create(path: PathBuf) -> Result<Spool, ExportError> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|error| ExportError::io(&path, error))?;
        Ok(Spool {
            path,
            out: Some(BufWriter::with_capacity(64 * 1024, file)),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        let out = self
            .out
            .as_mut()
            .expect("a spool is written only before it is read");
        out.write_all(bytes)
            .map_err(|error| ExportError::io(&self.path, error))
    }

    /// Copies everything written to `to`, then deletes the spool.
    fn copy_to(mut self, to: &mut impl Write) -> Result<(), ExportError> {
        let out = self.out.take().expect("a spool is read once");
        let mut file = out
            .into_inner()
            .map_err(|error| ExportError::io(&self.path, error.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|error| ExportError::io(&self.path, error))?;
        io::copy(&mut BufReader::with_capacity(256 * 1024, file), to)
            .map_err(|error| ExportError::io(&self.path, error))?;
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.out = None;
        // Best effort: a spool left behind by a failed export is only a
        // hidden file in a package that failed.
        let _ = fs::remove_file(&self.path);
    }
}

/// Base64 in lines of 76 characters (57 bytes), CRLF-terminated, as MIME
/// wants it, over any number of writes.
struct Base64Lines<W: Write> {
    out: W,
    /// Bytes waiting for a full line (fewer than 57).
    pending: Vec<u8>,
    line: String,
}

const BASE64_LINE_BYTES: usize = 57;

impl<W: Write> Base64Lines<W> {
    fn new(out: W) -> Self {
        Base64Lines {
            out,
            pending: Vec::with_capacity(BASE64_LINE_BYTES),
            line: String::with_capacity(80),
        }
    }

    fn write_line(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.line.clear();
        BASE64.encode_string(bytes, &mut self.line);
        self.line.push_str("\r\n");
        self.out.write_all(self.line.as_bytes())
    }

    /// Writes the last, shorter line.
    fn finish(mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.write_line(&pending)?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Base64Lines<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n_written = data.len();
        if !self.pending.is_empty() {
            let take = (BASE64_LINE_BYTES - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < BASE64_LINE_BYTES {
                return Ok(n_written);
            }
            let pending = std::mem::take(&mut self.pending);
            self.write_line(&pending)?;
            self.pending = pending;
            self.pending.clear();
        }
        let mut lines = data.chunks_exact(BASE64_LINE_BYTES);
        for line in &mut lines {
            self.write_line(line)?;
        }
        self.pending.extend_from_slice(lines.remainder());
        Ok(n_written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::actiance::tests::{CORPUS, channels_of, feed, package_info, run_python};
    use serde_json::json;
    use std::collections::BTreeMap;

    /// Every message as parsed by Python's `email` package (policy.default).
    const PARSE_EML: &str = r#"
import email, email.policy, json, sys
out = []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    defects = [repr(d) for d in msg.defects]
    headers = {}
    for name in msg.keys():
        value = msg[name]
        defects += [name + ": " + repr(d) for d in getattr(value, "defects", ())]
        headers[name] = str(value)
    addresses = {}
    for name in ("From", "To"):
        addresses[name] = [[a.display_name, a.addr_spec] for a in msg[name].addresses]
    parts = []
    for part in msg.iter_parts():
        defects += [repr(d) for d in part.defects]
        parts.append({
            "type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "cte": part["Content-Transfer-Encoding"],
            "content": part.get_content(),
        })
    out.append({
        "path": path,
        "defects": defects,
        "type": msg.get_content_type(),
        "headers": headers,
        "addresses": addresses,
        "date": msg["Date"].datetime.isoformat(),
        "parts": parts,
    })
json.dump(out, sys.stdout, ensure_ascii=True)
"#;

    struct Written {
        _dir: tempfile::TempDir,
        files: Vec<PathBuf>,
        warnings: Warnings,
        messages: Vec<Value>,
        raw: Vec<Vec<u8>>,
    }

    fn write_package(lines: &str, limits: EmlLimits) -> Written {
        let dir = tempfile::tempdir().expect("temp dir");
        let channels = channels_of(lines);
        let info = package_info(&channels);
        let writer = EmlWriter::create_with_limits(dir.path(), &info, limits).expect("create");
        let (files, warnings) = feed(Box::new(writer), &channels);
        let paths: Vec<PathBuf> = files.iter().map(|file| dir.path().join(file)).collect();
        let path_refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let messages: Vec<Value> =
            serde_json::from_str(&run_python(PARSE_EML, &path_refs)).expect("parser output");
        let raw = paths
            .iter()
            .map(|path| fs::read(path).expect("read message"))
            .collect();
        // Only the messages are left: no spool, no temporary file.
        let mut left: Vec<String> = fs::read_dir(dir.path().join(DIR_NAME))
            .expect("eml dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        left.sort();
        let expected: Vec<String> = files
            .iter()
            .map(|file| {
                file.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(left, expected);
        Written {
            _dir: dir,
            files,
            warnings,
            messages,
            raw,
        }
    }

    fn part<'a>(message: &'a Value, content_type: &str) -> &'a str {
        message["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .find(|part| part["type"] == content_type)
            .and_then(|part| part["content"].as_str())
            .unwrap_or_else(|| panic!("no {content_type} part"))
    }

    fn unescape_html(html: &str) -> String {
        html.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    fn assert_lines_within_limits(raw: &[u8]) {
        assert!(raw.is_ascii(), "a message is 7-bit");
        let text = std::str::from_utf8(raw).expect("ascii");
        assert!(text.ends_with("\r\n"));
        for line in text.split("\r\n") {
            assert!(
                !line.contains('\n') && !line.contains('\r'),
                "bare line end"
            );
            assert!(line.len() <= MAX_HEADER_LINE, "line too long: {line}");
        }
    }

    #[test]
    fn corpus_gives_one_clean_message_per_channel() {
        let written = write_package(CORPUS, EmlLimits::default());
        assert!(
            written.warnings.is_empty(),
            "{:?}",
            written.warnings.items()
        );
        assert_eq!(
            written.files,
            [
                PathBuf::from("eml/0001-legal-case-4711.eml"),
                PathBuf::from("eml/0002-trading-west-desk.eml"),
            ]
        );
        for raw in &written.raw {
            assert_lines_within_limits(raw);
        }
        let channels = channels_of(CORPUS);
        for (message, (info, events)) in written.messages.iter().zip(&channels) {
            assert_eq!(message["defects"], json!([]), "{}", message["path"]);
            assert_eq!(message["type"], "multipart/alternative");
            for part in message["parts"].as_array().expect("parts") {
                assert_eq!(part["charset"], "utf-8");
                assert_eq!(part["cte"], "base64");
            }
            let headers = &message["headers"];
            assert_eq!(headers["X-Holdfast-Team"], info.team.as_str());
            assert_eq!(headers["X-Holdfast-Channel"], info.channel.as_str());
            assert_eq!(headers["X-Holdfast-Export-Id"], "exp-000042");
            assert_eq!(headers["X-Holdfast-Matter"], "Müller v. Enron");
            assert_eq!(headers["X-Holdfast-Event-Count"], events.len().to_string());
            assert_eq!(headers["X-Holdfast-Part"], "1");
            assert_eq!(headers["MIME-Version"], "1.0");

            let plain = part(message, "text/plain");
            let html = part(message, "text/html");
            let unescaped = unescape_html(html);
            // Every text of the channel, exact, in both parts.
            for event in events.iter().map(|event| &event.event) {
                if let Some(text) = &event.text {
                    assert!(plain.contains(text.as_str()), "{} not in plain", event.id);
                    assert!(
                        unescaped.contains(text.as_str()),
                        "{} not in html",
                        event.id
                    );
                }
                let marker = format!("data-event-id=\"{}\"", event.id);
                assert_eq!(html.matches(&marker).count(), 1, "{}", event.id);
                assert_eq!(
                    plain.matches(&format!("(event {})\r\n", event.id)).count(),
                    1
                );
            }
            // The participant table lists every user of the channel.
            let mut users: Vec<&str> = events
                .iter()
                .map(|event| event.event.user.as_str())
                .collect();
            users.sort();
            users.dedup();
            let table = &html[html.find("<table class=\"participants\">").expect("table")..];
            let table = &table[..table.find("</table>").expect("table end")];
            for user in &users {
                assert!(table.contains(&format!("<tr><td>{user}</td>")), "{user}");
                assert!(plain.contains(&format!("\r\n{user} | ")), "{user}");
            }
            assert_eq!(table.matches("<tr><td>").count(), users.len());
            let to: Vec<&str> = message["addresses"]["To"]
                .as_array()
                .expect("to")
                .iter()
                .map(|address| address[0].as_str().expect("name"))
                .collect();
            let mut sorted_to = to.clone();
            sorted_to.sort();
            assert_eq!(sorted_to, users);
        }

        let legal = &written.messages[0];
        let headers = &legal["headers"];
        assert_eq!(
            headers["Subject"],
            "Holdfast Compliance Export: Case 4711 (privileged) (legal/case-4711)"
        );
        assert_eq!(headers["X-Holdfast-Display-Name"], "Case 4711 (privileged)");
        assert_eq!(
            legal["addresses"]["From"],
            json!([["kay.mann", "kay.mann@legal.holdfast.invalid"]])
        );
        assert_eq!(legal["date"], "2026-03-02T17:00:00+00:00");
        assert_eq!(
            headers["X-Holdfast-First-Event-At"],
            "2026-03-02T08:59:00.000Z"
        );
        assert_eq!(
            headers["Message-ID"],
            "<holdfast.exp-000042.0001@holdfast.invalid>"
        );
        let html = part(legal, "text/html");
        assert!(html.contains("&lt;see redline&gt; &amp; &quot;notes&quot;"));
        assert!(!html.contains("<see redline>"));
        let plain = part(legal, "text/plain");
        assert!(plain.contains("<see redline> & \"notes\""));
        assert!(plain.contains("kay.mann reacted :thumbsup: to p-2"));
        assert!(plain.contains("kay.mann deleted p-3 (event ev-011)"));
        assert!(plain.contains("sara.shackleton edited p-2 in thread p-1 (event ev-007)"));
        assert!(plain.contains(
            "attachment: settlement-draft-v3.docx (48213 bytes, application/vnd.openxmlformats"
        ));
        assert!(plain.contains("jeff.dasovich removed reaction :white_check_mark: from p-5"));
        assert!(plain.contains("second line\r\nthird line, with a comma"));

        let trading = &written.messages[1];
        assert_eq!(
            trading["headers"]["Subject"],
            "Holdfast Compliance Export: trading/west-desk"
        );
        assert!(part(trading, "text/plain").contains("attachment: Überblick Q1.pdf (2048 bytes"));
        // Microseconds are kept.
        assert!(
            part(trading, "text/plain").contains("[2026-03-02T09:00:00.000250Z] phillip.allen")
        );
    }

    #[test]
    fn a_tiny_limit_splits_channels_covering_every_event_once() {
        let written = write_package(
            CORPUS,
            EmlLimits {
                events_per_message: 4,
                ..EmlLimits::default()
            },
        );
        // 17 events: 5 messages; 6 events: 2 messages.
        assert_eq!(written.files.len(), 7);
        assert_eq!(
            written.files[6],
            PathBuf::from("eml/0007-trading-west-desk.eml")
        );
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (index, message) in written.messages.iter().enumerate() {
            assert_eq!(message["defects"], json!([]));
            assert_lines_within_limits(&written.raw[index]);
            let html = part(message, "text/html");
            let mut n_events = 0;
            for chunk in html.split("data-event-id=\"").skip(1) {
                let id = &chunk[..chunk.find('"').expect("quote")];
                *seen.entry(id.to_owned()).or_default() += 1;
                n_events += 1;
            }
            assert_eq!(
                message["headers"]["X-Holdfast-Event-Count"],
                n_events.to_string()
            );
            assert!(
                message["headers"]["Subject"]
                    .as_str()
                    .expect("subject")
                    .ends_with(&format!(
                        "(part {})",
                        message["headers"]["X-Holdfast-Part"]
                            .as_str()
                            .expect("part")
                    ))
            );
        }
        let all: Vec<String> = channels_of(CORPUS)
            .iter()
            .flat_map(|(_, events)| events.iter().map(|event| event.event.id.clone()))
            .collect();
        assert_eq!(seen.len(), all.len());
        assert!(seen.values().all(|count| *count == 1), "{seen:?}");
        assert!(part(&written.messages[1], "text/plain").contains("Part: 2 (events 5 to 8 of 17)"));

        // A byte limit splits too, and never splits an event.
        let written = write_package(
            CORPUS,
            EmlLimits {
                events_per_message: 10_000,
                body_bytes_per_message: 1,
            },
        );
        assert_eq!(written.files.len(), all.len());
    }

    #[test]
    fn non_ascii_names_are_encoded_and_control_characters_warned() {
        let lines = [
            json!({"id": "n1", "kind": "channel_create", "at": 1000, "team": "Команда",
                   "channel": "канал «1»", "user": "Ζωή Παπαδοπούλου",
                   "props": {"display_name": "Переговоры о слиянии: очень длинное название канала, которое нужно свернуть"}}),
            json!({"id": "n2", "kind": "post", "at": 2000, "team": "Команда",
                   "channel": "канал «1»", "user": "李小龍", "post": "p",
                   "text": "bell\u{7} and 'quotes' 🚀", "props": {"email": "li@example.com"}}),
        ]
        .map(|line| line.to_string())
        .join("\n");
        let written = write_package(&lines, EmlLimits::default());
        assert_eq!(
            written.files,
            [PathBuf::from("eml/0001-_______-_______1_.eml")]
        );
        assert_lines_within_limits(&written.raw[0]);
        let message = &written.messages[0];
        assert_eq!(message["defects"], json!([]));
        assert_eq!(
            message["headers"]["Subject"],
            "Holdfast Compliance Export: Переговоры о слиянии: очень длинное название канала, \
             которое нужно свернуть (Команда/канал «1»)"
        );
        assert_eq!(
            message["addresses"]["From"],
            json!([["Ζωή Παπαδοπούλου", "________________@team.holdfast.invalid"]])
        );
        assert_eq!(
            message["addresses"]["To"][1],
            json!(["李小龍", "li@example.com"])
        );
        assert_eq!(message["headers"]["X-Holdfast-Team"], "Команда");
        // The plain text is exact; the HTML replaces the bell and says so.
        assert!(part(message, "text/plain").contains("bell\u{7} and 'quotes' 🚀"));
        assert!(part(message, "text/html").contains("bell\u{FFFD} and &#39;quotes&#39; 🚀"));
        let warnings = written.warnings.items();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].code, "html_invalid_char");
        assert_eq!(warnings[0].event_id.as_deref(), Some("n2"));
        assert_eq!(warnings[0].file, "eml/0001-_______-_______1_.eml");
    }

    #[test]
    fn an_empty_channel_still_gets_a_message() {
        let dir = tempfile::tempdir().expect("temp dir");
        let info = ChannelInfo {
            team: "t".into(),
            channel: "quiet".into(),
            events: 0,
        };
        let channels = vec![(info, Vec::new())];
        let package = package_info(&channels);
        let writer = EmlWriter::create(dir.path(), &package).expect("create");
        let (files, warnings) = feed(Box::new(writer), &channels);
        assert!(warnings.is_empty());
        assert_eq!(files, [PathBuf::from("eml/0001-t-quiet.eml")]);
        let path = dir.path().join(&files[0]);
        let parsed: Vec<Value> =
            serde_json::from_str(&run_python(PARSE_EML, &[&path])).expect("parser output");
        assert_eq!(parsed[0]["defects"], json!([]));
        assert!(part(&parsed[0], "text/plain").contains("Part: 1 (events none of 0)"));
    }

    #[test]
    fn a_package_without_channels_has_no_eml_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let package = package_info(&[]);
        let writer = EmlWriter::create(dir.path(), &package).expect("create");
        let (files, warnings) = feed(Box::new(writer), &[]);
        assert!(files.is_empty() && warnings.is_empty());
        assert!(!dir.path().join(DIR_NAME).exists());
    }

    #[test]
    fn base64_lines_match_a_one_shot_encoding_whatever_the_writes() {
        let data: Vec<u8> = (0..1000u32).map(|n| (n * 7 % 256) as u8).collect();
        let expected: String = data
            .chunks(BASE64_LINE_BYTES)
            .map(|line| format!("{}\r\n", BASE64.encode(line)))
            .collect();
        for step in [1, 2, 56, 57, 58, 300, 1000] {
            let mut out = Vec::new();
            let mut encoder = Base64Lines::new(&mut out);
            for chunk in data.chunks(step) {
                encoder.write_all(chunk).expect("write");
            }
            encoder.finish().expect("finish");
            assert_eq!(
                String::from_utf8(out).expect("ascii"),
                expected,
                "step {step}"
            );
        }
    }

    #[test]
    fn headers_fold_within_the_line_limit() {
        let mut out = String::new();
        write_header(&mut out, "Subject", &text_tokens(&"Ωμέγα ".repeat(30)));
        for line in out.trim_end().split("\r\n") {
            assert!(line.len() <= MAX_HEADER_LINE, "{line}");
        }
        assert!(out.starts_with("Subject: =?UTF-8?B?"));
        // A long display name and the longest made-up address fold too.
        let user = "Παπαδοπούλου-".repeat(8);
        let email = crate::export::actiance::fallback_email(&"x".repeat(99), &"y".repeat(99));
        for name in ["From", "To"] {
            let mut out = String::new();
            let mut tokens = mailbox_tokens(&user, &email);
            tokens.last_mut().expect("address").push(',');
            tokens.extend(mailbox_tokens("kay.mann", &email));
            write_header(&mut out, name, &tokens);
            for line in out.trim_end().split("\r\n") {
                assert!(line.len() <= MAX_HEADER_LINE, "{line}");
            }
        }
        assert_eq!(mailbox_tokens("Ζωή", "z@t.holdfast.invalid").len(), 2);
        assert_eq!(text_tokens("plain words"), ["plain", "words"]);
        assert_eq!(text_tokens("two  spaces").len(), 1);
        assert!(encoded_words("", ENCODED_WORD_BYTES).is_empty());
        // Never cut inside a character.
        for word in encoded_words(&"🚀".repeat(20), ENCODED_WORD_BYTES) {
            let payload = &word["=?UTF-8?B?".len()..word.len() - 2];
            let bytes = BASE64.decode(payload).expect("base64");
            assert!(std::str::from_utf8(&bytes).is_ok());
        }
    }
}
