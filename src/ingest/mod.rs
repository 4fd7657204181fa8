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
    for entry in entries {
        match entry.event {
            Ok(event) => events.push(event),
            Err(error) => report.rejected.push(Rejected {
                index: entry.index + line_offset,
                line: entry.line.map(|line| line + line_offset),
                id: entry.id,
                error: error.to_string(),
            }),
        }
    }
    for status in store.append(events).await? {
        match status {
            AppendStatus::Stored { .. } => report.accepted += 1,
            AppendStatus::Duplicate => report.duplicates += 1,
        }
    }
    Ok(report)
}

/// Streams NDJSON from a reader in chunks of `chunk_lines` lines, so memory
/// stays bounded whatever the input's size. `progress` is called after each
/// chunk with the running report.
pub async fn ingest_reader(
    store: &Store,
    mut reader: impl BufRead,
    chunk_lines: usize,
    mut progress: impl FnMut(&IngestReport),
) -> Result<IngestReport, IngestError> {
    let mut report = IngestReport::default();
    let mut line_no = 0usize;
    loop {
        let mut chunk = Vec::new();
        let first_line = line_no;
        let mut n_lines = 0;
        while n_lines < chunk_lines {
            let start = chunk.len();
            let n = reader
                .read_until(b'\n', &mut chunk)
                .map_err(|source| IngestError::Read {
                    line: line_no + 1,
                    source,
                })?;
            if n == 0 {
                break;
            }
            if chunk.last() != Some(&b'\n') {
                chunk.push(b'\n');
            }
            debug_assert!(chunk.len() > start);
            n_lines += 1;
            line_no += 1;
        }
        if n_lines == 0 {
            break;
        }
        // A file is NDJSON: every line is an entry, whatever it looks like.
        let entries = event::parse_ndjson(&chunk);
        report.merge(store_entries(store, entries, first_line).await?);
        progress(&report);
    }
    Ok(report)
}
