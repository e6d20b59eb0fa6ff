//! `arctern index`, `arctern search` and `arctern show`: the offline archive's front end.

use super::exit;
use crate::config::{AnyAccount, Config};
use crate::index::search::{Hit, SortOrder};
use crate::index::{MailIndex, UpdateReport};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// Updates the index for `accounts`, with a progress bar on a terminal when `show_progress`.
fn update_index(
    config: &Config,
    accounts: &[AnyAccount<'_>],
    show_progress: bool,
) -> Result<UpdateReport, String> {
    let bar = if show_progress && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("indexing {pos}/{len} {wide_bar} {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let report = crate::index::accounts::update(config, accounts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    report
}

/// `arctern index [--rebuild] [ACCOUNT...]`.
pub fn run_index(config: &Config, accounts: &[String], rebuild: bool) -> u8 {
    let selected = match config.select_accounts(accounts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    if rebuild && let Err(e) = MailIndex::destroy(&config.state_dir) {
        eprintln!("arctern: {e}");
        return exit::LOCAL;
    }
    let started = std::time::Instant::now();
    // A rebuild indexes every account, so the index never holds only some of them.
    let all = config.all_accounts();
    let which = if rebuild { &all } else { &selected };
    match update_index(config, which, true) {
        Ok(r) => {
            println!(
                "index: +{} ~{} -{} ({} folder(s) scanned) in {:.1}s",
                r.added,
                r.updated,
                r.removed,
                r.folders_scanned,
                started.elapsed().as_secs_f64()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("arctern: {e}");
            exit::LOCAL
        }
    }
}

/// `arctern search QUERY [--limit N] [--sort date|relevance] [--json]`.
pub fn run_search(config: &Config, query: &str, limit: usize, sort: SortOrder, json: bool) -> u8 {
    let parsed = match crate::search::query::parse(query, crate::clock::unix_now()) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("arctern: {e}");
            eprintln!("  {query}");
            eprintln!("  {}^", " ".repeat(e.position.saturating_sub(1)));
            return exit::CONFIG;
        }
    };
    let index = match MailIndex::open_for_search(&config.state_dir) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::LOCAL;
        }
    };
    let hits = match index.search(&parsed, limit, sort) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::LOCAL;
        }
    };
    if hits.is_empty() && index.doc_count().unwrap_or(0) == 0 {
        eprintln!(
            "arctern: the search index is empty: `arctern sync` fills it, `arctern index` builds it from the Maildirs"
        );
    }
    // One write for all the hits, not one per line (stdout is line-buffered): 50 hits cost
    // 100 write calls, a tenth of the whole search's time.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let color = std::io::stdout().is_terminal();
    for hit in &hits {
        let line = if json {
            serde_json::to_string(hit).unwrap_or_default()
        } else {
            human(hit, color)
        };
        if writeln!(out, "{line}").is_err() {
            break; // e.g. piped into head
        }
    }
    let _ = out.flush();
    exit::OK
}

fn human(hit: &Hit, color: bool) -> String {
    let date = hit.date.get(..10).unwrap_or(&hit.date);
    let from: String = hit.from.chars().take(28).collect();
    let mut line = format!(
        "{date}  {from:<28}  {}  [{}/{}]",
        if hit.subject.is_empty() {
            "(no subject)"
        } else {
            &hit.subject
        },
        hit.account,
        hit.folder
    );
    if !hit.snippet.is_empty() {
        let mut snippet = String::new();
        let mut at = 0;
        for r in &hit.highlights {
            if r.start < at || r.end > hit.snippet.len() {
                continue;
            }
            snippet.push_str(&hit.snippet[at..r.start]);
            if color {
                snippet.push_str("\x1b[1m");
                snippet.push_str(&hit.snippet[r.clone()]);
                snippet.push_str("\x1b[0m");
            } else {
                snippet.push_str(&hit.snippet[r.clone()]);
            }
            at = r.end;
        }
        snippet.push_str(&hit.snippet[at..]);
        let snippet = snippet.split_whitespace().collect::<Vec<_>>().join(" ");
        line.push_str(&format!("\n            {snippet}"));
    }
    line
}

/// `arctern show PATH|MESSAGE-ID [--raw]`.
pub fn run_show(config: &Config, what: &str, raw: bool) -> u8 {
    let path = if Path::new(what).is_file() {
        std::path::PathBuf::from(what)
    } else {
        let id = what.trim().trim_start_matches('<').trim_end_matches('>');
        let index = match MailIndex::open_for_search(&config.state_dir) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("arctern: {e}");
                return exit::LOCAL;
            }
        };
        match index.search(
            &crate::search::query::Query::Id(id.to_string()),
            1,
            SortOrder::Date,
        ) {
            Ok(h) if !h.is_empty() => std::path::PathBuf::from(&h[0].path),
            Ok(_) => {
                eprintln!(
                    "arctern: no file {what:?} and no message with that Message-ID in the index"
                );
                return exit::CONFIG;
            }
            Err(e) => {
                eprintln!("arctern: {e}");
                return exit::LOCAL;
            }
        }
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("arctern: cannot read {}: {e}", path.display());
            return exit::LOCAL;
        }
    };
    let mut out = std::io::stdout().lock();
    if raw {
        let _ = out.write_all(&bytes);
        return exit::OK;
    }
    let ex = crate::index::extract::extract(&bytes);
    let date = ex
        .date
        .and_then(|d| jiff::Timestamp::from_second(d).ok())
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut text = String::new();
    for (name, value) in [
        ("From", &ex.from),
        ("To", &ex.to),
        ("Cc", &ex.cc),
        ("Date", &date),
        ("Subject", &ex.subject),
        ("Message-ID", &ex.message_id),
    ] {
        if !value.is_empty() {
            text.push_str(&format!("{name}: {value}\n"));
        }
    }
    for a in &ex.attachments {
        text.push_str(&format!("Attachment: {a}\n"));
    }
    text.push('\n');
    text.push_str(&ex.body);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let _ = out.write_all(text.as_bytes());
    exit::OK
}
