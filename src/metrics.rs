//! The metrics file: every account's run history as counters and gauges in the text format that
//! node_exporter's textfile collector reads (Prometheus exposition format, which OpenMetrics
//! parsers accept too: `# HELP`/`# TYPE` lines, counters named `*_total` with their TYPE line
//! naming them in full so the Prometheus parser accepts it, no timestamps, a final `# EOF`).
//! Written to a temporary file and renamed, so a collector never reads half a file.

use crate::config::Config;
use crate::db::StateDb;
use crate::db::runs::RunHistory;
use std::fmt::Write as _;
use std::path::Path;

/// Renders the metrics text for `(account, kind, history)` rows.
pub fn render(accounts: &[(String, &'static str, RunHistory)]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let label = |a: &str, kind: &str| format!("account=\"{}\",kind=\"{kind}\"", escape(a));
    let per = |f: &dyn Fn(&RunHistory) -> Option<String>| -> Vec<(String, String)> {
        accounts
            .iter()
            .filter_map(|(a, k, h)| f(h).map(|v| (label(a, k), v)))
            .collect()
    };
    family(
        "arctern_runs_total",
        "counter",
        "Sync runs of the account.",
        per(&|h| Some(h.runs_total.to_string())),
    );
    family(
        "arctern_run_failures_total",
        "counter",
        "Sync runs that ended with an error.",
        per(&|h| Some(h.failures_total.to_string())),
    );
    let both = |down: &dyn Fn(&RunHistory) -> u64, up: &dyn Fn(&RunHistory) -> u64| {
        let mut rows = Vec::new();
        for (a, k, h) in accounts {
            rows.push((
                format!("{},direction=\"down\"", label(a, k)),
                down(h).to_string(),
            ));
            rows.push((
                format!("{},direction=\"up\"", label(a, k)),
                up(h).to_string(),
            ));
        }
        rows
    };
    family(
        "arctern_messages_synced_total",
        "counter",
        "Messages copied: down = into the Maildir, up = to the server.",
        both(&|h| h.messages_down_total, &|h| h.messages_up_total),
    );
    family(
        "arctern_bytes_synced_total",
        "counter",
        "Bytes copied: down = into the Maildir, up = to the server.",
        both(&|h| h.bytes_down_total, &|h| h.bytes_up_total),
    );
    family(
        "arctern_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last run without errors.",
        per(&|h| h.last_success.map(|t| t.to_string())),
    );
    family(
        "arctern_last_failure_timestamp_seconds",
        "gauge",
        "Unix time of the last run with an error.",
        per(&|h| h.last_failure.map(|t| t.to_string())),
    );
    family(
        "arctern_last_run_duration_seconds",
        "gauge",
        "Wall time of the last run.",
        per(&|h| {
            h.last_duration_ms
                .map(|ms| format!("{:.3}", ms as f64 / 1000.0))
        }),
    );
    out.push_str("# EOF\n");
    out
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the metrics file named by the config, if any, from every account's state database
/// (accounts that never ran are left out). `known` is an account whose history the caller has
/// at hand (the run that just finished): its database is not opened again.
pub fn write(config: &Config, known: Option<(&str, &RunHistory)>) -> Result<(), String> {
    let Some(path) = &config.metrics_file else {
        return Ok(());
    };
    let mut rows = Vec::new();
    for a in config.all_accounts() {
        let kind = match a {
            crate::config::AnyAccount::Imap(_) => "imap",
            crate::config::AnyAccount::Pop3(_) => "pop3",
        };
        let history = match known {
            Some((name, h)) if name == a.name() => h.clone(),
            _ => {
                let db_path = config.state_path(a.name());
                if !db_path.exists() {
                    continue;
                }
                StateDb::open(&db_path)
                    .and_then(|db| db.run_history())
                    .map_err(|e| e.to_string())?
            }
        };
        rows.push((a.name().to_string(), kind, history));
    }
    write_atomically(path, render(&rows).as_bytes())
        .map_err(|e| format!("cannot write metrics_file {}: {e}", path.display()))
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "metrics".into());
    // One temp file per writer: the daemon's account threads write the same metrics file, and
    // with one shared temp path a thread could rename another's half-written file into place.
    static WRITER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let writer = WRITER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{writer}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, data).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_never_publish_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arctern.prom");
        let writers: Vec<_> = (0..8u8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    // Each writer's file is one repeated byte, large enough to be written in pieces.
                    let data = vec![b'a' + t; 256 * 1024];
                    for _ in 0..50 {
                        write_atomically(&path, &data).expect("every write succeeds");
                        let seen = std::fs::read(&path).unwrap();
                        assert_eq!(seen.len(), data.len(), "a partial file was published");
                        assert!(
                            seen.iter().all(|b| *b == seen[0]),
                            "two writers' bytes mixed"
                        );
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "temp files left behind");
    }

    #[test]
    fn renders_counters_and_gauges_per_account() {
        let h = RunHistory {
            runs_total: 3,
            failures_total: 1,
            messages_down_total: 10,
            bytes_down_total: 1000,
            last_success: Some(1_700_000_000),
            last_duration_ms: Some(1500),
            ..Default::default()
        };
        let text = render(&[("work \"main\"".into(), "imap", h)]);
        assert!(text.contains("# TYPE arctern_runs_total counter\n"));
        assert!(
            text.contains("arctern_runs_total{account=\"work \\\"main\\\"\",kind=\"imap\"} 3\n")
        );
        assert!(text.contains(
            "arctern_messages_synced_total{account=\"work \\\"main\\\"\",kind=\"imap\",direction=\"down\"} 10\n"
        ));
        assert!(text.contains("arctern_last_success_timestamp_seconds{account=\"work \\\"main\\\"\",kind=\"imap\"} 1700000000\n"));
        assert!(text.contains(
            "arctern_last_run_duration_seconds{account=\"work \\\"main\\\"\",kind=\"imap\"} 1.500\n"
        ));
        // No failure yet: no sample for that gauge.
        assert!(!text.contains("arctern_last_failure_timestamp_seconds{"));
        assert!(text.ends_with("# EOF\n"));
    }
}
