//! `arctern import mbox` and `arctern export mbox`: moving mail between mbox files and an
//! account's Maildir (the next `sync` or `push` uploads what was imported, as any local mail).
//!
//! Import is idempotent by content: each stored file's name carries `mbox-<SHA-256 of the
//! message, 24 hex digits>-<n>` (n counts identical messages going to the same folder, so a
//! message that is twice in the mbox is stored twice), and a run skips every message whose
//! name is already in its folder. A rerun after a kill -9 therefore stores exactly what is
//! missing. Files are written to `tmp/`, made durable in batches (one `syncfs`), then renamed
//! into place, so a killed run leaves no half-written message where mail readers look.

use super::error::Error;
use crate::config::Layout;
use crate::model::{Flags, NearKey};
use crate::names::{FolderName, FolderPatterns};
use crate::store::maildir::{self, MaildirFolder, layout};
use crate::store::mbox::{self, MboxReader, Quoting};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Messages written to `tmp/` before one durability barrier and their renames.
const BATCH_MESSAGES: usize = 500;
/// Bytes written to `tmp/` before one durability barrier, whatever the count.
const BATCH_BYTES: usize = 32 << 20;

/// Where an account's mail lives on disk.
#[derive(Clone, Debug)]
pub struct LocalMail {
    /// The Maildir root.
    pub root: PathBuf,
    /// Its layout.
    pub layout: Layout,
}

/// What `import mbox` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Every message into this folder (else: Takeout labels, then the file's name).
    pub folder: Option<FolderName>,
    /// How the files quote `From ` lines.
    pub quoting: Quoting,
}

/// Counts of one folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderCounts {
    /// Messages stored by this run.
    pub stored: usize,
    /// Messages already there from an earlier run (skipped).
    pub already: usize,
}

/// What an import did.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// Messages read from the files.
    pub read: usize,
    /// Per folder.
    pub folders: BTreeMap<String, FolderCounts>,
    /// Messages Thunderbird had marked deleted (awaiting compaction): not imported.
    pub expunged: usize,
    /// Odd messages, stored as found, each named by file and line.
    pub problems: Vec<String>,
}

/// One folder being filled.
struct Sink {
    md: MaildirFolder,
    /// `mbox-…` name parts already in the folder.
    present: BTreeSet<String>,
    /// Identical messages seen so far in this run, by hash.
    seen: BTreeMap<String, u32>,
    /// Written to `tmp/`, waiting for the barrier.
    batch: Vec<(NearKey, Flags)>,
}

/// The `mbox-…` part of a Maildir key, if it has one.
fn import_tag(key: &str) -> Option<&str> {
    key.split('.').find(|p| p.starts_with("mbox-"))
}

/// Imports `sources` (`None`: standard input) into `local`. `progress` counts bytes read.
pub fn import(
    local: &LocalMail,
    sources: &[Option<PathBuf>],
    options: &ImportOptions,
    progress: &indicatif::ProgressBar,
) -> Result<ImportReport, Error> {
    let mut report = ImportReport::default();
    let mut sinks: BTreeMap<FolderName, Sink> = BTreeMap::new();
    let mut pending_bytes = 0usize;
    let mut done_before = 0u64;
    for source in sources {
        let (reader, shown, file_folder): (Box<dyn BufRead>, String, String) = match source {
            None => (
                Box::new(std::io::BufReader::with_capacity(
                    256 * 1024,
                    std::io::stdin().lock(),
                )),
                "standard input".to_string(),
                "INBOX".to_string(),
            ),
            Some(path) => {
                let file = std::fs::File::open(path).map_err(|e| Error::Io {
                    what: "cannot open",
                    path: path.clone(),
                    source: e,
                })?;
                (
                    Box::new(std::io::BufReader::with_capacity(256 * 1024, file)),
                    path.display().to_string(),
                    mbox::folder_of_file(path),
                )
            }
        };
        let mut messages = MboxReader::new(reader, options.quoting);
        while let Some(next) = messages.next() {
            let msg = next.map_err(|e| Error::Io {
                what: "cannot read",
                path: PathBuf::from(&shown),
                source: e,
            })?;
            report.read += 1;
            progress.set_position(done_before + messages.position());
            if let Some(p) = &msg.problem {
                report
                    .problems
                    .push(format!("{shown}, line {}: {p}; stored as found", msg.line));
            }
            let (mut flags, expunged) = mbox::status_flags(&msg.bytes);
            if expunged {
                report.expunged += 1;
                continue;
            }
            let names: Vec<String> = match (
                &options.folder,
                crate::message::header(&msg.bytes, "x-gmail-labels"),
            ) {
                (Some(f), _) => vec![f.to_string()],
                (None, Some(labels)) => {
                    let (folders, label_flags) = mbox::takeout_placement(&labels);
                    for f in label_flags.iter() {
                        flags.insert(f.clone());
                    }
                    folders
                }
                (None, None) => vec![file_folder.clone()],
            };
            let digest = sha2::Sha256::digest(&msg.bytes);
            let hash = crate::model::hex(digest.get(..12).unwrap_or(&digest));
            let mtime = from_line_time(&msg.from_line);
            for name in names {
                let folder = match FolderName::parse(&name) {
                    Ok(f) => f,
                    Err(e) => {
                        report.problems.push(format!(
                            "{shown}, line {}: folder {name:?} cannot be used ({e}); stored in INBOX",
                            msg.line
                        ));
                        FolderName::parse("INBOX").map_err(|e| Error::FolderName(e.to_string()))?
                    }
                };
                let sink = match sinks.entry(folder.clone()) {
                    std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(open_sink(local, &folder)?)
                    }
                };
                let n = sink.seen.entry(hash.clone()).or_insert(0);
                let tag = format!("mbox-{hash}-{n}");
                *n = n.saturating_add(1);
                let counts = report.folders.entry(folder.to_string()).or_default();
                if sink.present.contains(&tag) {
                    counts.already += 1;
                    continue;
                }
                let key = maildir::tagged_key(&tag);
                sink.md.write_tmp(&key, &msg.bytes, mtime)?;
                sink.present.insert(tag);
                sink.batch.push((key, flags.clone()));
                counts.stored += 1;
                pending_bytes += msg.bytes.len();
            }
            if pending_bytes >= BATCH_BYTES
                || sinks.values().map(|s| s.batch.len()).sum::<usize>() >= BATCH_MESSAGES
            {
                flush(local, &mut sinks)?;
                pending_bytes = 0;
            }
        }
        done_before += messages.position();
    }
    flush(local, &mut sinks)?;
    Ok(report)
}

/// Opens (or creates) a folder and lists the imported messages already in it.
fn open_sink(local: &LocalMail, folder: &FolderName) -> Result<Sink, Error> {
    let path = layout::folder_path(&local.root, local.layout, folder).map_err(Error::FolderName)?;
    let md = if layout::is_maildir(&path) {
        MaildirFolder::open(&path)?
    } else {
        let subfolder = local.layout.is_maildir_plus_plus() && !folder.is_inbox();
        MaildirFolder::create(&path, subfolder)?
    };
    let present = md
        .scan()?
        .keys()
        .filter_map(|k| import_tag(&k.0).map(str::to_string))
        .collect();
    Ok(Sink {
        md,
        present,
        seen: BTreeMap::new(),
        batch: Vec::new(),
    })
}

/// Makes every written `tmp/` file durable (one barrier), renames them into place and fsyncs
/// the directories.
fn flush(local: &LocalMail, sinks: &mut BTreeMap<FolderName, Sink>) -> Result<(), Error> {
    if sinks.values().all(|s| s.batch.is_empty()) {
        return Ok(());
    }
    maildir::durability::make_durable_now(&local.root).map_err(|e| Error::Io {
        what: "cannot flush the Maildir to disk",
        path: local.root.clone(),
        source: e,
    })?;
    for sink in sinks.values_mut() {
        for (key, flags) in std::mem::take(&mut sink.batch) {
            sink.md.publish(&key, &flags)?;
        }
        sink.md.sync_dirs()?;
    }
    Ok(())
}

/// The date of a `From ` line (`From sender Mon Jan  1 00:00:00 2024`, Takeout's
/// `… Sat Oct 07 10:31:49 +0000 2023` too), as the stored file's mtime.
fn from_line_time(from_line: &str) -> Option<std::time::SystemTime> {
    let words: Vec<&str> = from_line.split_whitespace().skip(2).collect();
    let text = words.join(" ");
    let utc = jiff::fmt::strtime::parse("%a %b %d %H:%M:%S %Y", &text)
        .and_then(|t| t.to_datetime())
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC));
    let parsed = utc
        .or_else(|_| {
            jiff::fmt::strtime::parse("%a %b %d %H:%M:%S %z %Y", &text).and_then(|t| t.to_zoned())
        })
        .ok()?;
    Some(std::time::SystemTime::from(parsed.timestamp()))
}

/// What an export wrote.
#[derive(Clone, Debug, Default)]
pub struct ExportReport {
    /// Messages written.
    pub messages: usize,
    /// Folders they came from.
    pub folders: usize,
    /// Messages that did not end in a newline (one was added in the mbox).
    pub newline_added: usize,
    /// SHA-256 of everything written.
    pub sha256: String,
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hash: sha2::Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the folders of `local` that `patterns` select (all when empty) to `out` as mboxrd,
/// folders in name order and messages in file-name order; `manifest` gets one line per
/// message (SHA-256 of the message as stored, folder, flags, file) and the SHA-256 of the
/// whole mbox.
pub fn export(
    local: &LocalMail,
    patterns: &[String],
    out: impl Write,
    mut manifest: Option<&mut dyn Write>,
    mbox_name: &str,
) -> Result<ExportReport, Error> {
    let selected = FolderPatterns::new(patterns);
    let (mut folders, problems) =
        layout::list_folders(&local.root, local.layout).map_err(|e| Error::Io {
            what: "cannot list the Maildir",
            path: local.root.clone(),
            source: e,
        })?;
    if let Some(p) = problems.first() {
        tracing::warn!("{p}");
    }
    folders.sort();
    let mut w = Hashing {
        inner: std::io::BufWriter::with_capacity(256 * 1024, out),
        hash: sha2::Sha256::new(),
    };
    let io = |e: std::io::Error| Error::Io {
        what: "cannot write the mbox",
        path: PathBuf::from(mbox_name),
        source: e,
    };
    let mut report = ExportReport::default();
    if let Some(m) = manifest.as_mut() {
        writeln!(
            m,
            "# arctern export mbox of {} (mboxrd). Per message: SHA-256 of the message as stored, folder, flags, Maildir file",
            local.root.display()
        )
        .map_err(io)?;
    }
    for folder in folders {
        if !patterns.is_empty() && !selected.selects(&folder) {
            continue;
        }
        let path =
            layout::folder_path(&local.root, local.layout, &folder).map_err(Error::FolderName)?;
        let md = MaildirFolder::open(&path)?;
        let scan = md.scan()?;
        report.folders += 1;
        for msg in scan.values() {
            let bytes = md.read(msg)?;
            let when = md
                .mtime(msg)
                .and_then(|t| jiff::Timestamp::try_from(t).ok())
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let from = mbox::from_line(&bytes, when);
            if mbox::write_message(&mut w, &from, &bytes).map_err(io)? {
                report.newline_added += 1;
            }
            report.messages += 1;
            if let Some(m) = manifest.as_mut() {
                writeln!(
                    m,
                    "{}\t{}\t{}\t{}",
                    crate::model::hex(&sha2::Sha256::digest(&bytes)),
                    folder,
                    msg.flags.to_imap_list(),
                    msg.file_name
                )
                .map_err(io)?;
            }
        }
    }
    w.flush().map_err(io)?;
    report.sha256 = crate::model::hex(&w.hash.clone().finalize());
    if let Some(m) = manifest.as_mut() {
        writeln!(m, "# SHA-256 of the mbox (sha256sum format):").map_err(io)?;
        writeln!(m, "{}  {mbox_name}", report.sha256).map_err(io)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_line_dates_of_both_styles() {
        assert!(from_line_time("From a@b Mon Jan  1 00:00:00 2024").is_some());
        assert!(from_line_time("From 1779@xxx Sat Oct 07 10:31:49 +0000 2023").is_some());
        assert!(from_line_time("From nobody").is_none());
        assert!(from_line_time("").is_none());
    }

    #[test]
    fn import_tags_are_found_in_keys() {
        assert_eq!(import_tag("1700000000.mbox-abc-0.host"), Some("mbox-abc-0"));
        assert_eq!(import_tag("1700000000.M1P2Q3.host"), None);
    }
}
