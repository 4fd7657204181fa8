//! Who may see what, proved through the router (`oneshot`) on both metadata
//! backends: every route of `ENDPOINTS` refuses missing, wrong and
//! unentitled tokens; officers scoped to a team or a channel see nothing
//! outside it on any endpoint that returns message data, whether their
//! token is an API token or a session from the local directory or a real
//! LDAP server; sessions (failures, rate limit, disabled users, logout,
//! the bootstrap admin's one-time password, the directory going down);
//! and the audit trail: a record for every request, filters, CSV, a chain
//! that verifies, and no answer when the trail cannot be written.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;
mod slapd;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use helpers::{TestArchive, connect_db, raw_sql};
use holdfast::api::{Access, AccessState, ENDPOINTS};
use holdfast::audit::{AuditAction, AuditFilter, AuditOutcome, AuditRecord, CSV_HEADER};
use holdfast::auth::Capability;
use holdfast::auth::{
    AuthConfig, Bootstrap, LocalDirectory, NewApiToken, NewUser, Role, ensure_bootstrap_admin,
};
use holdfast::db::Backend;
use holdfast::export::job::Exporter;
use holdfast::export::service::ExportService;
use holdfast::export::sign::Signer;
use holdfast::index::{Follower, FollowerHandle, SearchIndex};
use holdfast::search::{ChannelRef, Scope};
use http_body_util::BodyExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use slapd::{Slapd, SlapdOptions};
use tower::ServiceExt;

/// The configured ingest credential (`HOLDFAST_INGEST_TOKEN`).
const INGEST_TOKEN: &str = "access-test-ingest-token-5be0d2";
/// The address every request comes from (the audit trail's `client`).
const CLIENT: [u8; 4] = [192, 0, 2, 10];
/// Words that only team B's events contain: no answer to anyone scoped to
/// team A may contain them.
const B_MARKERS: [&str; 2] = ["zanzibar", "quetzal"];
/// A word only the events of channel A/general contain.
const A_GENERAL_MARKER: &str = "aardvark";
/// A word only team C's event contains.
const C_MARKER: &str = "sentinel";

const A_EVENTS: [&str; 4] = ["e-a1", "e-a2", "e-a-shared", "e-a3"];
const B_EVENTS: [&str; 7] = [
    "e-b1",
    "e-b2",
    "e-b-shared",
    "e-b-shared-edit",
    "e-b-react",
    "e-b3",
    "e-b4",
];

// ------------------------------------------------------------------ corpus

fn message(id: &str, post: &str, team: &str, channel: &str, user: &str, minute: u32) -> Value {
    json!({
        "id": id, "kind": "post", "at": format!("2024-03-04T10:{minute:02}:00Z"),
        "team": team, "channel": channel, "user": user, "post": post,
    })
}

fn post(id: &str, post: &str, team_channel: (&str, &str), minute: u32, text: &str) -> Value {
    let (team, channel) = team_channel;
    let user = if team == "B" { "b-zanzibar" } else { "allen-p" };
    let mut value = message(id, post, team, channel, user, minute);
    value["text"] = json!(text);
    value
}

/// Teams A and B share words, a channel name (`deals`) and a post id
/// (`shared`); B's posts repeat the query word and score best; B edits and
/// reacts to its `shared` and replies to A's `pa1`; team C holds one event
/// that is posted last, so that its being searchable means all are.
fn corpus() -> Vec<Value> {
    let a_general = ("A", "general");
    let a_deals = ("A", "deals");
    let b_general = ("B", "general");
    let b_deals = ("B", "deals");
    let mut b_edit = message("e-b-shared-edit", "shared", "B", "general", "b-zanzibar", 4);
    b_edit["kind"] = json!("edit");
    b_edit["text"] = json!("merger merger merger zanzibar edited quetzal");
    let mut b_reaction = message("e-b-react", "shared", "B", "general", "b-zanzibar", 5);
    b_reaction["kind"] = json!("reaction_add");
    b_reaction["emoji"] = json!("thumbsup");
    let mut b_reply = post("e-b3", "pb3", b_general, 6, "merger reply zanzibar quetzal");
    b_reply["parent"] = json!("pa1");
    vec![
        post(
            "e-a1",
            "pa1",
            a_general,
            0,
            "the merger is approved aardvark",
        ),
        post(
            "e-a2",
            "pa2",
            a_general,
            1,
            "merger timeline aardvark review",
        ),
        post(
            "e-a-shared",
            "shared",
            a_general,
            2,
            "shared notes on the merger aardvark",
        ),
        post("e-a3", "pa3", a_deals, 3, "merger pricing wombat"),
        post(
            "e-b1",
            "pb1",
            b_general,
            0,
            "merger merger merger zanzibar quetzal merger",
        ),
        post(
            "e-b2",
            "pb2",
            b_general,
            1,
            "merger merger zanzibar merger pricing",
        ),
        post(
            "e-b-shared",
            "shared",
            b_general,
            2,
            "merger merger zanzibar shared quetzal",
        ),
        b_edit,
        b_reaction,
        b_reply,
        post("e-b4", "pb4", b_deals, 7, "merger wombat zanzibar deals"),
        post("e-c1", "pc1", ("C", "zone"), 10, "indexed sentinel"),
    ]
}

// ------------------------------------------------------------------ harness

/// A response, fully read.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
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

    fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        self.json()
    }

    /// Asserts the stable error shape with this status and code.
    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty()),
            "{body}"
        );
    }

    /// Asserts that none of `words` appears anywhere in the raw body.
    fn assert_lacks(&self, words: &[&str], context: &str) {
        let text = self.text().to_lowercase();
        for word in words {
            assert!(
                !text.contains(word),
                "{context}: the answer contains {word:?}: {text}"
            );
        }
    }
}

fn request(method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(body) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let mut request = builder.body(body).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((CLIENT, 40_000))));
    request
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// API tokens of every kind, created with the library.
struct Tokens {
    /// An ingest API token (`holdfast token create --role ingest`).
    ingest: String,
    /// A compliance officer who sees everything.
    officer_all: String,
    /// A compliance officer scoped to team A.
    officer_a: String,
    /// A compliance officer scoped to channel A/deals.
    officer_a_deals: String,
    auditor: String,
    admin: String,
}

/// An archive with the corpus ingested and indexed, its search index
/// follower, and the API over it.
struct App {
    router: Router,
    access: Arc<AccessState>,
    tokens: Tokens,
    follower: Option<FollowerHandle>,
    /// Kept last so that everything above is dropped before the archive.
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
    assert!(token.expose_secret().starts_with("hft_"));
    token.expose_secret().to_owned()
}

impl App {
    /// With the default `[auth]` section (local directory).
    async fn new(backend: Backend) -> App {
        App::with_auth(backend, AuthConfig::default()).await
    }

    async fn with_auth(backend: Backend, auth: AuthConfig) -> App {
        let archive = TestArchive::new(backend).await;
        let store = archive.open().await;
        let index =
            Arc::new(SearchIndex::open_or_create(&archive.dir.path().join("index")).unwrap());
        let follower =
            Follower::start(store.clone(), Arc::clone(&index), Duration::from_millis(50));
        let access = AccessState::open(
            &store,
            &auth,
            Some(holdfast::api::auth::TokenHash::of(&SecretString::from(
                INGEST_TOKEN.to_owned(),
            ))),
        )
        .await
        .unwrap();
        let tokens = Tokens {
            ingest: api_token(&access, "chat-connector", Role::Ingest, Scope::Nothing).await,
            officer_all: api_token(&access, "officer-all", Role::ComplianceOfficer, Scope::All)
                .await,
            officer_a: api_token(
                &access,
                "officer-a",
                Role::ComplianceOfficer,
                Scope::teams(["A"]),
            )
            .await,
            officer_a_deals: api_token(
                &access,
                "officer-a-deals",
                Role::ComplianceOfficer,
                Scope::channels([ChannelRef::new("A", "deals")]),
            )
            .await,
            auditor: api_token(&access, "auditor", Role::Auditor, Scope::Nothing).await,
            admin: api_token(&access, "admin-robot", Role::Admin, Scope::Nothing).await,
        };
        // Exports as `holdfast serve` runs them.
        let exports = Arc::new(ExportService::new(
            Exporter {
                store: store.clone(),
                index: Arc::clone(&index),
                signer: Arc::new(Signer::ed25519_in(archive.data_dir()).unwrap()),
                exports_dir: archive.data_dir().join("exports"),
                template_dir: None,
            },
            access.audit.clone(),
            Vec::new(),
        ));
        let state = holdfast::api::AppState::new(store, access, 16 * 1024 * 1024)
            .with_index(index)
            .with_exports(exports);
        let access = Arc::clone(&state.access);
        let app = App {
            router: holdfast::api::router(state),
            access,
            tokens,
            follower: Some(follower),
            archive,
        };
        let events = corpus();
        let body: String = events.iter().map(|event| format!("{event}\n")).collect();
        let reply = app
            .send(
                Request::post("/api/v1/events")
                    .header(header::AUTHORIZATION, format!("Bearer {INGEST_TOKEN}"))
                    .header(header::CONTENT_TYPE, "application/x-ndjson")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .ok();
        assert_eq!(reply["accepted"], events.len(), "{reply}");
        assert_eq!(reply["rejected"], json!([]), "{reply}");
        app.wait_until_indexed().await;
        app
    }

    fn data_dir(&self) -> &Path {
        self.archive.data_dir()
    }

    fn users_file(&self) -> PathBuf {
        self.data_dir().join("users.toml")
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>) -> Reply {
        self.send(request(method, path, token, None)).await
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token)).await
    }

    async fn search(&self, query: &str, extra: &str, token: &str) -> Reply {
        self.get(&format!("/api/v1/search?q={}{extra}", encode(query)), token)
            .await
    }

    /// The last event of the corpus is searchable (the follower indexes in
    /// store order), or 10 s passed.
    async fn wait_until_indexed(&self) {
        let started = Instant::now();
        loop {
            let reply = self.search(C_MARKER, "", &self.tokens.officer_all).await;
            if reply.ok()["total"] == 1 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the corpus was not searchable within 10 s: {}",
                reply.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn login(&self, username: &str, password: &str) -> Reply {
        self.send(request(
            "POST",
            "/api/v1/login",
            None,
            Some(&json!({"username": username, "password": password})),
        ))
        .await
    }

    /// Signs in; the session token.
    async fn session(&self, username: &str, password: &str) -> String {
        let reply = self.login(username, password).await;
        let body = reply.ok();
        let token = body["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("hfs_"), "{body}");
        assert_eq!(
            reply
                .headers
                .get(header::CACHE_CONTROL)
                .map(|value| value.to_str().unwrap()),
            Some("no-store")
        );
        token
    }

    /// The audit records matching `filter` (oldest first).
    async fn audit(&self, filter: AuditFilter) -> Vec<AuditRecord> {
        self.access
            .audit
            .query(&AuditFilter {
                limit: Some(holdfast::audit::MAX_QUERY_LIMIT),
                ..filter
            })
            .await
            .unwrap()
    }

    /// The last `seq` of the trail.
    async fn audit_seq(&self) -> u64 {
        self.access.audit.head().await.unwrap().seq
    }

    /// The records appended after `seq`.
    async fn audit_since(&self, seq: u64) -> Vec<AuditRecord> {
        self.audit(AuditFilter {
            cursor: Some(seq),
            ..AuditFilter::default()
        })
        .await
    }

    /// Sends `request` to `endpoint` and checks its audit trace: exactly
    /// one record by `actor` with the endpoint's action and the outcome of
    /// the status when the endpoint is audited, none when it is not.
    async fn audited(
        &self,
        endpoint: &holdfast::api::Endpoint,
        request: Request<Body>,
        actor: &str,
    ) -> Reply {
        let before = self.audit_seq().await;
        let reply = self.send(request).await;
        let records = self.audit_since(before).await;
        let what = format!("{} {}: {}", endpoint.method, endpoint.path, reply.text());
        let Some(action) = endpoint.action else {
            assert_eq!(records, Vec::new(), "{what}");
            return reply;
        };
        assert_eq!(records.len(), 1, "{what}: {records:?}");
        let record = &records[0];
        assert_eq!(record.action, action, "{what}");
        assert_eq!(record.actor, actor, "{what}");
        assert_eq!(record.client.as_deref(), Some("192.0.2.10"), "{what}");
        assert_eq!(record.params["status"], reply.status.as_u16(), "{what}");
        let expected = if reply.status.is_success() {
            AuditOutcome::Ok
        } else if matches!(
            reply.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            AuditOutcome::Denied
        } else if reply.status.is_client_error() {
            AuditOutcome::Failed
        } else {
            AuditOutcome::Error
        };
        assert_eq!(record.outcome, expected, "{what}");
        reply
    }

    /// Adds users to the local directory's file.
    fn add_local_users(&self, users: &[(&str, &str, &[&str])]) {
        let directory = LocalDirectory::new(self.users_file());
        directory
            .modify(|file| {
                for (username, password, groups) in users {
                    file.add_user(
                        NewUser {
                            username: (*username).to_owned(),
                            display_name: None,
                            email: None,
                            groups: groups.iter().map(|group| (*group).to_owned()).collect(),
                        },
                        &SecretString::from((*password).to_owned()),
                    )?;
                }
                Ok(())
            })
            .unwrap();
    }

    async fn finish(mut self) {
        if let Some(follower) = self.follower.take() {
            follower.stop().await;
        }
    }
}

fn auth_config(text: &str) -> AuthConfig {
    toml::from_str(text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

/// An endpoint's path with real values for its parameters (an export id
/// of the right form, which names no export).
fn real_path(path: &str) -> String {
    if path.starts_with("/api/v1/exports/") {
        return path.replace("{id}", "exp-000001");
    }
    path.replace("{id}", "e-a1").replace("{post}", "pa1")
}

/// The export routes. Exports return message data: compliance officers
/// and legal staff export within their scope, admins the whole archive;
/// auditors and ingest credentials may not.
const EXPORT_ROUTES: [(&str, &str); 5] = [
    ("POST", "/api/v1/exports"),
    ("GET", "/api/v1/exports"),
    ("GET", "/api/v1/exports/{id}"),
    ("POST", "/api/v1/exports/{id}/cancel"),
    ("GET", "/api/v1/exports/{id}/download"),
];

/// Who may use the export routes, role by role.
const EXPORT_ROLES: [(Role, bool); 5] = [
    (Role::Admin, true),
    (Role::ComplianceOfficer, true),
    (Role::Legal, true),
    (Role::Auditor, false),
    (Role::Ingest, false),
];

// ------------------------------------------------------------------ scope checks

/// The ids of the hits of a search answer.
fn hit_ids(body: &Value) -> BTreeSet<String> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["id"].as_str().unwrap().to_owned())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

/// Every team of the hits and of the events in `body` (any depth).
fn teams_in(body: &Value, teams: &mut BTreeSet<String>) {
    match body {
        Value::Object(map) => {
            if let Some(Value::String(team)) = map.get("team") {
                teams.insert(team.clone());
            }
            for value in map.values() {
                teams_in(value, teams);
            }
        }
        Value::Array(values) => {
            for value in values {
                teams_in(value, teams);
            }
        }
        _ => {}
    }
}

fn assert_only_team(body: &Value, team: &str, context: &str) {
    let mut teams = BTreeSet::new();
    teams_in(body, &mut teams);
    assert!(
        teams.iter().all(|seen| seen == team),
        "{context}: teams {teams:?} in {body}"
    );
}

/// `token` belongs to someone who sees team A and nothing else: the four
/// message endpoints answer A's data, 404 for B's and C's, and no answer
/// carries a word of B's.
async fn assert_sees_team_a_only(app: &App, token: &str, who: &str) {
    let mut forbidden: Vec<&str> = B_MARKERS.to_vec();
    forbidden.push(C_MARKER);
    for id in A_EVENTS {
        let reply = app.get(&format!("/api/v1/events/{id}"), token).await;
        let body = reply.ok();
        assert_eq!(body["event"]["team"], "A", "{who}: {body}");
        reply.assert_lacks(&forbidden, who);
    }
    for id in B_EVENTS.iter().chain(&["e-c1"]) {
        let reply = app.get(&format!("/api/v1/events/{id}"), token).await;
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
        reply.assert_lacks(&forbidden, who);
    }

    // A post id used by both teams: only A's version, none of B's edit,
    // reaction or text.
    let reply = app.get("/api/v1/posts/shared", token).await;
    let body = reply.ok();
    reply.assert_lacks(&forbidden, &format!("{who}: post shared"));
    assert_eq!(body["team"], "A", "{body}");
    assert_eq!(body["channel"], "general", "{body}");
    assert_eq!(body["edited"], false, "{body}");
    assert_eq!(body["reactions"], json!([]), "{body}");
    assert_eq!(body["versions"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["events"].as_array().unwrap().len(), 1, "{body}");
    assert_only_team(&body, "A", who);
    for post in ["pa1", "pa2", "pa3"] {
        let reply = app.get(&format!("/api/v1/posts/{post}"), token).await;
        assert_only_team(&reply.ok(), "A", who);
        reply.assert_lacks(&forbidden, who);
    }
    for post in ["pb1", "pb2", "pb3", "pb4", "pc1"] {
        let reply = app.get(&format!("/api/v1/posts/{post}"), token).await;
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
        reply.assert_lacks(&forbidden, who);
    }

    // Context: B's reply to A's pa1 is not in its thread, B's version of
    // `shared` not among its versions.
    for post in ["pa1", "pa2", "pa3", "shared"] {
        let reply = app
            .get(
                &format!("/api/v1/posts/{post}/context?before=20&after=20"),
                token,
            )
            .await;
        let body = reply.ok();
        reply.assert_lacks(&forbidden, &format!("{who}: context of {post}"));
        assert_only_team(&body, "A", who);
        assert_eq!(body["post"]["team"], "A", "{body}");
        if post == "pa1" {
            let thread = hit_ids(&json!({"hits": body["thread"]}));
            assert!(!thread.contains("e-b3"), "{who}: {body}");
        }
        if post == "shared" {
            assert_eq!(body["post"]["id"], "e-a-shared", "{body}");
            assert_eq!(body["versions"].as_array().unwrap().len(), 1, "{body}");
        }
    }
    for post in ["pb1", "pb3", "pb4", "pc1"] {
        let reply = app
            .get(&format!("/api/v1/posts/{post}/context"), token)
            .await;
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
        reply.assert_lacks(&forbidden, who);
    }

    // Search: B's posts score best for "merger" and are not there; totals
    // count A only, in every sort, version mode and page size.
    for extra in [
        "",
        "&sort=relevance",
        "&sort=oldest",
        "&versions=all",
        "&sort=relevance&versions=all",
    ] {
        let reply = app.search("merger", extra, token).await;
        let body = reply.ok();
        reply.assert_lacks(&forbidden, &format!("{who}: search merger{extra}"));
        assert_eq!(body["total"], 4, "{who} {extra}: {body}");
        assert_eq!(hit_ids(&body), set(&A_EVENTS), "{who} {extra}: {body}");
        assert_only_team(&body, "A", who);
    }
    let reply = app.search("merger", "&sort=relevance&limit=1", token).await;
    let body = reply.ok();
    reply.assert_lacks(&forbidden, who);
    assert_eq!(body["total"], 4, "{body}");
    assert_eq!(body["hits"][0]["team"], "A", "{body}");
    // Post-level facts of the shared post id come from A's events only:
    // B edited and reacted to its own `shared`.
    let reply = app.search("shared", "&versions=all", token).await;
    let body = reply.ok();
    assert_eq!(hit_ids(&body), set(&["e-a-shared"]), "{who}: {body}");
    let hit = &body["hits"][0];
    assert_eq!(hit["edited"], false, "{who}: {hit}");
    assert_eq!(hit["deleted"], false, "{who}: {hit}");
    assert_eq!(hit["versions"], 1, "{who}: {hit}");
    assert_eq!(hit["reactions"], json!([]), "{who}: {hit}");
    // B's reply to A's pa1 is not in pa1's thread.
    let reply = app.search("thread:pa1", "&versions=all", token).await;
    assert_eq!(hit_ids(&reply.ok()), set(&["e-a1"]), "{who}");
    reply.assert_lacks(&forbidden, who);
    // Paging by cursor visits A's hits once each and nothing else.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut extra = "&sort=relevance&limit=1".to_owned();
        if let Some(cursor) = &cursor {
            extra.push_str(&format!("&cursor={}", encode(cursor)));
        }
        let reply = app.search("merger", &extra, token).await;
        let body = reply.ok();
        reply.assert_lacks(&forbidden, &format!("{who}: page {}", seen.len()));
        assert_eq!(body["total"], 4, "{body}");
        seen.extend(hit_ids(&body));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(seen.len() <= 4, "{who}: paging does not end: {seen:?}");
    }
    seen.sort();
    assert_eq!(
        seen,
        set(&A_EVENTS).into_iter().collect::<Vec<_>>(),
        "{who}"
    );
    // A cursor from someone who sees everything opens nothing of B.
    let everything = app
        .search("merger", "&sort=relevance&limit=1", &app.tokens.officer_all)
        .await
        .ok();
    let foreign_cursor = everything["next_cursor"].as_str().unwrap();
    let reply = app
        .search(
            "merger",
            &format!("&sort=relevance&limit=2&cursor={}", encode(foreign_cursor)),
            token,
        )
        .await;
    reply.assert_lacks(&forbidden, &format!("{who}: a foreign cursor"));
    if reply.status == StatusCode::OK {
        assert_only_team(&reply.json(), "A", who);
    } else {
        reply.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    let reply = app.search("pricing", "", token).await;
    assert_eq!(hit_ids(&reply.ok()), set(&["e-a3"]), "{who}");
    reply.assert_lacks(&forbidden, who);
    let reply = app.search("deals", "", token).await;
    assert_eq!(reply.ok()["total"], 0, "{who}: {}", reply.text());
    // Asking for B by name, or for its words, finds nothing (the query
    // itself is echoed, so only the hits are checked for the words).
    for query in [
        "team:B merger",
        "zanzibar",
        "quetzal OR zanzibar",
        "from:b-zanzibar",
        "sentinel",
        "team:C",
        "is:edited",
        "has:reaction",
        "emoji:thumbsup",
        "is:edited merger",
        "thread:pb1",
    ] {
        let reply = app.search(query, "&versions=all", token).await;
        let body = reply.ok();
        assert_eq!(body["total"], 0, "{who} {query:?}: {body}");
        assert_eq!(body["hits"], json!([]), "{who} {query:?}: {body}");
        assert!(body.get("next_cursor").is_none(), "{body}");
    }
}

/// `token` belongs to someone who sees channel A/deals only (not B/deals,
/// not A/general).
async fn assert_sees_a_deals_only(app: &App, token: &str, who: &str) {
    let mut forbidden: Vec<&str> = B_MARKERS.to_vec();
    forbidden.extend([A_GENERAL_MARKER, C_MARKER]);
    let reply = app.get("/api/v1/events/e-a3", token).await;
    assert_eq!(reply.ok()["event"]["channel"], "deals", "{who}");
    for id in ["e-a1", "e-a2", "e-a-shared", "e-b4", "e-b1", "e-c1"] {
        let reply = app.get(&format!("/api/v1/events/{id}"), token).await;
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
        reply.assert_lacks(&forbidden, who);
    }
    let reply = app.get("/api/v1/posts/pa3", token).await;
    assert_eq!(reply.ok()["channel"], "deals", "{who}");
    reply.assert_lacks(&forbidden, who);
    let reply = app
        .get("/api/v1/posts/pa3/context?before=20&after=20", token)
        .await;
    let body = reply.ok();
    reply.assert_lacks(&forbidden, &format!("{who}: context of pa3"));
    assert_only_team(&body, "A", who);
    for post in ["pa1", "shared", "pb4", "pb1"] {
        let reply = app.get(&format!("/api/v1/posts/{post}"), token).await;
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
        reply.assert_lacks(&forbidden, who);
        let reply = app
            .get(&format!("/api/v1/posts/{post}/context"), token)
            .await;
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
        reply.assert_lacks(&forbidden, who);
    }
    for (query, expected) in [("merger", 1), ("wombat", 1), ("aardvark", 0)] {
        for extra in ["", "&sort=relevance&versions=all"] {
            let reply = app.search(query, extra, token).await;
            let body = reply.ok();
            assert_eq!(body["total"], expected, "{who} {query}{extra}: {body}");
            let ids = hit_ids(&body);
            assert!(ids.iter().all(|id| id == "e-a3"), "{who}: {body}");
            if query != "aardvark" {
                reply.assert_lacks(&forbidden, who);
            }
        }
    }
}

/// `token` may read no message data at all: 403 on all four endpoints,
/// with nothing of the archive in the answer.
async fn assert_reads_nothing(app: &App, token: &str, who: &str) {
    let mut forbidden: Vec<&str> = B_MARKERS.to_vec();
    forbidden.extend([A_GENERAL_MARKER, C_MARKER, "merger", "wombat"]);
    for path in [
        "/api/v1/events/e-a1",
        "/api/v1/events/e-b1",
        "/api/v1/posts/pa1",
        "/api/v1/posts/shared",
        "/api/v1/posts/pa1/context",
        "/api/v1/posts/pb1/context",
        "/api/v1/search?q=aardvark",
        "/api/v1/search?q=sentinel",
    ] {
        let reply = app.get(path, token).await;
        reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
        reply.assert_lacks(&forbidden, &format!("{who}: {path}"));
    }
}

// ------------------------------------------------------------------ 1. the router

/// What `token` of a role must get from an endpoint requiring `access`:
/// refused (403) or let through (anything else but 401).
fn entitled(role: Role, access: Access) -> bool {
    match access {
        Access::Public | Access::Authenticated => true,
        Access::Requires(capability) => role.has(capability),
    }
}

async fn every_protected_route_refuses_missing_wrong_and_unentitled_tokens(backend: Backend) {
    let app = App::new(backend).await;
    let protected: Vec<_> = ENDPOINTS
        .iter()
        .filter(|endpoint| endpoint.access != Access::Public)
        .collect();
    assert!(protected.len() >= 8, "{protected:?}");
    let session_lookalike = "hfs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let api_lookalike = "hft_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for endpoint in &protected {
        let path = real_path(endpoint.path);
        let what = format!("{} {path}", endpoint.method);

        // No token, a malformed header, wrong tokens of every shape.
        let mut refusals = vec![
            app.audited(
                endpoint,
                request(endpoint.method, &path, None, None),
                "anonymous",
            )
            .await,
        ];
        for token in [
            "wrong-token",
            session_lookalike,
            api_lookalike,
            &INGEST_TOKEN[1..],
        ] {
            refusals.push(
                app.audited(
                    endpoint,
                    request(endpoint.method, &path, Some(token), None),
                    "anonymous",
                )
                .await,
            );
        }
        let mut basic = request(endpoint.method, &path, None, None);
        basic.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Basic {INGEST_TOKEN}").parse().unwrap(),
        );
        refusals.push(app.audited(endpoint, basic, "anonymous").await);
        for reply in &refusals {
            reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(
                reply
                    .headers
                    .get(header::WWW_AUTHENTICATE)
                    .map(|value| value.to_str().unwrap()),
                Some("Bearer"),
                "{what}"
            );
        }

        // The ingest credentials (configured and API token), an auditor and
        // an admin (and, on the export routes, a scoped officer): refused
        // exactly where their role lacks the capability.
        let mut callers = vec![
            (Role::Ingest, "ingest-token", INGEST_TOKEN),
            (
                Role::Ingest,
                "token:chat-connector",
                app.tokens.ingest.as_str(),
            ),
            (Role::Auditor, "token:auditor", app.tokens.auditor.as_str()),
            (Role::Admin, "token:admin-robot", app.tokens.admin.as_str()),
        ];
        if EXPORT_ROUTES.contains(&(endpoint.method, endpoint.path)) {
            callers.push((
                Role::ComplianceOfficer,
                "token:officer-a",
                app.tokens.officer_a.as_str(),
            ));
        }
        for (role, actor, token) in callers {
            let body = (endpoint.path == "/api/v1/events")
                .then(|| holdfast_event(&format!("walk-{role}-{}", token.len())));
            let reply = app
                .audited(
                    endpoint,
                    request(endpoint.method, &path, Some(token), body.as_ref()),
                    actor,
                )
                .await;
            if entitled(role, endpoint.access) {
                assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{what} {role}");
                assert_ne!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{what} {role}: {}",
                    reply.text()
                );
            } else {
                reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
            }
            reply.assert_lacks(&["merger", A_GENERAL_MARKER], &what);
        }
    }

    // What the ingest token may do is exactly posting events (and the
    // endpoints any valid token may use).
    let ingest_allowed: Vec<String> = protected
        .iter()
        .filter(|endpoint| matches!(endpoint.access, Access::Requires(_)))
        .filter(|endpoint| entitled(Role::Ingest, endpoint.access))
        .map(|endpoint| format!("{} {}", endpoint.method, endpoint.path))
        .collect();
    assert_eq!(ingest_allowed, vec!["POST /api/v1/events"]);
    // Every endpoint returning message data requires a scoped capability,
    // which neither the auditor nor the admin nor ingest holds.
    for path in [
        "/api/v1/events/{id}",
        "/api/v1/posts/{post}",
        "/api/v1/posts/{post}/context",
        "/api/v1/search",
    ] {
        let endpoint = ENDPOINTS
            .iter()
            .find(|endpoint| endpoint.path == path)
            .unwrap();
        let Access::Requires(capability) = endpoint.access else {
            panic!("{path} must require a capability");
        };
        assert!(capability.is_scoped(), "{path}: {capability:?}");
        for role in [Role::Auditor, Role::Admin, Role::Ingest] {
            assert!(!entitled(role, endpoint.access), "{role} on {path}");
        }
    }
    // Exports return message data too, but an admin exports the whole
    // archive (for an auditor or a court): every export route requires the
    // export capability, which admins, officers and legal staff hold and
    // auditors and ingest credentials do not.
    let export_routes: BTreeSet<(&str, &str)> = ENDPOINTS
        .iter()
        .filter(|endpoint| endpoint.path.starts_with("/api/v1/exports"))
        .map(|endpoint| (endpoint.method, endpoint.path))
        .collect();
    assert_eq!(export_routes, BTreeSet::from(EXPORT_ROUTES));
    assert!(Capability::ExportMessages.is_scoped());
    for (method, path) in EXPORT_ROUTES {
        let endpoint = ENDPOINTS
            .iter()
            .find(|endpoint| endpoint.method == method && endpoint.path == path)
            .unwrap();
        assert_eq!(
            endpoint.access,
            Access::Requires(Capability::ExportMessages),
            "{method} {path}"
        );
        assert!(endpoint.action.is_some(), "{method} {path} is not audited");
        for (role, may) in EXPORT_ROLES {
            assert_eq!(
                entitled(role, endpoint.access),
                may,
                "{role} on {method} {path}"
            );
        }
    }
    for (role, token) in [
        ("ingest", INGEST_TOKEN),
        ("ingest API token", app.tokens.ingest.as_str()),
        ("auditor", app.tokens.auditor.as_str()),
        ("admin", app.tokens.admin.as_str()),
    ] {
        assert_reads_nothing(&app, token, role).await;
    }
    app.finish().await;
}

/// One valid event of team A (not in the corpus), as an ingest body.
fn holdfast_event(id: &str) -> Value {
    json!({"id": id, "kind": "post", "at": "2024-03-05T08:00:00Z", "team": "A",
           "channel": "intake", "user": "connector", "post": format!("{id}-p"),
           "text": "connector check"})
}

async fn the_router_answers_exactly_the_endpoints_table(backend: Backend) {
    let app = App::new(backend).await;
    let table: BTreeSet<(String, String)> = ENDPOINTS
        .iter()
        .map(|endpoint| (endpoint.method.to_owned(), endpoint.path.to_owned()))
        .collect();
    assert_eq!(table.len(), ENDPOINTS.len(), "a route appears twice");
    let paths: BTreeSet<&str> = ENDPOINTS.iter().map(|endpoint| endpoint.path).collect();
    for path in &paths {
        let get_route = ENDPOINTS
            .iter()
            .find(|endpoint| endpoint.method == "GET" && endpoint.path == *path);
        // HEAD is answered by the GET route (axum does so): behind the same
        // guard, audited like a GET.
        let reply = app.call("HEAD", &real_path(path), None).await;
        match get_route {
            Some(endpoint) if endpoint.access == Access::Public => {
                assert_eq!(reply.status, StatusCode::OK, "HEAD {path}");
            }
            Some(endpoint) => {
                assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "HEAD {path}");
                let before = app.audit_seq().await;
                let reply = app
                    .call("HEAD", &real_path(path), Some(&app.tokens.officer_all))
                    .await;
                assert!(reply.body.is_empty(), "HEAD {path}: {}", reply.text());
                let records = app.audit_since(before).await;
                assert_eq!(
                    records.len(),
                    usize::from(endpoint.action.is_some()),
                    "HEAD {path}: {records:?}"
                );
            }
            None => assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "HEAD {path}"),
        }
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let reply = app
                .call(method, &real_path(path), Some(&app.tokens.admin))
                .await;
            if table.contains(&(method.to_owned(), (*path).to_owned())) {
                // The route exists: whatever it answers, it is not "no route"
                // (a 404 naming a missing hold or event is the route's own).
                if reply.status == StatusCode::NOT_FOUND {
                    let message = reply.json()["error"]["message"].clone();
                    assert!(
                        !message.as_str().unwrap_or("route").starts_with("route "),
                        "{method} {path}: {message}"
                    );
                }
                assert_ne!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
            } else {
                reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            }
        }
    }
    for path in [
        "/",
        "/api",
        "/api/v1",
        "/api/v1/",
        "/api/v1/events/e-a1/raw",
        "/api/v1/posts/pa1/context/more",
        "/api/v1/exports/exp-000001/manifest",
        "/api/v1/exports/exp-000001/download/zip",
        "/api/v1/holds/1/events",
        "/api/v1/users",
        "/api/v1/tokens",
        "/api/v1/audit/verify",
        "/api/v1/me/tokens",
        "/api/v2/search",
        "/admin",
        "/metrics/extra",
    ] {
        for token in [None, Some(app.tokens.admin.as_str())] {
            let reply = app.call("GET", path, token).await;
            reply.assert_error(StatusCode::NOT_FOUND, "not_found");
            let reply = app.call("POST", path, token).await;
            reply.assert_error(StatusCode::NOT_FOUND, "not_found");
        }
    }
    app.finish().await;
}

// ------------------------------------------------------------------ 2. API tokens

async fn api_tokens_scoped_to_team_a_see_nothing_of_team_b(backend: Backend) {
    let app = App::new(backend).await;
    // The corpus is there: the unscoped officer sees B's best hits first.
    let reply = app
        .search("merger", "&sort=relevance", &app.tokens.officer_all)
        .await;
    let body = reply.ok();
    assert_eq!(body["hits"][0]["team"], "B", "{body}");
    assert!(body["total"].as_u64().unwrap() > 4, "{body}");
    let reply = app
        .get("/api/v1/events/e-b1", &app.tokens.officer_all)
        .await;
    assert_eq!(reply.ok()["event"]["team"], "B");

    assert_sees_team_a_only(&app, &app.tokens.officer_a, "officer scoped to team A").await;
    assert_sees_a_deals_only(
        &app,
        &app.tokens.officer_a_deals,
        "officer scoped to A/deals",
    )
    .await;
    assert_reads_nothing(&app, INGEST_TOKEN, "configured ingest token").await;
    assert_reads_nothing(&app, &app.tokens.ingest, "ingest API token").await;

    // `me` of an API token shows its grant.
    let me = app.get("/api/v1/me", &app.tokens.officer_a).await.ok();
    assert_eq!(me["via"], "api_token", "{me}");
    assert_eq!(me["grants"][0]["role"], "compliance_officer", "{me}");
    assert!(me["search_scope"].as_str().unwrap().contains('A'), "{me}");
    app.finish().await;
}

// ------------------------------------------------------------------ 3. directories

const LOCAL_AUTH: &str = r#"
[[groups]]
group = "admins"
role = "admin"

[[groups]]
group = "officers-a"
role = "compliance_officer"
teams = ["A"]

[[groups]]
group = "deals-desk"
role = "compliance_officer"
channels = ["A/deals"]

[[groups]]
group = "auditors"
role = "auditor"

[[groups]]
group = "ingesters"
role = "ingest"

[rate_limit]
max_failures_per_user = 3
max_failures_per_ip = 1000
lockout_secs = 600
max_lockout_secs = 600
"#;

const OFFICER_PASSWORD: &str = "Officer-A-Password-2024";

async fn local_directory_sign_in_carries_group_scopes(backend: Backend) {
    let app = App::with_auth(backend, auth_config(LOCAL_AUTH)).await;
    app.add_local_users(&[
        ("officer-a", OFFICER_PASSWORD, &["officers-a"]),
        ("deals-officer", "Deals-Desk-Password-1", &["deals-desk"]),
        (
            "two-hats",
            "Two-Hats-Password-22",
            &["deals-desk", "auditors"],
        ),
        ("connector", "Connector-Password-7", &["ingesters"]),
    ]);

    let officer = app.session("officer-a", OFFICER_PASSWORD).await;
    let me = app.get("/api/v1/me", &officer).await.ok();
    assert_eq!(me["username"], "officer-a", "{me}");
    assert_eq!(me["via"], "local", "{me}");
    assert_eq!(
        me["grants"],
        json!([{"role": "compliance_officer", "scope": "team A"}]),
        "{me}"
    );
    assert_eq!(me["must_change_password"], false, "{me}");
    assert_sees_team_a_only(&app, &officer, "local officer of team A").await;

    let deals = app.session("deals-officer", "Deals-Desk-Password-1").await;
    assert_sees_a_deals_only(&app, &deals, "local officer of A/deals").await;

    // Two groups: the union of their grants (officer of A/deals, auditor).
    let two_hats = app.session("two-hats", "Two-Hats-Password-22").await;
    let me = app.get("/api/v1/me", &two_hats).await.ok();
    let roles: BTreeSet<&str> = me["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|grant| grant["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, BTreeSet::from(["auditor", "compliance_officer"]));
    assert_sees_a_deals_only(&app, &two_hats, "local officer of A/deals and auditor").await;
    app.get("/api/v1/audit?limit=5", &two_hats).await.ok();

    let connector = app.session("connector", "Connector-Password-7").await;
    assert_reads_nothing(&app, &connector, "local ingest user").await;
    app.finish().await;
}

const EXAMPLE_PEOPLE: &str = "ou=people,dc=example,dc=com";

/// The example directory plus `dasovich-j`, alone in a group `deals-desk`.
fn example_directory() -> Slapd {
    let mut options = SlapdOptions::new("dc=example,dc=com");
    options
        .ldif
        .push(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap/example.ldif"));
    let server = Slapd::start(&options);
    server.modify(
        "dn: uid=dasovich-j,ou=people,dc=example,dc=com\n\
         changetype: add\n\
         objectClass: inetOrgPerson\n\
         uid: dasovich-j\n\
         cn: Jeff Dasovich\n\
         sn: Dasovich\n\
         mail: jeff.dasovich@enron.com\n\
         userPassword: Deals-Desk-Directory-4\n\
         \n\
         dn: cn=deals-desk,ou=groups,dc=example,dc=com\n\
         changetype: add\n\
         objectClass: groupOfNames\n\
         cn: deals-desk\n\
         member: uid=dasovich-j,ou=people,dc=example,dc=com\n",
    );
    server
}

fn ldap_auth(server: &Slapd) -> AuthConfig {
    let password_file = server.dir().join("bind-password");
    std::fs::write(&password_file, "svc-bind-Secret-42\n").unwrap();
    auth_config(&format!(
        r#"
directory = "ldap"

[ldap]
url = "{url}"
allow_plaintext = true
bind_dn = "cn=holdfast,ou=services,dc=example,dc=com"
bind_password_file = "{password_file}"
user_base_dn = "{EXAMPLE_PEOPLE}"
disabled_filter = "(employeeType=disabled)"
connect_timeout_ms = 1000
operation_timeout_ms = 2000

[[groups]]
group = "cn=compliance,ou=groups,dc=example,dc=com"
role = "compliance_officer"
teams = ["A"]

[[groups]]
group = "cn=deals-desk,ou=groups,dc=example,dc=com"
role = "compliance_officer"
channels = ["A/deals"]

[[groups]]
group = "cn=legal-hold,ou=groups,dc=example,dc=com"
role = "legal"
channels = ["B/deals"]

[[groups]]
group = "cn=auditors,ou=groups,dc=example,dc=com"
role = "auditor"

[rate_limit]
max_failures_per_user = 3
max_failures_per_ip = 1000
"#,
        url = server.url(),
        password_file = password_file.display(),
    ))
}

async fn ldap_sign_in_carries_group_scopes(backend: Backend) {
    let mut server = example_directory();
    let app = App::with_auth(backend, ldap_auth(&server)).await;

    let allen = app.session("allen-p", "Gas-Desk-Houston-2001").await;
    let me = app.get("/api/v1/me", &allen).await.ok();
    assert_eq!(me["username"], "allen-p", "{me}");
    assert_eq!(me["via"], "ldap", "{me}");
    assert_eq!(me["email"], "philip.allen@enron.com", "{me}");
    assert_eq!(
        me["grants"],
        json!([{"role": "compliance_officer", "scope": "team A"}]),
        "{me}"
    );
    assert_sees_team_a_only(&app, &allen, "LDAP officer of team A").await;

    let dasovich = app.session("dasovich-j", "Deals-Desk-Directory-4").await;
    assert_sees_a_deals_only(&app, &dasovich, "LDAP officer of A/deals").await;

    // In two groups (compliance: team A; legal-hold: channel B/deals):
    // the union, and still nothing else of B.
    let arnold = app.session("arnold-j", "Nat-Gas-Futures-99").await;
    let me = app.get("/api/v1/me", &arnold).await.ok();
    assert_eq!(
        me["grants"],
        json!([
            {"role": "compliance_officer", "scope": "team A"},
            {"role": "legal", "scope": "channel B/deals"},
        ]),
        "{me}"
    );
    let body = app.search("merger", "&sort=relevance", &arnold).await.ok();
    assert_eq!(body["total"], 5, "{body}");
    let mut expected = set(&A_EVENTS);
    expected.insert("e-b4".to_owned());
    assert_eq!(hit_ids(&body), expected, "{body}");
    let body = app.search("zanzibar OR quetzal", "", &arnold).await.ok();
    assert_eq!(hit_ids(&body), set(&["e-b4"]), "{body}");
    app.get("/api/v1/events/e-b4", &arnold).await.ok();
    app.get("/api/v1/posts/pb4", &arnold).await.ok();
    for id in ["e-b1", "e-b-shared", "e-c1"] {
        app.get(&format!("/api/v1/events/{id}"), &arnold)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    let reply = app.get("/api/v1/posts/shared", &arnold).await;
    assert_only_team(&reply.ok(), "A", "arnold-j");
    reply.assert_lacks(&B_MARKERS, "arnold-j: post shared");
    // LDAP passwords are changed in the directory, not here.
    app.send(request(
        "POST",
        "/api/v1/me/password",
        Some(&arnold),
        Some(&json!({"current_password": "Nat-Gas-Futures-99",
                     "new_password": "Another-Password-123"})),
    ))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request");

    let auditor = app.session("buy-r", "Risk-Audit-Trail-3").await;
    assert_reads_nothing(&app, &auditor, "LDAP auditor").await;
    app.get("/api/v1/audit?limit=5", &auditor).await.ok();

    // Wrong password, injection, a disabled account, groups that map to
    // nothing (bass-e's group is only nested in compliance).
    app.login("allen-p", "gas-desk-houston-2001")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.login("*)(uid=*", "Gas-Desk-Houston-2001")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.login("hain-m", "In-House-Lawyer-8")
        .await
        .assert_error(StatusCode::FORBIDDEN, "account_disabled");
    let reply = app.login("bass-e", "*)(uid=*\\ok").await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(!reply.text().contains("hfs_"), "{}", reply.text());
    let refused = app
        .audit(AuditFilter {
            actor: Some("bass-e".to_owned()),
            action: Some(AuditAction::LoginFailed),
            ..AuditFilter::default()
        })
        .await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].outcome, AuditOutcome::Denied);

    // The directory goes down: a clear 503, audited; nothing opened.
    server.stop();
    let before = app.audit_seq().await;
    let reply = app.login("allen-p", "Gas-Desk-Houston-2001").await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "directory_unavailable");
    assert!(!reply.text().contains("hfs_"));
    let records = app.audit_since(before).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].action, AuditAction::LoginFailed);
    assert_eq!(records[0].actor, "allen-p");
    assert_eq!(records[0].outcome, AuditOutcome::Error);
    // A directory that cannot answer is no failed password: no lockout.
    for _ in 0..4 {
        app.login("allen-p", "Gas-Desk-Houston-2001")
            .await
            .assert_error(StatusCode::SERVICE_UNAVAILABLE, "directory_unavailable");
    }
    app.finish().await;
}

// ------------------------------------------------------------------ 4. sessions

async fn sessions_failures_rate_limit_disabled_and_logout(backend: Backend) {
    let app = App::with_auth(backend, auth_config(LOCAL_AUTH)).await;
    app.add_local_users(&[
        ("officer-a", OFFICER_PASSWORD, &["officers-a"]),
        ("guesser-target", "Guesser-Target-Pass-9", &["officers-a"]),
        ("gone-fishing", "Gone-Fishing-Password-3", &["officers-a"]),
        ("lunch-only", "Lunch-Club-Password-55", &["lunch-club"]),
    ]);
    LocalDirectory::new(app.users_file())
        .modify(|file| file.disable("gone-fishing"))
        .unwrap();

    // A session: hfs_ token, grants, expiry.
    let reply = app.login("officer-a", OFFICER_PASSWORD).await;
    let body = reply.ok();
    assert!(
        body["token"].as_str().unwrap().starts_with("hfs_"),
        "{body}"
    );
    assert_eq!(body["username"], "officer-a");
    assert_eq!(body["must_change_password"], false);
    assert_eq!(
        body["grants"],
        json!([{"role": "compliance_officer", "scope": "team A"}])
    );
    assert!(body["expires_at"].as_str().is_some(), "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let me = app.get("/api/v1/me", &token).await.ok();
    assert_eq!(me["grants"], body["grants"], "{me}");
    assert!(me["session_expires_at"].as_str().is_some(), "{me}");
    let login = app
        .audit(AuditFilter {
            actor: Some("officer-a".to_owned()),
            action: Some(AuditAction::Login),
            ..AuditFilter::default()
        })
        .await;
    assert_eq!(login.len(), 1, "{login:?}");
    assert_eq!(login[0].role.as_deref(), Some("compliance_officer"));
    assert_eq!(login[0].client.as_deref(), Some("192.0.2.10"));
    assert_eq!(login[0].params["via"], "local");

    // Wrong password, unknown user: the same 401, each audited.
    let before = app.audit_seq().await;
    for (username, password) in [
        ("officer-a", "Officer-A-Password-2025"),
        ("nobody-at-all", OFFICER_PASSWORD),
        ("officer-a", ""),
    ] {
        let reply = app.login(username, password).await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert!(!reply.text().contains("hfs_"));
    }
    let failed = app.audit_since(before).await;
    assert_eq!(failed.len(), 3, "{failed:?}");
    for (record, actor) in failed
        .iter()
        .zip(["officer-a", "nobody-at-all", "officer-a"])
    {
        assert_eq!(record.action, AuditAction::LoginFailed);
        assert_eq!(record.actor, actor);
        assert_eq!(record.outcome, AuditOutcome::Denied);
        assert_eq!(record.client.as_deref(), Some("192.0.2.10"));
        assert!(
            !record.params_json.contains("Officer-A-Password"),
            "{record:?}"
        );
    }
    // The session opened before still works; its holder's success cleared
    // the count (two failures so far).
    app.session("officer-a", OFFICER_PASSWORD).await;

    // Repeated failures: 429 with Retry-After, even with the right
    // password, audited as denied.
    for _ in 0..3 {
        app.login("guesser-target", "not-the-password-at-all")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let before = app.audit_seq().await;
    for password in ["not-the-password-at-all", "Guesser-Target-Pass-9"] {
        let reply = app.login("guesser-target", password).await;
        reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let retry_after: u64 = reply
            .headers
            .get(header::RETRY_AFTER)
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=600).contains(&retry_after), "{retry_after}");
        assert!(!reply.text().contains("hfs_"));
    }
    let limited = app.audit_since(before).await;
    assert_eq!(limited.len(), 2, "{limited:?}");
    assert!(limited.iter().all(|record| {
        record.action == AuditAction::LoginFailed
            && record.outcome == AuditOutcome::Denied
            && record.detail.as_deref() == Some("rate limited")
    }));

    // A disabled user: 403 after the right password only.
    app.login("gone-fishing", "Gone-Fishing-Password-3")
        .await
        .assert_error(StatusCode::FORBIDDEN, "account_disabled");
    app.login("gone-fishing", "wrong-password-for-it")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    // A deleted user: the same 401 as a wrong password.
    LocalDirectory::new(app.users_file())
        .modify(|file| file.remove_user("gone-fishing"))
        .unwrap();
    app.login("gone-fishing", "Gone-Fishing-Password-3")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    // Groups that map to nothing: 403, no session.
    let reply = app.login("lunch-only", "Lunch-Club-Password-55").await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(!reply.text().contains("hfs_"));
    // Malformed bodies are 400s, audited.
    let before = app.audit_seq().await;
    app.send(request(
        "POST",
        "/api/v1/login",
        None,
        Some(&json!({"user": "officer-a"})),
    ))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(app.audit_since(before).await.len(), 1);

    // Logout: the token is dead at once; a second logout is a 401.
    let reply = app.call("POST", "/api/v1/logout", Some(&token)).await;
    assert_eq!(reply.ok()["signed_out"], true);
    for path in [
        "/api/v1/me",
        "/api/v1/search?q=merger",
        "/api/v1/events/e-a1",
    ] {
        app.get(path, &token)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    app.call("POST", "/api/v1/logout", Some(&token))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // API tokens cannot sign out (they are revoked with the CLI).
    app.call("POST", "/api/v1/logout", Some(&app.tokens.officer_a))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    app.finish().await;
}

async fn bootstrap_admin_must_change_the_one_time_password_first(backend: Backend) {
    let app = App::with_auth(backend, auth_config(LOCAL_AUTH)).await;
    let Bootstrap::CreatedWithGeneratedPassword(one_time) =
        ensure_bootstrap_admin(&app.users_file(), None).unwrap()
    else {
        panic!("an empty users file gets a generated admin password");
    };
    let one_time = one_time.expose_secret().to_owned();
    let reply = app.login("admin", &one_time).await;
    let body = reply.ok();
    assert_eq!(body["must_change_password"], true, "{body}");
    let first = body["token"].as_str().unwrap().to_owned();
    assert!(first.starts_with("hfs_"));
    let second = app.session("admin", &one_time).await;

    let me = app.get("/api/v1/me", &first).await.ok();
    assert_eq!(me["must_change_password"], true, "{me}");
    assert_eq!(me["grants"][0]["role"], "admin", "{me}");
    let reply = app.get("/api/v1/audit", &first).await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(
        reply.text().contains("/api/v1/me/password"),
        "{}",
        reply.text()
    );

    // A wrong current password changes nothing.
    let change = |current: &str, new: &str| {
        request(
            "POST",
            "/api/v1/me/password",
            Some(&first),
            Some(&json!({"current_password": current, "new_password": new})),
        )
    };
    let reply = app
        .send(change("not-the-one-time-password", "Admin-New-Password-77"))
        .await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let reply = app.send(change(&one_time, "Admin-New-Password-77")).await;
    let body = reply.ok();
    assert_eq!(body["changed"], true, "{body}");
    assert_eq!(body["sessions_ended"], 2, "{body}");
    let changes = app
        .audit(AuditFilter {
            actor: Some("admin".to_owned()),
            action: Some(AuditAction::UserChange),
            ..AuditFilter::default()
        })
        .await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0].outcome, AuditOutcome::Denied);
    assert_eq!(changes[1].outcome, AuditOutcome::Ok);
    assert!(!changes[1].params_json.contains("Admin-New-Password"));

    for old in [&first, &second] {
        app.get("/api/v1/me", old)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    app.login("admin", &one_time)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let reply = app.login("admin", "Admin-New-Password-77").await;
    let body = reply.ok();
    assert_eq!(body["must_change_password"], false, "{body}");
    let token = body["token"].as_str().unwrap();
    app.get("/api/v1/audit?limit=3", token).await.ok();
    // The admin reads the trail but no message data.
    assert_reads_nothing(&app, token, "bootstrap admin").await;
    app.finish().await;
}

/// Guessing the current password through a stolen session is limited like
/// signing in: after the limit, even the right one gets 429.
async fn password_changes_are_rate_limited_like_sign_in(backend: Backend) {
    let app = App::with_auth(backend, auth_config(LOCAL_AUTH)).await;
    app.add_local_users(&[("officer-a", OFFICER_PASSWORD, &["officers-a"])]);
    let session = app.session("officer-a", OFFICER_PASSWORD).await;
    let change = |current: &str| {
        request(
            "POST",
            "/api/v1/me/password",
            Some(&session),
            Some(&json!({"current_password": current, "new_password": "Another-Password-2025"})),
        )
    };
    for guess in ["guess-one", "guess-two", "guess-three"] {
        app.send(change(guess))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let reply = app.send(change(OFFICER_PASSWORD)).await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(
        reply.headers.contains_key(header::RETRY_AFTER),
        "{:?}",
        reply.headers
    );
    // The limit is per user: signing in is refused too until the lockout ends.
    app.login("officer-a", OFFICER_PASSWORD)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    app.finish().await;
}

// ------------------------------------------------------------------ 5. audit

async fn every_request_is_audited_and_the_trail_filters_exports_and_verifies(backend: Backend) {
    let app = App::with_auth(backend, auth_config(LOCAL_AUTH)).await;
    app.add_local_users(&[("officer-a", OFFICER_PASSWORD, &["officers-a"])]);
    let officer = app.session("officer-a", OFFICER_PASSWORD).await;

    // Each request leaves exactly one record, with who, role, client,
    // action, outcome and what was asked.
    struct Case<'a> {
        method: &'a str,
        path: &'a str,
        token: Option<&'a str>,
        actor: &'a str,
        role: Option<&'a str>,
        action: AuditAction,
        outcome: AuditOutcome,
    }
    let officer_a = app.tokens.officer_a.as_str();
    let cases = [
        Case {
            method: "GET",
            path: "/api/v1/search?q=MERGER%20%20pricing&sort=relevance",
            token: Some(&officer),
            actor: "officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::Search,
            outcome: AuditOutcome::Ok,
        },
        Case {
            method: "GET",
            path: "/api/v1/search?q=merger",
            token: Some(officer_a),
            actor: "token:officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::Search,
            outcome: AuditOutcome::Ok,
        },
        Case {
            method: "GET",
            path: "/api/v1/search?q=merger%20AND",
            token: Some(officer_a),
            actor: "token:officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::Search,
            outcome: AuditOutcome::Failed,
        },
        Case {
            method: "GET",
            path: "/api/v1/events/e-a1",
            token: Some(&officer),
            actor: "officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::ViewEvent,
            outcome: AuditOutcome::Ok,
        },
        Case {
            method: "GET",
            path: "/api/v1/events/e-b1",
            token: Some(&officer),
            actor: "officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::ViewEvent,
            outcome: AuditOutcome::Failed,
        },
        Case {
            method: "GET",
            path: "/api/v1/posts/shared",
            token: Some(officer_a),
            actor: "token:officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::ViewPost,
            outcome: AuditOutcome::Ok,
        },
        Case {
            method: "GET",
            path: "/api/v1/posts/pa1/context",
            token: Some(officer_a),
            actor: "token:officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::ViewContext,
            outcome: AuditOutcome::Ok,
        },
        Case {
            method: "GET",
            path: "/api/v1/search?q=merger",
            token: Some(&app.tokens.auditor),
            actor: "token:auditor",
            role: Some("auditor"),
            action: AuditAction::Search,
            outcome: AuditOutcome::Denied,
        },
        Case {
            method: "GET",
            path: "/api/v1/audit",
            token: Some(officer_a),
            actor: "token:officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::AuditRead,
            outcome: AuditOutcome::Denied,
        },
        Case {
            method: "GET",
            path: "/api/v1/events/e-a1",
            token: None,
            actor: "anonymous",
            role: None,
            action: AuditAction::ViewEvent,
            outcome: AuditOutcome::Denied,
        },
        Case {
            method: "GET",
            path: "/api/v1/search?q=merger",
            token: Some("hfs_not-a-session"),
            actor: "anonymous",
            role: None,
            action: AuditAction::Search,
            outcome: AuditOutcome::Denied,
        },
        Case {
            method: "POST",
            path: "/api/v1/events",
            token: Some(officer_a),
            actor: "token:officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::Ingest,
            outcome: AuditOutcome::Denied,
        },
        Case {
            method: "GET",
            path: "/api/v1/exports",
            token: Some(&officer),
            actor: "officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::ExportView,
            outcome: AuditOutcome::Ok,
        },
        Case {
            method: "POST",
            path: "/api/v1/exports",
            token: Some(&app.tokens.auditor),
            actor: "token:auditor",
            role: Some("auditor"),
            action: AuditAction::ExportCreate,
            outcome: AuditOutcome::Denied,
        },
        Case {
            method: "GET",
            path: "/api/v1/exports/exp-000001/download",
            token: Some(&officer),
            actor: "officer-a",
            role: Some("compliance_officer"),
            action: AuditAction::ExportDownload,
            outcome: AuditOutcome::Failed,
        },
        Case {
            method: "GET",
            path: "/api/v1/audit?action=search",
            token: Some(&app.tokens.auditor),
            actor: "token:auditor",
            role: Some("auditor"),
            action: AuditAction::AuditRead,
            outcome: AuditOutcome::Ok,
        },
    ];
    for case in &cases {
        let before = app.audit_seq().await;
        let reply = app.call(case.method, case.path, case.token).await;
        let records = app.audit_since(before).await;
        let what = format!("{} {}: {}", case.method, case.path, reply.text());
        assert_eq!(records.len(), 1, "{what}: {records:?}");
        let record = &records[0];
        assert_eq!(record.actor, case.actor, "{what}");
        assert_eq!(record.role.as_deref(), case.role, "{what}");
        assert_eq!(record.client.as_deref(), Some("192.0.2.10"), "{what}");
        assert_eq!(record.action, case.action, "{what}");
        assert_eq!(record.outcome, case.outcome, "{what}");
        assert_eq!(record.params["status"], reply.status.as_u16(), "{what}");
        assert_eq!(
            record.params["path"],
            case.path.split('?').next().unwrap(),
            "{what}"
        );
        if case.action == AuditAction::Search && case.outcome == AuditOutcome::Ok {
            // The canonical query and the hit count the caller saw.
            let body = reply.json();
            assert_eq!(record.params["query"], body["query"], "{what}");
            assert_eq!(record.params["total"], body["total"], "{what}");
            assert_eq!(
                record.params["hits"],
                body["hits"].as_array().unwrap().len(),
                "{what}"
            );
        }
        if case.path == "/api/v1/events/e-a1" && case.outcome == AuditOutcome::Ok {
            assert_eq!(record.params["event"], "e-a1", "{what}");
        }
        // No message text in the trail.
        assert!(!record.params_json.contains(A_GENERAL_MARKER), "{record:?}");
    }
    // Not audited: who-am-I, health, metrics.
    let before = app.audit_seq().await;
    app.get("/api/v1/me", &officer).await.ok();
    app.call("GET", "/healthz", None).await;
    app.call("GET", "/metrics", None).await;
    assert_eq!(app.audit_seq().await, before);

    // Filters through the API: by user and action.
    let searches_of_officer = app
        .audit(AuditFilter {
            actor: Some("officer-a".to_owned()),
            action: Some(AuditAction::Search),
            ..AuditFilter::default()
        })
        .await;
    assert_eq!(searches_of_officer.len(), 1);
    let reply = app
        .get(
            "/api/v1/audit?user=officer-a&action=search&order=oldest",
            &app.tokens.auditor,
        )
        .await;
    let body = reply.ok();
    let records = body["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{body}");
    assert_eq!(records[0]["actor"], "officer-a");
    assert_eq!(records[0]["action"], "search");
    assert_eq!(records[0]["role"], "compliance_officer");
    assert_eq!(records[0]["client"], "192.0.2.10");
    assert_eq!(
        records[0]["params"]["query"],
        searches_of_officer[0].params["query"]
    );
    let reply = app
        .get(
            "/api/v1/audit?user=token:officer-a&action=search&limit=500",
            &app.tokens.admin,
        )
        .await;
    let body = reply.ok();
    let outcomes: Vec<&str> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| {
            assert_eq!(record["actor"], "token:officer-a");
            assert_eq!(record["action"], "search");
            record["outcome"].as_str().unwrap()
        })
        .collect();
    // Newest first: the failed query, then the good one.
    assert_eq!(outcomes, vec!["failed", "ok"], "{body}");
    let reply = app
        .get("/api/v1/audit?action=login_failed", &app.tokens.auditor)
        .await;
    assert_eq!(reply.ok()["records"], json!([]));
    app.get("/api/v1/audit?action=peek", &app.tokens.auditor)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");

    // CSV: parses, has the header, one row per matching record.
    let reply = app
        .get(
            "/api/v1/audit?format=csv&user=token:officer-a&order=oldest",
            &app.tokens.auditor,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let mut csv_reader = csv::Reader::from_reader(reply.body.as_ref());
    let headers: Vec<String> = csv_reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(headers, CSV_HEADER.to_vec());
    let rows: Vec<csv::StringRecord> = csv_reader.records().map(Result::unwrap).collect();
    let expected = app
        .audit(AuditFilter {
            actor: Some("token:officer-a".to_owned()),
            ..AuditFilter::default()
        })
        .await;
    // Searches (2), a post, a context, an audit read and an ingest refused.
    assert_eq!(expected.len(), 6, "{expected:?}");
    assert_eq!(rows.len(), expected.len());
    let actor_column = headers.iter().position(|name| name == "actor").unwrap();
    let action_column = headers.iter().position(|name| name == "action").unwrap();
    for (row, record) in rows.iter().zip(&expected) {
        assert_eq!(&row[actor_column], "token:officer-a");
        assert_eq!(&row[action_column], record.action.as_str());
    }
    let exports = app
        .audit(AuditFilter {
            actor: Some("token:auditor".to_owned()),
            action: Some(AuditAction::AuditRead),
            newest_first: true,
            ..AuditFilter::default()
        })
        .await;
    assert_eq!(exports[0].params["export"], "csv", "{:?}", exports[0]);

    // The whole trail verifies.
    let verification = app
        .access
        .audit
        .verify(&holdfast::audit::VerifyOptions::default())
        .await
        .unwrap();
    assert!(verification.is_ok(), "{verification:?}");
    assert_eq!(verification.count, app.audit_seq().await);
    let key =
        holdfast::audit::AuditKey::load(&app.data_dir().join(holdfast::audit::AUDIT_KEY_FILE))
            .unwrap();
    let db = connect_db(&app.archive).await;
    let verification =
        holdfast::audit::verify(&db, &key, &holdfast::audit::VerifyOptions::default())
            .await
            .unwrap();
    assert!(verification.is_ok(), "{verification:?}");
    app.finish().await;
}

async fn no_answer_leaves_without_its_audit_record(backend: Backend) {
    let app = App::with_auth(backend, auth_config(LOCAL_AUTH)).await;
    app.add_local_users(&[("officer-a", OFFICER_PASSWORD, &["officers-a"])]);
    let officer = app.session("officer-a", OFFICER_PASSWORD).await;
    // Before: both answer.
    app.search("aardvark", "", &officer).await.ok();
    app.get("/api/v1/events/e-a1", &officer).await.ok();

    let db = connect_db(&app.archive).await;
    raw_sql(&db, "ALTER TABLE audit_log RENAME TO audit_log_gone")
        .await
        .unwrap();
    let message_words = [A_GENERAL_MARKER, "merger", "approved", "e-a1\"", "pa1"];
    for (path, token) in [
        ("/api/v1/search?q=aardvark", officer.as_str()),
        ("/api/v1/search?q=merger", app.tokens.officer_all.as_str()),
        ("/api/v1/events/e-a1", officer.as_str()),
        ("/api/v1/posts/pa1", app.tokens.officer_a.as_str()),
        ("/api/v1/posts/pa1/context", app.tokens.officer_a.as_str()),
        ("/api/v1/audit", app.tokens.auditor.as_str()),
        ("/api/v1/exports", officer.as_str()),
    ] {
        let reply = app.get(path, token).await;
        reply.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "audit_unavailable");
        reply.assert_lacks(&message_words, path);
    }
    // Refusals are not answered either without their record.
    app.call("GET", "/api/v1/events/e-a1", None)
        .await
        .assert_error(StatusCode::INTERNAL_SERVER_ERROR, "audit_unavailable");
    // A login whose record cannot be written hands out no session.
    let reply = app.login("officer-a", OFFICER_PASSWORD).await;
    reply.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "audit_unavailable");
    assert!(!reply.text().contains("hfs_"), "{}", reply.text());
    // Ingest gets no acknowledgement either.
    let reply = app
        .send(request(
            "POST",
            "/api/v1/events",
            Some(INGEST_TOKEN),
            Some(&holdfast_event("unaudited-1")),
        ))
        .await;
    reply.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "audit_unavailable");

    // With the table back, the trail still verifies and answers resume.
    raw_sql(&db, "ALTER TABLE audit_log_gone RENAME TO audit_log")
        .await
        .unwrap();
    app.search("aardvark", "", &officer).await.ok();
    let verification = app
        .access
        .audit
        .verify(&holdfast::audit::VerifyOptions::default())
        .await
        .unwrap();
    assert!(verification.is_ok(), "{verification:?}");
    app.finish().await;
}

both_backends!(
    every_protected_route_refuses_missing_wrong_and_unentitled_tokens,
    the_router_answers_exactly_the_endpoints_table,
    api_tokens_scoped_to_team_a_see_nothing_of_team_b,
    local_directory_sign_in_carries_group_scopes,
    ldap_sign_in_carries_group_scopes,
    sessions_failures_rate_limit_disabled_and_logout,
    bootstrap_admin_must_change_the_one_time_password_first,
    password_changes_are_rate_limited_like_sign_in,
    every_request_is_audited_and_the_trail_filters_exports_and_verifies,
    no_answer_leaves_without_its_audit_record,
);
