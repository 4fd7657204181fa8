//! Ingest: a batch body (NDJSON or a JSON array) in, a report out.
//!
//! The HTTP API and the CLI both call [`ingest_body`]; the CLI streams large
//! files through [`ingest_reader`] in bounded chunks. Bad entries are
//! rejected with the field that is wrong; good entries of the same batch are
//! stored. The report is produced only after the stored events are durable.

use std::io::BufRead;

use serde::Serialize;

use crate::event::{self, BatchError, Event};
use crate::store::{AppendStatus, Store, StoreError};

/// One entry that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// 0-based position in the batch (for NDJSON: the line index).
    pub index: usize,
    /// 1-based line number, for NDJSON input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub id: Option<String>,
    pub error: String,
}

/// What became of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: Vec<Rejected>,
}

impl IngestReport {
    fn merge(&mut self, other: IngestReport) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected.extend(other.rejected);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read input at line {line}: {source}")]
    Read { line: usize, source: std::io::Error },
}

/// Validates a whole body and stores its good entries.
pub async fn ingest_body<B>(store: &Store, body: B) -> Result<IngestReport, IngestError>
where
    B: AsRef<[u8]> + Send + 'static,
{
    let entries = tokio::task::spawn_blocking(move || event::parse_batch(body.as_ref()))
        .await
        .map_err(|error| StoreError::WriteFailed(format!("parser thread failed: {error}")))??;
    store_entries(store, entries, 0).await
}

async fn store_entries(
    store: &Store,
    entries: Vec<event::BatchEntry>,
    line_offset: usize,
) -> Result<IngestReport, IngestError> {
    let mut report = IngestReport::default();
    let mut events: Vec<Event> = Vec::with_capacity(entries.len());
    // Where each event came from, to name one the store refuses.
    let mut origins: Vec<(usize, Option<usize>)> = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry.event {
            Ok(event) => {
                origins.push((
                    entry.index + line_offset,
                    entry.line.map(|line| line + line_offset),
                ));
                events.push(event);
            }
            Err(error) => report.rejected.push(Rejected {
                index: entry.index + line_offset,
                line: entry.line.map(|line| line + line_offset),
                id: entry.id,
                error: error.to_string(),
            }),
        }
    }
    let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
    let statuses = store.append(events).await?;
    for ((status, (index, line)), id) in statuses.into_iter().zip(origins).zip(ids) {
        match status {
            AppendStatus::Stored { .. } => report.accepted += 1,
            AppendStatus::Duplicate => report.duplicates += 1,
            AppendStatus::TooLarge { bytes } => report.rejected.push(Rejected {
                index,
                line,
                id: Some(id),
                error: format!(
                    "(event): event is {bytes} bytes once normalised, more than the limit of {}",
                    crate::event::MAX_CANONICAL_EVENT_BYTES
                ),
            }),
        }
    }
    report.rejected.sort_by_key(|rejected| rejected.index);
    Ok(report)
}

/// Streams NDJSON from a reader in chunks of `chunk_lines` lines, so memory
/// stays bounded whatever the input's size: a line longer than an event may
/// be is cut (and then rejected by its size) rather than read whole.
/// Reading happens on a blocking thread. `progress` is called after each
/// chunk with the running report.
pub async fn ingest_reader<R>(
    store: &Store,
    reader: R,
    chunk_lines: usize,
    mut progress: impl FnMut(&IngestReport),
) -> Result<IngestReport, IngestError>
where
    R: BufRead + Send + 'static,
{
    let mut report = IngestReport::default();
    let mut reader = Some(reader);
    let mut line_no = 0usize;
    loop {
        let first_line = line_no;
        let mut taken = reader
            .take()
            .expect("the reader comes back after every chunk");
        let (back, chunk) = tokio::task::spawn_blocking(move || {
            let chunk = read_chunk(&mut taken, chunk_lines, first_line);
            (taken, chunk)
        })
        .await
        .map_err(|error| StoreError::WriteFailed(format!("reader thread failed: {error}")))?;
        reader = Some(back);
        let (chunk, n_lines) = chunk?;
        if n_lines == 0 {
            break;
        }
        line_no += n_lines;
        // A file is NDJSON: every line is an entry, whatever it looks like.
        let entries = event::parse_ndjson(&chunk);
        report.merge(store_entries(store, entries, first_line).await?);
        progress(&report);
    }
    Ok(report)
}

/// Reads up to `max_lines` lines, each cut at one byte over the event limit.
fn read_chunk(
    reader: &mut impl BufRead,
    max_lines: usize,
    first_line: usize,
) -> Result<(Vec<u8>, usize), IngestError> {
    let cap = event::MAX_EVENT_BYTES + 1;
    let mut chunk = Vec::new();
    let mut n_lines = 0;
    while n_lines < max_lines {
        let line_start = chunk.len();
        let mut ended = false;
        let mut any = false;
        while !ended {
            let available = reader.fill_buf().map_err(|source| IngestError::Read {
                line: first_line + n_lines + 1,
                source,
            })?;
            if available.is_empty() {
                break;
            }
            any = true;
            let (take, used) = match available.iter().position(|b| *b == b'\n') {
                Some(newline) => {
                    ended = true;
                    (newline, newline + 1)
                }
                None => (available.len(), available.len()),
            };
            let room = cap.saturating_sub(chunk.len() - line_start);
            chunk.extend_from_slice(&available[..take.min(room)]);
            reader.consume(used);
        }
        if !any {
            break;
        }
        chunk.push(b'\n');
        n_lines += 1;
    }
    Ok((chunk, n_lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_line_numbers_and_cut_overlong_lines() {
        let long = "x".repeat(3 * event::MAX_EVENT_BYTES);
        let input = format!("a\n{long}\r\nb\n\nc");
        let mut reader = std::io::BufReader::with_capacity(4096, input.as_bytes());
        let (chunk, n) = read_chunk(&mut reader, 3, 0).expect("reads");
        assert_eq!(n, 3);
        let lines: Vec<&[u8]> = chunk.split(|b| *b == b'\n').collect();
        assert_eq!(lines[0], b"a");
        assert_eq!(
            lines[1].len(),
            event::MAX_EVENT_BYTES + 1,
            "cut, not read whole"
        );
        assert_eq!(lines[2], b"b");
        let (rest, n) = read_chunk(&mut reader, 10, 3).expect("reads");
        assert_eq!(n, 2);
        assert_eq!(rest, b"\nc\n");
        let (_, n) = read_chunk(&mut reader, 10, 5).expect("reads");
        assert_eq!(n, 0);
        let entries = event::parse_ndjson(&chunk);
        let error = entries[1].event.as_ref().expect_err("too long");
        assert!(error.to_string().contains("more than the limit"), "{error}");
    }
}
