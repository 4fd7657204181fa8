//! `holdfast import slack|mattermost PATH`: the importers behind a progress
//! bar, with a report.
//!
//! A thin shell over `crate::import`: it opens the store, draws the progress
//! bar on stderr (only when stderr is a terminal), prints the summary, writes
//! the report and picks the exit code (0 everything imported, 1 something in
//! the export could not be imported, 2 the import could not run). It never
//! maps anything itself.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Config;
use crate::import::{self, Format, ImportOptions, ImportReport, Progress};
use crate::store::Store;

/// Problems printed on stderr; the report file has them all.
const PRINTED_PROBLEMS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// A Slack workspace export: the zip, or the folder it unpacks to.
    Slack,
    /// A Mattermost bulk export: the JSONL file, or a zip or folder holding it.
    Mattermost,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Which exporter wrote the files.
    #[arg(value_enum)]
    pub format: FormatArg,
    /// The export: a zip file or a folder (Slack, Mattermost), or a JSONL file (Mattermost).
    pub path: PathBuf,
    /// Write the full report (every problem with its file and line, counts
    /// per channel and kind) to this file, as JSON.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Read and map the export, store nothing: what an import would do.
    #[arg(long)]
    pub dry_run: bool,
    /// Slack: the workspace id to file events under (default: the team_id of users.json).
    #[arg(long, value_name = "ID")]
    pub team: Option<String>,
    /// Events per group commit.
    #[arg(long, default_value_t = import::DEFAULT_BATCH_EVENTS)]
    pub batch_events: usize,
}

pub async fn run(config: &Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let format = match args.format {
        FormatArg::Slack => Format::Slack,
        FormatArg::Mattermost => Format::Mattermost,
    };
    let options = ImportOptions {
        batch_events: args.batch_events.max(1),
        slack_team: args.team.clone(),
    };
    // Refuse a wrong export or an unwritable report path before opening the
    // archive or spending hours on the import.
    import::probe(format, &args.path)?;
    let report_file = match &args.report {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create the report file {}", path.display()))?,
        ),
        None => None,
    };
    let started = Instant::now();
    let result = if args.dry_run {
        let path = args.path.clone();
        let bar = progress_bar();
        let drawn = bar.clone();
        let result = tokio::task::spawn_blocking(move || {
            import::map_export(format, &path, &options, &mut |_events, progress| {
                draw(&drawn, progress, started);
            })
        })
        .await
        .context("the dry run failed")?;
        bar.finish_and_clear();
        result
    } else {
        let (store, _recovery) = Store::open(&config.store_options()).await?;
        // Created after the store opened, so that its log lines come first.
        let bar = progress_bar();
        let drawn = bar.clone();
        let mut on_progress = move |progress: &Progress| draw(&drawn, progress, started);
        let result = import::import(&store, format, &args.path, &options, &mut on_progress).await;
        bar.finish_and_clear();
        store.close().await;
        result
    };
    let report = match result {
        Ok(report) => report,
        Err(import::ImportError::Store(error)) => {
            return Err(anyhow::anyhow!(
                "the import stopped: {error}; every event stored before this is durable: run the same command again to finish (nothing is stored twice)"
            ));
        }
        Err(error) => return Err(error.into()),
    };
    // A dry run stores nothing and reads nothing of the archive (and must
    // not create a data directory): only real imports are recorded.
    if !report.dry_run {
        super::audit::CliAudit::open(config)
            .await?
            .record_ok(
                crate::audit::AuditAction::Ingest,
                serde_json::json!({
                    "import": report.format,
                    "source": report.source,
                    "dry_run": report.dry_run,
                    "accepted": report.totals.accepted,
                    "duplicates": report.totals.duplicates,
                }),
            )
            .await?;
    }
    if let (Some(file), Some(path)) = (report_file, &args.report) {
        write_report(file, &report)
            .with_context(|| format!("cannot write the report file {}", path.display()))?;
    }
    print_problems(&report, args.report.as_deref());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report, started.elapsed());
    }
    Ok(if report.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A bar of source bytes with events and their rate; hidden unless stderr
/// is a terminal (logs and pipes get no control characters).
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn draw(bar: &ProgressBar, progress: &Progress, started: Instant) {
    if bar.is_hidden() {
        return;
    }
    if bar.length() == Some(0) {
        // The first progress: from now on the bar redraws itself (rate, ETA).
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar.set_length(progress.bytes_total.max(progress.bytes_read));
    bar.set_position(progress.bytes_read);
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    bar.set_message(format!(
        "{} events ({} new, {} duplicates) {:.0} events/s",
        progress.events_mapped,
        progress.events_stored,
        progress.duplicates,
        progress.events_mapped as f64 / seconds
    ));
}

fn write_report(file: std::fs::File, report: &ImportReport) -> anyhow::Result<()> {
    let mut writer = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut writer, report)?;
    writer.write_all(b"\n")?;
    writer.into_inner()?.sync_all()?;
    Ok(())
}

fn print_problems(report: &ImportReport, report_path: Option<&Path>) {
    for problem in report.problems.iter().take(PRINTED_PROBLEMS) {
        eprintln!("{problem}");
    }
    let listed = report.problems.len().min(PRINTED_PROBLEMS) as u64;
    let more = report.errors + report.warnings - listed;
    if more > 0 {
        match report_path {
            Some(path) => eprintln!("... and {more} more problems in {}", path.display()),
            None => eprintln!("... and {more} more problems (--report FILE lists them)"),
        }
    }
}

fn print_summary(report: &ImportReport, elapsed: Duration) {
    let totals = &report.totals;
    let verb = if report.dry_run {
        "mapped (dry run, nothing stored)"
    } else {
        "imported"
    };
    println!(
        "{verb} {}: {} events from {} files ({:.1} MB) in {:.1} s",
        report.source,
        totals.mapped,
        report.files_read,
        report.bytes_read as f64 / 1e6,
        elapsed.as_secs_f64()
    );
    println!(
        "accepted {}, duplicates {}, rejected {}; {} errors, {} warnings",
        totals.accepted, totals.duplicates, totals.rejected, report.errors, report.warnings
    );
    for (kind, counts) in &report.by_kind {
        println!(
            "  {kind:<16} {:>10} mapped {:>10} accepted {:>10} duplicates {:>6} rejected",
            counts.mapped, counts.accepted, counts.duplicates, counts.rejected
        );
    }
    if !report.directory.is_empty() {
        let entries: Vec<String> = report
            .directory
            .iter()
            .map(|(what, n)| format!("{what} {n}"))
            .collect();
        println!("not events (counted): {}", entries.join(", "));
    }
    if !report.is_complete() {
        println!("INCOMPLETE: some of the export could not be imported (see the errors above)");
    }
}
