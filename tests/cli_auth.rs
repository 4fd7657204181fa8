//! `holdfast user`, `group`, `token` and `audit` as an operator runs them:
//! the real binary on a fresh data directory, on SQLite and PostgreSQL.
//! Every change must land in the audit trail with the right action and
//! actor and without any password or token; the trail must export as CSV,
//! verify, and name a record altered behind holdfast's back.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use helpers::{TestArchive, connect_db, raw_sql};
use holdfast::audit::CSV_HEADER;
use holdfast::auth::{Principal, TokenStore, UsersFile};
use holdfast::db::{Backend, Db};
use secrecy::SecretString;
use serde_json::Value;

/// The operating-system user the commands run as (`$USER`).
const ACTOR: &str = "test-operator";
/// Passwords given to the CLI: none may ever appear in its output or the trail.
const PASSWORD: &str = "Gas-Desk-Houston-2001";
const NEW_PASSWORD: &str = "Enron-Tower-Floor-33";

/// What a finished run left behind.
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

    fn stdout_has(self, needles: &[&str]) -> Run {
        for needle in needles {
            assert!(
                self.stdout.contains(needle),
                "{}: stdout should contain {needle:?}\n--- stdout:\n{}",
                self.what,
                self.stdout
            );
        }
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

    fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A fresh archive and the binary pointed at it.
struct Cli {
    archive: TestArchive,
}

impl Cli {
    async fn new(backend: Backend) -> Cli {
        Cli {
            archive: TestArchive::new(backend).await,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = helpers::holdfast(self.archive.data_dir());
        command.args(args).env("USER", ACTOR);
        if self.archive.backend == Backend::Postgres {
            command.env("HOLDFAST_DATABASE_URL", &self.archive.options.database_url);
        }
        command
    }

    fn run_command(mut command: Command, stdin: Option<&str>) -> Run {
        let what = format!("{command:?}");
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Run {
            what,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        Cli::run_command(self.command(args), None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        Cli::run_command(self.command(args), Some(stdin))
    }

    fn users_file(&self) -> PathBuf {
        self.archive.data_dir().join("users.toml")
    }

    fn audit_key(&self) -> PathBuf {
        self.archive.data_dir().join("audit.key")
    }

    async fn db(&self) -> Db {
        connect_db(&self.archive).await
    }

    /// Every record of the trail, via `holdfast audit --json`.
    fn audit_records(&self) -> Vec<Value> {
        let run = self.run(&["audit", "--json", "--limit", "10000"]).ok();
        run.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn add_user(&self, username: &str, extra: &[&str]) -> Run {
        let mut args = vec!["user", "add", username, "--password-stdin"];
        args.extend_from_slice(extra);
        self.run_with_stdin(&args, &format!("{PASSWORD}\n"))
    }
}

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The records of one action, as (params, outcome) pairs.
fn of_action<'a>(records: &'a [Value], action: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|record| record["action"] == action)
        .collect()
}

/// No password or token text anywhere in `text`.
fn assert_no_secrets(text: &str, tokens: &[&str]) {
    for secret in [PASSWORD, NEW_PASSWORD].iter().chain(tokens) {
        assert!(!text.contains(secret), "{secret:?} leaked into:\n{text}");
    }
    assert!(
        !text.contains("$argon2"),
        "a password hash leaked into:\n{text}"
    );
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

async fn a_user_lifecycle_is_audited(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.add_user(
        "Allen-P",
        &[
            "--display-name",
            "Philip Allen",
            "--email",
            "philip.allen@enron.com",
            "--group",
            "compliance",
        ],
    )
    .ok()
    .stdout_has(&["added user allen-p"]);
    assert_eq!(mode_of(&cli.users_file()), 0o600);
    assert_eq!(mode_of(&cli.audit_key()), 0o600);

    let list = cli.run(&["user", "list"]).ok();
    let list = list.stdout_has(&["allen-p", "Philip Allen", "compliance", "active"]);
    assert_no_secrets(&list.stdout, &[]);
    let users = cli.run(&["user", "list", "--json"]).ok().json();
    assert_eq!(users[0]["username"], "allen-p");
    assert_eq!(users[0]["email"], "philip.allen@enron.com");
    assert_eq!(users[0]["groups"], serde_json::json!(["compliance"]));
    assert_eq!(users[0]["disabled"], false);

    // A duplicate is refused, naming the user, and the file keeps one.
    cli.add_user("allen-p", &[])
        .expect_code(2)
        .stderr_has(&["\"allen-p\"", "already exists"]);
    assert_eq!(UsersFile::load(&cli.users_file()).unwrap().users.len(), 1);

    // A session of allen-p, as the login endpoint would open it.
    let db = cli.db().await;
    let tokens = TokenStore::new(db.clone());
    let principal = Principal::token("allen-p", Vec::new());
    let session = tokens
        .create_session(&principal, now_ms(), now_ms() + 3_600_000)
        .await
        .unwrap();
    let session_text = secrecy::ExposeSecret::expose_secret(&session).to_owned();
    assert!(
        tokens
            .resolve(&session_text, now_ms())
            .await
            .unwrap()
            .is_some()
    );

    cli.run_with_stdin(
        &["user", "passwd", "allen-p", "--password-stdin"],
        &format!("{NEW_PASSWORD}\r\n"),
    )
    .ok()
    .stdout_has(&["ended 1 open session"]);
    assert!(
        tokens
            .resolve(&session_text, now_ms())
            .await
            .unwrap()
            .is_none()
    );
    let file = UsersFile::load(&cli.users_file()).unwrap();
    let secret = |text: &str| SecretString::from(text.to_owned());
    assert!(file.authenticate("allen-p", &secret(NEW_PASSWORD)).is_ok());
    assert!(file.authenticate("allen-p", &secret(PASSWORD)).is_err());

    let session = tokens
        .create_session(&principal, now_ms(), now_ms() + 3_600_000)
        .await
        .unwrap();
    let session_text = secrecy::ExposeSecret::expose_secret(&session).to_owned();
    cli.run(&["user", "disable", "allen-p"])
        .ok()
        .stdout_has(&["disabled user allen-p", "ended 1 open session"]);
    assert!(
        tokens
            .resolve(&session_text, now_ms())
            .await
            .unwrap()
            .is_none()
    );
    let users = cli.run(&["user", "list", "--json"]).ok().json();
    assert_eq!(users[0]["disabled"], true);
    cli.run(&["user", "list"]).ok().stdout_has(&["disabled"]);

    cli.run(&["user", "enable", "ALLEN-P"])
        .ok()
        .stdout_has(&["enabled user allen-p"]);
    assert_eq!(
        cli.run(&["user", "list", "--json"]).ok().json()[0]["disabled"],
        false
    );

    cli.run(&["user", "remove", "allen-p"])
        .ok()
        .stdout_has(&["removed user allen-p"]);
    assert_eq!(
        cli.run(&["user", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
    cli.run(&["user", "disable", "allen-p"])
        .expect_code(2)
        .stderr_has(&["no user \"allen-p\""]);
    db.close().await;

    let records = cli.audit_records();
    let changes = of_action(&records, "user_change");
    let summary: Vec<(String, String)> = changes
        .iter()
        .map(|record| {
            (
                record["params"]["change"].as_str().unwrap().to_owned(),
                record["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("add", "ok"),
        ("add", "failed"),
        ("passwd", "ok"),
        ("disable", "ok"),
        ("enable", "ok"),
        ("remove", "ok"),
        ("disable", "failed"),
    ]
    .map(|(change, outcome)| (change.to_owned(), outcome.to_owned()));
    assert_eq!(summary, expected);
    for record in &changes {
        assert_eq!(record["actor"], ACTOR);
        assert_eq!(record["client"], "cli");
        assert_eq!(record["params"]["username"], "allen-p");
    }
    assert_eq!(
        changes[0]["params"]["groups"],
        serde_json::json!(["compliance"])
    );
    assert_eq!(changes[2]["params"]["sessions_revoked"], 1);
    assert!(
        changes[1]["detail"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{}",
        changes[1]
    );
    assert_no_secrets(&serde_json::to_string(&records).unwrap(), &[&session_text]);
}

#[tokio::test]
async fn password_input_is_checked_and_never_an_argument() {
    let cli = Cli::new(Backend::Sqlite).await;
    cli.run(&["user", "add", "ken"])
        .expect_code(2)
        .stderr_has(&[
            "no password given",
            "--password-stdin",
            "HOLDFAST_NEW_PASSWORD",
        ]);
    cli.run_with_stdin(&["user", "add", "ken", "--password-stdin"], "")
        .expect_code(2)
        .stderr_has(&["--password-stdin", "empty"]);
    cli.run_with_stdin(&["user", "add", "ken", "--password-stdin"], "\n")
        .expect_code(2)
        .stderr_has(&["--password-stdin", "empty"]);
    cli.run_with_stdin(&["user", "add", "ken", "--password-stdin"], "short\n")
        .expect_code(2)
        .stderr_has(&["password", "at least 12 characters"]);
    // There is no flag that takes a password.
    let run = cli
        .run(&["user", "add", "ken", "--password", PASSWORD])
        .expect_code(2)
        .stderr_has(&["--password"]);
    assert_no_secrets(&run.stdout, &[]);
    // Both ways at once is ambiguous.
    Cli::run_command(
        {
            let mut command = cli.command(&["user", "add", "ken", "--password-stdin"]);
            command.env("HOLDFAST_NEW_PASSWORD", PASSWORD);
            command
        },
        Some(&format!("{NEW_PASSWORD}\n")),
    )
    .expect_code(2)
    .stderr_has(&["--password-stdin and HOLDFAST_NEW_PASSWORD"]);
    assert!(
        UsersFile::load(&cli.users_file()).unwrap().users.is_empty(),
        "no user may be created by a refused command"
    );
    let empty = Cli::run_command(
        {
            let mut command = cli.command(&["user", "add", "ken"]);
            command.env("HOLDFAST_NEW_PASSWORD", "");
            command
        },
        None,
    );
    empty
        .expect_code(2)
        .stderr_has(&["HOLDFAST_NEW_PASSWORD is empty"]);

    // From the environment (for scripts).
    let mut command = cli.command(&["user", "add", "ken", "--group", "admins"]);
    command.env("HOLDFAST_NEW_PASSWORD", PASSWORD);
    let run = Cli::run_command(command, None).ok();
    assert_no_secrets(&run.all_output(), &[]);
    let file = UsersFile::load(&cli.users_file()).unwrap();
    assert!(
        file.authenticate("ken", &SecretString::from(PASSWORD.to_owned()))
            .is_ok()
    );
    // Input refused before anything was opened is not a change; the weak
    // password was refused by the directory (recorded as failed), and the
    // add that worked is recorded.
    let records = cli.audit_records();
    let changes = of_action(&records, "user_change");
    assert_eq!(changes.len(), 2, "{records:?}");
    assert_eq!(changes[0]["outcome"], "failed");
    assert!(
        changes[0]["detail"]
            .as_str()
            .unwrap()
            .contains("at least 12 characters")
    );
    assert_eq!(changes[1]["outcome"], "ok");
    assert_eq!(
        changes[1]["params"]["groups"],
        serde_json::json!(["admins"])
    );
    assert_no_secrets(&serde_json::to_string(&records).unwrap(), &["short"]);
}

#[tokio::test]
async fn the_actor_is_cli_without_a_user_variable() {
    let cli = Cli::new(Backend::Sqlite).await;
    let mut command = cli.command(&["user", "add", "ken", "--password-stdin"]);
    command.env_remove("USER");
    Cli::run_command(command, Some(&format!("{PASSWORD}\n"))).ok();
    let records = cli.audit_records();
    assert_eq!(of_action(&records, "user_change")[0]["actor"], "cli");
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

async fn group_membership_is_managed_and_audited(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.add_user("allen-p", &[]).ok();
    cli.add_user("arnold-j", &["--group", "trading"]).ok();
    cli.run(&["group", "add-member", "legal", "allen-p"])
        .ok()
        .stdout_has(&["allen-p is in group legal"]);
    cli.run(&["group", "add-member", "legal", "arnold-j"]).ok();
    cli.run(&["group", "add-member", "admins", "allen-p"]).ok();
    cli.run(&["group", "add-member", "legal", "nobody"])
        .expect_code(2)
        .stderr_has(&["no user \"nobody\""]);

    let groups = cli.run(&["group", "list", "--json"]).ok().json();
    let find = |name: &str| {
        groups
            .as_array()
            .unwrap()
            .iter()
            .find(|group| group["group"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no group {name} in {groups}"))
    };
    assert_eq!(
        find("legal")["members"],
        serde_json::json!(["allen-p", "arnold-j"])
    );
    assert_eq!(find("trading")["members"], serde_json::json!(["arnold-j"]));
    // The default rule maps the local `admins` group to the admin role.
    assert_eq!(
        find("admins")["grants"],
        serde_json::json!([{ "role": "admin" }])
    );
    assert_eq!(find("legal")["grants"], serde_json::json!([]));
    cli.run(&["group", "list"])
        .ok()
        .stdout_has(&["admins", "admin", "legal", "allen-p, arnold-j"]);

    cli.run(&["group", "remove-member", "LEGAL", "allen-p"])
        .ok()
        .stdout_has(&["allen-p is no longer in group LEGAL"]);
    cli.run(&["group", "remove-member", "legal", "allen-p"])
        .expect_code(2)
        .stderr_has(&["\"allen-p\" is not in group \"legal\""]);
    let groups = cli.run(&["group", "list", "--json"]).ok().json();
    let legal = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["group"] == "legal")
        .unwrap();
    assert_eq!(legal["members"], serde_json::json!(["arnold-j"]));

    let records = cli.audit_records();
    let changes: Vec<(String, String, String, String)> = of_action(&records, "user_change")
        .iter()
        .filter(|record| record["params"]["group"].is_string())
        .map(|record| {
            assert_eq!(record["actor"], ACTOR);
            (
                record["params"]["change"].as_str().unwrap().to_owned(),
                record["params"]["group"].as_str().unwrap().to_owned(),
                record["params"]["username"].as_str().unwrap().to_owned(),
                record["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("add_member", "legal", "allen-p", "ok"),
        ("add_member", "legal", "arnold-j", "ok"),
        ("add_member", "admins", "allen-p", "ok"),
        ("add_member", "legal", "nobody", "failed"),
        ("remove_member", "LEGAL", "allen-p", "ok"),
        ("remove_member", "legal", "allen-p", "failed"),
    ]
    .map(|(a, b, c, d)| (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned()));
    assert_eq!(changes, expected);
}

// ---------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------

async fn tokens_are_shown_once_and_revocable(backend: Backend) {
    let cli = Cli::new(backend).await;
    let run = cli
        .run(&[
            "token",
            "create",
            "--name",
            "mattermost-connector",
            "--role",
            "ingest",
        ])
        .ok()
        .stderr_has(&["shown only once", "mattermost-connector"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the token alone: {}", run.stdout);
    let ingest_token = lines[0].to_owned();
    assert!(ingest_token.starts_with("hft_"), "{ingest_token}");
    assert_eq!(
        run.all_output().matches(&ingest_token).count(),
        1,
        "the token is printed exactly once"
    );

    let officer = cli
        .run(&[
            "token",
            "create",
            "--name",
            "export-robot",
            "--role",
            "compliance_officer",
            "--team",
            "legal",
            "--channel",
            "sales/leads",
            "--expires-days",
            "30",
        ])
        .ok();
    let officer_token = officer.stdout.trim().to_owned();
    assert!(officer_token.starts_with("hft_"));

    let db = cli.db().await;
    let store = TokenStore::new(db.clone());
    let resolved = store
        .resolve(&ingest_token, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.principal.username, "token:mattermost-connector");
    let resolved = store
        .resolve(&officer_token, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert!(
        resolved.principal.grants[0]
            .scope
            .allows("legal", "general")
    );
    assert!(resolved.principal.grants[0].scope.allows("sales", "leads"));
    assert!(!resolved.principal.grants[0].scope.allows("sales", "other"));

    let list = cli.run(&["token", "list"]).ok();
    let list = list.stdout_has(&["mattermost-connector", "export-robot", "active", ACTOR]);
    let listed = cli.run(&["token", "list", "--json"]).ok();
    for output in [&list.stdout, &listed.stdout] {
        assert_no_secrets(output, &[&ingest_token, &officer_token]);
        assert!(!output.contains("hft_"), "{output}");
    }
    let tokens = listed.json();
    let ingest = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["name"] == "mattermost-connector")
        .unwrap()
        .clone();
    assert_eq!(ingest["roles"], serde_json::json!(["ingest"]));
    assert_eq!(ingest["status"], "active");
    assert_eq!(ingest["created_by"], ACTOR);
    assert!(ingest["expires_at"].is_null());
    let id = ingest["id"].as_i64().unwrap().to_string();

    cli.run(&["token", "revoke", &id])
        .ok()
        .stdout_has(&["revoked API token", "mattermost-connector"]);
    assert!(
        store
            .resolve(&ingest_token, now_ms())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .resolve(&officer_token, now_ms())
            .await
            .unwrap()
            .is_some()
    );
    let tokens = cli.run(&["token", "list", "--json"]).ok().json();
    let ingest = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["name"] == "mattermost-connector")
        .unwrap();
    assert_eq!(ingest["status"], "revoked");
    assert_eq!(ingest["revoked_by"], ACTOR);
    cli.run(&["token", "revoke", &id])
        .ok()
        .stdout_has(&["already revoked"]);
    cli.run(&["token", "revoke", "999"])
        .expect_code(2)
        .stderr_has(&["no API token with id 999"]);
    db.close().await;

    let records = cli.audit_records();
    let created = of_action(&records, "token_create");
    assert_eq!(created.len(), 2);
    assert_eq!(created[0]["params"]["name"], "mattermost-connector");
    assert_eq!(created[0]["params"]["role"], "ingest");
    assert_eq!(created[0]["params"]["token_id"].to_string(), id);
    assert_eq!(created[1]["params"]["role"], "compliance_officer");
    assert_eq!(
        created[1]["params"]["scope"],
        "team legal, channel sales/leads"
    );
    let revoked = of_action(&records, "token_revoke");
    let outcomes: Vec<&str> = revoked
        .iter()
        .map(|record| record["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "ok", "failed"]);
    assert_eq!(revoked[1]["params"]["already_revoked"], true);
    for record in created.iter().chain(&revoked) {
        assert_eq!(record["actor"], ACTOR);
        assert_eq!(record["client"], "cli");
    }
    let csv = cli.run(&["audit", "--csv"]).ok().stdout;
    for text in [serde_json::to_string(&records).unwrap(), csv] {
        assert_no_secrets(&text, &[&ingest_token, &officer_token]);
        assert!(!text.contains("hft_"), "{text}");
    }
}

#[tokio::test]
async fn bad_token_flags_exit_2_naming_the_flag() {
    let cli = Cli::new(Backend::Sqlite).await;
    let cases: [(&[&str], &[&str]); 8] = [
        (
            &["--name", "x", "--role", "officer"],
            &["--role", "officer"],
        ),
        (
            &["--name", "x", "--role", "compliance_officer"],
            &["--role compliance_officer", "--team", "--channel", "--all"],
        ),
        (
            &["--name", "x", "--role", "legal"],
            &["--role legal", "needs a scope"],
        ),
        (
            &["--name", "x", "--role", "legal", "--channel", "legal"],
            &["--channel", "TEAM/CHANNEL"],
        ),
        (
            &["--name", "x", "--role", "legal", "--all", "--team", "legal"],
            &["--all", "--team"],
        ),
        (
            &["--name", "x", "--role", "ingest", "--team", "legal"],
            &["--team", "--role ingest"],
        ),
        (
            &["--name", "x", "--role", "ingest", "--expires-days", "0"],
            &["--expires-days"],
        ),
        (
            &["--name", "a b", "--role", "ingest"],
            &["--name", "\"a b\""],
        ),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["token", "create"];
        args.extend_from_slice(flags);
        let run = cli.run(&args).expect_code(2).stderr_has(needles);
        assert!(!run.stdout.contains("hft_"), "{}", run.stdout);
    }
    cli.run(&["token", "create", "--role", "ingest"])
        .expect_code(2)
        .stderr_has(&["--name"]);
    let tokens = cli.run(&["token", "list", "--json"]).ok().json();
    assert_eq!(tokens, serde_json::json!([]), "nothing was created");
}

// ---------------------------------------------------------------------------
// Reading the trail
// ---------------------------------------------------------------------------

async fn the_trail_reads_as_table_json_and_csv(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.add_user("allen-p", &[]).ok();
    cli.run(&["token", "create", "--name", "robot", "--role", "auditor"])
        .ok();
    cli.run(&["user", "disable", "allen-p"]).ok();

    let first = cli.audit_records();
    let actions: Vec<&str> = first
        .iter()
        .map(|record| record["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user_change", "token_create", "user_change"]);
    for (index, record) in first.iter().enumerate() {
        assert_eq!(record["seq"], index as u64 + 1);
        assert_eq!(record["hash"].as_str().unwrap().len(), 64);
    }
    // Reading was recorded, with what was asked and how much came back.
    let second = cli.audit_records();
    let read = of_action(&second, "audit_read");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0]["actor"], ACTOR);
    assert_eq!(read[0]["params"]["format"], "json");
    assert_eq!(read[0]["params"]["n_records"], 3);

    let table = cli.run(&["audit"]).ok();
    table.stdout_has(&[
        "seq",
        "actor",
        "user_change",
        "token_create",
        ACTOR,
        "\"change\":\"disable\"",
    ]);

    let filtered = cli
        .run(&["audit", "--json", "--action", "token_create"])
        .ok();
    let filtered: Vec<Value> = filtered
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["params"]["name"], "robot");
    let none = cli.run(&["audit", "--json", "--user", "nobody"]).ok();
    assert_eq!(none.stdout, "");
    let page = cli
        .run(&["audit", "--json", "--limit", "2", "--cursor", "1"])
        .ok();
    let seqs: Vec<u64> = page
        .stdout
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [2, 3]);
    let since = cli
        .run(&[
            "audit",
            "--json",
            "--since",
            "2999-01-01",
            "--outcome",
            "ok",
        ])
        .ok();
    assert_eq!(since.stdout, "");

    cli.run(&["audit", "--action", "serach"])
        .expect_code(2)
        .stderr_has(&["--action", "serach"]);
    cli.run(&["audit", "--since", "yesterday"])
        .expect_code(2)
        .stderr_has(&["--since", "yesterday"]);
    cli.run(&["audit", "--since", "2024-05-02", "--until", "2024-05-01"])
        .expect_code(2)
        .stderr_has(&["reversed"]);
    cli.run(&["audit", "--outcome", "fine"])
        .expect_code(2)
        .stderr_has(&["--outcome"]);
    cli.run(&["audit", "--csv", "--json"])
        .expect_code(2)
        .stderr_has(&["--csv", "--json"]);

    let export = cli.run(&["audit", "--csv"]).ok();
    let mut reader = csv::Reader::from_reader(export.stdout.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, CSV_HEADER);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let n_before = cli.audit_records().len();
    // The export's own record comes before its rows are read, so it is in it.
    let last = rows.last().unwrap();
    assert_eq!(&last[5], "audit_export");
    assert_eq!(&last[2], ACTOR);
    assert_eq!(&last[4], "cli");
    assert_eq!(rows.len(), n_before, "every record up to the export");
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(&row[0], (index + 1).to_string());
        let params: Value = serde_json::from_str(&row[6]).unwrap();
        assert!(params.is_object());
        if index > 0 {
            assert_eq!(&row[9], &rows[index - 1][10], "prev_hash links the rows");
        }
    }
    assert_eq!(&rows[0][5], "user_change");
    assert_eq!(&rows[1][5], "token_create");
    let limited = cli.run(&["audit", "--csv", "--limit", "1"]).ok();
    assert_eq!(
        csv::Reader::from_reader(limited.stdout.as_bytes())
            .records()
            .count(),
        1
    );
}

// ---------------------------------------------------------------------------
// Verifying the trail
// ---------------------------------------------------------------------------

async fn drop_triggers(db: &Db) {
    let sql = match db.backend() {
        Backend::Sqlite => {
            "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; \
             DROP TRIGGER audit_head_forward_only; DROP TRIGGER audit_head_no_delete;"
        }
        Backend::Postgres => {
            "ALTER TABLE audit_log DISABLE TRIGGER USER; \
             ALTER TABLE audit_head DISABLE TRIGGER USER;"
        }
    };
    raw_sql(db, sql).await.unwrap();
}

async fn verify_finds_an_altered_record(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.add_user("allen-p", &[]).ok();
    cli.run(&["group", "add-member", "legal", "allen-p"]).ok();
    cli.run(&["token", "create", "--name", "robot", "--role", "ingest"])
        .ok();

    let run = cli.run(&["audit", "verify"]).ok();
    run.stdout_has(&["checked 3 audit records", "head: 3:", "OK"]);
    let report = cli.run(&["audit", "verify", "--json"]).ok().json();
    assert_eq!(report["ok"], true);
    // The first verify was recorded before it answered: 4 records now.
    assert_eq!(report["count"], 4);
    let head = report["head"].as_str().unwrap().to_owned();
    assert!(head.starts_with("4:"), "{head}");
    cli.run(&["audit", "verify", "--expect-head", &head])
        .ok()
        .stdout_has(&["passes through the expected head"]);
    cli.run(&["audit", "verify", "--expect-count", "1000"])
        .expect_code(1)
        .stdout_has(&["at least 1000 were expected"]);
    cli.run(&["audit", "verify", "--expect-head", "4:zz"])
        .expect_code(2)
        .stderr_has(&["--expect-head"]);
    let records = cli.audit_records();
    let verifications = of_action(&records, "audit_verify");
    assert_eq!(verifications.len(), 4);
    assert_eq!(verifications[0]["outcome"], "ok");
    assert_eq!(verifications[3]["outcome"], "failed");
    assert_eq!(verifications[0]["actor"], ACTOR);

    // Someone with database access rewrites what record 2 says.
    let db = cli.db().await;
    drop_triggers(&db).await;
    raw_sql(
        &db,
        "UPDATE audit_log SET params = '{\"change\":\"add_member\",\"group\":\"staff\"}' WHERE seq = 2",
    )
    .await
    .unwrap();
    db.close().await;
    cli.run(&["audit", "verify"])
        .expect_code(1)
        .stdout_has(&["DAMAGED", "record 2 was altered"]);
    let report = cli
        .run(&["audit", "verify", "--json"])
        .expect_code(1)
        .json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"][0]["problem"], "hash_mismatch");
    assert_eq!(report["problems"][0]["seq"], 2);
    assert!(
        report["problems"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("record 2 was altered")
    );
    // A head kept from before still matches (the change is elsewhere).
    cli.run(&["audit", "verify", "--expect-head", &head])
        .expect_code(1)
        .stdout_has(&["record 2 was altered"]);
}

async fn a_missing_audit_key_is_an_error_not_a_new_key(backend: Backend) {
    let cli = Cli::new(backend).await;
    // Nothing recorded yet and no key: verify does not create one.
    cli.run(&["audit", "verify"])
        .expect_code(2)
        .stderr_has(&["audit.key", "does not exist"]);
    assert!(!cli.audit_key().exists());

    cli.add_user("allen-p", &[]).ok();
    let key = std::fs::read_to_string(cli.audit_key()).unwrap();
    std::fs::rename(
        cli.audit_key(),
        cli.archive.data_dir().join("audit.key.bak"),
    )
    .unwrap();
    cli.run(&["audit", "verify"]).expect_code(2).stderr_has(&[
        "audit.key",
        "does not exist",
        "restore",
    ]);
    // A change cannot go on without the key, and no new key replaces it.
    cli.run(&["user", "disable", "allen-p"])
        .expect_code(2)
        .stderr_has(&["audit.key", "missing", "restore"]);
    cli.run(&["token", "create", "--name", "robot", "--role", "ingest"])
        .expect_code(2)
        .stderr_has(&["audit.key", "missing"]);
    cli.run(&["audit"])
        .expect_code(2)
        .stderr_has(&["audit.key", "missing"]);
    assert!(!cli.audit_key().exists());
    let users = cli.run(&["user", "list", "--json"]).ok().json();
    assert_eq!(
        users[0]["disabled"], false,
        "nothing changed without the trail"
    );

    // Another key is named as such (a configuration problem, not damage).
    std::fs::write(cli.audit_key(), format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(cli.audit_key(), std::fs::Permissions::from_mode(0o600)).unwrap();
    cli.run(&["audit", "verify"])
        .expect_code(2)
        .stderr_has(&["audit key does not match"]);
    // With a trail that cannot be written, nothing changes.
    cli.run(&["user", "disable", "allen-p"])
        .expect_code(2)
        .stderr_has(&["audit key does not match"]);
    let run = cli
        .run(&["token", "create", "--name", "robot", "--role", "ingest"])
        .expect_code(2)
        .stderr_has(&["audit key does not match"]);
    assert!(!run.stdout.contains("hft_"));
    let users = cli.run(&["user", "list", "--json"]).ok().json();
    assert_eq!(users[0]["disabled"], false);
    let tokens = cli.run(&["token", "list", "--json"]).ok().json();
    assert_eq!(tokens, serde_json::json!([]));
    std::fs::write(cli.audit_key(), key).unwrap();
    cli.run(&["audit", "verify"]).ok();
}

both_backends!(
    a_user_lifecycle_is_audited,
    group_membership_is_managed_and_audited,
    tokens_are_shown_once_and_revocable,
    the_trail_reads_as_table_json_and_csv,
    verify_finds_an_altered_record,
    a_missing_audit_key_is_an_error_not_a_new_key,
    reads_ingests_and_key_rotation_are_audited,
);

// ---------------------------------------------------------------------------
// Help
// ---------------------------------------------------------------------------

#[test]
fn every_command_and_flag_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 16] = [
        (
            &["user"],
            &["add", "passwd", "disable", "enable", "remove", "list"],
        ),
        (
            &["user", "add"],
            &[
                "--display-name",
                "--email",
                "--group",
                "--password-stdin",
                "HOLDFAST_NEW_PASSWORD",
            ],
        ),
        (&["user", "passwd"], &["--password-stdin", "sessions"]),
        (&["user", "disable"], &["sessions"]),
        (&["user", "enable"], &["USERNAME"]),
        (&["user", "remove"], &["sessions"]),
        (&["user", "list"], &["--json"]),
        (&["group"], &["add-member", "remove-member", "list"]),
        (&["group", "add-member"], &["GROUP", "USERNAME"]),
        (&["group", "remove-member"], &["GROUP", "USERNAME"]),
        (&["group", "list"], &["--json"]),
        (&["token"], &["create", "list", "revoke"]),
        (
            &["token", "create"],
            &[
                "--name",
                "--role",
                "--team",
                "--channel",
                "--all",
                "--expires-days",
                "once",
            ],
        ),
        (&["token", "revoke"], &["ID"]),
        (
            &["audit"],
            &[
                "verify",
                "--user",
                "--action",
                "--outcome",
                "--since",
                "--until",
                "--limit",
                "--csv",
                "--json",
            ],
        ),
        (
            &["audit", "verify"],
            &["--expect-head", "--expect-count", "--json", "Exit 0"],
        ),
    ];
    for (command, needles) in cases {
        let mut args = command.to_vec();
        args.push("--help");
        let output = helpers::holdfast(dir.path()).args(&args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stdout}");
        for needle in needles {
            assert!(
                stdout.contains(needle),
                "{args:?} help lacks {needle:?}:\n{stdout}"
            );
        }
    }
    let top = helpers::holdfast(dir.path())
        .arg("--help")
        .output()
        .unwrap();
    let top = String::from_utf8_lossy(&top.stdout);
    for command in ["user", "group", "token", "audit"] {
        assert!(top.contains(command), "{top}");
    }
}

/// Reading message data, ingesting and rotating the master key on the
/// command line are recorded too, before the answer is printed.
async fn reads_ingests_and_key_rotation_are_audited(backend: Backend) {
    let cli = Cli::new(backend).await;
    let input = cli.archive.dir.path().join("events.ndjson");
    std::fs::write(
        &input,
        "{\"id\":\"e1\",\"kind\":\"post\",\"at\":\"2024-01-15T09:00:00Z\",\"team\":\"legal\",\
         \"channel\":\"deals\",\"user\":\"allen-p\",\"post\":\"p1\",\"text\":\"wire transfer\"}\n",
    )
    .unwrap();
    cli.run(&["ingest", input.to_str().unwrap()]).ok();
    cli.run(&["get", "e1"]).ok().stdout_has(&["wire transfer"]);
    cli.run(&["post", "p1"]).ok();
    cli.run(&["search", "wire"])
        .ok()
        .stdout_has(&["1 of 1 hits"]);
    cli.run(&["get", "nope"]).expect_code(2);
    cli.run(&["keys", "rotate"]).ok();
    let records = cli.audit_records();
    let ingest = of_action(&records, "ingest");
    assert_eq!(ingest.len(), 1, "{records:#?}");
    assert_eq!(ingest[0]["params"]["accepted"], 1);
    let views = of_action(&records, "view_event");
    assert_eq!(views.len(), 2, "{records:#?}");
    assert_eq!(views[0]["params"]["found"], true);
    assert_eq!(views[1]["params"]["found"], false);
    assert_eq!(of_action(&records, "view_post").len(), 1);
    let searches = of_action(&records, "search");
    assert_eq!(searches.len(), 1);
    assert_eq!(searches[0]["params"]["query"], "wire");
    assert_eq!(searches[0]["params"]["total"], 1);
    let rotations = of_action(&records, "key_rotation");
    assert_eq!(rotations.len(), 1, "{records:#?}");
    assert_eq!(rotations[0]["client"], "cli");
    assert!(rotations[0]["params"]["rewrapped"].as_u64().unwrap() >= 1);
    for record in &records {
        assert!(
            !record.to_string().contains("wire transfer"),
            "message text in the trail: {record}"
        );
    }
    cli.run(&["audit", "verify"]).ok();
}
