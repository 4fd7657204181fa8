//! Exports over the HTTP API, through the router (`oneshot`), on both
//! metadata backends: a compliance officer scoped to team `legal` starts an
//! export, watches it finish, reads its manifest and downloads a zip that
//! verifies with the installation's public key and holds nothing of team
//! `trading`; legal staff export within their scope, an admin the whole
//! archive, auditors and ingest credentials are refused; every bad request
//! is refused naming its field; a running export is cancelled; each caller
//! lists their own exports, an admin all of them; and every call, with the
//! background job's end, is in the audit trail.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use helpers::TestArchive;
use holdfast::api::AccessState;
use holdfast::audit::{AuditAction, AuditFilter, AuditOutcome, AuditRecord, MAX_QUERY_LIMIT};
use holdfast::auth::{AuthConfig, NewApiToken, Role};
use holdfast::db::Backend;
use holdfast::event::Event;
use holdfast::export::job::Exporter;
use holdfast::export::manifest::verify_package;
use holdfast::export::service::ExportService;
use holdfast::export::sign::{PUBLIC_KEY_FILE, Signer, TrustedKey};
use holdfast::generate::{EventGenerator, GenerateOptions};
use holdfast::index::SearchIndex;
use holdfast::search::Scope;
use holdfast::store::Store;
use http_body_util::BodyExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// The configured ingest credential (`HOLDFAST_INGEST_TOKEN`).
const INGEST_TOKEN: &str = "export-test-ingest-token-8c41e7";
/// The address every request comes from (the audit trail's `client`).
const CLIENT: [u8; 4] = [192, 0, 2, 11];
/// Words only team `trading`'s events contain: no export of someone scoped
/// to team `legal` may contain them.
const TRADING_MARKERS: [&str; 4] = ["Cal-27", "west-desk", "john.arnold", "positions.xlsx"];
/// How long an export of the fixture corpus may take.
const FINISH_WITHIN: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------ corpus

/// The fixture corpus: 17 events of team `legal`, 6 of team `trading`.
fn corpus() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/export/corpus.ndjson");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The ids of the corpus' events of `team`.
fn ids_of_team(team: &str) -> BTreeSet<String> {
    corpus()
        .iter()
        .filter(|event| event["team"] == team)
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

fn events(values: Vec<Value>) -> Vec<Event> {
    values
        .into_iter()
        .map(|value| Event::from_json(value).unwrap())
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A time-range export of March 2026 in `formats`.
fn march(formats: &[&str]) -> Value {
    json!({
        "source": {"type": "criteria", "from": "2026-03-01", "to": "2026-03-31"},
        "formats": formats,
        "matter": "Müller v. Enron",
    })
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

    fn expect(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        self.json()
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
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

    /// Asserts that none of `words` appears anywhere in the raw body.
    fn assert_lacks(&self, words: &[&str], context: &str) {
        let text = self.text();
        for word in words {
            assert!(
                !text.contains(word),
                "{context}: the answer contains {word:?}: {text}"
            );
        }
    }
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap()
}

/// API tokens of every kind, created with the library.
struct Tokens {
    /// Compliance officer of team `legal` (`token:officer-legal`).
    officer_legal: String,
    /// Compliance officer of team `trading` (`token:officer-trading`).
    officer_trading: String,
    /// Legal staff of team `legal` (`token:counsel-legal`).
    counsel_legal: String,
    /// Admin (`token:admin`): the whole archive.
    admin: String,
    auditor: String,
    /// An ingest API token (`token:connector`).
    ingest: String,
}

struct App {
    router: Router,
    access: Arc<AccessState>,
    tokens: Tokens,
    store: Store,
    exports_dir: PathBuf,
    /// The installation's templates (empty: the built-in layouts).
    template_dir: PathBuf,
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
    /// The fixture corpus, stored and indexed, and the API with exports.
    async fn new(backend: Backend) -> App {
        App::with_events(backend, events(corpus())).await
    }

    /// `events` stored and indexed, and the API with exports, set up the
    /// way `holdfast serve` sets it up.
    async fn with_events(backend: Backend, stored: Vec<Event>) -> App {
        let archive = TestArchive::new(backend).await;
        let store = archive.open().await;
        store.append(stored).await.unwrap();
        let index =
            Arc::new(SearchIndex::open_or_create(&archive.data_dir().join("index")).unwrap());
        holdfast::index::catch_up(&store, &index, |_, _| {})
            .await
            .unwrap();
        index.reload().unwrap();
        let access = AccessState::open(
            &store,
            &AuthConfig::default(),
            Some(holdfast::api::auth::TokenHash::of(&SecretString::from(
                INGEST_TOKEN.to_owned(),
            ))),
        )
        .await
        .unwrap();
        let tokens = Tokens {
            officer_legal: api_token(
                &access,
                "officer-legal",
                Role::ComplianceOfficer,
                Scope::teams(["legal"]),
            )
            .await,
            officer_trading: api_token(
                &access,
                "officer-trading",
                Role::ComplianceOfficer,
                Scope::teams(["trading"]),
            )
            .await,
            counsel_legal: api_token(
                &access,
                "counsel-legal",
                Role::Legal,
                Scope::teams(["legal"]),
            )
            .await,
            admin: api_token(&access, "admin", Role::Admin, Scope::Nothing).await,
            auditor: api_token(&access, "auditor", Role::Auditor, Scope::Nothing).await,
            ingest: api_token(&access, "connector", Role::Ingest, Scope::Nothing).await,
        };
        let exports_dir = archive.data_dir().join("exports");
        let template_dir = archive.dir.path().join("templates");
        std::fs::create_dir_all(&template_dir).unwrap();
        let exports = Arc::new(ExportService::new(
            Exporter {
                store: store.clone(),
                index: Arc::clone(&index),
                signer: Arc::new(Signer::ed25519_in(archive.data_dir()).unwrap()),
                exports_dir: exports_dir.clone(),
                template_dir: Some(template_dir.clone()),
            },
            access.audit.clone(),
            Vec::new(),
        ));
        let state = holdfast::api::AppState::new(store.clone(), access, 16 * 1024 * 1024)
            .with_index(index)
            .with_exports(exports);
        App {
            access: Arc::clone(&state.access),
            router: holdfast::api::router(state),
            tokens,
            store,
            exports_dir,
            template_dir,
            archive,
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Body>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let mut request = builder.body(body.unwrap_or_else(Body::empty)).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((CLIENT, 40_000))));
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

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.send("GET", path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send(
            "POST",
            path,
            Some(token),
            Some(Body::from(body.to_string())),
        )
        .await
    }

    /// `POST /api/v1/exports`: the raw reply.
    async fn create(&self, token: &str, request: &Value) -> Reply {
        self.post("/api/v1/exports", token, request).await
    }

    /// Starts an export that must be accepted; its answer (202).
    async fn start(&self, token: &str, request: &Value) -> Value {
        let body = self
            .create(token, request)
            .await
            .expect(StatusCode::ACCEPTED);
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("exp-"), "{body}");
        assert_eq!(
            body["links"]["self"],
            format!("/api/v1/exports/{id}"),
            "{body}"
        );
        assert_eq!(
            body["links"]["download"],
            format!("/api/v1/exports/{id}/download"),
            "{body}"
        );
        // The job may finish before the answer is written.
        assert!(
            body["status"] == "running" || body["status"] == "done",
            "{body}"
        );
        body
    }

    async fn cancel(&self, id: &str, token: &str) -> Reply {
        self.send(
            "POST",
            &format!("/api/v1/exports/{id}/cancel"),
            Some(token),
            None,
        )
        .await
    }

    async fn download(&self, id: &str, token: &str) -> Reply {
        self.get(&format!("/api/v1/exports/{id}/download"), token)
            .await
    }

    /// Polls the export until it is no longer running; its last answer.
    async fn finished(&self, id: &str, token: &str) -> Value {
        let started = Instant::now();
        loop {
            let body = self
                .get(&format!("/api/v1/exports/{id}"), token)
                .await
                .expect(StatusCode::OK);
            if body["status"] != "running" {
                return body;
            }
            assert!(
                started.elapsed() < FINISH_WITHIN,
                "export {id} still running after {FINISH_WITHIN:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts an export and waits until it is done; its last answer.
    async fn export(&self, token: &str, request: &Value) -> Value {
        let id = self.start(token, request).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = self.finished(&id, token).await;
        assert_eq!(body["status"], "done", "{body}");
        body
    }

    /// Downloads a finished export to a file under the test's directory.
    async fn download_to_file(&self, id: &str, token: &str) -> (Reply, PathBuf) {
        let reply = self.download(id, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let path = self.archive.dir.path().join(format!("{id}-download.zip"));
        std::fs::write(&path, &reply.body).unwrap();
        (reply, path)
    }

    /// The installation's public key, as a recipient receives it.
    fn public_key(&self) -> TrustedKey {
        TrustedKey::ed25519_public_file(&self.archive.data_dir().join(PUBLIC_KEY_FILE)).unwrap()
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

    /// Waits until the background job's `export_complete` record of
    /// `export_id` is written (it follows the status change).
    async fn completion_record(&self, export_id: i64) -> AuditRecord {
        let started = Instant::now();
        loop {
            let records = self.audit(AuditAction::ExportComplete).await;
            let mine: Vec<_> = records
                .into_iter()
                .filter(|record| record.params["export_id"] == export_id)
                .collect();
            assert!(mine.len() <= 1, "{mine:?}");
            if let Some(record) = mine.into_iter().next() {
                return record;
            }
            assert!(
                started.elapsed() < FINISH_WITHIN,
                "no export_complete record for export {export_id}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The names in the exports directory (packages and partial ones).
    fn exports_dir_entries(&self) -> BTreeSet<String> {
        match std::fs::read_dir(&self.exports_dir) {
            Ok(entries) => entries
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(error) => panic!("{}: {error}", self.exports_dir.display()),
        }
    }
}

/// The file `name` of the package in the zip at `path` (under its top
/// directory `exp-000042/`).
fn zip_file(path: &Path, name: &str) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.unwrap().into_owned())
        .collect();
    let full = names
        .iter()
        .find(|full| full.split_once('/').is_some_and(|(_, rest)| rest == name))
        .unwrap_or_else(|| panic!("{name} is not in the zip: {names:?}"))
        .clone();
    let mut bytes = Vec::new();
    archive
        .by_name(&full)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// The events of a package's `events.jsonl`.
fn jsonl_events(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn ids_in(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The file names a manifest lists.
fn manifest_files(manifest: &Value) -> BTreeSet<String> {
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The JSONL of a finished export, downloaded by `token`.
async fn exported_events(app: &App, id: &str, token: &str) -> Vec<Value> {
    let (_, path) = app.download_to_file(id, token).await;
    jsonl_events(&zip_file(&path, "events.jsonl"))
}

const EXPORT_ROUTES: [(&str, &str); 5] = [
    ("POST", "/api/v1/exports"),
    ("GET", "/api/v1/exports"),
    ("GET", "/api/v1/exports/{id}"),
    ("POST", "/api/v1/exports/{id}/cancel"),
    ("GET", "/api/v1/exports/{id}/download"),
];

// ------------------------------------------------------------------ the happy path

async fn officer_exports_their_scope_and_downloads_a_package_that_verifies(backend: Backend) {
    let app = App::new(backend).await;
    let officer = app.tokens.officer_legal.clone();
    let legal = ids_of_team("legal");
    assert_eq!(legal.len(), 17);

    // Asked for all of March, which holds both teams: only legal's events.
    let request = march(&["jsonl", "csv"]);
    let accepted = app.start(&officer, &request).await;
    let id = accepted["id"].as_str().unwrap().to_owned();
    assert_eq!(
        accepted["requested_by"], "token:officer-legal",
        "{accepted}"
    );
    assert_eq!(accepted["request"]["source"]["type"], "criteria");
    assert_eq!(accepted["request"]["formats"], json!(["jsonl", "csv"]));
    let export_id = accepted["export_id"].as_i64().unwrap();
    assert_eq!(id, format!("exp-{export_id:06}"));

    let done = app.finished(&id, &officer).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["events"], legal.len(), "{done}");
    assert_eq!(done["warnings"], 0, "{done}");
    assert_eq!(done["error"], Value::Null, "{done}");
    assert!(done["finished_at_ms"].as_i64().is_some(), "{done}");
    assert_eq!(done["request"]["matter"], "Müller v. Enron", "{done}");
    assert_eq!(done["deliveries"], json!([]), "{done}");
    // The numeric id answers the same export.
    let by_number = app
        .get(&format!("/api/v1/exports/{export_id}"), &officer)
        .await
        .expect(StatusCode::OK);
    assert_eq!(by_number["id"], id);
    assert_eq!(by_number["events"], done["events"]);

    // The manifest in the answer lists the files and counts legal only.
    let manifest = &done["manifest"];
    assert_eq!(manifest["export_id"], id, "{done}");
    assert_eq!(manifest["requested_by"], "token:officer-legal");
    assert_eq!(manifest["scope"], "team legal", "{manifest}");
    assert_eq!(manifest["matter"], "Müller v. Enron");
    assert_eq!(manifest["formats"], json!(["jsonl", "csv"]));
    assert_eq!(
        manifest_files(manifest),
        set(&["events.jsonl", "events.csv", "warnings.jsonl"]),
        "{manifest}"
    );
    for file in manifest["files"].as_array().unwrap() {
        assert_eq!(file["sha256"].as_str().unwrap().len(), 64, "{file}");
    }
    assert_eq!(manifest["counts"]["events"], legal.len(), "{manifest}");
    assert_eq!(
        manifest["counts"]["channels"],
        json!([{"team": "legal", "channel": "case-4711", "events": 17}]),
        "{manifest}"
    );
    let manifest_sha256 = done["manifest_sha256"].as_str().unwrap().to_owned();

    // The download: a zip, named, whole.
    let (reply, zip_path) = app.download_to_file(&id, &officer).await;
    assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/zip"));
    assert_eq!(
        reply.header(header::CONTENT_DISPOSITION),
        Some(format!("attachment; filename=\"{id}.zip\"").as_str())
    );
    assert_eq!(
        reply.header(header::CONTENT_LENGTH),
        Some(reply.body.len().to_string().as_str())
    );
    reply.assert_lacks(&TRADING_MARKERS, "the zip");

    // It verifies with the installation's key, file by file.
    let check = verify_package(&zip_path, Some(app.public_key())).unwrap();
    assert!(check.ok(), "{check:?}");
    assert!(check.key_trusted, "{check:?}");
    assert!(check.signature_valid, "{check:?}");
    assert_eq!(check.export_id.as_deref(), Some(id.as_str()));
    assert_eq!(check.files_checked, 3, "{check:?}");
    // Its manifest is the one whose digest the export answers.
    let manifest_bytes = zip_file(&zip_path, "manifest.json");
    assert_eq!(sha256_hex(&manifest_bytes), manifest_sha256);
    let zipped_manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(&zipped_manifest, manifest);

    // The JSONL holds legal's events, each exactly as ingested, and no
    // trading event.
    let exported = jsonl_events(&zip_file(&zip_path, "events.jsonl"));
    assert_eq!(exported.len(), legal.len());
    assert_eq!(ids_in(&exported), legal);
    assert!(exported.iter().all(|event| event["team"] == "legal"));
    let jsonl_text = String::from_utf8(zip_file(&zip_path, "events.jsonl")).unwrap();
    for marker in TRADING_MARKERS {
        assert!(!jsonl_text.contains(marker), "{marker} in {jsonl_text}");
    }
    let originals: Vec<Value> = corpus();
    for event in &exported {
        let original = originals
            .iter()
            .find(|original| original["id"] == event["id"])
            .unwrap();
        assert_eq!(event["text"], original["text"], "{event}");
        assert_eq!(event["user"], original["user"], "{event}");
        assert_eq!(event["kind"], original["kind"], "{event}");
    }
    // The CSV has a header and one row per event, none of trading.
    let csv_bytes = zip_file(&zip_path, "events.csv");
    let mut csv_reader = csv::Reader::from_reader(csv_bytes.as_slice());
    assert!(!csv_reader.headers().unwrap().is_empty());
    assert_eq!(csv_reader.records().count(), legal.len());
    let csv_text = String::from_utf8_lossy(&csv_bytes);
    for marker in TRADING_MARKERS {
        assert!(!csv_text.contains(marker), "{marker} in the CSV");
    }

    // The same package on disk, nothing else left behind (no partial
    // package, no temporary download file).
    assert_eq!(app.exports_dir_entries(), set(&[id.as_str()]));
    let on_disk = verify_package(&app.exports_dir.join(&id), Some(app.public_key())).unwrap();
    assert!(on_disk.ok(), "{on_disk:?}");
}

async fn a_query_export_finds_only_what_the_scope_allows(backend: Backend) {
    let app = App::new(backend).await;
    // "close" is trading's word, "settlement" legal's: the post of a hit
    // comes whole (the file event of p-1, t-1's edits).
    let request = json!({"source": {"type": "query", "query": "settlement OR close"},
                         "formats": ["jsonl"]});
    let scoped = app.export(&app.tokens.officer_legal, &request).await;
    assert_eq!(scoped["events"], 2, "{scoped}");
    let exported = exported_events(
        &app,
        scoped["id"].as_str().unwrap(),
        &app.tokens.officer_legal,
    )
    .await;
    assert_eq!(ids_in(&exported), set(&["ev-003", "ev-004"]));

    let everything = app.export(&app.tokens.admin, &request).await;
    let exported =
        exported_events(&app, everything["id"].as_str().unwrap(), &app.tokens.admin).await;
    assert_eq!(
        ids_in(&exported),
        set(&["ev-003", "ev-004", "ev-018", "ev-020", "ev-021"])
    );
    assert_eq!(everything["events"], 5, "{everything}");
}

async fn a_hold_export_exports_what_the_hold_holds(backend: Backend) {
    let app = App::new(backend).await;
    let counsel = app.tokens.counsel_legal.clone();
    app.post(
        "/api/v1/holds",
        &counsel,
        &json!({"name": "mueller", "matter": "Müller v. Enron", "reason": "litigation",
                "criteria": {"custodians": ["kay.mann"]}}),
    )
    .await
    .expect(StatusCode::CREATED);
    // kay.mann's events, and every event of the posts she acted on (p-1,
    // p-2 through her reaction, p-3).
    let expected = set(&[
        "ev-001", "ev-003", "ev-004", "ev-005", "ev-006", "ev-007", "ev-008", "ev-011", "ev-016",
    ]);
    for token in [&counsel, &app.tokens.officer_legal] {
        let done = app
            .export(
                token,
                &json!({"source": {"type": "hold", "hold": "mueller"}, "formats": ["jsonl"]}),
            )
            .await;
        assert_eq!(done["events"], expected.len(), "{done}");
        let exported = exported_events(&app, done["id"].as_str().unwrap(), token).await;
        assert_eq!(ids_in(&exported), expected);
    }
}

// ------------------------------------------------------------------ who may

async fn legal_exports_its_scope_admin_everything_others_are_refused(backend: Backend) {
    let app = App::new(backend).await;

    // Legal staff: within their scope.
    let done = app
        .export(&app.tokens.counsel_legal, &march(&["jsonl"]))
        .await;
    assert_eq!(done["events"], 17, "{done}");
    assert_eq!(done["manifest"]["scope"], "team legal", "{done}");
    let exported = exported_events(
        &app,
        done["id"].as_str().unwrap(),
        &app.tokens.counsel_legal,
    )
    .await;
    assert_eq!(ids_in(&exported), ids_of_team("legal"));

    // Another officer: their own team only.
    let done = app
        .export(&app.tokens.officer_trading, &march(&["jsonl"]))
        .await;
    assert_eq!(done["events"], 6, "{done}");
    let exported = exported_events(
        &app,
        done["id"].as_str().unwrap(),
        &app.tokens.officer_trading,
    )
    .await;
    assert_eq!(ids_in(&exported), ids_of_team("trading"));

    // Naming a team outside the scope widens nothing: no event of it.
    let request = json!({"source": {"type": "criteria", "from": "2026-03-01",
                                    "teams": ["trading"]},
                         "formats": ["jsonl"]});
    let done = app.export(&app.tokens.officer_legal, &request).await;
    assert_eq!(done["events"], 0, "{done}");
    assert_eq!(done["manifest"]["counts"]["channels"], json!([]), "{done}");
    let exported = exported_events(
        &app,
        done["id"].as_str().unwrap(),
        &app.tokens.officer_legal,
    )
    .await;
    assert_eq!(exported, Vec::<Value>::new());

    // The admin: the whole archive, whatever team.
    let done = app.export(&app.tokens.admin, &march(&["jsonl"])).await;
    assert_eq!(done["events"], 23, "{done}");
    assert_eq!(done["manifest"]["scope"], "all", "{done}");
    let admin_export = done["id"].as_str().unwrap().to_owned();
    let exported = exported_events(&app, &admin_export, &app.tokens.admin).await;
    let all: BTreeSet<String> = ids_of_team("legal")
        .union(&ids_of_team("trading"))
        .cloned()
        .collect();
    assert_eq!(ids_in(&exported), all);

    // Auditors and ingest credentials: 403 on every export route; no
    // token: 401. Nothing is started.
    let exports_before = app.exports_dir_entries();
    for (method, path) in EXPORT_ROUTES {
        let path = path.replace("{id}", &admin_export);
        // A valid request where the route takes one.
        let body = || {
            (method == "POST" && path == "/api/v1/exports")
                .then(|| Body::from(march(&["jsonl"]).to_string()))
        };
        for token in [
            app.tokens.auditor.as_str(),
            app.tokens.ingest.as_str(),
            INGEST_TOKEN,
        ] {
            let reply = app.send(method, &path, Some(token), body()).await;
            reply.error(StatusCode::FORBIDDEN, "forbidden");
            reply.assert_lacks(&["kay.mann", "Cal-27", "PK"], &format!("{method} {path}"));
        }
        let reply = app.send(method, &path, None, body()).await;
        reply.error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer"));
    }
    assert_eq!(app.exports_dir_entries(), exports_before);
    let listed = app
        .get("/api/v1/exports?limit=1000", &app.tokens.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed["exports"].as_array().unwrap().len(), 4, "{listed}");
}

async fn others_exports_are_not_found(backend: Backend) {
    let app = App::new(backend).await;
    let done = app
        .export(&app.tokens.officer_legal, &march(&["jsonl"]))
        .await;
    let id = done["id"].as_str().unwrap().to_owned();
    let export_id = done["export_id"].as_i64().unwrap();

    // Another officer, another legal user: 404 (not 403), by either id
    // form, on every route; nothing of the export in the answer.
    for token in [&app.tokens.officer_trading, &app.tokens.counsel_legal] {
        for path in [
            format!("/api/v1/exports/{id}"),
            format!("/api/v1/exports/{export_id}"),
            format!("/api/v1/exports/{id}/download"),
        ] {
            let reply = app.get(&path, token).await;
            reply.error(StatusCode::NOT_FOUND, "not_found");
            reply.assert_lacks(&["kay.mann", "case-4711", "Müller"], &path);
        }
        let reply = app.cancel(&id, token).await;
        reply.error(StatusCode::NOT_FOUND, "not_found");
    }
    // The owner and an admin see it.
    app.get(&format!("/api/v1/exports/{id}"), &app.tokens.officer_legal)
        .await
        .expect(StatusCode::OK);
    let seen = app
        .get(&format!("/api/v1/exports/{id}"), &app.tokens.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(seen["requested_by"], "token:officer-legal");
    let (_, zip_path) = app.download_to_file(&id, &app.tokens.admin).await;
    assert!(
        verify_package(&zip_path, Some(app.public_key()))
            .unwrap()
            .ok()
    );
}

// ------------------------------------------------------------------ bad input

/// Requests refused with 400, and what the answer must name: the field of
/// an `invalid_field` error, or words of any 400's message.
enum Refusal {
    /// `invalid_field`, naming the field (and the message containing it),
    /// plus words of the message.
    Field(&'static str, &'static [&'static str]),
    /// Any 400 whose message contains all these words (the field first).
    Message(&'static [&'static str]),
}

fn bad_requests() -> Vec<(&'static str, String, Refusal)> {
    let criteria = json!({"type": "criteria", "from": "2026-03-01"});
    let with = |patch: Value| {
        let mut request = json!({"source": criteria, "formats": ["jsonl"]});
        for (key, value) in patch.as_object().unwrap() {
            request[key] = value.clone();
        }
        request.to_string()
    };
    vec![
        (
            "body not JSON",
            "formats: jsonl, please".to_owned(),
            Refusal::Message(&["export request"]),
        ),
        (
            "empty body",
            String::new(),
            Refusal::Message(&["export request"]),
        ),
        (
            "a JSON array",
            "[]".to_owned(),
            Refusal::Message(&["export request"]),
        ),
        (
            "unknown top-level field",
            with(json!({"colour": "red"})),
            Refusal::Message(&["colour"]),
        ),
        (
            "unknown field of the criteria",
            with(json!({"source": {"type": "criteria", "from": "2026-03-01",
                                   "custodian": ["kay.mann"]}})),
            Refusal::Message(&["custodian"]),
        ),
        (
            "unknown source type",
            with(json!({"source": {"type": "everything"}})),
            Refusal::Message(&["everything"]),
        ),
        (
            "no source",
            json!({"formats": ["jsonl"]}).to_string(),
            Refusal::Message(&["source"]),
        ),
        (
            "no formats",
            json!({"source": criteria}).to_string(),
            Refusal::Message(&["formats"]),
        ),
        (
            "unknown format",
            with(json!({"formats": ["jsonl", "docx"]})),
            Refusal::Message(&["formats", "docx"]),
        ),
        (
            "empty formats",
            with(json!({"formats": []})),
            Refusal::Field("formats", &[]),
        ),
        (
            "a format twice",
            with(json!({"formats": ["jsonl", "jsonl"]})),
            Refusal::Field("formats", &["twice"]),
        ),
        (
            "empty query",
            with(json!({"source": {"type": "query", "query": "  "}})),
            Refusal::Field("source.query", &["empty"]),
        ),
        (
            // "merger AND" ends where a term is expected: column 11.
            "query that does not parse",
            with(json!({"source": {"type": "query", "query": "merger AND"}})),
            Refusal::Field("source.query", &["column 11"]),
        ),
        (
            "criteria without from or to",
            with(json!({"source": {"type": "criteria", "teams": ["legal"]}})),
            Refusal::Field("source.from", &[]),
        ),
        (
            "a query inside criteria",
            with(json!({"source": {"type": "criteria", "from": "2026-03-01",
                                   "query": "settlement"}})),
            Refusal::Field("source.query", &[]),
        ),
        (
            "bates without pdf",
            with(json!({"bates": {"prefix": "HF"}})),
            Refusal::Field("bates", &["pdf"]),
        ),
        (
            "bates with a bad prefix",
            with(json!({"formats": ["pdf"], "bates": {"prefix": "HF 01/"}})),
            Refusal::Field("bates.prefix", &[]),
        ),
        (
            "bates with too many digits",
            with(json!({"formats": ["pdf"], "bates": {"prefix": "HF", "digits": 13}})),
            Refusal::Field("bates.digits", &[]),
        ),
        (
            "empty hold",
            with(json!({"source": {"type": "hold", "hold": ""}})),
            Refusal::Field("source.hold", &[]),
        ),
    ]
}

async fn bad_requests_are_refused_naming_the_field(backend: Backend) {
    let app = App::new(backend).await;
    let officer = app.tokens.officer_legal.clone();
    let mut mismatches = Vec::new();
    let cases = bad_requests();
    for (what, body, refusal) in &cases {
        let reply = app
            .send(
                "POST",
                "/api/v1/exports",
                Some(&officer),
                Some(Body::from(body.clone())),
            )
            .await;
        let answer = reply.text();
        let ok = reply.status == StatusCode::BAD_REQUEST
            && match refusal {
                Refusal::Field(field, words) => {
                    let json = reply.json();
                    json["error"]["code"] == "invalid_field"
                        && json["error"]["field"] == *field
                        && message(&json).contains(field)
                        && words.iter().all(|word| message(&json).contains(word))
                }
                Refusal::Message(words) => {
                    let json = reply.json();
                    json["error"]["message"]
                        .as_str()
                        .is_some_and(|message| words.iter().all(|word| message.contains(word)))
                }
            };
        if !ok {
            mismatches.push(format!("{what}: {} {answer}", reply.status));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} bad requests were not refused as they should be:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    // Nothing was started, and every refusal is in the audit trail.
    assert_eq!(app.exports_dir_entries(), BTreeSet::new());
    let listed = app
        .get("/api/v1/exports", &app.tokens.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed["exports"], json!([]), "{listed}");
    let records = app.audit(AuditAction::ExportCreate).await;
    assert_eq!(records.len(), cases.len());
    for record in &records {
        assert_eq!(record.outcome, AuditOutcome::Failed, "{record:?}");
        assert_eq!(record.actor, "token:officer-legal");
        assert_eq!(record.params["status"], 400);
    }
}

async fn holds_as_a_source_must_exist_be_visible_and_active(backend: Backend) {
    let app = App::new(backend).await;
    let counsel = app.tokens.counsel_legal.clone();
    let old = app
        .post(
            "/api/v1/holds",
            &counsel,
            &json!({"name": "old-matter", "matter": "settled", "reason": "litigation",
                    "criteria": {"custodians": ["jeff.dasovich"]}}),
        )
        .await
        .expect(StatusCode::CREATED);
    app.post(
        &format!("/api/v1/holds/{}/release", old["id"]),
        &counsel,
        &json!({"reason": "settled"}),
    )
    .await
    .expect(StatusCode::OK);
    // A hold of the whole archive: not visible to someone scoped to legal.
    app.post(
        "/api/v1/holds",
        &app.tokens.admin,
        &json!({"name": "everything", "matter": "regulator", "reason": "inquiry",
                "criteria": {"teams": ["trading", "legal"]}}),
    )
    .await
    .expect(StatusCode::CREATED);

    let hold = |name: &str| json!({"source": {"type": "hold", "hold": name}, "formats": ["jsonl"]});
    let reply = app.create(&counsel, &hold("no-such-hold")).await;
    let body = reply.error(StatusCode::NOT_FOUND, "not_found");
    assert!(message(&body).contains("no-such-hold"), "{body}");
    let reply = app.create(&counsel, &hold("everything")).await;
    reply.error(StatusCode::NOT_FOUND, "not_found");
    let reply = app.create(&counsel, &hold("old-matter")).await;
    let body = reply.invalid_field("source.hold");
    assert!(message(&body).contains("released"), "{body}");
    // None of them started an export.
    let listed = app
        .get("/api/v1/exports", &app.tokens.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed["exports"], json!([]), "{listed}");
}

async fn ids_and_limits_are_checked(backend: Backend) {
    let app = App::new(backend).await;
    let officer = app.tokens.officer_legal.clone();
    for id in ["abc", "exp-abc", "1.5", "-"] {
        for reply in [
            app.get(&format!("/api/v1/exports/{id}"), &officer).await,
            app.download(id, &officer).await,
            app.cancel(id, &officer).await,
        ] {
            reply.invalid_field("id");
        }
    }
    for id in ["999999", "exp-999999"] {
        for reply in [
            app.get(&format!("/api/v1/exports/{id}"), &officer).await,
            app.download(id, &officer).await,
            app.cancel(id, &officer).await,
        ] {
            reply.error(StatusCode::NOT_FOUND, "not_found");
        }
    }
    for query in ["limit=0", "limit=1001", "limit=-3"] {
        app.get(&format!("/api/v1/exports?{query}"), &officer)
            .await
            .invalid_field("limit");
    }
    for query in ["limit=ten", "colour=red"] {
        app.get(&format!("/api/v1/exports?{query}"), &officer)
            .await
            .error(StatusCode::BAD_REQUEST, "bad_request");
    }
    app.get("/api/v1/exports?limit=1000", &officer)
        .await
        .expect(StatusCode::OK);
}

// ------------------------------------------------------------------ states

async fn finished_and_failed_exports_answer_conflicts(backend: Backend) {
    let app = App::new(backend).await;
    let officer = app.tokens.officer_legal.clone();
    let done = app.export(&officer, &march(&["jsonl"])).await;
    let id = done["id"].as_str().unwrap();
    let reply = app.cancel(id, &officer).await;
    let body = reply.error(StatusCode::CONFLICT, "not_running");
    assert!(message(&body).contains("done"), "{body}");
    // Still done, still downloadable.
    let again = app
        .get(&format!("/api/v1/exports/{id}"), &officer)
        .await
        .expect(StatusCode::OK);
    assert_eq!(again["status"], "done");
    app.download_to_file(id, &officer).await;

    // A CSV template that does not parse fails the export.
    std::fs::write(
        app.template_dir.join(holdfast::export::csv::TEMPLATE_FILE),
        "columns = [ this is not toml\n",
    )
    .unwrap();
    let started = app.start(&officer, &march(&["csv"])).await;
    let failed_id = started["id"].as_str().unwrap().to_owned();
    let failed = app.finished(&failed_id, &officer).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty()),
        "{failed}"
    );
    assert_eq!(failed["manifest_sha256"], Value::Null, "{failed}");
    assert!(failed.get("manifest").is_none(), "{failed}");
    let reply = app.download(&failed_id, &officer).await;
    let body = reply.error(StatusCode::CONFLICT, "not_ready");
    assert!(message(&body).contains("failed"), "{body}");
    app.cancel(&failed_id, &officer)
        .await
        .error(StatusCode::CONFLICT, "not_running");
    // No partial package left behind.
    assert_eq!(app.exports_dir_entries(), set(&[id]));
    let record = app
        .completion_record(failed["export_id"].as_i64().unwrap())
        .await;
    assert_eq!(record.outcome, AuditOutcome::Failed, "{record:?}");
    assert_eq!(record.params["status"], "failed", "{record:?}");
    assert_eq!(record.actor, "token:officer-legal");

    // A finished export whose package an operator removed: 410, named,
    // rather than a failure of the server.
    std::fs::remove_dir_all(app.exports_dir.join(id)).unwrap();
    let reply = app.download(id, &officer).await;
    let body = reply.error(StatusCode::GONE, "package_missing");
    assert!(message(&body).contains(id), "{body}");
    assert!(
        !message(&body).contains(app.exports_dir.to_str().unwrap()),
        "no server path is told: {body}"
    );
}

/// `n` generated events over three teams (2024).
fn generated(n: u64) -> Vec<Event> {
    EventGenerator::new(&GenerateOptions {
        events: n,
        seed: 6,
        ..GenerateOptions::default()
    })
    .map(|value| Event::from_json(value).unwrap())
    .collect()
}

async fn a_running_export_is_cancelled(backend: Backend) {
    let app = App::with_events(backend, generated(20_000)).await;
    let admin = app.tokens.admin.clone();
    let everything = json!({"source": {"type": "criteria", "from": "2000-01-01"},
                            "formats": ["jsonl", "csv"]});

    // Cancelled as soon as it is accepted.
    let accepted = app.start(&admin, &everything).await;
    let id = accepted["id"].as_str().unwrap().to_owned();
    let export_id = accepted["export_id"].as_i64().unwrap();
    let reply = app.cancel(&id, &admin).await;
    let body = reply.expect(StatusCode::ACCEPTED);
    assert_eq!(body, json!({"id": id, "status": "cancelling"}));
    let cancelled = app.finished(&id, &admin).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["manifest_sha256"], Value::Null, "{cancelled}");
    assert!(cancelled.get("manifest").is_none(), "{cancelled}");
    app.download(&id, &admin)
        .await
        .error(StatusCode::CONFLICT, "not_ready");
    app.cancel(&id, &admin)
        .await
        .error(StatusCode::CONFLICT, "not_running");
    let record = app.completion_record(export_id).await;
    assert_eq!(record.params["status"], "cancelled", "{record:?}");
    assert_eq!(record.outcome, AuditOutcome::Failed, "{record:?}");
    assert_eq!(record.actor, "token:admin");
    let cancels = app.audit(AuditAction::ExportCancel).await;
    let outcomes: Vec<_> = cancels
        .iter()
        .map(|record| {
            (
                record.actor.as_str(),
                record.outcome,
                record.params["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("token:admin", AuditOutcome::Ok, json!(202)),
            ("token:admin", AuditOutcome::Failed, json!(409)),
        ]
    );
    assert_eq!(cancels[0].params["export"], id);

    // Watched while it runs: progress, and no download yet; then cancelled.
    let accepted = app.start(&admin, &everything).await;
    let id = accepted["id"].as_str().unwrap().to_owned();
    let running = app
        .get(&format!("/api/v1/exports/{id}"), &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        running["status"], "running",
        "the export finished too fast: {running}"
    );
    let progress = &running["progress"];
    let stage = progress["stage"].as_str().unwrap();
    assert!(
        ["", "selecting", "writing", "sealing"].contains(&stage),
        "{running}"
    );
    assert!(
        progress["exported"].as_u64().unwrap() <= 20_000,
        "{running}"
    );
    assert!(progress["total"].as_u64().unwrap() <= 20_000, "{running}");
    let reply = app.download(&id, &admin).await;
    let body = reply.error(StatusCode::CONFLICT, "not_ready");
    assert!(message(&body).contains("running"), "{body}");
    app.cancel(&id, &admin).await.expect(StatusCode::ACCEPTED);
    let cancelled = app.finished(&id, &admin).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");

    // Nothing of either is left on disk.
    assert_eq!(app.exports_dir_entries(), BTreeSet::new());

    // A whole export of the same archive still works afterwards.
    let done = app.export(&admin, &everything).await;
    assert_eq!(done["events"], 20_000, "{done}");
    let (_, zip_path) = app
        .download_to_file(done["id"].as_str().unwrap(), &admin)
        .await;
    assert!(
        verify_package(&zip_path, Some(app.public_key()))
            .unwrap()
            .ok()
    );
    assert_eq!(app.store.db().stats().await.unwrap().events, 20_000);
}

// ------------------------------------------------------------------ listing

async fn each_caller_lists_their_own_exports_an_admin_all(backend: Backend) {
    let app = App::new(backend).await;
    let first = app
        .export(&app.tokens.officer_legal, &march(&["jsonl"]))
        .await;
    let second = app
        .export(&app.tokens.officer_legal, &march(&["csv"]))
        .await;
    let theirs = app
        .export(&app.tokens.officer_trading, &march(&["jsonl"]))
        .await;
    let ids = |body: &Value| -> Vec<String> {
        body["exports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|export| export["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |body: &Value| body["id"].as_str().unwrap().to_owned();

    // Newest first, their own only.
    let listed = app
        .get("/api/v1/exports", &app.tokens.officer_legal)
        .await
        .expect(StatusCode::OK);
    assert_eq!(ids(&listed), vec![id(&second), id(&first)], "{listed}");
    for export in listed["exports"].as_array().unwrap() {
        assert_eq!(export["requested_by"], "token:officer-legal", "{export}");
        assert_eq!(export["status"], "done", "{export}");
        assert_eq!(export["events"], 17, "{export}");
    }
    let listed = app
        .get("/api/v1/exports", &app.tokens.officer_trading)
        .await
        .expect(StatusCode::OK);
    assert_eq!(ids(&listed), vec![id(&theirs)], "{listed}");
    let listed = app
        .get("/api/v1/exports", &app.tokens.counsel_legal)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed["exports"], json!([]), "{listed}");
    // The admin: everyone's.
    let listed = app
        .get("/api/v1/exports", &app.tokens.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ids(&listed),
        vec![id(&theirs), id(&second), id(&first)],
        "{listed}"
    );
    let listed = app
        .get("/api/v1/exports?limit=1", &app.tokens.officer_legal)
        .await
        .expect(StatusCode::OK);
    assert_eq!(ids(&listed), vec![id(&second)], "{listed}");
}

// ------------------------------------------------------------------ audit

async fn every_export_call_and_the_job_end_are_audited(backend: Backend) {
    let app = App::new(backend).await;
    let officer = app.tokens.officer_legal.clone();
    let request = march(&["jsonl", "csv"]);
    let accepted = app.start(&officer, &request).await;
    let id = accepted["id"].as_str().unwrap().to_owned();
    let export_id = accepted["export_id"].as_i64().unwrap();
    let done = app.finished(&id, &officer).await;
    assert_eq!(done["status"], "done", "{done}");
    app.download_to_file(&id, &officer).await;
    app.cancel(&id, &officer)
        .await
        .error(StatusCode::CONFLICT, "not_running");
    app.get("/api/v1/exports", &officer)
        .await
        .expect(StatusCode::OK);

    // export_create: who, the request as understood and the scope applied.
    let created = app.audit(AuditAction::ExportCreate).await;
    assert_eq!(created.len(), 1, "{created:?}");
    let record = &created[0];
    assert_eq!(record.actor, "token:officer-legal");
    assert_eq!(record.role.as_deref(), Some("compliance_officer"));
    assert_eq!(record.client.as_deref(), Some("192.0.2.11"));
    assert_eq!(record.outcome, AuditOutcome::Ok);
    assert_eq!(record.params["status"], 202);
    assert_eq!(record.params["path"], "/api/v1/exports");
    assert_eq!(record.params["export_id"], export_id);
    assert_eq!(record.params["scope"], "team legal");
    assert_eq!(record.params["request"], done["request"], "{record:?}");
    assert_eq!(record.params["request"]["source"]["from"], "2026-03-01");
    assert_eq!(record.params["request"]["formats"], json!(["jsonl", "csv"]));
    assert_eq!(record.params["request"]["matter"], "Müller v. Enron");

    // export_view: one per look at the export, and the listing.
    let views = app.audit(AuditAction::ExportView).await;
    assert!(views.len() >= 2, "{views:?}");
    for record in &views {
        assert_eq!(record.actor, "token:officer-legal", "{record:?}");
        assert_eq!(record.outcome, AuditOutcome::Ok, "{record:?}");
    }
    let (list_views, export_views): (Vec<_>, Vec<_>) = views
        .iter()
        .partition(|record| record.params["path"] == "/api/v1/exports");
    assert_eq!(list_views.len(), 1, "{views:?}");
    assert!(
        export_views
            .iter()
            .all(|record| record.params["export"] == id),
        "{views:?}"
    );

    // export_download: with the digest of the manifest handed out.
    let downloads = app.audit(AuditAction::ExportDownload).await;
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    assert_eq!(downloads[0].actor, "token:officer-legal");
    assert_eq!(downloads[0].outcome, AuditOutcome::Ok);
    assert_eq!(downloads[0].params["export"], id);
    assert_eq!(
        downloads[0].params["manifest_sha256"],
        done["manifest_sha256"]
    );

    // export_cancel: refused, recorded.
    let cancels = app.audit(AuditAction::ExportCancel).await;
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0].actor, "token:officer-legal");
    assert_eq!(cancels[0].outcome, AuditOutcome::Failed);
    assert_eq!(cancels[0].params["status"], 409);

    // export_complete: the background job, for the requester.
    let record = app.completion_record(export_id).await;
    assert_eq!(record.actor, "token:officer-legal");
    assert_eq!(record.role.as_deref(), Some("compliance_officer"));
    assert_eq!(record.client.as_deref(), Some("export job"));
    assert_eq!(record.outcome, AuditOutcome::Ok);
    assert_eq!(record.params["events"], 17);
    assert_eq!(record.params["manifest_sha256"], done["manifest_sha256"]);
    assert_eq!(record.params["formats"], json!(["jsonl", "csv"]));
    // No message text in the trail.
    for action in [
        AuditAction::ExportCreate,
        AuditAction::ExportView,
        AuditAction::ExportDownload,
        AuditAction::ExportCancel,
        AuditAction::ExportComplete,
    ] {
        for record in app.audit(action).await {
            for word in ["Draft settlement", "ISDA", "Cal-27"] {
                assert!(!record.params_json.contains(word), "{record:?}");
            }
        }
    }

    // Refusals are recorded as denied, by who asked.
    app.create(&app.tokens.auditor, &request)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    let created = app.audit(AuditAction::ExportCreate).await;
    assert_eq!(created.len(), 2);
    assert_eq!(created[1].actor, "token:auditor");
    assert_eq!(created[1].outcome, AuditOutcome::Denied);

    // The trail verifies.
    let verification = app
        .access
        .audit
        .verify(&holdfast::audit::VerifyOptions::default())
        .await
        .unwrap();
    assert!(verification.is_ok(), "{verification:?}");
}

both_backends!(
    officer_exports_their_scope_and_downloads_a_package_that_verifies,
    a_query_export_finds_only_what_the_scope_allows,
    a_hold_export_exports_what_the_hold_holds,
    legal_exports_its_scope_admin_everything_others_are_refused,
    others_exports_are_not_found,
    bad_requests_are_refused_naming_the_field,
    holds_as_a_source_must_exist_be_visible_and_active,
    ids_and_limits_are_checked,
    finished_and_failed_exports_answer_conflicts,
    a_running_export_is_cancelled,
    each_caller_lists_their_own_exports_an_admin_all,
    every_export_call_and_the_job_end_are_audited,
);
