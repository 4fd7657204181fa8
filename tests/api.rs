//! The HTTP API: ingest (NDJSON and JSON arrays), reading events and posts
//! back, validation and its reports, authentication, body limits, health and
//! metrics; through the router (`oneshot`) and over a real socket. Every test
//! that touches storage runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use helpers::{TestArchive, event_json};
use holdfast::db::Backend;
use holdfast::event::{MAX_EVENT_BYTES, MAX_ID_BYTES, MAX_TEXT_BYTES};
use holdfast::store::Store;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "api-test-ingest-token-4f1c9a7e";
/// Large enough for every body in these tests except the limit tests.
const BIG_LIMIT: u64 = 16 * 1024 * 1024;

// ------------------------------------------------------------------ harness

/// An archive, its store and the API over it.
struct App {
    router: Router,
    store: Store,
    /// A compliance officer's API token (every team) for reading back.
    reader: String,
    /// Kept last so the store and router are dropped before the archive.
    _archive: TestArchive,
}

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

    /// The JSON body of a 200 response.
    fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        self.json()
    }

    /// Asserts the stable error shape `{"error":{"code":..,"message":..}}`.
    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "an error carries a message: {body}");
    }
}

impl App {
    async fn new(backend: Backend) -> App {
        App::with_limit(backend, BIG_LIMIT).await
    }

    async fn with_limit(backend: Backend, max_body_bytes: u64) -> App {
        let archive = TestArchive::new(backend).await;
        let store = archive.open().await;
        let access = holdfast::api::AccessState::open(
            &store,
            &holdfast::auth::AuthConfig::default(),
            Some(holdfast::api::auth::TokenHash::of(
                &secrecy::SecretString::from(TOKEN.to_owned()),
            )),
        )
        .await
        .unwrap();
        // Reads need a role that may view messages: an officer who sees all.
        let (_, reader) = access
            .tokens
            .create_api_token(
                holdfast::auth::NewApiToken {
                    name: "api-test-reader".to_owned(),
                    role: holdfast::auth::Role::ComplianceOfficer,
                    scope: holdfast::search::Scope::All,
                    created_by: "tests".to_owned(),
                    expires_at_ms: None,
                },
                chrono::Utc::now().timestamp_millis(),
            )
            .await
            .unwrap();
        let state = holdfast::api::AppState::new(store.clone(), access, max_body_bytes);
        App {
            router: holdfast::api::router(state),
            store,
            reader: secrecy::ExposeSecret::expose_secret(&reader).to_owned(),
            _archive: archive,
        }
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

    async fn post(&self, body: impl Into<Body>) -> Reply {
        self.send(
            Request::post("/api/v1/events")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "application/x-ndjson")
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(
            Request::get(path)
                .header(header::AUTHORIZATION, format!("Bearer {}", self.reader))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn get_event(&self, id: &str) -> Reply {
        self.get(&format!("/api/v1/events/{}", path_segment(id)))
            .await
    }

    /// Asserts that each event reads back through the API exactly as sent,
    /// and through the store.
    async fn assert_readable(&self, events: &[Value]) {
        for expected in events {
            let id = expected["id"].as_str().unwrap();
            let body = self.get_event(id).await.ok();
            assert_eq!(&body["event"], expected, "event {id:?} as read back");
            assert!(body["seq"].as_u64().is_some_and(|seq| seq >= 1), "{body}");
            assert!(body["segment"].as_u64().is_some(), "{body}");
            assert!(body["offset"].as_u64().is_some(), "{body}");
            let stored = self.store.get_event(id).await.unwrap();
            assert_eq!(stored.map(|s| s.event.id).as_deref(), Some(id));
        }
    }

    async fn assert_not_stored(&self, ids: &[&str]) {
        for id in ids {
            self.get_event(id)
                .await
                .assert_error(StatusCode::NOT_FOUND, "not_found");
            assert!(self.store.get_event(id).await.unwrap().is_none(), "{id:?}");
        }
    }

    async fn n_stored(&self) -> i64 {
        self.store.db().stats().await.unwrap().events
    }

    /// Ingests three posts and checks them: the data that a later bad batch
    /// must not lose.
    async fn seed(&self) -> Vec<Value> {
        let events: Vec<Value> = (0..3)
            .map(|i| event_json(&format!("earlier-{i}"), "post", Some(&format!("ep-{i}"))))
            .collect();
        let report = self.post(ndjson(&events)).await.ok();
        assert_report(&report, 3, 0, 0);
        events
    }
}

/// One NDJSON body, a line per event.
fn ndjson(events: &[Value]) -> String {
    events.iter().map(|event| format!("{event}\n")).collect()
}

/// Percent-encodes everything but unreserved characters.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

fn assert_report(report: &Value, accepted: u64, duplicates: u64, n_rejected: usize) {
    assert_eq!(report["accepted"], accepted, "{report}");
    assert_eq!(report["duplicates"], duplicates, "{report}");
    assert_eq!(
        report["rejected"].as_array().map(Vec::len),
        Some(n_rejected),
        "{report}"
    );
}

/// Checks one rejection entry: position, line (NDJSON) or no line (array),
/// the id when given, and that the error starts with what it names.
fn assert_rejected(
    entry: &Value,
    index: usize,
    line: Option<usize>,
    id: Option<&str>,
    error_has: &str,
) {
    assert_eq!(entry["index"], index, "{entry}");
    match line {
        Some(line) => assert_eq!(entry["line"], line, "{entry}"),
        None => assert!(entry.get("line").is_none(), "no line for arrays: {entry}"),
    }
    if let Some(id) = id {
        assert_eq!(entry["id"], id, "{entry}");
    }
    let error = entry["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(error_has),
        "expected {error_has:?} in {entry}"
    );
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// A post whose text and names go beyond ASCII, with every optional field,
/// in the canonical form the API returns (so it must come back identical).
fn rich_post(id: &str, post: &str) -> Value {
    json!({
        "id": id,
        "kind": "post",
        "at": "2024-05-01T09:30:00.123456Z",
        "team": "エネルギー取引",
        "channel": "général",
        "user": "łukasz-ż",
        "post": post,
        "parent": "thread-root",
        "text": "Crème brûlée à Zürich; Привет, мир; 你好，世界; こんにちは; 🎉👩‍💻🇺🇦; \
                 e\u{301} (combining); tab\tnewline\n\"quoted\" back\\slash; \u{2028}end",
        "files": [{
            "name": "résumé 履歴書.pdf",
            "size": 1234,
            "sha256": "ab".repeat(32),
            "mime": "application/pdf",
            "origin": "upload"
        }],
        "props": {"z_last": true, "nested": {"list": [1, 2.5, "x", null]}, "ключ": "значение"}
    })
}

// -------------------------------------------------------------- ingest + read

async fn ndjson_batch_is_stored_and_reads_back_identically(backend: Backend) {
    let app = App::new(backend).await;
    let events = vec![
        rich_post("nd-1", "nd-p1"),
        rich_post("nd-2 ünïcødé/é?#%", "nd-p2"),
        event_json("nd-3", "edit", Some("nd-p1")),
        event_json("nd-4", "reaction_add", Some("nd-p1")),
        event_json("nd-5", "member_join", None),
    ];
    // CRLF line ends and blank lines are fine.
    let body = events
        .iter()
        .map(|event| format!("{event}\r\n\r\n"))
        .collect::<String>();
    let report = app.post(body).await.ok();
    assert_report(&report, 5, 0, 0);
    app.assert_readable(&events).await;
    assert_eq!(app.n_stored().await, 5);

    // Props keep their order (verbatim), not just their content.
    let body = app.get_event("nd-1").await.ok();
    let keys: Vec<&String> = body["event"]["props"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["z_last", "nested", "ключ"]);

    // \u escapes (a surrogate pair too) arrive as the characters they encode.
    let line = r#"{"id":"nd-esc","kind":"post","at":"2024-05-01T09:30:00.000Z","team":"t","channel":"c","user":"u","post":"p","text":"caf\u00e9 \u041f\u0440\u0438\u0432\u0435\u0442 \u4f60\u597d \ud83c\udf89"}"#;
    assert_report(&app.post(line).await.ok(), 1, 0, 0);
    let body = app.get_event("nd-esc").await.ok();
    assert_eq!(body["event"]["text"], "café Привет 你好 🎉");
}

async fn json_array_batch_is_stored_and_reads_back_identically(backend: Backend) {
    let app = App::new(backend).await;
    let events = vec![
        rich_post("arr-1", "arr-p1"),
        event_json("arr-2", "delete", Some("arr-p1")),
        event_json("arr-3", "channel_create", None),
    ];
    let body = format!("  \n{}", Value::Array(events.clone()));
    let report = app.post(body).await.ok();
    assert_report(&report, 3, 0, 0);
    app.assert_readable(&events).await;

    // Epoch milliseconds come back as RFC 3339 UTC; unknown top-level fields
    // are kept in props after the given ones.
    let mut sent = event_json("arr-4", "post", Some("arr-p4"));
    sent["at"] = json!(1_714_555_800_250_i64);
    sent["props"] = json!({"a": 1});
    sent["is_pinned"] = json!(true);
    let report = app.post(json!([sent]).to_string()).await.ok();
    assert_report(&report, 1, 0, 0);
    let mut expected = event_json("arr-4", "post", Some("arr-p4"));
    expected["at"] = json!("2024-05-01T09:30:00.250Z");
    expected["props"] = json!({"a": 1, "is_pinned": true});
    app.assert_readable(&[expected]).await;
    assert_eq!(app.n_stored().await, 4);
}

async fn json_array_rejections_have_an_index_and_no_line(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let good = [
        event_json("ja-1", "post", Some("ja-p1")),
        event_json("ja-2", "post", Some("ja-p2")),
    ];
    let body = json!([
        good[0],
        {"id": "ja-bad", "kind": "post"},
        "not an object",
        good[1]
    ]);
    let report = app.post(body.to_string()).await.ok();
    assert_report(&report, 2, 0, 2);
    let rejected = &report["rejected"];
    assert_rejected(
        &rejected[0],
        1,
        None,
        Some("ja-bad"),
        "at: required field is missing",
    );
    assert_rejected(
        &rejected[1],
        2,
        None,
        None,
        "expected a JSON object, found a string",
    );
    assert!(rejected[1]["id"].is_null(), "{report}");
    app.assert_readable(&earlier).await;
    app.assert_readable(&good).await;
    app.assert_not_stored(&["ja-bad"]).await;
    assert_eq!(app.n_stored().await, 5);
}

// ----------------------------------------------------------------- idempotence

async fn the_same_batch_twice_is_all_duplicates_the_second_time(backend: Backend) {
    let app = App::new(backend).await;
    let events: Vec<Value> = (0..10)
        .map(|i| event_json(&format!("idem-{i}"), "post", Some(&format!("idem-p{i}"))))
        .collect();
    let report = app.post(ndjson(&events)).await.ok();
    assert_report(&report, 10, 0, 0);
    let report = app.post(ndjson(&events)).await.ok();
    assert_report(&report, 0, 10, 0);
    // The same ids as an array are duplicates too.
    let report = app
        .post(Value::Array(events.clone()).to_string())
        .await
        .ok();
    assert_report(&report, 0, 10, 0);
    assert_eq!(app.n_stored().await, 10);
    app.assert_readable(&events).await;

    // A batch that overlaps: only the new ones count as accepted.
    let mut overlapping = events[5..].to_vec();
    overlapping.push(event_json("idem-new", "post", Some("idem-pnew")));
    let report = app.post(ndjson(&overlapping)).await.ok();
    assert_report(&report, 1, 5, 0);
    assert_eq!(app.n_stored().await, 11);
}

async fn duplicates_inside_one_batch_count_once(backend: Backend) {
    let app = App::new(backend).await;
    let first = event_json("dup-1", "post", Some("dup-p1"));
    let mut same_id_other_content = first.clone();
    same_id_other_content["text"] = json!("a different text under the same id");
    let other = event_json("dup-2", "post", Some("dup-p2"));
    let body = ndjson(&[
        first.clone(),
        other.clone(),
        first.clone(),
        same_id_other_content,
        other.clone(),
    ]);
    let report = app.post(body).await.ok();
    assert_report(&report, 2, 3, 0);
    assert_eq!(app.n_stored().await, 2);
    // The first occurrence is the one kept.
    app.assert_readable(&[first, other]).await;
    let post = app.get("/api/v1/posts/dup-p1").await.ok();
    assert_eq!(post["events"].as_array().unwrap().len(), 1, "{post}");
}

// ------------------------------------------------------------------- bad input

async fn a_malformed_json_line_is_rejected_and_good_lines_are_stored(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let good = [
        event_json("mj-1", "post", Some("mj-p1")),
        event_json("mj-2", "post", Some("mj-p2")),
    ];
    let body = format!(
        "{}\n\n{{\"id\":\"mj-bad\",\"kind\":\"post\",,}}\nnot json at all\n{}\n",
        good[0], good[1]
    );
    let report = app.post(body).await.ok();
    assert_report(&report, 2, 0, 2);
    // Blank lines count in line numbers.
    assert_rejected(&report["rejected"][0], 2, Some(3), None, "malformed JSON");
    assert_rejected(&report["rejected"][1], 3, Some(4), None, "malformed JSON");
    app.assert_readable(&earlier).await;
    app.assert_readable(&good).await;
    app.assert_not_stored(&["mj-bad"]).await;
    assert_eq!(app.n_stored().await, 5);
}

async fn wrong_types_are_rejected_naming_the_field(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let good = event_json("wt-good", "post", Some("wt-p"));
    let mut at_float = event_json("wt-at", "post", Some("wt-p"));
    at_float["at"] = json!(1_714_555_800_000.5_f64);
    let mut team_number = event_json("wt-team", "post", Some("wt-p"));
    team_number["team"] = json!(42);
    let mut text_array = event_json("wt-text", "post", Some("wt-p"));
    text_array["text"] = json!(["a", "b"]);
    let mut props_string = event_json("wt-props", "post", Some("wt-p"));
    props_string["props"] = json!("nope");
    let mut file_size = event_json("wt-files", "file", Some("wt-p"));
    file_size["files"] = json!([{"name": "a.pdf", "size": "12"}]);
    let body = ndjson(&[
        at_float,
        team_number,
        good.clone(),
        text_array,
        props_string,
        file_size,
    ]);
    let report = app.post(body).await.ok();
    assert_report(&report, 1, 0, 5);
    let rejected = &report["rejected"];
    assert_rejected(
        &rejected[0],
        0,
        Some(1),
        Some("wt-at"),
        "at: epoch milliseconds must be an integer",
    );
    assert_rejected(
        &rejected[1],
        1,
        Some(2),
        Some("wt-team"),
        "team: expected a string, found a number",
    );
    assert_rejected(
        &rejected[2],
        3,
        Some(4),
        Some("wt-text"),
        "text: expected a string, found an array",
    );
    assert_rejected(
        &rejected[3],
        4,
        Some(5),
        Some("wt-props"),
        "props: expected an object, found a string",
    );
    assert_rejected(
        &rejected[4],
        5,
        Some(6),
        Some("wt-files"),
        "files[0].size: expected an integer",
    );
    app.assert_readable(&earlier).await;
    app.assert_readable(&[good]).await;
    app.assert_not_stored(&["wt-at", "wt-team", "wt-text", "wt-props", "wt-files"])
        .await;
    assert_eq!(app.n_stored().await, 4);
}

async fn missing_required_fields_are_named(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let good = event_json("mf-good", "post", Some("mf-p"));
    let mut no_channel = event_json("mf-channel", "post", Some("mf-p"));
    no_channel.as_object_mut().unwrap().remove("channel");
    let mut no_text = event_json("mf-text", "post", Some("mf-p"));
    no_text.as_object_mut().unwrap().remove("text");
    let mut no_emoji = event_json("mf-emoji", "reaction_add", Some("mf-p"));
    no_emoji.as_object_mut().unwrap().remove("emoji");
    let no_post = event_json("mf-post", "edit", None);
    let mut no_id = event_json("unused", "post", Some("mf-p"));
    no_id.as_object_mut().unwrap().remove("id");
    let mut empty_user = event_json("mf-user", "post", Some("mf-p"));
    empty_user["user"] = json!("");
    let body = ndjson(&[
        no_channel,
        no_text,
        good.clone(),
        no_emoji,
        no_post,
        no_id,
        empty_user,
    ]);
    let report = app.post(body).await.ok();
    assert_report(&report, 1, 0, 6);
    let rejected = &report["rejected"];
    let missing = "required field is missing";
    assert_rejected(
        &rejected[0],
        0,
        Some(1),
        Some("mf-channel"),
        &format!("channel: {missing}"),
    );
    assert_rejected(
        &rejected[1],
        1,
        Some(2),
        Some("mf-text"),
        &format!("text: {missing}"),
    );
    assert_rejected(
        &rejected[2],
        3,
        Some(4),
        Some("mf-emoji"),
        &format!("emoji: {missing}"),
    );
    assert_rejected(
        &rejected[3],
        4,
        Some(5),
        Some("mf-post"),
        &format!("post: {missing}"),
    );
    assert_rejected(&rejected[4], 5, Some(6), None, &format!("id: {missing}"));
    assert!(rejected[4]["id"].is_null(), "{report}");
    assert_rejected(
        &rejected[5],
        6,
        Some(7),
        Some("mf-user"),
        "user: must not be empty",
    );
    app.assert_readable(&earlier).await;
    app.assert_readable(&[good]).await;
    app.assert_not_stored(&["mf-channel", "mf-text", "mf-emoji", "mf-post", "mf-user"])
        .await;
    assert_eq!(app.n_stored().await, 4);
}

async fn an_unknown_kind_is_named(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let good = event_json("uk-good", "member_leave", None);
    let mut shout = event_json("uk-shout", "post", Some("uk-p"));
    shout["kind"] = json!("shout");
    let mut upper = event_json("uk-upper", "post", Some("uk-p"));
    upper["kind"] = json!("POST");
    let report = app.post(ndjson(&[shout, good.clone(), upper])).await.ok();
    assert_report(&report, 1, 0, 2);
    assert_rejected(
        &report["rejected"][0],
        0,
        Some(1),
        Some("uk-shout"),
        "kind: unknown kind \"shout\"",
    );
    assert_rejected(
        &report["rejected"][1],
        2,
        Some(3),
        Some("uk-upper"),
        "kind: unknown kind \"POST\"",
    );
    app.assert_readable(&earlier).await;
    app.assert_readable(&[good]).await;
    app.assert_not_stored(&["uk-shout", "uk-upper"]).await;
}

async fn invalid_utf8_in_a_line_is_rejected(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let good = [
        event_json("u8-1", "post", Some("u8-p")),
        event_json("u8-2", "post", Some("u8-p")),
    ];
    let mut body = Vec::new();
    body.extend_from_slice(format!("{}\n", good[0]).as_bytes());
    // Latin-1 "é" inside a string.
    let latin1_prefix = br#"{"id":"u8-latin1","kind":"post","at":0,"team":"t","channel":"c","user":"u","post":"p","text":"caf"#;
    body.extend_from_slice(latin1_prefix);
    body.push(0xE9);
    body.extend_from_slice(b"\"}\n");
    // An emoji cut after three of its four bytes.
    body.extend_from_slice(br#"{"id":"u8-cut","kind":"post","at":0,"team":"t","channel":"c","user":"u","post":"p","text":""#);
    body.extend_from_slice(&[0xF0, 0x9F, 0x8E]);
    body.extend_from_slice(b"\"}\n");
    body.extend_from_slice(format!("{}\n", good[1]).as_bytes());
    let report = app.post(body).await.ok();
    assert_report(&report, 2, 0, 2);
    assert_rejected(
        &report["rejected"][0],
        1,
        Some(2),
        None,
        &format!("invalid UTF-8 at byte {}", latin1_prefix.len()),
    );
    assert_rejected(&report["rejected"][1], 2, Some(3), None, "invalid UTF-8");
    app.assert_readable(&earlier).await;
    app.assert_readable(&good).await;
    app.assert_not_stored(&["u8-latin1", "u8-cut"]).await;
    assert_eq!(app.n_stored().await, 5);

    // A JSON array with invalid UTF-8 cannot be split into entries: refused whole.
    let mut body = format!("[{},", event_json("u8-arr-good", "post", Some("u8-p"))).into_bytes();
    body.extend_from_slice(br#"{"id":"u8-arr","text":"caf"#);
    body.push(0xE9);
    body.extend_from_slice(b"\"}]");
    app.post(body)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    app.assert_not_stored(&["u8-arr-good"]).await;
    assert_eq!(app.n_stored().await, 5);
}

async fn oversized_text_is_rejected(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    // Exactly 64 KiB of two-byte characters is fine.
    let mut at_limit = event_json("tx-limit", "post", Some("tx-p"));
    at_limit["text"] = json!("é".repeat(MAX_TEXT_BYTES / 2));
    let mut over = event_json("tx-over", "post", Some("tx-p"));
    over["text"] = json!(format!("{}x", "é".repeat(MAX_TEXT_BYTES / 2)));
    let mut edit_over = event_json("tx-edit-over", "edit", Some("tx-p"));
    edit_over["text"] = json!("🎉".repeat(MAX_TEXT_BYTES / 4 + 1));
    let report = app
        .post(ndjson(&[over, at_limit.clone(), edit_over]))
        .await
        .ok();
    assert_report(&report, 1, 0, 2);
    assert_rejected(
        &report["rejected"][0],
        0,
        Some(1),
        Some("tx-over"),
        "text: is 65537 bytes, more than the limit of 65536",
    );
    assert_rejected(
        &report["rejected"][1],
        2,
        Some(3),
        Some("tx-edit-over"),
        "text: is 65540 bytes, more than the limit of 65536",
    );
    app.assert_readable(&earlier).await;
    app.assert_readable(&[at_limit]).await;
    app.assert_not_stored(&["tx-over", "tx-edit-over"]).await;
}

async fn an_id_over_256_bytes_is_rejected(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    // The limit is in bytes: 128 two-byte characters are 256 bytes.
    let id_at_limit = "é".repeat(MAX_ID_BYTES / 2);
    let id_over = format!("{id_at_limit}x");
    let ascii_over = "x".repeat(MAX_ID_BYTES + 1);
    let at_limit = event_json(&id_at_limit, "post", Some("id-p"));
    let report = app
        .post(ndjson(&[
            event_json(&id_over, "post", Some("id-p")),
            at_limit.clone(),
            event_json(&ascii_over, "post", Some("id-p")),
        ]))
        .await
        .ok();
    assert_report(&report, 1, 0, 2);
    assert_rejected(
        &report["rejected"][0],
        0,
        Some(1),
        None,
        "id: is 257 bytes, more than the limit of 256",
    );
    assert_rejected(
        &report["rejected"][1],
        2,
        Some(3),
        None,
        "id: is 257 bytes, more than the limit of 256",
    );
    app.assert_readable(&earlier).await;
    app.assert_readable(&[at_limit]).await;
    app.assert_not_stored(&[&id_over, &ascii_over]).await;
    assert_eq!(app.n_stored().await, 4);
}

async fn an_event_over_one_mebibyte_is_rejected(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let good = [
        event_json("big-good-1", "post", Some("big-p")),
        event_json("big-good-2", "post", Some("big-p")),
    ];
    let mut big = event_json("big-1", "post", Some("big-p"));
    big["props"] = json!({"blob": "x".repeat(MAX_EVENT_BYTES)});
    let report = app
        .post(ndjson(&[good[0].clone(), big.clone(), good[1].clone()]))
        .await
        .ok();
    assert_report(&report, 2, 0, 1);
    assert_rejected(
        &report["rejected"][0],
        1,
        Some(2),
        None,
        "(event): event is",
    );
    assert_rejected(
        &report["rejected"][0],
        1,
        Some(2),
        None,
        "more than the limit of 1048576",
    );
    // The same in an array.
    let report = app.post(json!([big]).to_string()).await.ok();
    assert_report(&report, 0, 0, 1);
    assert_rejected(
        &report["rejected"][0],
        0,
        None,
        None,
        "more than the limit of 1048576",
    );
    app.assert_readable(&earlier).await;
    app.assert_readable(&good).await;
    app.assert_not_stored(&["big-1"]).await;
    assert_eq!(app.n_stored().await, 5);
}

/// An NDJSON line of exactly `MAX_EVENT_BYTES` bytes, given `at` as text.
fn event_line_at_the_size_limit(id: &str, at: &str) -> String {
    let line = |pad: &str| {
        format!(
            r#"{{"id":"{id}","kind":"member_join","at":{at},"team":"t","channel":"c","user":"u","props":{{"blob":"{pad}"}}}}"#
        )
    };
    let pad = "x".repeat(MAX_EVENT_BYTES - line("").len());
    let line = line(&pad);
    assert_eq!(line.len(), MAX_EVENT_BYTES);
    line
}

/// An event the API accepts must be readable afterwards, even when it is at
/// the size limit and its stored (canonical) form comes out longer than what
/// was sent (`"at"` given without fractional seconds or as epoch milliseconds).
async fn an_event_accepted_at_the_size_limit_stays_readable(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let lines = [
        event_line_at_the_size_limit("limit-rfc3339", r#""2024-05-01T09:30:00Z""#),
        event_line_at_the_size_limit("limit-epoch-ms", "1714555800000"),
    ];
    let report = app.post(format!("{}\n{}\n", lines[0], lines[1])).await.ok();
    assert_report(&report, 2, 0, 0);
    for id in ["limit-rfc3339", "limit-epoch-ms"] {
        let body = app.get_event(id).await.ok();
        assert_eq!(body["event"]["id"], id);
        assert_eq!(body["event"]["at"], "2024-05-01T09:30:00.000Z");
        let blob = body["event"]["props"]["blob"].as_str().unwrap();
        assert!(blob.len() > MAX_EVENT_BYTES - 200, "{}", blob.len());
    }
    app.assert_readable(&earlier).await;
    // Nothing was altered, so verification finds nothing wrong.
    let verify = app.store.verify().await.unwrap();
    assert!(verify.ok, "{verify:?}");
}

async fn timestamps_out_of_range_are_rejected(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let with_at = |id: &str, at: Value| {
        let mut event = event_json(id, "member_join", None);
        event["at"] = at;
        event
    };
    let bad = [
        with_at("ts-negative", json!(-1)),
        with_at("ts-negative-big", json!(-86_400_000)),
        with_at("ts-1969", json!("1969-12-31T23:59:59.999Z")),
        with_at("ts-year-10000", json!("10000-01-01T00:00:00Z")),
        with_at("ts-year-10000-ms", json!(253_402_300_800_000_i64)),
        with_at("ts-i64-max", json!(i64::MAX)),
        with_at("ts-offset-past-9999", json!("9999-12-31T23:59:59-01:00")),
        with_at("ts-not-a-date", json!("yesterday")),
    ];
    // The ends of the range are fine.
    let good = [
        with_at("ts-epoch-0", json!("1970-01-01T00:00:00.000Z")),
        with_at("ts-last", json!("9999-12-31T23:59:59.999Z")),
    ];
    let mut batch = bad.to_vec();
    batch.extend(good.iter().cloned());
    let report = app.post(ndjson(&batch)).await.ok();
    assert_report(&report, 2, 0, bad.len());
    for (index, event) in bad.iter().enumerate() {
        let id = event["id"].as_str().unwrap();
        assert_rejected(
            &report["rejected"][index],
            index,
            Some(index + 1),
            Some(id),
            "at: ",
        );
    }
    let epoch_zero_as_ms = with_at("ts-epoch-0-ms", json!(0));
    let report = app.post(ndjson(&[epoch_zero_as_ms])).await.ok();
    assert_report(&report, 1, 0, 0);
    app.assert_readable(&earlier).await;
    app.assert_readable(&good).await;
    app.assert_readable(&[with_at("ts-epoch-0-ms", json!("1970-01-01T00:00:00.000Z"))])
        .await;
    let ids: Vec<&str> = bad.iter().map(|e| e["id"].as_str().unwrap()).collect();
    app.assert_not_stored(&ids).await;
    assert_eq!(app.n_stored().await, 6);
}

async fn an_empty_body_is_a_bad_request(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    for body in ["", " ", "\n\n\r\n", "\t \n"] {
        let reply = app.post(body).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "bad_request");
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("empty body"),
            "{}",
            reply.text()
        );
    }
    app.assert_readable(&earlier).await;
    assert_eq!(app.n_stored().await, 3);
}

async fn a_truncated_json_array_is_a_bad_request(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let whole = json!([
        event_json("tr-1", "post", Some("tr-p")),
        event_json("tr-2", "post", Some("tr-p")),
    ])
    .to_string();
    for cut in [whole.len() - 1, whole.len() / 2, 1] {
        app.post(whole[..cut].to_owned())
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    // Trailing garbage after the array is refused too.
    app.post(format!("{whole} ["))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    app.assert_not_stored(&["tr-1", "tr-2"]).await;
    app.assert_readable(&earlier).await;
    assert_eq!(app.n_stored().await, 3);
    // The whole array, sent again, goes in.
    assert_report(&app.post(whole).await.ok(), 2, 0, 0);
}

async fn a_truncated_ndjson_upload_keeps_its_complete_lines(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let events = [
        event_json("tn-1", "post", Some("tn-p")),
        event_json("tn-2", "edit", Some("tn-p")),
        event_json("tn-3", "edit", Some("tn-p")),
    ];
    let whole = ndjson(&events);
    // Cut in the middle of the last object, as a dropped connection would.
    let last_line_start = whole.len() - events[2].to_string().len() - 1;
    let cut = &whole[..last_line_start + 30];
    let report = app.post(cut.to_owned()).await.ok();
    assert_report(&report, 2, 0, 1);
    assert_rejected(&report["rejected"][0], 2, Some(3), None, "malformed JSON");
    app.assert_readable(&earlier).await;
    app.assert_readable(&events[..2]).await;
    app.assert_not_stored(&["tn-3"]).await;
    // The client retries the whole upload: only the missing event is new.
    let report = app.post(whole).await.ok();
    assert_report(&report, 1, 2, 0);
    app.assert_readable(&events).await;
    assert_eq!(app.n_stored().await, 6);
}

async fn a_body_over_the_limit_is_refused_with_413(backend: Backend) {
    const LIMIT: usize = 1024;
    let app = App::with_limit(backend, LIMIT as u64).await;
    let fits = event_json("lim-1", "post", Some("lim-p"));
    let line = format!("{fits}\n");
    assert!(line.len() < LIMIT);
    // Exactly at the limit (padded with blank lines) is accepted...
    let at_limit = format!("{line}{}", "\n".repeat(LIMIT - line.len()));
    assert_eq!(at_limit.len(), LIMIT);
    // ...one byte more is not, whatever the content.
    let over_by_one = format!("{at_limit}\n");
    let many: Vec<Value> = (0..20)
        .map(|i| event_json(&format!("lim-many-{i}"), "post", Some("lim-p")))
        .collect();
    for body in [
        over_by_one,
        ndjson(&many),
        Value::Array(many.clone()).to_string(),
    ] {
        let reply = app.post(body).await;
        reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        assert!(reply.text().contains("1024"), "{}", reply.text());
    }
    assert_eq!(app.n_stored().await, 0);
    app.assert_not_stored(&["lim-1", "lim-many-0", "lim-many-19"])
        .await;
    let report = app.post(at_limit).await.ok();
    assert_report(&report, 1, 0, 0);
    app.assert_readable(&[fits]).await;
    assert_eq!(app.n_stored().await, 1);
}

// --------------------------------------------------------------------- auth

/// Authorization header values that must not get in.
fn bad_authorizations() -> Vec<Option<HeaderValue>> {
    let mut values = vec![None];
    for text in [
        "Bearer wrong-token-wrong-token".to_owned(),
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        TOKEN.to_owned(),
        format!("Bearer{TOKEN}"),
        format!("Basic {TOKEN}"),
        format!("Token {TOKEN}"),
        format!("Bearer: {TOKEN}"),
        format!("Bearer {TOKEN} {TOKEN}"),
    ] {
        values.push(Some(HeaderValue::from_str(&text).unwrap()));
    }
    // Not visible ASCII at all.
    values.push(Some(HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap()));
    values
}

async fn requests_without_the_right_token_are_refused(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let attempt = event_json("auth-1", "post", Some("ep-0"));
    for authorization in bad_authorizations() {
        for (method, path, body) in [
            (
                Method::POST,
                "/api/v1/events",
                ndjson(std::slice::from_ref(&attempt)),
            ),
            (Method::GET, "/api/v1/events/earlier-0", String::new()),
            (Method::GET, "/api/v1/posts/ep-0", String::new()),
        ] {
            let mut request = Request::builder().method(method).uri(path);
            if let Some(value) = &authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let reply = app.send(request.body(Body::from(body)).unwrap()).await;
            reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(
                reply
                    .headers
                    .get(header::WWW_AUTHENTICATE)
                    .map(HeaderValue::as_bytes),
                Some(&b"Bearer"[..]),
                "{path} with {authorization:?}"
            );
            // Nothing about the archive leaks into the refusal.
            assert!(!reply.text().contains("allen-p"), "{}", reply.text());
        }
    }
    // Nothing was stored by the refused posts, and nothing was lost.
    app.assert_not_stored(&["auth-1"]).await;
    app.assert_readable(&earlier).await;
    assert_eq!(app.n_stored().await, 3);
    // The right token opens all three.
    assert_report(&app.post(ndjson(&[attempt])).await.ok(), 1, 0, 0);
    app.get("/api/v1/posts/ep-0").await.ok();
}

/// RFC 9110 §11.1: the authentication scheme is case-insensitive.
async fn the_bearer_scheme_is_case_insensitive(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let reply = app
            .send(
                Request::get("/api/v1/events/earlier-0")
                    .header(header::AUTHORIZATION, format!("{scheme} {}", app.reader))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{scheme}: {}", reply.text());
        assert_eq!(reply.json()["event"], earlier[0]);
    }
}

// -------------------------------------------------------------------- posts

async fn a_post_shows_its_versions_reactions_and_events(backend: Backend) {
    let app = App::new(backend).await;
    let at = |minute: u32| format!("2024-05-01T09:{minute:02}:00.000Z");
    let make = |id: &str, kind: &str, minute: u32, user: &str| {
        let mut event = event_json(id, kind, Some("hist-p"));
        event["at"] = json!(at(minute));
        event["user"] = json!(user);
        event
    };
    let mut post = make("hist-post", "post", 30, "allen-p");
    post["parent"] = json!("thread-root");
    post["text"] = json!("first version: café 🎉");
    let mut edit_1 = make("hist-edit-1", "edit", 31, "allen-p");
    edit_1["text"] = json!("second version: Привет");
    let mut edit_2 = make("hist-edit-2", "edit", 33, "allen-p");
    edit_2["text"] = json!("third version: 你好");
    let add_alice = make("hist-react-alice", "reaction_add", 32, "alice");
    let add_bob = make("hist-react-bob", "reaction_add", 34, "bob");
    let mut add_heart = make("hist-react-heart", "reaction_add", 35, "alice");
    add_heart["emoji"] = json!("heart");
    let remove_alice = make("hist-unreact-alice", "reaction_remove", 36, "alice");
    let delete = make("hist-delete", "delete", 40, "compliance-bot");
    let mut unrelated = event_json("hist-other", "post", Some("hist-other-p"));
    unrelated["text"] = json!("another post");

    // In two batches, with an unrelated post in between.
    let first = [post.clone(), edit_1.clone(), add_alice.clone()];
    assert_report(&app.post(ndjson(&first)).await.ok(), 3, 0, 0);
    let second = [
        unrelated.clone(),
        edit_2.clone(),
        add_bob.clone(),
        add_heart.clone(),
        remove_alice.clone(),
        delete.clone(),
    ];
    assert_report(&app.post(ndjson(&second)).await.ok(), 6, 0, 0);

    let body = app.get("/api/v1/posts/hist-p").await.ok();
    assert_eq!(body["post"], "hist-p");
    assert_eq!(body["team"], "energy-trading");
    assert_eq!(body["channel"], "gas-desk");
    assert_eq!(body["parent"], "thread-root");
    assert_eq!(body["edited"], true);
    assert_eq!(body["deleted"], true);
    assert_eq!(
        body["versions"],
        json!([
            {"version": 1, "event_id": "hist-post", "kind": "post", "at": at(30),
             "user": "allen-p", "text": "first version: café 🎉"},
            {"version": 2, "event_id": "hist-edit-1", "kind": "edit", "at": at(31),
             "user": "allen-p", "text": "second version: Привет"},
            {"version": 3, "event_id": "hist-edit-2", "kind": "edit", "at": at(33),
             "user": "allen-p", "text": "third version: 你好"},
            {"version": 4, "event_id": "hist-delete", "kind": "delete", "at": at(40),
             "user": "compliance-bot"},
        ])
    );
    assert_eq!(
        body["reactions"],
        json!([
            {"emoji": "heart", "users": ["alice"]},
            {"emoji": "thumbsup", "users": ["bob"]},
        ])
    );
    let expected_events = [
        post,
        edit_1,
        add_alice,
        edit_2,
        add_bob,
        add_heart,
        remove_alice,
        delete,
    ];
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), expected_events.len(), "{body}");
    let mut last_seq = 0;
    for (got, expected) in events.iter().zip(&expected_events) {
        assert_eq!(&got["event"], expected);
        let seq = got["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "events in store order: {body}");
        last_seq = seq;
        // The same record as GET /api/v1/events/{id} shows.
        let single = app.get_event(expected["id"].as_str().unwrap()).await.ok();
        assert_eq!(&single, got);
    }

    // A post with no edits, deletes or reactions.
    let body = app.get("/api/v1/posts/hist-other-p").await.ok();
    assert_eq!(body["edited"], false);
    assert_eq!(body["deleted"], false);
    assert_eq!(body["reactions"], json!([]));
    assert_eq!(body["versions"].as_array().unwrap().len(), 1);
    assert!(body.get("parent").is_none(), "{body}");
    assert_eq!(body["events"][0]["event"], unrelated);
}

async fn unknown_posts_and_events_are_404(backend: Backend) {
    let app = App::new(backend).await;
    app.seed().await;
    for path in [
        "/api/v1/posts/no-such-post",
        "/api/v1/events/no-such-event",
        // Names of things that exist, in the other namespace.
        "/api/v1/posts/earlier-0",
        "/api/v1/events/ep-0",
        "/api/v1/events/%F0%9F%8E%89",
    ] {
        let reply = app.get(path).await;
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
}

// ------------------------------------------------------------ health, metrics

async fn health_and_metrics_report_what_happened(backend: Backend) {
    let app = App::new(backend).await;
    // Neither needs the token.
    let unauthenticated = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let health = app.send(unauthenticated("/healthz")).await;
    assert_eq!(health.ok()["status"], "ok");

    let before = app.send(unauthenticated("/metrics")).await;
    assert_eq!(before.status, StatusCode::OK);
    assert!(
        before.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        before.headers
    );
    let text = before.text();
    assert_eq!(metric(&text, "holdfast_events_ingested_total"), 0.0);
    assert_eq!(metric(&text, "holdfast_events_rejected_total"), 0.0);

    let mut batch: Vec<Value> = (0..5)
        .map(|i| event_json(&format!("m-{i}"), "post", Some("m-p")))
        .collect();
    batch.push(json!({"id": "m-bad-1", "kind": "post"}));
    batch.push(json!({"id": "m-bad-2", "kind": "nope"}));
    assert_report(&app.post(ndjson(&batch)).await.ok(), 5, 0, 2);
    assert_report(&app.post(ndjson(&batch)).await.ok(), 0, 5, 2);
    assert_report(&app.post(ndjson(&batch[..1])).await.ok(), 0, 1, 0);

    let text = app.send(unauthenticated("/metrics")).await.text();
    assert!(
        text.contains("# TYPE holdfast_events_ingested counter"),
        "{text}"
    );
    assert_eq!(metric(&text, "holdfast_events_ingested_total"), 5.0);
    assert_eq!(metric(&text, "holdfast_store_last_seq"), 5.0);
    assert!(text.contains("holdfast_build_info{version=\""), "{text}");
    assert_eq!(metric(&text, "holdfast_events_rejected_total"), 4.0);
    assert_eq!(metric(&text, "holdfast_events_duplicate_total"), 6.0);
    assert_eq!(metric(&text, "holdfast_ingest_requests_total"), 3.0);
    assert!(
        metric(&text, "holdfast_store_fsyncs_total") >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "holdfast_store_bytes_written_total") > 0.0,
        "{text}"
    );
    let group_commits = metric(&text, "holdfast_store_group_commits_total");
    assert!(group_commits >= 1.0, "{text}");
    // The batch-size histogram: one observation per group commit, summing
    // to the events stored.
    assert!(
        text.contains("# TYPE holdfast_store_group_commit_events histogram"),
        "{text}"
    );
    assert_eq!(
        metric(&text, "holdfast_store_group_commit_events_count"),
        group_commits
    );
    assert_eq!(metric(&text, "holdfast_store_group_commit_events_sum"), 5.0);
    assert_eq!(
        metric(
            &text,
            "holdfast_store_group_commit_events_bucket{le=\"+Inf\"}"
        ),
        group_commits
    );
    assert_eq!(
        app.n_stored().await,
        5,
        "the counter matches what the store holds"
    );
}

// ------------------------------------------------------------- a real socket

/// Serves the app on 127.0.0.1:0; the listener is bound before this returns.
async fn serve(app: &App) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

async fn body_json(response: reqwest::Response) -> (StatusCode, HeaderMap, Value) {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers() {
        headers.insert(
            header::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    let bytes = response.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", String::from_utf8_lossy(&bytes)));
    (status, headers, value)
}

async fn ingest_and_read_back_over_a_real_socket(backend: Backend) {
    const LIMIT: u64 = 16 * 1024;
    let app = App::with_limit(backend, LIMIT).await;
    let base = serve(&app).await;
    let client = reqwest::Client::new();
    let events = [
        rich_post("sock-1", "sock-p"),
        rich_post("sock-2 ünïcødé/é?#%", "sock-p"),
    ];
    let response = client
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(format!("{}\n{{\"broken\n", ndjson(&events)))
        .send()
        .await
        .unwrap();
    let (status, _, report) = body_json(response).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_report(&report, 2, 0, 1);
    assert_rejected(&report["rejected"][0], 3, Some(4), None, "malformed JSON");

    for event in &events {
        let id = event["id"].as_str().unwrap();
        let response = client
            .get(format!("{base}/api/v1/events/{}", path_segment(id)))
            .bearer_auth(&app.reader)
            .send()
            .await
            .unwrap();
        let (status, _, body) = body_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(&body["event"], event);
    }
    let response = client
        .get(format!("{base}/api/v1/posts/sock-p"))
        .bearer_auth(&app.reader)
        .send()
        .await
        .unwrap();
    let (status, _, body) = body_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["versions"].as_array().unwrap().len(), 2, "{body}");

    // No token: 401 with the challenge.
    let response = client
        .post(format!("{base}/api/v1/events"))
        .body(ndjson(&[event_json("sock-anon", "post", Some("sock-p"))]))
        .send()
        .await
        .unwrap();
    let (status, headers, body) = body_json(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body["error"]["code"], "unauthorized");

    // Over the limit: 413, and the connection's next request still works.
    let too_big: Vec<Value> = (0..200)
        .map(|i| event_json(&format!("sock-big-{i}"), "post", Some("sock-p")))
        .collect();
    let too_big = ndjson(&too_big);
    assert!(too_big.len() as u64 > LIMIT);
    let response = client
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(TOKEN)
        .body(too_big)
        .send()
        .await
        .unwrap();
    let (status, _, body) = body_json(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");

    let response = client.get(format!("{base}/healthz")).send().await.unwrap();
    let (status, _, body) = body_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");

    app.assert_not_stored(&["sock-anon", "sock-big-0", "sock-big-199"])
        .await;
    assert_eq!(app.n_stored().await, 2);
}

async fn concurrent_ingest_over_a_real_socket_loses_nothing(backend: Backend) {
    const N_TASKS: usize = 8;
    const N_BATCHES: usize = 20;
    const BATCH_EVENTS: usize = 50;
    let app = App::new(backend).await;
    let base = serve(&app).await;
    let client = reqwest::Client::new();
    // Every task also sends this one batch, midway: its events are stored once.
    let shared_batch: Vec<Value> = (0..BATCH_EVENTS)
        .map(|i| event_json(&format!("shared-{i}"), "post", Some("shared-p")))
        .collect();

    let mut tasks = Vec::new();
    for task_idx in 0..N_TASKS {
        let client = client.clone();
        let base = base.clone();
        let shared_batch = shared_batch.clone();
        let reader = app.reader.clone();
        tasks.push(tokio::spawn(async move {
            let post = |body: String| {
                client
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(TOKEN)
                    .body(body)
                    .send()
            };
            let mut acknowledged = Vec::new();
            let mut shared_accepted = 0;
            for batch_idx in 0..N_BATCHES {
                if batch_idx == N_BATCHES / 2 {
                    let (status, _, report) =
                        body_json(post(ndjson(&shared_batch)).await.unwrap()).await;
                    assert_eq!(status, StatusCode::OK, "{report}");
                    assert_eq!(report["rejected"], json!([]), "{report}");
                    let accepted = report["accepted"].as_u64().unwrap();
                    assert_eq!(
                        accepted + report["duplicates"].as_u64().unwrap(),
                        BATCH_EVENTS as u64,
                        "{report}"
                    );
                    shared_accepted += accepted;
                }
                let batch: Vec<Value> = (0..BATCH_EVENTS)
                    .map(|event_idx| {
                        let mut event = event_json(
                            &format!("c{task_idx}-{batch_idx}-{event_idx}"),
                            "post",
                            Some(&format!("c{task_idx}-p{event_idx}")),
                        );
                        event["channel"] = json!(format!("channel-{}", event_idx % 4));
                        event["at"] =
                            json!(format!("2024-05-{:02}T09:30:00.000Z", 1 + batch_idx % 5));
                        event
                    })
                    .collect();
                let (status, _, report) = body_json(post(ndjson(&batch)).await.unwrap()).await;
                assert_eq!(status, StatusCode::OK, "{report}");
                assert_report(&report, BATCH_EVENTS as u64, 0, 0);
                // Read after acknowledgement, while the others keep writing.
                for event in [&batch[0], &batch[BATCH_EVENTS - 1]] {
                    let id = event["id"].as_str().unwrap();
                    let response = client
                        .get(format!("{base}/api/v1/events/{id}"))
                        .bearer_auth(&reader)
                        .send()
                        .await
                        .unwrap();
                    let (status, _, body) = body_json(response).await;
                    assert_eq!(status, StatusCode::OK, "{id}: {body}");
                    assert_eq!(&body["event"], event);
                }
                acknowledged.extend(
                    batch
                        .iter()
                        .map(|event| event["id"].as_str().unwrap().to_owned()),
                );
            }
            (acknowledged, shared_accepted)
        }));
    }
    let mut acknowledged = Vec::new();
    let mut shared_accepted = 0;
    for task in tasks {
        let (ids, accepted) = task.await.unwrap();
        acknowledged.extend(ids);
        shared_accepted += accepted;
    }
    assert_eq!(acknowledged.len(), N_TASKS * N_BATCHES * BATCH_EVENTS);
    assert_eq!(
        shared_accepted, BATCH_EVENTS as u64,
        "the shared batch is stored once"
    );

    let expected_total = acknowledged.len() + BATCH_EVENTS;
    assert_eq!(app.n_stored().await, expected_total as i64);
    for id in acknowledged
        .iter()
        .map(String::as_str)
        .chain(shared_batch.iter().map(|e| e["id"].as_str().unwrap()))
    {
        let stored = app.store.get_event(id).await.unwrap();
        assert_eq!(stored.map(|s| s.event.id).as_deref(), Some(id));
    }
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&text, "holdfast_events_ingested_total"),
        expected_total as f64
    );
    assert_eq!(
        metric(&text, "holdfast_store_group_commit_events_sum"),
        expected_total as f64
    );
}

// ------------------------------------------------------ names the db must hold

/// A NUL character is a valid JSON string character. Whatever holdfast makes
/// of an event carrying one in a name (store it, or reject it naming the
/// field), it must answer for the batch with 200, store the batch's good
/// events, and keep accepting writes afterwards.
async fn nul_characters_in_names_are_stored_or_rejected(backend: Backend) {
    let app = App::new(backend).await;
    let earlier = app.seed().await;
    let mut all_good = earlier.clone();
    for (round, field) in ["id", "user", "post", "team", "channel"]
        .into_iter()
        .enumerate()
    {
        let mut odd = event_json(&format!("nul-{field}"), "post", Some("nul-p"));
        odd[field] = json!(format!("before\u{0}after-{field}"));
        let good = [
            event_json(&format!("nul-good-{round}-a"), "post", Some("nul-p")),
            event_json(&format!("nul-good-{round}-b"), "post", Some("nul-p")),
        ];
        let reply = app
            .post(ndjson(&[good[0].clone(), odd.clone(), good[1].clone()]))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "NUL in {field}: {}",
            reply.text()
        );
        let report = reply.json();
        if report["rejected"] == json!([]) {
            assert_report(&report, 3, 0, 0);
            app.assert_readable(std::slice::from_ref(&odd)).await;
        } else {
            assert_report(&report, 2, 0, 1);
            assert_rejected(
                &report["rejected"][0],
                1,
                Some(2),
                None,
                &format!("{field}: "),
            );
        }
        app.assert_readable(&good).await;
        all_good.extend(good);
    }
    app.assert_readable(&all_good).await;
}

/// However an event with a NUL in `user` or `post` is answered, it must not
/// stop the archive: later batches are stored, and the store opens again.
async fn an_event_with_a_nul_does_not_stop_the_archive(backend: Backend) {
    for field in ["user", "post"] {
        let app = App::new(backend).await;
        let earlier = app.seed().await;
        let mut odd = event_json("nul-event", "post", Some("nul-p"));
        odd[field] = json!("before\u{0}after");
        // Its own answer is the other test's business.
        let _ = app.post(ndjson(&[odd])).await;

        let later = event_json("nul-later", "post", Some("nul-later-p"));
        let reply = app.post(ndjson(std::slice::from_ref(&later))).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "a batch after the NUL in {field}: {}",
            reply.text()
        );
        assert_report(&reply.json(), 1, 0, 0);
        app.assert_readable(&earlier).await;
        app.assert_readable(std::slice::from_ref(&later)).await;

        // Close and open again, as a restart would.
        let App {
            router,
            store,
            _archive: archive,
            ..
        } = app;
        drop(router);
        store.close().await;
        let reopened = holdfast::store::Store::open(&archive.options).await;
        let (store, _) = reopened.unwrap_or_else(|error| {
            panic!("the store must open again after a NUL in {field}: {error}")
        });
        for event in earlier.iter().chain([&later]) {
            let id = event["id"].as_str().unwrap();
            let stored = store.get_event(id).await.unwrap();
            assert_eq!(stored.map(|s| s.event.id).as_deref(), Some(id));
        }
    }
}

both_backends!(
    ndjson_batch_is_stored_and_reads_back_identically,
    json_array_batch_is_stored_and_reads_back_identically,
    json_array_rejections_have_an_index_and_no_line,
    the_same_batch_twice_is_all_duplicates_the_second_time,
    duplicates_inside_one_batch_count_once,
    a_malformed_json_line_is_rejected_and_good_lines_are_stored,
    wrong_types_are_rejected_naming_the_field,
    missing_required_fields_are_named,
    an_unknown_kind_is_named,
    invalid_utf8_in_a_line_is_rejected,
    oversized_text_is_rejected,
    an_id_over_256_bytes_is_rejected,
    an_event_over_one_mebibyte_is_rejected,
    an_event_accepted_at_the_size_limit_stays_readable,
    timestamps_out_of_range_are_rejected,
    an_empty_body_is_a_bad_request,
    a_truncated_json_array_is_a_bad_request,
    a_truncated_ndjson_upload_keeps_its_complete_lines,
    a_body_over_the_limit_is_refused_with_413,
    requests_without_the_right_token_are_refused,
    the_bearer_scheme_is_case_insensitive,
    a_post_shows_its_versions_reactions_and_events,
    unknown_posts_and_events_are_404,
    health_and_metrics_report_what_happened,
    ingest_and_read_back_over_a_real_socket,
    concurrent_ingest_over_a_real_socket_loses_nothing,
    nul_characters_in_names_are_stored_or_rejected,
    an_event_with_a_nul_does_not_stop_the_archive,
);
