//! Retention over the HTTP API (both metadata backends) and the command
//! line (SQLite, the real binary): the policies in force with their digest,
//! dry-run plans with known counts on a small corpus (with and without
//! `as_of`, a custodian hold keeping its events), a run deleting exactly
//! the due unheld events and answering its certificate, past runs and their
//! certificates, `410 deleted_by_retention` within the caller's scope only,
//! an audit record for every call; bad input naming the field, invalid
//! policy files named by file, line and field, a lowered floor refused with
//! nothing deleted, other roles refused, one run at a time; and
//! `holdfast retention policies|plan|run|runs|show|compact`, `get`, `stats`
//! and the `[retention]` configuration.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
use holdfast::db::Backend;
use holdfast::event::Event;
use holdfast::index::SearchIndex;
use holdfast::retention::RetentionService;
use holdfast::search::Scope;
use holdfast::store::Store;
use http_body_util::BodyExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

// ------------------------------------------------------------------ corpus

/// One event: `place` is `team/channel`; posts and edits get `text`.
fn ev(id: &str, kind: &str, at: &str, place: &str, user: &str, post: &str, text: &str) -> Value {
    let (team, channel) = place.split_once('/').unwrap();
    let mut value = json!({"id": id, "kind": kind, "at": at, "team": team,
                           "channel": channel, "user": user, "post": post});
    match kind {
        "reaction_add" => value["emoji"] = json!(text),
        _ => value["text"] = json!(text),
    }
    value
}

/// Every event is from March 2024, long past a `keep_days = 30`. alice's
/// post p1 in A/general has bob's reaction (held through the post when
/// alice is held); everything else is someone else's.
fn corpus() -> Vec<Value> {
    vec![
        ev(
            "e1",
            "post",
            "2024-03-01T10:00:00Z",
            "A/general",
            "alice",
            "p1",
            "merger plans aardvark",
        ),
        ev(
            "e2",
            "reaction_add",
            "2024-03-01T11:00:00Z",
            "A/general",
            "bob",
            "p1",
            "thumbsup",
        ),
        ev(
            "e3",
            "post",
            "2024-03-01T12:00:00Z",
            "A/general",
            "bob",
            "p2",
            "lunch order zebra",
        ),
        ev(
            "e4",
            "post",
            "2024-03-02T09:00:00Z",
            "A/deals",
            "carol",
            "p3",
            "pricing sheet okapi",
        ),
        ev(
            "e5",
            "post",
            "2024-03-02T10:00:00Z",
            "B/general",
            "bob",
            "p5",
            "quarterly numbers narwhal",
        ),
        ev(
            "e6",
            "post",
            "2024-03-03T10:00:00Z",
            "B/general",
            "erin",
            "p6",
            "unrelated words quokka",
        ),
    ]
}

/// Words of the corpus' messages: none may appear in a certificate.
const CORPUS_WORDS: &[&str] = &[
    "aardvark", "zebra", "okapi", "narwhal", "quokka", "walrus", "ibis",
];

fn events(values: Vec<Value>) -> Vec<Event> {
    values
        .into_iter()
        .map(|value| Event::from_json(value).unwrap())
        .collect()
}

const SHORT_POLICY: &str = "version = 1\n\n[[policy]]\nname = \"short\"\nkeep_days = 30\n";

/// Replaces the policy directory's files with `files`.
fn write_policies(dir: &Path, files: &[(&str, &str)]) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// The digest docs/retention.md defines, computed independently.
fn digest_of(files: &[(&str, &str)]) -> String {
    let mut sorted = files.to_vec();
    sorted.sort_by_key(|(name, _)| *name);
    let mut hasher = Sha256::new();
    for (name, text) in sorted {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// (team, channel, day, events) of a plan's or certificate's per-policy list.
fn channel_days(policy: &Value) -> BTreeSet<(String, String, String, u64)> {
    policy["by_channel_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|day| {
            (
                day["team"].as_str().unwrap().to_owned(),
                day["channel"].as_str().unwrap().to_owned(),
                day["day"].as_str().unwrap().to_owned(),
                day["events"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn cd(team: &str, channel: &str, day: &str, events: u64) -> (String, String, String, u64) {
    (team.to_owned(), channel.to_owned(), day.to_owned(), events)
}

/// What a run of "short" as of today deletes without the hold: everything.
fn all_due() -> BTreeSet<(String, String, String, u64)> {
    BTreeSet::from([
        cd("A", "general", "2024-03-01", 1),
        cd("A", "deals", "2024-03-02", 1),
        cd("B", "general", "2024-03-02", 1),
        cd("B", "general", "2024-03-03", 1),
    ])
}

fn is_sha256_hex(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
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

    /// An `invalid_field` error naming `field`, in `field` and the message.
    fn invalid_field(&self, field: &str) -> Value {
        let body = self.error(StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(body["error"]["field"], field, "{body}");
        assert!(message(&body).contains(field), "{body}");
        body
    }
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap()
}

struct Tokens {
    admin: String,
    legal_all: String,
    /// Legal, team A only.
    legal_a: String,
    /// Legal, team B only.
    legal_b: String,
    officer_all: String,
    /// Compliance officer, team B only.
    officer_b: String,
    auditor: String,
}

struct App {
    router: Router,
    service: Arc<RetentionService>,
    access: Arc<AccessState>,
    tokens: Tokens,
    store: Store,
    policy_dir: PathBuf,
    /// Kept last: dropped after the router and the store.
    archive: TestArchive,
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
    /// The corpus stored, policy files `files`, a server with retention.
    async fn new(backend: Backend, files: &[(&str, &str)]) -> App {
        let archive = TestArchive::new(backend).await;
        let store = archive.open().await;
        store.append(events(corpus())).await.unwrap();
        // Where production keeps it: inside the data directory.
        let index =
            Arc::new(SearchIndex::open_or_create(&archive.data_dir().join("index")).unwrap());
        let policy_dir = archive.dir.path().join("policies");
        write_policies(&policy_dir, files);
        let access = AccessState::open(&store, &AuthConfig::default(), None)
            .await
            .unwrap();
        let tokens = Tokens {
            admin: api_token(&access, "admin", Role::Admin, Scope::Nothing).await,
            legal_all: api_token(&access, "legal-all", Role::Legal, Scope::All).await,
            legal_a: api_token(&access, "legal-a", Role::Legal, Scope::teams(["A"])).await,
            legal_b: api_token(&access, "legal-b", Role::Legal, Scope::teams(["B"])).await,
            officer_all: api_token(&access, "officer", Role::ComplianceOfficer, Scope::All).await,
            officer_b: api_token(
                &access,
                "officer-b",
                Role::ComplianceOfficer,
                Scope::teams(["B"]),
            )
            .await,
            auditor: api_token(&access, "auditor", Role::Auditor, Scope::Nothing).await,
        };
        let service = Arc::new(RetentionService::new(
            store.clone(),
            Arc::clone(&index),
            Some(policy_dir.clone()),
            true,
        ));
        let state = holdfast::api::AppState::new(store.clone(), access, 1024 * 1024)
            .with_index(Arc::clone(&index))
            .with_retention(Arc::clone(&service));
        App {
            service,
            access: Arc::clone(&state.access),
            router: holdfast::api::router(state),
            tokens,
            store,
            policy_dir,
            archive,
        }
    }

    async fn send(&self, method: &str, path: &str, token: &str, body: Option<Body>) -> Reply {
        send(&self.router, method, path, token, body).await
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.send("GET", path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send("POST", path, token, Some(Body::from(body.to_string())))
            .await
    }

    async fn start_run(&self) -> Reply {
        self.send("POST", "/api/v1/retention/runs", &self.tokens.admin, None)
            .await
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

    /// (live events, tombstones) as the database counts them.
    async fn counts(&self) -> (i64, i64) {
        let stats = self.store.db().stats().await.unwrap();
        (stats.events, stats.deleted_events)
    }

    fn certificate_file(&self, run_id: i64) -> PathBuf {
        self.archive
            .data_dir()
            .join("certificates")
            .join(format!("run-{run_id:06}.json"))
    }
}

async fn send(router: &Router, method: &str, path: &str, token: &str, body: Option<Body>) -> Reply {
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
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 9], 40_000))));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, body }
}

const RETENTION_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/retention/policies"),
    ("GET", "/api/v1/retention/plan"),
    ("POST", "/api/v1/retention/runs"),
    ("GET", "/api/v1/retention/runs"),
    ("GET", "/api/v1/retention/runs/1"),
];

// ------------------------------------------------------------------ API: the happy path

async fn admin_plans_runs_and_reads_the_certificate(backend: Backend) {
    let files = [("global.toml", SHORT_POLICY)];
    let app = App::new(backend, &files).await;
    let admin = app.tokens.admin.clone();

    // The policies of the directory, with the digest of its files.
    let policies = app
        .get("/api/v1/retention/policies", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(policies["digest"], digest_of(&files), "{policies}");
    let listed = policies["policies"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{policies}");
    assert_eq!(listed[0]["name"], "short");
    assert_eq!(listed[0]["keep_days"], 30);
    assert_eq!(listed[0]["min_keep_days"], 0);
    assert_eq!(listed[0]["source"], "global.toml");
    assert_eq!(listed[0]["team"], Value::Null);

    // Without holds, everything is due today.
    let plan = app
        .get("/api/v1/retention/plan", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(plan["events_to_delete"], 6, "{plan}");
    assert_eq!(plan["events_kept_by_holds"], 0, "{plan}");
    assert_eq!(plan["refused"], false, "{plan}");
    assert_eq!(plan["policies_digest"], digest_of(&files));
    assert_eq!(
        plan["as_of"],
        chrono::Utc::now().date_naive().to_string(),
        "{plan}"
    );

    // A custodian hold on alice keeps her post and bob's reaction to it.
    let hold = app
        .post(
            "/api/v1/holds",
            &app.tokens.legal_all,
            &json!({"name": "acme", "matter": "Acme v. Initech", "reason": "litigation",
                    "criteria": {"custodians": ["alice"]}}),
        )
        .await
        .expect(StatusCode::CREATED);
    let hold_id = hold["id"].as_i64().unwrap();

    let plan = app
        .get("/api/v1/retention/plan", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(plan["events_to_delete"], 4, "{plan}");
    assert_eq!(plan["events_kept_by_holds"], 2, "{plan}");
    // e1 and e2 share their key epoch with e3: they are re-encrypted first.
    assert_eq!(plan["events_to_carry"], 2, "{plan}");
    assert_eq!(plan["epochs_to_destroy"], 4, "{plan}");
    let by_policy = plan["by_policy"].as_array().unwrap();
    assert_eq!(by_policy.len(), 1, "{plan}");
    assert_eq!(by_policy[0]["policy"], "short");
    assert_eq!(by_policy[0]["events"], 4);
    assert_eq!(channel_days(&by_policy[0]), all_due(), "{plan}");
    let kept = plan["kept_by_holds"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{plan}");
    assert_eq!(kept[0]["hold_id"], hold_id);
    assert_eq!(kept[0]["name"], "acme");
    assert_eq!(kept[0]["matter"], "Acme v. Initech");
    assert_eq!(kept[0]["events"], 2);

    // A forecast: on 2024-04-02 the events of March 1st are 32 days old,
    // those of the 2nd 31 (due), e6 of the 3rd exactly 30 (kept).
    let forecast = app
        .get("/api/v1/retention/plan?as_of=2024-04-02", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(forecast["as_of"], "2024-04-02");
    assert_eq!(forecast["events_to_delete"], 3, "{forecast}");
    assert_eq!(forecast["events_kept_by_holds"], 2, "{forecast}");
    assert_eq!(
        channel_days(&forecast["by_policy"][0]),
        BTreeSet::from([
            cd("A", "general", "2024-03-01", 1),
            cd("A", "deals", "2024-03-02", 1),
            cd("B", "general", "2024-03-02", 1),
        ]),
        "{forecast}"
    );
    // Before anything is 31 days old: nothing.
    let early = app
        .get("/api/v1/retention/plan?as_of=2024-03-31", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(early["events_to_delete"], 0, "{early}");
    assert_eq!(early["events_kept_by_holds"], 0, "{early}");
    // Plans change nothing.
    assert_eq!(app.counts().await, (6, 0));

    // The run deletes exactly the due unheld events.
    let certificate = app.start_run().await.expect(StatusCode::OK);
    assert_eq!(certificate["run_id"], 1, "{certificate}");
    assert_eq!(certificate["events_deleted"], 4, "{certificate}");
    assert_eq!(certificate["events_carried"], 2, "{certificate}");
    assert_eq!(certificate["trigger"], "api");
    assert_eq!(certificate["started_by"], "token:admin");
    assert_eq!(certificate["policies_digest"], digest_of(&files));
    assert_eq!(
        certificate["as_of"],
        chrono::Utc::now().date_naive().to_string()
    );
    let deleted_by_policy = certificate["deleted_by_policy"].as_array().unwrap();
    assert_eq!(deleted_by_policy.len(), 1, "{certificate}");
    assert_eq!(deleted_by_policy[0]["policy"], "short");
    assert_eq!(deleted_by_policy[0]["events"], 4);
    assert_eq!(channel_days(&deleted_by_policy[0]), all_due());
    let kept = certificate["kept_by_holds"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{certificate}");
    assert_eq!(kept[0]["hold_id"], hold_id);
    assert_eq!(kept[0]["events"], 2);
    assert_eq!(
        certificate["epochs_destroyed"].as_array().unwrap().len(),
        4,
        "{certificate}"
    );
    assert!(
        certificate["chain_head"]["seq"].as_u64().unwrap() >= 6,
        "{certificate}"
    );
    assert!(
        is_sha256_hex(&certificate["chain_head"]["hash"]),
        "{certificate}"
    );
    for stage in [
        "plan",
        "carry",
        "destroy",
        "index_delete",
        "index_merge",
        "scrub",
        "compact",
        "certificate",
        "total",
    ] {
        assert!(
            certificate["timings_ms"][stage].is_u64(),
            "timings_ms.{stage}: {certificate}"
        );
    }
    let text = certificate.to_string();
    for word in CORPUS_WORDS {
        assert!(!text.contains(word), "{word} in {text}");
    }
    assert_eq!(app.counts().await, (2, 4));

    // The certificate on disk is the one answered, private.
    let file = app.certificate_file(1);
    let on_disk = std::fs::read(&file).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&on_disk).unwrap(),
        certificate
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Past runs.
    let runs = app
        .get("/api/v1/retention/runs", &admin)
        .await
        .expect(StatusCode::OK);
    let list = runs["runs"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{runs}");
    assert_eq!(list[0]["run_id"], 1);
    assert_eq!(list[0]["status"], "done");
    assert_eq!(list[0]["trigger"], "api");
    assert_eq!(list[0]["started_by"], "token:admin");
    assert!(list[0]["finished_at_ms"].is_i64(), "{runs}");
    let shown = app
        .get("/api/v1/retention/runs/1", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["run_id"], 1);
    assert_eq!(shown["status"], "done");
    assert_eq!(shown["trigger"], "api");
    assert_eq!(shown["certificate"], certificate, "{shown}");

    // Reading a deleted event: 410 within the scope, naming the policy.
    for (id, token) in [
        ("e3", &app.tokens.legal_a),
        ("e3", &app.tokens.officer_all),
        ("e5", &app.tokens.officer_b),
        ("e6", &app.tokens.legal_b),
    ] {
        let body = app
            .get(&format!("/api/v1/events/{id}"), token)
            .await
            .error(StatusCode::GONE, "deleted_by_retention");
        let said = message(&body);
        assert!(said.contains(id), "{body}");
        assert!(said.contains("retention policy \"short\""), "{body}");
        assert!(said.contains("(run 1)"), "{body}");
        for word in CORPUS_WORDS {
            assert!(!said.contains(word), "{body}");
        }
    }
    // ... and outside it, "not found" like any event it cannot see.
    for (id, token) in [
        ("e3", &app.tokens.legal_b),
        ("e3", &app.tokens.officer_b),
        ("e5", &app.tokens.legal_a),
    ] {
        let body = app
            .get(&format!("/api/v1/events/{id}"), token)
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
        assert!(!message(&body).contains("retention"), "{body}");
    }
    // Held events are still there, whole.
    let held = app
        .get("/api/v1/events/e1", &app.tokens.legal_a)
        .await
        .expect(StatusCode::OK);
    assert_eq!(held["event"]["text"], "merger plans aardvark");
    let reaction = app
        .get("/api/v1/events/e2", &app.tokens.officer_all)
        .await
        .expect(StatusCode::OK);
    assert_eq!(reaction["event"]["emoji"], "thumbsup");

    // A second run finds nothing more to delete.
    let again = app.start_run().await.expect(StatusCode::OK);
    assert_eq!(again["run_id"], 2);
    assert_eq!(again["events_deleted"], 0, "{again}");
    let runs = app
        .get("/api/v1/retention/runs?limit=1", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs["runs"][0]["run_id"], 2, "newest first: {runs}");

    // The audit trail: each call, by whom, with what.
    let run_records = app.audit(AuditAction::PolicyRun).await;
    assert_eq!(run_records.len(), 2, "{run_records:?}");
    let first = run_records
        .iter()
        .find(|record| record.params["run_id"] == 1)
        .unwrap_or_else(|| panic!("{run_records:?}"));
    assert_eq!(first.outcome, AuditOutcome::Ok);
    assert_eq!(first.actor, "token:admin");
    assert_eq!(first.params["events_deleted"], 4);
    assert_eq!(first.params["status"], 200);
    assert_eq!(
        first.params["certificate_sha256"],
        sha256_hex(&on_disk),
        "{:?}",
        first.params
    );
    let plans = app.audit(AuditAction::RetentionPlan).await;
    assert_eq!(plans.len(), 4, "{plans:?}");
    assert!(
        plans
            .iter()
            .all(|record| record.outcome == AuditOutcome::Ok)
    );
    assert!(
        plans
            .iter()
            .any(|record| record.params["as_of"] == "2024-04-02"
                && record.params["events_to_delete"] == 3
                && record.params["events_kept_by_holds"] == 2),
        "{plans:?}"
    );
    let views = app.audit(AuditAction::RetentionView).await;
    let paths: Vec<&str> = views
        .iter()
        .map(|record| record.params["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths
            .iter()
            .filter(|path| **path == "/api/v1/retention/policies")
            .count(),
        1,
        "{paths:?}"
    );
    assert_eq!(
        paths
            .iter()
            .filter(|path| **path == "/api/v1/retention/runs")
            .count(),
        2,
        "{paths:?}"
    );
    let show = views
        .iter()
        .find(|record| record.params["path"] == "/api/v1/retention/runs/1")
        .unwrap_or_else(|| panic!("{views:?}"));
    assert_eq!(show.params["run_id"], 1);
    assert!(views.iter().all(|record| record.actor == "token:admin"));
    // The 410s are audited as views of the event.
    let gone = app.audit(AuditAction::ViewEvent).await;
    assert!(
        gone.iter()
            .filter(|record| record.params["status"] == 410)
            .count()
            >= 4,
        "{gone:?}"
    );
}

// ------------------------------------------------------------------ API: refusals

async fn bad_requests_name_the_field(backend: Backend) {
    let app = App::new(backend, &[("global.toml", SHORT_POLICY)]).await;
    let admin = app.tokens.admin.clone();

    for as_of in ["2026-13-45", "yesterday", "2026-02-30", "20260101"] {
        let body = app
            .get(&format!("/api/v1/retention/plan?as_of={as_of}"), &admin)
            .await
            .invalid_field("as_of");
        assert!(message(&body).contains(as_of), "{body}");
    }
    // Days far off are forecasts like any other.
    let far = app
        .get("/api/v1/retention/plan?as_of=9999-12-31", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(far["events_to_delete"], 6, "{far}");
    let before = app
        .get("/api/v1/retention/plan?as_of=0001-01-01", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(before["events_to_delete"], 0, "{before}");
    let body = app
        .get("/api/v1/retention/plan?bogus=1", &admin)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(message(&body).contains("bogus"), "{body}");

    for limit in ["0", "-1", "1001", "100000"] {
        let body = app
            .get(&format!("/api/v1/retention/runs?limit={limit}"), &admin)
            .await
            .invalid_field("limit");
        assert!(message(&body).contains(limit), "{body}");
    }
    let body = app
        .get("/api/v1/retention/runs?limit=many", &admin)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(message(&body).contains("limit"), "{body}");
    app.get("/api/v1/retention/runs?limit=1000", &admin)
        .await
        .expect(StatusCode::OK);

    app.get("/api/v1/retention/runs/abc", &admin)
        .await
        .invalid_field("id");
    let body = app
        .get("/api/v1/retention/runs/99999", &admin)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert!(message(&body).contains("99999"), "{body}");

    // Nothing was planned or run by any of these.
    assert_eq!(app.counts().await, (6, 0));
    let plans = app.audit(AuditAction::RetentionPlan).await;
    assert_eq!(plans.len(), 7, "{plans:?}");
    let failed: Vec<&AuditRecord> = plans
        .iter()
        .filter(|record| record.outcome == AuditOutcome::Failed)
        .collect();
    assert_eq!(failed.len(), 5, "{plans:?}");
    assert!(
        failed.iter().all(|record| record.params["status"] == 400),
        "{plans:?}"
    );
    let views = app.audit(AuditAction::RetentionView).await;
    assert_eq!(views.len(), 8, "{views:?}");
    let failed = views
        .iter()
        .filter(|record| record.outcome == AuditOutcome::Failed)
        .count();
    assert_eq!(failed, 7, "{views:?}");
}

async fn invalid_policy_files_refuse_the_whole_set(backend: Backend) {
    // The first file is fine; the second names an unknown kind on line 6.
    let bad = "version = 1\n\n[[policy]]\nname = \"eng-reactions\"\nteam = \"A\"\nkinds = [\"shout\"]\nkeep_days = 1\n";
    let app = App::new(
        backend,
        &[("a-global.toml", SHORT_POLICY), ("b-eng.toml", bad)],
    )
    .await;
    let admin = app.tokens.admin.clone();

    let check = |body: &Value| {
        let said = message(body);
        assert!(said.contains("b-eng.toml:6:"), "{body}");
        assert!(said.contains("kinds"), "{body}");
        assert!(said.contains("shout"), "{body}");
        assert!(said.contains("eng-reactions"), "{body}");
    };
    check(
        &app.get("/api/v1/retention/policies", &admin)
            .await
            .error(StatusCode::CONFLICT, "invalid_policies"),
    );
    check(
        &app.get("/api/v1/retention/plan", &admin)
            .await
            .error(StatusCode::CONFLICT, "invalid_policies"),
    );
    check(
        &app.start_run()
            .await
            .error(StatusCode::CONFLICT, "invalid_policies"),
    );
    // Not on part of the set: the valid file deletes nothing either.
    assert_eq!(app.counts().await, (6, 0));
    let runs = app
        .get("/api/v1/retention/runs", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(runs["runs"], json!([]), "{runs}");
    let failed = app.audit(AuditAction::PolicyRun).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].outcome, AuditOutcome::Failed);
    assert_eq!(failed[0].params["status"], 409);

    // A wrong key, named with its line.
    write_policies(
        &app.policy_dir,
        &[(
            "typo.toml",
            "version = 1\n\n[[policy]]\nname = \"short\"\nkepe_days = 30\n",
        )],
    );
    let body = app
        .start_run()
        .await
        .error(StatusCode::CONFLICT, "invalid_policies");
    assert!(message(&body).contains("typo.toml:5:"), "{body}");
    assert!(message(&body).contains("kepe_days"), "{body}");

    // A floor above keep_days, named by policy and both fields.
    write_policies(
        &app.policy_dir,
        &[(
            "floor.toml",
            "version = 1\n\n[[policy]]\nname = \"low\"\nkeep_days = 10\nmin_keep_days = 20\n",
        )],
    );
    let body = app
        .get("/api/v1/retention/policies", &admin)
        .await
        .error(StatusCode::CONFLICT, "invalid_policies");
    let said = message(&body);
    assert!(said.contains("floor.toml:"), "{body}");
    assert!(said.contains("\"low\""), "{body}");
    assert!(said.contains("min_keep_days"), "{body}");

    // Fixed: read again at the next request, no restart.
    write_policies(&app.policy_dir, &[("global.toml", SHORT_POLICY)]);
    app.get("/api/v1/retention/policies", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.counts().await, (6, 0));
}

/// First a long floor is applied; then a set without it is refused while
/// the March 2024 events are younger than that floor.
async fn lowering_an_applied_floor_is_refused(backend: Backend) {
    let long =
        "version = 1\n\n[[policy]]\nname = \"long\"\nkeep_days = 36500\nmin_keep_days = 36500\n";
    let app = App::new(backend, &[("global.toml", long)]).await;
    let admin = app.tokens.admin.clone();
    let first = app.start_run().await.expect(StatusCode::OK);
    assert_eq!(first["events_deleted"], 0, "{first}");

    write_policies(&app.policy_dir, &[("global.toml", SHORT_POLICY)]);
    let plan = app
        .get("/api/v1/retention/plan", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(plan["refused"], true, "{plan}");
    let lowered = plan["lowered_floors"].as_array().unwrap();
    assert!(!lowered.is_empty(), "{plan}");
    assert_eq!(lowered[0]["scope_key"], "*", "{plan}");
    assert_eq!(lowered[0]["old_days"], 36500, "{plan}");

    let body = app
        .start_run()
        .await
        .error(StatusCode::CONFLICT, "floor_lowered");
    let said = message(&body);
    assert!(said.contains("36500"), "{body}");
    assert!(said.contains("long"), "{body}");
    // Nothing deleted, every event still readable.
    assert_eq!(app.counts().await, (6, 0));
    for id in ["e3", "e4", "e5", "e6"] {
        app.get(&format!("/api/v1/events/{id}"), &app.tokens.officer_all)
            .await
            .expect(StatusCode::OK);
    }
    let runs = app
        .get("/api/v1/retention/runs", &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    // Audited as a failure.
    let records = app.audit(AuditAction::PolicyRun).await;
    let refused: Vec<&AuditRecord> = records
        .iter()
        .filter(|record| record.outcome == AuditOutcome::Failed)
        .collect();
    assert_eq!(refused.len(), 1, "{records:?}");
    assert_eq!(refused[0].params["status"], 409);
    assert_eq!(refused[0].actor, "token:admin");
}

/// docs/retention.md ("What a run does", 1.): a lowered floor is refused,
/// "audited as `policy_refused`" (the CLI does so); the API should too.
async fn a_refused_floor_is_audited_as_policy_refused(backend: Backend) {
    let long =
        "version = 1\n\n[[policy]]\nname = \"long\"\nkeep_days = 36500\nmin_keep_days = 36500\n";
    let app = App::new(backend, &[("global.toml", long)]).await;
    app.start_run().await.expect(StatusCode::OK);
    write_policies(&app.policy_dir, &[("global.toml", SHORT_POLICY)]);
    app.start_run()
        .await
        .error(StatusCode::CONFLICT, "floor_lowered");
    let refused = app.audit(AuditAction::PolicyRefused).await;
    assert_eq!(
        refused.len(),
        1,
        "a floor_lowered refusal over the API leaves no policy_refused record; policy_run records: {:?}",
        app.audit(AuditAction::PolicyRun).await
    );
}

async fn the_schedule_runs_retention_and_audits_it(backend: Backend) {
    let app = App::new(backend, &[("global.toml", SHORT_POLICY)]).await;
    let every_second = holdfast::config::parse_schedule("* * * * * *").unwrap();
    let task = Arc::clone(&app.service).start_schedule(every_second, app.access.audit.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let record = loop {
        let by_scheduler: Vec<AuditRecord> = app
            .audit(AuditAction::PolicyRun)
            .await
            .into_iter()
            .filter(|record| record.actor == "scheduler")
            .collect();
        if let Some(record) = by_scheduler.into_iter().next() {
            break record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled run within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    task.abort();
    assert_eq!(record.outcome, AuditOutcome::Ok, "{record:?}");
    let run_id = record.params["run_id"].as_i64().unwrap();
    let run = app.store.db().retention_run(run_id).await.unwrap().unwrap();
    assert_eq!(run.trigger, "schedule");
    assert_eq!(run.started_by, "scheduler");
    assert_eq!(run.status, "done");
    let (_, deleted) = app.counts().await;
    assert!(deleted > 0, "the scheduled run deleted the due events");
    assert_eq!(
        record.params["events_deleted"].as_i64().unwrap(),
        deleted,
        "{record:?}"
    );
}

async fn other_roles_are_refused_everywhere(backend: Backend) {
    let app = App::new(backend, &[("global.toml", SHORT_POLICY)]).await;
    let tokens = [
        ("token:legal-all", app.tokens.legal_all.clone()),
        ("token:officer", app.tokens.officer_all.clone()),
        ("token:auditor", app.tokens.auditor.clone()),
    ];
    for (_, token) in &tokens {
        for (method, path) in RETENTION_ROUTES {
            let body = app
                .send(method, path, token, None)
                .await
                .error(StatusCode::FORBIDDEN, "forbidden");
            assert!(
                message(&body).contains("ManagePolicies"),
                "{method} {path}: {body}"
            );
        }
    }
    // Without a token at all: 401.
    for (method, path) in RETENTION_ROUTES {
        let request = Request::builder()
            .method(*method)
            .uri(*path)
            .body(Body::empty())
            .unwrap();
        let response = app.router.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }
    // Nothing ran, and every refusal is in the trail.
    assert_eq!(app.counts().await, (6, 0));
    let mut denied = Vec::new();
    for action in [
        AuditAction::RetentionView,
        AuditAction::RetentionPlan,
        AuditAction::PolicyRun,
    ] {
        denied.extend(
            app.audit(action)
                .await
                .into_iter()
                .filter(|record| record.outcome == AuditOutcome::Denied),
        );
    }
    let by_token = |actor: &str| denied.iter().filter(|record| record.actor == actor).count();
    for (actor, _) in &tokens {
        assert_eq!(
            by_token(actor),
            RETENTION_ROUTES.len(),
            "{actor}: {denied:?}"
        );
    }
    assert_eq!(by_token("anonymous"), RETENTION_ROUTES.len(), "{denied:?}");
}

/// Two runs started together: `RetentionService::run` takes its lock with
/// `try_lock`, so while one runs the other is refused (`run_in_progress`).
/// Whether they overlap depends on timing, so each round stores a fresh
/// batch of old events (making a run take long enough) and asserts what
/// holds either way; a refusal must be seen within a few rounds.
async fn one_run_at_a_time(backend: Backend) {
    let app = App::new(backend, &[("global.toml", SHORT_POLICY)]).await;
    let mut deleted_total = 6;
    let mut refusals = 0;
    for round in 0..5 {
        let batch: Vec<Value> = (0..400)
            .map(|i| {
                ev(
                    &format!("r{round}-{i}"),
                    "post",
                    &format!("2024-0{}-{:02}T10:00:00Z", 4 + round % 5, 1 + i % 28),
                    &format!("T{}/c{}", i % 4, i % 5),
                    "mallory",
                    &format!("r{round}-p{i}"),
                    "a message in a batch",
                )
            })
            .collect();
        app.store.append(events(batch)).await.unwrap();
        let (one, two) = tokio::join!(
            send(
                &app.router,
                "POST",
                "/api/v1/retention/runs",
                &app.tokens.admin,
                None
            ),
            send(
                &app.router,
                "POST",
                "/api/v1/retention/runs",
                &app.tokens.admin,
                None
            ),
        );
        let mut deleted = 0;
        let mut ok = 0;
        for reply in [&one, &two] {
            if reply.status == StatusCode::OK {
                ok += 1;
                deleted += reply.json()["events_deleted"].as_u64().unwrap();
            } else {
                let body = reply.error(StatusCode::CONFLICT, "run_in_progress");
                assert!(message(&body).contains("in progress"), "{body}");
                refusals += 1;
            }
        }
        assert!(ok >= 1, "round {round}: {} / {}", one.text(), two.text());
        let expected = if round == 0 { 406 } else { 400 };
        assert_eq!(deleted, expected, "round {round}");
        deleted_total += 400;
        assert_eq!(app.counts().await, (0, deleted_total));
        if refusals > 0 {
            break;
        }
    }
    assert!(refusals > 0, "two runs started together never overlapped");
    // Refusals are audited as failed runs.
    let records = app.audit(AuditAction::PolicyRun).await;
    let failed: Vec<&AuditRecord> = records
        .iter()
        .filter(|record| record.outcome == AuditOutcome::Failed)
        .collect();
    assert_eq!(failed.len(), refusals, "{records:?}");
    assert!(failed.iter().all(|record| record.params["status"] == 409));
}

both_backends!(
    admin_plans_runs_and_reads_the_certificate,
    bad_requests_name_the_field,
    invalid_policy_files_refuse_the_whole_set,
    lowering_an_applied_floor_is_refused,
    a_refused_floor_is_audited_as_policy_refused,
    the_schedule_runs_retention_and_audits_it,
    other_roles_are_refused_everywhere,
    one_run_at_a_time,
);

// ------------------------------------------------------------------ CLI (SQLite)

/// The OS user the CLI runs as.
const ACTOR: &str = "retention-operator";

struct Cli {
    archive: TestArchive,
    policy_dir: PathBuf,
}

impl Cli {
    /// The CLI corpus stored and closed; "short" (30 days) for every team
    /// but `legal`, kept forever.
    async fn new() -> Cli {
        let archive = TestArchive::new(Backend::Sqlite).await;
        let store = archive.open().await;
        let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        store
            .append(events(vec![
                ev(
                    "c1",
                    "post",
                    "2024-03-01T10:00:00Z",
                    "A/general",
                    "alice",
                    "q1",
                    "merger plans aardvark",
                ),
                ev(
                    "c2",
                    "post",
                    "2024-03-01T11:00:00Z",
                    "A/general",
                    "bob",
                    "q2",
                    "lunch order zebra",
                ),
                ev(
                    "c3",
                    "post",
                    "2024-03-02T09:00:00Z",
                    "A/deals",
                    "carol",
                    "q3",
                    "pricing sheet okapi",
                ),
                ev(
                    "c4",
                    "post",
                    "2024-03-03T09:00:00Z",
                    "B/general",
                    "dave",
                    "q4",
                    "quarterly numbers narwhal",
                ),
                ev(
                    "c5",
                    "post",
                    "2024-03-03T10:00:00Z",
                    "legal/general",
                    "erin",
                    "q5",
                    "privileged memo walrus",
                ),
                ev(
                    "c6",
                    "post",
                    &yesterday,
                    "A/general",
                    "frank",
                    "q6",
                    "fresh news ibis",
                ),
            ]))
            .await
            .unwrap();
        store.close().await;
        let policy_dir = archive.dir.path().join("policies");
        write_policies(&policy_dir, &Cli::files());
        Cli {
            archive,
            policy_dir,
        }
    }

    fn files() -> [(&'static str, &'static str); 2] {
        [
            ("global.toml", SHORT_POLICY),
            (
                "teams.toml",
                "version = 1\n\n[[policy]]\nname = \"legal-forever\"\nteam = \"legal\"\n",
            ),
        ]
    }

    fn output(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = helpers::holdfast(self.archive.data_dir());
        command
            .args(args)
            .env("USER", ACTOR)
            .env("HOLDFAST_POLICY_DIR", &self.policy_dir);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    fn run(&self, args: &[&str], code: i32) -> (String, String) {
        self.run_env(args, &[], code)
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)], code: i32) -> (String, String) {
        let output = self.output(args, env);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(code),
            "holdfast {args:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
        );
        (stdout, stderr)
    }

    fn json(&self, args: &[&str]) -> Value {
        let (stdout, _) = self.run(args, 0);
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{args:?}: {error}: {stdout}"))
    }

    fn audit(&self, action: &str) -> Vec<Value> {
        let (stdout, _) = self.run(&["audit", "--action", action, "--json"], 0);
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_policies_plan_run_runs_show_get_stats_compact() {
    let cli = Cli::new().await;

    // The policies, as a table and as JSON.
    let (stdout, _) = cli.run(&["retention", "policies"], 0);
    assert!(stdout.contains("short"), "{stdout}");
    assert!(stdout.contains("30d"), "{stdout}");
    assert!(stdout.contains("legal-forever"), "{stdout}");
    assert!(stdout.contains("legal/*"), "{stdout}");
    assert!(stdout.contains("forever"), "{stdout}");
    let digest = digest_of(&Cli::files());
    assert!(stdout.contains(&format!("digest {digest}")), "{stdout}");
    let listed = cli.json(&["retention", "policies", "--json"]);
    assert_eq!(listed["digest"], digest);
    let names: Vec<&str> = listed["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|policy| policy["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["short", "legal-forever"]);

    // A dry run: c1..c4 are due; c5 (legal, forever) and c6 (yesterday) stay.
    let plan = cli.json(&["retention", "plan", "--json"]);
    assert_eq!(plan["events_to_delete"], 4, "{plan}");
    assert_eq!(plan["events_kept_by_holds"], 0, "{plan}");
    assert_eq!(plan["by_policy"][0]["policy"], "short", "{plan}");
    assert_eq!(
        channel_days(&plan["by_policy"][0]),
        BTreeSet::from([
            cd("A", "general", "2024-03-01", 2),
            cd("A", "deals", "2024-03-02", 1),
            cd("B", "general", "2024-03-03", 1),
        ]),
        "{plan}"
    );
    let forecast = cli.json(&["retention", "plan", "--as-of", "2024-04-01", "--json"]);
    assert_eq!(forecast["as_of"], "2024-04-01");
    assert_eq!(forecast["events_to_delete"], 2, "{forecast}");
    let (stdout, _) = cli.run(&["retention", "plan"], 0);
    assert!(stdout.contains("4 events would be deleted"), "{stdout}");
    assert_eq!(cli.audit("retention_plan").len(), 3);

    // The run.
    let (stdout, _) = cli.run(&["retention", "run"], 0);
    assert!(
        stdout.contains("retention run 1: deleted 4 events"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("certificate: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let (path, sha) = line.split_once(" (sha256 ").unwrap();
    let path = PathBuf::from(path);
    assert_eq!(
        path,
        cli.archive
            .data_dir()
            .join("certificates")
            .join("run-000001.json")
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(format!("{})", sha256_hex(&bytes)), sha);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = String::from_utf8(bytes).unwrap();
    for word in CORPUS_WORDS {
        assert!(!text.contains(word), "{word} in {text}");
    }
    let certificate: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(certificate["run_id"], 1);
    assert_eq!(certificate["events_deleted"], 4);
    assert_eq!(certificate["trigger"], "cli");
    assert_eq!(certificate["policies_digest"], digest);
    let records = cli.audit("policy_run");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        records[0]["params"]["certificate_sha256"],
        sha256_hex(text.as_bytes()),
        "{records:?}"
    );

    // Past runs and the certificate.
    let (stdout, _) = cli.run(&["retention", "runs", "--json"], 0);
    let runs: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "{stdout}");
    assert_eq!(runs[0]["run_id"], 1);
    assert_eq!(runs[0]["status"], "done");
    assert_eq!(runs[0]["trigger"], "cli");
    let (stdout, _) = cli.run(&["retention", "runs"], 0);
    assert!(stdout.contains("done"), "{stdout}");
    let shown = cli.json(&["retention", "show", "1"]);
    assert_eq!(shown, certificate);
    let (_, stderr) = cli.run(&["retention", "show", "999"], 2);
    assert!(stderr.contains("no retention run 999"), "{stderr}");

    // Deleted events say so; the others are still there.
    for id in ["c1", "c2", "c3", "c4"] {
        let output = cli.output(&["get", id], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "get {id}");
        assert!(
            stderr.contains(&format!(
                "event {id} was deleted by retention policy \"short\""
            )),
            "{stderr}"
        );
        assert!(stderr.contains("(run 1)"), "{stderr}");
    }
    let (stdout, _) = cli.run(&["get", "c5"], 0);
    assert!(stdout.contains("privileged memo walrus"), "{stdout}");
    let (stdout, _) = cli.run(&["get", "c6"], 0);
    assert!(stdout.contains("fresh news ibis"), "{stdout}");
    let stats = cli.json(&["stats", "--json"]);
    assert_eq!(stats["deleted_events"], 4, "{stats}");
    assert_eq!(stats["events"], 2, "{stats}");

    // Compaction on demand, audited; a second run deletes nothing.
    cli.run(&["retention", "compact"], 0);
    let compact = cli.json(&["retention", "compact", "--json"]);
    assert!(compact["records"].is_u64(), "{compact}");
    assert_eq!(cli.audit("retention_compact").len(), 2);
    let again = cli.json(&["retention", "run", "--no-compact", "--json"]);
    assert_eq!(again["run_id"], 2);
    assert_eq!(again["events_deleted"], 0);
    assert_eq!(again["compaction"], Value::Null, "{again}");
    cli.run(&["verify"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_refuses_invalid_policies_and_bad_flags() {
    let cli = Cli::new().await;
    write_policies(
        &cli.policy_dir,
        &[
            ("a.toml", SHORT_POLICY),
            (
                "b.toml",
                "version = 1\n\n[[policy]]\nname = \"eng\"\nteam = \"A\"\nkeep_days = \"ten\"\n",
            ),
        ],
    );
    let (_, stderr) = cli.run(&["retention", "policies"], 2);
    assert!(stderr.contains("b.toml:6:"), "{stderr}");
    assert!(stderr.contains("keep_days"), "{stderr}");
    // A run on part of the set is refused too, and deletes nothing.
    let (_, stderr) = cli.run(&["retention", "run"], 2);
    assert!(stderr.contains("b.toml:6:"), "{stderr}");
    let (_, stderr) = cli.run(&["retention", "plan"], 2);
    assert!(stderr.contains("b.toml:6:"), "{stderr}");
    let stats = cli.json(&["stats", "--json"]);
    assert_eq!(stats["deleted_events"], 0, "{stats}");
    assert_eq!(stats["events"], 6, "{stats}");

    // A missing directory is an error, naming it.
    let (_, stderr) = cli.run_env(
        &["retention", "policies"],
        &[("HOLDFAST_POLICY_DIR", "/nonexistent/holdfast-policies")],
        2,
    );
    assert!(
        stderr.contains("/nonexistent/holdfast-policies"),
        "{stderr}"
    );

    for bad in ["nonsense", "2026-13-45"] {
        let (_, stderr) = cli.run(&["retention", "plan", "--as-of", bad], 2);
        assert!(stderr.contains("--as-of"), "{stderr}");
        assert!(stderr.contains(bad), "{stderr}");
    }
    let (_, stderr) = cli.run(&["retention", "show", "one"], 2);
    assert!(stderr.contains("RUN") || stderr.contains("run"), "{stderr}");
}

#[test]
fn cli_config_checks_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let output = helpers::holdfast(&data_dir)
        .arg("config")
        .env("HOLDFAST_RETENTION_SCHEDULE", "not a cron")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("retention.schedule"), "{stderr}");
    assert!(stderr.contains("not a cron"), "{stderr}");

    let policies = dir.path().join("policies");
    let output = helpers::holdfast(&data_dir)
        .arg("config")
        .env("HOLDFAST_RETENTION_SCHEDULE", "0 0 3 * * *")
        .env("HOLDFAST_POLICY_DIR", &policies)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("[retention]"), "{stdout}");
    assert!(stdout.contains("schedule = \"0 0 3 * * *\""), "{stdout}");
    assert!(stdout.contains(&policies.display().to_string()), "{stdout}");
    assert!(stdout.contains("compact = true"), "{stdout}");

    // Unset: on demand only, and nothing is ever deleted.
    let output = helpers::holdfast(&data_dir).arg("config").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains("# schedule: not set"), "{stdout}");
    assert!(stdout.contains("# policy_dir: not set"), "{stdout}");
}
