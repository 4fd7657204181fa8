//! Legal holds on both metadata backends: what a hold holds, with known
//! answers on a small corpus (custodians, teams, channels, date ranges with
//! inclusive bounds, queries, criteria that all apply, a post's whole
//! history held through one matching event, released holds holding
//! nothing, events ingested after the hold); counts read in pages; the
//! retention lock; the HTTP API for legal and admin callers, refusals of
//! other roles, scoped callers, validation naming each field, conflicts,
//! and an audit record for every call; and the `holdfast hold` commands.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use helpers::TestArchive;
use holdfast::api::AccessState;
use holdfast::audit::{AuditAction, AuditFilter, AuditOutcome, AuditRecord, MAX_QUERY_LIMIT};
use holdfast::auth::{AuthConfig, NewApiToken, Role};
use holdfast::db::{Backend, Db, EventRow};
use holdfast::event::Event;
use holdfast::index::{self, SearchIndex};
use holdfast::retention::holds::{
    self, Hold, HoldCounts, HoldCriteria, HoldError, HoldMatcher, NewHold, StatusFilter,
};
use holdfast::search::{ChannelRef, Scope};
use holdfast::store::Store;
use http_body_util::BodyExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The OS user the CLI runs as.
const ACTOR: &str = "hold-operator";

// ------------------------------------------------------------------ corpus

/// One event: `place` is `team/channel`.
fn ev(id: &str, kind: &str, at: &str, place: &str, user: &str, post: Option<&str>) -> Value {
    let (team, channel) = place.split_once('/').unwrap();
    let mut value = json!({"id": id, "kind": kind, "at": at, "team": team,
                           "channel": channel, "user": user});
    if let Some(post) = post {
        value["post"] = json!(post);
    }
    value
}

fn with(mut value: Value, key: &str, field: Value) -> Value {
    value[key] = field;
    value
}

/// Two teams; alice's post p1 in A/general is edited by her and reacted to
/// by bob; carol's post p3 in A/deals gets a file from alice; alice posts
/// and deletes p4 in B/general; bob posts at the last millisecond of March
/// 1st; dave joins (no post); erin posts in B a post whose id (p1) is also
/// a post of A.
fn corpus() -> Vec<Value> {
    vec![
        with(
            ev(
                "e1",
                "post",
                "2024-03-01T10:00:00Z",
                "A/general",
                "alice",
                Some("p1"),
            ),
            "text",
            json!("merger plans aardvark"),
        ),
        with(
            ev(
                "e2",
                "edit",
                "2024-03-02T09:00:00Z",
                "A/general",
                "alice",
                Some("p1"),
            ),
            "text",
            json!("merger plans revised"),
        ),
        with(
            ev(
                "e3",
                "reaction_add",
                "2024-03-02T10:00:00Z",
                "A/general",
                "bob",
                Some("p1"),
            ),
            "emoji",
            json!("thumbsup"),
        ),
        with(
            ev(
                "e4",
                "post",
                "2024-03-01T23:59:59.999Z",
                "A/general",
                "bob",
                Some("p2"),
            ),
            "text",
            json!("lunch order"),
        ),
        with(
            ev(
                "e5",
                "post",
                "2024-03-03T00:00:00Z",
                "A/deals",
                "carol",
                Some("p3"),
            ),
            "text",
            json!("pricing sheet"),
        ),
        with(
            ev(
                "e6",
                "file",
                "2024-03-03T08:00:00Z",
                "A/deals",
                "alice",
                Some("p3"),
            ),
            "files",
            json!([{"name": "deck.pdf", "size": 10}]),
        ),
        with(
            ev(
                "e7",
                "post",
                "2024-03-02T12:00:00Z",
                "B/general",
                "alice",
                Some("p4"),
            ),
            "text",
            json!("merger in team B zanzibar"),
        ),
        ev(
            "e8",
            "delete",
            "2024-03-04T00:00:00Z",
            "B/general",
            "alice",
            Some("p4"),
        ),
        ev(
            "e9",
            "member_join",
            "2024-02-29T12:00:00Z",
            "A/general",
            "dave",
            None,
        ),
        with(
            ev(
                "e10",
                "post",
                "2024-03-05T09:00:00Z",
                "B/general",
                "bob",
                Some("p5"),
            ),
            "text",
            json!("quarterly numbers"),
        ),
        with(
            ev(
                "e11",
                "post",
                "2024-03-02T11:00:00Z",
                "B/general",
                "erin",
                Some("p1"),
            ),
            "text",
            json!("unrelated words"),
        ),
    ]
}

fn events(values: Vec<Value>) -> Vec<Event> {
    values
        .into_iter()
        .map(|value| Event::from_json(value).unwrap())
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|id| (*id).to_owned()).collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|value| (*value).to_owned()).collect()
}

// ------------------------------------------------------------------ library harness

/// An archive with events stored and indexed.
struct Archive {
    store: Store,
    index: Arc<SearchIndex>,
    /// Kept last: dropped after the store.
    _archive: TestArchive,
}

impl Archive {
    async fn new(backend: Backend, values: Vec<Value>) -> Archive {
        let archive = TestArchive::new(backend).await;
        let store = archive.open().await;
        store.append(events(values)).await.unwrap();
        let index =
            Arc::new(SearchIndex::open_or_create(&archive.dir.path().join("index")).unwrap());
        let archive = Archive {
            store,
            index,
            _archive: archive,
        };
        archive.catch_up().await;
        archive
    }

    fn db(&self) -> &Db {
        self.store.db()
    }

    async fn catch_up(&self) {
        index::catch_up(&self.store, &self.index, |_, _| {})
            .await
            .unwrap();
        self.index.reload().unwrap();
    }

    async fn rows(&self) -> Vec<EventRow> {
        self.db().events_from_seq(1, 1_000_000).await.unwrap()
    }

    async fn create(&self, name: &str, scope: &Scope, criteria: HoldCriteria) -> Hold {
        holds::create_hold(
            self.db(),
            scope,
            "tester",
            &NewHold {
                name: name.to_owned(),
                matter: "Acme v. Initech".to_owned(),
                reason: "litigation expected".to_owned(),
                criteria,
            },
        )
        .await
        .unwrap_or_else(|error| panic!("{name}: {error}"))
    }

    /// For each held event id, the ids of the holds that hold it.
    async fn held(&self, given: &[Hold]) -> BTreeMap<String, Vec<i64>> {
        let matcher = HoldMatcher::prepare_off_thread(&self.index, given)
            .await
            .unwrap();
        let rows = self.rows().await;
        let held = matcher.held(self.db(), &rows).await.unwrap();
        rows.iter()
            .filter_map(|row| {
                held.get(&row.seq)
                    .map(|holds| (row.event_id.clone(), holds.clone()))
            })
            .collect()
    }

    /// The events `hold` holds, checked against what `count_held` counts.
    async fn held_by(&self, hold: &Hold) -> BTreeSet<String> {
        let held: BTreeSet<String> = self
            .held(std::slice::from_ref(hold))
            .await
            .into_iter()
            .map(|(id, holds)| {
                assert_eq!(holds, vec![hold.id], "{id}");
                id
            })
            .collect();
        let counts = self.counts(hold).await;
        assert_eq!(
            counts.events,
            held.len() as u64,
            "{}: {counts:?}",
            hold.name
        );
        held
    }

    async fn counts(&self, hold: &Hold) -> HoldCounts {
        holds::count_held(self.db(), &self.index, hold)
            .await
            .unwrap()
    }

    async fn lock_generation(&self) -> i64 {
        let sql = "SELECT generation FROM retention_lock WHERE lock_id = 1";
        match self.db() {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }
}

fn criteria(edit: impl FnOnce(&mut HoldCriteria)) -> HoldCriteria {
    let mut criteria = HoldCriteria::default();
    edit(&mut criteria);
    criteria
}

// ------------------------------------------------------------------ matching

async fn each_kind_of_criterion_holds_exactly_its_events(backend: Backend) {
    let archive = Archive::new(backend, corpus()).await;
    let all = Scope::All;
    let cases: Vec<(&str, Scope, HoldCriteria, &[&str])> = vec![
        // alice's events, and every event of her posts (bob's reaction on
        // p1, carol's post p3 that alice attached a file to); not erin's
        // B post that happens to be called p1 too.
        (
            "custodian",
            all.clone(),
            criteria(|c| c.custodians = strings(&["alice"])),
            &["e1", "e2", "e3", "e5", "e6", "e7", "e8"],
        ),
        (
            "custodians-or",
            all.clone(),
            criteria(|c| c.custodians = strings(&["carol", "dave"])),
            &["e5", "e6", "e9"],
        ),
        (
            "custodian-bob",
            all.clone(),
            criteria(|c| c.custodians = strings(&["bob"])),
            &["e1", "e2", "e3", "e4", "e10"],
        ),
        (
            "team",
            all.clone(),
            criteria(|c| c.teams = strings(&["B"])),
            &["e7", "e8", "e10", "e11"],
        ),
        (
            "channel",
            all.clone(),
            criteria(|c| c.channels = vec![ChannelRef::new("A", "deals")]),
            &["e5", "e6"],
        ),
        // A day as `to` runs through its last microsecond (bob's post at
        // 23:59:59.999); p1's later edit and reaction come with its post.
        (
            "one-day",
            all.clone(),
            criteria(|c| {
                c.from = Some("2024-03-01".to_owned());
                c.to = Some("2024-03-01".to_owned());
            }),
            &["e1", "e2", "e3", "e4"],
        ),
        // Instants are inclusive at both ends.
        (
            "one-instant",
            all.clone(),
            criteria(|c| {
                c.from = Some("2024-03-03T00:00:00Z".to_owned());
                c.to = Some("2024-03-03T00:00:00Z".to_owned());
            }),
            &["e5", "e6"],
        ),
        (
            "open-ended",
            all.clone(),
            criteria(|c| c.from = Some("2024-03-04".to_owned())),
            &["e7", "e8", "e10"],
        ),
        (
            "query",
            all.clone(),
            criteria(|c| c.query = Some("merger".to_owned())),
            &["e1", "e2", "e3", "e7", "e8"],
        ),
        // Criteria of different kinds all apply.
        (
            "custodian-and-team",
            all.clone(),
            criteria(|c| {
                c.custodians = strings(&["alice"]);
                c.teams = strings(&["A"]);
            }),
            &["e1", "e2", "e3", "e5", "e6"],
        ),
        (
            "query-and-channel",
            all.clone(),
            criteria(|c| {
                c.query = Some("merger".to_owned());
                c.channels = vec![ChannelRef::new("B", "general")];
            }),
            &["e7", "e8"],
        ),
        (
            "custodian-and-date",
            all.clone(),
            criteria(|c| {
                c.custodians = strings(&["alice"]);
                c.to = Some("2024-03-01T10:00:00Z".to_owned());
            }),
            &["e1", "e2", "e3"],
        ),
        (
            "nothing-matches",
            all.clone(),
            criteria(|c| {
                c.custodians = strings(&["bob"]);
                c.query = Some("merger".to_owned());
            }),
            &[],
        ),
        // A hold holds nothing outside its creator's scope.
        (
            "scoped-custodian",
            Scope::teams(["A"]),
            criteria(|c| c.custodians = strings(&["alice"])),
            &["e1", "e2", "e3", "e5", "e6"],
        ),
        (
            "scoped-query",
            Scope::channels([ChannelRef::new("B", "general")]),
            criteria(|c| c.query = Some("merger".to_owned())),
            &["e7", "e8"],
        ),
    ];
    let mut created = Vec::new();
    for (name, scope, criteria, expected) in cases {
        let hold = archive.create(name, &scope, criteria).await;
        assert_eq!(archive.held_by(&hold).await, ids(expected), "{name}");
        created.push(hold);
    }

    // All together: each event lists every hold that holds it.
    let held = archive.held(&created).await;
    let holding = |id: &str| -> BTreeSet<&str> {
        held.get(id)
            .into_iter()
            .flatten()
            .map(|hold_id| {
                created
                    .iter()
                    .find(|hold| hold.id == *hold_id)
                    .unwrap()
                    .name
                    .as_str()
            })
            .collect()
    };
    assert_eq!(
        holding("e3"),
        BTreeSet::from([
            "custodian",
            "custodian-bob",
            "one-day",
            "query",
            "custodian-and-team",
            "custodian-and-date",
            "scoped-custodian",
        ])
    );
    assert_eq!(holding("e11"), BTreeSet::from(["team"]));

    // Counts: events, matching events, posts, custodians, channels.
    let alice = &created[0];
    assert_eq!(
        archive.counts(alice).await,
        HoldCounts {
            events: 7,
            matching_events: 5,
            posts: 3,
            custodians: 3,
            channels: 3,
        }
    );
    let scoped = created
        .iter()
        .find(|hold| hold.name == "scoped-custodian")
        .unwrap();
    assert_eq!(
        archive.counts(scoped).await,
        HoldCounts {
            events: 5,
            matching_events: 3,
            posts: 2,
            custodians: 3,
            channels: 2,
        }
    );
}

async fn released_holds_hold_nothing(backend: Backend) {
    let archive = Archive::new(backend, corpus()).await;
    let kept = archive
        .create("kept", &Scope::All, criteria(|c| c.teams = strings(&["B"])))
        .await;
    let ended = archive
        .create(
            "ended",
            &Scope::All,
            criteria(|c| c.custodians = strings(&["alice"])),
        )
        .await;
    let released = holds::release_hold(archive.db(), &Scope::All, ended.id, "tester", "settled")
        .await
        .unwrap();
    assert!(!released.is_active());
    let release = released.released.clone().unwrap();
    assert_eq!(
        (release.released_by.as_str(), release.reason.as_str()),
        ("tester", "settled")
    );

    let active = holds::active_holds(archive.db()).await.unwrap();
    assert_eq!(
        active.iter().map(|hold| hold.id).collect::<Vec<_>>(),
        vec![kept.id]
    );
    // Even when handed to the matcher, a released hold holds nothing.
    let held = archive.held(&[kept.clone(), released.clone()]).await;
    assert_eq!(
        held.keys().cloned().collect::<BTreeSet<_>>(),
        ids(&["e7", "e8", "e10", "e11"])
    );
    assert!(held.values().all(|holds| holds == &vec![kept.id]));
    assert_eq!(archive.counts(&released).await, HoldCounts::default());

    // Released holds stay listed; releasing twice is refused.
    let listed = |status| holds::list_holds(archive.db(), &Scope::All, status);
    let names = |list: Vec<Hold>| list.into_iter().map(|hold| hold.name).collect::<Vec<_>>();
    assert_eq!(names(listed(StatusFilter::Active).await.unwrap()), ["kept"]);
    assert_eq!(
        names(listed(StatusFilter::Released).await.unwrap()),
        ["ended"]
    );
    assert_eq!(
        names(listed(StatusFilter::All).await.unwrap()),
        ["kept", "ended"]
    );
    let again = holds::release_hold(archive.db(), &Scope::All, ended.id, "tester", "twice").await;
    assert!(
        matches!(again, Err(HoldError::AlreadyReleased { .. })),
        "{again:?}"
    );
    // Releasing deleted nothing.
    assert_eq!(archive.rows().await.len(), corpus().len());
    assert!(
        archive
            .rows()
            .await
            .iter()
            .all(|row| row.shredded_run.is_none())
    );
}

async fn events_ingested_after_the_hold_are_held(backend: Backend) {
    let archive = Archive::new(backend, corpus()).await;
    let frank = archive
        .create(
            "frank",
            &Scope::All,
            criteria(|c| c.custodians = strings(&["frank"])),
        )
        .await;
    let kumquat = archive
        .create(
            "kumquat",
            &Scope::All,
            criteria(|c| c.query = Some("kumquat".to_owned())),
        )
        .await;
    assert!(archive.held_by(&frank).await.is_empty());
    assert!(archive.held_by(&kumquat).await.is_empty());

    archive
        .store
        .append(events(vec![
            with(
                ev(
                    "f1",
                    "post",
                    "2024-04-01T09:00:00Z",
                    "A/general",
                    "frank",
                    Some("pf1"),
                ),
                "text",
                json!("hello all"),
            ),
            with(
                ev(
                    "f2",
                    "post",
                    "2024-04-01T09:01:00Z",
                    "A/general",
                    "gina",
                    Some("pf2"),
                ),
                "text",
                json!("kumquat pie recipe"),
            ),
            with(
                ev(
                    "f3",
                    "reaction_add",
                    "2024-04-01T09:02:00Z",
                    "A/general",
                    "gina",
                    Some("pf1"),
                ),
                "emoji",
                json!("wave"),
            ),
            with(
                ev(
                    "f4",
                    "post",
                    "2024-04-01T09:03:00Z",
                    "A/general",
                    "gina",
                    Some("pf4"),
                ),
                "text",
                json!("nothing to see"),
            ),
        ]))
        .await
        .unwrap();
    assert_eq!(archive.held_by(&frank).await, ids(&["f1", "f3"]));
    // Before the index reaches them, new events count as matching a query
    // hold: the index cannot yet say they do not.
    assert_eq!(
        archive.held_by(&kumquat).await,
        ids(&["f1", "f2", "f3", "f4"])
    );
    archive.catch_up().await;
    assert_eq!(archive.held_by(&kumquat).await, ids(&["f2"]));
    assert_eq!(archive.held_by(&frank).await, ids(&["f1", "f3"]));
}

async fn holds_change_under_the_retention_lock(backend: Backend) {
    let archive = Archive::new(backend, corpus()).await;
    let start = archive.lock_generation().await;
    let hold = archive
        .create(
            "locked",
            &Scope::All,
            criteria(|c| c.teams = strings(&["A"])),
        )
        .await;
    assert_eq!(archive.lock_generation().await, start + 1);
    // A refused creation changes nothing.
    let duplicate = holds::create_hold(
        archive.db(),
        &Scope::All,
        "tester",
        &NewHold {
            name: "locked".to_owned(),
            matter: "m".to_owned(),
            reason: "r".to_owned(),
            criteria: criteria(|c| c.teams = strings(&["B"])),
        },
    )
    .await;
    assert!(
        matches!(duplicate, Err(HoldError::NameTaken(ref name)) if name == "locked"),
        "{duplicate:?}"
    );
    assert_eq!(archive.lock_generation().await, start + 1);
    holds::release_hold(archive.db(), &Scope::All, hold.id, "tester", "done")
        .await
        .unwrap();
    assert_eq!(archive.lock_generation().await, start + 2);
}

/// 6,000 posts by alice, 6,000 reactions by bob on them, then 100 edits by
/// alice: more than a page of each, so that posts straddle pages.
async fn counts_read_in_pages_count_each_post_once(backend: Backend) {
    const POSTS: usize = 6_000;
    const EDITS: usize = 100;
    let mut values = Vec::with_capacity(2 * POSTS + EDITS);
    let at = |i: usize| 1_709_251_200_000_i64 + i as i64;
    for i in 0..POSTS {
        let post = format!("kp{i}");
        values.push(with(
            with(
                ev(
                    &format!("k{i}"),
                    "post",
                    "x",
                    "A/general",
                    "alice",
                    Some(&post),
                ),
                "at",
                json!(at(i)),
            ),
            "text",
            json!(format!("kiwi number {i}")),
        ));
    }
    for i in 0..POSTS {
        let post = format!("kp{i}");
        values.push(with(
            with(
                ev(
                    &format!("r{i}"),
                    "reaction_add",
                    "x",
                    "A/general",
                    "bob",
                    Some(&post),
                ),
                "at",
                json!(at(POSTS + i)),
            ),
            "emoji",
            json!("eyes"),
        ));
    }
    for i in 0..EDITS {
        let post = format!("kp{i}");
        values.push(with(
            with(
                ev(
                    &format!("x{i}"),
                    "edit",
                    "x",
                    "A/general",
                    "alice",
                    Some(&post),
                ),
                "at",
                json!(at(2 * POSTS + i)),
            ),
            "text",
            json!(format!("kiwi edited {i}")),
        ));
    }
    let archive = Archive::new(backend, values).await;
    let total = (2 * POSTS + EDITS) as u64;
    let alice = archive
        .create(
            "alice",
            &Scope::All,
            criteria(|c| c.custodians = strings(&["alice"])),
        )
        .await;
    let bob = archive
        .create(
            "bob",
            &Scope::All,
            criteria(|c| c.custodians = strings(&["bob"])),
        )
        .await;
    let kiwi = archive
        .create(
            "kiwi",
            &Scope::All,
            criteria(|c| c.query = Some("kiwi".to_owned())),
        )
        .await;
    for (hold, matching) in [
        (&alice, POSTS + EDITS),
        (&bob, POSTS),
        (&kiwi, POSTS + EDITS),
    ] {
        assert_eq!(
            archive.counts(hold).await,
            HoldCounts {
                events: total,
                matching_events: matching as u64,
                posts: POSTS as u64,
                custodians: 2,
                channels: 1,
            },
            "{}",
            hold.name
        );
    }
    let held = archive
        .held(&[alice.clone(), bob.clone(), kiwi.clone()])
        .await;
    assert_eq!(held.len() as u64, total);
    assert!(
        held.values()
            .all(|holds| holds == &vec![alice.id, bob.id, kiwi.id])
    );
}

// ------------------------------------------------------------------ API harness

/// A response, fully read.
struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }

    fn expect(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        self.json()
    }

    /// The error's body, after checking its status and code.
    fn error(&self, status: StatusCode, code: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty()),
            "{body}"
        );
        body
    }
}

struct Tokens {
    /// Legal, every team.
    legal_all: String,
    /// Legal, team A only.
    legal_a: String,
    /// Admin (no scope: holds everywhere).
    admin: String,
    officer: String,
    auditor: String,
}

struct App {
    router: Router,
    access: Arc<AccessState>,
    tokens: Tokens,
    /// Kept last: dropped after the router and the store.
    archive: Archive,
}

async fn api_token(access: &AccessState, name: &str, role: Role, scope: Scope) -> String {
    let (_, token) = access
        .tokens
        .create_api_token(
            NewApiToken {
                name: name.to_owned(),
                role,
                scope,
                created_by: "tests".to_owned(),
                expires_at_ms: None,
            },
            chrono::Utc::now().timestamp_millis(),
        )
        .await
        .unwrap();
    token.expose_secret().to_owned()
}

impl App {
    async fn new(backend: Backend) -> App {
        let archive = Archive::new(backend, corpus()).await;
        let access = AccessState::open(&archive.store, &AuthConfig::default(), None)
            .await
            .unwrap();
        let tokens = Tokens {
            legal_all: api_token(&access, "legal-all", Role::Legal, Scope::All).await,
            legal_a: api_token(&access, "legal-a", Role::Legal, Scope::teams(["A"])).await,
            admin: api_token(&access, "admin", Role::Admin, Scope::Nothing).await,
            officer: api_token(&access, "officer", Role::ComplianceOfficer, Scope::All).await,
            auditor: api_token(&access, "auditor", Role::Auditor, Scope::Nothing).await,
        };
        let state = holdfast::api::AppState::new(archive.store.clone(), access, 1024 * 1024)
            .with_index(Arc::clone(&archive.index));
        App {
            access: Arc::clone(&state.access),
            router: holdfast::api::router(state),
            tokens,
            archive,
        }
    }

    async fn send(&self, method: &str, path: &str, token: &str, body: Option<Body>) -> Reply {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let mut request = builder.body(body.unwrap_or_else(Body::empty)).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 40_000))));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply { status, body }
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.send("GET", path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send("POST", path, token, Some(Body::from(body.to_string())))
            .await
    }

    async fn create(&self, token: &str, body: &Value) -> Reply {
        self.post("/api/v1/holds", token, body).await
    }

    async fn release(&self, id: i64, token: &str, reason: &str) -> Reply {
        self.post(
            &format!("/api/v1/holds/{id}/release"),
            token,
            &json!({ "reason": reason }),
        )
        .await
    }

    /// The names of the holds a list shows.
    async fn listed(&self, query: &str, token: &str) -> Vec<String> {
        let body = self
            .get(&format!("/api/v1/holds{query}"), token)
            .await
            .expect(StatusCode::OK);
        body["holds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hold| hold["name"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn audit(&self, action: AuditAction) -> Vec<AuditRecord> {
        self.access
            .audit
            .query(&AuditFilter {
                action: Some(action),
                limit: Some(MAX_QUERY_LIMIT),
                ..AuditFilter::default()
            })
            .await
            .unwrap()
    }
}

fn hold_body(name: &str, criteria: &Value) -> Value {
    json!({"name": name, "matter": "Acme v. Initech, 24-1187",
           "reason": "litigation expected", "criteria": criteria})
}

// ------------------------------------------------------------------ API

async fn legal_and_admin_create_list_show_and_release(backend: Backend) {
    let app = App::new(backend).await;
    let legal = app.tokens.legal_all.clone();
    let admin = app.tokens.admin.clone();

    let created = app
        .create(
            &legal,
            &hold_body("acme", &json!({"custodians": ["alice"]})),
        )
        .await
        .expect(StatusCode::CREATED);
    let acme = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "acme");
    assert_eq!(created["status"], "active");
    assert_eq!(created["scope"], "all");
    assert_eq!(created["created_by"], "token:legal-all");
    assert_eq!(created["criteria"]["custodians"], json!(["alice"]));
    assert_eq!(created["released_at"], Value::Null);

    assert_eq!(app.listed("", &legal).await, ["acme"]);
    let shown = app
        .get(&format!("/api/v1/holds/{acme}"), &legal)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        shown["held"],
        json!({"events": 7, "matching_events": 5, "posts": 3, "custodians": 3, "channels": 3})
    );

    // An admin manages holds everywhere.
    let board = app
        .create(
            &admin,
            &hold_body(
                "board",
                &json!({"teams": ["B"], "channels": [{"team": "B", "channel": "general"}]}),
            ),
        )
        .await
        .expect(StatusCode::CREATED);
    let board_id = board["id"].as_i64().unwrap();
    assert_eq!(board["scope"], "all");
    assert_eq!(app.listed("", &admin).await, ["acme", "board"]);
    let shown = app
        .get(&format!("/api/v1/holds/{board_id}"), &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["held"]["events"], 4);
    app.get(&format!("/api/v1/holds/{acme}"), &admin)
        .await
        .expect(StatusCode::OK);

    // Release: recorded, listed as released, holding nothing; not twice.
    let released = app
        .release(acme, &legal, "settled out of court")
        .await
        .expect(StatusCode::OK);
    assert_eq!(released["status"], "released");
    assert_eq!(released["released_by"], "token:legal-all");
    assert_eq!(released["release_reason"], "settled out of court");
    assert!(released["released_at"].is_string());
    app.release(acme, &admin, "again")
        .await
        .error(StatusCode::CONFLICT, "hold_released");
    assert_eq!(app.listed("", &legal).await, ["board"]);
    assert_eq!(app.listed("?status=active", &legal).await, ["board"]);
    assert_eq!(app.listed("?status=released", &legal).await, ["acme"]);
    assert_eq!(app.listed("?status=all", &legal).await, ["acme", "board"]);
    let shown = app
        .get(&format!("/api/v1/holds/{acme}"), &legal)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["status"], "released");
    assert_eq!(shown["held"]["events"], 0);
    // Releasing deleted nothing.
    assert_eq!(app.archive.rows().await.len(), corpus().len());

    // Every call is in the trail, naming the hold.
    let creates = app.audit(AuditAction::HoldCreate).await;
    assert_eq!(creates.len(), 2, "{creates:?}");
    assert_eq!(creates[0].actor, "token:legal-all");
    assert_eq!(creates[0].params["name"], "acme");
    assert_eq!(creates[0].params["hold_id"], acme);
    assert_eq!(creates[0].params["status"], 201);
    assert_eq!(creates[1].actor, "token:admin");
    assert_eq!(creates[1].params["name"], "board");
    let releases = app.audit(AuditAction::HoldRelease).await;
    assert_eq!(releases.len(), 2, "{releases:?}");
    assert_eq!(releases[0].outcome, AuditOutcome::Ok);
    assert_eq!(releases[0].params["hold_id"], acme);
    assert_eq!(releases[0].params["name"], "acme");
    assert_eq!(releases[0].params["reason"], "settled out of court");
    assert_eq!(releases[1].outcome, AuditOutcome::Failed);
    assert_eq!(releases[1].params["name"], "acme");
    assert_eq!(releases[1].params["status"], 409);
    let views = app.audit(AuditAction::HoldView).await;
    assert_eq!(views.len(), 4, "{views:?}");
    assert_eq!(views[0].params["hold_id"], acme);
    assert_eq!(views[0].params["name"], "acme");
    assert_eq!(views[0].params["held_events"], 7);
    let lists = app.audit(AuditAction::HoldList).await;
    assert_eq!(lists.len(), 6, "{lists:?}");
    assert_eq!(lists[0].params["holds"], 1);
    assert_eq!(lists[0].params["hold_status"], "active");
    assert_eq!(lists[5].params["hold_status"], "all");
    assert_eq!(lists[5].params["holds"], 2);
}

async fn officers_and_auditors_are_refused(backend: Backend) {
    let app = App::new(backend).await;
    let id = app
        .create(
            &app.tokens.legal_all,
            &hold_body("kept", &json!({"teams": ["A"]})),
        )
        .await
        .expect(StatusCode::CREATED)["id"]
        .as_i64()
        .unwrap();
    for token in [&app.tokens.officer, &app.tokens.auditor] {
        app.create(token, &hold_body("nope", &json!({"teams": ["A"]})))
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
        app.get("/api/v1/holds", token)
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
        app.get(&format!("/api/v1/holds/{id}"), token)
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
        app.release(id, token, "no")
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
    }
    let mut denied = Vec::new();
    for action in [
        AuditAction::HoldCreate,
        AuditAction::HoldList,
        AuditAction::HoldView,
        AuditAction::HoldRelease,
    ] {
        denied.extend(
            app.audit(action)
                .await
                .into_iter()
                .filter(|record| record.outcome == AuditOutcome::Denied),
        );
    }
    assert_eq!(denied.len(), 8, "{denied:?}");
    assert!(
        denied
            .iter()
            .all(|record| ["token:officer", "token:auditor"].contains(&record.actor.as_str()))
    );
    assert_eq!(
        app.listed("?status=all", &app.tokens.legal_all).await,
        ["kept"]
    );
}

async fn scoped_legal_callers_stay_in_their_scope(backend: Backend) {
    let app = App::new(backend).await;
    let scoped = app.tokens.legal_a.clone();
    let everyone = app.tokens.legal_all.clone();

    for (criteria, outside) in [
        (json!({"teams": ["B"]}), "team B"),
        (json!({"teams": ["A", "B"]}), "team B"),
        (
            json!({"channels": [{"team": "B", "channel": "general"}]}),
            "channel B/general",
        ),
        (json!({"channels": ["B/general"]}), "channel B/general"),
    ] {
        let body = app
            .create(&scoped, &hold_body("outside", &criteria))
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.ends_with(outside), "{criteria}: {message}");
        assert!(!message.contains("team A"), "{message}");
    }
    assert!(app.listed("?status=all", &everyone).await.is_empty());

    // A custodian hold of a scoped caller holds only inside its scope.
    let mine = app
        .create(
            &scoped,
            &hold_body(
                "alice-in-a",
                &json!({"custodians": ["alice"], "channels": [{"team": "A", "channel": "general"}, "A/deals"]}),
            ),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(mine["scope"], "team A");
    let mine = mine["id"].as_i64().unwrap();
    let shown = app
        .get(&format!("/api/v1/holds/{mine}"), &scoped)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        shown["held"],
        json!({"events": 5, "matching_events": 3, "posts": 2, "custodians": 3, "channels": 2})
    );

    // Holds of a wider scope are invisible to the scoped caller.
    let global = app
        .create(
            &everyone,
            &hold_body("alice-everywhere", &json!({"custodians": ["alice"]})),
        )
        .await
        .expect(StatusCode::CREATED)["id"]
        .as_i64()
        .unwrap();
    assert_eq!(app.listed("?status=all", &scoped).await, ["alice-in-a"]);
    app.get(&format!("/api/v1/holds/{global}"), &scoped)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    app.release(global, &scoped, "not mine")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let shown = app
        .get(&format!("/api/v1/holds/{global}"), &everyone)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["held"]["events"], 7);
    // The wider caller sees both, and may release the scoped one.
    assert_eq!(
        app.listed("", &everyone).await,
        ["alice-in-a", "alice-everywhere"]
    );
    app.release(mine, &everyone, "moved to the global hold")
        .await
        .expect(StatusCode::OK);
    let refusals = app.audit(AuditAction::HoldCreate).await;
    assert_eq!(
        refusals
            .iter()
            .filter(|record| record.outcome == AuditOutcome::Denied)
            .count(),
        4
    );
    assert!(
        refusals
            .iter()
            .filter(|record| record.outcome == AuditOutcome::Denied)
            .all(|record| record.params["name"] == "outside")
    );
}

async fn bad_requests_name_the_field(backend: Backend) {
    let app = App::new(backend).await;
    let legal = app.tokens.legal_all.clone();
    let good = hold_body("good", &json!({"custodians": ["alice"]}));
    let edit = |change: &dyn Fn(&mut Value)| {
        let mut body = good.clone();
        change(&mut body);
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "name"),
        (edit(&|b| b["name"] = json!("")), "name"),
        (edit(&|b| b["name"] = json!("x".repeat(129))), "name"),
        (edit(&|b| b["name"] = json!("2024")), "name"),
        (edit(&|b| b["name"] = json!(7)), "name"),
        (
            edit(&|b| {
                b.as_object_mut().unwrap().remove("matter");
            }),
            "matter",
        ),
        (edit(&|b| b["reason"] = json!("   ")), "reason"),
        (edit(&|b| b["reason"] = json!("r".repeat(2001))), "reason"),
        (
            edit(&|b| {
                b.as_object_mut().unwrap().remove("criteria");
            }),
            "criteria",
        ),
        (edit(&|b| b["criteria"] = json!({})), "criteria"),
        (edit(&|b| b["criteria"] = json!(["alice"])), "criteria"),
        (
            edit(&|b| b["criteria"] = json!({"custodians": "alice"})),
            "criteria.custodians",
        ),
        (
            edit(&|b| b["criteria"] = json!({"custodians": [""]})),
            "criteria.custodians",
        ),
        (
            edit(&|b| b["criteria"] = json!({"teams": [" "]})),
            "criteria.teams",
        ),
        (
            edit(&|b| b["criteria"] = json!({"from": "2024-13-01"})),
            "criteria.from",
        ),
        (
            edit(&|b| b["criteria"] = json!({"from": "yesterday"})),
            "criteria.from",
        ),
        (
            edit(&|b| b["criteria"] = json!({"from": "2024-03-02", "to": "2024-03-01"})),
            "criteria.to",
        ),
        (
            edit(&|b| b["criteria"] = json!({"channels": ["general"]})),
            "criteria.channels",
        ),
        (
            edit(&|b| {
                b["criteria"] =
                    json!({"teams": ["A"], "channels": [{"team": "B", "channel": "general"}]})
            }),
            "criteria.channels",
        ),
        (
            edit(&|b| b["criteria"] = json!({"custodian": ["alice"]})),
            "criteria.custodian",
        ),
        (edit(&|b| b["nmae"] = json!("typo")), "nmae"),
    ];
    for (body, field) in cases {
        let reply = app
            .create(&legal, &body)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(reply["error"]["field"], field, "{body}: {reply}");
    }

    // A query that does not parse: where, what was expected.
    for (query, column) in [("merger AND", 11), ("from:", 6), ("after:today", 7)] {
        let reply = app
            .create(&legal, &edit(&|b| b["criteria"] = json!({"query": query})))
            .await
            .error(StatusCode::BAD_REQUEST, "bad_query");
        assert_eq!(reply["error"]["column"], column, "{query}: {reply}");
        assert!(reply["error"]["position"].is_u64(), "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("at column {column}")),
            "{message}"
        );
    }

    // Bodies that are not a JSON object.
    for body in ["not json", "[]", ""] {
        app.send("POST", "/api/v1/holds", &legal, Some(Body::from(body)))
            .await
            .error(StatusCode::BAD_REQUEST, "bad_request");
    }

    // Nothing was created; then a name is taken once.
    assert!(app.listed("?status=all", &legal).await.is_empty());
    let id = app.create(&legal, &good).await.expect(StatusCode::CREATED)["id"]
        .as_i64()
        .unwrap();
    let taken = app
        .create(&app.tokens.admin, &good)
        .await
        .error(StatusCode::CONFLICT, "hold_exists");
    assert!(
        taken["error"]["message"].as_str().unwrap().contains("good"),
        "{taken}"
    );

    // Release needs a reason; lists a known status; ids name holds.
    for body in [json!({}), json!({"reason": ""}), json!({"reason": 5})] {
        let reply = app
            .post(&format!("/api/v1/holds/{id}/release"), &legal, &body)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(reply["error"]["field"], "reason", "{body}");
    }
    let reply = app
        .post(
            &format!("/api/v1/holds/{id}/release"),
            &legal,
            &json!({"reason": "x", "why": "y"}),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(reply["error"]["field"], "why");
    let reply = app
        .get("/api/v1/holds?status=bogus", &legal)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(reply["error"]["field"], "status");
    app.get("/api/v1/holds/9999", &legal)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let reply = app
        .get("/api/v1/holds/abc", &legal)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(reply["error"]["field"], "id");
    app.release(9999, &legal, "no such hold")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let shown = app
        .get(&format!("/api/v1/holds/{id}"), &legal)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["status"], "active");

    // Refused creations are in the trail as failed, with the name given.
    let creates = app.audit(AuditAction::HoldCreate).await;
    let failed: Vec<&AuditRecord> = creates
        .iter()
        .filter(|record| record.outcome == AuditOutcome::Failed)
        .collect();
    assert_eq!(failed.len(), 21 + 3 + 3 + 1, "{creates:?}");
    assert!(
        failed
            .iter()
            .any(|record| record.params["name"] == "good" && record.params["status"] == 409)
    );
}

// ------------------------------------------------------------------ CLI

fn cli(archive: &TestArchive, args: &[&str]) -> Output {
    let mut command = helpers::holdfast(archive.data_dir());
    command.args(args).env("USER", ACTOR);
    if archive.backend == Backend::Postgres {
        command.env("HOLDFAST_DATABASE_URL", &archive.options.database_url);
    }
    command.output().unwrap()
}

fn expect(output: &Output, code: i32, args: &[&str]) -> (String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "holdfast {args:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    );
    (stdout, stderr)
}

fn run(archive: &TestArchive, args: &[&str], code: i32) -> (String, String) {
    expect(&cli(archive, args), code, args)
}

/// An archive holding the corpus, closed, for the command line.
async fn cli_archive(backend: Backend) -> TestArchive {
    let archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    store.append(events(corpus())).await.unwrap();
    store.close().await;
    archive
}

/// The trail's records of `action`, as the CLI prints them.
fn cli_audit(archive: &TestArchive, action: &str) -> Vec<Value> {
    let (stdout, _) = run(archive, &["audit", "--action", action, "--json"], 0);
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

async fn cli_create_list_show_release(backend: Backend) {
    let archive = cli_archive(backend).await;
    let (stdout, _) = run(
        &archive,
        &[
            "hold",
            "create",
            "--name",
            "acme",
            "--matter",
            "Acme v. Initech",
            "--reason",
            "litigation expected",
            "--custodian",
            "alice",
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-03",
        ],
        0,
    );
    assert!(stdout.contains("created hold 1 (acme)"), "{stdout}");
    run(
        &archive,
        &[
            "hold",
            "create",
            "--name",
            "merger",
            "--matter",
            "M-2",
            "--reason",
            "r",
            "--query",
            "merger",
            "--channel",
            "B/general",
        ],
        0,
    );

    let (stdout, _) = run(&archive, &["hold", "list"], 0);
    assert!(
        stdout.contains("acme") && stdout.contains("merger") && stdout.contains("active"),
        "{stdout}"
    );
    let (stdout, _) = run(&archive, &["hold", "list", "--json"], 0);
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed[0]["name"], "acme");
    assert_eq!(listed[0]["scope"], "all");
    assert_eq!(listed[0]["created_by"], ACTOR);
    assert_eq!(listed[1]["criteria"]["query"], "merger");

    // alice's events from March 1st through the end of March 3rd, and the
    // rest of their posts.
    let (stdout, _) = run(&archive, &["hold", "show", "acme", "--json"], 0);
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        shown["held"],
        json!({"events": 7, "matching_events": 4, "posts": 3, "custodians": 3, "channels": 3})
    );
    let (stdout, _) = run(&archive, &["hold", "show", "2"], 0);
    assert!(stdout.contains("hold 2: merger (active)"), "{stdout}");
    assert!(stdout.contains("held now:  2 events"), "{stdout}");

    let (stdout, _) = run(
        &archive,
        &["hold", "release", "acme", "--reason", "settled"],
        0,
    );
    assert!(stdout.contains("released hold 1 (acme)"), "{stdout}");
    let (_, stderr) = run(&archive, &["hold", "release", "1", "--reason", "again"], 2);
    assert!(stderr.contains("released already"), "{stderr}");
    let (stdout, _) = run(&archive, &["hold", "list"], 0);
    assert!(!stdout.contains("acme"), "{stdout}");
    let (stdout, _) = run(&archive, &["hold", "list", "--all"], 0);
    assert!(
        stdout.contains("acme") && stdout.contains("released"),
        "{stdout}"
    );
    let (stdout, _) = run(&archive, &["hold", "show", "acme"], 0);
    assert!(
        stdout.contains("released:") && stdout.contains("settled"),
        "{stdout}"
    );
    assert!(stdout.contains("held now:  0 events"), "{stdout}");

    // Every command is in the trail, by the operating-system user.
    let creates = cli_audit(&archive, "hold_create");
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0]["actor"], ACTOR);
    assert_eq!(creates[0]["client"], "cli");
    assert_eq!(creates[0]["params"]["name"], "acme");
    assert_eq!(creates[0]["params"]["hold_id"], 1);
    let releases = cli_audit(&archive, "hold_release");
    assert_eq!(releases.len(), 2);
    let outcomes: BTreeSet<&str> = releases
        .iter()
        .map(|record| record["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, BTreeSet::from(["ok", "failed"]));
    assert!(
        releases
            .iter()
            .all(|record| record["params"]["hold_id"] == 1)
    );
    let views = cli_audit(&archive, "hold_view");
    assert_eq!(views.len(), 3);
    assert!(
        views
            .iter()
            .any(|record| record["params"]["held_events"] == 7)
    );
    assert_eq!(cli_audit(&archive, "hold_list").len(), 4);
}

async fn cli_refuses_bad_flags_naming_them(backend: Backend) {
    let archive = cli_archive(backend).await;
    let base = [
        "hold", "create", "--name", "h1", "--matter", "m", "--reason", "r",
    ];
    let create = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra.iter())
            .map(|arg| (*arg).to_owned())
            .collect()
    };
    for (extra, needle) in [
        (&[][..], "give at least one criterion"),
        (&["--from", "2024-02-30"][..], "--from:"),
        (&["--from", "2024-03-02", "--to", "2024-03-01"][..], "--to:"),
        (&["--to", "next week"][..], "--to:"),
        (&["--custodian", ""][..], "--custodian:"),
        (&["--team", "A", "--channel", "B/general"][..], "--channel:"),
        (&["--query", "merger AND"][..], "--query: at column 11"),
        (&["--query", "after:today"][..], "--query:"),
        // clap's own refusals (exit 2, naming the flag).
        (&["--channel", "general"][..], "TEAM/CHANNEL"),
        (&["--custodian"][..], "--custodian"),
    ] {
        let args = create(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, stderr) = run(&archive, &args, 2);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // The caret points at the mistake in the query.
    let (_, stderr) = run(
        &archive,
        &[
            "hold",
            "create",
            "--name",
            "h1",
            "--matter",
            "m",
            "--reason",
            "r",
            "--query",
            "merger AND",
        ],
        2,
    );
    assert!(stderr.contains("merger AND\n          ^"), "{stderr}");
    let (_, stderr) = run(
        &archive,
        &[
            "hold", "create", "--name", "123", "--matter", "m", "--reason", "r", "--team", "A",
        ],
        2,
    );
    assert!(stderr.contains("--name:"), "{stderr}");
    let (_, stderr) = run(
        &archive,
        &[
            "hold", "create", "--name", "h1", "--matter", "m", "--team", "A",
        ],
        2,
    );
    assert!(stderr.contains("--reason"), "{stderr}");
    // Nothing was recorded for refused flags: nothing was opened.
    assert!(cli_audit(&archive, "hold_create").is_empty());

    run(
        &archive,
        &[
            "hold", "create", "--name", "h1", "--matter", "m", "--reason", "r", "--team", "A",
        ],
        0,
    );
    let (_, stderr) = run(
        &archive,
        &[
            "hold", "create", "--name", "h1", "--matter", "m", "--reason", "r", "--team", "B",
        ],
        2,
    );
    assert!(
        stderr.contains("--name: a hold named \"h1\" exists already"),
        "{stderr}"
    );
    let (_, stderr) = run(&archive, &["hold", "show", "nope"], 2);
    assert!(stderr.contains("no hold \"nope\""), "{stderr}");
    let (_, stderr) = run(&archive, &["hold", "release", "h1"], 2);
    assert!(stderr.contains("--reason"), "{stderr}");
    let (_, stderr) = run(&archive, &["hold", "release", "h1", "--reason", " "], 2);
    assert!(stderr.contains("--reason:"), "{stderr}");
    let creates = cli_audit(&archive, "hold_create");
    assert_eq!(
        creates
            .iter()
            .map(|record| record["outcome"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["ok", "failed"]
    );
    let (stdout, _) = run(&archive, &["hold", "--help"], 0);
    for command in ["create", "list", "show", "release"] {
        assert!(stdout.contains(command), "{stdout}");
    }
    let (stdout, _) = run(&archive, &["hold", "create", "--help"], 0);
    for flag in [
        "--name",
        "--matter",
        "--reason",
        "--custodian",
        "--team",
        "--channel",
        "--from",
        "--to",
        "--query",
    ] {
        assert!(stdout.contains(flag), "{stdout}");
    }
}

both_backends!(
    each_kind_of_criterion_holds_exactly_its_events,
    released_holds_hold_nothing,
    events_ingested_after_the_hold_are_held,
    holds_change_under_the_retention_lock,
    counts_read_in_pages_count_each_post_once,
    legal_and_admin_create_list_show_and_release,
    officers_and_auditors_are_refused,
    scoped_legal_callers_stay_in_their_scope,
    bad_requests_name_the_field,
    cli_create_list_show_release,
    cli_refuses_bad_flags_naming_them,
);
