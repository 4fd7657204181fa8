//! `holdfast retention`: the policies in force, a dry-run plan, a run, and
//! past runs with their certificates. Every command is audited.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use super::audit::CliAudit;
use crate::audit::AuditAction;
use crate::config::Config;
use crate::index::SearchIndex;
use crate::retention::policy::PolicySet;
use crate::retention::{RetentionError, RunOptions, Trigger};
use crate::store::{Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Load and check the policy files of retention.policy_dir; print the
    /// policies (exit 2 naming file, line and field when one is invalid).
    Policies {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Dry run: per policy, how many events in which channels and days a
    /// run would delete, and how many each legal hold keeps. Changes nothing.
    Plan {
        /// Plan as of this UTC day (YYYY-MM-DD) instead of today: a forecast.
        #[arg(long, value_name = "DAY")]
        as_of: Option<chrono::NaiveDate>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete, now, every event past its policy's keep_days that no legal
    /// hold protects (crypto-shredding), then reclaim the disk and write a
    /// certificate of destruction. Needs the writer lock: while `serve`
    /// runs, use POST /api/v1/retention/runs instead.
    Run {
        /// Do not reclaim disk space (compaction) after deleting.
        #[arg(long)]
        no_compact: bool,
        /// Print the certificate as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reclaim the disk of deleted records in every sealed segment (a run
    /// does this itself unless --no-compact or `compact = false`). Needs the
    /// writer lock.
    Compact {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Past runs, newest first.
    Runs {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The certificate of one run, as JSON.
    Show {
        /// The run id.
        run: i64,
    },
}

/// The store with the writer lock; `hint` says what to do while another
/// process (the server) holds it.
async fn open_writer(config: &Config, hint: &str) -> anyhow::Result<Store> {
    match Store::open_existing(&config.store_options()).await {
        Ok((store, _)) => Ok(store),
        Err(StoreError::Locked { data_dir, holder }) => {
            bail!("data directory {data_dir} is in use by {holder}; {hint}")
        }
        Err(error) => Err(error.into()),
    }
}

fn load_policies(config: &Config) -> anyhow::Result<PolicySet> {
    match &config.policy_dir {
        Some(dir) => Ok(PolicySet::load_dir(dir)?),
        None => Ok(PolicySet::empty()),
    }
}

pub async fn run(config: &Config, command: RetentionCommand) -> anyhow::Result<ExitCode> {
    match command {
        RetentionCommand::Policies { json } => {
            let policies = match load_policies(config) {
                Ok(policies) => policies,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "policy_dir": config.policy_dir,
                        "digest": policies.digest(),
                        "policies": policies.policies(),
                    }))?
                );
            } else if config.policy_dir.is_none() {
                println!("no retention.policy_dir configured: nothing is ever deleted");
            } else {
                println!(
                    "{:<28} {:<24} {:<26} {:>9} {:>9}",
                    "POLICY", "SCOPE", "KINDS", "KEEP", "FLOOR"
                );
                for policy in policies.policies() {
                    let scope = match (&policy.team, &policy.channel) {
                        (Some(team), Some(channel)) => format!("{team}/{channel}"),
                        (Some(team), None) => format!("{team}/*"),
                        _ => "*".to_owned(),
                    };
                    println!(
                        "{:<28} {:<24} {:<26} {:>9} {:>9}",
                        policy.name,
                        scope,
                        policy
                            .kinds
                            .as_ref()
                            .map_or("*".to_owned(), |k| k.join(",")),
                        policy
                            .keep_days
                            .map_or("forever".to_owned(), |days| format!("{days}d")),
                        format!("{}d", policy.min_keep_days)
                    );
                }
                println!("digest {}", policies.digest());
            }
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Plan { as_of, json } => {
            let policies = load_policies(config)?;
            let store = Store::open_read_only(&config.store_options()).await?;
            let index = SearchIndex::open_or_create(&config.data_dir.join("index"))?;
            let trail = CliAudit::open(config).await?;
            let as_of = as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let params = json!({"as_of": as_of.to_string(), "policies_digest": policies.digest()});
            let result = crate::retention::plan(&store, &index, &policies, as_of)
                .await
                .map_err(anyhow::Error::from);
            let plan = trail
                .audited(
                    AuditAction::RetentionPlan,
                    params,
                    result,
                    |plan, mut params| {
                        params["events_to_delete"] = json!(plan.events_to_delete);
                        params["events_kept_by_holds"] = json!(plan.events_kept_by_holds);
                        params
                    },
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print_plan(&plan);
            }
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Run { no_compact, json } => {
            let policies = load_policies(config)?;
            let store = open_writer(
                config,
                "while the server runs, start retention through it: POST /api/v1/retention/runs",
            )
            .await?;
            let index = SearchIndex::open_or_create(&config.data_dir.join("index"))?;
            let trail = CliAudit::open(config).await?;
            let mut options = RunOptions::today(trail.actor(), Trigger::Cli);
            options.compact = config.retention_compact && !no_compact;
            let result = crate::retention::run(&store, &index, &policies, &options).await;
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(error) => {
                    let action = match &error {
                        RetentionError::FloorLowered(_) => AuditAction::PolicyRefused,
                        _ => AuditAction::PolicyRun,
                    };
                    let error = trail
                        .record_failure(
                            action,
                            json!({"as_of": options.as_of.to_string(), "policies_digest": policies.digest()}),
                            error.into(),
                        )
                        .await;
                    store.close().await;
                    return Err(error);
                }
            };
            trail
                .record_ok(
                    AuditAction::PolicyRun,
                    crate::retention::service::run_params(&outcome),
                )
                .await?;
            store.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome.certificate)?);
            } else {
                let certificate = &outcome.certificate;
                println!(
                    "retention run {}: deleted {} events, destroyed {} key epochs, re-encrypted {} kept events",
                    outcome.run_id,
                    certificate.events_deleted,
                    certificate.epochs_destroyed.len(),
                    certificate.events_carried
                );
                for hold in &certificate.kept_by_holds {
                    println!(
                        "  hold {} ({}) kept {} events",
                        hold.name, hold.matter, hold.events
                    );
                }
                if let Some(compaction) = &certificate.compaction {
                    println!(
                        "  compaction: {} records in {} ranges, {} bytes of disk reclaimed",
                        compaction.records, compaction.ranges, compaction.bytes_reclaimed
                    );
                }
                println!("  {}", certificate.key_scrub);
                println!(
                    "certificate: {} (sha256 {})",
                    outcome.certificate_path.display(),
                    outcome.certificate_sha256
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Compact { json } => {
            let store = open_writer(config, "stop the server to compact").await?;
            let trail = CliAudit::open(config).await?;
            let run_id = trail
                .db()
                .retention_runs(1)
                .await?
                .first()
                .map_or(0, |run| run.run_id);
            let result = store
                .compact(run_id, None)
                .await
                .map_err(anyhow::Error::from);
            let report = trail
                .audited(
                    AuditAction::RetentionCompact,
                    json!({"run_id": run_id}),
                    result,
                    |report, mut params| {
                        params["records"] = json!(report.records);
                        params["bytes_reclaimed"] = json!(report.bytes_reclaimed);
                        params
                    },
                )
                .await;
            store.close().await;
            let report = report?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "compacted {} records in {} new ranges of {} segments (of {} sealed ones read); {} bytes of disk reclaimed{}",
                    report.records,
                    report.ranges,
                    report.segments_compacted,
                    report.segments_scanned,
                    report.bytes_reclaimed,
                    if report.holes_punched {
                        ""
                    } else {
                        " (this file system cannot punch holes: the bytes were zeroed instead)"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Runs { limit, json } => {
            let trail = CliAudit::open(config).await?;
            let runs = crate::retention::run::runs(trail.db(), limit.clamp(1, 10_000)).await?;
            trail
                .record_ok(AuditAction::RetentionView, json!({"runs": runs.len()}))
                .await?;
            if json {
                for run in &runs {
                    println!("{}", crate::retention::run::run_summary(run));
                }
            } else {
                println!(
                    "{:>6} {:<20} {:<10} {:<10} {:<8} BY",
                    "RUN", "STARTED", "AS OF", "STATUS", "TRIGGER"
                );
                for run in &runs {
                    println!(
                        "{:>6} {:<20} {:<10} {:<10} {:<8} {}",
                        run.run_id,
                        chrono::DateTime::from_timestamp_millis(run.started_at_ms)
                            .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_default(),
                        run.as_of,
                        run.status,
                        run.trigger,
                        run.started_by
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Show { run } => {
            let trail = CliAudit::open(config).await?;
            let found = trail
                .db()
                .retention_run(run)
                .await
                .context("cannot read the run")?;
            trail
                .record_ok(
                    AuditAction::RetentionView,
                    json!({"run_id": run, "found": found.is_some()}),
                )
                .await?;
            let Some(found) = found else {
                bail!("no retention run {run}");
            };
            match found.certificate {
                Some(certificate) => println!("{certificate}"),
                None => bail!(
                    "run {run} has no certificate: its status is {} (stage {})",
                    found.status,
                    found.stage
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_plan(plan: &crate::retention::Plan) {
    println!(
        "as of {}: {} events would be deleted from {} key epochs; {} due events kept by legal holds; {} kept events re-encrypted first",
        plan.as_of,
        plan.events_to_delete,
        plan.epochs_to_destroy,
        plan.events_kept_by_holds,
        plan.events_to_carry
    );
    for policy in &plan.by_policy {
        println!("policy {}: {} events", policy.policy, policy.events);
        for day in policy.by_channel_day.iter().take(50) {
            println!(
                "  {:<12} {}/{}: {}",
                day.day, day.team, day.channel, day.events
            );
        }
        if policy.by_channel_day.len() > 50 {
            println!(
                "  ... {} more channel-days (--json lists all)",
                policy.by_channel_day.len() - 50
            );
        }
    }
    for hold in &plan.kept_by_holds {
        println!(
            "hold {} ({}): keeps {} events",
            hold.name, hold.matter, hold.events
        );
    }
    for change in &plan.lowered_floors {
        println!(
            "floor lowered: {} kind {} from {} to {} days",
            change.scope_key, change.kind, change.old_days, change.new_days
        );
    }
    if plan.refused {
        println!("a run would be REFUSED: the policies lower a floor that still protects data");
    }
}
