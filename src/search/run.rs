//! Runs a search: the index finds the matching events within the scope, the
//! store supplies their decrypted records, and this module turns them into
//! hits (the latest version of each post, or every matching version) with
//! flags, reactions and highlighted snippets; and the context of a post
//! (its versions, its thread, the messages around it).
//!
//! Every read here takes the caller's [`Scope`]: the index query contains
//! it, and the events loaded around a hit (the other versions of a post, a
//! thread) are checked against it again, so an event outside the scope
//! never reaches a result, even one that shares a post id with an event
//! inside it.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ast::{Filter, Query};
use super::scope::Scope;
use crate::event::{Event, EventKind};
use crate::index::{CursorKey, Found, IndexError, SearchIndex, Sort};
use crate::store::{Store, StoreError, StoredEvent};

/// Most hits one page may ask for.
pub const MAX_PAGE: usize = 500;
/// Hits per page unless asked otherwise.
pub const DEFAULT_PAGE: usize = 20;
/// Characters of message text a snippet shows around its first hit.
pub const SNIPPET_CHARS: usize = 240;
/// Most posts of a thread a context returns.
pub const MAX_THREAD: usize = 1_000;
/// Most messages a context returns before or after its post.
pub const MAX_AROUND: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the cursor is not one this search returned: {0}")]
    BadCursor(String),
    #[error("limit must be between 1 and {max}, got {got}")]
    BadLimit { got: usize, max: usize },
    #[error("search task failed: {0}")]
    Task(String),
}

/// Which versions a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Versions {
    /// One hit per post: its latest version, when any version matched.
    #[default]
    Latest,
    /// One hit per matching event (every version that matched).
    All,
}

/// What to search and how to page.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    pub versions: Versions,
    pub sort: Sort,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: usize,
}

impl SearchRequest {
    pub fn new(query: Query) -> SearchRequest {
        SearchRequest {
            query,
            versions: Versions::Latest,
            sort: Sort::Newest,
            cursor: None,
            limit: DEFAULT_PAGE,
        }
    }
}

/// Message text around the words that matched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snippet {
    /// At most [`SNIPPET_CHARS`] characters (plus `…` where cut).
    pub text: String,
    /// Highlighted ranges of `text`, in characters (Unicode scalar values),
    /// start inclusive, end exclusive.
    pub highlights: Vec<(usize, usize)>,
}

/// One result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    /// What to show: the post's latest version (a `post` or `edit` event)
    /// by default; the matching event with `versions=all`, or for an event
    /// that is not about a post.
    pub event: Event,
    pub seq: u64,
    /// The event that placed the hit (its earliest matching version).
    pub matched_event_id: String,
    /// How many of the post's events matched.
    pub matched_versions: u32,
    /// The post has at least one edit.
    pub edited: bool,
    /// The post has been deleted (the archive keeps every version).
    pub deleted: bool,
    /// Versions of the post's text (the post and its edits).
    pub versions: u32,
    /// Reactions present now, per emoji: who (in the order they reacted).
    pub reactions: BTreeMap<String, Vec<String>>,
    pub snippet: Snippet,
    /// The hit's relevance score (0 unless sorted by relevance).
    pub score: f32,
}

/// One page of results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchPage {
    /// The query in canonical form (what the audit log records).
    pub query: String,
    /// Hits in every page (posts, or events with `versions=all`).
    pub total: u64,
    pub hits: Vec<Hit>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// Runs `request` within `scope`.
pub async fn search(
    store: &Store,
    index: &Arc<SearchIndex>,
    scope: &Scope,
    request: &SearchRequest,
) -> Result<SearchPage, SearchError> {
    if request.limit == 0 || request.limit > MAX_PAGE {
        return Err(SearchError::BadLimit {
            got: request.limit,
            max: MAX_PAGE,
        });
    }
    let after = match &request.cursor {
        Some(cursor) => Some(decode_cursor(cursor, request.sort, request.versions)?),
        None => None,
    };
    let collapse = request.versions == Versions::Latest;
    let (found, hits) = find_hits(
        store,
        index,
        scope,
        &Wanted {
            query: &request.query,
            collapse,
            sort: request.sort,
            after,
            limit: request.limit,
            highlight: true,
            channel: None,
        },
    )
    .await?;
    Ok(SearchPage {
        query: request.query.to_string(),
        total: found.total,
        hits,
        next_cursor: found
            .next
            .map(|key| encode_cursor(request.sort, request.versions, key)),
    })
}

/// Every event `scope` allows about the posts of `events`, by post: one
/// query for a whole page.
async fn versions_of<'a>(
    store: &Store,
    scope: &Scope,
    events: impl Iterator<Item = &'a StoredEvent>,
) -> Result<std::collections::HashMap<String, Vec<StoredEvent>>, SearchError> {
    let mut posts: Vec<&str> = events
        .filter_map(|stored| stored.event.post.as_deref())
        .collect();
    posts.sort_unstable();
    posts.dedup();
    let mut by_post: std::collections::HashMap<String, Vec<StoredEvent>> =
        std::collections::HashMap::new();
    for stored in store.events_of_posts(&posts).await? {
        if !scope.allows(&stored.event.team, &stored.event.channel) {
            continue;
        }
        if let Some(post) = stored.event.post.clone() {
            by_post.entry(post).or_default().push(stored);
        }
    }
    Ok(by_post)
}

/// A hit for one matching event; with `collapse`, for its post. `versions`
/// are the events about its post that the scope allows.
fn build_hit(
    index: &SearchIndex,
    stored: &StoredEvent,
    versions: &[StoredEvent],
    found: &Found,
    collapse: bool,
    query: Option<&Query>,
) -> Hit {
    let summary = PostSummary::of(versions);
    let matched_event_id = stored.event.id.clone();
    let event = if collapse {
        summary
            .latest
            .map(|latest| versions[latest].event.clone())
            .unwrap_or_else(|| stored.event.clone())
    } else {
        stored.event.clone()
    };
    let seq = if collapse {
        summary
            .latest
            .map_or(stored.seq, |latest| versions[latest].seq)
    } else {
        stored.seq
    };
    let snippet = snippet_of(index, query, &event, &stored.event);
    Hit {
        event,
        seq,
        matched_event_id,
        matched_versions: found.matched,
        edited: summary.edited,
        deleted: summary.deleted,
        versions: summary.text_versions,
        reactions: summary.reactions,
        snippet,
        score: found.score,
    }
}

/// Every event about `post` that `scope` allows, in store order.
async fn post_versions(
    store: &Store,
    scope: &Scope,
    post: &str,
) -> Result<Vec<StoredEvent>, SearchError> {
    let mut events = store.post_events(post).await?;
    events.retain(|stored| scope.allows(&stored.event.team, &stored.event.channel));
    Ok(events)
}

/// What the events about a post say about it.
struct PostSummary {
    /// Index of the latest `post` or `edit` event (by time, then seq).
    latest: Option<usize>,
    edited: bool,
    deleted: bool,
    text_versions: u32,
    reactions: BTreeMap<String, Vec<String>>,
}

impl PostSummary {
    fn of(events: &[StoredEvent]) -> PostSummary {
        let mut summary = PostSummary {
            latest: None,
            edited: false,
            deleted: false,
            text_versions: 0,
            reactions: BTreeMap::new(),
        };
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&idx| (events[idx].event.at_us, events[idx].seq));
        for idx in order {
            let event = &events[idx].event;
            match event.kind {
                EventKind::Post | EventKind::Edit => {
                    summary.latest = Some(idx);
                    summary.text_versions += 1;
                    summary.edited |= event.kind == EventKind::Edit;
                }
                EventKind::Delete => summary.deleted = true,
                EventKind::ReactionAdd => {
                    if let Some(emoji) = &event.emoji {
                        let users = summary.reactions.entry(emoji.clone()).or_default();
                        if !users.contains(&event.user) {
                            users.push(event.user.clone());
                        }
                    }
                }
                EventKind::ReactionRemove => {
                    if let Some(emoji) = &event.emoji
                        && let Some(users) = summary.reactions.get_mut(emoji)
                    {
                        users.retain(|user| user != &event.user);
                        if users.is_empty() {
                            summary.reactions.remove(emoji);
                        }
                    }
                }
                _ => {}
            }
        }
        summary
    }
}

/// The snippet of a hit: around the query's words in the shown text, or in
/// the matching version's text when the shown (later) version lost them.
fn snippet_of(
    index: &SearchIndex,
    query: Option<&Query>,
    shown: &Event,
    matched: &Event,
) -> Snippet {
    let text = shown.text.as_deref().unwrap_or_default();
    let ranges = query.map_or_else(Vec::new, |query| index.highlights(query, text));
    if ranges.is_empty()
        && let (Some(query), Some(matched_text)) = (query, matched.text.as_deref())
    {
        let matched_ranges = index.highlights(query, matched_text);
        if !matched_ranges.is_empty() {
            return make_snippet(matched_text, &matched_ranges);
        }
    }
    make_snippet(text, &ranges)
}

/// Cuts `text` to [`SNIPPET_CHARS`] characters around the first range and
/// converts the ranges (bytes of `text`) to characters of the snippet.
pub fn make_snippet(text: &str, ranges: &[(usize, usize)]) -> Snippet {
    let char_starts: Vec<usize> = text.char_indices().map(|(offset, _)| offset).collect();
    let n_chars = char_starts.len();
    let char_of = |byte: usize| char_starts.partition_point(|&start| start < byte);
    let first = ranges.first().map_or(0, |&(from, _)| char_of(from));
    let (from, to) = if n_chars <= SNIPPET_CHARS {
        (0, n_chars)
    } else {
        let from = first.saturating_sub(SNIPPET_CHARS / 3);
        let from = from.min(n_chars - SNIPPET_CHARS);
        (from, from + SNIPPET_CHARS)
    };
    let byte_at = |char_idx: usize| char_starts.get(char_idx).copied().unwrap_or(text.len());
    let mut snippet = String::new();
    let mut shift = from;
    if from > 0 {
        snippet.push('…');
        shift = from.saturating_sub(1);
    }
    snippet.push_str(&text[byte_at(from)..byte_at(to)]);
    if to < n_chars {
        snippet.push('…');
    }
    let highlights = ranges
        .iter()
        .map(|&(start, end)| (char_of(start), char_of(end)))
        .filter(|&(start, end)| end > from && start < to)
        .map(|(start, end)| (start.max(from) - shift, end.min(to) - shift))
        .collect();
    Snippet {
        text: snippet,
        highlights,
    }
}

const CURSOR_VERSION: &str = "c1";

fn sort_code(sort: Sort) -> &'static str {
    match sort {
        Sort::Newest => "n",
        Sort::Oldest => "o",
        Sort::Relevance => "r",
    }
}

fn versions_code(versions: Versions) -> &'static str {
    match versions {
        Versions::Latest => "l",
        Versions::All => "a",
    }
}

fn encode_cursor(sort: Sort, versions: Versions, key: CursorKey) -> String {
    let plain = format!(
        "{CURSOR_VERSION}.{}.{}.{}.{}.{}",
        sort_code(sort),
        versions_code(versions),
        key.at_us,
        key.seq,
        key.score.to_bits()
    );
    URL_SAFE_NO_PAD.encode(plain)
}

fn decode_cursor(cursor: &str, sort: Sort, versions: Versions) -> Result<CursorKey, SearchError> {
    let bad = |why: &str| SearchError::BadCursor(why.to_owned());
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| bad("not base64url"))?;
    let plain = String::from_utf8(bytes).map_err(|_| bad("not text"))?;
    let parts: Vec<&str> = plain.split('.').collect();
    let [version, sort_part, versions_part, at_us, seq, score] = parts.as_slice() else {
        return Err(bad("wrong number of parts"));
    };
    if *version != CURSOR_VERSION {
        return Err(bad("unknown cursor version"));
    }
    if *sort_part != sort_code(sort) || *versions_part != versions_code(versions) {
        return Err(bad(
            "it belongs to a search with another sort or versions setting",
        ));
    }
    Ok(CursorKey {
        at_us: at_us.parse().map_err(|_| bad("bad time"))?,
        seq: seq.parse().map_err(|_| bad("bad sequence number"))?,
        score: f32::from_bits(score.parse().map_err(|_| bad("bad score"))?),
    })
}

/// A post with its versions, its thread and the messages around it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Context {
    /// The post as a hit (its latest version, flags, reactions).
    pub post: Hit,
    /// Every event about the post, in time order (post, edits, delete,
    /// reactions, files).
    pub versions: Vec<Event>,
    /// The thread root id, when the post is part of a thread.
    pub thread_root: Option<String>,
    /// The thread's posts in time order (root first), when there is a thread.
    pub thread: Vec<Hit>,
    /// Up to `before` posts of the same channel before the post, oldest first.
    pub before: Vec<Hit>,
    /// Up to `after` posts of the same channel after the post, oldest first.
    pub after: Vec<Hit>,
}

/// The context of `post` within `scope`; `None` when the post does not
/// exist or lies outside the scope (the two look the same to the caller).
pub async fn context(
    store: &Store,
    index: &Arc<SearchIndex>,
    scope: &Scope,
    post: &str,
    before: usize,
    after: usize,
) -> Result<Option<Context>, SearchError> {
    let (before, after) = (before.min(MAX_AROUND), after.min(MAX_AROUND));
    let mut versions = post_versions(store, scope, post).await?;
    if versions.is_empty() {
        return Ok(None);
    }
    versions.sort_by_key(|stored| (stored.event.at_us, stored.seq));
    let anchor = versions
        .iter()
        .find(|stored| stored.event.kind == EventKind::Post)
        .unwrap_or(&versions[0])
        .clone();
    let anchor_found = Found {
        seq: anchor.seq,
        at_us: anchor.event.at_us,
        post_key: anchor.seq,
        score: 0.0,
        matched: 1,
    };
    let post_hit = build_hit(index, &anchor, &versions, &anchor_found, true, None);

    let thread_root = versions
        .iter()
        .find_map(|stored| stored.event.parent.clone())
        .or_else(|| Some(post.to_owned()));
    let mut thread = Vec::new();
    if let Some(root) = &thread_root {
        thread = find_hits(
            store,
            index,
            scope,
            &Wanted::posts(
                &Query::Filter(Filter::Thread(root.clone())),
                Sort::Oldest,
                None,
                MAX_THREAD,
                None,
            ),
        )
        .await?
        .1;
    }
    let thread_root = if thread.len() > 1 { thread_root } else { None };
    if thread_root.is_none() {
        thread.clear();
    }

    let channel = Query::And(vec![
        Query::Filter(Filter::Kind(EventKind::Post)),
        Query::Filter(Filter::Team(anchor.event.team.clone())),
        Query::Filter(Filter::In(anchor.event.channel.clone())),
    ]);
    let key = CursorKey {
        score: 0.0,
        at_us: anchor.event.at_us,
        seq: anchor.seq,
    };
    let same_channel = Some((anchor.event.team.as_str(), anchor.event.channel.as_str()));
    let mut earlier = if before > 0 {
        find_hits(
            store,
            index,
            scope,
            &Wanted::posts(&channel, Sort::Newest, Some(key), before, same_channel),
        )
        .await?
        .1
    } else {
        Vec::new()
    };
    earlier.reverse();
    let later = if after > 0 {
        find_hits(
            store,
            index,
            scope,
            &Wanted::posts(&channel, Sort::Oldest, Some(key), after, same_channel),
        )
        .await?
        .1
    } else {
        Vec::new()
    };
    Ok(Some(Context {
        post: post_hit,
        versions: versions.into_iter().map(|stored| stored.event).collect(),
        thread_root,
        thread,
        before: earlier,
        after: later,
    }))
}

/// What [`find_hits`] looks for.
struct Wanted<'a> {
    query: &'a Query,
    /// One hit per post (its latest version) rather than per event.
    collapse: bool,
    sort: Sort,
    after: Option<CursorKey>,
    limit: usize,
    /// Highlight the query's words in the snippets.
    highlight: bool,
    /// Only hits of this team and channel (names compared exactly).
    channel: Option<(&'a str, &'a str)>,
}

/// One page of hits within `scope`: the index finds them, the store reads
/// the page's events and every version of their posts (one query each),
/// and each hit is checked against the scope again.
async fn find_hits(
    store: &Store,
    index: &Arc<SearchIndex>,
    scope: &Scope,
    wanted: &Wanted<'_>,
) -> Result<(crate::index::FoundPage, Vec<Hit>), SearchError> {
    let found = {
        let index = Arc::clone(index);
        let (query, scope) = (wanted.query.clone(), scope.clone());
        let (collapse, sort, after, limit) =
            (wanted.collapse, wanted.sort, wanted.after, wanted.limit);
        tokio::task::spawn_blocking(move || {
            index.find(&query, &scope, collapse, sort, after, limit)
        })
        .await
        .map_err(|error| SearchError::Task(error.to_string()))??
    };
    let seqs: Vec<u64> = found.hits.iter().map(|hit| hit.seq).collect();
    let mut events: BTreeMap<u64, StoredEvent> = store
        .events_by_seqs(&seqs)
        .await?
        .into_iter()
        .map(|stored| (stored.seq, stored))
        .collect();
    let versions = versions_of(store, scope, events.values()).await?;
    let mut hits = Vec::with_capacity(found.hits.len());
    for found_hit in &found.hits {
        let Some(stored) = events.remove(&found_hit.seq) else {
            continue;
        };
        if !scope.allows(&stored.event.team, &stored.event.channel) {
            continue;
        }
        if let Some((team, channel)) = wanted.channel
            && (stored.event.team != team || stored.event.channel != channel)
        {
            continue;
        }
        let post_versions = stored
            .event
            .post
            .as_ref()
            .and_then(|post| versions.get(post))
            .map_or(&[][..], Vec::as_slice);
        hits.push(build_hit(
            index,
            &stored,
            post_versions,
            found_hit,
            wanted.collapse,
            wanted.highlight.then_some(wanted.query),
        ));
    }
    Ok((found, hits))
}

impl<'a> Wanted<'a> {
    /// Posts matching `query` (latest versions, no highlights), in `sort`
    /// order after `after`; only those of `channel` when given.
    fn posts(
        query: &'a Query,
        sort: Sort,
        after: Option<CursorKey>,
        limit: usize,
        channel: Option<(&'a str, &'a str)>,
    ) -> Wanted<'a> {
        Wanted {
            query,
            collapse: true,
            sort,
            after,
            limit,
            highlight: false,
            channel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_cut_around_the_first_hit_in_characters() {
        let text = format!("{}wire transfer{}", "é".repeat(300), " tail".repeat(100));
        let start = text.find("wire").expect("present");
        let snippet = make_snippet(&text, &[(start, start + 13)]);
        let chars: Vec<char> = snippet.text.chars().collect();
        assert!(chars.len() <= SNIPPET_CHARS + 2);
        assert_eq!(chars[0], '…');
        assert_eq!(*chars.last().expect("non-empty"), '…');
        let (from, to) = snippet.highlights[0];
        let highlighted: String = chars[from..to].iter().collect();
        assert_eq!(highlighted, "wire transfer");
    }

    #[test]
    fn short_text_is_whole() {
        let snippet = make_snippet("Привет, café", &[(14, 19)]);
        assert_eq!(snippet.text, "Привет, café");
        assert_eq!(snippet.highlights, vec![(8, 12)]);
    }

    #[test]
    fn cursors_round_trip_and_reject_other_settings() {
        let key = CursorKey {
            score: 1.5,
            at_us: -3,
            seq: 42,
        };
        let cursor = encode_cursor(Sort::Relevance, Versions::All, key);
        assert_eq!(
            decode_cursor(&cursor, Sort::Relevance, Versions::All).expect("valid"),
            key
        );
        assert!(decode_cursor(&cursor, Sort::Newest, Versions::All).is_err());
        assert!(decode_cursor("not a cursor!", Sort::Newest, Versions::All).is_err());
        assert!(
            decode_cursor(
                &URL_SAFE_NO_PAD.encode("c1.n.l.x.1.0"),
                Sort::Newest,
                Versions::Latest
            )
            .is_err()
        );
    }
}
