//! `holdfast search`: the search API's answers on the command line, as a
//! readable table or one JSON object per hit.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::config::Config;
use crate::event::format_at;
use crate::index::{self, SearchIndex, Sort};
use crate::search::{self, Hit, ParseOptions, Scope, SearchRequest, Versions};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The query, in holdfast's query language (see docs/search.md), e.g.
    /// '"wire transfer" NEAR(5) offshore from:allen-p after:2024-01-01'.
    pub query: String,
    /// Print one JSON object per hit (id, post, kind, team, channel, user,
    /// at, snippet, ...) and a last line with the total and the next cursor.
    #[arg(long)]
    pub json: bool,
    /// Order of the hits.
    #[arg(long, value_enum, default_value_t = SortArg::Newest)]
    pub sort: SortArg,
    /// Every matching version instead of the latest version of each post.
    #[arg(long)]
    pub all_versions: bool,
    /// Hits per page (1 to 500).
    #[arg(long, default_value_t = search::DEFAULT_PAGE)]
    pub limit: usize,
    /// Continue after this cursor (printed after the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Zone of dates written without one, e.g. +02:00 (default UTC).
    #[arg(long, value_name = "OFFSET")]
    pub tz: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortArg {
    Newest,
    Oldest,
    Relevance,
}

pub async fn run(config: &Config, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let zone = crate::api::search::parse_zone(args.tz.as_deref()).map_err(anyhow::Error::msg)?;
    let options = ParseOptions {
        default_zone: zone,
        now: Some(chrono::Utc::now()),
    };
    let query = match search::parse(&args.query, &options) {
        Ok(query) => query,
        Err(error) => {
            eprintln!("{}", args.query);
            eprintln!("{}^", " ".repeat(error.column.saturating_sub(1)));
            eprintln!("error: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let store = Store::open_read_only(&config.store_options()).await?;
    let index = open_current(&store, config).await?;
    let request = SearchRequest {
        query,
        versions: if args.all_versions {
            Versions::All
        } else {
            Versions::Latest
        },
        sort: match args.sort {
            SortArg::Newest => Sort::Newest,
            SortArg::Oldest => Sort::Oldest,
            SortArg::Relevance => Sort::Relevance,
        },
        cursor: args.cursor,
        limit: args.limit,
    };
    // The command line runs with the data directory's owner's rights: all.
    let trail = super::audit::CliAudit::open(config).await?;
    let page = search::search(&store, &index, &Scope::All, &request).await?;
    trail
        .record_ok(
            crate::audit::AuditAction::Search,
            serde_json::json!({"query": page.query, "total": page.total, "hits": page.hits.len()}),
        )
        .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for hit in page.hits {
            let line = serde_json::to_string(&crate::api::search::hit_response(hit))?;
            writeln!(out, "{line}")?;
        }
        writeln!(
            out,
            "{}",
            serde_json::json!({"total": page.total, "next_cursor": page.next_cursor, "query": page.query})
        )?;
    } else {
        print_table(&mut out, &page.hits)?;
        writeln!(
            out,
            "{} of {} hits for {}",
            page.hits.len(),
            page.total,
            page.query
        )?;
        if let Some(cursor) = page.next_cursor {
            writeln!(out, "next page: --cursor {cursor}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The index, brought up to date with the store when no server holds its
/// writer (when one does, the server keeps it current).
pub(super) async fn open_current(
    store: &Store,
    config: &Config,
) -> anyhow::Result<Arc<SearchIndex>> {
    let path = config.data_dir.join("index");
    let index = match SearchIndex::open_or_create(&path) {
        Ok(index) => index,
        Err(error @ index::IndexError::SchemaChanged { .. }) => return Err(error.into()),
        Err(error) => return Err(error).context("cannot open the search index"),
    };
    if let Err(error) = index::catch_up(store, &index, |_, _| {}).await {
        match error {
            index::IndexError::Tantivy {
                source: tantivy_error,
                ..
            } if tantivy_error.to_string().contains("lock") => {
                tracing::debug!("a server holds the index writer; searching its last commit");
            }
            other => return Err(other.into()),
        }
    }
    index.reload()?;
    Ok(Arc::new(index))
}

fn print_table(out: &mut impl Write, hits: &[Hit]) -> std::io::Result<()> {
    for hit in hits {
        let event = &hit.event;
        let mut flags = Vec::new();
        if hit.edited {
            flags.push("edited");
        }
        if hit.deleted {
            flags.push("deleted");
        }
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", flags.join(", "))
        };
        writeln!(
            out,
            "{}  {}/{}  {}  {}{}",
            format_at(event.at_us),
            event.team,
            event.channel,
            event.user,
            event.post.as_deref().unwrap_or(&event.id),
            flags
        )?;
        writeln!(out, "    {}", marked(&hit.snippet))?;
    }
    Ok(())
}

/// The snippet with its highlights between `[` and `]`, on one line.
fn marked(snippet: &search::Snippet) -> String {
    let mut out = String::new();
    let mut highlights = snippet.highlights.iter().peekable();
    for (char_idx, c) in snippet.text.chars().enumerate() {
        if highlights
            .peek()
            .is_some_and(|&&(start, _)| start == char_idx)
        {
            out.push('[');
        }
        out.push(if c == '\n' || c == '\r' { ' ' } else { c });
        if let Some(&&(_, end)) = highlights.peek()
            && end == char_idx + 1
        {
            out.push(']');
            highlights.next();
        }
    }
    out
}
