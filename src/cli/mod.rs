//! The command line (clap): a thin shell over the library, like the API.
//!
//! Only this module knows clap. Every command takes `--data-dir` and
//! `--config`; `verify` and `stats` print JSON with `--json`. Exit codes:
//! 0 success, 1 the archive failed verification or input was rejected,
//! 2 any other error.

mod audit;
mod demo;
pub mod export;
mod holds;
mod import;
mod retention;
mod search;
mod tokens;
mod users;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::api::{self, auth};
use crate::config::{Config, Overrides};
use crate::generate::{self, GenerateOptions};
use crate::ingest;
use crate::store::keys::{self, KekSource, MasterKey};
use crate::store::{Store, VerifyReport};

/// holdfast: a self-hosted compliance and e-discovery archive for team chat.
#[derive(Debug, Parser)]
#[command(name = "holdfast", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML); HOLDFAST_* variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (segments, metadata database, keys); default ./holdfast-data.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (ingest and read API, /healthz, /metrics).
    Serve {
        /// Address to listen on (default 127.0.0.1:8420).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Start the service on a generated sample archive, with a sample person
    /// of each role, and print where and as whom to sign in.
    ///
    /// A first look, kept apart from real data: its own data directory
    /// (./holdfast-demo unless --data-dir says otherwise) and its own
    /// configuration: no configuration file, and of the HOLDFAST_* variables
    /// only HOLDFAST_LOG, HOLDFAST_LOG_FORMAT and HOLDFAST_CONSOLE_DIR apply.
    /// The archive (half of it from 400 days ago), the people, a one-year
    /// retention policy and a legal hold are made at the first start; later
    /// starts reuse them. The passwords are kept in demo-credentials.txt.
    Demo(demo::DemoArgs),
    /// Store events from an NDJSON file, or standard input with `-`.
    Ingest {
        /// NDJSON file, one event per line; `-` reads standard input.
        input: String,
        /// Lines per group commit.
        #[arg(long, default_value_t = 10_000)]
        batch_lines: usize,
    },
    /// Import the history of a Slack or Mattermost export (idempotent: run it
    /// again after an interruption, nothing is stored twice).
    Import(import::ImportArgs),
    /// Search the archive (query language: docs/search.md); a table of
    /// hits, or one JSON object per hit with --json.
    Search(search::SearchArgs),
    /// Print one event by id, as JSON.
    Get {
        /// The event id.
        id: String,
    },
    /// Print every event about a post (versions, reactions, files), as NDJSON.
    Post {
        /// The post id.
        post: String,
    },
    /// Check every record, the hash chain and the checkpoints; exit 1 on damage.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Also prove that the chain still passes through an earlier head,
        /// `SEQ:HASH` as printed by an earlier `verify` (head_seq, head_hash).
        #[arg(long, value_name = "SEQ:HASH", value_parser = parse_head)]
        expect_head: Option<(u64, [u8; 32])>,
    },
    /// Counts of events, posts, channels, key epochs and segments.
    Stats {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration (defaults, file, environment,
    /// flags), secrets redacted; exit 2 naming the problem if it is invalid.
    Config,
    /// The search index (derived from the store; rebuildable from it).
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Master key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Write a deterministic synthetic chat corpus as NDJSON.
    Generate {
        /// Number of events.
        #[arg(long, default_value_t = 1000)]
        events: u64,
        /// Random seed: the same seed gives the same corpus.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file; standard output when absent.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Local users (the users file of the built-in directory): add, passwd,
    /// disable, enable, remove, list. Every change is audited.
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// Local groups (mapped to roles by [[auth.groups]]): add-member,
    /// remove-member, list. Every change is audited.
    Group {
        #[command(subcommand)]
        command: users::GroupCommand,
    },
    /// API tokens of service accounts: create (printed once), list, revoke.
    Token {
        #[command(subcommand)]
        command: tokens::TokenCommand,
    },
    /// Retention policies and runs: policies, plan (dry run), run, runs,
    /// show (a run's certificate of destruction). docs/retention.md.
    Retention {
        #[command(subcommand)]
        command: retention::RetentionCommand,
    },
    /// Read the audit trail (a table, --json or --csv), or check it with
    /// `holdfast audit verify`. Reading it is itself audited.
    Audit(audit::AuditArgs),
    /// Legal holds: create, list, show (with counts of the events held),
    /// release. A hold wins over every retention policy and delete request.
    /// Every command is audited.
    Hold {
        #[command(subcommand)]
        command: holds::HoldCommand,
    },
    /// Exports: create a package now (CSV, PDF transcript, JSONL, Actiance
    /// XML, Global Relay EML, with a signed manifest), verify a package, run
    /// a scheduled export, list and show exports. docs/exports.md.
    Export {
        #[command(subcommand)]
        command: export::ExportCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Index what the store holds past the index's last commit.
    Update,
    /// Build a new index from the store alone, then swap it in (takes the
    /// writer lock; an interrupted rebuild leaves the old index and starts
    /// over next time).
    Rebuild,
    /// List events missing from or extra in the index; exit 1 if any.
    Check {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rewrap every data key under a new master key, without rewriting segments.
    ///
    /// With --new-key-file, the key in that file becomes the master key;
    /// point keys.kek_file (or your key source) at it afterwards. Without it,
    /// when the current key is a file, a new key is generated and replaces
    /// that file atomically.
    Rotate {
        /// File holding the new key (64 hex digits or base64), mode 0600.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
    /// Generate a new random master key into a new file (mode 0600).
    Generate {
        /// Where to write it; must not exist.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Runs the CLI; the returned code is the process's exit status.
pub fn main() -> ExitCode {
    // Everything holdfast creates (segments, database, keys, the search index,
    // exports) is private to its user, whatever the library creating it does.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    if let Err(message) = init_tracing() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr: readable text, or one JSON object per line with
/// `HOLDFAST_LOG_FORMAT=json` (for a SIEM). `HOLDFAST_LOG` is the filter.
fn init_tracing() -> Result<(), String> {
    let filter = match std::env::var("HOLDFAST_LOG") {
        Ok(directives) => tracing_subscriber::EnvFilter::try_new(&directives)
            .map_err(|error| format!("HOLDFAST_LOG={directives:?} is not a log filter: {error}"))?,
        Err(_) => tracing_subscriber::EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("HOLDFAST_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().init(),
        Ok("text") | Err(_) => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        Ok(other) => {
            return Err(format!(
                "HOLDFAST_LOG_FORMAT={other:?} is not one of text, json"
            ));
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        config_file: cli.global.config.clone(),
        data_dir: cli.global.data_dir.clone(),
        listen: match &cli.command {
            Command::Serve { listen } => listen.clone(),
            _ => None,
        },
    };
    if let Command::Generate { events, seed, out } = &cli.command {
        return generate_corpus(*events, *seed, out.as_ref());
    }
    if let Command::Keys {
        command: KeysCommand::Generate { out },
    } = &cli.command
    {
        MasterKey::generate().write_new_file(out)?;
        eprintln!("wrote a new master key to {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Demo(args) = cli.command {
        if cli.global.config.is_some() {
            bail!("holdfast demo uses its own configuration; --config does not apply");
        }
        return demo::run(cli.global.data_dir, args).await;
    }
    let config = Config::load(&overrides)?;
    match cli.command {
        Command::Config => {
            print!("{}", config.describe());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { .. } => serve(&config).await,
        Command::Ingest { input, batch_lines } => ingest_file(&config, &input, batch_lines).await,
        Command::Import(args) => import::run(&config, args).await,
        Command::Search(args) => search::run(&config, args).await,
        Command::Retention { command } => retention::run(&config, command).await,
        Command::Get { id } => {
            let store = Store::open_read_only(&config.store_options()).await?;
            let trail = audit::CliAudit::open(&config).await?;
            let stored = match store.get_event(&id).await {
                Err(deleted @ crate::store::StoreError::Shredded(_)) => {
                    trail
                        .record_ok(
                            crate::audit::AuditAction::ViewEvent,
                            serde_json::json!({"event": id, "found": false, "deleted": true}),
                        )
                        .await?;
                    bail!("{deleted}");
                }
                other => other?,
            };
            trail
                .record_ok(
                    crate::audit::AuditAction::ViewEvent,
                    serde_json::json!({"event": id, "found": stored.is_some()}),
                )
                .await?;
            let Some(stored) = stored else {
                bail!("no event with id {id:?}");
            };
            println!("{}", serde_json::to_string_pretty(&stored.event)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Post { post } => {
            let store = Store::open_read_only(&config.store_options()).await?;
            let trail = audit::CliAudit::open(&config).await?;
            let events = store.post_events(&post).await?;
            trail
                .record_ok(
                    crate::audit::AuditAction::ViewPost,
                    serde_json::json!({"post": post, "events": events.len()}),
                )
                .await?;
            if events.is_empty() {
                bail!("no post with id {post:?}");
            }
            let mut stdout = std::io::stdout().lock();
            for stored in events {
                writeln!(stdout, "{}", serde_json::to_string(&stored.event)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { json, expect_head } => verify(&config, json, expect_head).await,
        Command::Index { command } => index_command(&config, command).await,
        Command::User { command } => users::run_user(&config, command).await,
        Command::Group { command } => users::run_group(&config, command).await,
        Command::Token { command } => tokens::run(&config, command).await,
        Command::Audit(args) => audit::run(&config, args).await,
        Command::Hold { command } => holds::run(&config, command).await,
        Command::Export { command } => export::run(&config, command).await,
        Command::Stats { json } => stats(&config, json).await,
        Command::Keys {
            command: KeysCommand::Rotate { new_key_file },
        } => rotate(&config, new_key_file).await,
        Command::Generate { .. } | Command::Keys { .. } | Command::Demo(_) => {
            unreachable!("handled above")
        }
    }
}

fn generate_corpus(events: u64, seed: u64, out: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let options = GenerateOptions {
        events,
        seed,
        ..GenerateOptions::default()
    };
    let summary = match out {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            generate::generate(&options, &mut file)?
        }
        None => generate::generate(&options, &mut std::io::stdout().lock())?,
    };
    eprintln!(
        "generated {} events ({} bytes) with seed {seed}",
        summary.events, summary.bytes
    );
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    let (store, _recovery) = Store::open(&config.store_options()).await?;
    let (token, origin) =
        auth::load_or_create_ingest_token(config).context("cannot set up the ingest token")?;
    match &origin {
        auth::TokenOrigin::Environment => {
            tracing::info!("ingest token from HOLDFAST_INGEST_TOKEN");
        }
        auth::TokenOrigin::File(path) => tracing::info!(path, "ingest token from file"),
        auth::TokenOrigin::Generated(path) => {
            tracing::warn!(
                path,
                "generated a new ingest token (mode 0600); give it to the chat connector"
            );
        }
    }
    let index = Arc::new(open_index_for_serving(&store, config).await?);
    let follower = crate::index::Follower::start(
        store.clone(),
        Arc::clone(&index),
        std::time::Duration::from_millis(config.index_refresh_ms),
    );
    bootstrap_admin(config)?;
    let access = api::AccessState::open(&store, &config.auth, Some(auth::TokenHash::of(&token)))
        .await
        .context("cannot set up sign-in and the audit trail")?;
    let retention = Arc::new(crate::retention::RetentionService::new(
        store.clone(),
        Arc::clone(&index),
        config.policy_dir.clone(),
        config.retention_compact,
    ));
    if let Err(error) = retention.policies() {
        anyhow::bail!("retention policies: {error}");
    }
    let resumed = retention
        .resume()
        .await
        .context("cannot finish an interrupted retention run")?;
    if resumed > 0 {
        tracing::warn!(runs = resumed, "finished interrupted retention runs");
    }
    let schedule = config.retention_schedule.clone().map(|schedule| {
        tracing::info!(schedule = ?config.retention_schedule_text, "retention runs on a schedule (UTC)");
        Arc::clone(&retention).start_schedule(schedule, access.audit.clone())
    });
    let signer = config
        .export_signer()
        .context("cannot set up the export signing key")?;
    let exports = Arc::new(crate::export::service::ExportService::new(
        crate::export::job::Exporter {
            store: store.clone(),
            index: Arc::clone(&index),
            signer: Arc::new(signer),
            exports_dir: config.exports_dir(),
            template_dir: config.export.template_dir.clone(),
        },
        access.audit.clone(),
        config.export_schedules.clone(),
    ));
    let interrupted = exports
        .fail_interrupted()
        .await
        .context("cannot read the exports table")?;
    if interrupted > 0 {
        tracing::warn!(
            exports = interrupted,
            "exports interrupted by the last stop were marked failed; start them again"
        );
    }
    let mut export_tasks = exports.start_schedules();
    export_tasks.push(exports.start_delivery_retries(std::time::Duration::from_secs(60)));
    let state = api::AppState::new(store.clone(), access, config.max_body_bytes)
        .with_index(index)
        .with_retention(retention)
        .with_exports(exports);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, data_dir = %config.data_dir.display(), "holdfast is serving");
    // Tests and scripts read this line to find the port.
    eprintln!("listening on http://{address}");
    eprintln!("web console: http://{address}/console/");
    axum::serve(
        listener,
        api::router(state)
            .merge(crate::console::router(crate::console::ConsoleFiles {
                dir: config.console_dir.clone(),
            }))
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("server failed")?;
    if let Some(schedule) = schedule {
        schedule.abort();
    }
    for task in export_tasks {
        task.abort();
    }
    follower.stop().await;
    store.close().await;
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// With the local directory and no users yet: creates `admin` (group
/// `admins`) with `HOLDFAST_ADMIN_PASSWORD`, or with a one-time password
/// printed here once.
fn bootstrap_admin(config: &Config) -> anyhow::Result<()> {
    if config.auth.directory != crate::auth::DirectoryKind::Local {
        return Ok(());
    }
    let path = config.auth.users_file_path(&config.data_dir);
    let given = std::env::var("HOLDFAST_ADMIN_PASSWORD")
        .ok()
        .map(secrecy::SecretString::from);
    match crate::auth::ensure_bootstrap_admin(&path, given)
        .with_context(|| format!("cannot set up the users file {}", path.display()))?
    {
        crate::auth::Bootstrap::Existing => {}
        crate::auth::Bootstrap::CreatedWithGivenPassword => {
            tracing::warn!(path = %path.display(), "created the first user, admin, with HOLDFAST_ADMIN_PASSWORD");
        }
        crate::auth::Bootstrap::CreatedWithGeneratedPassword(password) => {
            // Printed once, to the terminal of whoever started the server;
            // it must be changed at first sign-in.
            eprintln!(
                "created the first user: admin, one-time password {} (change it at first sign-in: POST /api/v1/me/password)",
                secrecy::ExposeSecret::expose_secret(&password)
            );
        }
    }
    Ok(())
}

/// The search index, rebuilt from the store when it was built by another
/// version, and caught up with the store before the server answers.
async fn open_index_for_serving(
    store: &Store,
    config: &Config,
) -> anyhow::Result<crate::index::SearchIndex> {
    let path = config.data_dir.join("index");
    let index = match crate::index::SearchIndex::open_or_create(&path) {
        Err(crate::index::IndexError::SchemaChanged { .. }) => {
            tracing::warn!(path = %path.display(), "the search index has an older layout; rebuilding it from the store");
            crate::index::rebuild(store, &path, |_, _| {}).await?;
            crate::index::SearchIndex::open_or_create(&path)?
        }
        other => other?,
    };
    let before = index.indexed_seq()?;
    let last = crate::index::catch_up(store, &index, |done, total| {
        tracing::info!(done, total, "search index catching up with the store");
    })
    .await?;
    index.reload()?;
    if last > before {
        tracing::info!(from = before, to = last, "search index caught up");
    }
    Ok(index)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                return;
            }
        };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn ingest_file(config: &Config, input: &str, batch_lines: usize) -> anyhow::Result<ExitCode> {
    let reader: Box<dyn BufRead + Send> = if input == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(input).with_context(|| format!("cannot open {input}"))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let (store, _recovery) = Store::open(&config.store_options()).await?;
    let report = ingest::ingest_reader(&store, reader, batch_lines.max(1), |report| {
        tracing::debug!(
            accepted = report.accepted,
            duplicates = report.duplicates,
            "ingest progress"
        );
    })
    .await;
    store.close().await;
    let report = report?;
    audit::CliAudit::open(config)
        .await?
        .record_ok(
            crate::audit::AuditAction::Ingest,
            serde_json::json!({
                "source": input,
                "accepted": report.accepted,
                "duplicates": report.duplicates,
                "rejected": report.rejected.len(),
            }),
        )
        .await?;
    for rejected in report.rejected.iter().take(50) {
        eprintln!(
            "rejected line {}{}: {}",
            rejected.line.unwrap_or(rejected.index + 1),
            rejected
                .id
                .as_ref()
                .map(|id| format!(" (id {id:?})"))
                .unwrap_or_default(),
            rejected.error
        );
    }
    if report.rejected.len() > 50 {
        eprintln!("... and {} more rejected lines", report.rejected.len() - 50);
    }
    println!(
        "{}",
        serde_json::json!({
            "accepted": report.accepted,
            "duplicates": report.duplicates,
            "rejected": report.rejected.len(),
        })
    );
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn index_command(config: &Config, command: IndexCommand) -> anyhow::Result<ExitCode> {
    let path = config.data_dir.join("index");
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = |done: u64, total: u64| {
        if terminal {
            eprint!("\rindexed {done} of {total} events");
        } else {
            tracing::info!(done, total, "indexing");
        }
    };
    match command {
        IndexCommand::Update => {
            let store = Store::open_read_only(&config.store_options()).await?;
            let index = crate::index::SearchIndex::open_or_create(&path)?;
            let last = crate::index::catch_up(&store, &index, progress).await?;
            if terminal {
                eprintln!();
            }
            println!("the index holds every event up to seq {last}");
            Ok(ExitCode::SUCCESS)
        }
        IndexCommand::Rebuild => {
            let (store, _recovery) = Store::open_existing(&config.store_options()).await?;
            let last = crate::index::rebuild(&store, &path, progress).await;
            store.close().await;
            let last = last?;
            if terminal {
                eprintln!();
            }
            println!("rebuilt the index from the store: every event up to seq {last}");
            Ok(ExitCode::SUCCESS)
        }
        IndexCommand::Check { json } => {
            let store = Store::open_read_only(&config.store_options()).await?;
            let index = crate::index::SearchIndex::open_or_create(&path)?;
            let report = crate::index::check(&store, &index).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "store: {} events; index: {} documents, committed up to seq {}",
                    report.store_events, report.index_documents, report.indexed_seq
                );
                println!(
                    "missing from the index: {} {:?}",
                    report.n_missing, report.missing
                );
                println!("extra in the index: {} {:?}", report.n_extra, report.extra);
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn parse_head(text: &str) -> Result<(u64, [u8; 32]), String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or_else(|| "expected SEQ:HASH, e.g. 1200:9f86d0...".to_owned())?;
    let seq = seq
        .trim()
        .parse()
        .map_err(|_| format!("{seq:?} is not a sequence number"))?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hash.trim(), &mut bytes)
        .map_err(|_| "the hash must be 64 hexadecimal digits".to_owned())?;
    Ok((seq, bytes))
}

async fn verify(
    config: &Config,
    json: bool,
    expect_head: Option<(u64, [u8; 32])>,
) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&config.store_options()).await?;
    let report = match expect_head {
        Some((seq, hash)) => store.verify_expecting_head(seq, hash).await?,
        None => store.verify().await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_verify(&report);
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_verify(report: &VerifyReport) {
    println!(
        "checked {} segments ({} sealed), {} records, {} events, {} bytes",
        report.segments, report.sealed_segments, report.records, report.events, report.bytes
    );
    println!("head: seq {} hash {}", report.head_seq, report.head_hash);
    if report.unacknowledged_tail_bytes > 0 {
        println!(
            "note: {} bytes past the acknowledged head (in flight, or a torn tail the next start cuts off)",
            report.unacknowledged_tail_bytes
        );
    }
    if report.expected_head_matches == Some(true) {
        println!("the chain passes through the expected earlier head");
    }
    if report.ok {
        println!("OK: every record decrypts and the chain is intact");
    } else {
        println!("DAMAGED: {} problem(s)", report.problems.len());
        for problem in &report.problems {
            println!("  {problem}");
        }
    }
}

async fn stats(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&config.store_options()).await?;
    let db_stats = store.db().stats().await?;
    let segments = store.db().segments().await?;
    let bytes: i64 = segments.iter().map(|s| s.end_offset).sum();
    let value = serde_json::json!({
        "events": db_stats.events,
        "deleted_events": db_stats.deleted_events,
        "events_by_kind": db_stats.events_by_kind.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "posts": db_stats.posts,
        "teams": db_stats.teams,
        "channels": db_stats.channels,
        "key_epochs": db_stats.key_epochs,
        "destroyed_key_epochs": db_stats.destroyed_key_epochs,
        "first_event_at": db_stats.first_at_us.map(crate::event::format_at),
        "last_event_at": db_stats.last_at_us.map(crate::event::format_at),
        "segments": segments.len(),
        "sealed_segments": segments.iter().filter(|s| s.sealed_at_ms.is_some()).count(),
        "segment_bytes": bytes,
        "metadata_backend": store.db().backend().name(),
        "master_key_fingerprint": store.master_key_fingerprint(),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else if let serde_json::Value::Object(map) = value {
        for (key, value) in map {
            println!("{key:<24} {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rotate(config: &Config, new_key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let options = config.store_options();
    let current = options
        .kek
        .clone()
        .unwrap_or_else(|| KekSource::File(config.data_dir.join("master.key")));
    if new_key_file.is_none() && !matches!(current, KekSource::File(_)) {
        bail!(
            "the master key comes from {current}; generate a new key (holdfast keys generate --out FILE) and pass it with --new-key-file"
        );
    }
    let (store, _recovery) = Store::open_existing(&options).await?;
    let trail = audit::CliAudit::open(config).await?;
    match (new_key_file, &current) {
        (Some(path), _) => {
            let new_key = MasterKey::load(&KekSource::File(path.clone()))?;
            let rotated = store.rotate_master_key(&new_key).await;
            let n = trail
                .audited(
                    crate::audit::AuditAction::KeyRotation,
                    serde_json::json!({"new_key": new_key.fingerprint(), "from_file": path}),
                    rotated.map_err(anyhow::Error::from),
                    |n, mut params| {
                        params["rewrapped"] = serde_json::json!(n);
                        params
                    },
                )
                .await?;
            println!(
                "rewrapped {n} data keys under key {} from {}; point keys.kek_file at that file now: the old key no longer opens the archive",
                new_key.fingerprint(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        (None, KekSource::File(path)) => {
            let staged = keys::staged_key_path(path);
            if staged.exists() {
                std::fs::remove_file(&staged)
                    .with_context(|| format!("cannot remove stale {}", staged.display()))?;
            }
            let new_key = MasterKey::generate();
            new_key.write_new_file(&staged)?;
            let n = trail
                .audited(
                    crate::audit::AuditAction::KeyRotation,
                    serde_json::json!({"new_key": new_key.fingerprint(), "written_to": path}),
                    store
                        .rotate_master_key(&new_key)
                        .await
                        .map_err(anyhow::Error::from),
                    |n, mut params| {
                        params["rewrapped"] = serde_json::json!(n);
                        params
                    },
                )
                .await?;
            std::fs::rename(&staged, path)
                .and_then(|()| keys::sync_parent_dir(path))
                .with_context(|| {
                    format!("cannot move {} over {}", staged.display(), path.display())
                })?;
            println!(
                "rewrapped {n} data keys under a new key {} written to {}",
                new_key.fingerprint(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        (None, source) => unreachable!("refused above: {source}"),
    }
}
