//! The `holdfast` binary as an operator uses it: exit codes (0 ok, 1
//! verification failed or lines rejected, 2 any other error), what it prints
//! on stdout and stderr, and what it leaves in the data directory.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// How long a child may take to reach a signal we wait for (its listening
/// line, its exit) before the test gives up instead of hanging.
const PATIENCE: Duration = Duration::from_secs(120);

/// A message text that must never appear in anything but `get`/`post` output.
const SECRET_TEXT: &str = "zebra-quartz-7731 settlement terms";

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// What a finished `holdfast` run left behind.
struct Run {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "{}: expected exit code {code}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }

    fn ok(self) -> Run {
        self.expect_code(0)
    }

    /// Asserts that stderr contains every one of `needles`.
    fn stderr_has(self, needles: &[&str]) -> Run {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "{}: stderr should contain {needle:?}\n--- stderr:\n{}",
                self.what,
                self.stderr
            );
        }
        self
    }

    /// Asserts that stderr says `pid PID` (and not a longer number).
    fn stderr_names_pid(self, pid: u32) -> Run {
        let needle = format!("pid {pid}");
        let named = self.stderr.match_indices(&needle).any(|(at, _)| {
            !self.stderr[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit())
        });
        assert!(
            named,
            "{}: stderr should name {needle}:\n{}",
            self.what, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "{}: stdout is not JSON ({error}):\n{}",
                self.what, self.stdout
            )
        })
    }

    /// stdout and stderr together, for "never printed" checks.
    fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

fn run(command: &mut Command) -> Run {
    let what = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    Run {
        what,
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `holdfast --data-dir DATA_DIR ARGS...` with a clean environment.
fn holdfast(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = helpers::holdfast(data_dir);
    command.args(args);
    command
}

/// Runs `holdfast ARGS...` on `data_dir` with no extra environment.
fn hf(data_dir: &Path, args: &[&str]) -> Run {
    run(&mut holdfast(data_dir, args))
}

/// Runs `holdfast ARGS...` with `HOLDFAST_KEK_FILE=key_file`.
fn hf_with_key(data_dir: &Path, key_file: &Path, args: &[&str]) -> Run {
    run(holdfast(data_dir, args).env("HOLDFAST_KEK_FILE", key_file))
}

/// A `holdfast serve` child, killed (and reaped) when dropped, so that no
/// failed assertion leaves a server behind.
struct Server {
    child: Child,
    stderr_lines: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
    address: String,
}

/// What became of a `holdfast serve` start.
enum ServeStart {
    Listening(Server),
    /// It exited before printing its listening line.
    Exited(Run),
}

impl Server {
    /// Starts `holdfast serve --listen 127.0.0.1:0` and waits for its
    /// `listening on http://ADDR` line (or its exit).
    fn start(command: &mut Command) -> ServeStart {
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        let what = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, stderr_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        // From here on the guard owns the child: a panic kills it.
        let mut server = Server {
            child,
            stderr_lines,
            stderr_seen: Vec::new(),
            address: String::new(),
        };
        loop {
            match server.stderr_lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    let address = line.trim().strip_prefix("listening on http://");
                    if let Some(address) = address {
                        server.address = address.to_owned();
                        server.stderr_seen.push(line);
                        return ServeStart::Listening(server);
                    }
                    server.stderr_seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stderr closed: the process is exiting.
                    let status = server.child.wait().unwrap();
                    return ServeStart::Exited(Run {
                        what,
                        code: status.code(),
                        stdout: String::new(),
                        stderr: server.stderr_seen.join("\n"),
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "{what} neither listened nor exited; stderr so far:\n{}",
                    server.stderr_seen.join("\n")
                ),
            }
        }
    }

    fn expect_listening(command: &mut Command) -> Server {
        match Server::start(command) {
            ServeStart::Listening(server) => server,
            ServeStart::Exited(run) => panic!(
                "serve exited with {:?} before listening:\n{}",
                run.code, run.stderr
            ),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server, reaps it and returns all it wrote to stderr.
    fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.drain_stderr()
    }

    /// Sends SIGTERM, waits for the exit and returns (exit code, stderr).
    fn terminate(mut self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let stderr = self.drain_stderr();
        let code = self.child.wait().unwrap().code();
        (code, stderr)
    }

    /// Reads stderr to its end (the process has exited or is exiting).
    fn drain_stderr(&mut self) -> String {
        loop {
            match self.stderr_lines.recv_timeout(PATIENCE) {
                Ok(line) => self.stderr_seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("serve did not close its stderr: it did not exit")
                }
            }
        }
        self.stderr_seen.join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs an NDJSON body to a running server's ingest endpoint; returns the
/// whole HTTP response.
fn http_post_events(address: &str, token: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "POST /api/v1/events HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A temp directory with a (not yet created) data directory inside.
struct Place {
    tmp: tempfile::TempDir,
    data_dir: PathBuf,
}

impl Place {
    fn new() -> Place {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        Place { tmp, data_dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn segments_dir(&self) -> PathBuf {
        self.data_dir.join("segments")
    }

    fn master_key(&self) -> PathBuf {
        self.data_dir.join("master.key")
    }

    /// Writes `holdfast generate` output to `name` and returns its path.
    fn corpus(&self, name: &str, events: u64, seed: u64) -> PathBuf {
        let path = self.path(name);
        hf(
            &self.data_dir,
            &[
                "generate",
                "--events",
                &events.to_string(),
                "--seed",
                &seed.to_string(),
                "--out",
                path.to_str().unwrap(),
            ],
        )
        .ok();
        path
    }

    /// Generates and ingests a corpus; returns its lines as JSON.
    fn ingested_corpus(&self, events: u64, seed: u64) -> Vec<Value> {
        let corpus = self.corpus("corpus.ndjson", events, seed);
        let report = hf(&self.data_dir, &["ingest", corpus.to_str().unwrap()])
            .ok()
            .json();
        assert_eq!(report["accepted"], json!(events), "{report}");
        read_ndjson(&corpus)
    }

    /// Every segment file's name and bytes.
    fn segment_bytes(&self) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(self.segments_dir())
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    fs::read(entry.path()).unwrap(),
                )
            })
            .collect()
    }
}

fn read_ndjson(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The time of an input event as the archive shows it: RFC 3339 UTC with
/// millisecond precision (microseconds when there are some).
fn normalised_at(at: &Value) -> DateTime<Utc> {
    match at {
        Value::Number(ms) => DateTime::from_timestamp_millis(ms.as_i64().unwrap()).unwrap(),
        Value::String(text) => DateTime::parse_from_rfc3339(text).unwrap().to_utc(),
        other => panic!("unexpected `at` {other}"),
    }
}

fn format_at(at: DateTime<Utc>) -> String {
    let precision = if at.timestamp_subsec_micros().is_multiple_of(1000) {
        SecondsFormat::Millis
    } else {
        SecondsFormat::Micros
    };
    at.to_rfc3339_opts(precision, true)
}

/// An input event as `get` must print it back: the same object with `at`
/// normalised.
fn normalised(input: &Value) -> Value {
    let mut value = input.clone();
    value["at"] = json!(format_at(normalised_at(&input["at"])));
    value
}

/// Asserts that `shown` (from `get`/`post`) is the input event `input`.
fn assert_same_event(shown: &Value, input: &Value) {
    let expected = normalised(input);
    for field in ["id", "kind", "at", "team", "channel", "user", "text"] {
        assert_eq!(
            shown.get(field),
            expected.get(field),
            "field {field} differs\nshown: {shown}\ninput: {input}"
        );
    }
    assert_eq!(shown, &expected, "shown: {shown}\ninput: {input}");
}

fn get_event(data_dir: &Path, id: &str) -> Value {
    hf(data_dir, &["get", id]).ok().json()
}

fn stats_events(data_dir: &Path) -> u64 {
    hf(data_dir, &["stats", "--json"]).ok().json()["events"]
        .as_u64()
        .unwrap()
}

fn good_line(id: &str, post: &str, at: &Value, text: &str) -> String {
    json!({
        "id": id, "kind": "post", "at": at, "team": "legal", "channel": "town-square",
        "user": "allen-p", "post": post, "text": text,
    })
    .to_string()
}

// ---------------------------------------------------------------------------
// generate and --help
// ---------------------------------------------------------------------------

#[test]
fn generate_is_deterministic_per_seed() {
    let place = Place::new();
    let first = fs::read(place.corpus("a.ndjson", 3000, 5)).unwrap();
    let second = fs::read(place.corpus("b.ndjson", 3000, 5)).unwrap();
    let other_seed = fs::read(place.corpus("c.ndjson", 3000, 6)).unwrap();
    assert!(first == second, "the same seed gave different corpora");
    assert!(first != other_seed, "seeds 5 and 6 gave the same corpus");
    let lines = read_ndjson(&place.path("a.ndjson"));
    assert_eq!(lines.len(), 3000);
    let ids: BTreeSet<&str> = lines.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3000, "event ids must be unique");
    // generate needs no archive: it must not create the data directory.
    assert!(!place.data_dir.exists());
}

#[test]
fn help_of_every_command_names_its_options() {
    let place = Place::new();
    let cases: [(&[&str], &[&str]); 10] = [
        (
            &[],
            &[
                "--data-dir",
                "--config",
                "serve",
                "ingest",
                "get",
                "post",
                "verify",
                "stats",
                "keys",
                "generate",
            ],
        ),
        (&["serve"], &["--listen"]),
        (&["ingest"], &["<INPUT>", "--batch-lines"]),
        (&["get"], &["<ID>"]),
        (&["post"], &["<POST>"]),
        (&["verify"], &["--json"]),
        (&["stats"], &["--json"]),
        (&["keys", "rotate"], &["--new-key-file"]),
        (&["keys", "generate"], &["--out"]),
        (&["generate"], &["--events", "--seed", "--out"]),
    ];
    for (command, options) in cases {
        let mut args = command.to_vec();
        args.push("--help");
        let help = hf(&place.data_dir, &args).ok();
        for option in options.iter().chain(&["--data-dir", "--config"]) {
            assert!(
                help.stdout.contains(option),
                "`holdfast {}` should mention {option}:\n{}",
                args.join(" "),
                help.stdout
            );
        }
    }
    assert!(!place.data_dir.exists(), "--help must not create anything");
}

// ---------------------------------------------------------------------------
// ingest, get, post, stats, verify
// ---------------------------------------------------------------------------

#[test]
fn ingest_get_post_stats_verify_round_trip() {
    let place = Place::new();
    let corpus = place.corpus("corpus.ndjson", 3000, 5);
    let events = read_ndjson(&corpus);

    let first = hf(&place.data_dir, &["ingest", corpus.to_str().unwrap()]).ok();
    assert_eq!(
        first.json(),
        json!({"accepted": 3000, "duplicates": 0, "rejected": 0})
    );
    let again = hf(&place.data_dir, &["ingest", corpus.to_str().unwrap()]).ok();
    assert_eq!(
        again.json(),
        json!({"accepted": 0, "duplicates": 3000, "rejected": 0})
    );

    // get: the first event of every kind, one with epoch-millisecond `at`,
    // and a sample across the file.
    let mut picked: BTreeMap<String, &Value> = BTreeMap::new();
    let mut kinds_seen = BTreeSet::new();
    for (index, event) in events.iter().enumerate() {
        let kind = event["kind"].as_str().unwrap();
        let id = event["id"].as_str().unwrap().to_owned();
        if kinds_seen.insert(kind.to_owned()) || index % 250 == 0 {
            picked.insert(id, event);
        }
    }
    let with_ms_at = events.iter().find(|e| e["at"].is_number()).unwrap();
    picked.insert(with_ms_at["id"].as_str().unwrap().to_owned(), with_ms_at);
    assert!(kinds_seen.len() >= 10, "the corpus should have most kinds");
    for (id, input) in &picked {
        assert_same_event(&get_event(&place.data_dir, id), input);
    }
    hf(&place.data_dir, &["get", "no-such-event"])
        .expect_code(2)
        .stderr_has(&["no-such-event"]);

    // post: the post with the most events, in the order they were ingested.
    let mut by_post: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for event in &events {
        if let Some(post) = event["post"].as_str() {
            by_post.entry(post).or_default().push(event);
        }
    }
    let (post_id, post_events) = by_post
        .iter()
        .max_by_key(|(post, list)| (list.len(), std::cmp::Reverse(*post)))
        .unwrap();
    assert!(post_events.len() >= 3, "a busy post has edits or reactions");
    let shown = hf(&place.data_dir, &["post", post_id]).ok();
    let shown: Vec<Value> = shown
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(shown.len(), post_events.len(), "events of post {post_id}");
    for (shown, input) in shown.iter().zip(post_events) {
        assert_same_event(shown, input);
    }
    hf(&place.data_dir, &["post", "no-such-post"]).expect_code(2);

    // stats --json: counted independently from the input.
    let stats = hf(&place.data_dir, &["stats", "--json"]).ok().json();
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    let mut teams = BTreeSet::new();
    let mut channels = BTreeSet::new();
    let mut epochs = BTreeSet::new();
    let mut posts = BTreeSet::new();
    let mut times = Vec::new();
    for event in &events {
        *by_kind.entry(event["kind"].as_str().unwrap()).or_default() += 1;
        let team = event["team"].as_str().unwrap();
        let channel = event["channel"].as_str().unwrap();
        let at = normalised_at(&event["at"]);
        teams.insert(team);
        channels.insert((team, channel));
        epochs.insert((team, channel, at.format("%Y-%m-%d").to_string()));
        if let Some(post) = event["post"].as_str() {
            posts.insert(post);
        }
        times.push(at);
    }
    assert_eq!(stats["events"], json!(3000), "{stats}");
    assert_eq!(stats["events_by_kind"], json!(by_kind), "{stats}");
    assert_eq!(stats["posts"], json!(posts.len()), "{stats}");
    assert_eq!(stats["teams"], json!(teams.len()), "{stats}");
    assert_eq!(stats["channels"], json!(channels.len()), "{stats}");
    assert_eq!(stats["key_epochs"], json!(epochs.len()), "{stats}");
    assert_eq!(stats["destroyed_key_epochs"], json!(0), "{stats}");
    assert_eq!(
        stats["first_event_at"],
        json!(format_at(*times.iter().min().unwrap())),
        "{stats}"
    );
    assert_eq!(
        stats["last_event_at"],
        json!(format_at(*times.iter().max().unwrap())),
        "{stats}"
    );
    let segments = place.segment_bytes();
    assert_eq!(stats["segments"], json!(segments.len()), "{stats}");
    let bytes_on_disk: usize = segments.values().map(Vec::len).sum();
    assert_eq!(stats["segment_bytes"], json!(bytes_on_disk), "{stats}");

    // verify, as text and as JSON.
    let verify = hf(&place.data_dir, &["verify"]).ok();
    assert!(verify.stdout.contains("OK"), "{}", verify.stdout);
    let report = hf(&place.data_dir, &["verify", "--json"]).ok().json();
    assert_eq!(report["ok"], json!(true), "{report}");
    assert_eq!(report["events"], json!(3000), "{report}");
    assert_eq!(report["records"], json!(3000), "{report}");
    assert_eq!(report["problems"], json!([]), "{report}");
}

#[test]
fn ingest_reads_standard_input() {
    let place = Place::new();
    let corpus = place.corpus("corpus.ndjson", 500, 9);
    let body = fs::read(&corpus).unwrap();
    let mut child = holdfast(&place.data_dir, &["ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report,
        json!({"accepted": 500, "duplicates": 0, "rejected": 0})
    );
    let events = read_ndjson(&corpus);
    assert_same_event(&get_event(&place.data_dir, "gen-9-499"), &events[499]);
    assert_eq!(stats_events(&place.data_dir), 500);
}

/// Lines 1, 3 and 9 are good; 2, 4, 6, 7 and 8 are bad; 5 is blank.
///
/// With `--batch-lines 2` the chunks are (1, 2), (3, 4), (5, 6), (7, 8),
/// (9): a chunk that is a blank line and one bad object, and a chunk of a
/// single line, must still name the right line numbers.
fn mixed_input() -> Vec<u8> {
    let mut body = Vec::new();
    let mut line = |bytes: &[u8]| {
        body.extend_from_slice(bytes);
        body.push(b'\n');
    };
    line(
        good_line(
            "good-1",
            "p-1",
            &json!("2024-03-01T12:00:00.250+02:00"),
            "first",
        )
        .as_bytes(),
    );
    line(br#"{"id":"bad-json","kind":"post","at":"#);
    line(good_line("good-3", "p-3", &json!(1_709_287_200_250_i64), "third").as_bytes());
    line(
        br#"{"id":"bad-missing","kind":"post","at":"2024-03-01T10:00:00Z","team":"legal","channel":"town-square","post":"p-4","text":"no user"}"#,
    );
    line(b"");
    line(
        br#"{"id":"bad-kind","kind":"shout","at":"2024-03-01T10:00:00Z","team":"legal","channel":"town-square","user":"allen-p"}"#,
    );
    line(b"{\"id\":\"bad-utf8\",\"kind\":\"post\",\"at\":\"2024-03-01T10:00:00Z\",\"team\":\"legal\",\"channel\":\"town-square\",\"user\":\"allen-p\",\"post\":\"p-6\",\"text\":\"caf\xe9 \xff\"}");
    line(
        br#"{"id":"bad-reaction","kind":"reaction_add","at":"2024-03-01T10:00:00Z","team":"legal","channel":"town-square","user":"allen-p","post":"p-1"}"#,
    );
    line(
        good_line(
            "good-9",
            "p-9",
            &json!("2024-03-01T10:00:00.123456Z"),
            "ninth",
        )
        .as_bytes(),
    );
    body
}

#[test]
fn bad_lines_are_named_and_good_lines_are_stored() {
    let place = Place::new();
    let input = place.path("mixed.ndjson");
    fs::write(&input, mixed_input()).unwrap();
    // Small group commits too, so that line numbers must survive chunking.
    for batch_lines in ["10000", "2"] {
        let data_dir = place.path(&format!("data-{batch_lines}"));
        let run = hf(
            &data_dir,
            &[
                "ingest",
                "--batch-lines",
                batch_lines,
                input.to_str().unwrap(),
            ],
        )
        .expect_code(1);
        assert_eq!(
            run.json(),
            json!({"accepted": 3, "duplicates": 0, "rejected": 5})
        );
        let rejected: Vec<&str> = run
            .stderr
            .lines()
            .filter(|line| line.starts_with("rejected line"))
            .collect();
        assert_eq!(rejected.len(), 5, "{}", run.stderr);
        let expectations: [(&str, &[&str]); 5] = [
            ("rejected line 2", &["malformed JSON"]),
            ("rejected line 4", &["user", "missing"]),
            ("rejected line 6", &["kind", "shout"]),
            ("rejected line 7", &["UTF-8"]),
            ("rejected line 8", &["emoji", "missing"]),
        ];
        for (prefix, needles) in expectations {
            let line = rejected
                .iter()
                .find(|line| {
                    line.starts_with(&format!("{prefix}:"))
                        || line.starts_with(&format!("{prefix} "))
                })
                .unwrap_or_else(|| {
                    panic!(
                        "no {prefix:?} with --batch-lines {batch_lines}; stderr:\n{}",
                        run.stderr
                    )
                });
            for needle in needles {
                assert!(line.contains(needle), "{line:?} should name {needle:?}");
            }
        }
        for good in ["line 1", "line 3", "line 5", "line 9"] {
            assert!(
                !run.stderr.contains(&format!("rejected {good}:"))
                    && !run.stderr.contains(&format!("rejected {good} ")),
                "{good} was not bad:\n{}",
                run.stderr
            );
        }

        // The good lines are stored, with `at` normalised to UTC.
        let stored = get_event(&data_dir, "good-1");
        assert_eq!(stored["at"], json!("2024-03-01T10:00:00.250Z"));
        assert_eq!(stored["text"], json!("first"));
        assert_eq!(
            get_event(&data_dir, "good-3")["at"],
            json!("2024-03-01T10:00:00.250Z")
        );
        assert_eq!(
            get_event(&data_dir, "good-9")["at"],
            json!("2024-03-01T10:00:00.123456Z")
        );
        for bad in [
            "bad-json",
            "bad-missing",
            "bad-utf8",
            "bad-kind",
            "bad-reaction",
        ] {
            hf(&data_dir, &["get", bad]).expect_code(2);
        }
        let stats = hf(&data_dir, &["stats", "--json"]).ok().json();
        assert_eq!(stats["events"], json!(3), "{stats}");
        hf(&data_dir, &["verify"]).ok();
    }
}

#[test]
fn a_missing_input_file_is_named() {
    let place = Place::new();
    let missing = place.path("no-such-dir/events.ndjson");
    hf(&place.data_dir, &["ingest", missing.to_str().unwrap()])
        .expect_code(2)
        .stderr_has(&[missing.to_str().unwrap()]);
    assert!(
        !place.data_dir.exists(),
        "a typo in the input path must not create an archive"
    );
}

// ---------------------------------------------------------------------------
// One writer, many readers
// ---------------------------------------------------------------------------

#[test]
fn a_second_writer_is_refused_while_serve_runs_and_readers_work_beside_it() {
    let place = Place::new();
    let events = place.ingested_corpus(300, 3);
    let server = Server::expect_listening(&mut helpers::holdfast(&place.data_dir));

    // The server really serves: store one more event through it.
    let token = fs::read_to_string(place.data_dir.join("ingest.token")).unwrap();
    let live = good_line(
        "live-1",
        "p-live",
        &json!("2024-06-01T08:00:00Z"),
        "through the API",
    );
    let response = http_post_events(&server.address, token.trim(), &live);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // While it runs, every file it keeps in the data directory stays private.
    for entry in fs::read_dir(&place.data_dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            mode(&path) & 0o077,
            0,
            "{} is {:o}",
            path.display(),
            mode(&path)
        );
    }

    // A second writer is refused and told who holds the directory.
    let corpus = place.path("corpus.ndjson");
    hf(&place.data_dir, &["ingest", corpus.to_str().unwrap()])
        .expect_code(2)
        .stderr_has(&["in use"])
        .stderr_names_pid(server.pid());
    hf(&place.data_dir, &["keys", "rotate"])
        .expect_code(2)
        .stderr_has(&["in use"])
        .stderr_names_pid(server.pid());

    // Readers work beside it, and see what it wrote.
    assert_same_event(&get_event(&place.data_dir, "gen-3-42"), &events[42]);
    assert_eq!(
        get_event(&place.data_dir, "live-1")["text"],
        json!("through the API")
    );
    assert_eq!(stats_events(&place.data_dir), 301);
    let report = hf(&place.data_dir, &["verify", "--json"]).ok().json();
    assert_eq!(report["ok"], json!(true), "{report}");
    assert_eq!(report["events"], json!(301), "{report}");
    hf(&place.data_dir, &["post", "p-live"]).ok();

    let stderr = server.kill();
    assert!(stderr.contains("listening on http://"), "{stderr}");

    // Once the holder is gone (even killed), the directory is free again.
    let run = hf(&place.data_dir, &["ingest", corpus.to_str().unwrap()]).ok();
    assert_eq!(
        run.json(),
        json!({"accepted": 0, "duplicates": 300, "rejected": 0})
    );
    hf(&place.data_dir, &["verify"]).ok();
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[test]
fn a_typo_in_the_config_file_is_named_with_its_line() {
    let place = Place::new();
    let config = place.path("holdfast.toml");
    fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[store]\ndurabilty = \"every\"\n",
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    hf(&place.data_dir, &["--config", config_arg, "stats"])
        .expect_code(2)
        .stderr_has(&["durabilty", "line 3", config_arg]);
    run(holdfast(&place.data_dir, &["stats"]).env("HOLDFAST_CONFIG", &config))
        .expect_code(2)
        .stderr_has(&["durabilty", "line 3"]);
    assert!(!place.data_dir.exists(), "a bad config must change nothing");

    // The same file without the typo is accepted.
    fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[store]\ndurability = \"every\"\n",
    )
    .unwrap();
    let input = place.path("one.ndjson");
    fs::write(
        &input,
        good_line("c-1", "p-c", &json!(1_714_550_000_000_i64), "x") + "\n",
    )
    .unwrap();
    hf(
        &place.data_dir,
        &["--config", config_arg, "ingest", input.to_str().unwrap()],
    )
    .ok();
    assert_eq!(get_event(&place.data_dir, "c-1")["id"], json!("c-1"));
}

#[test]
fn an_unknown_holdfast_variable_is_named() {
    let place = Place::new();
    run(holdfast(&place.data_dir, &["stats"]).env("HOLDFAST_FOO", "1"))
        .expect_code(2)
        .stderr_has(&["HOLDFAST_FOO"]);
    run(holdfast(&place.data_dir, &["serve"]).env("HOLDFAST_DATA_DIRR", "/elsewhere"))
        .expect_code(2)
        .stderr_has(&["HOLDFAST_DATA_DIRR"]);
    assert!(
        !place.data_dir.exists(),
        "a bad variable must change nothing"
    );
}

#[test]
fn a_bad_listen_address_is_named() {
    let place = Place::new();
    hf(&place.data_dir, &["serve", "--listen", "nowhere"])
        .expect_code(2)
        .stderr_has(&["listen", "nowhere"]);
    run(holdfast(&place.data_dir, &["serve"]).env("HOLDFAST_LISTEN", "localhost-ish:99999"))
        .expect_code(2)
        .stderr_has(&["listen", "localhost-ish:99999"]);
    let config = place.path("holdfast.toml");
    fs::write(&config, "listen = \"10.0.0.300:80\"\n").unwrap();
    hf(
        &place.data_dir,
        &["--config", config.to_str().unwrap(), "serve"],
    )
    .expect_code(2)
    .stderr_has(&["listen", "10.0.0.300:80"]);
    assert!(
        !place.data_dir.exists(),
        "a bad address must change nothing"
    );

    // An address someone else holds is named too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_address = taken.local_addr().unwrap().to_string();
    hf(&place.data_dir, &["serve", "--listen", &taken_address])
        .expect_code(2)
        .stderr_has(&["listen", &taken_address]);
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

#[test]
fn a_new_archive_keeps_its_files_private() {
    let place = Place::new();
    place.ingested_corpus(200, 4);
    assert_eq!(mode(&place.data_dir), 0o700, "data dir");
    assert_eq!(mode(&place.segments_dir()), 0o700, "segments dir");
    assert_eq!(mode(&place.master_key()), 0o600, "master.key");
    assert_eq!(
        mode(&place.data_dir.join("holdfast.db")),
        0o600,
        "holdfast.db"
    );
    let segments = fs::read_dir(place.segments_dir()).unwrap();
    let mut n_segments = 0;
    for entry in segments {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        n_segments += 1;
    }
    assert!(n_segments >= 1);
    for entry in fs::read_dir(&place.data_dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            mode(&path) & 0o077,
            0,
            "{} is {:o}",
            path.display(),
            mode(&path)
        );
    }
    // The generated key is 32 bytes of hex.
    let key = fs::read_to_string(place.master_key()).unwrap();
    assert_eq!(hex::decode(key.trim()).unwrap().len(), 32);
}

#[test]
fn keys_generate_writes_a_private_key_and_never_overwrites() {
    let place = Place::new();
    let key_file = place.path("k2");
    let run = hf(
        &place.data_dir,
        &["keys", "generate", "--out", key_file.to_str().unwrap()],
    )
    .ok();
    assert_eq!(mode(&key_file), 0o600);
    let key = fs::read_to_string(&key_file).unwrap();
    assert_eq!(hex::decode(key.trim()).unwrap().len(), 32, "{key:?}");
    assert!(
        !run.all_output().contains(key.trim()),
        "the key was printed"
    );
    // A second key differs; an existing file is never overwritten.
    let other = place.path("k3");
    hf(
        &place.data_dir,
        &["keys", "generate", "--out", other.to_str().unwrap()],
    )
    .ok();
    assert_ne!(fs::read_to_string(&other).unwrap(), key);
    hf(
        &place.data_dir,
        &["keys", "generate", "--out", key_file.to_str().unwrap()],
    )
    .expect_code(2)
    .stderr_has(&[key_file.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(&key_file).unwrap(), key);
    assert!(!place.data_dir.exists(), "keys generate needs no archive");
}

#[test]
fn rotating_to_a_new_key_file_rewraps_without_touching_segments() {
    let place = Place::new();
    let events = place.ingested_corpus(400, 7);
    let old_key = place.path("old.key");
    fs::copy(place.master_key(), &old_key).unwrap();
    fs::set_permissions(&old_key, fs::Permissions::from_mode(0o600)).unwrap();
    let before_get = get_event(&place.data_dir, "gen-7-123");
    assert_same_event(&before_get, &events[123]);
    let before_segments = place.segment_bytes();

    let new_key = place.path("k2");
    hf(
        &place.data_dir,
        &["keys", "generate", "--out", new_key.to_str().unwrap()],
    )
    .ok();
    let rotate = hf(
        &place.data_dir,
        &[
            "keys",
            "rotate",
            "--new-key-file",
            new_key.to_str().unwrap(),
        ],
    )
    .ok();
    let new_hex = fs::read_to_string(&new_key).unwrap();
    assert!(
        !rotate.all_output().contains(new_hex.trim()),
        "the key was printed"
    );

    assert!(
        place.segment_bytes() == before_segments,
        "rotation must not touch segment files"
    );

    // The old key no longer opens the archive, wherever it comes from.
    for args in [
        &["verify"][..],
        &["stats"],
        &["get", "gen-7-123"],
        &["ingest", "-"],
    ] {
        hf_with_key(&place.data_dir, &old_key, args)
            .expect_code(2)
            .stderr_has(&["master key does not open this archive"]);
    }
    hf(&place.data_dir, &["stats"])
        .expect_code(2)
        .stderr_has(&["master key does not open this archive"]);

    // The new one does, and reads the same events.
    let verify = hf_with_key(&place.data_dir, &new_key, &["verify", "--json"])
        .ok()
        .json();
    assert_eq!(verify["ok"], json!(true), "{verify}");
    assert_eq!(verify["events"], json!(400), "{verify}");
    let after_get = hf_with_key(&place.data_dir, &new_key, &["get", "gen-7-123"])
        .ok()
        .json();
    assert_eq!(after_get, before_get);
    let stats = hf_with_key(&place.data_dir, &new_key, &["stats", "--json"])
        .ok()
        .json();
    assert_eq!(stats["events"], json!(400), "{stats}");
    let fingerprint = stats["master_key_fingerprint"].as_str().unwrap();
    assert!(rotate.stdout.contains(fingerprint), "{}", rotate.stdout);
    assert!(
        place.segment_bytes() == before_segments,
        "reading must not touch segment files"
    );
}

#[test]
fn rotating_in_place_replaces_the_default_key_file() {
    let place = Place::new();
    let events = place.ingested_corpus(300, 8);
    let old_key = place.path("old.key");
    fs::copy(place.master_key(), &old_key).unwrap();
    fs::set_permissions(&old_key, fs::Permissions::from_mode(0o600)).unwrap();
    let old_hex = fs::read_to_string(&old_key).unwrap();
    let before_segments = place.segment_bytes();

    let rotate = hf(&place.data_dir, &["keys", "rotate"]).ok();
    let new_hex = fs::read_to_string(place.master_key()).unwrap();
    assert_ne!(new_hex, old_hex, "master.key was not replaced");
    assert_eq!(hex::decode(new_hex.trim()).unwrap().len(), 32);
    assert_eq!(mode(&place.master_key()), 0o600);
    assert!(
        !rotate.all_output().contains(new_hex.trim()),
        "the key was printed"
    );
    assert!(
        !place.data_dir.join("master.key.new").exists(),
        "the staged key must be moved into place"
    );
    assert!(place.segment_bytes() == before_segments);

    let report = hf(&place.data_dir, &["verify", "--json"]).ok().json();
    assert_eq!(report["ok"], json!(true), "{report}");
    assert_eq!(report["events"], json!(300), "{report}");
    assert_same_event(&get_event(&place.data_dir, "gen-8-250"), &events[250]);
    hf_with_key(&place.data_dir, &old_key, &["stats"])
        .expect_code(2)
        .stderr_has(&["master key does not open this archive"]);
    // And it can be done again.
    hf(&place.data_dir, &["keys", "rotate"]).ok();
    assert_eq!(stats_events(&place.data_dir), 300);
}

#[test]
fn keys_rotate_without_an_archive_creates_nothing() {
    // An operator who mistypes --data-dir must hear "no archive", not
    // "rewrapped 0 data keys" from an archive made up on the spot.
    let place = Place::new();
    let new_key = place.path("k2");
    hf(
        &place.data_dir,
        &["keys", "generate", "--out", new_key.to_str().unwrap()],
    )
    .ok();
    hf(&place.data_dir, &["keys", "rotate"])
        .expect_code(2)
        .stderr_has(&["no archive"]);
    hf(
        &place.data_dir,
        &[
            "keys",
            "rotate",
            "--new-key-file",
            new_key.to_str().unwrap(),
        ],
    )
    .expect_code(2)
    .stderr_has(&["no archive"]);
    assert!(
        !place.data_dir.exists(),
        "keys rotate created an archive in a directory that had none"
    );
}

#[test]
fn a_key_file_others_may_read_is_refused() {
    let place = Place::new();
    place.ingested_corpus(50, 2);
    for open_mode in [0o644, 0o640, 0o604] {
        fs::set_permissions(place.master_key(), fs::Permissions::from_mode(open_mode)).unwrap();
        hf(&place.data_dir, &["stats"])
            .expect_code(2)
            .stderr_has(&["chmod 600", "master.key"]);
        hf(&place.data_dir, &["serve", "--listen", "127.0.0.1:0"])
            .expect_code(2)
            .stderr_has(&["chmod 600"]);
    }
    let outside = place.path("outside.key");
    fs::copy(place.master_key(), &outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
    hf_with_key(&place.data_dir, &outside, &["verify"])
        .expect_code(2)
        .stderr_has(&["chmod 600", outside.to_str().unwrap()]);

    fs::set_permissions(place.master_key(), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(stats_events(&place.data_dir), 50);
    hf_with_key(&place.data_dir, &outside, &["verify"]).ok();
}

#[test]
fn a_malformed_key_file_is_named_without_its_content() {
    let place = Place::new();
    place.ingested_corpus(50, 2);
    let full_hex = fs::read_to_string(place.master_key()).unwrap();
    let contents = [
        "correct-horse-battery-staple-passphrase".to_owned(),
        full_hex.trim()[..63].to_owned(),
        format!("{}00", full_hex.trim()),
    ];
    for content in &contents {
        let bad = place.path("bad.key");
        write_private(&bad, content);
        let run = hf_with_key(&place.data_dir, &bad, &["stats"])
            .expect_code(2)
            .stderr_has(&[bad.to_str().unwrap(), "malformed"]);
        assert!(
            !run.all_output().contains(content.as_str()),
            "the key file's content was printed:\n{}",
            run.stderr
        );
        // Not even a fragment of the material.
        assert!(!run.all_output().contains(&content[..16]), "{}", run.stderr);
    }
    let empty = place.path("empty.key");
    write_private(&empty, "");
    hf_with_key(&place.data_dir, &empty, &["stats"])
        .expect_code(2)
        .stderr_has(&[empty.to_str().unwrap()]);
    assert_eq!(stats_events(&place.data_dir), 50);
}

#[test]
fn key_from_an_environment_variable_or_a_command() {
    let place = Place::new();
    place.ingested_corpus(60, 12);
    let key_hex = fs::read_to_string(place.master_key()).unwrap();
    let key_hex = key_hex.trim();

    // The variable named by HOLDFAST_KEK_ENV holds the key (hex or base64).
    run(holdfast(&place.data_dir, &["verify"])
        .env("HOLDFAST_KEK_ENV", "HOLDFAST_TEST_KEK")
        .env("HOLDFAST_TEST_KEK", key_hex))
    .ok();
    let key_base64 =
        base64::engine::general_purpose::STANDARD.encode(hex::decode(key_hex).unwrap());
    run(holdfast(&place.data_dir, &["stats"])
        .env("HOLDFAST_KEK_ENV", "HOLDFAST_TEST_KEK")
        .env("HOLDFAST_TEST_KEK", &key_base64))
    .ok();
    // It names a variable that is not set.
    run(holdfast(&place.data_dir, &["stats"]).env("HOLDFAST_KEK_ENV", "HOLDFAST_TEST_UNSET_KEK"))
        .expect_code(2)
        .stderr_has(&["HOLDFAST_TEST_UNSET_KEK", "not set"]);

    // A command whose output is the key.
    let command = format!("cat {}", place.master_key().display());
    run(holdfast(&place.data_dir, &["verify"]).env("HOLDFAST_KEK_COMMAND", &command)).ok();
    // A command that fails: its stderr is shown, its stdout never.
    let failing = format!("echo {key_hex}; echo vault-is-sealed-42 >&2; exit 3");
    let run_failing =
        run(holdfast(&place.data_dir, &["stats"]).env("HOLDFAST_KEK_COMMAND", &failing))
            .expect_code(2)
            .stderr_has(&["vault-is-sealed-42"]);
    let stdout_part = run_failing.stderr.replace(&failing, "");
    assert!(
        !stdout_part.contains(key_hex),
        "the failing command's stdout was printed:\n{}",
        run_failing.stderr
    );
    assert_eq!(stats_events(&place.data_dir), 60);
}

#[test]
fn a_wrong_or_missing_master_key_never_starts_an_empty_archive() {
    let place = Place::new();
    let events = place.ingested_corpus(250, 13);
    let right_key = fs::read_to_string(place.master_key()).unwrap();
    let before_segments = place.segment_bytes();
    let wrong_key = place.path("wrong.key");
    hf(
        &place.data_dir,
        &["keys", "generate", "--out", wrong_key.to_str().unwrap()],
    )
    .ok();
    let more = place.path("more.ndjson");
    fs::write(
        &more,
        good_line("more-1", "p-more", &json!(1_714_550_000_000_i64), "x") + "\n",
    )
    .unwrap();
    let more_arg = more.to_str().unwrap();

    for args in [
        &["stats"][..],
        &["stats", "--json"],
        &["verify"],
        &["get", "gen-13-1"],
        &["ingest", more_arg],
        &["keys", "rotate"],
    ] {
        let run = hf_with_key(&place.data_dir, &wrong_key, args)
            .expect_code(2)
            .stderr_has(&["master key does not open this archive"]);
        assert!(!run.stdout.contains("\"events\": 0"), "{}", run.stdout);
    }
    match Server::start(holdfast(&place.data_dir, &[]).env("HOLDFAST_KEK_FILE", &wrong_key)) {
        ServeStart::Exited(run) => {
            run.expect_code(2)
                .stderr_has(&["master key does not open this archive"]);
        }
        ServeStart::Listening(server) => {
            drop(server);
            panic!("serve started with the wrong master key");
        }
    }

    // The default key file gone: nothing may generate a new one over the archive.
    let saved = place.path("saved.key");
    fs::rename(place.master_key(), &saved).unwrap();
    hf(&place.data_dir, &["ingest", more_arg])
        .expect_code(2)
        .stderr_has(&["master.key"]);
    hf(&place.data_dir, &["stats"]).expect_code(2);
    assert!(
        !place.master_key().exists(),
        "a new master key was generated"
    );
    fs::rename(&saved, place.master_key()).unwrap();

    // With the right key, everything is still there, untouched.
    assert_eq!(fs::read_to_string(place.master_key()).unwrap(), right_key);
    assert!(place.segment_bytes() == before_segments);
    let stats = hf(&place.data_dir, &["stats", "--json"]).ok().json();
    assert_eq!(stats["events"], json!(250), "{stats}");
    assert_same_event(&get_event(&place.data_dir, "gen-13-1"), &events[1]);
    hf(&place.data_dir, &["get", "more-1"]).expect_code(2);
    hf(&place.data_dir, &["verify"]).ok();

    // Segments without their metadata database are not a fresh start either.
    let orphan = place.path("orphan");
    fs::create_dir(&orphan).unwrap();
    fs::create_dir(orphan.join("segments")).unwrap();
    for (name, bytes) in &before_segments {
        fs::write(orphan.join("segments").join(name), bytes).unwrap();
    }
    fs::copy(place.master_key(), orphan.join("master.key")).unwrap();
    hf(&orphan, &["ingest", more_arg])
        .expect_code(2)
        .stderr_has(&["segment files exist"]);
    assert!(fs::read_dir(orphan.join("segments")).unwrap().count() == before_segments.len());
}

// ---------------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------------

#[test]
fn verify_without_an_archive_says_so_and_creates_nothing() {
    let place = Place::new();
    for args in [
        &["verify"][..],
        &["verify", "--json"],
        &["stats"],
        &["get", "x"],
    ] {
        hf(&place.data_dir, args)
            .expect_code(2)
            .stderr_has(&["no archive"]);
    }
    assert!(!place.data_dir.exists());
    fs::create_dir(&place.data_dir).unwrap();
    hf(&place.data_dir, &["verify"])
        .expect_code(2)
        .stderr_has(&["no archive"]);
    assert_eq!(
        fs::read_dir(&place.data_dir).unwrap().count(),
        0,
        "verify must not create anything"
    );
}

/// (index, offset, length) of every record of a segment file, read from
/// the frozen format: a 64-byte header, then records of a 40-byte header
/// (payload length at bytes 36..40, little-endian), the payload and a
/// 32-byte chain hash.
fn record_frames(segment: &[u8]) -> Vec<(u64, usize, usize)> {
    let mut frames = Vec::new();
    let mut offset = 64;
    while offset + 40 <= segment.len() {
        assert_eq!(
            &segment[offset..offset + 4],
            b"HFR1",
            "record magic at {offset}"
        );
        let payload_len =
            u32::from_le_bytes(segment[offset + 36..offset + 40].try_into().unwrap()) as usize;
        let len = 40 + payload_len + 32;
        frames.push((frames.len() as u64, offset, len));
        offset += len;
    }
    assert_eq!(offset, segment.len(), "records fill the segment");
    frames
}

#[test]
fn verify_names_the_damaged_segment_and_record() {
    let place = Place::new();
    let events = place.ingested_corpus(3000, 5);
    let segment_path = place.segments_dir().join("000000000001.seg");
    let mut bytes = fs::read(&segment_path).unwrap();
    let frames = record_frames(&bytes);
    let middle = bytes.len() / 2;
    let &(index, offset, len) = frames
        .iter()
        .find(|(_, offset, len)| (*offset..offset + len).contains(&middle))
        .unwrap();
    // Flip one bit in the middle of that record's ciphertext.
    let payload_len = len - 40 - 32;
    let flip_at = offset + 40 + payload_len / 2;
    bytes[flip_at] ^= 0x01;
    fs::write(&segment_path, &bytes).unwrap();

    let text = hf(&place.data_dir, &["verify"]).expect_code(1);
    let damaged_line = text
        .stdout
        .lines()
        .find(|line| line.contains(&format!("record {index}")))
        .unwrap_or_else(|| panic!("no line names record {index}:\n{}", text.stdout));
    assert!(damaged_line.contains("segment 1"), "{damaged_line}");
    assert!(
        damaged_line.contains(&format!("offset {offset}")),
        "{damaged_line}"
    );

    let report = hf(&place.data_dir, &["verify", "--json"])
        .expect_code(1)
        .json();
    assert_eq!(report["ok"], json!(false), "{report}");
    let problems = report["problems"].as_array().unwrap();
    let first = &problems[0];
    assert_eq!(first["segment_no"], json!(1), "{report}");
    assert_eq!(first["record_index"], json!(index), "{report}");
    assert_eq!(first["offset"], json!(offset), "{report}");

    // The damaged event is never served as if it were fine; the others are.
    let damaged_id = events[index as usize]["id"].as_str().unwrap();
    hf(&place.data_dir, &["get", damaged_id])
        .expect_code(2)
        .stderr_has(&[damaged_id]);
    assert_same_event(&get_event(&place.data_dir, "gen-5-10"), &events[10]);
}

// ---------------------------------------------------------------------------
// Secrets stay out of the output
// ---------------------------------------------------------------------------

#[test]
fn the_master_key_and_message_text_never_appear_in_output() {
    let place = Place::new();
    let input = place.path("secret.ndjson");
    let rejected_with_text = json!({
        "id": "s-bad", "kind": "post", "at": "2024-05-01T09:30:00Z", "team": "legal",
        "channel": "town-square", "post": "p-s-bad", "text": SECRET_TEXT,
    });
    fs::write(
        &input,
        format!(
            "{}\n{rejected_with_text}\n",
            good_line("s-1", "p-s-1", &json!("2024-05-01T09:30:00Z"), SECRET_TEXT)
        ),
    )
    .unwrap();
    let verbose = |args: &[&str]| {
        let mut command = holdfast(&place.data_dir, args);
        command.env("HOLDFAST_LOG", "trace");
        command
    };

    let ingest = run(&mut verbose(&["ingest", input.to_str().unwrap()])).expect_code(1);
    let key_hex = fs::read_to_string(place.master_key())
        .unwrap()
        .trim()
        .to_owned();
    let key_bytes = hex::decode(&key_hex).unwrap();
    let key_forms = [
        key_hex.clone(),
        key_hex.to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(&key_bytes),
        format!("{key_bytes:?}"),
    ];

    let server = Server::expect_listening(&mut verbose(&[]));
    let token = fs::read_to_string(place.data_dir.join("ingest.token")).unwrap();
    let live = good_line(
        "s-live",
        "p-s-live",
        &json!("2024-05-01T10:00:00Z"),
        SECRET_TEXT,
    );
    let response = http_post_events(&server.address, token.trim(), &live);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (code, serve_stderr) = server.terminate();
    assert_eq!(
        code,
        Some(0),
        "serve should stop cleanly on SIGTERM:\n{serve_stderr}"
    );

    let verify = run(&mut verbose(&["verify"])).ok();
    let verify_json = run(&mut verbose(&["verify", "--json"])).ok();
    let stats = run(&mut verbose(&["stats"])).ok();
    let stats_json = run(&mut verbose(&["stats", "--json"])).ok();

    let outputs = [
        ("ingest", ingest.all_output()),
        ("serve", serve_stderr),
        ("verify", verify.all_output()),
        ("verify --json", verify_json.all_output()),
        ("stats", stats.all_output()),
        ("stats --json", stats_json.all_output()),
    ];
    for (name, output) in &outputs {
        for form in &key_forms {
            assert!(
                !output.contains(form.as_str()),
                "{name} printed the master key:\n{output}"
            );
        }
        assert!(
            !output.contains("zebra-quartz"),
            "{name} printed message text:\n{output}"
        );
        assert!(
            !output.contains(token.trim()),
            "{name} printed the ingest token:\n{output}"
        );
    }

    // get, of course, prints the text: the check above is not vacuous.
    assert_eq!(
        get_event(&place.data_dir, "s-1")["text"],
        json!(SECRET_TEXT)
    );
    assert_eq!(
        get_event(&place.data_dir, "s-live")["text"],
        json!(SECRET_TEXT)
    );
}

#[test]
fn config_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let shown = run(holdfast(&data_dir, &["config"])
        .env("HOLDFAST_INGEST_TOKEN", "token-that-must-not-show-0123")
        .env("HOLDFAST_DURABILITY", "every"));
    assert_eq!(shown.code, Some(0), "{}", shown.all_output());
    assert!(
        shown.stdout.contains("durability = \"every\""),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains(&data_dir.display().to_string()),
        "{}",
        shown.stdout
    );
    assert!(
        !shown.all_output().contains("token-that-must-not-show"),
        "{}",
        shown.all_output()
    );
    // It reads the configuration; it creates nothing.
    assert!(!data_dir.exists());
    let bad = run(holdfast(&data_dir, &["config"]).env("HOLDFAST_DURABILITY", "often"));
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("HOLDFAST_DURABILITY"), "{}", bad.stderr);
}

#[test]
fn logs_can_be_json_lines_for_a_siem() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let input = dir.path().join("in.ndjson");
    std::fs::write(
        &input,
        good_line("j1", "p1", &serde_json::json!(0), "hello"),
    )
    .unwrap();
    let logged = run(holdfast(&data_dir, &["ingest", input.to_str().unwrap()])
        .env("HOLDFAST_LOG", "info")
        .env("HOLDFAST_LOG_FORMAT", "json"));
    assert_eq!(logged.code, Some(0), "{}", logged.all_output());
    let lines: Vec<&str> = logged
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(value.get("level").is_some(), "{line}");
    }
    let bad = run(holdfast(&data_dir, &["stats"]).env("HOLDFAST_LOG_FORMAT", "xml"));
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("HOLDFAST_LOG_FORMAT"), "{}", bad.stderr);
    let bad = run(holdfast(&data_dir, &["stats"]).env("HOLDFAST_LOG", "[[["));
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("HOLDFAST_LOG"), "{}", bad.stderr);
}

#[test]
fn index_update_check_and_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let input = dir.path().join("in.ndjson");
    let generated = hf(
        &data_dir,
        &[
            "generate",
            "--events",
            "400",
            "--seed",
            "3",
            "--out",
            input.to_str().unwrap(),
        ],
    );
    assert_eq!(generated.code, Some(0), "{}", generated.all_output());
    assert_eq!(
        hf(&data_dir, &["ingest", input.to_str().unwrap()]).code,
        Some(0)
    );

    let behind = hf(&data_dir, &["index", "check", "--json"]);
    assert_eq!(behind.code, Some(1), "{}", behind.all_output());
    let report: Value = serde_json::from_str(&behind.stdout).unwrap();
    assert_eq!(report["n_missing"], 400);

    let updated = hf(&data_dir, &["index", "update"]);
    assert_eq!(updated.code, Some(0), "{}", updated.all_output());
    assert!(updated.stdout.contains("seq 400"), "{}", updated.stdout);
    let ok = hf(&data_dir, &["index", "check", "--json"]);
    assert_eq!(ok.code, Some(0), "{}", ok.all_output());

    let rebuilt = hf(&data_dir, &["index", "rebuild"]);
    assert_eq!(rebuilt.code, Some(0), "{}", rebuilt.all_output());
    let ok = hf(&data_dir, &["index", "check"]);
    assert_eq!(ok.code, Some(0), "{}", ok.all_output());
    // The index is as private as the rest of the archive.
    for entry in std::fs::read_dir(data_dir.join("index")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}
