//! Shared test helpers: archives on both metadata backends, events, an app
//! served on port 0, and the `holdfast` binary with a clean environment.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use holdfast::db::Backend;
use holdfast::event::Event;
use holdfast::store::{Store, StoreOptions};
use serde_json::{Value, json};

/// PostgreSQL for tests: the server on this machine, trust auth, database `test`.
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh archive location: a temp data dir and, for PostgreSQL, a fresh
/// schema (dropped again when this is dropped).
pub struct TestArchive {
    pub dir: tempfile::TempDir,
    pub options: StoreOptions,
    pub backend: Backend,
    schema: Option<String>,
}

impl TestArchive {
    pub async fn new(backend: Backend) -> TestArchive {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut options = StoreOptions::for_data_dir(dir.path().join("data"));
        let mut schema = None;
        if backend == Backend::Postgres {
            let name = format!("hf_test_{}", hex::encode(rand::random::<[u8; 6]>()));
            let pool = sqlx::PgPool::connect(POSTGRES_URL).await.unwrap_or_else(|error| {
                panic!(
                    "these tests need PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`), \
                     and it could not be reached: {error}"
                )
            });
            sqlx::query(&format!("CREATE SCHEMA {name}"))
                .execute(&pool)
                .await
                .expect("create schema");
            pool.close().await;
            options.database_url = schema_url(&name);
            schema = Some(name);
        }
        TestArchive {
            dir,
            options,
            backend,
            schema,
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.options.data_dir
    }

    pub fn segments_dir(&self) -> PathBuf {
        self.options.data_dir.join("segments")
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.options).await.expect("open store").0
    }
}

/// A URL whose connections use `schema` as their search path.
pub fn schema_url(schema: &str) -> String {
    format!("{POSTGRES_URL}?options=-c%20search_path%3D{schema}")
}

impl Drop for TestArchive {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        // Drop runs outside any runtime: use a small one of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(POSTGRES_URL).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// Runs an async test body once per metadata backend, as two tests.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(holdfast::db::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(holdfast::db::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// A valid event JSON of `kind`, with sensible fields.
pub fn event_json(id: &str, kind: &str, post: Option<&str>) -> Value {
    let mut value = json!({
        "id": id, "kind": kind, "at": "2024-05-01T09:30:00.000Z",
        "team": "energy-trading", "channel": "gas-desk", "user": "allen-p",
    });
    if let Some(post) = post {
        value["post"] = json!(post);
    }
    match kind {
        "post" | "edit" => {
            value["text"] = json!(format!("text of {id}: wire transfer, café, Привет"))
        }
        "reaction_add" | "reaction_remove" => value["emoji"] = json!("thumbsup"),
        _ => {}
    }
    value
}

pub fn event(id: &str, kind: &str, post: Option<&str>) -> Event {
    Event::from_json(event_json(id, kind, post)).expect("helper events are valid")
}

/// `n` distinct valid posts spread over channels and days.
pub fn posts(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut value = event_json(
                &format!("{prefix}-{i}"),
                "post",
                Some(&format!("{prefix}-p{i}")),
            );
            value["channel"] = json!(format!("channel-{}", i % 3));
            value["at"] = json!(1_714_550_000_000_i64 + (i as i64) * 3_600_000);
            Event::from_json(value).expect("valid")
        })
        .collect()
}

/// The `holdfast` binary with no inherited HOLDFAST_* variables.
pub fn holdfast(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    for (key, _) in std::env::vars() {
        if key.starts_with("HOLDFAST_") {
            command.env_remove(key);
        }
    }
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("HOLDFAST_LOG", "warn");
    command
}

/// The archive's metadata database, migrated, without a store (the data
/// directory is created for SQLite's file).
pub async fn connect_db(archive: &TestArchive) -> holdfast::db::Db {
    std::fs::create_dir_all(archive.data_dir()).expect("create data dir");
    holdfast::db::Db::connect(&archive.options.database_url)
        .await
        .expect("connect to the metadata database")
}

/// Runs SQL (several statements allowed) directly, as someone with access
/// to the database would, bypassing holdfast.
pub async fn raw_sql(db: &holdfast::db::Db, sql: &'static str) -> Result<(), sqlx::Error> {
    match db {
        holdfast::db::Db::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        holdfast::db::Db::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
    }
}
