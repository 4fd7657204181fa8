//! `holdfast export ...`: build an export package now, check a package,
//! run a scheduled export, list and show exports.
//!
//! The command line acts as an administrator: its export scope is the whole
//! archive. `create` and `run-schedule` are recorded in the audit trail
//! (`export_create` before the build, `export_complete` after it).
//! Mistakes in the flags exit 2 naming the flag; `verify` exits 1 when the
//! package differs from its manifest or the signature does not hold.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::audit::CliAudit;
use crate::audit::AuditAction;
use crate::config::Config;
use crate::export::Bates;
use crate::export::job::{ExportRequest, Exporter, Progress, Requester, Source};
use crate::export::manifest::verify_package;
use crate::export::service::{ExportService, ServiceError};
use crate::export::sign::{PUBLIC_KEY_FILE, TrustedKey};
use crate::export::{ExportFormat, job};
use crate::retention::holds::HoldCriteria;
use crate::search::{ChannelRef, Scope};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Build an export package now: the files of each format, warnings.jsonl,
    /// and a signed manifest.json. Select with exactly one of --query,
    /// --hold, or a time range (--from/--to, optionally --team, --channel,
    /// --custodian).
    Create(CreateArgs),
    /// Check a package (its directory or its .zip download): the manifest's
    /// signature, then every file's size and SHA-256. Exit 0 when it is
    /// intact, 1 when anything differs (each difference is printed).
    Verify(VerifyArgs),
    /// Run one of the configured [[export.schedules]] now: export every
    /// event archived since its last run, then deliver the package.
    RunSchedule {
        /// The schedule's name.
        name: String,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List exports, newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Show one export: status, counts, package, deliveries.
    Show {
        /// The export id (42 or exp-000042).
        id: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Formats, comma-separated or repeated: csv, pdf, jsonl, actiance, eml.
    #[arg(long = "format", value_name = "FORMAT", value_delimiter = ',', required = true, value_parser = parse_format)]
    pub formats: Vec<ExportFormat>,
    /// Export what this search query matches (docs/search.md), with the
    /// other events of the matching posts.
    #[arg(long, value_name = "QUERY", conflicts_with_all = ["hold", "from", "to", "teams", "channels", "custodians"])]
    pub query: Option<String>,
    /// Export what this legal hold protects (its name or id).
    #[arg(long, value_name = "HOLD", conflicts_with_all = ["from", "to", "teams", "channels", "custodians"])]
    pub hold: Option<String>,
    /// Events at or after this time: a day (from midnight UTC) or RFC 3339.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Events at or before this time: a day (through its end, UTC) or RFC 3339.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Only this team; repeat for several.
    #[arg(long = "team", value_name = "TEAM")]
    pub teams: Vec<String>,
    /// Only this channel, as TEAM/CHANNEL; repeat for several.
    #[arg(long = "channel", value_name = "TEAM/CHANNEL", value_parser = super::holds::parse_channel)]
    pub channels: Vec<ChannelRef>,
    /// Only this user's events; repeat for several.
    #[arg(long = "custodian", value_name = "USER")]
    pub custodians: Vec<String>,
    /// The case or matter, printed on the cover page and in the manifest.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub matter: String,
    /// Number the PDF pages with this Bates prefix (e.g. HF).
    #[arg(long, value_name = "PREFIX")]
    pub bates_prefix: Option<String>,
    /// The first Bates number.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "bates_prefix")]
    pub bates_start: u64,
    /// Digits of a Bates number (zero-padded).
    #[arg(long, value_name = "N", default_value_t = 6, requires = "bates_prefix")]
    pub bates_digits: u8,
    /// Also copy the finished package into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The package directory, or its .zip.
    pub package: PathBuf,
    /// The installation's Ed25519 public key (export-signing.pub). Default:
    /// the one in the data directory, when there is one.
    #[arg(long, value_name = "FILE", conflicts_with = "hmac_key_file")]
    pub public_key: Option<PathBuf>,
    /// The shared HMAC key, for installations that sign with HMAC.
    #[arg(long, value_name = "FILE")]
    pub hmac_key_file: Option<PathBuf>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_format(text: &str) -> Result<ExportFormat, String> {
    ExportFormat::parse(text.trim()).ok_or_else(|| {
        format!("{text:?} is not a format (expected csv, pdf, jsonl, actiance or eml)")
    })
}

fn parse_id(text: &str) -> anyhow::Result<i64> {
    let digits = text.strip_prefix("exp-").unwrap_or(text);
    digits
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .with_context(|| format!("{text:?} is not an export id (42 or exp-000042)"))
}

impl CreateArgs {
    fn request(&self) -> Result<ExportRequest, String> {
        let source = match (&self.query, &self.hold) {
            (Some(query), None) => Source::Query {
                query: query.clone(),
            },
            (None, Some(hold)) => Source::Hold { hold: hold.clone() },
            (None, None) => {
                if self.from.is_none() && self.to.is_none() {
                    return Err(
                        "select what to export: --query, --hold, or --from/--to (with --team, --channel, --custodian)"
                            .to_owned(),
                    );
                }
                Source::Criteria {
                    criteria: HoldCriteria {
                        custodians: self.custodians.clone(),
                        teams: self.teams.clone(),
                        channels: self.channels.clone(),
                        from: self.from.clone(),
                        to: self.to.clone(),
                        query: None,
                    },
                }
            }
            (Some(_), Some(_)) => return Err("give --query or --hold, not both".to_owned()),
        };
        Ok(ExportRequest {
            source,
            formats: self.formats.clone(),
            matter: self.matter.clone(),
            bates: self.bates_prefix.as_ref().map(|prefix| Bates {
                prefix: prefix.clone(),
                start: self.bates_start,
                digits: self.bates_digits,
            }),
        })
    }
}

/// The flag of a field the library names.
fn flag_of(field: &str) -> String {
    match field {
        "formats" => "--format".to_owned(),
        "matter" => "--matter".to_owned(),
        "source.query" => "--query".to_owned(),
        "source.hold" => "--hold".to_owned(),
        "source.from" | "source" => "--from/--to".to_owned(),
        "bates.prefix" | "bates" => "--bates-prefix".to_owned(),
        "bates.digits" => "--bates-digits".to_owned(),
        other => other.to_owned(),
    }
}

async fn service(config: &Config, trail: &CliAudit) -> anyhow::Result<(Arc<ExportService>, Store)> {
    let store = Store::open_read_only(&config.store_options()).await?;
    // Query and hold exports need the index up to the store.
    let index = super::search::open_current(&store, config).await?;
    let signer = config.export_signer()?;
    let exporter = Exporter {
        store: store.clone(),
        index,
        signer: Arc::new(signer),
        exports_dir: config.exports_dir(),
        template_dir: config.export.template_dir.clone(),
    };
    Ok((
        Arc::new(ExportService::new(
            exporter,
            trail.log().clone(),
            config.export_schedules.clone(),
        )),
        store,
    ))
}

pub async fn run(config: &Config, command: ExportCommand) -> anyhow::Result<ExitCode> {
    match command {
        ExportCommand::Create(args) => {
            let request = match args.request() {
                Ok(request) => request,
                Err(message) => {
                    eprintln!("error: {message}");
                    return Ok(ExitCode::from(2));
                }
            };
            if let Err(error) = request.validate() {
                eprintln!("error: {}: {}", flag_of(&error.field), error.message);
                return Ok(ExitCode::from(2));
            }
            let trail = CliAudit::open(config).await?;
            let (service, store) = service(config, &trail).await?;
            let requester = Requester {
                name: trail.actor().to_owned(),
                scope: Scope::All,
            };
            let params = json!({"request": request, "scope": "all"});
            let export_id = match service.prepare(&request, &requester).await {
                Ok(export_id) => export_id,
                Err(error) => {
                    store.close().await;
                    let refused = matches!(
                        &error,
                        ServiceError::Build(job::BuildError::Invalid(_) | job::BuildError::Hold(_))
                    );
                    let message = match &error {
                        ServiceError::Build(job::BuildError::Invalid(invalid)) => {
                            format!("{}: {}", flag_of(&invalid.field), invalid.message)
                        }
                        other => other.to_string(),
                    };
                    let error = trail
                        .record_failure(AuditAction::ExportCreate, params, anyhow::anyhow!(message))
                        .await;
                    if refused {
                        eprintln!("error: {error:#}");
                        return Ok(ExitCode::from(2));
                    }
                    return Err(error);
                }
            };
            let mut params = params;
            params["export_id"] = json!(export_id);
            trail.record_ok(AuditAction::ExportCreate, params).await?;
            let progress = Arc::new(Progress::default());
            let ticker = spawn_ticker(Arc::clone(&progress));
            let result = service
                .run_prepared(export_id, request, requester, progress)
                .await;
            ticker.abort();
            store.close().await;
            let built = result.map_err(|error| anyhow::anyhow!("export failed: {error}"))?;
            let mut location = built.package_dir.clone();
            if let Some(out) = &args.out {
                let package = built.package_dir.clone();
                let out = out.clone();
                location = tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&out)
                        .map_err(|error| format!("{}: {error}", out.display()))?;
                    crate::export::delivery::deliver_to_dir(&package, &out)
                })
                .await?
                .map_err(|error| {
                    anyhow::anyhow!("the package was built but not copied: {error}")
                })?;
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&built.manifest)?);
            } else {
                println!(
                    "export {} done: {} events in {} channels, {} warnings",
                    job::export_name(export_id),
                    built.manifest.counts.events,
                    built.manifest.counts.channels.len(),
                    built.manifest.counts.warnings
                );
                for file in &built.manifest.files {
                    println!(
                        "  {:<40} {:>12} bytes  sha256 {}",
                        file.name, file.bytes, file.sha256
                    );
                }
                println!("package: {}", location.display());
                println!("manifest sha256: {}", built.manifest_sha256);
            }
            Ok(ExitCode::SUCCESS)
        }
        ExportCommand::Verify(args) => {
            let (key, trusted_from) = if let Some(file) = &args.public_key {
                (
                    Some(TrustedKey::ed25519_public_file(file)?),
                    Some(file.clone()),
                )
            } else if let Some(file) = &args.hmac_key_file {
                (Some(TrustedKey::hmac_file(file)?), Some(file.clone()))
            } else {
                let installation = config.data_dir.join(PUBLIC_KEY_FILE);
                if config.export.signing.as_deref() != Some("hmac") && installation.exists() {
                    (
                        Some(TrustedKey::ed25519_public_file(&installation)?),
                        Some(installation),
                    )
                } else {
                    (None, None)
                }
            };
            if !args.package.exists() {
                eprintln!("error: {}: no such package", args.package.display());
                return Ok(ExitCode::from(2));
            }
            let package = args.package.clone();
            let check =
                tokio::task::spawn_blocking(move || verify_package(&package, key)).await??;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&check)?);
            } else {
                if let Some(id) = &check.export_id {
                    println!("package {id}");
                }
                println!(
                    "signature: {} ({})",
                    if check.signature_valid {
                        "valid"
                    } else {
                        "NOT VALID"
                    },
                    check.key
                );
                if let Some(file) = trusted_from {
                    println!("key: {}", file.display());
                } else if check.signature_valid {
                    println!(
                        "note: checked with the key written in the manifest: this proves the package intact, not who made it; pass --public-key with the installation's export-signing.pub"
                    );
                }
                println!("files checked: {}", check.files_checked);
                for problem in &check.problems {
                    println!("DIFFERS: {problem}");
                }
                println!("{}", if check.ok() { "ok" } else { "FAILED" });
            }
            Ok(if check.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        ExportCommand::RunSchedule { name, json } => {
            if !config.export_schedules.iter().any(|s| s.name == name) {
                let names: Vec<&str> = config
                    .export_schedules
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                eprintln!(
                    "error: no export schedule named {name:?} (configured: {})",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                );
                return Ok(ExitCode::from(2));
            }
            let trail = CliAudit::open(config).await?;
            let (service, store) = service(config, &trail).await?;
            trail
                .record_ok(AuditAction::ExportCreate, json!({"schedule": name}))
                .await?;
            let result = service.run_schedule(&name).await;
            store.close().await;
            let outcome = result.map_err(|error| anyhow::anyhow!("schedule {name}: {error}"))?;
            let undelivered = outcome
                .deliveries
                .iter()
                .filter(|row| row.status != "delivered")
                .count();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "schedule": outcome.schedule,
                        "export_id": outcome.export_id,
                        "seq_after": outcome.seq_after,
                        "seq_upto": outcome.seq_upto,
                        "events": outcome.events,
                        "package": outcome.package_dir,
                        "deliveries": outcome.deliveries.iter().map(crate::export::service::delivery_json).collect::<Vec<_>>(),
                    }))?
                );
            } else {
                match outcome.export_id {
                    None => println!(
                        "schedule {}: nothing archived since its last run (seq {})",
                        outcome.schedule, outcome.seq_after
                    ),
                    Some(id) => {
                        println!(
                            "schedule {}: export {} of {} events (seqs {}..={})",
                            outcome.schedule,
                            job::export_name(id),
                            outcome.events,
                            outcome.seq_after + 1,
                            outcome.seq_upto
                        );
                        if let Some(dir) = &outcome.package_dir {
                            println!("package: {}", dir.display());
                        }
                        for row in &outcome.deliveries {
                            println!(
                                "delivery {}: {} after {} attempt(s){}",
                                row.target,
                                row.status,
                                row.attempts,
                                row.last_error
                                    .as_ref()
                                    .map(|e| format!(" (last error: {e})"))
                                    .unwrap_or_default()
                            );
                        }
                    }
                }
            }
            Ok(if undelivered > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        ExportCommand::List { limit, json } => {
            let trail = CliAudit::open(config).await?;
            let rows = trail
                .db()
                .list_exports(None, limit.clamp(1, 10_000))
                .await?;
            if json {
                for row in &rows {
                    println!("{}", crate::export::service::export_json(row, &[]));
                }
            } else {
                println!(
                    "{:<12} {:<20} {:<10} {:>10} {:<24} SCHEDULE",
                    "EXPORT", "CREATED", "STATUS", "EVENTS", "BY"
                );
                for row in &rows {
                    println!(
                        "{:<12} {:<20} {:<10} {:>10} {:<24} {}",
                        job::export_name(row.export_id),
                        time_ms(row.created_at_ms),
                        row.status,
                        row.exported_events,
                        row.requested_by,
                        row.schedule.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ExportCommand::Show { id, json } => {
            let export_id = match parse_id(&id) {
                Ok(id) => id,
                Err(error) => {
                    eprintln!("error: {error}");
                    return Ok(ExitCode::from(2));
                }
            };
            let trail = CliAudit::open(config).await?;
            let Some(row) = trail.db().get_export(export_id).await? else {
                eprintln!("error: no export {id}");
                return Ok(ExitCode::from(2));
            };
            let deliveries = trail.db().deliveries_of(export_id).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&crate::export::service::export_json(
                        &row,
                        &deliveries
                    ))?
                );
            } else {
                println!("export {}", job::export_name(row.export_id));
                println!("status: {}", row.status);
                println!("requested by: {}", row.requested_by);
                println!("created: {}", time_ms(row.created_at_ms));
                if let Some(at) = row.finished_at_ms {
                    println!("finished: {}", time_ms(at));
                }
                println!("events: {}", row.exported_events);
                println!("warnings: {}", row.warnings);
                if let Some(dir) = &row.package_dir {
                    println!("package: {dir}");
                }
                if let Some(sha) = &row.manifest_sha256 {
                    println!("manifest sha256: {sha}");
                }
                if let Some(error) = &row.error {
                    println!("error: {error}");
                }
                for delivery in &deliveries {
                    println!(
                        "delivery {}: {} after {} attempt(s){}",
                        delivery.target,
                        delivery.status,
                        delivery.attempts,
                        delivery
                            .last_error
                            .as_ref()
                            .map(|e| format!(" (last error: {e})"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn time_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Prints progress to standard error every two seconds while a build runs.
fn spawn_ticker(progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            eprintln!(
                "{}: {} of {} events",
                progress.stage(),
                progress.exported.load(Ordering::SeqCst),
                progress.total.load(Ordering::SeqCst)
            );
        }
    })
}
