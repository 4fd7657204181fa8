//! `holdfast hold ...`: legal holds from the command line: create, list,
//! show (with what the hold holds now), release.
//!
//! The command line acts as an administrator: its scope is the whole
//! archive (`Scope::All`), and holds it creates are stored with that scope.
//! Every command is recorded in the audit trail (`hold_create`,
//! `hold_list`, `hold_view`, `hold_release`) before its answer is printed;
//! a refused change is recorded as failed. Mistakes in the flags exit 2
//! with a message naming the flag, before anything is opened.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use serde_json::json;

use super::audit::CliAudit;
use crate::audit::AuditAction;
use crate::config::Config;
use crate::retention::holds::{
    self, Hold, HoldCounts, HoldCriteria, HoldError, NewHold, StatusFilter,
};
use crate::search::{ChannelRef, Scope};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Put events on legal hold: no retention policy and no delete request
    /// may destroy them while the hold is active.
    ///
    /// Give at least one criterion. Criteria of different kinds all apply
    /// (--custodian alice --team legal: alice's events in team legal); the
    /// values of one repeated flag are alternatives (--custodian alice
    /// --custodian bob: either). An event is also held when another event
    /// of its post matches (a held message keeps its edits, delete,
    /// reactions and files). The hold covers events ingested later too.
    Create(CreateArgs),
    /// List holds: id, name, status, matter, creation, criteria. Active
    /// holds only, unless --all.
    List {
        /// Released holds too.
        #[arg(long)]
        all: bool,
        /// Print a JSON array of holds.
        #[arg(long)]
        json: bool,
    },
    /// Show one hold, with counts of the events it holds now (events,
    /// posts, custodians, channels).
    Show {
        /// The hold's name, or its id as `hold list` shows it.
        #[arg(value_name = "NAME_OR_ID")]
        hold: String,
        /// Print the hold as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Release a hold: its events are no longer protected by it. Nothing is
    /// deleted now; retention policies apply to them again from the next
    /// retention run. A released hold stays listed (--all).
    Release {
        /// The hold's name, or its id as `hold list` shows it.
        #[arg(value_name = "NAME_OR_ID")]
        hold: String,
        /// Why the hold ends (recorded with it and in the audit trail).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A unique name for the hold, e.g. acme-v-initech-2024 (up to 128
    /// characters, not only digits).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The case or matter reference the hold is for.
    #[arg(long, value_name = "MATTER")]
    pub matter: String,
    /// Why the hold is needed.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Hold the events of this user (the event's `user`, exactly); repeat
    /// for several.
    #[arg(long = "custodian", value_name = "USER")]
    pub custodians: Vec<String>,
    /// Hold the events of this team (exactly as events name it); repeat for
    /// several.
    #[arg(long = "team", value_name = "TEAM")]
    pub teams: Vec<String>,
    /// Hold the events of this channel, as TEAM/CHANNEL; repeat for several.
    #[arg(long = "channel", value_name = "TEAM/CHANNEL", value_parser = parse_channel)]
    pub channels: Vec<ChannelRef>,
    /// Hold events at or after this time: a day (2024-01-31, from midnight
    /// UTC) or RFC 3339 (2024-01-31T09:30:00Z).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Hold events at or before this time: a day (2024-03-31, through the
    /// end of that day, UTC) or RFC 3339.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Hold the events matching this search query (docs/search.md), e.g.
    /// '"project x" OR merger'. Dates in it are UTC; relative dates (today)
    /// are refused, so the hold keeps its meaning.
    #[arg(long, value_name = "QUERY")]
    pub query: Option<String>,
}

pub(super) fn parse_channel(text: &str) -> Result<ChannelRef, String> {
    match text.split_once('/') {
        Some((team, channel)) if !team.trim().is_empty() && !channel.trim().is_empty() => {
            Ok(ChannelRef::new(team, channel))
        }
        _ => Err(format!(
            "{text:?} is not of the form TEAM/CHANNEL, e.g. legal/general"
        )),
    }
}

/// The flag of a field the library names.
fn flag_of(field: &str) -> &'static str {
    match field {
        "name" => "--name",
        "matter" => "--matter",
        "custodians" => "--custodian",
        "teams" => "--team",
        "channels" => "--channel",
        "from" => "--from",
        "to" => "--to",
        "query" => "--query",
        _ => "--reason",
    }
}

/// A library error as the command line says it: naming the flag.
fn cli_error(error: HoldError) -> anyhow::Error {
    match error {
        HoldError::Invalid {
            field: "criteria", ..
        } => anyhow!(
            "give at least one criterion: --custodian, --team, --channel, --from, --to or --query"
        ),
        HoldError::Invalid { field, problem } => anyhow!("{}: {problem}", flag_of(field)),
        HoldError::BadQuery(error) => anyhow!("--query: {error}"),
        error @ HoldError::NameTaken(_) => anyhow!("--name: {error}"),
        other => anyhow::Error::from(other),
    }
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

pub async fn run(config: &Config, command: HoldCommand) -> anyhow::Result<ExitCode> {
    match command {
        HoldCommand::Create(args) => create(config, args).await,
        HoldCommand::List { all, json } => list(config, all, json).await,
        HoldCommand::Show { hold, json } => show(config, &hold, json).await,
        HoldCommand::Release { hold, reason } => release(config, &hold, &reason).await,
    }
}

async fn create(config: &Config, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let new = NewHold {
        name: args.name,
        matter: args.matter,
        reason: args.reason,
        criteria: HoldCriteria {
            custodians: args.custodians,
            teams: args.teams,
            channels: args.channels,
            from: args.from,
            to: args.to,
            query: args.query,
        },
    };
    // Mistakes in the flags are refused before anything is opened.
    if let Err(error) = holds::validate(&new, &Scope::All) {
        if let (HoldError::BadQuery(query_error), Some(query)) = (&error, &new.criteria.query) {
            eprintln!("{query}");
            eprintln!("{}^", " ".repeat(query_error.column.saturating_sub(1)));
        }
        return Err(cli_error(error));
    }
    let audit = CliAudit::open(config).await?;
    let params = json!({
        "name": new.name,
        "matter": new.matter,
        "criteria": new.criteria.to_string(),
    });
    let created = holds::create_hold(audit.db(), &Scope::All, audit.actor(), &new)
        .await
        .map_err(cli_error);
    let hold = audit
        .audited(
            AuditAction::HoldCreate,
            params,
            created,
            |hold, mut params| {
                params["hold_id"] = json!(hold.id);
                params
            },
        )
        .await?;
    audit.close().await;
    println!(
        "created hold {} ({}): {}; it protects matching events from now on",
        hold.id, hold.name, hold.criteria
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(config: &Config, all: bool, json: bool) -> anyhow::Result<ExitCode> {
    let status = if all {
        StatusFilter::All
    } else {
        StatusFilter::Active
    };
    let audit = CliAudit::open(config).await?;
    let found = holds::list_holds(audit.db(), &Scope::All, status).await?;
    audit
        .record_ok(
            AuditAction::HoldList,
            json!({"hold_status": status.as_str(), "holds": found.len()}),
        )
        .await?;
    audit.close().await;
    let mut stdout = std::io::stdout().lock();
    if json {
        let holds: Vec<_> = found
            .into_iter()
            .map(|hold| crate::api::holds::hold_response(hold, None))
            .collect();
        writeln!(stdout, "{}", serde_json::to_string_pretty(&holds)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if found.is_empty() {
        eprintln!("no {}holds", if all { "" } else { "active " });
        return Ok(ExitCode::SUCCESS);
    }
    let width = |f: fn(&Hold) -> usize, min: usize| found.iter().map(f).max().unwrap_or(0).max(min);
    let name_width = width(|hold| hold.name.chars().count(), 4);
    let matter_width = width(|hold| hold.matter.chars().count().min(40), 6);
    writeln!(
        stdout,
        "{:>4}  {:<name_width$}  {:<8}  {:<matter_width$}  {:<20}  criteria",
        "id", "name", "status", "matter", "created"
    )?;
    for hold in &found {
        let matter: String = hold.matter.chars().take(40).collect();
        writeln!(
            stdout,
            "{:>4}  {:<name_width$}  {:<8}  {:<matter_width$}  {:<20}  {}",
            hold.id,
            hold.name,
            hold.status().as_str(),
            matter.replace(['\n', '\r'], " "),
            format_ms(hold.created_at_ms),
            hold.criteria
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(config: &Config, name_or_id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&config.store_options()).await?;
    let index = super::search::open_current(&store, config).await?;
    let audit = CliAudit::open(config).await?;
    let hold = match holds::find_hold(audit.db(), &Scope::All, name_or_id).await {
        Ok(hold) => hold,
        Err(error) => {
            return Err(audit
                .record_failure(
                    AuditAction::HoldView,
                    json!({"hold": name_or_id}),
                    cli_error(error),
                )
                .await);
        }
    };
    let counts = holds::count_held(store.db(), &index, &hold)
        .await
        .context("cannot count the events the hold holds")?;
    audit
        .record_ok(
            AuditAction::HoldView,
            json!({"hold_id": hold.id, "name": hold.name, "held_events": counts.events}),
        )
        .await?;
    audit.close().await;
    store.close().await;
    let mut stdout = std::io::stdout().lock();
    if json {
        let response = crate::api::holds::hold_response(hold, Some(counts));
        writeln!(stdout, "{}", serde_json::to_string_pretty(&response)?)?;
    } else {
        print_hold(&mut stdout, &hold, &counts)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_hold(out: &mut impl Write, hold: &Hold, counts: &HoldCounts) -> std::io::Result<()> {
    writeln!(
        out,
        "hold {}: {} ({})",
        hold.id,
        hold.name,
        hold.status().as_str()
    )?;
    writeln!(out, "matter:    {}", hold.matter)?;
    writeln!(out, "reason:    {}", hold.reason)?;
    writeln!(out, "criteria:  {}", hold.criteria)?;
    writeln!(out, "scope:     {}", hold.scope)?;
    writeln!(
        out,
        "created:   {} by {}",
        format_ms(hold.created_at_ms),
        hold.created_by
    )?;
    if let Some(release) = &hold.released {
        writeln!(
            out,
            "released:  {} by {}: {}",
            format_ms(release.released_at_ms),
            release.released_by,
            release.reason
        )?;
    }
    writeln!(
        out,
        "held now:  {} events ({} matching, the rest through their posts), {} posts, {} custodians, {} channels",
        counts.events, counts.matching_events, counts.posts, counts.custodians, counts.channels
    )
}

async fn release(config: &Config, name_or_id: &str, reason: &str) -> anyhow::Result<ExitCode> {
    let audit = CliAudit::open(config).await?;
    let found = holds::find_hold(audit.db(), &Scope::All, name_or_id).await;
    let hold = match found {
        Ok(hold) => hold,
        Err(error) => {
            return Err(audit
                .record_failure(
                    AuditAction::HoldRelease,
                    json!({"hold": name_or_id, "reason": reason}),
                    cli_error(error),
                )
                .await);
        }
    };
    let params = json!({"hold_id": hold.id, "name": hold.name, "reason": reason});
    let released = holds::release_hold(audit.db(), &Scope::All, hold.id, audit.actor(), reason)
        .await
        .map_err(cli_error);
    let hold = audit
        .audited(AuditAction::HoldRelease, params, released, |_, params| {
            params
        })
        .await?;
    audit.close().await;
    println!(
        "released hold {} ({}); nothing was deleted: retention policies apply to its events again from the next run",
        hold.id, hold.name
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_flag() {
        let cases = [
            ("name", "--name"),
            ("custodians", "--custodian"),
            ("channels", "--channel"),
            ("from", "--from"),
            ("to", "--to"),
            ("reason", "--reason"),
        ];
        for (field, flag) in cases {
            let error = cli_error(HoldError::Invalid {
                field,
                problem: "is wrong".to_owned(),
            });
            assert_eq!(error.to_string(), format!("{flag}: is wrong"));
        }
        let error = cli_error(HoldError::Invalid {
            field: "criteria",
            problem: String::new(),
        });
        assert!(error.to_string().contains("--custodian"), "{error}");
        assert!(parse_channel("legal/general").is_ok());
        assert!(parse_channel("legal").is_err());
    }
}
