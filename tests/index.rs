//! The search index: derived from the store, built incrementally or rebuilt
//! from scratch with the same result, checked against the store, and never
//! holding message text in stored fields.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use helpers::TestArchive;
use holdfast::db::Backend;
use holdfast::event::Event;
use holdfast::generate::{EventGenerator, GenerateOptions};
use holdfast::index::{self, SearchIndex};
use holdfast::store::Store;
use tantivy::Term;
use tantivy::collector::Count;
use tantivy::query::{PhraseQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};

fn corpus(n: u64) -> Vec<Event> {
    let mut events: Vec<Event> = EventGenerator::new(&GenerateOptions {
        events: n,
        seed: 9,
        ..GenerateOptions::default()
    })
    .map(|value| Event::from_json(value).unwrap())
    .collect();
    // Known answers: accents, Cyrillic and a CJK word inside a longer run.
    let extra = serde_json::json!([
        {"id": "k-cafe", "kind": "post", "at": 1_704_067_200_000_i64, "team": "t", "channel": "c",
         "user": "allen-p", "post": "k-cafe", "text": "Meet at Ærøskøbing Kaffébar"},
        {"id": "k-ru", "kind": "post", "at": 1_704_067_200_000_i64, "team": "t", "channel": "c",
         "user": "allen-p", "post": "k-ru", "text": "Трансфертный платёж"},
        {"id": "k-cjk", "kind": "post", "at": 1_704_067_200_000_i64, "team": "t", "channel": "c",
         "user": "allen-p", "post": "k-cjk", "text": "这是鳄鱼调查员的报告"},
    ]);
    for value in extra.as_array().unwrap() {
        events.push(Event::from_json(value.clone()).unwrap());
    }
    events
}

fn count_term(index: &SearchIndex, word: &str) -> usize {
    let searcher = index.searcher().unwrap();
    let query = TermQuery::new(
        Term::from_field_text(index.fields().text, word),
        IndexRecordOption::Basic,
    );
    searcher.search(&query, &Count).unwrap()
}

fn count_phrase(index: &SearchIndex, words: &[&str]) -> usize {
    let searcher = index.searcher().unwrap();
    let terms = words
        .iter()
        .map(|w| Term::from_field_text(index.fields().text, w))
        .collect();
    searcher.search(&PhraseQuery::new(terms), &Count).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_and_rebuilt_indexes_answer_the_same() {
    let archive = TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let events = corpus(3000);
    let total = events.len() as u64;
    let incremental_path = archive.dir.path().join("index");
    let incremental = SearchIndex::open_or_create(&incremental_path).unwrap();
    for part in events.chunks(700) {
        store.append(part.to_vec()).await.unwrap();
        index::catch_up(&store, &incremental, |_, _| {})
            .await
            .unwrap();
    }
    assert_eq!(incremental.indexed_seq().unwrap(), total);

    let rebuilt_path = archive.dir.path().join("rebuilt");
    let mut steps = Vec::new();
    let last = index::rebuild(&store, &rebuilt_path, |done, of| steps.push((done, of)))
        .await
        .unwrap();
    assert_eq!(last, total);
    assert_eq!(steps.last(), Some(&(total, total)));
    let rebuilt = SearchIndex::open_or_create(&rebuilt_path).unwrap();

    let all: Vec<u64> = (1..=total).collect();
    assert_eq!(incremental.all_seqs().unwrap(), all);
    assert_eq!(rebuilt.all_seqs().unwrap(), all);
    for word in [
        "offshore",
        "raptor",
        "wire",
        "transfer",
        "cafe",
        "zurich",
        "перевод",
        "调查",
        "查员",
    ] {
        let a = count_term(&incremental, word);
        assert_eq!(a, count_term(&rebuilt, word), "{word}");
    }
    for words in [&["wire", "transfer"][..], &["鳄鱼", "鱼调"][..]] {
        assert_eq!(
            count_phrase(&incremental, words),
            count_phrase(&rebuilt, words)
        );
    }
    // Known answers: folded accents, Cyrillic lowercased, CJK word inside a run.
    assert_eq!(count_term(&incremental, "aeroskobing"), 1);
    assert_eq!(count_term(&incremental, "kaffebar"), 1);
    assert_eq!(count_term(&incremental, "трансфертный"), 1);
    assert_eq!(count_term(&incremental, "платёж"), 1);
    assert_eq!(count_phrase(&incremental, &["鳄鱼", "鱼调", "调查"]), 1);
    assert!(count_phrase(&incremental, &["wire", "transfer"]) > 0);

    let report = index::check(&store, &incremental).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.store_events, total);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_left_behind_catches_up_and_check_names_the_gap() {
    let archive = TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let events = corpus(500);
    store.append(events[..300].to_vec()).await.unwrap();
    let path = archive.dir.path().join("index");
    let index = SearchIndex::open_or_create(&path).unwrap();
    index::catch_up(&store, &index, |_, _| {}).await.unwrap();
    // The store moves on while the index is not looking (a crash, say).
    store.append(events[300..].to_vec()).await.unwrap();
    let behind = index::check(&store, &index).await.unwrap();
    assert!(!behind.ok());
    assert_eq!(behind.n_missing, (events.len() - 300) as u64);
    assert_eq!(behind.missing.first(), Some(&301));
    assert_eq!(behind.n_extra, 0);
    drop(index);

    let reopened = SearchIndex::open_or_create(&path).unwrap();
    assert_eq!(reopened.indexed_seq().unwrap(), 300);
    let last = index::catch_up(&store, &reopened, |_, _| {}).await.unwrap();
    assert_eq!(last, events.len() as u64);
    assert!(index::check(&store, &reopened).await.unwrap().ok());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_another_archive_is_refused() {
    let big = TestArchive::new(Backend::Sqlite).await;
    let store = big.open().await;
    store.append(corpus(200)).await.unwrap();
    let path = big.dir.path().join("index");
    let index = SearchIndex::open_or_create(&path).unwrap();
    index::catch_up(&store, &index, |_, _| {}).await.unwrap();
    store.close().await;

    let small = TestArchive::new(Backend::Sqlite).await;
    let other: Store = small.open().await;
    other.append(helpers::posts("o", 5)).await.unwrap();
    let error = index::catch_up(&other, &index, |_, _| {})
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("another archive"), "{error}");
    let report = index::check(&other, &index).await.unwrap();
    assert!(!report.ok());
    assert!(report.n_extra > 0);
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_stores_no_message_text() {
    let archive = TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    store.append(corpus(100)).await.unwrap();
    let index = SearchIndex::open_or_create(&archive.dir.path().join("index")).unwrap();
    index::catch_up(&store, &index, |_, _| {}).await.unwrap();
    let searcher = index.searcher().unwrap();
    let query = TermQuery::new(
        Term::from_field_text(index.fields().text, "aeroskobing"),
        IndexRecordOption::Basic,
    );
    let hits = searcher
        .search(&query, &tantivy::collector::DocSetCollector)
        .unwrap();
    assert_eq!(hits.len(), 1);
    let address = *hits.iter().next().unwrap();
    let document: tantivy::TantivyDocument = searcher.doc(address).unwrap();
    let stored: Vec<_> = document.field_values().collect();
    assert_eq!(stored.len(), 1, "only seq is stored");
    assert_eq!(stored[0].0, index.fields().seq);
    assert!(stored[0].1.as_u64().is_some());
    store.close().await;
}
