//! The web console end to end, in a real browser: headless Chromium driven
//! through chromedriver (WebDriver) against `holdfast demo`, the service on
//! a generated sample archive with one sample person of each role.
//!
//! Each test signs in as a sample person and does what that person would
//! do: an officer searches, reads a hit in context and downloads an
//! export; counsel puts a search under legal hold and releases it; an
//! officer scoped to one team sees nothing of the others; a query with a
//! syntax error points at the offending character; the search filters
//! suggest the teams, channels and people of the person's scope and
//! nothing outside it; each role sees its own screens; a wrong password
//! and a session ended behind the console's back send the person to the
//! sign-in form; and the search screen fits a phone. An admin finds a
//! retention run and its certificate of destruction; counsel exports what
//! the demo's sample hold keeps as PDF; an auditor downloads the trail,
//! filtered, as CSV; and the keyboard alone signs in, searches, opens a hit
//! in context and closes it again.
//! One test runs `holdfast serve` against a real OpenLDAP slapd instead of
//! the demo: a person of the directory signs in with the directory's
//! password and sees only the team their group grants.
//!
//! Needs Chromium and chromedriver (Debian packages `chromium` and
//! `chromium-driver`), and for the LDAP test slapd and ldap-utils: a
//! missing one fails the tests, it never skips them.
//! `HOLDFAST_SCREENSHOTS=<dir>` saves screenshots of each screen there. A
//! failing test saves a screenshot, the page source and the browser's log
//! to a directory it names.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod helpers;
mod slapd;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use slapd::{Slapd, SlapdOptions};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Events in the demo's generated archive.
const DEMO_EVENTS: &str = "3000";
/// The demo's sample legal hold (on two custodians of the older half).
const DEMO_HOLD: &str = "Raptor investigation";
/// Events generated into the LDAP test's archive.
const LDAP_EVENTS: &str = "2000";
/// The team of the LDAP group `compliance`'s officers.
const LDAP_TEAM: &str = "energy-trading";
/// People of the example LDAP directory and their passwords: `allen-p`
/// is in the group `compliance` (an officer of [`LDAP_TEAM`]);
/// `derrick-j` is in no group that grants a role.
const LDAP_PEOPLE: [(&str, &str); 2] = [
    ("allen-p", "Gas-Desk-Houston-2001"),
    ("derrick-j", "General-Counsel-1"),
];
/// How long the server may take to generate its archive and listen.
const SERVER_START: Duration = Duration::from_secs(120);
/// How long an element or a state of the page may take to appear (generous:
/// the machine is shared, and only a failing test waits this long).
const UI_WAIT: Duration = Duration::from_secs(30);
/// How long an export of a search may take to complete.
const EXPORT_WAIT: Duration = Duration::from_secs(90);
/// The console's own request header (CSRF defence of cookie sessions).
const CONSOLE_HEADER: (&str, &str) = ("x-holdfast-console", "1");
/// The session cookie's name.
const SESSION_COOKIE: &str = "holdfast_session";

/// Is `e` rendered (in the layout, not `visibility: hidden`)? Prepended to
/// every script the tests run in the page.
const JS_PRELUDE: &str = "const visible = (e) => !!e && e.getClientRects().length > 0 \
     && getComputedStyle(e).visibility !== 'hidden'; \
     const $ = (s) => document.querySelector(s); \
     const $$ = (s) => Array.from(document.querySelectorAll(s)); ";

// ------------------------------------------------------------------ http

/// A plain HTTP/1 request from the test itself (not the browser).
async fn http(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (StatusCode, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method.clone()).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Full::new(Bytes::from(serde_json::to_vec(body).unwrap()))
        }
        None => Full::new(Bytes::new()),
    };
    let response = client
        .request(request.body(body).unwrap())
        .await
        .unwrap_or_else(|error| panic!("{method} {url}: {error}"));
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|error| panic!("{method} {url}: reading the body: {error}"))
        .to_bytes();
    (status, bytes)
}

fn json_of(what: &str, bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|error| {
        panic!(
            "{what}: not JSON ({error}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ------------------------------------------------------------------ the server

/// A holdfast server the console talks to, on a fresh data directory,
/// killed when dropped: `holdfast demo` ([`Server::demo`]), or `holdfast
/// serve` with a configuration of the test's own ([`Server::ldap`]).
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    base: String,
    /// username -> password of the people the tests sign in as.
    passwords: BTreeMap<String, String>,
    /// Everything the server wrote on stderr (for failure messages).
    stderr: Arc<Mutex<String>>,
    data_dir: tempfile::TempDir,
    /// The LDAP directory the server signs people in against, if any
    /// (dropped after the server is killed).
    _directory: Option<Slapd>,
}

impl Server {
    /// Starts `command` (a `holdfast` command that serves on
    /// 127.0.0.1:0) and waits for its `listening on http://ADDR` line.
    /// `what` names it in failure messages.
    fn spawn(
        what: &str,
        command: &mut std::process::Command,
        data_dir: tempfile::TempDir,
        directory: Option<Slapd>,
    ) -> Server {
        command
            .env("HOLDFAST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (sender, receiver) = std::sync::mpsc::channel::<String>();
        {
            let pipe = child.stderr.take().unwrap();
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    stderr.lock().unwrap().push_str(&format!("{line}\n"));
                    if let Some(address) = line.strip_prefix("listening on ") {
                        let _ = sender.send(address.trim().to_owned());
                    }
                }
            });
        }
        // From here on the guard owns the child: a panic kills it.
        let mut server = Server {
            child,
            base: String::new(),
            passwords: BTreeMap::new(),
            stderr,
            data_dir,
            _directory: directory,
        };
        let deadline = Instant::now() + SERVER_START;
        server.base = loop {
            match receiver.recv_timeout(Duration::from_millis(200)) {
                Ok(address) => break address,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait().ok();
                    panic!(
                        "`{what}` ended ({status:?}) without printing `listening on`:\n{}",
                        server.stderr.lock().unwrap()
                    );
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "`{what}` exited ({status}) before listening:\n{}",
                    server.stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "`{what}` did not print `listening on http://ADDR` within {SERVER_START:?}:\n{}",
                server.stderr.lock().unwrap()
            );
        };
        assert!(
            server.base.starts_with("http://"),
            "`{what}` printed `listening on {}`, expected http://ADDR",
            server.base
        );
        server
    }

    /// `holdfast demo`: a generated archive and one sample person of each
    /// role, whose passwords are in `demo-credentials.txt`.
    fn demo() -> Server {
        let data_dir = tempfile::tempdir().unwrap();
        // helpers::holdfast clears HOLDFAST_* (so HOLDFAST_CONSOLE_DIR is
        // unset: the console embedded in the binary is what is tested).
        let mut command = helpers::holdfast(data_dir.path());
        command.args(["demo", "--listen", "127.0.0.1:0", "--events", DEMO_EVENTS]);
        let mut server = Server::spawn("holdfast demo", &mut command, data_dir, None);
        let credentials_path = server.data_dir.path().join("demo-credentials.txt");
        let credentials = std::fs::read_to_string(&credentials_path).unwrap_or_else(|error| {
            panic!(
                "`holdfast demo` listens but {} is unreadable: {error}",
                credentials_path.display()
            )
        });
        server.passwords = credentials
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(
                    fields.len(),
                    4,
                    "demo-credentials.txt: expected username, password, role, scope separated by tabs: {line:?}"
                );
                (fields[0].to_owned(), fields[1].to_owned())
            })
            .collect();
        for user in ["admin", "officer", "scoped-officer", "counsel", "auditor"] {
            assert!(
                server.passwords.contains_key(user),
                "demo-credentials.txt has no sample person {user:?}:\n{credentials}"
            );
        }
        server
    }

    /// `holdfast serve` signing people in against a real OpenLDAP slapd
    /// holding the example directory (tests/fixtures/ldap/example.ldif),
    /// its group `compliance` mapped to compliance officers of team
    /// [`LDAP_TEAM`], on an archive of generated events. Fails, naming
    /// the Debian packages, when slapd or ldap-utils is missing.
    fn ldap() -> Server {
        let mut options = SlapdOptions::new("dc=example,dc=com");
        options
            .ldif
            .push(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap/example.ldif"));
        let directory = Slapd::start(&options);
        // Files of the test (not of the archive) in the directory's scratch space.
        let scratch = directory.dir().to_owned();
        let data_dir = tempfile::tempdir().unwrap();
        let events = scratch.join("events.ndjson");
        let run = |command: &mut std::process::Command| {
            let output = command
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
            assert!(
                output.status.success(),
                "{command:?} failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(helpers::holdfast(data_dir.path())
            .args(["generate", "--events", LDAP_EVENTS, "--seed", "1", "--out"])
            .arg(&events));
        run(helpers::holdfast(data_dir.path())
            .arg("ingest")
            .arg(&events));
        // Posts of other teams, or seeing none of them proves nothing.
        let mut posts: BTreeMap<String, usize> = BTreeMap::new();
        for line in std::fs::read_to_string(&events).unwrap().lines() {
            let event: Value = serde_json::from_str(line).unwrap();
            if event["kind"] == "post" {
                *posts
                    .entry(event["team"].as_str().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
        }
        assert!(
            posts.contains_key(LDAP_TEAM) && posts.len() >= 3,
            "the generated archive should have posts of {LDAP_TEAM} and of two other teams: {posts:?}"
        );

        let bind_password = scratch.join("ldap-bind-password");
        std::fs::write(&bind_password, "svc-bind-Secret-42\n").unwrap();
        std::fs::set_permissions(
            &bind_password,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let config = scratch.join("holdfast.toml");
        std::fs::write(
            &config,
            format!(
                r#"[auth]
directory = "ldap"

[auth.ldap]
url = "{url}"
allow_plaintext = true
bind_dn = "cn=holdfast,ou=services,dc=example,dc=com"
bind_password_file = "{bind_password}"
user_base_dn = "ou=people,dc=example,dc=com"
disabled_filter = "(employeeType=disabled)"

[[auth.groups]]
group = "cn=compliance,ou=groups,dc=example,dc=com"
role = "compliance_officer"
teams = ["{LDAP_TEAM}"]
"#,
                url = directory.url(),
                bind_password = bind_password.display(),
            ),
        )
        .unwrap();
        let mut command = helpers::holdfast(data_dir.path());
        command
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", "127.0.0.1:0"]);
        let mut server = Server::spawn("holdfast serve", &mut command, data_dir, Some(directory));
        for (user, password) in LDAP_PEOPLE {
            server
                .passwords
                .insert(user.to_owned(), password.to_owned());
        }
        server
    }

    fn password(&self, user: &str) -> &str {
        &self.passwords[user]
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A session token of `user` from the API (no console header: the
    /// token comes in the body).
    async fn token(&self, user: &str) -> String {
        let (status, body) = http(
            Method::POST,
            &self.url("/api/v1/login"),
            &[],
            Some(&json!({"username": user, "password": self.password(user)})),
        )
        .await;
        let body = json_of("POST /api/v1/login", &body);
        assert_eq!(status, StatusCode::OK, "API sign-in as {user}: {body}");
        body["token"]
            .as_str()
            .unwrap_or_else(|| {
                panic!("API sign-in without the console header gives no token: {body}")
            })
            .to_owned()
    }

    /// `GET path` with a bearer token; the status and the JSON body.
    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let authorization = format!("Bearer {token}");
        let (status, body) = http(
            Method::GET,
            &self.url(path),
            &[("authorization", authorization.as_str())],
            None,
        )
        .await;
        (status, json_of(&format!("GET {path}"), &body))
    }

    async fn get_ok(&self, token: &str, path: &str) -> Value {
        let (status, body) = self.get(token, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// The export record with this matter, waited for (the console starts
    /// it in the background).
    async fn export_with_matter(&self, token: &str, matter: &str) -> Value {
        let deadline = Instant::now() + UI_WAIT;
        loop {
            let list = self.get_ok(token, "/api/v1/exports").await;
            let found = list["exports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|export| export["request"]["matter"] == matter)
                .cloned();
            if let Some(export) = found {
                return export;
            }
            assert!(
                Instant::now() < deadline,
                "no export with matter {matter:?} was created: {list}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn search(&self, token: &str, query: &str, limit: usize) -> Value {
        let path = format!("/api/v1/search?q={}&limit={limit}", encode(query));
        self.get_ok(token, &path).await
    }

    /// A word of the sample archive that search finds, in several posts
    /// of several teams, with highlights: picked from the archive's own
    /// posts and checked. Preferably one that some hit of the first page
    /// highlights after an emoji or another non-ASCII character, so that
    /// highlight offsets (characters: not bytes, not UTF-16 units) are put
    /// to the test.
    async fn findable_word(&self) -> String {
        let token = self.token("officer").await;
        let posts = self.search(&token, "kind:post", 100).await;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for hit in posts["hits"].as_array().unwrap() {
            let text = hit["text"].as_str().unwrap_or_default().to_lowercase();
            let mut words: Vec<&str> = text
                .split(|c: char| !c.is_ascii_alphabetic())
                .filter(|word| (6..=12).contains(&word.len()))
                .collect();
            words.sort_unstable();
            words.dedup();
            for word in words {
                *counts.entry(word.to_owned()).or_default() += 1;
            }
        }
        let mut candidates: Vec<(usize, String)> =
            counts.into_iter().map(|(word, n)| (n, word)).collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        // (how testing the word's highlights is, word): the best wins.
        let mut best: Option<(u8, String)> = None;
        for (_, word) in candidates.iter().take(40) {
            // The console's first page: newest first, at least 20 hits.
            let found = self.search(&token, word, 20).await;
            let hits = found["hits"].as_array().unwrap();
            // 0: not highlighted; 1: highlighted; 2: after a non-ASCII
            // character; 3: after a character outside the BMP (an emoji:
            // one character, two UTF-16 units, four bytes).
            let mut level = 0;
            for hit in hits {
                let text: Vec<char> = hit["snippet"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .collect();
                for range in hit["snippet"]["highlights"].as_array().unwrap() {
                    let start = range[0].as_u64().unwrap() as usize;
                    let end = range[1].as_u64().unwrap() as usize;
                    let marked: String = text.get(start..end).unwrap_or_default().iter().collect();
                    if marked.to_lowercase() != *word {
                        continue;
                    }
                    let before = &text[..start];
                    let here = if before.iter().any(|c| c.len_utf16() > 1) {
                        3
                    } else if before.iter().any(|c| !c.is_ascii()) {
                        2
                    } else {
                        1
                    };
                    level = level.max(here);
                }
            }
            let teams: BTreeSet<&str> =
                hits.iter().filter_map(|hit| hit["team"].as_str()).collect();
            if found["total"].as_u64().unwrap_or(0) >= 3
                && level > 0
                && teams.len() >= 2
                && best.as_ref().is_none_or(|(found, _)| *found < level)
            {
                best = Some((level, word.clone()));
                if level == 3 {
                    break;
                }
            }
        }
        let (level, word) = best.unwrap_or_else(|| {
            panic!(
                "no word of the demo's posts is found by search with highlights (tried {:?})",
                &candidates[..candidates.len().min(40)]
            )
        });
        let why = [
            "",
            "",
            ", highlighted after non-ASCII text",
            ", highlighted after an emoji",
        ];
        eprintln!("searching for {word:?}{}", why[usize::from(level)]);
        word
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    let mut encoded = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

// ------------------------------------------------------------------ the browser

/// chromedriver on a port of its own, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    async fn start(dir: &Path) -> Driver {
        for (binary, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the console's browser tests need it \
                 (install the Debian package {package})"
            );
        }
        let port = free_port();
        let log = dir.join("chromedriver.log");
        let child = std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {CHROMEDRIVER}: {error}"));
        let mut driver = Driver { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!(
                    "chromedriver exited ({status}) at start:\n{}",
                    std::fs::read_to_string(&driver.log).unwrap_or_default()
                );
            }
            let url = format!("http://127.0.0.1:{port}/status");
            let ready = tokio::time::timeout(Duration::from_secs(2), async {
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http::<Full<Bytes>>();
                let request = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
                let response = client.request(request).await.ok()?;
                let body = response.into_body().collect().await.ok()?.to_bytes();
                let body: Value = serde_json::from_slice(&body).ok()?;
                Some(body["value"]["ready"] == true)
            })
            .await;
            if let Ok(Some(true)) = ready {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver on port {port} did not answer GET /status within 20 s:\n{}",
                std::fs::read_to_string(&driver.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test's browser session and the server it talks to.
struct Console {
    server: Arc<Server>,
    client: Client,
    driver: Driver,
    /// Where a clicked download lands.
    downloads: tempfile::TempDir,
    /// Chromium's fresh profile (and chromedriver's log).
    _profile: tempfile::TempDir,
    name: &'static str,
}

impl Console {
    async fn open(name: &'static str, server: Arc<Server>) -> Console {
        let profile = tempfile::tempdir().unwrap();
        let downloads = tempfile::tempdir().unwrap();
        let driver = Driver::start(profile.path()).await;
        let user_data = profile.path().join("chromium");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", user_data.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                },
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "chromedriver could not start Chromium: {error}\n{}",
                    std::fs::read_to_string(&driver.log).unwrap_or_default()
                )
            });
        Console {
            server,
            client,
            driver,
            downloads,
            _profile: profile,
            name,
        }
    }

    /// Runs `body` against a fresh browser session and the server `start`
    /// starts; on a failure saves a screenshot, the page source and the
    /// browser's log, then fails.
    async fn run<S, F, Fut>(name: &'static str, start: S, body: F)
    where
        S: FnOnce() -> Server + Send + 'static,
        F: FnOnce(Arc<Console>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let server = tokio::task::spawn_blocking(start)
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        let console = Arc::new(Console::open(name, Arc::new(server)).await);
        let outcome = tokio::spawn(body(Arc::clone(&console))).await;
        let failure = match outcome {
            Ok(()) => None,
            Err(error) if error.is_panic() => {
                let log = console.browser_log().await;
                console.save_failure(&log).await;
                Some(error.into_panic())
            }
            Err(error) => panic!("{name}: the test task ended: {error}"),
        };
        // Whatever the page did, it must not have broken the content
        // security policy or thrown.
        let mut problems = Vec::new();
        if failure.is_none() {
            let log = console.browser_log().await;
            problems = log
                .iter()
                .filter(|line| {
                    line.contains("Content Security Policy")
                        || line.contains("Refused to")
                        || line.contains("Uncaught")
                })
                .cloned()
                .collect();
            if !problems.is_empty() {
                console.save_failure(&log).await;
            }
        }
        let client = console.client.clone();
        let _ = client.close().await;
        drop(console);
        if let Some(panic) = failure {
            // The panic's message was printed where it happened.
            std::panic::resume_unwind(panic);
        }
        assert!(
            problems.is_empty(),
            "{name}: the page broke its content security policy or threw:\n{}",
            problems.join("\n")
        );
    }

    /// The browser's console messages so far (level and text).
    async fn browser_log(&self) -> Vec<String> {
        let Ok(Some(session)) = self.client.session_id().await else {
            return Vec::new();
        };
        let url = format!("{}/session/{session}/se/log", self.driver.url());
        let (status, body) = http(Method::POST, &url, &[], Some(&json!({"type": "browser"}))).await;
        if status != StatusCode::OK {
            return vec![format!(
                "(no browser log: {status} {})",
                String::from_utf8_lossy(&body)
            )];
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
        body["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        format!(
                            "{} {}",
                            entry["level"].as_str().unwrap_or("?"),
                            entry["message"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a screenshot, the page source, `log` (the browser's) and the
    /// server's and chromedriver's logs, and says where.
    async fn save_failure(&self, log: &[String]) {
        let dir = std::env::temp_dir().join(format!(
            "holdfast-console-{}-{}",
            self.name,
            std::process::id()
        ));
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join("failure.png"), png);
        }
        if let Ok(source) = self.client.source().await {
            let _ = std::fs::write(dir.join("page.html"), source);
        }
        let url = self
            .client
            .current_url()
            .await
            .map(|url| url.to_string())
            .unwrap_or_default();
        let log = log.join("\n");
        let _ = std::fs::write(dir.join("browser.log"), format!("url: {url}\n{log}\n"));
        let _ = std::fs::write(
            dir.join("server.log"),
            self.server.stderr.lock().unwrap().as_bytes(),
        );
        let _ = std::fs::copy(&self.driver.log, dir.join("chromedriver.log"));
        eprintln!(
            "{}: failed at {url}; screenshot, page source and logs in {}",
            self.name,
            dir.display()
        );
    }

    // -------------------------------------------------------------- helpers

    /// Saves a screenshot as `file` when HOLDFAST_SCREENSHOTS names a
    /// directory, after checking the screen shows no rendering slip.
    async fn screenshot(&self, file: &str) {
        self.assert_no_junk(file).await;
        let Some(dir) = std::env::var_os("HOLDFAST_SCREENSHOTS") else {
            return;
        };
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(file), png).unwrap();
    }

    /// Fails when a text of the page is `null`, `undefined`, `NaN` or
    /// `[object Object]`: a value rendered that should not have been.
    async fn assert_no_junk(&self, screen: &str) {
        let junk = self
            .js(
                "const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT); \
                 const found = []; \
                 while (walker.nextNode()) { \
                   const node = walker.currentNode; \
                   if (/^(null|undefined|NaN|\\[object Object\\])$/.test(node.textContent.trim()) \
                       && visible(node.parentElement)) \
                     found.push(node.parentElement.outerHTML.slice(0, 300)); \
                 } \
                 return found;",
                vec![],
            )
            .await;
        assert_eq!(
            junk,
            json!([]),
            "{screen}: the page shows a raw null/undefined/NaN/[object Object]"
        );
    }

    /// Runs `script` (after [`JS_PRELUDE`]) in the page.
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(&format!("{JS_PRELUDE}{script}"), args)
            .await
            .unwrap_or_else(|error| panic!("script failed ({error}): {script}"))
    }

    /// Runs `script` until it returns something truthy, and returns that.
    async fn wait_js(
        &self,
        what: &str,
        script: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(script, args.clone()).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(text) => !text.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let url = self
                    .client
                    .current_url()
                    .await
                    .map(|url| url.to_string())
                    .unwrap_or_default();
                let notices = self
                    .js(
                        "return ['#error', '#notice', '#login-error', '#search-error'] \
                         .map((s) => s + ': ' + ($(s) ? $(s).textContent.trim() : '(none)')).join('\\n');",
                        vec![],
                    )
                    .await;
                panic!(
                    "timed out after {timeout:?} waiting for {what} (at {url})\n{}",
                    notices.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element matching `css` to be rendered, and returns it.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.wait_js(
            &format!("`{css}` to be shown"),
            "return visible($(arguments[0]));",
            vec![json!(css)],
            UI_WAIT,
        )
        .await;
        self.client
            .wait()
            .at_most(UI_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("`{css}` is not in the page: {error}"))
    }

    async fn is_visible(&self, css: &str) -> bool {
        self.js("return visible($(arguments[0]));", vec![json!(css)])
            .await
            .as_bool()
            .unwrap()
    }

    /// The rendered text of the element `css` (waited for).
    async fn text(&self, css: &str) -> String {
        self.element(css).await.text().await.unwrap()
    }

    /// The text content of every element matching `css`.
    async fn texts(&self, css: &str) -> Vec<String> {
        let value = self
            .js(
                "return $$(arguments[0]).map((e) => e.textContent);",
                vec![json!(css)],
            )
            .await;
        serde_json::from_value(value).unwrap()
    }

    async fn click(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("cannot click `{css}`: {error}"));
    }

    async fn fill(&self, css: &str, value: &str) {
        let element = self.element(css).await;
        element.clear().await.unwrap();
        element
            .send_keys(value)
            .await
            .unwrap_or_else(|error| panic!("cannot type into `{css}`: {error}"));
    }

    /// Opens the console at `hash` (`#/search`) as a person would, with
    /// the address bar.
    async fn goto(&self, hash: &str) {
        self.client
            .goto(&self.server.url(&format!("/console/{hash}")))
            .await
            .unwrap();
    }

    /// Changes the route inside the running console.
    async fn route(&self, hash: &str) {
        self.js("location.hash = arguments[0];", vec![json!(hash)])
            .await;
    }

    async fn hash(&self) -> String {
        self.js("return location.hash;", vec![])
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Signs in as a person the server knows (a demo person, or one of
    /// the LDAP directory) from a fresh console and waits to be in.
    async fn sign_in(&self, user: &str) {
        let url = self.client.current_url().await.unwrap();
        if !url.as_str().starts_with(&self.server.base) {
            self.goto("").await;
        }
        self.element("#login-form").await;
        self.fill("#login-username", user).await;
        self.fill("#login-password", self.server.password(user))
            .await;
        self.click("#login-submit").await;
        self.wait_js(
            &format!("the console to show {user} signed in"),
            "return !visible($('#login-form')) && visible($('#whoami')) \
             && $('#whoami').textContent.includes(arguments[0]);",
            vec![json!(user)],
            UI_WAIT,
        )
        .await;
    }

    /// Tries to sign in as `user` with `password` from the sign-in form,
    /// expects to be refused, and returns the error shown.
    async fn sign_in_refused(&self, user: &str, password: &str) -> String {
        self.element("#login-form").await;
        // Clear an earlier error, to tell the new one from it.
        self.js(
            "const e = $('#login-error'); if (e) e.textContent = '';",
            vec![],
        )
        .await;
        self.fill("#login-username", user).await;
        self.fill("#login-password", password).await;
        self.click("#login-submit").await;
        let error = self
            .wait_js(
                &format!("the sign-in error for {user}"),
                "const e = $('#login-error'); return visible(e) && e.textContent.trim();",
                vec![],
                UI_WAIT,
            )
            .await;
        let error = error.as_str().unwrap().to_owned();
        assert!(
            !error.contains(password),
            "the sign-in error repeats the password: {error:?}"
        );
        assert!(
            self.is_visible("#login-form").await,
            "{user} was refused, the sign-in form stays"
        );
        let (status, body) = self.fetch_status("/api/v1/me").await;
        assert_eq!(status, 401, "{user} was refused but has a session: {body}");
        error
    }

    async fn sign_out(&self) {
        self.click("#logout").await;
        self.element("#login-form").await;
    }

    /// Which nav links are shown, of search, holds, exports, retention, audit.
    /// The nav of a compliance officer: Search and Exports, nothing else
    /// of the role-bound screens.
    async fn assert_officer_nav(&self) {
        let nav = self.nav_links().await;
        assert!(
            nav.contains(&"search".to_owned()) && nav.contains(&"exports".to_owned()),
            "an officer's nav shows Search and Exports: {nav:?}"
        );
        for absent in ["holds", "retention", "audit"] {
            assert!(
                !nav.contains(&absent.to_owned()),
                "an officer cannot use {absent}, its nav link must not show: {nav:?}"
            );
        }
    }

    async fn nav_links(&self) -> Vec<String> {
        let value = self
            .js(
                "return ['search', 'holds', 'exports', 'retention', 'audit'] \
                 .filter((name) => $$(`a[data-nav=\"${name}\"]`).some(visible));",
                vec![],
            )
            .await;
        serde_json::from_value(value).unwrap()
    }

    /// The value of the session cookie (HttpOnly: read through WebDriver).
    async fn session_cookie(&self) -> String {
        let cookie = self
            .client
            .get_named_cookie(SESSION_COOKIE)
            .await
            .unwrap_or_else(|error| panic!("no {SESSION_COOKIE} cookie after sign-in: {error}"));
        assert_eq!(
            cookie.http_only(),
            Some(true),
            "the session cookie must be HttpOnly"
        );
        assert_eq!(
            format!("{:?}", cookie.same_site()),
            "Some(Strict)",
            "the session cookie must be SameSite=Strict"
        );
        cookie.value().to_owned()
    }

    /// The status of `fetch(path)` from the page, as the console calls the API.
    async fn fetch_status(&self, path: &str) -> (u64, String) {
        let value = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 fetch(arguments[0], {credentials: 'same-origin', headers: {'X-Holdfast-Console': '1'}}) \
                 .then((r) => r.text().then((t) => done([r.status, t]))) \
                 .catch((e) => done([0, String(e)]));",
                vec![json!(path)],
            )
            .await
            .unwrap();
        (
            value[0].as_u64().unwrap(),
            value[1].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Runs a search from the search screen and waits for its outcome:
    /// the number of results, or the error shown.
    async fn search(&self, query: &str) -> Result<u64, String> {
        if !self.is_visible("#search-form").await {
            self.click("a[data-nav=\"search\"]").await;
        }
        self.element("#search-form").await;
        // Mark what is shown now, to tell the new results from the old.
        self.js(
            "$$('#search-results li.hit').forEach((e) => e.setAttribute('data-test-stale', '1')); \
             if ($('#search-error')) $('#search-error').setAttribute('data-test-stale', $('#search-error').textContent);",
            vec![],
        )
        .await;
        self.fill("#search-q", query).await;
        self.click("#search-submit").await;
        let outcome = self
            .wait_js(
                &format!("the results of the search {query:?}"),
                "const error = $('#search-error'); \
                 if (visible(error) && error.textContent.trim() \
                     && error.textContent !== error.getAttribute('data-test-stale')) \
                   return {error: error.textContent}; \
                 const sent = $('#search-sent'), total = $('#search-total'); \
                 if (!sent || !sent.textContent.includes(arguments[0])) return null; \
                 if (!total || !/\\d/.test(total.textContent)) return null; \
                 if ($$('#search-results li.hit[data-test-stale]').length) return null; \
                 const n = Number((total.textContent.match(/\\d[\\d,.\\u00a0\\u202f ]*/) || ['0'])[0].replace(/[^\\d]/g, '')); \
                 if (n > 0 && !$$('#search-results li.hit').length) return null; \
                 return {total: n};",
                vec![json!(query)],
                UI_WAIT,
            )
            .await;
        match outcome.get("total") {
            Some(total) => Ok(total.as_u64().unwrap()),
            None => Err(outcome["error"].as_str().unwrap().to_owned()),
        }
    }

    /// Searches and expects results.
    async fn search_ok(&self, query: &str) -> u64 {
        match self.search(query).await {
            Ok(total) => total,
            Err(error) => panic!("the search {query:?} shows an error: {error}"),
        }
    }

    /// Opens the suggestions of the field `css` (a combobox once the
    /// console has the facets of the person's scope) for `typed`, typed
    /// into the emptied field (nothing typed: Down opens them), checks
    /// the combobox's ARIA wiring, and returns each suggestion's value and
    /// text, in the order shown.
    async fn suggestions(&self, css: &str, typed: &str) -> Vec<(String, String)> {
        self.wait_js(
            &format!("`{css}` to offer suggestions (role=combobox)"),
            "const e = $(arguments[0]); return !!e && e.getAttribute('role') === 'combobox' \
               && e.getAttribute('aria-autocomplete') === 'list';",
            vec![json!(css)],
            UI_WAIT,
        )
        .await;
        let field = self.element(css).await;
        field.clear().await.unwrap();
        if typed.is_empty() {
            field.send_keys(&Key::Down).await.unwrap();
        } else {
            field.send_keys(typed).await.unwrap();
        }
        let options = self
            .wait_js(
                &format!("the suggestions of `{css}` for {typed:?}"),
                "const e = $(arguments[0]); \
                 const list = document.getElementById(e.getAttribute('aria-controls') || ''); \
                 if (!list || !visible(list) || e.getAttribute('aria-expanded') !== 'true') return null; \
                 if (list.getAttribute('role') !== 'listbox') return 'the popup is not a listbox'; \
                 const options = Array.from(list.children); \
                 if (options.some((o) => o.getAttribute('role') !== 'option' || !o.id)) \
                   return 'an entry of the listbox is not an option with an id'; \
                 return options.map((o) => [o.dataset.value, o.textContent]);",
                vec![json!(css)],
                UI_WAIT,
            )
            .await;
        assert!(
            options.is_array(),
            "`{css}` for {typed:?}: {options} (value {:?})",
            self.value(css).await
        );
        serde_json::from_value(options).unwrap()
    }

    /// Escape closes the suggestions of `css`.
    async fn close_suggestions(&self, css: &str) {
        self.element(css)
            .await
            .send_keys(&Key::Escape)
            .await
            .unwrap();
        self.wait_js(
            &format!("Escape to close the suggestions of `{css}`"),
            "const e = $(arguments[0]); \
             return !visible(document.getElementById(e.getAttribute('aria-controls'))) \
               && e.getAttribute('aria-expanded') === 'false' && !e.hasAttribute('aria-activedescendant');",
            vec![json!(css)],
            UI_WAIT,
        )
        .await;
    }

    /// Types `typed` into the field `css`, moves down the suggestions with
    /// the arrow key to the one of `value` and takes it with Enter; the
    /// field's value after that.
    async fn choose_by_keyboard(&self, css: &str, typed: &str, value: &str) -> String {
        let shown = self.suggestions(css, typed).await;
        let index = shown
            .iter()
            .position(|(shown, _)| shown == value)
            .unwrap_or_else(|| {
                panic!("`{css}` for {typed:?} does not suggest {value:?}: {shown:?}")
            });
        let field = self.element(css).await;
        for _ in 0..=index {
            field.send_keys(&Key::Down).await.unwrap();
        }
        let active = self
            .js(
                "const e = $(arguments[0]); \
                 const option = document.getElementById(e.getAttribute('aria-activedescendant') || ''); \
                 return option && option.getAttribute('aria-selected') === 'true' ? option.dataset.value : null;",
                vec![json!(css)],
            )
            .await;
        assert_eq!(
            active,
            value,
            "after {} × Down, `{css}`'s aria-activedescendant should be the selected option {value:?}",
            index + 1
        );
        field.send_keys(&Key::Enter).await.unwrap();
        self.wait_js(
            &format!("Enter to take the suggestion {value:?} in `{css}`"),
            "const e = $(arguments[0]); return e.getAttribute('aria-expanded') === 'false';",
            vec![json!(css)],
            UI_WAIT,
        )
        .await;
        self.value(css).await
    }

    /// Types `typed` into the field `css` and clicks the suggestion of
    /// `value`; the field's value after that.
    async fn choose_by_click(&self, css: &str, typed: &str, value: &str) -> String {
        let shown = self.suggestions(css, typed).await;
        let tagged = self
            .js(
                "const e = $(arguments[0]); \
                 const list = document.getElementById(e.getAttribute('aria-controls')); \
                 const option = Array.from(list.children).find((o) => o.dataset.value === arguments[1]); \
                 if (option) option.setAttribute('data-test-choose', '1'); return !!option;",
                vec![json!(css), json!(value)],
            )
            .await;
        assert_eq!(
            tagged, true,
            "`{css}` for {typed:?} does not suggest {value:?}: {shown:?}"
        );
        self.click("[data-test-choose]").await;
        self.wait_js(
            &format!("a click to take the suggestion {value:?} in `{css}`"),
            "const e = $(arguments[0]); return e.getAttribute('aria-expanded') === 'false' \
               && document.activeElement === e;",
            vec![json!(css)],
            UI_WAIT,
        )
        .await;
        self.value(css).await
    }

    /// The value of the form field `css`.
    async fn value(&self, css: &str) -> String {
        self.js("return $(arguments[0]).value;", vec![json!(css)])
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Presses each key of `keys` in turn (down, then up) on whatever has
    /// the focus: keyboard input only, no element is targeted or clicked.
    async fn press(&self, keys: &[char]) {
        let mut actions = KeyActions::new("keyboard".to_owned());
        for &key in keys {
            actions = actions
                .then(KeyAction::Down { value: key })
                .then(KeyAction::Up { value: key });
        }
        self.client
            .perform_actions(actions)
            .await
            .unwrap_or_else(|error| panic!("cannot press {keys:?}: {error}"));
    }

    /// Presses one special key (Tab, Enter, Escape...) on the focus.
    async fn press_key(&self, key: Key) {
        self.press(&[char::from(key)]).await;
    }

    /// Types `text` on the focus, key by key.
    async fn type_keys(&self, text: &str) {
        let keys: Vec<char> = text.chars().collect();
        self.press(&keys).await;
    }

    /// Shift+Tab on the focus.
    async fn shift_tab(&self) {
        let actions = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down {
                value: char::from(Key::Shift),
            })
            .then(KeyAction::Down {
                value: char::from(Key::Tab),
            })
            .then(KeyAction::Up {
                value: char::from(Key::Tab),
            })
            .then(KeyAction::Up {
                value: char::from(Key::Shift),
            });
        self.client
            .perform_actions(actions)
            .await
            .unwrap_or_else(|error| panic!("cannot press Shift+Tab: {error}"));
    }

    /// What has the focus, in words (tag, id, classes, text), for checks
    /// and failure messages.
    async fn focused(&self) -> String {
        self.js(
            "const e = document.activeElement; \
             if (!e || e === document.body) return 'body'; \
             return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') \
               + (e.classList.length ? '.' + Array.from(e.classList).join('.') : '') \
               + ' ' + JSON.stringify((e.textContent || '').trim().slice(0, 40));",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Whether the focus is on the element `css` (the first match).
    async fn has_focus(&self, css: &str) -> bool {
        self.js(
            "const e = $(arguments[0]); return !!e && document.activeElement === e;",
            vec![json!(css)],
        )
        .await
            == true
    }

    /// Waits for a file of `extension` to finish downloading.
    async fn downloaded(&self, extension: &str) -> PathBuf {
        let deadline = Instant::now() + UI_WAIT;
        loop {
            let mut done = None;
            let mut names = Vec::new();
            for entry in std::fs::read_dir(self.downloads.path()).unwrap() {
                let path = entry.unwrap().path();
                names.push(path.display().to_string());
                if path.extension().is_some_and(|found| found == extension) {
                    done = Some(path);
                }
            }
            let partial = names.iter().any(|name| name.ends_with(".crdownload"));
            if let Some(path) = done
                && !partial
            {
                return path;
            }
            assert!(
                Instant::now() < deadline,
                "no .{extension} file was downloaded into {} within {UI_WAIT:?} (found {names:?})",
                self.downloads.path().display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs a test's body (an `async move` block using `c`, the console)
/// against `holdfast demo`, or against the server a function given before
/// the body starts (`console_test!(name, Server::ldap, |c| { ... })`).
macro_rules! console_test {
    ($name:ident, |$c:ident| $body:block) => {
        console_test!($name, Server::demo, |$c| $body);
    };
    ($name:ident, $start:expr, |$c:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            Console::run(stringify!($name), $start, |$c: Arc<Console>| async move $body).await;
        }
    };
}

/// Entries of a zip archive.
fn zip_names(path: &Path) -> Vec<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert!(
        bytes.starts_with(b"PK"),
        "{} is not a zip file: starts with {:?}",
        path.display(),
        &bytes[..bytes.len().min(16)]
    );
    let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .unwrap_or_else(|error| panic!("{} is not a readable zip: {error}", path.display()));
    archive
        .file_names()
        .map(|name| name.unwrap().into_owned())
        .collect()
}

/// The bytes of the entry `name` of a zip archive (at its root or in its
/// one top directory).
fn zip_entry(path: &Path, name: &str) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = zip::ZipArchive::new(file)
        .unwrap_or_else(|error| panic!("{} is not a readable zip: {error}", path.display()));
    let full = archive
        .file_names()
        .map(|entry| entry.unwrap().into_owned())
        .find(|entry| entry == name || entry.ends_with(&format!("/{name}")))
        .unwrap_or_else(|| panic!("{} has no {name}", path.display()));
    let mut bytes = Vec::new();
    archive
        .by_name(&full)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// The header and rows of a CSV text.
fn csv_rows(what: &str, bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .unwrap_or_else(|error| panic!("{what}: no CSV header row: {error}"))
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|record| {
            record
                .unwrap_or_else(|error| panic!("{what}: not CSV: {error}"))
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    (header, rows)
}

/// The sample legal hold of `holdfast demo`, as `token` sees it: its id.
async fn demo_hold(server: &Server, token: &str) -> i64 {
    let holds = server.get_ok(token, "/api/v1/holds?status=active").await;
    holds["holds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|hold| hold["name"] == DEMO_HOLD)
        .unwrap_or_else(|| panic!("the demo has no active hold {DEMO_HOLD:?}: {holds}"))["id"]
        .as_i64()
        .unwrap()
}

/// The `key` of each entry of a facets list (`/api/v1/facets`), in order.
fn facet_names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a facets list: {list}"))
        .iter()
        .map(|entry| entry[key].as_str().unwrap().to_owned())
        .collect()
}

/// `n` as the console writes a count (en-US: 1,234).
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// How many times the audit trail has `user` reading their facets.
async fn facets_reads(server: &Server, admin_token: &str, user: &str) -> usize {
    let trail = server
        .get_ok(
            admin_token,
            &format!(
                "/api/v1/audit?user={}&action=search_facets&limit=1000",
                encode(user)
            ),
        )
        .await;
    trail["records"].as_array().unwrap().len()
}

/// A short random tag, so what a test creates is its own.
fn nonce() -> String {
    hex::encode(rand::random::<[u8; 4]>())
}

// ------------------------------------------------------------------ tests

console_test!(officer_journey, |c| {
    let word = c.server.findable_word().await;
    c.goto("").await;
    c.sign_in("officer").await;
    let whoami = c.text("#whoami").await;
    assert!(
        whoami.contains("compliance_officer") || whoami.to_lowercase().contains("compliance"),
        "#whoami should name the role: {whoami:?}"
    );
    c.assert_officer_nav().await;
    assert!(
        !c.is_visible("#hold-from-search").await,
        "an officer cannot create holds"
    );

    // Search: results, highlights of the word.
    let total = c.search_ok(&word).await;
    assert!(total > 0, "{word:?} is in the archive but shows 0 results");
    let sent = c.text("#search-sent").await;
    assert!(sent.contains(&word), "#search-sent {sent:?} lacks {word:?}");
    let hits = c.texts("#search-results li.hit").await;
    assert!(!hits.is_empty(), "{total} results but no li.hit");
    let marks = c.texts("#search-results li.hit mark").await;
    assert!(
        marks.iter().any(|mark| mark.to_lowercase().contains(&word)),
        "no <mark> highlights {word:?}; marks: {marks:?}"
    );
    // Every highlight is the word itself: none shifted off it (offsets
    // are characters of the snippet, not bytes nor UTF-16 units).
    for mark in &marks {
        assert_eq!(
            mark.trim().to_lowercase(),
            word,
            "a <mark> highlights something else than {word:?}; marks: {marks:?}"
        );
    }
    let attributes = c
        .js(
            "const hit = $('#search-results li.hit'); \
             return [hit.getAttribute('data-post'), hit.getAttribute('data-event'), \
                     !!hit.querySelector('.hit-user'), !!hit.querySelector('.hit-where'), \
                     !!hit.querySelector('time.hit-time'), !!hit.querySelector('.hit-text')];",
            vec![],
        )
        .await;
    assert!(
        attributes[0].as_str().is_some_and(|post| !post.is_empty())
            && attributes[1]
                .as_str()
                .is_some_and(|event| !event.is_empty())
            && attributes.as_array().unwrap()[2..]
                .iter()
                .all(|found| found == true),
        "a hit needs data-post, data-event, .hit-user, .hit-where, time.hit-time, .hit-text: {attributes}"
    );
    c.screenshot("search.png").await;

    // The first hit in context.
    let user = c.text("#search-results li.hit .hit-user").await;
    c.click("#search-results li.hit button.open-thread").await;
    c.element("#context").await;
    let focus = c.text("#context .msg.focus").await;
    assert!(
        focus.contains(user.trim()),
        "the focused message {focus:?} should be by {user:?}"
    );
    c.screenshot("context.png").await;
    if c.is_visible("#context-close").await {
        c.click("#context-close").await;
        c.wait_js(
            "the context panel to close",
            "return !visible($('#context'));",
            vec![],
            UI_WAIT,
        )
        .await;
    }

    // Export the search as CSV and JSONL.
    c.click("#export-from-search").await;
    c.element("#export-form").await;
    let source = c.text("#export-source").await;
    assert!(
        source.contains(&word),
        "#export-source should show the search {word:?}: {source:?}"
    );
    for format in ["csv", "pdf", "jsonl", "actiance", "eml"] {
        let checkbox = c
            .element(&format!("input[name=\"format\"][value=\"{format}\"]"))
            .await;
        let wanted = format == "csv" || format == "jsonl";
        if checkbox.is_selected().await.unwrap() != wanted {
            checkbox.click().await.unwrap();
        }
    }
    let matter = format!("console test {}", nonce());
    c.fill("#export-matter", &matter).await;
    c.click("#export-submit").await;
    let token = c.server.token("officer").await;
    let export = c.server.export_with_matter(&token, &matter).await;
    assert_eq!(
        export["request"]["source"]["type"], "query",
        "the export's source is the search: {export}"
    );
    let formats = &export["request"]["formats"];
    assert!(
        formats.as_array().is_some_and(|formats| formats.len() == 2)
            && formats.to_string().contains("csv")
            && formats.to_string().contains("jsonl"),
        "the export asks for csv and jsonl: {export}"
    );
    let id = export["id"].as_str().unwrap().to_owned();
    let number = export["export_id"].to_string();
    c.wait_js(
        "the console to show the export after submitting it",
        "return location.hash.startsWith('#/exports');",
        vec![],
        UI_WAIT,
    )
    .await;
    if c.hash().await != "#/exports" {
        c.click("a[data-nav=\"exports\"]").await;
    }
    let row = c
        .wait_js(
            "the export's row to say complete (done)",
            "const row = $$('#exports-list tr[data-export-id]').find((r) => \
               r.dataset.exportId === arguments[0] || r.dataset.exportId === arguments[1]); \
             if (!row) return null; \
             const status = row.querySelector('.export-status'); \
             return status && /complete|done/i.test(status.textContent) \
               && row.querySelector('a.export-download') ? row.dataset.exportId : null;",
            vec![json!(id), json!(number)],
            EXPORT_WAIT,
        )
        .await;
    let row = row.as_str().unwrap().to_owned();
    c.screenshot("exports.png").await;
    let download = format!("#exports-list tr[data-export-id=\"{row}\"] a.export-download");
    let href = c.element(&download).await.attr("href").await.unwrap();
    assert!(
        href.as_deref().is_some_and(|href| href
            .ends_with(&format!("/api/v1/exports/{id}/download"))
            || href.ends_with(&format!("/api/v1/exports/{number}/download"))),
        "the download link: {href:?}"
    );
    c.click(&download).await;
    let zip = c.downloaded("zip").await;
    let names = zip_names(&zip);
    for needed in ["manifest.json", "events.csv", "events.jsonl"] {
        assert!(
            names
                .iter()
                .any(|name| name == needed || name.ends_with(&format!("/{needed}"))),
            "the downloaded export lacks {needed}: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|name| name.ends_with(".pdf")),
        "a PDF was not asked for: {names:?}"
    );

    // The export's own page, with its manifest.
    c.route(&format!("#/exports/{row}")).await;
    c.element("#export-detail").await;
    let manifest = c.text("pre#export-manifest").await;
    let manifest: Value = serde_json::from_str(&manifest)
        .unwrap_or_else(|error| panic!("#export-manifest is not JSON ({error}): {manifest}"));
    assert!(
        manifest.to_string().contains(&matter),
        "the manifest names the matter {matter:?}: {manifest}"
    );
    c.screenshot("export-detail.png").await;

    // Sign out: the form is back, the session is gone for good.
    let cookie = c.session_cookie().await;
    c.sign_out().await;
    assert!(!c.is_visible("#search-form").await);
    c.goto("#/search").await;
    c.element("#login-form").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        c.is_visible("#login-form").await && !c.is_visible("#search-form").await,
        "after signing out, #/search shows the sign-in form"
    );
    let (status, _) = c.fetch_status("/api/v1/me").await;
    assert_eq!(status, 401, "GET /api/v1/me after signing out");
    let cookie_header = format!("{SESSION_COOKIE}={cookie}");
    let (status, body) = http(
        Method::GET,
        &c.server.url("/api/v1/me"),
        &[("cookie", cookie_header.as_str()), CONSOLE_HEADER],
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the signed-out session's cookie still works: {}",
        String::from_utf8_lossy(&body)
    );
});

console_test!(counsel_creates_hold_from_search, |c| {
    let word = c.server.findable_word().await;
    c.goto("").await;
    c.sign_in("counsel").await;
    let nav = c.nav_links().await;
    for shown in ["search", "holds", "exports"] {
        assert!(
            nav.contains(&shown.to_owned()),
            "counsel's nav shows {shown}: {nav:?}"
        );
    }
    for absent in ["retention", "audit"] {
        assert!(
            !nav.contains(&absent.to_owned()),
            "counsel's nav hides {absent}: {nav:?}"
        );
    }
    let total = c.search_ok(&word).await;
    assert!(total > 0);
    c.click("#hold-from-search").await;
    c.element("#hold-form").await;
    let query = c
        .element("#hold-query")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        query.contains(&word),
        "the hold form's query should be the search {word:?}: {query:?}"
    );
    let name = format!("Console hold {}", nonce());
    c.fill("#hold-name", &name).await;
    c.fill("#hold-matter", "Console v. Browser").await;
    c.fill("#hold-reason", "Litigation reasonably anticipated")
        .await;
    c.click("#hold-submit").await;
    c.element("#hold-detail").await;
    let hash = c.hash().await;
    let id = hash
        .strip_prefix("#/holds/")
        .unwrap_or_else(|| {
            panic!("after creating a hold the console shows it at #/holds/ID, not {hash}")
        })
        .to_owned();
    let token = c.server.token("counsel").await;
    let hold = c
        .server
        .get_ok(&token, &format!("/api/v1/holds/{id}"))
        .await;
    assert_eq!(hold["name"], name.as_str(), "{hold}");
    assert_eq!(hold["criteria"]["query"], query.as_str(), "{hold}");
    let events = hold["held"]["events"].as_u64().unwrap();
    assert!(events > 0, "the hold holds nothing: {hold}");
    let counts = c
        .wait_js(
            "the hold's counts",
            "const e = $('#hold-detail .hold-counts'); return e && /\\d/.test(e.textContent) ? e.textContent : null;",
            vec![],
            UI_WAIT,
        )
        .await;
    let counts = counts.as_str().unwrap();
    let numbers: Vec<u64> = counts
        .split(|c: char| !c.is_ascii_digit() && c != ',')
        .filter_map(|n| n.replace(',', "").parse().ok())
        .collect();
    assert!(
        numbers.contains(&events),
        "`.hold-counts` should show the {events} held events: {counts:?}"
    );
    c.screenshot("hold-detail.png").await;

    c.click("a[data-nav=\"holds\"]").await;
    let row = format!("#holds-list tr[data-hold-id=\"{id}\"]");
    let text = c.text(&row).await;
    assert!(text.contains(&name), "the holds list row: {text:?}");
    assert!(
        text.to_lowercase().contains("active"),
        "the new hold is active: {text:?}"
    );
    c.screenshot("holds.png").await;

    c.click(&row).await;
    c.element("#hold-detail").await;
    c.fill("#hold-release-reason", "Matter settled").await;
    c.click("#hold-release").await;
    // A confirmation dialog, if the console asks for one.
    let _ = c.client.accept_alert().await;
    c.wait_js(
        "the hold to show as released",
        "return /released/i.test($('#hold-detail') ? $('#hold-detail').textContent : '');",
        vec![],
        UI_WAIT,
    )
    .await;
    let hold = c
        .server
        .get_ok(&token, &format!("/api/v1/holds/{id}"))
        .await;
    assert_eq!(hold["status"], "released", "{hold}");
    assert_eq!(hold["release_reason"], "Matter settled", "{hold}");
});

console_test!(scoped_officer_cannot_see_other_teams, |c| {
    // A post of team west-desk, found as the officer who sees everything.
    let token = c.server.token("officer").await;
    let other = c.server.search(&token, "team:west-desk kind:post", 5).await;
    let other = other["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|hit| hit["text"].as_str().is_some_and(|text| text.len() >= 12))
        .unwrap_or_else(|| panic!("the demo archive has no post of team west-desk: {other}"))
        .clone();
    let other_post = other["post"].as_str().unwrap();
    let other_text = other["text"].as_str().unwrap();

    c.goto("").await;
    c.sign_in("scoped-officer").await;
    let nav = c.nav_links().await;
    for absent in ["holds", "retention", "audit"] {
        assert!(
            !nav.contains(&absent.to_owned()),
            "a scoped officer's nav hides {absent}: {nav:?}"
        );
    }
    assert!(nav.contains(&"search".to_owned()), "{nav:?}");

    let total = c.search_ok("kind:post").await;
    assert!(
        total > 0,
        "a scoped officer sees the posts of energy-trading"
    );
    let wheres = c.texts("#search-results li.hit .hit-where").await;
    assert!(!wheres.is_empty());
    for place in &wheres {
        assert!(
            place.contains("energy-trading"),
            "a scoped officer sees only energy-trading, but a hit is in {place:?}"
        );
    }
    match c.search("team:west-desk").await {
        Ok(total) => {
            assert_eq!(total, 0, "team:west-desk is outside the officer's scope");
            let hits = c.texts("#search-results li.hit").await;
            assert!(hits.is_empty(), "results of another team: {hits:?}");
        }
        // Refused outright is fine too, as long as nothing shows.
        Err(error) => assert!(!error.contains(other_text), "{error}"),
    }

    let (status, body) = c
        .fetch_status(&format!("/api/v1/posts/{}/context", encode(other_post)))
        .await;
    assert!(
        status == 404 || status == 403,
        "another team's post in context: {status} {body}"
    );
    assert!(
        !body.contains(other_text),
        "the refusal shows the post: {body}"
    );
    let page = c.js("return document.body.innerText;", vec![]).await;
    let page = page.as_str().unwrap();
    assert!(
        !page.contains(other_text),
        "the page shows west-desk's post"
    );
    assert!(
        !page.contains("west-desk /") && !page.contains("west-desk #"),
        "the page shows west-desk: {page}"
    );
});

console_test!(filters_suggest_what_the_scope_holds, |c| {
    // What the API says the scoped officer's scope holds: one team.
    let scoped_token = c.server.token("scoped-officer").await;
    let scoped = c.server.get_ok(&scoped_token, "/api/v1/facets").await;
    assert_eq!(
        facet_names(&scoped["teams"], "name"),
        ["energy-trading"],
        "{scoped}"
    );
    let scoped_channels = scoped["channels"].as_array().unwrap();
    assert!(
        !scoped_channels.is_empty()
            && scoped_channels
                .iter()
                .all(|channel| channel["team"] == "energy-trading"),
        "the scoped officer's channels are energy-trading's: {scoped}"
    );
    let admin = c.server.token("admin").await;
    let reads_before = facets_reads(&c.server, &admin, "scoped-officer").await;

    c.goto("").await;
    c.sign_in("scoped-officer").await;
    c.element("#search-form").await;
    let teams = c.suggestions("#filter-team", "").await;
    let values: Vec<&str> = teams.iter().map(|(value, _)| value.as_str()).collect();
    assert_eq!(
        values,
        ["energy-trading"],
        "a scoped officer is offered their own team only: {teams:?}"
    );
    let events = scoped["teams"][0]["events"].as_u64().unwrap();
    assert!(
        teams[0].1.contains(&format!("{} event", thousands(events))),
        "the suggestion shows the team's {events} events: {teams:?}"
    );
    c.close_suggestions("#filter-team").await;

    let channels = c.suggestions("#filter-in", "").await;
    let shown: BTreeSet<&str> = channels.iter().map(|(value, _)| value.as_str()).collect();
    let expected: BTreeSet<&str> = scoped_channels
        .iter()
        .map(|channel| channel["channel"].as_str().unwrap())
        .collect();
    assert_eq!(
        shown, expected,
        "the channel suggestions are the channels of the API's answer"
    );
    for (value, text) in &channels {
        let events = scoped_channels
            .iter()
            .find(|channel| channel["channel"] == value.as_str())
            .unwrap()["events"]
            .as_u64()
            .unwrap();
        assert!(
            text.contains(&format!("{value} (energy-trading)"))
                && text.contains(&format!("{} event", thousands(events))),
            "a channel suggestion reads `channel (team)` with its {events} events: {text:?}"
        );
    }
    c.close_suggestions("#filter-in").await;
    c.assert_no_junk("the suggestions").await;

    // The export criteria suggest from the same scope, channels as
    // team/channel; and the facets are not asked for again.
    c.click("a[data-nav=\"exports\"]").await;
    let custodians = c.suggestions("#export-custodians", "").await;
    let people: BTreeSet<String> = facet_names(&scoped["people"], "name").into_iter().collect();
    assert!(
        !custodians.is_empty() && custodians.iter().all(|(value, _)| people.contains(value)),
        "the custodian suggestions are people of the scope: {custodians:?}"
    );
    c.close_suggestions("#export-custodians").await;
    let export_channels = c.suggestions("#export-channels", "energy").await;
    assert!(
        !export_channels.is_empty()
            && export_channels
                .iter()
                .all(|(value, _)| value.starts_with("energy-trading/")),
        "export channels are suggested as team/channel: {export_channels:?}"
    );
    c.close_suggestions("#export-channels").await;
    c.click("a[data-nav=\"search\"]").await;
    assert_eq!(
        c.suggestions("#filter-team", "").await,
        teams,
        "back on the search screen, the same suggestions"
    );
    c.close_suggestions("#filter-team").await;
    assert_eq!(
        facets_reads(&c.server, &admin, "scoped-officer").await,
        reads_before + 1,
        "the console asks for the facets once per session (audited as search_facets)"
    );

    // Another person: the earlier person's suggestions are gone.
    c.sign_out().await;
    let token = c.server.token("officer").await;
    let facets = c.server.get_ok(&token, "/api/v1/facets").await;
    let all_teams = facet_names(&facets["teams"], "name");
    assert!(all_teams.len() >= 2, "{facets}");
    c.sign_in("officer").await;
    c.element("#search-form").await;
    let teams = c.suggestions("#filter-team", "").await;
    let shown: BTreeSet<&str> = teams.iter().map(|(value, _)| value.as_str()).collect();
    let expected: BTreeSet<&str> = all_teams.iter().map(String::as_str).collect();
    assert_eq!(shown, expected, "the officer is offered every team");
    c.close_suggestions("#filter-team").await;

    // Someone of the API's answer, the least busy (so not among the first
    // suggestions): typing their name suggests them.
    let person = facet_names(&facets["people"], "name").pop().unwrap();
    let people = c.suggestions("#filter-from", &person).await;
    assert!(
        people.iter().any(|(value, _)| *value == person),
        "typing {person:?} suggests them: {people:?}"
    );
    c.close_suggestions("#filter-from").await;
    c.element("#filter-from").await.clear().await.unwrap();

    // Completing the last of several teams, with the keyboard: the first
    // stays, and is not suggested again.
    let team = all_teams.last().unwrap().clone();
    let other = all_teams[0].clone();
    let fragment: String = team.chars().take(3).collect();
    let shown = c.suggestions("#filter-team", &format!("{other}, ")).await;
    assert!(
        shown.iter().any(|(value, _)| *value == team)
            && shown.iter().all(|(value, _)| *value != other),
        "after \"{other}, \" the other teams are suggested, not {other:?} again: {shown:?}"
    );
    c.close_suggestions("#filter-team").await;
    let typed = format!("{other}, {fragment}");
    let value = c.choose_by_keyboard("#filter-team", &typed, &team).await;
    assert_eq!(value, format!("{other}, {team}"));
    assert!(
        !c.is_visible("#search-sent").await,
        "Enter on a suggestion takes it, it does not search"
    );

    // One team, by a click, then search: only that team's posts.
    let value = c.choose_by_click("#filter-team", &fragment, &team).await;
    assert_eq!(value, team);
    let total = c.search_ok("kind:post").await;
    let sent = c.text("#search-sent").await;
    assert!(
        sent.contains(&format!("team:{team}")),
        "the query sent has the team chosen: {sent:?}"
    );
    let expected = c
        .server
        .search(&token, &format!("kind:post team:{team}"), 1)
        .await["total"]
        .as_u64()
        .unwrap();
    assert!(total > 0, "{team} has posts");
    assert_eq!(
        total, expected,
        "as many results as the API finds in {team}"
    );
    let wheres = c.texts("#search-results li.hit .hit-where").await;
    assert!(!wheres.is_empty());
    for place in &wheres {
        assert!(
            place.trim_start().starts_with(&format!("{team} /")),
            "a hit outside {team}: {place:?}"
        );
    }
});

console_test!(search_errors_show_position, |c| {
    c.goto("").await;
    c.sign_in("officer").await;
    let token = c.server.token("officer").await;
    // An operator with nothing on its left, after a non-ASCII word: the
    // API's position is a byte offset, the page must mark the right char.
    for query in ["wire AND OR cash", "Привет AND OR wire"] {
        let (status, body) = c
            .server
            .get(&token, &format!("/api/v1/search?q={}", encode(query)))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {body}");
        let error = &body["error"];
        assert_eq!(error["code"], "bad_query", "{body}");
        let position = error["position"].as_u64().unwrap() as usize;
        let column = error["column"].as_u64().unwrap();
        let offending = query[position..].chars().next().unwrap();

        let shown = match c.search(query).await {
            Ok(total) => panic!("{query:?} is a syntax error but shows {total} results"),
            Err(shown) => shown,
        };
        let at = c.text("#search-error .error-at").await;
        assert!(
            at.starts_with(offending),
            "{query:?}: `.error-at` should mark {offending:?} (byte {position}), marks {at:?}"
        );
        assert!(
            shown.to_lowercase().contains("column") && shown.contains(&column.to_string()),
            "{query:?}: #search-error should name column {column}: {shown:?}"
        );
        let caret = c
            .js(
                "return [document.activeElement && document.activeElement.id, $('#search-q').selectionStart];",
                vec![],
            )
            .await;
        let chars = query[..position].chars().count();
        assert_eq!(
            caret[0], "search-q",
            "{query:?}: the search box gets the focus: {caret}"
        );
        assert_eq!(
            caret[1].as_u64(),
            Some(chars as u64),
            "{query:?}: the caret goes to the error (char {chars}): {caret}"
        );
        let results = c.texts("#search-results li.hit").await;
        assert!(
            results.is_empty(),
            "{query:?}: an error with results shown: {results:?}"
        );
    }
});

console_test!(roles_see_their_screens, |c| {
    // Something for the auditor to see besides the demo's ingest: an
    // officer's sign-in and searches, and a mistyped password.
    let token = c.server.token("officer").await;
    for query in ["kind:post", "wire OR cash"] {
        c.server.search(&token, query, 5).await;
    }
    let (status, body) = http(
        Method::POST,
        &c.server.url("/api/v1/login"),
        &[],
        Some(&json!({"username": "counsel", "password": "not-the-password"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    c.goto("").await;
    c.sign_in("auditor").await;
    let nav = c.nav_links().await;
    assert_eq!(nav, vec!["audit".to_owned()], "an auditor sees Audit only");
    c.click("a[data-nav=\"audit\"]").await;
    c.element("#audit-form").await;
    c.wait_js(
        "audit records",
        "return $$('#audit-records tbody tr').length > 0;",
        vec![],
        UI_WAIT,
    )
    .await;
    // The whole trail, unfiltered: its screenshot shows varied actions.
    c.screenshot("audit.png").await;
    c.element("select#audit-action")
        .await
        .select_by_value("login")
        .await
        .unwrap_or_else(|error| panic!("#audit-action has no option login: {error}"));
    c.click("#audit-submit").await;
    let actions = c
        .wait_js(
            "the audit records of action login",
            "const heads = $$('#audit-records thead th').map((th) => th.textContent.trim().toLowerCase()); \
             const column = heads.indexOf('action'); \
             if (column < 0) return null; \
             const actions = $$('#audit-records tbody tr').map((tr) => tr.children[column] ? tr.children[column].textContent.trim() : ''); \
             return actions.length && actions.every((a) => a === 'login') ? actions : null;",
            vec![],
            UI_WAIT,
        )
        .await;
    assert!(!actions.as_array().unwrap().is_empty());
    let href = c
        .element("a#audit-export")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        href.contains("format=csv") && href.contains("action=login"),
        "the CSV link keeps the filter: {href:?}"
    );
    c.route("#/search").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !c.is_visible("#search-form").await,
        "an auditor cannot search"
    );
    c.sign_out().await;

    c.sign_in("admin").await;
    let nav = c.nav_links().await;
    assert_eq!(
        nav,
        ["holds", "exports", "retention", "audit"]
            .map(str::to_owned)
            .to_vec(),
        "an admin sees Holds, Exports, Retention and Audit, and not Search"
    );
    c.click("a[data-nav=\"retention\"]").await;
    let policies = c
        .wait_js(
            "the retention policies",
            "const e = $('#retention-policies'); return e && e.textContent.includes('demo-one-year') ? e.textContent : null;",
            vec![],
            UI_WAIT,
        )
        .await;
    assert!(
        policies.as_str().unwrap().contains("365"),
        "the policy keeps 365 days: {policies}"
    );
    c.click("#retention-plan-run").await;
    c.wait_js(
        "a retention plan",
        "const e = $('#retention-plan'); return visible(e) && e.querySelectorAll('tr').length > 1;",
        vec![],
        UI_WAIT,
    )
    .await;
    c.screenshot("retention.png").await;
    c.route("#/search").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !c.is_visible("#search-form").await,
        "an admin cannot search messages"
    );
});

console_test!(bad_sign_in_and_ended_session, |c| {
    c.goto("").await;
    c.element("#login-form").await;
    c.screenshot("signin.png").await;
    c.fill("#login-username", "officer").await;
    c.fill("#login-password", "not-the-password").await;
    c.click("#login-submit").await;
    let error = c
        .wait_js(
            "the sign-in error",
            "const e = $('#login-error'); return visible(e) && e.textContent.trim();",
            vec![],
            UI_WAIT,
        )
        .await;
    assert!(
        !error.as_str().unwrap().contains("not-the-password"),
        "the error repeats the password: {error}"
    );
    assert!(c.is_visible("#login-form").await);
    assert!(!c.is_visible("#whoami").await || !c.text("#whoami").await.contains("officer"));

    // The session ends behind the console's back: its next call is a 401.
    c.sign_in("officer").await;
    let cookie = format!("{SESSION_COOKIE}={}", c.session_cookie().await);
    let (status, body) = http(
        Method::POST,
        &c.server.url("/api/v1/logout"),
        &[("cookie", cookie.as_str()), CONSOLE_HEADER],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    c.route("#/search").await;
    c.element("#search-form").await;
    c.fill("#search-q", "kind:post").await;
    c.click("#search-submit").await;
    let notice = c
        .wait_js(
            "the console to send the person back to sign in",
            "const n = $('#login-notice'); return visible($('#login-form')) && visible(n) && n.textContent.trim();",
            vec![],
            UI_WAIT,
        )
        .await;
    assert!(
        notice.as_str().unwrap().to_lowercase().contains("session"),
        "#login-notice: {notice}"
    );
    // And signing in again works.
    c.sign_in("officer").await;
});

console_test!(narrow_screen, |c| {
    let word = c.server.findable_word().await;
    c.client.set_window_size(390, 844).await.unwrap();
    c.goto("").await;
    c.sign_in("officer").await;
    let total = c.search_ok(&word).await;
    assert!(total > 0);
    let widths = c
        .js(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
            vec![],
        )
        .await;
    let (scroll, client) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(
        client <= 400,
        "the window should be phone-sized, is {client} wide"
    );
    assert!(
        scroll <= client + 1,
        "the search screen scrolls sideways at 390 px: {scroll} > {client}"
    );
    c.screenshot("narrow-search.png").await;

    // The nav is reachable: shown, or behind a menu button.
    if !c.is_visible("a[data-nav=\"exports\"]").await {
        let toggle = c
            .js(
                "const b = $$('header button, nav button').find((b) => visible(b) && b.id !== 'logout' \
                   && (b.hasAttribute('aria-expanded') || b.hasAttribute('aria-controls'))); \
                 if (b) b.setAttribute('data-test-toggle', '1'); return !!b;",
                vec![],
            )
            .await;
        assert_eq!(
            toggle, true,
            "at 390 px the nav links are hidden and no menu button shows them"
        );
        c.click("[data-test-toggle]").await;
    }
    c.click("a[data-nav=\"exports\"]").await;
    c.wait_js(
        "the exports screen",
        "return location.hash.startsWith('#/exports');",
        vec![],
        UI_WAIT,
    )
    .await;
    let widths = c
        .js(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
            vec![],
        )
        .await;
    assert!(
        widths[0].as_u64().unwrap() <= widths[1].as_u64().unwrap() + 1,
        "the exports screen scrolls sideways at 390 px: {widths}"
    );
});

console_test!(edited_post_versions_side_by_side, |c| {
    // An edited post of the archive, found through the API.
    let token = c.server.token("officer").await;
    let edited = c.server.search(&token, "is:edited kind:post", 1).await;
    let post = edited["hits"][0]["post"]
        .as_str()
        .expect("the demo archive has an edited post")
        .to_owned();
    let context = c
        .server
        .get_ok(&token, &format!("/api/v1/posts/{post}/context"))
        .await;
    let versions: Vec<String> = context["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|version| version["text"].as_str().map(str::to_owned))
        .collect();
    assert!(versions.len() >= 2, "{context}");

    c.goto("").await;
    c.sign_in("officer").await;
    c.search_ok("is:edited kind:post").await;
    c.click(&format!(
        "#search-results li.hit[data-post=\"{post}\"] button.open-thread"
    ))
    .await;
    c.element("#context #versions").await;
    let shown = c.texts("#versions .version").await;
    assert_eq!(
        shown.len(),
        context["versions"].as_array().unwrap().len(),
        "one column per version: {shown:?}"
    );
    // Each text version is in its column, first to last.
    for (column, text) in shown.iter().filter(|s| !s.is_empty()).zip(&versions) {
        let words: Vec<&str> = text.split_whitespace().collect();
        let column_words: String = column.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.iter().all(|word| column_words.contains(word)),
            "the column {column:?} should show the version {text:?}"
        );
    }
    // Side by side at 1280 px: the columns share a row.
    let tops = c
        .js(
            "return $$('#versions .version').map((e) => Math.round(e.getBoundingClientRect().top));",
            vec![],
        )
        .await;
    let tops: Vec<i64> = tops
        .as_array()
        .unwrap()
        .iter()
        .map(|top| top.as_i64().unwrap())
        .collect();
    assert!(
        tops.windows(2).any(|pair| pair[0] == pair[1]),
        "the versions are not side by side: tops {tops:?}"
    );
});

console_test!(
    ldap_officer_signs_in_through_the_console,
    Server::ldap,
    |c| {
        let (user, password) = LDAP_PEOPLE[0];
        let (unmapped, unmapped_password) = LDAP_PEOPLE[1];
        c.goto("").await;

        // The directory's password, mistyped: refused as a wrong password
        // (not as a directory that cannot answer).
        let wrong = c.sign_in_refused(user, &password.to_lowercase()).await;
        assert!(
            !wrong.to_lowercase().contains("unavailable"),
            "a wrong password shows as an unavailable directory: {wrong:?}"
        );
        // The right password of someone whose groups grant no role: refused,
        // and not as a wrong password.
        let refused = c.sign_in_refused(unmapped, unmapped_password).await;
        assert_ne!(
            refused, wrong,
            "{unmapped} has the right password but no role: the error should say so"
        );

        c.sign_in(user).await;
        let whoami = c.text("#whoami").await;
        assert!(
            whoami.contains("compliance_officer") && whoami.contains(LDAP_TEAM),
            "#whoami should name the role and the team scope {LDAP_TEAM:?}: {whoami:?}"
        );
        let (status, me) = c.fetch_status("/api/v1/me").await;
        assert_eq!(status, 200, "GET /api/v1/me: {me}");
        let me = json_of("GET /api/v1/me", &Bytes::from(me));
        assert_eq!(me["username"], user, "{me}");
        assert_eq!(me["via"], "ldap", "{me}");
        assert_eq!(
            me["grants"],
            json!([{"role": "compliance_officer", "scope": format!("team {LDAP_TEAM}")}]),
            "{me}"
        );
        c.assert_officer_nav().await;
        assert!(
            !c.is_visible("#password-link").await,
            "an LDAP person changes their password in the directory, not in the console"
        );

        // Only the team the group grants.
        let total = c.search_ok("kind:post").await;
        assert!(total > 0, "an officer of {LDAP_TEAM} sees its posts");
        let wheres = c.texts("#search-results li.hit .hit-where").await;
        assert!(!wheres.is_empty(), "{total} results but no .hit-where");
        for place in &wheres {
            assert!(
                place.contains(LDAP_TEAM),
                "an officer of {LDAP_TEAM} sees a hit in {place:?}"
            );
        }
        c.assert_no_junk("the LDAP officer's search").await;
        let own = c.search_ok(&format!("kind:post team:{LDAP_TEAM}")).await;
        assert_eq!(
            own, total,
            "every post an officer of {LDAP_TEAM} sees should be of {LDAP_TEAM}"
        );
        for other in ["west-desk", "legal"] {
            let query = format!("team:{other}");
            match c.search(&query).await {
                Ok(total) => {
                    assert_eq!(total, 0, "{query} is outside the officer's scope");
                    let hits = c.texts("#search-results li.hit").await;
                    assert!(hits.is_empty(), "results of {other}: {hits:?}");
                }
                // Refused outright is fine too, as long as nothing shows.
                Err(_) => {
                    let hits = c.texts("#search-results li.hit").await;
                    assert!(hits.is_empty(), "results of {other}: {hits:?}");
                }
            }
        }

        // Sign out: the form is back and the session is gone.
        c.sign_out().await;
        assert!(!c.is_visible("#search-form").await);
        let (status, _) = c.fetch_status("/api/v1/me").await;
        assert_eq!(status, 401, "GET /api/v1/me after signing out");
    }
);

console_test!(admin_sees_a_retention_run_and_its_certificate, |c| {
    let token = c.server.token("admin").await;
    let hold_id = demo_hold(&c.server, &token).await;
    let hold_path = format!("/api/v1/holds/{hold_id}");
    let held_events = |hold: &Value| {
        hold["held"]["events"]
            .as_u64()
            .unwrap_or_else(|| panic!("a hold without held.events: {hold}"))
    };
    let held_before = held_events(&c.server.get_ok(&token, &hold_path).await);
    assert!(held_before > 0, "the sample hold holds nothing");
    // hold id -> events it keeps, of a plan or a certificate.
    let kept_by = |answer: &Value| -> BTreeMap<i64, u64> {
        answer["kept_by_holds"]
            .as_array()
            .unwrap_or_else(|| panic!("no kept_by_holds: {answer}"))
            .iter()
            .map(|kept| {
                (
                    kept["hold_id"].as_i64().unwrap(),
                    kept["events"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let plan = c.server.get_ok(&token, "/api/v1/retention/plan").await;
    let to_delete = plan["events_to_delete"].as_u64().unwrap();
    assert!(
        to_delete > 0,
        "the demo's older half is due under its one-year policy: {plan}"
    );
    let planned_kept = kept_by(&plan);
    assert!(
        planned_kept.get(&hold_id).is_some_and(|events| *events > 0),
        "the plan says the sample hold keeps due events: {plan}"
    );

    // The run, through the API: it answers with its certificate.
    let authorization = format!("Bearer {token}");
    let (status, body) = http(
        Method::POST,
        &c.server.url("/api/v1/retention/runs"),
        &[("authorization", authorization.as_str())],
        None,
    )
    .await;
    let certificate = json_of("POST /api/v1/retention/runs", &body);
    assert_eq!(status, StatusCode::OK, "{certificate}");
    let run_id = certificate["run_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("the certificate names no run_id: {certificate}"));
    let deleted = certificate["events_deleted"].as_u64().unwrap();
    assert_eq!(
        deleted, to_delete,
        "the run deletes what the plan said it would: {certificate}"
    );
    let by_policy: u64 = certificate["deleted_by_policy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|policy| policy["events"].as_u64().unwrap())
        .sum();
    assert_eq!(
        by_policy, deleted,
        "the events deleted per policy add up to events_deleted: {certificate}"
    );
    assert_eq!(
        kept_by(&certificate),
        planned_kept,
        "the run's holds keep what the plan said they would: {certificate}"
    );
    assert_eq!(
        planned_kept.values().sum::<u64>(),
        plan["events_kept_by_holds"].as_u64().unwrap(),
        "{plan}"
    );
    // What the hold keeps is still there, all of it; and nothing else due
    // is left.
    assert_eq!(
        held_events(&c.server.get_ok(&token, &hold_path).await),
        held_before,
        "the retention run deleted events that the sample hold keeps"
    );
    let after = c.server.get_ok(&token, "/api/v1/retention/plan").await;
    assert_eq!(
        after["events_to_delete"], 0,
        "after the run nothing due is left: {after}"
    );
    assert_eq!(
        kept_by(&after),
        planned_kept,
        "the hold still keeps the same events: {after}"
    );

    let shown = c
        .server
        .get_ok(&token, &format!("/api/v1/retention/runs/{run_id}"))
        .await;
    assert_eq!(
        shown["certificate"], certificate,
        "GET /api/v1/retention/runs/{run_id} gives the certificate the run answered with"
    );
    for (key, value) in [
        ("status", "done"),
        ("started_by", "admin"),
        ("trigger", "api"),
    ] {
        assert_eq!(shown[key], value, "{shown}");
    }
    let runs = c.server.get_ok(&token, "/api/v1/retention/runs").await;
    let runs = runs["runs"].as_array().unwrap().clone();
    let summary = runs
        .iter()
        .find(|run| run["run_id"] == run_id)
        .unwrap_or_else(|| panic!("GET /api/v1/retention/runs lacks run {run_id}: {runs:?}"))
        .clone();
    let iso = |ms: &Value| {
        chrono::DateTime::from_timestamp_millis(ms.as_i64().unwrap())
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };

    // The console: the run in the list, with what the API says of it.
    c.goto("").await;
    c.sign_in("admin").await;
    c.click("a[data-nav=\"retention\"]").await;
    let row = format!("#retention-runs tr[data-run-id=\"{run_id}\"]");
    c.element(&row).await;
    let listed = c
        .js(
            "return $$('#retention-runs tbody tr').map((tr) => tr.dataset.runId);",
            vec![],
        )
        .await;
    let expected: Vec<String> = runs.iter().map(|run| run["run_id"].to_string()).collect();
    assert_eq!(
        listed,
        json!(expected),
        "#retention-runs lists the API's runs, newest first"
    );
    let cells = c
        .js(
            "return Array.from($(arguments[0]).children).map((td) => { \
               const time = td.querySelector('time'); \
               return time ? time.getAttribute('datetime') : td.textContent.trim(); });",
            vec![json!(row)],
        )
        .await;
    assert_eq!(
        cells,
        json!([
            format!("Run {run_id}"),
            iso(&summary["started_at_ms"]),
            iso(&summary["finished_at_ms"]),
            summary["as_of"],
            "admin",
            "api",
            "done",
            summary["stage"],
        ]),
        "the row of run {run_id} (run, started, finished, as of, by, trigger, status, stage) against {summary}"
    );

    // Opened: its certificate, exactly the API's.
    c.click(&format!("{row} button.open-run")).await;
    let text = c
        .wait_js(
            "the run's certificate",
            "const pre = $('pre#retention-certificate'); \
             return visible(pre) && pre.textContent.trim().startsWith('{') ? pre.textContent : null;",
            vec![],
            UI_WAIT,
        )
        .await;
    let shown_certificate: Value = serde_json::from_str(text.as_str().unwrap())
        .unwrap_or_else(|error| panic!("#retention-certificate is not JSON ({error}): {text}"));
    assert_eq!(
        shown_certificate, certificate,
        "#retention-certificate shows the certificate of GET /api/v1/retention/runs/{run_id}"
    );
    let heading = c.text("#retention-run h3").await;
    assert_eq!(heading, format!("Run {run_id}"));

    // A plan now: nothing to delete, and the hold still keeping its events.
    c.click("#retention-plan-run").await;
    let plan_rows = c
        .wait_js(
            "a retention plan",
            "const table = $('#retention-plan'); if (!visible(table)) return null; \
             return Object.fromEntries($$('#retention-plan tr').filter((tr) => tr.querySelector('td')) \
               .map((tr) => [tr.querySelector('th').textContent.trim(), tr.querySelector('td').textContent.trim()]));",
            vec![],
            UI_WAIT,
        )
        .await;
    assert_eq!(plan_rows["Events to delete"], "0", "{plan_rows}");
    let kept = planned_kept[&hold_id];
    let hold_row = plan_rows
        .as_object()
        .unwrap()
        .iter()
        .find(|(label, _)| label.starts_with(&format!("{DEMO_HOLD} (#{hold_id},")))
        .unwrap_or_else(|| panic!("the plan has no row of the hold {DEMO_HOLD:?}: {plan_rows}"));
    assert_eq!(
        hold_row.1,
        &json!(thousands(kept)),
        "the plan shows the {kept} events the hold keeps: {plan_rows}"
    );
});

console_test!(counsel_exports_what_a_hold_keeps, |c| {
    let token = c.server.token("counsel").await;
    let hold_id = demo_hold(&c.server, &token).await;
    let hold = c
        .server
        .get_ok(&token, &format!("/api/v1/holds/{hold_id}"))
        .await;
    let held = hold["held"]["events"].as_u64().unwrap();
    assert!(held > 0, "the sample hold holds nothing: {hold}");

    c.goto("").await;
    c.sign_in("counsel").await;
    c.click("a[data-nav=\"holds\"]").await;
    c.click(&format!("#holds-list tr[data-hold-id=\"{hold_id}\"]"))
        .await;
    c.wait_js(
        "the sample hold's page",
        "const h = $('#hold-detail h1'); return visible(h) && h.textContent.trim() === arguments[0];",
        vec![json!(DEMO_HOLD)],
        UI_WAIT,
    )
    .await;
    c.click("#export-from-hold").await;
    c.element("#export-form").await;
    assert_eq!(c.hash().await, "#/exports");
    assert_eq!(c.value("#export-source-type").await, "hold");
    assert_eq!(c.value("#export-hold").await, hold_id.to_string());
    let source = c.text("#export-source").await;
    assert!(
        source.contains(DEMO_HOLD),
        "#export-source names the hold: {source:?}"
    );
    for format in ["csv", "pdf", "jsonl", "actiance", "eml"] {
        let checkbox = c
            .element(&format!("input[name=\"format\"][value=\"{format}\"]"))
            .await;
        if checkbox.is_selected().await.unwrap() != (format == "pdf") {
            checkbox.click().await.unwrap();
        }
    }
    let matter = format!("hold export {}", nonce());
    c.fill("#export-matter", &matter).await;
    c.click("#export-submit").await;

    let export = c.server.export_with_matter(&token, &matter).await;
    assert_eq!(
        export["request"]["source"],
        json!({"type": "hold", "hold": hold_id.to_string()}),
        "the export's source is the hold: {export}"
    );
    assert_eq!(export["request"]["formats"], json!(["pdf"]), "{export}");
    let id = export["id"].as_str().unwrap().to_owned();
    c.wait_js(
        "the export's row to say done, with its download link",
        "const row = $$('#exports-list tr[data-export-id]').find((r) => r.dataset.exportId === arguments[0]); \
         if (!row) return null; \
         const status = row.querySelector('.export-status'); \
         return status && /complete|done/i.test(status.textContent) && row.querySelector('a.export-download');",
        vec![json!(id)],
        EXPORT_WAIT,
    )
    .await;
    let record = c
        .server
        .get_ok(&token, &format!("/api/v1/exports/{id}"))
        .await;
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(
        record["events"], held,
        "the export has the {held} events the hold keeps: {record}"
    );
    c.click(&format!(
        "#exports-list tr[data-export-id=\"{id}\"] a.export-download"
    ))
    .await;
    let zip = c.downloaded("zip").await;
    let names = zip_names(&zip);
    let manifest = zip_entry(&zip, "manifest.json");
    let manifest: Value = serde_json::from_slice(&manifest).unwrap_or_else(|error| {
        panic!(
            "manifest.json is not JSON ({error}): {}",
            String::from_utf8_lossy(&manifest)
        )
    });
    assert_eq!(
        manifest["request"]["source"],
        json!({"type": "hold", "hold": hold_id.to_string()}),
        "{manifest}"
    );
    assert_eq!(manifest["formats"], json!(["pdf"]), "{manifest}");
    assert_eq!(manifest["matter"], matter.as_str(), "{manifest}");
    // counts.events: the events written to the package, which for a hold
    // is what it keeps now (matching events and their posts' other events).
    assert_eq!(
        manifest["counts"]["events"], held,
        "the manifest counts the {held} events the hold keeps (held.events): {manifest}"
    );
    let per_channel: u64 = manifest["counts"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|channel| channel["events"].as_u64().unwrap())
        .sum();
    assert_eq!(
        per_channel, held,
        "the manifest's channels add up to the events held: {manifest}"
    );
    let files: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["name"].as_str().unwrap().to_owned())
        .collect();
    let pdfs: Vec<&String> = files.iter().filter(|name| name.ends_with(".pdf")).collect();
    assert!(!pdfs.is_empty(), "the manifest lists no PDF: {files:?}");
    for file in &files {
        assert!(
            names
                .iter()
                .any(|name| name == file || name.ends_with(&format!("/{file}"))),
            "the manifest lists {file}, not in the zip: {names:?}"
        );
        // Besides the PDF, only the warnings file every package has.
        assert!(
            file.ends_with(".pdf") || file == "warnings.jsonl",
            "only PDF was asked for: {files:?}"
        );
    }
    let pdf = zip_entry(&zip, pdfs[0]);
    assert!(pdf.starts_with(b"%PDF"), "{} is not a PDF", pdfs[0]);
});

console_test!(auditor_exports_the_trail_as_csv, |c| {
    // The API's sign-in is a login record too.
    let token = c.server.token("auditor").await;
    c.goto("").await;
    c.sign_in("auditor").await;
    c.click("a[data-nav=\"audit\"]").await;
    c.element("#audit-form").await;
    c.element("select#audit-action")
        .await
        .select_by_value("login")
        .await
        .unwrap_or_else(|error| panic!("#audit-action has no option login: {error}"));
    c.click("#audit-submit").await;
    let shown = c
        .wait_js(
            "the audit records of action login",
            "const heads = $$('#audit-records thead th').map((th) => th.textContent.trim().toLowerCase()); \
             const column = heads.indexOf('action'); \
             if (column < 0) return null; \
             const rows = $$('#audit-records tbody tr'); \
             const actions = rows.map((tr) => tr.children[column] ? tr.children[column].textContent.trim() : ''); \
             return actions.length && actions.every((a) => a === 'login') ? rows.map((tr) => tr.dataset.seq) : null;",
            vec![],
            UI_WAIT,
        )
        .await;
    let table: BTreeSet<u64> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|seq| seq.as_str().unwrap().parse().unwrap())
        .collect();
    c.click("a#audit-export").await;
    let path = c.downloaded("csv").await;
    let bytes = std::fs::read(&path).unwrap();
    let (header, rows) = csv_rows("the downloaded CSV", &bytes);
    assert_eq!(
        header,
        [
            "seq",
            "at",
            "actor",
            "role",
            "client",
            "action",
            "params",
            "outcome",
            "detail",
            "prev_hash",
            "hash"
        ],
        "the CSV's header row"
    );
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (seq, action, actor) = (column("seq"), column("action"), column("actor"));
    for row in &rows {
        assert_eq!(row[action], "login", "a row of another action: {row:?}");
    }
    let downloaded: BTreeSet<u64> = rows.iter().map(|row| row[seq].parse().unwrap()).collect();
    assert_eq!(downloaded.len(), rows.len(), "a record twice in the CSV");
    assert!(
        rows.len() >= table.len() && table.is_subset(&downloaded),
        "the CSV ({} rows) has every record of the table ({:?}): {downloaded:?}",
        rows.len(),
        table
    );
    assert!(
        rows.iter().any(|row| row[actor] == "auditor"),
        "the auditor's own sign-ins are in the CSV: {rows:?}"
    );

    // The same selection from the API, a moment later: the same records,
    // plus only newer ones if the trail grew meanwhile.
    let authorization = format!("Bearer {token}");
    let (status, body) = http(
        Method::GET,
        &c.server.url("/api/v1/audit?action=login&format=csv"),
        &[("authorization", authorization.as_str())],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (api_header, api_rows) = csv_rows("GET /api/v1/audit?format=csv", &body);
    assert_eq!(api_header, header);
    let from_api: BTreeSet<u64> = api_rows
        .iter()
        .map(|row| {
            assert_eq!(row[action], "login", "{row:?}");
            row[seq].parse().unwrap()
        })
        .collect();
    assert!(
        downloaded.is_subset(&from_api),
        "the console's CSV has records the API's does not: {downloaded:?} vs {from_api:?}"
    );
    let newest = downloaded.last().copied().unwrap_or(0);
    let missing: Vec<&u64> = from_api.difference(&downloaded).collect();
    assert!(
        missing.iter().all(|seq| **seq > newest),
        "the console's CSV lacks older login records {missing:?} (its newest is {newest})"
    );
});

console_test!(keyboard_only_search_and_context, |c| {
    c.goto("").await;
    c.element("#login-form").await;
    // Back to the start of the page: the skip link is the first stop.
    let mut visited = Vec::new();
    while !c.has_focus("a.skip-link").await {
        assert!(
            visited.len() < 10,
            "Shift+Tab never reaches the skip link: {visited:?}"
        );
        c.shift_tab().await;
        visited.push(c.focused().await);
    }
    assert!(
        c.is_visible("a.skip-link").await,
        "the focused skip link is shown"
    );
    // The skip link takes the focus to the content; Tab goes on to the
    // username field.
    c.press_key(Key::Enter).await;
    c.wait_js(
        "the skip link to move the focus into #view",
        "return $('#view').contains(document.activeElement);",
        vec![],
        UI_WAIT,
    )
    .await;
    c.press_key(Key::Tab).await;
    assert!(
        c.has_focus("#login-username").await,
        "Tab after the skip link should reach the username field, reached {}",
        c.focused().await
    );
    c.type_keys("officer").await;
    c.press_key(Key::Tab).await;
    assert!(
        c.has_focus("#login-password").await,
        "Tab after the username should reach the password, reached {}",
        c.focused().await
    );
    let password = c.server.password("officer").to_owned();
    c.type_keys(&password).await;
    c.press_key(Key::Enter).await;
    c.wait_js(
        "Enter in the password field to sign the officer in",
        "return !visible($('#login-form')) && visible($('#whoami')) && $('#whoami').textContent.includes('officer');",
        vec![],
        UI_WAIT,
    )
    .await;

    // The search box: focused on arrival, or by `/`.
    c.element("#search-form").await;
    if !c.has_focus("#search-q").await {
        c.press(&['/']).await;
    }
    assert!(
        c.has_focus("#search-q").await,
        "the search box should have the focus (or take it on `/`), {} has it",
        c.focused().await
    );
    let query = "kind:post";
    c.type_keys(query).await;
    c.press_key(Key::Enter).await;
    c.wait_js(
        "the results of the search typed",
        "const sent = $('#search-sent'), total = $('#search-total'); \
         return !!sent && sent.textContent.includes(arguments[0]) && !!total && /[1-9]/.test(total.textContent) \
           && $$('#search-results button.open-thread').length > 0;",
        vec![json!(query)],
        UI_WAIT,
    )
    .await;
    c.js(
        "$('#search-results button.open-thread').setAttribute('data-test-opener', '1');",
        vec![],
    )
    .await;
    let mut visited = Vec::new();
    while !c.has_focus("[data-test-opener]").await {
        assert!(
            visited.len() < 80,
            "Tab never reaches the first `Open in context`: {visited:?}"
        );
        c.press_key(Key::Tab).await;
        visited.push(c.focused().await);
    }
    c.press_key(Key::Enter).await;
    c.wait_js(
        "Enter on `Open in context` to open the panel with the focus in it",
        "const panel = $('#context'); return visible(panel) && panel.contains(document.activeElement) \
           && !!panel.querySelector('.msg.focus');",
        vec![],
        UI_WAIT,
    )
    .await;
    assert!(
        c.js(
            "return $('#context').contains(document.activeElement);",
            vec![]
        )
        .await
            == true,
        "the focus left #context once it loaded: {}",
        c.focused().await
    );
    c.press_key(Key::Escape).await;
    c.wait_js(
        "Escape to close the context",
        "return !visible($('#context'));",
        vec![],
        UI_WAIT,
    )
    .await;
    assert!(
        c.has_focus("[data-test-opener]").await,
        "after Escape the focus is back on the `Open in context` that opened it, not on {}",
        c.focused().await
    );
});

console_test!(pages_through_a_large_result_set, |c| {
    // The API's first two pages of 20, newest first (the console's defaults).
    let token = c.server.token("officer").await;
    let first = c
        .server
        .get_ok(&token, "/api/v1/search?q=kind%3Apost&limit=20&sort=newest")
        .await;
    let total = first["total"].as_u64().unwrap();
    assert!(
        total > 40,
        "the demo has more than two pages of posts: {total}"
    );
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = c
        .server
        .get_ok(
            &token,
            &format!(
                "/api/v1/search?q=kind%3Apost&limit=20&sort=newest&cursor={}",
                encode(&cursor)
            ),
        )
        .await;
    let ids = |page: &Value| -> Vec<String> {
        page["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| hit["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (first_ids, second_ids) = (ids(&first), ids(&second));
    assert_eq!(first_ids.len(), 20);
    assert_eq!(second_ids.len(), 20);

    c.goto("").await;
    c.sign_in("officer").await;
    assert_eq!(c.search_ok("kind:post").await, total);
    assert_eq!(
        shown_hit_ids(&c).await,
        first_ids,
        "page 1 is the API's page 1"
    );
    assert!(
        !c.is_visible("#page-prev").await
            || c.js("return $('#page-prev').disabled;", vec![]).await == true,
        "no previous page on page 1"
    );

    c.click("#page-next").await;
    c.wait_js(
        "page 2",
        "return /2/.test($('#page-info').textContent) \
         && $$('#search-results li.hit').length > 0 \
         && $('#search-results li.hit').getAttribute('data-event') === arguments[0];",
        vec![json!(second_ids[0])],
        UI_WAIT,
    )
    .await;
    assert_eq!(
        shown_hit_ids(&c).await,
        second_ids,
        "page 2 is the API's page 2"
    );

    c.click("#page-prev").await;
    c.wait_js(
        "page 1 again",
        "return /1/.test($('#page-info').textContent) \
         && $('#search-results li.hit').getAttribute('data-event') === arguments[0];",
        vec![json!(first_ids[0])],
        UI_WAIT,
    )
    .await;
    assert_eq!(shown_hit_ids(&c).await, first_ids, "back on page 1");
    let info = c.text("#search-total").await;
    assert!(
        info.replace(',', "").contains(&total.to_string()),
        "the total stays shown: {info:?}"
    );
});

/// The event ids of the hits on the page, in order.
async fn shown_hit_ids(c: &Console) -> Vec<String> {
    c.js(
        "return $$('#search-results li.hit').map((e) => e.getAttribute('data-event'));",
        vec![],
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|id| id.as_str().unwrap().to_owned())
    .collect()
}
