//! Search over HTTP and on the command line: events become searchable
//! shortly after their acknowledgement (the follower), every bad parameter
//! is a 400 that names it, paging by cursor, context, and `holdfast search`
//! as a table and as JSON lines.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use helpers::{TestArchive, holdfast};
use holdfast::db::Backend;
use holdfast::index::{Follower, FollowerHandle, SearchIndex};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "search-api-test-token-77a1c0";

struct App {
    router: Router,
    follower: Option<FollowerHandle>,
    /// A compliance officer's token that sees every team.
    reader: String,
    _archive: TestArchive,
}

impl App {
    async fn new(backend: Backend) -> App {
        let archive = TestArchive::new(backend).await;
        let store = archive.open().await;
        let index =
            Arc::new(SearchIndex::open_or_create(&archive.dir.path().join("index")).unwrap());
        let follower = Follower::start(
            store.clone(),
            Arc::clone(&index),
            Duration::from_millis(100),
        );
        let access = holdfast::api::AccessState::open(
            &store,
            &holdfast::auth::AuthConfig::default(),
            Some(holdfast::api::auth::TokenHash::of(
                &secrecy::SecretString::from(TOKEN.to_owned()),
            )),
        )
        .await
        .unwrap();
        let (_, reader) = access
            .tokens
            .create_api_token(
                holdfast::auth::NewApiToken {
                    name: "search-reader".to_owned(),
                    role: holdfast::auth::Role::ComplianceOfficer,
                    scope: holdfast::search::Scope::All,
                    created_by: "tests".to_owned(),
                    expires_at_ms: None,
                },
                chrono::Utc::now().timestamp_millis(),
            )
            .await
            .unwrap();
        let state = holdfast::api::AppState::new(store, access, 16 * 1024 * 1024).with_index(index);
        App {
            router: holdfast::api::router(state),
            follower: Some(follower),
            reader: secrecy::ExposeSecret::expose_secret(&reader).to_owned(),
            _archive: archive,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&body).unwrap_or_else(|error| {
            panic!("not JSON ({error}): {}", String::from_utf8_lossy(&body))
        });
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(
            Request::get(path)
                .header(header::AUTHORIZATION, format!("Bearer {}", self.reader))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn post_events(&self, events: &[Value]) {
        let body: String = events.iter().map(|event| format!("{event}\n")).collect();
        let (status, reply) = self
            .send(
                Request::post("/api/v1/events")
                    .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(reply["accepted"], events.len());
    }

    /// Searches until `total` hits show up (or 10 s pass); returns the reply
    /// and how long it took.
    async fn search_until(&self, query: &str, total: u64) -> (Value, Duration) {
        let started = Instant::now();
        loop {
            let (status, reply) = self
                .get(&format!("/api/v1/search?q={}", encode(query)))
                .await;
            assert_eq!(status, StatusCode::OK, "{reply}");
            if reply["total"] == total || started.elapsed() > Duration::from_secs(10) {
                return (reply, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(follower) = self.follower.take() {
            follower.stop().await;
        }
    }
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn post(id: &str, channel: &str, user: &str, at: &str, text: &str) -> Value {
    json!({"id": format!("e-{id}"), "kind": "post", "at": at, "team": "legal",
           "channel": channel, "user": user, "post": id, "text": text})
}

fn corpus() -> Vec<Value> {
    vec![
        post(
            "p1",
            "deals",
            "allen-p",
            "2024-01-15T09:00:00Z",
            "approve the wire transfer",
        ),
        post(
            "p2",
            "deals",
            "dasovich-j",
            "2024-01-15T09:01:00Z",
            "wire it to the offshore account",
        ),
        post(
            "p3",
            "deals",
            "allen-p",
            "2024-01-15T09:01:00Z",
            "no wire today",
        ),
        json!({"id": "e-p4", "kind": "post", "at": "2024-01-15T09:02:00Z", "team": "legal",
               "channel": "deals", "user": "lay-k", "post": "p4", "parent": "p1",
               "text": "Трансфер одобрен"}),
    ]
}

async fn events_become_searchable_and_page_by_cursor(backend: Backend) {
    let app = App::new(backend).await;
    app.post_events(&corpus()).await;
    let (reply, waited) = app.search_until("wire", 3).await;
    assert_eq!(reply["total"], 3, "{reply}");
    eprintln!("searchable after {waited:?}");
    let hit = &reply["hits"][0];
    for field in [
        "id", "post", "kind", "team", "channel", "user", "at", "snippet",
    ] {
        assert!(!hit[field].is_null(), "hit lacks {field}: {hit}");
    }
    // Newest first; p2 and p3 share a timestamp: the later stored comes first.
    assert_eq!(hit["post"], "p3", "{reply}");
    assert_eq!(reply["hits"][1]["post"], "p2", "{reply}");
    assert_eq!(hit["snippet"]["highlights"][0], json!([3, 7]));

    // Paging one hit at a time visits each once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/search?q=wire&limit=1&sort=oldest".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.push(page["hits"][0]["post"].as_str().unwrap().to_owned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec!["p1", "p2", "p3"]);

    let (status, context) = app.get("/api/v1/posts/p4/context?before=2&after=2").await;
    assert_eq!(status, StatusCode::OK, "{context}");
    assert_eq!(context["thread_root"], "p1");
    assert_eq!(context["thread"].as_array().unwrap().len(), 2);
    let before: Vec<&str> = context["before"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["post"].as_str().unwrap())
        .collect();
    assert_eq!(before, vec!["p2", "p3"]);
    assert_eq!(context["after"], json!([]));
    let (status, missing) = app.get("/api/v1/posts/nope/context").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");

    // Later events show up too, without restarting anything.
    app.post_events(&[post(
        "p9",
        "deals",
        "lay-k",
        "2024-02-01T00:00:00Z",
        "late wire",
    )])
    .await;
    let (reply, _) = app.search_until("wire", 4).await;
    assert_eq!(reply["total"], 4);
    app.stop().await;
}

async fn bad_parameters_are_400s_that_name_the_problem(backend: Backend) {
    let app = App::new(backend).await;
    app.post_events(&corpus()).await;
    let cases = [
        ("/api/v1/search?q=wire%20AND", "bad_query", "column 9"),
        ("/api/v1/search?q=frm%3Aalice", "bad_query", "from:"),
        ("/api/v1/search?q=%2A", "bad_query", "column 1"),
        ("/api/v1/search", "bad_request", "q is missing"),
        ("/api/v1/search?q=wire&sort=best", "bad_request", "sort"),
        (
            "/api/v1/search?q=wire&versions=some",
            "bad_request",
            "versions",
        ),
        (
            "/api/v1/search?q=wire&cursor=garbage!",
            "bad_request",
            "cursor",
        ),
        ("/api/v1/search?q=wire&limit=0", "bad_request", "limit"),
        ("/api/v1/search?q=wire&limit=501", "bad_request", "limit"),
        ("/api/v1/search?q=wire&limit=many", "bad_request", "limit"),
        ("/api/v1/search?q=wire&tz=Mars", "bad_request", "tz"),
        (
            "/api/v1/posts/p1/context?before=1000",
            "bad_request",
            "before",
        ),
        ("/api/v1/posts/p1/context?after=-1", "bad_request", "after"),
    ];
    for (path, code, mentions) in cases {
        let (status, reply) = app.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{path}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{path}: {message}");
    }
    let (_, reply) = app.get("/api/v1/search?q=wire%20AND").await;
    assert_eq!(reply["error"]["column"], 9);
    assert_eq!(reply["error"]["found"], "the end of the query");
    for path in ["/api/v1/search?q=wire", "/api/v1/posts/p1/context"] {
        let (status, _) = app
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    app.stop().await;
}

both_backends!(
    events_become_searchable_and_page_by_cursor,
    bad_parameters_are_400s_that_name_the_problem,
);

#[test]
fn the_command_line_searches_as_a_table_and_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("events.ndjson");
    let body: String = corpus().iter().map(|event| format!("{event}\n")).collect();
    std::fs::write(&input, body).unwrap();
    let ingest = holdfast(&data).arg("ingest").arg(&input).output().unwrap();
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );

    let table = holdfast(&data).args(["search", "wire"]).output().unwrap();
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("legal/deals"), "{text}");
    assert!(text.contains("[wire]"), "{text}");
    assert!(text.contains("3 of 3 hits for wire"), "{text}");

    let json_out = holdfast(&data)
        .args([
            "search",
            "трансфер OR offshore",
            "--json",
            "--sort",
            "oldest",
        ])
        .output()
        .unwrap();
    assert!(
        json_out.status.success(),
        "{}",
        String::from_utf8_lossy(&json_out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(json_out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "two hits and a summary: {lines:?}");
    assert_eq!(lines[0]["post"], "p2");
    assert_eq!(lines[1]["post"], "p4");
    for field in [
        "id", "post", "kind", "team", "channel", "user", "at", "snippet",
    ] {
        assert!(!lines[0][field].is_null(), "{field}");
    }
    assert_eq!(lines[2]["total"], 2);

    let bad = holdfast(&data)
        .args(["search", "wire AND ("])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8(bad.stderr).unwrap();
    assert!(stderr.contains("at column 11"), "{stderr}");
    assert!(stderr.contains("          ^"), "{stderr}");

    let bad_limit = holdfast(&data)
        .args(["search", "wire", "--limit", "0"])
        .output()
        .unwrap();
    assert_eq!(bad_limit.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_limit.stderr).contains("limit"));
}
