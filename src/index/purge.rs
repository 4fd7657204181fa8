//! Retention's side of the index: deleted events leave it for good.
//!
//! Deleting documents in tantivy only marks them; their words stay in the
//! segment files until those segments are merged. [`SearchIndex::purge`]
//! deletes, commits (keeping the indexed seq), merges every segment that
//! has deletes, and removes the old files, so no word of a deleted message
//! is left in the index directory.

use tantivy::Term;

use super::{IndexError, SearchIndex};

/// What a purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// Documents asked to be deleted (those not in the index are no-ops).
    pub requested: u64,
    /// Segments rewritten without their deleted documents.
    pub segments_merged: u64,
    /// Old files removed from the index directory.
    pub files_removed: u64,
    /// Milliseconds until the documents were gone from search (delete,
    /// commit, reader reload).
    pub deleted_ms: u64,
    /// Milliseconds of the merge and file removal after that.
    pub merged_ms: u64,
}

impl SearchIndex {
    /// Deletes the documents of `seqs` and rewrites the segments that held
    /// them. Waits for the shared writer (the follower's), so it never
    /// races an indexing step.
    pub async fn purge(&self, seqs: &[u64]) -> Result<PurgeReport, IndexError> {
        let mut slot = self.writer_slot.lock().await;
        let mut writer = match slot.take() {
            Some(writer) => writer,
            None => self.writer()?,
        };
        let indexed = self.indexed_seq()?;
        let field = self.fields.seq;
        let terms: Vec<Term> = seqs
            .iter()
            .map(|&seq| Term::from_field_u64(field, seq))
            .collect();
        let index = self.index.clone();
        let reader = self.reader.clone();
        let path = self.path.display().to_string();
        let requested = seqs.len() as u64;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let result = (|| {
                let started = std::time::Instant::now();
                for term in terms {
                    writer.delete_term(term);
                }
                let mut commit = writer.prepare_commit()?;
                commit.set_payload(&indexed.to_string());
                commit.commit()?;
                reader.reload()?;
                let deleted_ms = started.elapsed().as_millis() as u64;
                let merging = std::time::Instant::now();
                let with_deletes: Vec<_> = index
                    .searchable_segment_metas()?
                    .into_iter()
                    .filter(|meta| meta.has_deletes())
                    .map(|meta| meta.id())
                    .collect();
                let merged = with_deletes.len() as u64;
                if !with_deletes.is_empty() {
                    writer.merge(&with_deletes).wait()?;
                }
                let collected = writer.garbage_collect_files().wait()?;
                Ok::<_, tantivy::TantivyError>(PurgeReport {
                    requested,
                    segments_merged: merged,
                    files_removed: collected.deleted_files.len() as u64,
                    deleted_ms,
                    merged_ms: merging.elapsed().as_millis() as u64,
                })
            })();
            (writer, result)
        })
        .await
        .map_err(|error| IndexError::Io {
            path: path.clone(),
            source: std::io::Error::other(error.to_string()),
        })?;
        let report = result.map_err(|source| IndexError::Tantivy {
            path: path.clone(),
            source,
        })?;
        *slot = Some(writer);
        drop(slot);
        self.reload()?;
        Ok(report)
    }
}
