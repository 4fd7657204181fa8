//! Crash safety with a real process: `holdfast serve` is killed with SIGKILL
//! while clients keep posting; after each restart every acknowledged event is
//! readable, and `holdfast verify` passes at the end.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use holdfast::generate::{EventGenerator, GenerateOptions};
use tokio::sync::Notify;

const TOKEN: &str = "crash-test-token-0123456789";

/// A running `holdfast serve`; killed with SIGKILL on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let mut child = helpers::holdfast(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("HOLDFAST_INGEST_TOKEN", TOKEN)
            .env("HOLDFAST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let base = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                panic!("holdfast serve exited before listening: {seen:#?}");
            };
            let line = line.unwrap();
            if let Some(address) = line.strip_prefix("listening on ") {
                break address.trim().to_owned();
            }
            seen.push(line);
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn batches(seed: u64, n_batches: usize, batch_size: usize) -> Vec<(Vec<String>, String)> {
    let mut generator = EventGenerator::new(&GenerateOptions {
        events: (n_batches * batch_size) as u64,
        seed,
        ..GenerateOptions::default()
    });
    (0..n_batches)
        .map(|_| {
            let events: Vec<serde_json::Value> = generator.by_ref().take(batch_size).collect();
            let ids = events
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect();
            let body = events
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            (ids, body)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let client = reqwest::Client::new();
    let acknowledged: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut expected_events = 0usize;

    for cycle in 0..5u64 {
        let server = Server::start(&data_dir);
        let progress = Arc::new(Notify::new());
        let mut clients = Vec::new();
        for task in 0..3u64 {
            let work = batches(1000 + cycle * 10 + task, 40, 150);
            let (client, base, acknowledged, progress) = (
                client.clone(),
                server.base.clone(),
                Arc::clone(&acknowledged),
                Arc::clone(&progress),
            );
            clients.push(tokio::spawn(async move {
                for (ids, body) in work {
                    let response = client
                        .post(format!("{base}/api/v1/events"))
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await;
                    let Ok(response) = response else { break };
                    if response.status() != 200 {
                        break;
                    }
                    let Ok(text) = response.text().await else {
                        break;
                    };
                    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(answer["rejected"].as_array().unwrap().len(), 0, "{answer}");
                    acknowledged.lock().unwrap().extend(ids);
                    progress.notify_one();
                }
            }));
        }
        // Kill once this cycle has some acknowledgements, with requests in flight.
        let target = expected_events + 600 + (cycle as usize) * 450;
        while acknowledged.lock().unwrap().len() < target {
            progress.notified().await;
        }
        server.kill();
        for client in clients {
            client.await.unwrap();
        }
        expected_events = acknowledged.lock().unwrap().len();
    }

    // Restart: every acknowledged event is there, read back by an officer.
    let created = helpers::holdfast(&data_dir)
        .args([
            "token",
            "create",
            "--name",
            "crash-reader",
            "--role",
            "compliance_officer",
            "--all",
        ])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let reader = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let server = Server::start(&data_dir);
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 600 + 450 * 4,
        "{}",
        acknowledged.len()
    );
    for id in &acknowledged {
        let response = client
            .get(format!("{}/api/v1/events/{id}", server.base))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "acknowledged event {id} is missing");
        let body: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(body["event"]["id"], id.as_str());
    }
    server.kill();

    let output = helpers::holdfast(&data_dir)
        .args(["verify", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["ok"], true);
    assert!(report["events"].as_u64().unwrap() >= acknowledged.len() as u64);
}
