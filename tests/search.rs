//! Search end to end: queries of every operator with known answers over a
//! fixture corpus (edits, deletes, reactions, threads, files, identical
//! timestamps, accents, Cyrillic, CJK), paging, scopes that exclude the best
//! hits, context, rebuild equal to incremental, the HTTP API and the CLI.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::BTreeSet;
use std::sync::Arc;

use helpers::TestArchive;
use holdfast::db::Backend;
use holdfast::event::Event;
use holdfast::generate::{EventGenerator, GenerateOptions};
use holdfast::index::{self, SearchIndex, Sort};
use holdfast::search::{
    self, ChannelRef, ParseOptions, Scope, SearchPage, SearchRequest, Versions,
};
use holdfast::store::Store;
use serde_json::{Value, json};

/// 2024-01-15T09:00:00Z in milliseconds.
const T0: i64 = 1_705_309_200_000;
const SEC: i64 = 1_000;
/// 2024-02-01T10:00:00Z.
const FEB1: i64 = 1_706_781_600_000;

fn fixture() -> Vec<Value> {
    let post = |id: &str, team: &str, channel: &str, user: &str, at: i64, text: &str| {
        json!({"id": format!("e-{id}"), "kind": "post", "at": at, "team": team, "channel": channel,
               "user": user, "post": id, "text": text})
    };
    let mut events = vec![
        json!({"id": "e-join", "kind": "member_join", "at": T0 - 100 * SEC, "team": "legal",
               "channel": "deals", "user": "kaminski-v"}),
        post(
            "p1",
            "legal",
            "deals",
            "allen-p",
            T0,
            "Please approve the wire transfer to the offshore account today",
        ),
        post(
            "p2",
            "legal",
            "deals",
            "dasovich-j",
            T0 + 60 * SEC,
            "The offshore entity needs a wire confirmation",
        ),
        post(
            "p3",
            "legal",
            "general",
            "allen-p",
            T0 + 120 * SEC,
            "Investigation of the café budget",
        ),
        json!({"id": "e-p3-edit", "kind": "edit", "at": T0 + 180 * SEC, "team": "legal",
               "channel": "general", "user": "allen-p", "post": "p3",
               "text": "Investigator notes on the CAFÉ budget revised"}),
        post(
            "p4",
            "sales",
            "general",
            "lay-k",
            T0 + 120 * SEC,
            "budget forecast for Q3",
        ),
        post(
            "p5",
            "sales",
            "leads",
            "lay-k",
            T0 + 120 * SEC,
            "budget numbers, budget again, budget budget budget",
        ),
        json!({"id": "e-p4-delete", "kind": "delete", "at": T0 + 300 * SEC, "team": "sales",
               "channel": "general", "user": "lay-k", "post": "p4"}),
        json!({"id": "e-p1-react", "kind": "reaction_add", "at": T0 + 200 * SEC, "team": "legal",
               "channel": "deals", "user": "dasovich-j", "post": "p1", "emoji": "thumbsup"}),
        json!({"id": "e-p6", "kind": "post", "at": T0 + 240 * SEC, "team": "legal",
               "channel": "deals", "user": "allen-p", "post": "p6", "parent": "p1",
               "text": "Approved, sending now"}),
        json!({"id": "e-p7", "kind": "post", "at": T0 + 260 * SEC, "team": "legal",
               "channel": "deals", "user": "skilling-j", "post": "p7", "text": "see attached",
               "files": [{"name": "Q3-Budget.xlsx", "size": 1200}]}),
        post(
            "p8",
            "legal",
            "general",
            "allen-p",
            T0 + 400 * SEC,
            "Трансфертный платёж отправлен",
        ),
        post(
            "p9",
            "legal",
            "general",
            "allen-p",
            T0 + 410 * SEC,
            "这是鳄鱼调查员的报告",
        ),
        // Same names as legal/deals but another team: case matters to a scope.
        post(
            "p10",
            "Legal",
            "deals",
            "allen-p",
            T0 + 420 * SEC,
            "wire transfer secret budget",
        ),
        post(
            "p11",
            "legal",
            "general",
            "lay-k",
            FEB1,
            "quarterly report alpha",
        ),
        post(
            "p12",
            "legal",
            "general",
            "lay-k",
            FEB1,
            "quarterly report beta",
        ),
        post(
            "p13",
            "legal",
            "deals",
            "skilling-j",
            T0 + 600 * SEC,
            "the merger is secret",
        ),
        json!({"id": "e-p13-edit", "kind": "edit", "at": T0 + 700 * SEC, "team": "legal",
               "channel": "deals", "user": "skilling-j", "post": "p13", "text": "the deal is public"}),
        // An event of another team that claims to be about p1: a scope of
        // team legal must never show it, even as a version of p1.
        json!({"id": "e-p1-foreign", "kind": "edit", "at": T0 + 900 * SEC, "team": "sales",
               "channel": "leads", "user": "lay-k", "post": "p1", "text": "leaked foreign words"}),
    ];
    events.push(post(
        "p14",
        "sales",
        "leads",
        "lay-k",
        T0 + 1000 * SEC,
        "Quarterly numbers",
    ));
    events
}

struct Searchable {
    _archive: TestArchive,
    store: Store,
    index: Arc<SearchIndex>,
}

async fn searchable(backend: Backend, events: Vec<Value>) -> Searchable {
    let archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    let events: Vec<Event> = events
        .into_iter()
        .map(|value| Event::from_json(value).unwrap())
        .collect();
    store.append(events).await.unwrap();
    let index = SearchIndex::open_or_create(&archive.dir.path().join("index")).unwrap();
    index::catch_up(&store, &index, |_, _| {}).await.unwrap();
    index.reload().unwrap();
    Searchable {
        _archive: archive,
        store,
        index: Arc::new(index),
    }
}

impl Searchable {
    async fn page(
        &self,
        query: &str,
        scope: &Scope,
        request: impl Fn(&mut SearchRequest),
    ) -> SearchPage {
        let parsed = search::parse(query, &ParseOptions::default())
            .unwrap_or_else(|error| panic!("{query}: {error}"));
        let mut search_request = SearchRequest::new(parsed);
        search_request.limit = 100;
        request(&mut search_request);
        search::search(&self.store, &self.index, scope, &search_request)
            .await
            .unwrap_or_else(|error| panic!("{query}: {error}"))
    }

    /// The posts (or event ids for events without one) that `query` finds.
    async fn posts(&self, query: &str, scope: &Scope) -> BTreeSet<String> {
        let page = self.page(query, scope, |_| {}).await;
        assert_eq!(
            page.total as usize,
            page.hits.len(),
            "{query}: one page holds all"
        );
        page.hits
            .iter()
            .map(|hit| {
                hit.event
                    .post
                    .clone()
                    .unwrap_or_else(|| hit.event.id.clone())
            })
            .collect()
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

async fn every_operator_has_its_known_answer(backend: Backend) {
    let s = searchable(backend, fixture()).await;
    let all = Scope::All;
    let cases: &[(&str, &[&str])] = &[
        ("wire", &["p1", "p2", "p10"]),
        ("WIRE", &["p1", "p2", "p10"]),
        ("\"wire transfer\"", &["p1", "p10"]),
        ("\"wire transfer\" NEAR(5) offshore", &["p1"]),
        ("offshore NEAR(0) account", &["p1"]),
        ("wire NEAR(3) offshore", &["p1", "p2"]),
        ("wire NEAR(2) offshore", &[]),
        ("offshore NEAR(3) wire", &["p1", "p2"]),
        ("budget AND NOT from:lay-k", &["p3", "p10"]),
        ("budget -from:lay-k", &["p3", "p10"]),
        ("budget OR forecast", &["p3", "p4", "p5", "p10"]),
        ("(wire OR merger) AND in:deals", &["p1", "p2", "p10", "p13"]),
        ("wire offshore", &["p1", "p2"]),
        ("invest*", &["p3"]),
        ("cafe", &["p3"]),
        ("exact:café", &["p3"]),
        ("exact:CAFÉ", &["p3"]),
        ("exact:Cafe", &[]),
        ("from:allen-p in:deals", &["p1", "p6", "p10"]),
        ("from:ALLEN-P in:deals kind:post", &["p1", "p6", "p10"]),
        ("team:sales", &["p1", "p4", "p5", "p14"]),
        ("kind:delete", &["p4"]),
        ("is:deleted", &["p4"]),
        ("is:edited", &["p1", "p3", "p13"]),
        ("has:reaction", &["p1"]),
        ("emoji:thumbsup", &["p1"]),
        ("has:file", &["p7"]),
        ("filename:budget", &["p7"]),
        ("filename:xlsx", &["p7"]),
        ("thread:p1", &["p1", "p6"]),
        ("on:2024-02-01", &["p11", "p12"]),
        ("sent>=2024-02-01", &["p11", "p12"]),
        ("after:2024-01-31 quarterly", &["p11", "p12"]),
        ("before:2024-01-16 quarterly", &["p14"]),
        ("sent:2024-01-01..2024-01-14", &[]),
        ("платёж", &["p8"]),
        ("ТРАНСФЕРТНЫЙ", &["p8"]),
        ("调查员", &["p9"]),
        ("鳄鱼", &["p9"]),
        ("报告书", &[]),
        ("merger", &["p13"]),
        ("leaked", &["p1"]),
        ("kind:member_join", &["e-join"]),
    ];
    for (query, expected) in cases {
        assert_eq!(s.posts(query, &all).await, set(expected), "query {query}");
    }
}

async fn scopes_exclude_the_best_hits_and_foreign_versions(backend: Backend) {
    let s = searchable(backend, fixture()).await;
    let legal = Scope::teams(["legal"]);
    // p5 scores best for budget, p10 is team "Legal" (another team).
    let best = s
        .page("budget", &Scope::All, |r| r.sort = Sort::Relevance)
        .await;
    assert_eq!(best.hits[0].event.post.as_deref(), Some("p5"));
    assert_eq!(s.posts("budget", &legal).await, set(&["p3"]));
    let scoped = s.page("budget", &legal, |r| r.sort = Sort::Relevance).await;
    assert_eq!(scoped.total, 1);
    let deals = Scope::channels([ChannelRef::new("legal", "deals")]);
    assert_eq!(s.posts("wire", &deals).await, set(&["p1", "p2"]));
    assert_eq!(s.posts("wire", &Scope::Nothing).await, set(&[]));
    assert_eq!(s.posts("NOT wire", &Scope::Nothing).await, set(&[]));
    // A foreign event about p1 (team sales) is neither found nor shown.
    assert_eq!(s.posts("leaked", &legal).await, set(&[]));
    // Nor does it make p1 "edited" for someone who cannot see it.
    assert_eq!(s.posts("is:edited", &legal).await, set(&["p3", "p13"]));
    assert_eq!(
        s.posts("is:edited", &Scope::All).await,
        set(&["p1", "p3", "p13"])
    );
    let wire = s.page("wire", &legal, |_| {}).await;
    let p1 = wire
        .hits
        .iter()
        .find(|hit| hit.event.post.as_deref() == Some("p1"))
        .unwrap();
    assert_eq!(p1.event.team, "legal");
    assert!(!p1.edited, "the only edit of p1 is outside the scope");
    assert!(p1.event.text.as_deref().unwrap().contains("wire transfer"));
    let context = search::context(&s.store, &s.index, &legal, "p1", 5, 5)
        .await
        .unwrap()
        .unwrap();
    assert!(context.versions.iter().all(|event| event.team == "legal"));
    // Out of scope looks the same as missing.
    assert!(
        search::context(&s.store, &s.index, &legal, "p5", 5, 5)
            .await
            .unwrap()
            .is_none()
    );
    // Every hit of every query respects the scope.
    for query in [
        "wire",
        "budget",
        "NOT wire",
        "team:sales",
        "leaked OR budget",
        "is:edited",
    ] {
        for scope in [&legal, &deals] {
            let page = s.page(query, scope, |r| r.versions = Versions::All).await;
            for hit in &page.hits {
                assert!(
                    scope.allows(&hit.event.team, &hit.event.channel),
                    "{query}: {:?}",
                    hit.event
                );
            }
        }
    }
}

async fn hits_show_the_latest_version_with_flags_and_snippets(backend: Backend) {
    let s = searchable(backend, fixture()).await;
    let page = s.page("invest*", &Scope::All, |_| {}).await;
    let hit = &page.hits[0];
    assert_eq!(hit.event.id, "e-p3-edit", "the latest version is shown");
    assert!(hit.edited && !hit.deleted);
    assert_eq!(hit.versions, 2);
    assert_eq!(hit.matched_versions, 2);
    let highlighted: Vec<String> = hit
        .snippet
        .highlights
        .iter()
        .map(|&(from, to)| {
            hit.snippet
                .text
                .chars()
                .skip(from)
                .take(to - from)
                .collect()
        })
        .collect();
    assert_eq!(highlighted, vec!["Investigator"]);

    // The latest version lost the word: the snippet comes from the match.
    let merger = s.page("merger", &Scope::All, |_| {}).await;
    let hit = &merger.hits[0];
    assert_eq!(hit.event.text.as_deref(), Some("the deal is public"));
    assert_eq!(hit.matched_event_id, "e-p13");
    assert_eq!(hit.snippet.text, "the merger is secret");
    assert_eq!(hit.snippet.highlights, vec![(4, 10)]);

    let deleted = s.page("forecast", &Scope::All, |_| {}).await;
    assert!(deleted.hits[0].deleted);
    let reacted = s
        .page("has:reaction", &Scope::teams(["legal"]), |_| {})
        .await;
    assert_eq!(
        reacted.hits[0].reactions.get("thumbsup").unwrap(),
        &vec!["dasovich-j".to_owned()]
    );

    // Every version on request.
    let all = s
        .page("budget", &Scope::All, |r| r.versions = Versions::All)
        .await;
    let ids: BTreeSet<String> = all.hits.iter().map(|hit| hit.event.id.clone()).collect();
    assert_eq!(ids, set(&["e-p3", "e-p3-edit", "e-p4", "e-p5", "e-p10"]));
    assert_eq!(all.total, 5);

    let phrase = s
        .page("\"wire transfer\"", &Scope::teams(["legal"]), |_| {})
        .await;
    let snippet = &phrase.hits[0].snippet;
    let (from, to) = snippet.highlights[0];
    let marked: String = snippet.text.chars().skip(from).take(to - from).collect();
    assert_eq!(marked, "wire transfer");
    let cjk = s.page("调查员", &Scope::All, |_| {}).await;
    let (from, to) = cjk.hits[0].snippet.highlights[0];
    let marked: String = cjk.hits[0]
        .snippet
        .text
        .chars()
        .skip(from)
        .take(to - from)
        .collect();
    assert_eq!(marked, "调查员");
}

async fn cursors_never_skip_or_repeat_identical_timestamps(backend: Backend) {
    let mut events = fixture();
    for i in 0..37 {
        events.push(
            json!({"id": format!("e-same-{i}"), "kind": "post", "at": T0 + 5_000 * SEC,
            "team": "legal", "channel": "general", "user": "lay-k", "post": format!("same-{i}"),
            "text": format!("identical timestamp memo {i}")}),
        );
    }
    let s = searchable(backend, events).await;
    for sort in [Sort::Newest, Sort::Oldest, Sort::Relevance] {
        for versions in [Versions::Latest, Versions::All] {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let page = s
                    .page("memo OR budget", &Scope::All, |r| {
                        r.sort = sort;
                        r.versions = versions;
                        r.limit = 4;
                        r.cursor.clone_from(&cursor);
                    })
                    .await;
                let expected_total = if versions == Versions::Latest { 41 } else { 42 };
                assert_eq!(page.total, expected_total, "{sort:?} {versions:?}");
                seen.extend(page.hits.iter().map(|hit| hit.matched_event_id.clone()));
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let distinct: BTreeSet<&String> = seen.iter().collect();
            let expected = if versions == Versions::Latest { 41 } else { 42 };
            assert_eq!(seen.len(), expected, "{sort:?} {versions:?}: {seen:?}");
            assert_eq!(
                distinct.len(),
                expected,
                "{sort:?} {versions:?}: repeated hits"
            );
        }
    }
    // A cursor of another sort is refused, not misread.
    let first = s.page("memo", &Scope::All, |r| r.limit = 2).await;
    let parsed = search::parse("memo", &ParseOptions::default()).unwrap();
    let mut request = SearchRequest::new(parsed);
    request.sort = Sort::Oldest;
    request.cursor = first.next_cursor;
    assert!(matches!(
        search::search(&s.store, &s.index, &Scope::All, &request).await,
        Err(search::SearchError::BadCursor(_))
    ));
}

async fn context_shows_thread_and_neighbours_of_the_same_channel(backend: Backend) {
    let s = searchable(backend, fixture()).await;
    let context = search::context(&s.store, &s.index, &Scope::All, "p6", 5, 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(context.thread_root.as_deref(), Some("p1"));
    let thread: Vec<&str> = context
        .thread
        .iter()
        .map(|hit| hit.event.post.as_deref().unwrap())
        .collect();
    assert_eq!(thread, vec!["p1", "p6"]);
    let before: Vec<&str> = context
        .before
        .iter()
        .map(|hit| hit.event.post.as_deref().unwrap())
        .collect();
    assert_eq!(before, vec!["p1", "p2"]);
    let after: Vec<&str> = context
        .after
        .iter()
        .map(|hit| hit.event.post.as_deref().unwrap())
        .collect();
    // p10 is in team "Legal", channel "deals": another channel.
    assert_eq!(after, vec!["p7", "p13"]);
    assert_eq!(
        context.after[1].event.text.as_deref(),
        Some("the deal is public")
    );
    let one = search::context(&s.store, &s.index, &Scope::All, "p6", 1, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.before.len(), 1);
    assert_eq!(one.before[0].event.post.as_deref(), Some("p2"));
    assert!(one.after.is_empty());
    assert!(
        search::context(&s.store, &s.index, &Scope::All, "nope", 5, 5)
            .await
            .unwrap()
            .is_none()
    );
}

fn generated(n: u64) -> Vec<Value> {
    EventGenerator::new(&GenerateOptions {
        events: n,
        seed: 21,
        ..GenerateOptions::default()
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_index_answers_every_query_like_the_incremental_one() {
    let archive = TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let events: Vec<Event> = generated(4000)
        .into_iter()
        .chain(fixture())
        .map(|value| Event::from_json(value).unwrap())
        .collect();
    let incremental = SearchIndex::open_or_create(&archive.dir.path().join("incremental")).unwrap();
    for part in events.chunks(333) {
        store.append(part.to_vec()).await.unwrap();
        index::catch_up(&store, &incremental, |_, _| {})
            .await
            .unwrap();
    }
    incremental.reload().unwrap();
    let rebuilt_path = archive.dir.path().join("rebuilt");
    index::rebuild(&store, &rebuilt_path, |_, _| {})
        .await
        .unwrap();
    let rebuilt = SearchIndex::open_or_create(&rebuilt_path).unwrap();
    rebuilt.reload().unwrap();
    let (incremental, rebuilt) = (Arc::new(incremental), Arc::new(rebuilt));
    let queries = [
        "the",
        "deal OR budget",
        "\"the deal\"",
        "deal NEAR(3) price",
        "pri*",
        "is:edited",
        "is:deleted",
        "has:reaction",
        "kind:edit",
        "from:allen-p",
        "NOT the",
        "has:file",
        "in:power-west the",
        "sent>=2024-01-01T06:00:00Z",
        "wire transfer",
        "调查员",
    ];
    for query in queries {
        let parsed = search::parse(query, &ParseOptions::default()).unwrap();
        for versions in [Versions::Latest, Versions::All] {
            for sort in [Sort::Newest, Sort::Relevance] {
                let mut request = SearchRequest::new(parsed.clone());
                request.versions = versions;
                request.sort = sort;
                request.limit = 50;
                let a = search::search(&store, &incremental, &Scope::All, &request)
                    .await
                    .unwrap();
                let b = search::search(&store, &rebuilt, &Scope::All, &request)
                    .await
                    .unwrap();
                assert_eq!(a.total, b.total, "{query} {versions:?} {sort:?}");
                let ids = |page: &SearchPage| -> Vec<String> {
                    page.hits
                        .iter()
                        .map(|hit| hit.matched_event_id.clone())
                        .collect()
                };
                if sort == Sort::Newest {
                    assert_eq!(ids(&a), ids(&b), "{query} {versions:?}");
                } else {
                    // Scores depend on segment statistics; the sets must agree.
                    let (mut x, mut y) = (ids(&a), ids(&b));
                    x.sort();
                    y.sort();
                    if a.total <= 50 {
                        assert_eq!(x, y, "{query} {versions:?} relevance");
                    }
                }
            }
        }
        assert!(
            search::search(
                &store,
                &incremental,
                &Scope::All,
                &SearchRequest::new(parsed)
            )
            .await
            .unwrap()
            .total
                > 0
                || ["is:deleted", "has:file", "调查员"].contains(&query),
            "{query} should find something in the generated corpus"
        );
    }
}

both_backends!(
    every_operator_has_its_known_answer,
    scopes_exclude_the_best_hits_and_foreign_versions,
    hits_show_the_latest_version_with_flags_and_snippets,
    cursors_never_skip_or_repeat_identical_timestamps,
    context_shows_thread_and_neighbours_of_the_same_channel,
);

/// For random queries and scopes over a generated corpus: the events found
/// within a scope are exactly the events found in the whole archive that the
/// scope allows, and grouping by post never adds a post outside them.
#[test]
fn no_query_escapes_its_scope() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let corpus: Vec<Value> = generated(2500)
        .into_iter()
        .chain(
            fixture()
                .into_iter()
                .filter(|event| event["id"] != "e-p1-foreign"),
        )
        .collect();
    // Every event is new, so the i-th is stored with seq i + 1.
    let places: Vec<(String, String)> = corpus
        .iter()
        .map(|event| {
            (
                event["team"].as_str().unwrap().to_owned(),
                event["channel"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let s = runtime.block_on(searchable(Backend::Sqlite, corpus));
    let pairs: Vec<(String, String)> = places
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let teams: Vec<String> = pairs
        .iter()
        .map(|(team, _)| team.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let atoms = prop::sample::select(vec![
        "wire",
        "budget",
        "the",
        "deal",
        "pri*",
        "\"the deal\"",
        "deal NEAR(3) price",
        "from:allen-p",
        "in:general",
        "team:sales",
        "kind:post",
        "kind:edit",
        "has:file",
        "is:edited",
        "is:deleted",
        "has:reaction",
        "emoji:thumbsup",
        "sent>=2024-01-01T06:00:00Z",
        "调查员",
        "платёж",
        "exact:Budget",
    ])
    .prop_map(str::to_owned);
    let queries = atoms.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    });
    let scopes = (
        prop::sample::subsequence(teams.clone(), 0..=teams.len().min(2)),
        prop::sample::subsequence(pairs, 0..=4),
    )
        .prop_map(|(teams, channels)| {
            Scope::teams(teams).union(Scope::channels(
                channels
                    .into_iter()
                    .map(|(team, channel)| ChannelRef::new(team, channel)),
            ))
        });
    let mut runner = TestRunner::new(Config {
        cases: 120,
        failure_persistence: None,
        ..Config::default()
    });
    let parsed_cases = std::sync::atomic::AtomicUsize::new(0);
    let non_empty_cases = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&(queries, scopes), |(query, scope)| {
            let parsed = match search::parse(&query, &ParseOptions::default()) {
                Ok(parsed) => {
                    parsed_cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    parsed
                }
                // Some combinations are refused by design (a clause that
                // cannot match); that is the parser's business.
                Err(_) => return Ok(()),
            };
            let everything = s
                .index
                .find(&parsed, &Scope::All, false, Sort::Oldest, None, 1_000_000)
                .unwrap();
            let expected: BTreeSet<u64> = everything
                .hits
                .iter()
                .filter(|hit| {
                    let (team, channel) = &places[hit.seq as usize - 1];
                    scope.allows(team, channel)
                })
                .map(|hit| hit.seq)
                .collect();
            let scoped = s
                .index
                .find(&parsed, &scope, false, Sort::Oldest, None, 1_000_000)
                .unwrap();
            let found: BTreeSet<u64> = scoped.hits.iter().map(|hit| hit.seq).collect();
            if !found.is_empty() && found.len() < everything.hits.len() {
                non_empty_cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            prop_assert_eq!(&found, &expected, "query {} scope {}", query, scope);
            prop_assert_eq!(scoped.total as usize, found.len());
            let posts = s
                .index
                .find(&parsed, &scope, true, Sort::Newest, None, 1_000_000)
                .unwrap();
            let post_keys: BTreeSet<u64> = scoped.hits.iter().map(|hit| hit.post_key).collect();
            let grouped: BTreeSet<u64> = posts.hits.iter().map(|hit| hit.post_key).collect();
            prop_assert_eq!(grouped, post_keys);
            Ok(())
        })
        .unwrap();
    // The property was tried on real answers: most queries parse, and many
    // scoped answers are neither empty nor everything.
    let parsed = parsed_cases.into_inner();
    let narrowed = non_empty_cases.into_inner();
    assert!(
        parsed >= 60,
        "only {parsed} of 120 generated queries parsed"
    );
    assert!(
        narrowed >= 20,
        "only {narrowed} cases had a scope that narrowed a non-empty answer"
    );
}
