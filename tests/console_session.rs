//! The web console's server side, without a browser: `holdfast demo`, the
//! console's files and their security headers, and the cookie session
//! (HttpOnly, SameSite=Strict, refused on a change without the console's
//! header, cleared at sign-out). The browser itself is driven in
//! `tests/console.rs`.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod helpers;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use helpers::holdfast;
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(60);

/// A running `holdfast demo` or `serve`, killed on drop.
struct Running {
    child: Child,
    base: String,
    stderr: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the command and waits for its `listening on http://ADDR` line.
fn start(command: &mut Command) -> Running {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
    let stderr = child.stderr.take().unwrap();
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut running = Running {
        child,
        base: String::new(),
        stderr: Vec::new(),
    };
    loop {
        match lines.recv_timeout(PATIENCE) {
            Ok(line) => {
                let address = line.trim().strip_prefix("listening on ").map(str::to_owned);
                running.stderr.push(line);
                if let Some(address) = address {
                    running.base = address;
                    // The console line follows at once.
                    if let Ok(line) = lines.recv_timeout(PATIENCE) {
                        running.stderr.push(line);
                    }
                    return running;
                }
            }
            Err(_) => panic!(
                "{what} did not listen; stderr:\n{}",
                running.stderr.join("\n")
            ),
        }
    }
}

fn demo(data_dir: &Path) -> Running {
    start(holdfast(data_dir).args(["demo", "--listen", "127.0.0.1:0", "--events", "600"]))
}

/// username -> (password, role, scope) from the demo's credentials file.
fn credentials(data_dir: &Path) -> BTreeMap<String, (String, String, String)> {
    let text = std::fs::read_to_string(data_dir.join("demo-credentials.txt")).unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "{line:?}");
            (
                fields[0].to_owned(),
                (
                    fields[1].to_owned(),
                    fields[2].to_owned(),
                    fields[3].to_owned(),
                ),
            )
        })
        .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// How a test request is signed in.
enum Auth<'a> {
    Bearer(&'a str),
    /// A `Cookie` header value (`holdfast_session=...`).
    Cookie(&'a str),
}

/// `GET url?query` signed in with `auth`: the status and the JSON body.
async fn get_json(url: String, query: &[(&str, &str)], auth: Auth<'_>) -> (u16, Value) {
    let request = client().get(url).query(query);
    let request = match auth {
        Auth::Bearer(token) => request.bearer_auth(token),
        Auth::Cookie(cookie) => request.header("cookie", cookie),
    };
    json_of(request.send().await.unwrap()).await
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Signs in as the console does; answers the cookie pair `name=value`
/// and the whole `Set-Cookie` header.
async fn console_login(base: &str, username: &str, password: &str) -> (String, String, Value) {
    let response = client()
        .post(format!("{base}/api/v1/login"))
        .header("X-Holdfast-Console", "1")
        .header("content-type", "application/json")
        .body(json!({"username": username, "password": password}).to_string())
        .send()
        .await
        .unwrap();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie for {username}"))
        .to_str()
        .unwrap()
        .to_owned();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    let pair = set_cookie.split(';').next().unwrap().trim().to_owned();
    (pair, set_cookie, body)
}

async fn token_login(base: &str, username: &str, password: &str) -> String {
    let (status, body) = json_of(
        client()
            .post(format!("{base}/api/v1/login"))
            .header("content-type", "application/json")
            .body(json!({"username": username, "password": password}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_demo_seeds_an_archive_and_a_person_of_each_role_and_says_where_to_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    let server = demo(&data_dir);
    let printed = server.stderr.join("\n");
    assert!(
        printed.contains(&format!("web console: {}/console/", server.base)),
        "{printed}"
    );
    let people = credentials(&data_dir);
    let mode = std::fs::metadata(data_dir.join("demo-credentials.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the credentials file is private");
    let roles: Vec<&str> = people.values().map(|(_, role, _)| role.as_str()).collect();
    for role in ["admin", "compliance_officer", "legal", "auditor"] {
        assert!(roles.contains(&role), "{role} in {roles:?}");
    }
    for (username, (password, role, _)) in &people {
        assert!(
            printed.contains(username) && printed.contains(password.as_str()),
            "{username} is printed"
        );
        let token = token_login(&server.base, username, password).await;
        let (status, me) = get_json(
            format!("{}/api/v1/me", server.base),
            &[],
            Auth::Bearer(&token),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(me["grants"][0]["role"], role.as_str(), "{me}");
        if username == "scoped-officer" {
            assert_eq!(me["search_scope"], "team energy-trading", "{me}");
        }
    }
    // The archive is searchable, and the scoped officer sees one team only.
    let search = |token: String| {
        let base = server.base.clone();
        async move {
            get_json(
                format!("{base}/api/v1/search"),
                &[("q", "kind:post"), ("limit", "100")],
                Auth::Bearer(&token),
            )
            .await
        }
    };
    let officer = token_login(&server.base, "officer", &people["officer"].0).await;
    let (status, all) = search(officer).await;
    assert_eq!(status, 200, "{all}");
    let teams_seen: std::collections::BTreeSet<&str> = all["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["team"].as_str().unwrap())
        .collect();
    assert!(teams_seen.len() > 1, "{teams_seen:?}");
    let scoped = token_login(&server.base, "scoped-officer", &people["scoped-officer"].0).await;
    let (status, mine) = search(scoped).await;
    assert_eq!(status, 200);
    assert!(mine["total"].as_u64().unwrap() > 0);
    assert!(mine["total"].as_u64().unwrap() < all["total"].as_u64().unwrap());
    for hit in mine["hits"].as_array().unwrap() {
        assert_eq!(hit["team"], "energy-trading", "{hit}");
    }
    // The admin sees the demo's retention policy.
    let admin = token_login(&server.base, "admin", &people["admin"].0).await;
    let (status, policies) = get_json(
        format!("{}/api/v1/retention/policies", server.base),
        &[],
        Auth::Bearer(&admin),
    )
    .await;
    assert_eq!(status, 200);
    assert!(policies.to_string().contains("demo-one-year"), "{policies}");
    // Half the sample is older than the one-year policy: the plan shows it.
    let (status, plan) = get_json(
        format!("{}/api/v1/retention/plan", server.base),
        &[],
        Auth::Bearer(&admin),
    )
    .await;
    assert_eq!(status, 200, "{plan}");
    let to_delete = plan["events_to_delete"].as_u64().unwrap();
    let kept = plan["events_kept_by_holds"].as_u64().unwrap();
    assert_eq!(to_delete + kept, 300, "{plan}");
    assert!(
        kept > 0,
        "the sample hold keeps its custodians' messages: {plan}"
    );
    // The sample hold is there, active.
    let (status, holds) = get_json(
        format!("{}/api/v1/holds", server.base),
        &[],
        Auth::Bearer(&admin),
    )
    .await;
    assert_eq!(status, 200, "{holds}");
    assert_eq!(holds["holds"][0]["name"], "Raptor investigation", "{holds}");
    assert_eq!(holds["holds"][0]["status"], "active", "{holds}");

    // A second start reuses the archive and the same people.
    drop(server);
    let again = demo(&data_dir);
    assert!(
        again
            .stderr
            .join("\n")
            .contains("reusing the sample archive"),
        "{}",
        again.stderr.join("\n")
    );
    assert_eq!(credentials(&data_dir), people);
    let officer = token_login(&again.base, "officer", &people["officer"].0).await;
    let (_, second) = get_json(
        format!("{}/api/v1/search", again.base),
        &[("q", "kind:post"), ("limit", "1")],
        Auth::Bearer(&officer),
    )
    .await;
    assert_eq!(second["total"], all["total"], "nothing was stored twice");
}

/// A directory that holds anything but a demo (a real archive, say) is
/// never seeded with sample data.
#[test]
fn the_demo_refuses_a_directory_that_is_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("holdfast.db"), b"a real archive").unwrap();
    let output = holdfast(dir.path())
        .args(["demo", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not empty and is not a demo archive"),
        "{stderr}"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["holdfast.db"], "nothing was written");
    assert_eq!(
        std::fs::read(dir.path().join("holdfast.db")).unwrap(),
        b"a real archive"
    );
}

#[test]
fn the_demo_refuses_a_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = holdfast(dir.path())
        .args(["--config", "/etc/holdfast.toml", "demo"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--config does not apply"), "{stderr}");
    assert!(
        !dir.path().join("demo-credentials.txt").exists(),
        "nothing was seeded"
    );
}

#[tokio::test]
async fn the_console_files_are_served_with_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo(dir.path());
    let root = client().get(&server.base).send().await.unwrap();
    assert_eq!(root.status().as_u16(), 303);
    assert_eq!(root.headers()["location"], "/console/");
    for (path, kind) in [
        ("/console/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let response = client()
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        let body = response.text().await.unwrap();
        assert!(!body.trim().is_empty(), "{path} is empty");
    }
    let page = client()
        .get(format!("{}/console/", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("/console/app.js"),
        "the page loads the script"
    );
    let missing = client()
        .get(format!("{}/console/other.js", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn console_dir_serves_the_files_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("console");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("index.html"), "<p>from disk</p>").unwrap();
    let server = start(
        holdfast(&dir.path().join("data"))
            .env("HOLDFAST_CONSOLE_DIR", &files)
            .args(["demo", "--listen", "127.0.0.1:0", "--events", "10"]),
    );
    let page = client()
        .get(format!("{}/console/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.text().await.unwrap(), "<p>from disk</p>");
    // A file missing there is an error naming nothing of the disk to the client.
    let script = client()
        .get(format!("{}/console/app.js", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status().as_u16(), 500);
    let text = script.text().await.unwrap();
    assert!(!text.contains(dir.path().to_str().unwrap()), "{text}");
}

#[tokio::test]
async fn the_console_session_is_an_http_only_cookie_refused_cross_site_and_cleared_at_sign_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo(dir.path());
    let people = credentials(dir.path());
    let base = server.base.clone();
    let (cookie, set_cookie, body) = console_login(&base, "counsel", &people["counsel"].0).await;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(
        !set_cookie.contains("Secure"),
        "not Secure unless configured"
    );
    assert!(cookie.starts_with("holdfast_session=hfs_"), "{cookie}");
    assert!(
        body.get("token").is_none(),
        "the script never sees the token: {body}"
    );
    assert_eq!(body["username"], "counsel");

    // A sign-in without the console's header: a token, no cookie.
    let plain = client()
        .post(format!("{base}/api/v1/login"))
        .header("content-type", "application/json")
        .body(json!({"username": "counsel", "password": people["counsel"].0}).to_string())
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("set-cookie").is_none());
    let (_, plain) = json_of(plain).await;
    assert!(plain["token"].as_str().unwrap().starts_with("hfs_"));

    // The cookie reads.
    let (status, me) = get_json(format!("{base}/api/v1/me"), &[], Auth::Cookie(&cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(me["username"], "counsel");
    // No answer of the API is kept in a cache.
    for path in ["/api/v1/me", "/api/v1/holds", "/api/v1/search?q=kind:post"] {
        let response = client()
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }

    // A change with the cookie but without the header (a forged cross-site
    // form) is refused, audited as denied, and changes nothing.
    let hold = json!({"name": "forged", "matter": "m", "reason": "r",
        "criteria": {"custodians": ["allen-p"]}});
    let (status, refused) = json_of(
        client()
            .post(format!("{base}/api/v1/holds"))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(hold.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-holdfast-console"),
        "{refused}"
    );
    let (status, holds) =
        get_json(format!("{base}/api/v1/holds"), &[], Auth::Cookie(&cookie)).await;
    assert_eq!(status, 200);
    assert!(
        holds["holds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|hold| hold["name"] != "forged"),
        "{holds}"
    );
    let auditor = token_login(&base, "auditor", &people["auditor"].0).await;
    let (_, trail) = get_json(
        format!("{base}/api/v1/audit"),
        &[("action", "hold_create"), ("outcome", "denied")],
        Auth::Bearer(&auditor),
    )
    .await;
    let records = trail["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{trail}");
    assert_eq!(records[0]["actor"], "counsel");

    // With the header, the same request works.
    let (status, created) = json_of(
        client()
            .post(format!("{base}/api/v1/holds"))
            .header("cookie", &cookie)
            .header("X-Holdfast-Console", "1")
            .header("content-type", "application/json")
            .body(hold.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    // Signing out ends the session and removes the cookie.
    let out = client()
        .post(format!("{base}/api/v1/logout"))
        .header("cookie", &cookie)
        .header("X-Holdfast-Console", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 200);
    let cleared = out.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cleared.starts_with("holdfast_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let stale = client()
        .get(format!("{base}/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.status().as_u16(),
        401,
        "the old cookie no longer works"
    );
    let removed = stale.headers()["set-cookie"].to_str().unwrap();
    assert!(
        removed.starts_with("holdfast_session=;") && removed.contains("Max-Age=0"),
        "a dead cookie is removed: {removed}"
    );
    // A bad cookie is just not signed in.
    let (status, _) = get_json(
        format!("{base}/api/v1/me"),
        &[],
        Auth::Cookie("holdfast_session=hfs_forged; other=1"),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn secure_cookie_marks_the_session_cookie_secure() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("holdfast.toml");
    std::fs::write(&config, "[auth]\nsecure_cookie = true\n").unwrap();
    let server = start(
        holdfast(&dir.path().join("data"))
            .env("HOLDFAST_ADMIN_PASSWORD", "a long admin password")
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", "127.0.0.1:0"]),
    );
    let (_, set_cookie, _) = console_login(&server.base, "admin", "a long admin password").await;
    assert!(set_cookie.ends_with("; Secure"), "{set_cookie}");
    // And a misspelt key is named.
    std::fs::write(&config, "[auth]\nsecure_cookies = true\n").unwrap();
    let output = holdfast(&dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .arg("config")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("secure_cookies"), "{stderr}");
}

/// The console's filters list what the caller's scope holds, and nothing of
/// another team for a scoped officer; the list is audited.
#[tokio::test]
async fn facets_name_only_what_the_scope_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo(dir.path());
    let people = credentials(dir.path());
    let facets = |user: &'static str| {
        let base = server.base.clone();
        let password = people[user].0.clone();
        async move {
            let token = token_login(&base, user, &password).await;
            get_json(format!("{base}/api/v1/facets"), &[], Auth::Bearer(&token)).await
        }
    };
    let sum = |list: &Value| -> u64 {
        list.as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["events"].as_u64().unwrap())
            .sum()
    };
    let (status, all) = facets("officer").await;
    assert_eq!(status, 200, "{all}");
    let teams: Vec<&str> = all["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|team| team["name"].as_str().unwrap())
        .collect();
    assert_eq!(teams.len(), 3, "{teams:?}");
    assert_eq!(
        sum(&all["teams"]),
        600,
        "every stored event is counted once"
    );
    assert_eq!(sum(&all["channels"]), 600);
    assert_eq!(sum(&all["people"]), 600);
    assert_eq!(all["truncated"], false);

    let (status, mine) = facets("scoped-officer").await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["teams"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["teams"][0]["name"], "energy-trading");
    for channel in mine["channels"].as_array().unwrap() {
        assert_eq!(channel["team"], "energy-trading", "{channel}");
    }
    let in_team = sum(&mine["teams"]);
    assert!(in_team > 0 && in_team < 600, "{in_team}");
    assert_eq!(sum(&mine["channels"]), in_team);
    assert_eq!(sum(&mine["people"]), in_team);
    let officer_count = all["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|team| team["name"] == "energy-trading")
        .unwrap()["events"]
        .as_u64()
        .unwrap();
    assert_eq!(in_team, officer_count);

    // Roles that do not search get nothing.
    for user in ["auditor", "admin"] {
        let (status, refused) = facets(user).await;
        assert_eq!(status, 403, "{user}: {refused}");
    }
    let auditor = token_login(&server.base, "auditor", &people["auditor"].0).await;
    let (_, trail) = get_json(
        format!("{}/api/v1/audit", server.base),
        &[("action", "search_facets")],
        Auth::Bearer(&auditor),
    )
    .await;
    let outcomes: Vec<(&str, &str)> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| {
            (
                record["actor"].as_str().unwrap(),
                record["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 4, "{trail}");
    assert!(outcomes.contains(&("scoped-officer", "ok")), "{outcomes:?}");
    assert!(outcomes.contains(&("admin", "denied")), "{outcomes:?}");
}
