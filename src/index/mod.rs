//! The search index: tantivy, derived from the store and rebuildable from it.
//!
//! One document per stored event, keyed by its sequence number. The index
//! holds what search needs to find and filter events (terms of the text and
//! file names, who, where, when, what kind) and **no message text in stored
//! fields**: the only stored value is `seq`; snippets and results are built
//! from the decrypted store record. The terms themselves still reveal
//! vocabulary: `docs/search.md` says how to protect the index files.
//!
//! The store is the source of truth: the index records, in each commit's
//! payload, the last `seq` it holds, and [`catch_up`] indexes what the store
//! has past it, so a crash during indexing leaves the index behind (never
//! ahead) and the next catch-up closes the gap. [`rebuild`] builds a new index
//! from the store alone and swaps it in; [`check`] lists events missing from
//! or extra in the index.
//!
//! Searching: [`SearchIndex::find`] compiles a parsed query and the
//! searcher's scope into one tantivy query (`query.rs`, with `NEAR` in
//! `near.rs`), collects every match and cuts a page (`find.rs`).
//!
//! Only this module imports tantivy.

mod facets;
mod find;
mod follow;
mod guard;
mod near;
mod purge;
mod query;
mod tokenizer;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tantivy::collector::DocSetCollector;
use tantivy::columnar::Column;
use tantivy::query::AllQuery;
use tantivy::schema::{
    FAST, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, RawTokenizer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::event::EventKind;
use crate::search::{Query, Scope};
use crate::store::{Store, StoreError, StoredEvent};
pub use facets::{ChannelCount, FacetCount, Facets, MAX_FACETS};
pub use find::{CursorKey, Found, FoundPage, Sort, compare};
pub use follow::{Follower, FollowerHandle};
pub use purge::PurgeReport;
pub use query::MAX_PREFIX_EXPANSIONS;
pub use tokenizer::ChatTokenizer;

/// Version of the index layout (fields and analysers). An index of another
/// version is rebuilt from the store.
pub const SCHEMA_VERSION: u32 = 2;

/// Tokenizer of message text and file names: words and CJK bigrams,
/// lowercased and folded to ASCII where a folding exists (`café` → `cafe`).
pub const TEXT_TOKENIZER: &str = "hf_text";
/// The same words, case and accents kept (for `exact:` queries).
pub const EXACT_TOKENIZER: &str = "hf_exact";
/// Whole values lowercased (user, channel, team, emoji names).
pub const NAME_TOKENIZER: &str = "hf_name";

/// Events read from the store per indexing step.
const BATCH_EVENTS: usize = 5_000;
/// Longest time between two commits while catching up: what a large
/// catch-up adds to the visibility of new events. Committing less often
/// than every step makes larger segments and far less merging.
const COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Memory budget of the index writer (tantivy's minimum is 15 MB a thread).
const WRITER_HEAP_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index at {path}: {source}")]
    Tantivy {
        path: String,
        source: tantivy::TantivyError,
    },
    #[error("search index at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "search index at {path} holds events up to seq {indexed} but the store ends at {store}: it belongs to another archive; rebuild it"
    )]
    AheadOfStore {
        path: String,
        indexed: u64,
        store: u64,
    },
    #[error(
        "search index at {path} was built by another version of holdfast: run `holdfast index rebuild`"
    )]
    SchemaChanged { path: String },
    #[error("the prefix {prefix}* stands for more than {limit} words: make it longer")]
    PrefixTooBroad { prefix: String, limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The index's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub seq: tantivy::schema::Field,
    pub event_id: tantivy::schema::Field,
    pub post: tantivy::schema::Field,
    pub parent: tantivy::schema::Field,
    pub kind: tantivy::schema::Field,
    pub team: tantivy::schema::Field,
    pub channel: tantivy::schema::Field,
    /// Team and channel as the event carries them (no folding), for the scope.
    pub team_exact: tantivy::schema::Field,
    pub channel_exact: tantivy::schema::Field,
    /// The post's number: the smallest seq of an event about the post (the
    /// event's own seq when it has no post). Versions of a post share it.
    pub post_key: tantivy::schema::Field,
    pub user: tantivy::schema::Field,
    pub at_us: tantivy::schema::Field,
    pub text: tantivy::schema::Field,
    pub text_exact: tantivy::schema::Field,
    pub filename: tantivy::schema::Field,
    pub emoji: tantivy::schema::Field,
    pub has_file: tantivy::schema::Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let words = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
    };
    let name = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(NAME_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic),
        )
        .set_fast(NAME_TOKENIZER);
    let raw = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic),
        )
        .set_fast("raw");
    let fields = Fields {
        seq: builder.add_u64_field("seq", INDEXED | FAST | STORED),
        event_id: builder.add_text_field("event_id", raw.clone()),
        post: builder.add_text_field("post", raw.clone()),
        parent: builder.add_text_field("parent", raw.clone()),
        kind: builder.add_text_field("kind", raw.clone()),
        team: builder.add_text_field("team", name.clone()),
        channel: builder.add_text_field("channel", name.clone()),
        team_exact: builder.add_text_field("team_exact", raw.clone()),
        channel_exact: builder.add_text_field("channel_exact", raw),
        post_key: builder.add_u64_field("post_key", INDEXED | FAST),
        user: builder.add_text_field("user", name.clone()),
        at_us: builder.add_i64_field("at_us", INDEXED | FAST),
        text: builder.add_text_field("text", words(TEXT_TOKENIZER)),
        text_exact: builder.add_text_field("text_exact", words(EXACT_TOKENIZER)),
        filename: builder.add_text_field("filename", words(TEXT_TOKENIZER)),
        emoji: builder.add_text_field("emoji", name),
        has_file: builder.add_u64_field("has_file", INDEXED | FAST),
    };
    (builder.build(), fields)
}

fn register_tokenizers(index: &Index) {
    let manager = index.tokenizers();
    manager.register(
        TEXT_TOKENIZER,
        TextAnalyzer::builder(ChatTokenizer::default())
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .build(),
    );
    manager.register(
        EXACT_TOKENIZER,
        TextAnalyzer::builder(ChatTokenizer::default()).build(),
    );
    manager.register(
        NAME_TOKENIZER,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
    index.fast_field_tokenizer().register(
        NAME_TOKENIZER,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
}

/// An open search index.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    path: PathBuf,
    /// The one tantivy writer, shared by the follower, catch-up and
    /// retention's purge (tantivy allows one writer per index).
    writer_slot: tokio::sync::Mutex<Option<IndexWriter>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SearchIndex({})", self.path.display())
    }
}

impl SearchIndex {
    /// Opens the index in `path`, creating an empty one (mode 0700) if none.
    pub fn open_or_create(path: &Path) -> Result<SearchIndex, IndexError> {
        let tantivy_error = |source| IndexError::Tantivy {
            path: path.display().to_string(),
            source,
        };
        if !path.join("meta.json").exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|source| IndexError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
        }
        let directory = tantivy::directory::MmapDirectory::open(path)
            .map_err(|error| tantivy_error(error.into()))?;
        let (schema, fields) = schema();
        let index = if Index::exists(&directory).map_err(|error| tantivy_error(error.into()))? {
            let index = Index::open(directory).map_err(tantivy_error)?;
            if index.schema() != schema {
                return Err(IndexError::SchemaChanged {
                    path: path.display().to_string(),
                });
            }
            index
        } else {
            Index::create(directory, schema, tantivy::IndexSettings::default())
                .map_err(tantivy_error)?
        };
        register_tokenizers(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_error)?;
        Ok(SearchIndex {
            index,
            reader,
            fields,
            path: path.to_path_buf(),
            writer_slot: tokio::sync::Mutex::new(None),
        })
    }

    pub fn fields(&self) -> Fields {
        self.fields
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last `seq` the index holds (0 when empty): its last commit's payload.
    pub fn indexed_seq(&self) -> Result<u64, IndexError> {
        let metas = self
            .index
            .load_metas()
            .map_err(|source| IndexError::Tantivy {
                path: self.path.display().to_string(),
                source,
            })?;
        Ok(metas
            .payload
            .as_deref()
            .and_then(|payload| payload.parse().ok())
            .unwrap_or(0))
    }

    /// The reader, reloaded to the last commit.
    pub fn searcher(&self) -> Result<tantivy::Searcher, IndexError> {
        self.reload()?;
        Ok(self.reader.searcher())
    }

    /// Makes the last commit visible to searches.
    pub fn reload(&self) -> Result<(), IndexError> {
        self.reader
            .reload()
            .map_err(|source| self.tantivy_error(source))
    }

    pub(crate) fn tantivy_error(&self, source: tantivy::TantivyError) -> IndexError {
        IndexError::Tantivy {
            path: self.path.display().to_string(),
            source,
        }
    }

    pub(crate) fn io_error(&self, source: std::io::Error) -> IndexError {
        IndexError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// The words of `text` as the analyser `tokenizer` makes them.
    pub fn analyze(&self, tokenizer: &str, text: &str) -> Vec<String> {
        self.analyze_with_offsets(tokenizer, text)
            .into_iter()
            .map(|(word, _, _)| word)
            .collect()
    }

    /// The words of `text` with their byte ranges in it.
    pub fn analyze_with_offsets(&self, tokenizer: &str, text: &str) -> Vec<(String, usize, usize)> {
        let Some(mut analyzer) = self.index.tokenizers().get(tokenizer) else {
            return Vec::new();
        };
        let mut stream = analyzer.token_stream(text);
        let mut words = Vec::new();
        while stream.advance() {
            let token = stream.token();
            words.push((token.text.clone(), token.offset_from, token.offset_to));
        }
        words
    }

    /// The byte ranges of `text` the words of `query` match, for snippets.
    pub fn highlights(&self, query: &Query, text: &str) -> Vec<(usize, usize)> {
        query::highlights(self, query, text)
    }

    /// One page of the events (or posts, when `collapse`) matching `query`
    /// within `scope`, with the exact total. Blocking: CPU and disk bound.
    pub fn find(
        &self,
        query: &Query,
        scope: &Scope,
        collapse: bool,
        sort: Sort,
        after: Option<CursorKey>,
        limit: usize,
    ) -> Result<FoundPage, IndexError> {
        let searcher = self.reader.searcher();
        let compiled = query::compile(self, &searcher, query, scope)?;
        let matches = searcher
            .search(
                &*compiled,
                &find::AllMatches {
                    scoring: sort == Sort::Relevance,
                },
            )
            .map_err(|source| self.tantivy_error(source))?;
        Ok(find::page(matches, collapse, sort, after, limit))
    }

    /// Every `seq` (event) matching `query` within `scope`, in order, from
    /// the last commit (the reader is reloaded first). Blocking: CPU and
    /// disk bound. What a legal hold's query protects.
    pub fn matching_seqs(&self, query: &Query, scope: &Scope) -> Result<Vec<u64>, IndexError> {
        let searcher = self.searcher()?;
        let compiled = query::compile(self, &searcher, query, scope)?;
        let matches = searcher
            .search(&*compiled, &find::AllMatches { scoring: false })
            .map_err(|source| self.tantivy_error(source))?;
        let mut seqs: Vec<u64> = matches.into_iter().map(|found| found.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }

    /// Every `seq` in the index, in order.
    pub fn all_seqs(&self) -> Result<Vec<u64>, IndexError> {
        let searcher = self.searcher()?;
        let tantivy_error = |source| IndexError::Tantivy {
            path: self.path.display().to_string(),
            source,
        };
        let addresses = searcher
            .search(&AllQuery, &DocSetCollector)
            .map_err(tantivy_error)?;
        let mut seqs = Vec::with_capacity(addresses.len());
        let mut columns: Vec<Option<Column<u64>>> = Vec::new();
        for segment in searcher.segment_readers() {
            columns.push(segment.fast_fields().u64("seq").ok());
        }
        for address in addresses {
            if let Some(Some(column)) = columns.get(address.segment_ord as usize)
                && let Some(seq) = column.first(address.doc_id)
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Opens the tantivy writer and first removes the files a commit
    /// killed half-way left behind (a delete file of a commit that never
    /// reached `meta.json` would otherwise block the next delete commit:
    /// tantivy names delete files by segment and opstamp).
    fn writer(&self) -> Result<IndexWriter, IndexError> {
        let tantivy_error = |source| IndexError::Tantivy {
            path: self.path.display().to_string(),
            source,
        };
        let writer = self
            .index
            .writer(WRITER_HEAP_BYTES)
            .map_err(tantivy_error)?;
        writer
            .garbage_collect_files()
            .wait()
            .map_err(tantivy_error)?;
        Ok(writer)
    }

    /// The document of one stored event.
    /// The document of one stored event; `post_key` is its post's number
    /// (see [`Fields::post_key`]).
    pub fn document(&self, stored: &StoredEvent, post_key: u64) -> TantivyDocument {
        let fields = &self.fields;
        let event = &stored.event;
        let mut doc = TantivyDocument::default();
        doc.add_u64(fields.seq, stored.seq);
        doc.add_u64(fields.post_key, post_key);
        doc.add_text(fields.team_exact, &event.team);
        doc.add_text(fields.channel_exact, &event.channel);
        doc.add_text(fields.event_id, &event.id);
        if let Some(post) = &event.post {
            doc.add_text(fields.post, post);
        }
        if let Some(parent) = &event.parent {
            doc.add_text(fields.parent, parent);
        }
        doc.add_text(fields.kind, event.kind.as_str());
        doc.add_text(fields.team, &event.team);
        doc.add_text(fields.channel, &event.channel);
        doc.add_text(fields.user, &event.user);
        doc.add_i64(fields.at_us, event.at_us);
        if let Some(text) = &event.text {
            doc.add_text(fields.text, text);
            doc.add_text(fields.text_exact, text);
        }
        for file in &event.files {
            doc.add_text(fields.filename, &file.name);
        }
        if let Some(emoji) = &event.emoji {
            doc.add_text(fields.emoji, emoji);
        }
        let has_file = !event.files.is_empty() || event.kind == EventKind::File;
        doc.add_u64(fields.has_file, u64::from(has_file));
        doc
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexCheck {
    pub indexed_seq: u64,
    pub store_events: u64,
    pub index_documents: u64,
    /// Sequence numbers in the store but not in the index (at most 1000 listed).
    pub missing: Vec<u64>,
    pub n_missing: u64,
    /// Sequence numbers in the index but not in the store (at most 1000 listed).
    pub extra: Vec<u64>,
    pub n_extra: u64,
}

impl IndexCheck {
    pub fn ok(&self) -> bool {
        self.n_missing == 0 && self.n_extra == 0
    }
}

/// Indexes every event the store holds past the index's last commit, in
/// steps of [`BATCH_EVENTS`], committing after each step with the last seq
/// as payload. Returns the last indexed seq. `progress(indexed, total)`.
pub async fn catch_up(
    store: &Store,
    index: &SearchIndex,
    progress: impl FnMut(u64, u64),
) -> Result<u64, IndexError> {
    let mut slot = index.writer_slot.lock().await;
    let indexed = advance(store, index, &mut slot, progress).await?;
    if let Some(writer) = slot.take() {
        let path = index.path.display().to_string();
        tokio::task::spawn_blocking(move || writer.wait_merging_threads())
            .await
            .map_err(|error| IndexError::Io {
                path: path.clone(),
                source: std::io::Error::other(error.to_string()),
            })?
            .map_err(|source| IndexError::Tantivy { path, source })?;
    }
    Ok(indexed)
}

/// Indexes what the store holds past the index's last commit with `writer`
/// (opened when `None` and there is work), committing after each step.
/// On error the writer is dropped: the next call starts from the last commit.
pub(crate) async fn advance(
    store: &Store,
    index: &SearchIndex,
    writer: &mut Option<IndexWriter>,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, IndexError> {
    let mut indexed = index.indexed_seq()?;
    let store_last = store.last_seq().await?;
    if indexed > store_last {
        return Err(IndexError::AheadOfStore {
            path: index.path.display().to_string(),
            indexed,
            store: store_last,
        });
    }
    if indexed == store_last {
        return Ok(indexed);
    }
    if writer.is_none() {
        *writer = Some(index.writer()?);
    }
    let mut last_commit = std::time::Instant::now();
    let mut committed = indexed;
    loop {
        let (events, scanned) = store.events_page(indexed + 1, BATCH_EVENTS).await?;
        // Past the last row, the store's records up to its head hold no
        // event of their own (re-encrypted copies made by retention).
        let last = scanned.unwrap_or(store_last);
        if last <= indexed {
            break;
        }
        let post_keys = post_keys(store, &events).await?;
        let documents: Vec<TantivyDocument> = events
            .iter()
            .zip(post_keys)
            .map(|(stored, post_key)| index.document(stored, post_key))
            .collect();
        drop(events);
        let Some(mut taken) = writer.take() else {
            break;
        };
        let path = index.path.display().to_string();
        let commit_now = last >= store_last || last_commit.elapsed() >= COMMIT_INTERVAL;
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = (|| {
                for document in documents {
                    taken.add_document(document)?;
                }
                if commit_now {
                    let mut commit = taken.prepare_commit()?;
                    commit.set_payload(&last.to_string());
                    commit.commit()?;
                }
                Ok(())
            })();
            (taken, result)
        })
        .await
        .map_err(|error| IndexError::Io {
            path: path.clone(),
            source: std::io::Error::other(error.to_string()),
        })?;
        result.map_err(|source: tantivy::TantivyError| IndexError::Tantivy { path, source })?;
        *writer = Some(back);
        indexed = last;
        if commit_now {
            committed = last;
            last_commit = std::time::Instant::now();
            progress(committed, store_last);
        }
        if indexed >= store_last {
            break;
        }
    }
    if indexed > committed {
        // The store ended before its last seq said (never expected): commit
        // what was added, so that nothing added stays uncommitted in the
        // writer and is added again by the next catch-up.
        let Some(mut taken) = writer.take() else {
            return Ok(committed);
        };
        let path = index.path.display().to_string();
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = taken.prepare_commit().and_then(|mut commit| {
                commit.set_payload(&indexed.to_string());
                commit.commit()
            });
            (taken, result)
        })
        .await
        .map_err(|error| IndexError::Io {
            path: path.clone(),
            source: std::io::Error::other(error.to_string()),
        })?;
        result.map_err(|source| IndexError::Tantivy { path, source })?;
        *writer = Some(back);
        committed = indexed;
    }
    Ok(committed)
}

/// Each event's post number: the smallest seq of an event about its post
/// (the store has every event up to these, so the answer never changes).
async fn post_keys(store: &Store, events: &[StoredEvent]) -> Result<Vec<u64>, IndexError> {
    let posts: Vec<&str> = {
        let mut posts: Vec<&str> = events
            .iter()
            .filter_map(|stored| stored.event.post.as_deref())
            .collect();
        posts.sort_unstable();
        posts.dedup();
        posts
    };
    let first = store
        .db()
        .first_seq_of_posts(&posts)
        .await
        .map_err(StoreError::from)?;
    Ok(events
        .iter()
        .map(|stored| {
            stored
                .event
                .post
                .as_deref()
                .and_then(|post| first.get(post))
                .map_or(stored.seq, |&seq| seq as u64)
        })
        .collect())
}

/// Builds a new index from the store alone next to `path`, then swaps it in.
/// Restartable: an interrupted rebuild leaves the old index in place and a
/// `.rebuild` directory that the next rebuild starts over.
pub async fn rebuild(
    store: &Store,
    path: &Path,
    progress: impl FnMut(u64, u64),
) -> Result<u64, IndexError> {
    let io_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| IndexError::Io {
            path: path.clone(),
            source,
        }
    };
    let staging = sibling(path, "rebuild");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
    }
    let fresh = SearchIndex::open_or_create(&staging)?;
    let indexed = catch_up(store, &fresh, progress).await?;
    drop(fresh);
    let old = sibling(path, "old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_error(&old))?;
    }
    if path.exists() {
        std::fs::rename(path, &old).map_err(io_error(path))?;
    }
    std::fs::rename(&staging, path).map_err(io_error(path))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_error(&old))?;
    }
    Ok(indexed)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

/// Compares the index with the store: events missing from it, documents
/// that match no stored event.
pub async fn check(store: &Store, index: &SearchIndex) -> Result<IndexCheck, IndexError> {
    const LISTED: usize = 1000;
    let in_index: BTreeSet<u64> = index.all_seqs()?.into_iter().collect();
    let mut report = IndexCheck {
        indexed_seq: index.indexed_seq()?,
        index_documents: in_index.len() as u64,
        ..IndexCheck::default()
    };
    let mut in_store = BTreeSet::new();
    let mut next = 1;
    loop {
        let rows = store
            .db()
            .events_from_seq(next as i64, 50_000)
            .await
            .map_err(StoreError::from)?;
        let Some(last) = rows.last() else { break };
        next = last.seq as u64 + 1;
        in_store.extend(
            rows.iter()
                .filter(|row| row.shredded_run.is_none())
                .map(|row| row.seq as u64),
        );
    }
    report.store_events = in_store.len() as u64;
    for seq in in_store.difference(&in_index) {
        report.n_missing += 1;
        if report.missing.len() < LISTED {
            report.missing.push(*seq);
        }
    }
    for seq in in_index.difference(&in_store) {
        report.n_extra += 1;
        if report.extra.len() < LISTED {
            report.extra.push(*seq);
        }
    }
    Ok(report)
}

/// A term of a raw (exact) field, for lookups by id or post.
pub fn raw_term(field: tantivy::schema::Field, value: &str) -> Term {
    Term::from_field_text(field, value)
}

use std::os::unix::fs::DirBuilderExt;
