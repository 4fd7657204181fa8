//! Retention end to end, through the library: expiry at the boundary day,
//! policy precedence, floors that refuse to be lowered, legal holds of every
//! kind (and their release), what is left on disk after a run (nothing of a
//! deleted message, anywhere under the data directory), late ingest into a
//! destroyed day, an interrupted run finished by `resume_unfinished`, and a
//! property test against an independent oracle.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{Days, NaiveDate, NaiveTime};
use helpers::TestArchive;
use holdfast::db::Backend;
use holdfast::event::Event;
use holdfast::index::{self, SearchIndex};
use holdfast::retention::holds::{self, HoldCriteria, NewHold};
use holdfast::retention::policy::PolicySet;
use holdfast::retention::run::{ChannelDay, PolicyCount};
use holdfast::retention::{RetentionError, RunOptions, RunOutcome, Trigger};
use holdfast::search::{self, ChannelRef, ParseOptions, Scope, SearchRequest};
use holdfast::store::{Store, StoreError, StoreOptions};
use serde_json::json;

// ------------------------------------------------------------------ helpers

struct Env {
    archive: TestArchive,
    store: Store,
    index: Arc<SearchIndex>,
}

async fn env(backend: Backend) -> Env {
    env_with(backend, |_| {}).await
}

async fn env_with(backend: Backend, tune: impl FnOnce(&mut StoreOptions)) -> Env {
    let mut archive = TestArchive::new(backend).await;
    tune(&mut archive.options);
    let store = archive.open().await;
    // Where production keeps it: inside the data directory.
    let index = SearchIndex::open_or_create(&archive.data_dir().join("index")).unwrap();
    Env {
        archive,
        store,
        index: Arc::new(index),
    }
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn plus(d: NaiveDate, n: u64) -> NaiveDate {
    d.checked_add_days(Days::new(n)).unwrap()
}

/// Milliseconds of `d` at `secs` seconds past midnight UTC.
fn at_ms(d: NaiveDate, secs: u32) -> i64 {
    d.and_time(NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).unwrap())
        .and_utc()
        .timestamp_millis()
}

/// A post (its own post id is its id).
#[allow(clippy::too_many_arguments, reason = "a test fixture")]
fn post(
    id: &str,
    team: &str,
    channel: &str,
    user: &str,
    d: NaiveDate,
    secs: u32,
    text: &str,
) -> Event {
    Event::from_json(json!({
        "id": id, "kind": "post", "at": at_ms(d, secs), "team": team, "channel": channel,
        "user": user, "post": id, "text": text,
    }))
    .unwrap()
}

fn reaction(id: &str, on: &Event, user: &str, secs: u32) -> Event {
    Event::from_json(json!({
        "id": id, "kind": "reaction_add", "at": at_ms(day_of_us(on.at_us), secs), "team": on.team,
        "channel": on.channel, "user": user, "post": on.post, "emoji": "thumbsup",
    }))
    .unwrap()
}

fn day_of_us(at_us: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_micros(at_us)
        .unwrap()
        .date_naive()
}

fn policies(toml: &str) -> PolicySet {
    PolicySet::parse_files(&[("test.toml".to_owned(), format!("version = 1\n{toml}"))])
        .unwrap_or_else(|error| panic!("{error}"))
}

fn options(as_of: NaiveDate) -> RunOptions {
    RunOptions {
        as_of,
        started_by: "tester".to_owned(),
        trigger: Trigger::Cli,
        compact: true,
    }
}

impl Env {
    async fn ingest(&self, events: Vec<Event>) {
        let n = events.len();
        let statuses = self.store.append(events).await.unwrap();
        assert_eq!(statuses.len(), n);
        for status in statuses {
            assert!(
                matches!(status, holdfast::store::AppendStatus::Stored { .. }),
                "{status:?}"
            );
        }
    }

    async fn run(&self, set: &PolicySet, as_of: NaiveDate) -> RunOutcome {
        holdfast::retention::run(&self.store, &self.index, set, &options(as_of))
            .await
            .unwrap_or_else(|error| panic!("run as of {as_of}: {error}"))
    }

    async fn try_run(
        &self,
        set: &PolicySet,
        as_of: NaiveDate,
    ) -> Result<RunOutcome, RetentionError> {
        holdfast::retention::run(&self.store, &self.index, set, &options(as_of)).await
    }

    /// The text of a readable event; panics when it is missing or unreadable.
    async fn text(&self, id: &str) -> String {
        match self.store.get_event(id).await {
            Ok(Some(stored)) => stored.event.text.unwrap_or_default(),
            other => panic!("{id} should be readable: {other:?}"),
        }
    }

    async fn readable(&self, id: &str) -> bool {
        match self.store.get_event(id).await {
            Ok(Some(_)) => true,
            Err(StoreError::Shredded(_)) => false,
            other => panic!("{id}: unexpected {other:?}"),
        }
    }

    /// The policy that deleted `id`; panics when it was not deleted.
    async fn shredded_by(&self, id: &str) -> String {
        match self.store.get_event(id).await {
            Err(StoreError::Shredded(tombstone)) => {
                assert_eq!(tombstone.event_id, id);
                assert!(
                    day_like(&tombstone.deleted_on),
                    "deleted_on {:?}",
                    tombstone.deleted_on
                );
                tombstone.policy
            }
            other => panic!("{id} should be shredded: {other:?}"),
        }
    }

    /// Seqs of the index matching a query (from the last commit).
    fn matching(&self, query: &str) -> Vec<u64> {
        let parsed = search::parse(query, &ParseOptions::default()).unwrap();
        self.index.matching_seqs(&parsed, &Scope::All).unwrap()
    }

    /// Event ids the audited search finds for `query`.
    async fn search_ids(&self, query: &str) -> BTreeSet<String> {
        index::catch_up(&self.store, &self.index, |_, _| {})
            .await
            .unwrap();
        self.index.reload().unwrap();
        let parsed = search::parse(query, &ParseOptions::default()).unwrap();
        let mut request = SearchRequest::new(parsed);
        request.limit = 100;
        let page = search::search(&self.store, &self.index, &Scope::All, &request)
            .await
            .unwrap();
        page.hits.iter().map(|hit| hit.event.id.clone()).collect()
    }

    async fn hold(&self, name: &str, criteria: HoldCriteria) -> holds::Hold {
        holds::create_hold(
            self.store.db(),
            &Scope::All,
            "tester",
            &NewHold {
                name: name.to_owned(),
                matter: "Matter v. Test".to_owned(),
                reason: "litigation".to_owned(),
                criteria,
            },
        )
        .await
        .unwrap()
    }

    async fn release(&self, hold: &holds::Hold) {
        holds::release_hold(
            self.store.db(),
            &Scope::All,
            hold.id,
            "tester",
            "matter closed",
        )
        .await
        .unwrap();
    }

    async fn verify_ok(&self) -> holdfast::store::verify::VerifyReport {
        let report = self.store.verify().await.unwrap();
        assert!(report.ok, "verify: {:?}", report.problems);
        report
    }
}

fn day_like(text: &str) -> bool {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

fn sentence(tag: &str, i: usize) -> String {
    format!(
        "Memo {tag} number {i:05}: the heron crossed the quiet granary at dusk counting {i:05} silver barrels for {tag}"
    )
}

// ------------------------------------------------------------------ 1. boundary

async fn expiry_is_exact_at_the_boundary_day(backend: Backend) {
    let e = env(backend).await;
    let d = day("2024-03-01");
    let mut events = Vec::new();
    // Midnight, midday and the last second of D.
    for (i, secs) in [0u32, 43_200, 86_399].into_iter().enumerate() {
        events.push(post(
            &format!("old-{i}"),
            "t",
            "c",
            "alice",
            d,
            secs,
            &sentence("old", i),
        ));
    }
    events.push(post(
        "old-other",
        "t",
        "c2",
        "bob",
        d,
        3_600,
        &sentence("oldc2", 0),
    ));
    // The next day: one day younger.
    events.push(post(
        "next-0",
        "t",
        "c",
        "alice",
        plus(d, 1),
        0,
        &sentence("next", 0),
    ));
    e.ingest(events).await;
    let set = policies("[[policy]]\nname = \"thirty\"\nkeep_days = 30\n");

    let plan = holdfast::retention::plan(&e.store, &e.index, &set, plus(d, 30))
        .await
        .unwrap();
    assert_eq!(plan.events_to_delete, 0);
    let kept = e.run(&set, plus(d, 30)).await;
    assert_eq!(kept.certificate.events_deleted, 0);
    assert!(kept.certificate.deleted_by_policy.is_empty());
    for id in ["old-0", "old-1", "old-2", "old-other", "next-0"] {
        assert!(e.readable(id).await, "{id} is 30 days old on D+30: kept");
    }

    let plan = holdfast::retention::plan(&e.store, &e.index, &set, plus(d, 31))
        .await
        .unwrap();
    assert_eq!(plan.events_to_delete, 4);
    let outcome = e.run(&set, plus(d, 31)).await;
    let cert = &outcome.certificate;
    assert_eq!(cert.events_deleted, 4);
    assert_eq!(cert.as_of, "2024-04-01");
    assert_eq!(
        cert.deleted_by_policy,
        vec![PolicyCount {
            policy: "thirty".to_owned(),
            events: 4,
            by_channel_day: vec![
                ChannelDay {
                    team: "t".to_owned(),
                    channel: "c".to_owned(),
                    day: "2024-03-01".to_owned(),
                    events: 3,
                },
                ChannelDay {
                    team: "t".to_owned(),
                    channel: "c2".to_owned(),
                    day: "2024-03-01".to_owned(),
                    events: 1,
                },
            ],
        }]
    );
    assert_eq!(
        cert.deleted_by_policy, plan.by_policy,
        "the plan said the same"
    );
    let destroyed: BTreeSet<(String, String, String)> = cert
        .epochs_destroyed
        .iter()
        .map(|epoch| (epoch.team.clone(), epoch.channel.clone(), epoch.day.clone()))
        .collect();
    assert_eq!(
        destroyed,
        BTreeSet::from([
            ("t".to_owned(), "c".to_owned(), "2024-03-01".to_owned()),
            ("t".to_owned(), "c2".to_owned(), "2024-03-01".to_owned()),
        ])
    );
    for id in ["old-0", "old-1", "old-2", "old-other"] {
        assert_eq!(e.shredded_by(id).await, "thirty");
    }
    assert_eq!(e.text("next-0").await, sentence("next", 0));
    // The certificate on disk is the one returned, and it is in the database.
    let on_disk = std::fs::read_to_string(&outcome.certificate_path).unwrap();
    assert!(
        outcome
            .certificate_path
            .starts_with(e.archive.data_dir().join("certificates"))
    );
    let parsed: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
    assert_eq!(parsed["events_deleted"], 4);
    assert_eq!(parsed["run_id"], outcome.run_id);
    let row = e
        .store
        .db()
        .retention_run(outcome.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "done");
    assert_eq!(row.certificate.as_deref(), Some(on_disk.as_str()));
    e.verify_ok().await;
}

// ------------------------------------------------------------------ 2. precedence

async fn channel_beats_team_beats_global(backend: Backend) {
    let e = env(backend).await;
    let d = day("2024-01-10");
    e.ingest(vec![
        post("ax", "a", "x", "u", d, 100, &sentence("ax", 0)),
        post("ay", "a", "y", "u", d, 100, &sentence("ay", 0)),
        post("bz", "b", "z", "u", d, 100, &sentence("bz", 0)),
    ])
    .await;
    let set = policies(
        "[[policy]]\nname = \"global\"\nkeep_days = 100\n\
         [[policy]]\nname = \"team-a\"\nteam = \"a\"\nkeep_days = 50\n\
         [[policy]]\nname = \"chan-ax\"\nteam = \"a\"\nchannel = \"x\"\nkeep_days = 10\n",
    );
    let first = e.run(&set, plus(d, 20)).await;
    assert_eq!(first.certificate.events_deleted, 1);
    assert_eq!(e.shredded_by("ax").await, "chan-ax");
    assert!(e.readable("ay").await);
    assert!(e.readable("bz").await);

    let second = e.run(&set, plus(d, 51)).await;
    assert_eq!(second.certificate.events_deleted, 1);
    assert_eq!(second.certificate.deleted_by_policy[0].policy, "team-a");
    assert_eq!(e.shredded_by("ay").await, "team-a");
    assert!(e.readable("bz").await, "50 < age <= 100: global keeps b/z");

    let same_day = e.run(&set, plus(d, 100)).await;
    assert_eq!(same_day.certificate.events_deleted, 0);
    let third = e.run(&set, plus(d, 101)).await;
    assert_eq!(third.certificate.events_deleted, 1);
    assert_eq!(e.shredded_by("bz").await, "global");
    e.verify_ok().await;
}

// ------------------------------------------------------------------ 3. floors

async fn a_lowered_floor_is_refused_while_it_protects_data(backend: Backend) {
    let e = env(backend).await;
    let d = day("2024-01-10");
    e.ingest(vec![
        post("f1", "t", "c", "u", d, 3_600, &sentence("f", 1)),
        post("f2", "t", "c", "u", d, 7_200, &sentence("f", 2)),
    ])
    .await;
    let high = policies("[[policy]]\nname = \"global\"\nkeep_days = 100\nmin_keep_days = 60\n");
    let low = policies("[[policy]]\nname = \"global\"\nkeep_days = 10\nmin_keep_days = 10\n");
    assert_eq!(e.run(&high, plus(d, 5)).await.certificate.events_deleted, 0);

    // 20 days old, protected by the applied floor of 60.
    let plan = holdfast::retention::plan(&e.store, &e.index, &low, plus(d, 20))
        .await
        .unwrap();
    assert!(plan.refused);
    assert_eq!(plan.lowered_floors.len(), 1);
    assert_eq!(plan.lowered_floors[0].old_days, 60);
    assert_eq!(plan.lowered_floors[0].new_days, 10);
    match e.try_run(&low, plus(d, 20)).await {
        Err(RetentionError::FloorLowered(changes)) => {
            assert_eq!(changes.len(), 1);
            assert_eq!(changes[0].old_days, 60);
        }
        other => panic!("expected FloorLowered, got {other:?}"),
    }
    // Nothing was deleted, and the old floor is still the applied one.
    assert!(e.readable("f1").await && e.readable("f2").await);
    let applied = e.store.db().applied_floors().await.unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].min_keep_days, 60);
    // Still refused on the last day the old floor protects (age 60).
    assert!(matches!(
        e.try_run(&low, plus(d, 60)).await,
        Err(RetentionError::FloorLowered(_))
    ));
    assert!(e.readable("f1").await && e.readable("f2").await);

    // Once every covered event is past 60 days, lowering is allowed.
    let outcome = e.run(&low, plus(d, 61)).await;
    assert_eq!(outcome.certificate.events_deleted, 2);
    let applied = e.store.db().applied_floors().await.unwrap();
    assert_eq!(applied[0].min_keep_days, 10);
    e.verify_ok().await;
}

/// An event at exactly 00:00:00 UTC of the day `as_of - old_floor` is
/// `old_floor` days old: the old floor still protects it, so lowering the
/// floor must be refused on that day.
async fn a_lowered_floor_protects_an_event_at_midnight(backend: Backend) {
    let e = env(backend).await;
    let d = day("2024-01-10");
    e.ingest(vec![post(
        "midnight",
        "t",
        "c",
        "u",
        d,
        0,
        &sentence("midnight", 0),
    )])
    .await;
    let high = policies("[[policy]]\nname = \"global\"\nkeep_days = 100\nmin_keep_days = 60\n");
    let low = policies("[[policy]]\nname = \"global\"\nkeep_days = 10\nmin_keep_days = 10\n");
    e.run(&high, plus(d, 5)).await;
    // Age 60 on D+60: not past the old floor of 60.
    let result = e.try_run(&low, plus(d, 60)).await;
    let still_there = e.readable("midnight").await;
    assert!(
        matches!(result, Err(RetentionError::FloorLowered(_))),
        "lowering the floor from 60 to 10 on D+60 must be refused while an event of D \
         (00:00:00Z, age 60) is protected by it; got {:?}, event readable: {still_there}",
        result.map(|outcome| outcome.certificate.events_deleted)
    );
    assert!(
        still_there,
        "an event protected by the old floor was deleted"
    );
}

// ------------------------------------------------------------------ 4. holds

/// The fixture of the hold tests, all on day D (due on D+11 under
/// keep 10): `(id, channel, user, secs, text)`.
fn hold_fixture(d: NaiveDate) -> Vec<Event> {
    let rows: &[(&str, &str, &str, u32, &str)] = &[
        (
            "h-alice-1",
            "c",
            "alice",
            3_600,
            "alice talks about the harbor lantern project",
        ),
        (
            "h-alice-2",
            "c",
            "alice",
            50_000,
            "alice again about granary logistics",
        ),
        (
            "h-bob-1",
            "c",
            "bob",
            36_000,
            "bob mentions zanzibar shipment details",
        ),
        (
            "h-bob-2",
            "c",
            "bob",
            39_600,
            "bob speaks of the quarterly numbers",
        ),
        ("h-bob-3", "c", "bob", 80_000, "bob later on the weather"),
        (
            "h-carol-1",
            "c2",
            "carol",
            20_000,
            "carol in the second channel about barrels",
        ),
        (
            "h-carol-2",
            "c2",
            "carol",
            70_000,
            "carol closing note in channel two",
        ),
    ];
    let mut events: Vec<Event> = rows
        .iter()
        .map(|(id, channel, user, secs, text)| {
            post(id, "t", channel, user, d, *secs, &format!("{text} ({id})"))
        })
        .collect();
    // Bob reacts to alice's first post: held through the post by a
    // custodian hold on alice.
    let on = events[0].clone();
    events.push(reaction("h-bob-react", &on, "bob", 60_000));
    events
}

const ALL_HOLD_IDS: &[&str] = &[
    "h-alice-1",
    "h-alice-2",
    "h-bob-1",
    "h-bob-2",
    "h-bob-3",
    "h-carol-1",
    "h-carol-2",
    "h-bob-react",
];

async fn hold_keeps(
    backend: Backend,
    criteria: HoldCriteria,
    hold_first: bool,
    held: &[&str],
    // A word (of a held message) the search must still find after the run.
    word: &str,
) {
    let e = env(backend).await;
    let d = day("2024-02-01");
    let set = policies("[[policy]]\nname = \"ten\"\nkeep_days = 10\n");
    let fixture = hold_fixture(d);
    let texts: BTreeMap<String, String> = fixture
        .iter()
        .map(|event| (event.id.clone(), event.text.clone().unwrap_or_default()))
        .collect();
    let hold = if hold_first {
        let hold = e.hold("the-hold", criteria).await;
        e.ingest(fixture).await;
        hold
    } else {
        e.ingest(fixture).await;
        e.hold("the-hold", criteria).await
    };
    let held: BTreeSet<&str> = held.iter().copied().collect();
    let unheld: Vec<&str> = ALL_HOLD_IDS
        .iter()
        .copied()
        .filter(|id| !held.contains(id))
        .collect();
    assert!(!unheld.is_empty(), "the fixture needs unheld neighbours");

    let outcome = e.run(&set, plus(d, 11)).await;
    assert_eq!(outcome.certificate.events_deleted as usize, unheld.len());
    let kept: u64 = outcome
        .certificate
        .kept_by_holds
        .iter()
        .filter(|count| count.hold_id == hold.id)
        .map(|count| count.events)
        .sum();
    assert_eq!(
        kept as usize,
        held.len(),
        "{:?}",
        outcome.certificate.kept_by_holds
    );
    for id in &held {
        assert_eq!(&e.text(id).await, &texts[*id], "{id} is held: same text");
    }
    for id in &unheld {
        assert_eq!(e.shredded_by(id).await, "ten", "{id} is not held");
    }
    let found = e.search_ids(word).await;
    assert!(
        found.iter().any(|id| held.contains(id.as_str())),
        "search {word:?} finds a held event: {found:?}"
    );
    assert!(
        found.iter().all(|id| held.contains(id.as_str())),
        "search {word:?} finds only held events: {found:?}"
    );
    e.verify_ok().await;

    // Releasing deletes nothing by itself.
    e.release(&hold).await;
    for id in &held {
        assert!(e.readable(id).await, "{id}: a release deletes nothing");
    }
    let plan = holdfast::retention::plan(&e.store, &e.index, &set, plus(d, 11))
        .await
        .unwrap();
    assert_eq!(plan.events_to_delete as usize, held.len());
    assert_eq!(plan.events_kept_by_holds, 0);
    let after = e.run(&set, plus(d, 11)).await;
    assert_eq!(after.certificate.events_deleted as usize, held.len());
    for id in ALL_HOLD_IDS {
        assert_eq!(e.shredded_by(id).await, "ten");
    }
    assert!(e.search_ids(word).await.is_empty());
    e.verify_ok().await;
}

async fn a_custodian_hold_keeps_their_events_and_their_posts(backend: Backend) {
    hold_keeps(
        backend,
        HoldCriteria {
            custodians: vec!["alice".to_owned()],
            ..HoldCriteria::default()
        },
        true,
        &["h-alice-1", "h-alice-2", "h-bob-react"],
        "lantern",
    )
    .await;
}

async fn a_channel_hold_keeps_the_channel(backend: Backend) {
    hold_keeps(
        backend,
        HoldCriteria {
            channels: vec![ChannelRef::new("t", "c2")],
            ..HoldCriteria::default()
        },
        false,
        &["h-carol-1", "h-carol-2"],
        "barrels",
    )
    .await;
}

async fn a_date_range_hold_keeps_the_range(backend: Backend) {
    // 10:00 to 11:00 of 2024-02-01: bob-1 (10:00) and bob-2 (11:00).
    hold_keeps(
        backend,
        HoldCriteria {
            from: Some("2024-02-01T10:00:00Z".to_owned()),
            to: Some("2024-02-01T11:00:00Z".to_owned()),
            ..HoldCriteria::default()
        },
        false,
        &["h-bob-1", "h-bob-2"],
        "quarterly",
    )
    .await;
}

async fn a_query_hold_keeps_what_it_finds(backend: Backend) {
    hold_keeps(
        backend,
        HoldCriteria {
            query: Some("zanzibar".to_owned()),
            ..HoldCriteria::default()
        },
        true,
        &["h-bob-1"],
        "shipment",
    )
    .await;
}

async fn a_query_hold_created_after_ingest_keeps_what_it_finds(backend: Backend) {
    hold_keeps(
        backend,
        HoldCriteria {
            query: Some("zanzibar".to_owned()),
            ..HoldCriteria::default()
        },
        false,
        &["h-bob-1"],
        "shipment",
    )
    .await;
}

// ------------------------------------------------------------------ 5. on disk

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

async fn nothing_of_a_deleted_message_is_left_on_disk(backend: Backend) {
    let e = env_with(backend, |options| options.segment_max_bytes = 1024 * 1024).await;
    let d = day("2024-01-10");
    let n_old = 4_000usize;
    let old_text = |i: usize| {
        format!(
            "Shredme {i:05} confidential: the cormorant ledger records {i:05} crates of saffron \
             moved from the northern quay to the southern warehouse under a lantern at midnight, \
             and the harbormaster signed receipt {i:05} with a green pen before the tide turned."
        )
    };
    let keep_text = |i: usize| {
        format!(
            "Keepme {i:05}: the lighthouse keeper wrote entry {i:05} about the calm sea and the \
             gulls resting on the breakwater while the ferry waited for passengers at the pier."
        )
    };
    // Old events first (they fill the sealed segments), with a few held
    // ones (custodian "keeper") among them in the same epoch.
    let hold = e
        .hold(
            "keeper-hold",
            HoldCriteria {
                custodians: vec!["keeper".to_owned()],
                ..HoldCriteria::default()
            },
        )
        .await;
    let mut events = Vec::new();
    let mut deleted_ids = Vec::new();
    let mut held_ids = Vec::new();
    for i in 0..n_old {
        let secs = (i as u32 * 17) % 86_400;
        if i % 500 == 7 {
            let id = format!("held-{i}");
            events.push(post(&id, "t", "old", "keeper", d, secs, &keep_text(i)));
            held_ids.push(id);
        } else {
            let id = format!("old-{i}");
            events.push(post(&id, "t", "old", "shredder", d, secs, &old_text(i)));
            deleted_ids.push(id);
        }
    }
    for chunk in events.chunks(1_000) {
        e.ingest(chunk.to_vec()).await;
    }
    // Young events after them.
    let young: Vec<Event> = (0..200)
        .map(|i| {
            post(
                &format!("young-{i}"),
                "t",
                "new",
                "u",
                plus(d, 50),
                i,
                &keep_text(10_000 + i as usize),
            )
        })
        .collect();
    e.ingest(young).await;
    // The index has the events before the run (a direct query, another word).
    index::catch_up(&e.store, &e.index, |_, _| {})
        .await
        .unwrap();
    assert_eq!(e.matching("cormorant").len(), deleted_ids.len());
    let before = e.verify_ok().await;
    assert!(
        before.sealed_segments >= 1,
        "the test needs sealed segments: {before:?}"
    );

    let set = policies("[[policy]]\nname = \"ten\"\nkeep_days = 10\n");
    let outcome = e.run(&set, plus(d, 51)).await;
    let cert = &outcome.certificate;
    assert_eq!(cert.events_deleted as usize, deleted_ids.len());
    assert_eq!(cert.events_carried as usize, held_ids.len());
    assert_eq!(cert.kept_by_holds.len(), 1);
    assert_eq!(cert.kept_by_holds[0].hold_id, hold.id);
    let compaction = cert.compaction.clone().expect("a compaction");
    assert!(compaction.records > 0, "{compaction:?}");

    for id in deleted_ids.iter().step_by(97) {
        assert_eq!(e.shredded_by(id).await, "ten");
    }
    for (id, i) in held_ids
        .iter()
        .map(|id| (id, id[5..].parse::<usize>().unwrap()))
    {
        assert_eq!(e.text(id).await, keep_text(i));
    }
    assert_eq!(e.text("young-3").await, keep_text(10_003));
    assert!(e.matching("cormorant").is_empty());
    assert!(e.matching("saffron").is_empty());
    assert!(e.matching("shredme").is_empty());
    assert_eq!(e.matching("lighthouse").len(), held_ids.len() + 200);

    let report = e.verify_ok().await;
    // Every record of the destroyed epoch: the deleted events and the old
    // records of the carried (held) ones.
    assert_eq!(report.shredded_records as usize, n_old);
    assert!(report.compacted_records > 0, "{report:?}");

    // Close the store so that everything is on disk (WAL checkpointed or not).
    let Env {
        archive,
        store,
        index,
    } = e;
    drop(index);
    store.close().await;
    let mut files = Vec::new();
    files_under(archive.dir.path(), &mut files);
    assert!(files.iter().any(|f| f.to_string_lossy().contains("index")));
    let probes: Vec<Vec<u8>> = (0..n_old)
        .filter(|i| i % 500 != 7)
        .map(|i| old_text(i).into_bytes())
        .collect();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        // Cheap pass for the common marker, then the full texts.
        for marker in [&b"cormorant ledger"[..], &b"Shredme "[..]] {
            if let Some(at) = find(&bytes, marker) {
                let context = String::from_utf8_lossy(
                    &bytes[at.saturating_sub(40)..(at + 200).min(bytes.len())],
                )
                .into_owned();
                panic!(
                    "{} holds deleted plaintext at {at}: {context:?}",
                    file.display()
                );
            }
        }
        for probe in probes.iter().step_by(50) {
            assert!(find(&bytes, probe).is_none(), "{}", file.display());
        }
    }
}

// ------------------------------------------------------------------ 6. late ingest

async fn late_ingest_into_a_destroyed_day(backend: Backend) {
    let e = env(backend).await;
    let d = day("2024-03-01");
    e.ingest(vec![
        post("early-1", "t", "c", "u", d, 100, &sentence("early", 1)),
        post("early-2", "t", "c", "u", d, 200, &sentence("early", 2)),
    ])
    .await;
    let set = policies("[[policy]]\nname = \"thirty\"\nkeep_days = 30\n");
    let outcome = e.run(&set, plus(d, 31)).await;
    assert_eq!(outcome.certificate.events_deleted, 2);
    assert_eq!(outcome.certificate.epochs_destroyed.len(), 1);

    e.ingest(vec![post(
        "late-1",
        "t",
        "c",
        "u",
        d,
        300,
        &sentence("late", 1),
    )])
    .await;
    assert_eq!(e.text("late-1").await, sentence("late", 1));
    e.verify_ok().await;
    assert_eq!(
        e.search_ids("granary").await,
        BTreeSet::from(["late-1".to_owned()])
    );
    let epochs = e.store.db().epoch_infos().await.unwrap();
    let live: Vec<_> = epochs.iter().filter(|epoch| !epoch.destroyed).collect();
    assert_eq!(live.len(), 1, "{epochs:?}");
    assert_eq!(live[0].base_day(), "2024-03-01");
    assert_ne!(live[0].day, "2024-03-01", "a new generation of the day");
    // And a later run deletes it in turn.
    let again = e.run(&set, plus(d, 31)).await;
    assert_eq!(again.certificate.events_deleted, 1);
    assert_eq!(e.shredded_by("late-1").await, "thirty");
    assert_eq!(e.shredded_by("early-1").await, "thirty");
    e.verify_ok().await;
}

// ------------------------------------------------------------------ 8. interrupted

/// A crash after the keys were destroyed and before the run finished: the
/// index still has the events, no certificate was written. The next
/// `resume_unfinished` purges, compacts and certifies.
async fn an_interrupted_run_is_finished_by_resume(backend: Backend) {
    let e = env(backend).await;
    let d = day("2024-03-01");
    e.ingest(vec![
        post("gone-1", "t", "c", "u", d, 100, &sentence("gone", 1)),
        post("gone-2", "t", "c", "u", d, 200, &sentence("gone", 2)),
        post(
            "stays",
            "t",
            "c",
            "u",
            plus(d, 20),
            200,
            "the pelican stays",
        ),
    ])
    .await;
    index::catch_up(&e.store, &e.index, |_, _| {})
        .await
        .unwrap();
    assert_eq!(e.matching("heron").len(), 2);
    let db = e.store.db();
    // What a run does up to the destruction, by hand.
    let run_id = db
        .create_run(
            "2024-04-01",
            "tester",
            "cli",
            r#"{"digest":"d","policies":[]}"#,
        )
        .await
        .unwrap();
    db.set_run_stage(run_id, "destroying", Some(r#"{"kept_by_holds":[]}"#))
        .await
        .unwrap();
    let epoch = db
        .epoch_infos()
        .await
        .unwrap()
        .into_iter()
        .find(|epoch| epoch.day == "2024-03-01")
        .unwrap();
    let rows = db.live_events_of_epochs(&[epoch.epoch_id]).await.unwrap();
    assert_eq!(rows.len(), 2);
    let outcome = e
        .store
        .destroy(holdfast::db::retention::Destruction {
            run_id,
            generation: db.retention_generation().await.unwrap(),
            epochs: vec![epoch.epoch_id],
            events: rows
                .iter()
                .map(|row| (row.seq, "thirty".to_owned()))
                .collect(),
        })
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            holdfast::db::retention::DestroyOutcome::Destroyed { .. }
        ),
        "{outcome:?}"
    );
    // Crashed here: still running, the index still has them.
    assert_eq!(db.unfinished_runs().await.unwrap().len(), 1);
    assert_eq!(e.matching("heron").len(), 2);
    assert_eq!(e.shredded_by("gone-1").await, "thirty");

    let finished = holdfast::retention::resume_unfinished(&e.store, &e.index)
        .await
        .unwrap();
    assert_eq!(finished, 1);
    assert!(db.unfinished_runs().await.unwrap().is_empty());
    let row = db.retention_run(run_id).await.unwrap().unwrap();
    assert_eq!(row.status, "done");
    let certificate: serde_json::Value =
        serde_json::from_str(row.certificate.as_deref().unwrap()).unwrap();
    assert_eq!(certificate["events_deleted"], 2);
    assert_eq!(certificate["resumed"], true);
    let path = e
        .archive
        .data_dir()
        .join("certificates")
        .join(format!("run-{run_id:06}.json"));
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(on_disk, certificate);
    assert!(e.matching("heron").is_empty(), "the index was purged");
    assert_eq!(e.text("stays").await, "the pelican stays");
    e.verify_ok().await;
    // Resuming again finds nothing to do.
    assert_eq!(
        holdfast::retention::resume_unfinished(&e.store, &e.index)
            .await
            .unwrap(),
        0
    );
}

/// The same through a real run whose row is set back to `running`: the
/// next run finishes it first (idempotently) and then runs.
async fn a_run_left_running_is_finished_by_the_next_run(backend: Backend) {
    let e = env(backend).await;
    let d = day("2024-03-01");
    e.ingest(vec![
        post("r-1", "t", "c", "u", d, 100, &sentence("r", 1)),
        post("r-2", "t", "c", "u", plus(d, 5), 100, &sentence("r", 2)),
    ])
    .await;
    let set = policies("[[policy]]\nname = \"thirty\"\nkeep_days = 30\n");
    let first = e.run(&set, plus(d, 31)).await;
    assert_eq!(first.certificate.events_deleted, 1);
    std::fs::remove_file(&first.certificate_path).unwrap();
    helpers::raw_sql(
        e.store.db(),
        "UPDATE retention_runs SET status = 'running', stage = 'finishing', certificate = NULL",
    )
    .await
    .unwrap();
    let second = e.run(&set, plus(d, 36)).await;
    assert_eq!(second.certificate.events_deleted, 1);
    assert_ne!(second.run_id, first.run_id);
    let resumed = e
        .store
        .db()
        .retention_run(first.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resumed.status, "done");
    let certificate: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&first.certificate_path).unwrap()).unwrap();
    assert_eq!(certificate["events_deleted"], 1);
    assert_eq!(certificate["resumed"], true);
    assert_eq!(e.shredded_by("r-1").await, "thirty");
    assert_eq!(e.shredded_by("r-2").await, "thirty");
    e.verify_ok().await;
}

/// SQLite only (PostgreSQL's files are the server's): the wrapped data keys
/// of destroyed epochs are in the database files before the run, and in none
/// of the files under the data directory after it (secure_delete and the
/// truncated write-ahead log).
#[tokio::test]
async fn destroyed_keys_are_gone_from_the_database_files() {
    let e = env(Backend::Sqlite).await;
    let d = day("2024-01-10");
    let old: Vec<Event> = (0..40)
        .map(|i| {
            post(
                &format!("k-old-{i}"),
                "t",
                format!("c{}", i % 4).as_str(),
                "u",
                d,
                i,
                "old words",
            )
        })
        .collect();
    e.ingest(old).await;
    e.ingest(vec![post(
        "k-new",
        "t",
        "c0",
        "u",
        plus(d, 100),
        1,
        "new words",
    )])
    .await;
    let holdfast::db::Db::Sqlite(pool) = e.store.db() else {
        unreachable!("a SQLite archive")
    };
    let wrapped: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT wrapped_key FROM key_epochs WHERE day = '2024-01-10'")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(wrapped.len(), 4, "one epoch per channel of that day");
    let scan = |data_dir: &Path| {
        let mut files = Vec::new();
        files_under(data_dir, &mut files);
        let mut found = 0;
        for file in files {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            found += wrapped
                .iter()
                .filter(|key| find(&bytes, key).is_some())
                .count();
        }
        found
    };
    let data_dir = e.archive.data_dir().to_path_buf();
    assert!(
        scan(&data_dir) >= wrapped.len(),
        "the keys are in the database files before the run (the scan can see them)"
    );
    let outcome = e
        .run(
            &policies("[[policy]]\nname = \"short\"\nkeep_days = 30\n"),
            plus(d, 40),
        )
        .await;
    assert_eq!(outcome.certificate.events_deleted, 40);
    assert_eq!(outcome.certificate.epochs_destroyed.len(), 4);
    assert!(outcome.certificate.key_scrub.contains("secure_delete"));
    assert_eq!(scan(&data_dir), 0, "a destroyed key survived in a file");
    assert!(e.store.get_event("k-new").await.unwrap().is_some());
}

/// Compaction releases runs of deleted records that are followed by live
/// ones (a held channel interleaved with a deleted one): the live records
/// must still read, one by one and in order, and verify must pass.
async fn live_records_after_a_compacted_range_still_read(backend: Backend) {
    let e = env_with(backend, |options| options.segment_max_bytes = 1024 * 1024).await;
    let d = day("2024-02-01");
    e.hold(
        "board-hold",
        HoldCriteria {
            channels: vec![ChannelRef {
                team: "t".to_owned(),
                channel: "board".to_owned(),
            }],
            ..HoldCriteria::default()
        },
    )
    .await;
    let filler = "lorem ipsum dolor sit amet ".repeat(10);
    let mut events = Vec::new();
    let mut held = Vec::new();
    for i in 0..6_000u32 {
        if i % 40 == 39 {
            let id = format!("board-{i}");
            events.push(post(
                &id,
                "t",
                "board",
                "u",
                d,
                i,
                &format!("board minute {i}"),
            ));
            held.push((id, format!("board minute {i}")));
        } else {
            events.push(post(&format!("chat-{i}"), "t", "chat", "u", d, i, &filler));
        }
    }
    for chunk in events.chunks(1_000) {
        e.ingest(chunk.to_vec()).await;
    }
    e.ingest(vec![post(
        "fresh",
        "t",
        "chat",
        "u",
        plus(d, 100),
        1,
        "fresh",
    )])
    .await;
    let outcome = e
        .run(
            &policies("[[policy]]\nname = \"month\"\nkeep_days = 30\n"),
            plus(d, 40),
        )
        .await;
    let compaction = outcome.certificate.compaction.clone().unwrap();
    assert!(compaction.records > 0, "{compaction:?}");
    assert_eq!(
        outcome.certificate.events_deleted,
        6_000 - held.len() as u64
    );
    for (id, text) in &held {
        let stored = e
            .store
            .get_event(id)
            .await
            .unwrap_or_else(|error| panic!("held {id} after compaction: {error}"))
            .unwrap();
        assert_eq!(stored.event.text.as_deref(), Some(text.as_str()));
    }
    // Sequential reads (index rebuild, exports) cross the ranges too.
    let all = e.store.events_from(1, 100_000).await.unwrap();
    assert_eq!(all.len(), held.len() + 1);
    let report = e.store.verify().await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert!(report.compacted_records > 0);
}

both_backends!(
    expiry_is_exact_at_the_boundary_day,
    channel_beats_team_beats_global,
    a_lowered_floor_is_refused_while_it_protects_data,
    a_lowered_floor_protects_an_event_at_midnight,
    a_custodian_hold_keeps_their_events_and_their_posts,
    a_channel_hold_keeps_the_channel,
    a_date_range_hold_keeps_the_range,
    a_query_hold_keeps_what_it_finds,
    a_query_hold_created_after_ingest_keeps_what_it_finds,
    nothing_of_a_deleted_message_is_left_on_disk,
    live_records_after_a_compacted_range_still_read,
    late_ingest_into_a_destroyed_day,
    an_interrupted_run_is_finished_by_resume,
    a_run_left_running_is_finished_by_the_next_run,
);

// ------------------------------------------------------------------ 7. property

mod property {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    const TEAMS: &[&str] = &["a", "b"];
    const CHANNELS: &[&str] = &["x", "y"];
    const USERS: &[&str] = &["u1", "u2", "u3"];
    const KINDS: &[&str] = &["post", "reaction_add", "edit"];
    /// Event days are BASE + 0..DAYS.
    const DAYS: u64 = 6;

    #[derive(Debug, Clone)]
    struct Ev {
        team: usize,
        channel: usize,
        user: usize,
        day: u64,
        secs: u32,
        kind: usize,
        post: usize,
    }

    #[derive(Debug, Clone)]
    struct Pol {
        global: Option<u32>,
        team_a: Option<(Option<u32>, u32)>,
        channel_bx: Option<Option<u32>>,
        reactions_global: Option<u32>,
    }

    #[derive(Debug, Clone)]
    enum H {
        Custodian(usize),
        Channel(usize, usize),
        Range(u64, u64),
    }

    fn base() -> NaiveDate {
        day("2024-05-01")
    }

    fn events() -> impl Strategy<Value = Vec<Ev>> {
        prop::collection::vec(
            (
                0..2usize,
                0..2usize,
                0..3usize,
                0..DAYS,
                0..86_400u32,
                0..3usize,
                0..4usize,
            )
                .prop_map(|(team, channel, user, day, secs, kind, post)| Ev {
                    team,
                    channel,
                    user,
                    day,
                    secs,
                    kind,
                    post,
                }),
            1..40,
        )
    }

    fn pols() -> impl Strategy<Value = Pol> {
        (
            prop::option::of(0..6u32),
            prop::option::of((prop::option::of(0..6u32), 0..3u32)),
            prop::option::of(prop::option::of(0..6u32)),
            prop::option::of(0..6u32),
        )
            .prop_map(|(global, team_a, channel_bx, reactions_global)| Pol {
                global,
                team_a,
                channel_bx,
                reactions_global,
            })
    }

    fn hold_list() -> impl Strategy<Value = Vec<H>> {
        prop::collection::vec(
            prop_oneof![
                (0..3usize).prop_map(H::Custodian),
                (0..2usize, 0..2usize).prop_map(|(t, c)| H::Channel(t, c)),
                (0..DAYS, 0..3u64).prop_map(|(from, len)| H::Range(from, from + len)),
            ],
            0..3,
        )
    }

    fn toml_of(pol: &Pol) -> String {
        let mut text = String::new();
        let keep = |days: Option<u32>| days.map_or(String::new(), |d| format!("keep_days = {d}\n"));
        if let Some(global) = pol.global {
            text += &format!("[[policy]]\nname = \"global\"\n{}", keep(Some(global)));
        }
        if let Some(days) = pol.reactions_global {
            text += &format!(
                "[[policy]]\nname = \"reactions\"\nkinds = [\"reaction_add\"]\n{}",
                keep(Some(days))
            );
        }
        if let Some((days, floor)) = pol.team_a {
            // A floor never above keep_days (the loader refuses that).
            let floor = days.map_or(floor, |d| floor.min(d));
            text += &format!(
                "[[policy]]\nname = \"team-a\"\nteam = \"a\"\n{}min_keep_days = {floor}\n",
                keep(days)
            );
        }
        if let Some(days) = pol.channel_bx {
            text += &format!(
                "[[policy]]\nname = \"chan-bx\"\nteam = \"b\"\nchannel = \"x\"\n{}",
                keep(days)
            );
        }
        text
    }

    /// The oracle: governing keep_days and the floor, computed here.
    fn due(pol: &Pol, ev: &Ev, as_of: NaiveDate) -> bool {
        let team = TEAMS[ev.team];
        let channel = CHANNELS[ev.channel];
        let kind = KINDS[ev.kind];
        // (rank, keep) of each applying policy; floors of each.
        let mut governing: Option<(u8, Option<u32>)> = None;
        let mut floor = 0u32;
        let mut consider = |rank: u8, keep: Option<u32>, min: u32| {
            floor = floor.max(min);
            if governing.is_none_or(|(best, _)| rank > best) {
                governing = Some((rank, keep));
            }
        };
        if let Some(global) = pol.global {
            consider(0, Some(global), 0);
        }
        if let Some(days) = pol.reactions_global
            && kind == "reaction_add"
        {
            consider(1, Some(days), 0);
        }
        if let Some((days, min)) = pol.team_a
            && team == "a"
        {
            consider(2, days, days.map_or(min, |d| min.min(d)));
        }
        if let Some(days) = pol.channel_bx
            && team == "b"
            && channel == "x"
        {
            consider(4, days, 0);
        }
        let age = (as_of - plus(base(), ev.day)).num_days();
        match governing {
            Some((_, Some(keep))) => age > i64::from(keep) && age > i64::from(floor),
            _ => false,
        }
    }

    fn matches(hold: &H, ev: &Ev) -> bool {
        match hold {
            H::Custodian(user) => ev.user == *user,
            H::Channel(team, channel) => ev.team == *team && ev.channel == *channel,
            H::Range(from, to) => *from <= ev.day && ev.day <= *to,
        }
    }

    fn criteria(hold: &H) -> HoldCriteria {
        match hold {
            H::Custodian(user) => HoldCriteria {
                custodians: vec![USERS[*user].to_owned()],
                ..HoldCriteria::default()
            },
            H::Channel(team, channel) => HoldCriteria {
                channels: vec![ChannelRef::new(TEAMS[*team], CHANNELS[*channel])],
                ..HoldCriteria::default()
            },
            H::Range(from, to) => HoldCriteria {
                from: Some(plus(base(), *from).to_string()),
                to: Some(plus(base(), *to).to_string()),
                ..HoldCriteria::default()
            },
        }
    }

    fn event_of(i: usize, ev: &Ev) -> Event {
        let kind = KINDS[ev.kind];
        let mut value = json!({
            "id": format!("ev-{i}"), "kind": kind,
            "at": at_ms(plus(base(), ev.day), ev.secs),
            "team": TEAMS[ev.team], "channel": CHANNELS[ev.channel], "user": USERS[ev.user],
            "post": format!("p{}", ev.post),
        });
        match kind {
            "reaction_add" => value["emoji"] = json!("thumbsup"),
            _ => value["text"] = json!(format!("message {i} of the property test")),
        }
        Event::from_json(value).unwrap()
    }

    async fn check(
        evs: Vec<Ev>,
        pol: Pol,
        hold_list: Vec<H>,
        as_of_days: u64,
    ) -> Result<(), String> {
        let e = env(Backend::Sqlite).await;
        let set = PolicySet::parse_files(&[(
            "p.toml".to_owned(),
            format!("version = 1\n{}", toml_of(&pol)),
        )])
        .map_err(|error| format!("policy set: {error}"))?;
        // Half the holds before ingest, half after.
        let mut made = 0;
        for (i, hold) in hold_list.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            e.hold(&format!("hold-{i}"), criteria(hold)).await;
            made += 1;
        }
        e.ingest(
            evs.iter()
                .enumerate()
                .map(|(i, ev)| event_of(i, ev))
                .collect(),
        )
        .await;
        for (i, hold) in hold_list.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            e.hold(&format!("hold-{i}"), criteria(hold)).await;
            made += 1;
        }
        assert_eq!(made, hold_list.len());
        let as_of = plus(base(), as_of_days);
        let outcome = e.run(&set, as_of).await;
        let direct: Vec<bool> = evs
            .iter()
            .map(|ev| hold_list.iter().any(|hold| matches(hold, ev)))
            .collect();
        let mut expected_deleted = 0;
        for (i, ev) in evs.iter().enumerate() {
            // Held directly, or through another live event of the same post.
            let held = direct[i]
                || evs.iter().enumerate().any(|(j, other)| {
                    direct[j]
                        && other.team == ev.team
                        && other.channel == ev.channel
                        && other.post == ev.post
                });
            let id = format!("ev-{i}");
            let readable = e.readable(&id).await;
            let is_due = due(&pol, ev, as_of);
            if held && !readable {
                return Err(format!("{id} {ev:?} is held but was deleted"));
            }
            if !is_due && !readable {
                return Err(format!("{id} {ev:?} is not due but was deleted"));
            }
            if is_due && !held {
                expected_deleted += 1;
                if readable {
                    return Err(format!(
                        "{id} {ev:?} is due and not held but is still there"
                    ));
                }
            }
        }
        if outcome.certificate.events_deleted != expected_deleted {
            return Err(format!(
                "certificate says {} deleted, expected {expected_deleted}",
                outcome.certificate.events_deleted
            ));
        }
        let report = e.store.verify().await.map_err(|error| error.to_string())?;
        if !report.ok {
            return Err(format!("verify: {:?}", report.problems));
        }
        Ok(())
    }

    #[test]
    fn runs_agree_with_an_independent_oracle() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut runner = TestRunner::new(Config {
            cases: 16,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(
                &(events(), pols(), hold_list(), 0..(DAYS + 8)),
                |(evs, pol, hold_list, as_of_days)| {
                    runtime
                        .block_on(check(evs, pol, hold_list, as_of_days))
                        .map_err(TestCaseError::fail)
                },
            )
            .unwrap();
    }
}
