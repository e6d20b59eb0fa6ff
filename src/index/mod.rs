//! The full-text index: derived state, rebuilt from the Maildirs at will, never a source of truth.
//!
//! Lives in `<state_dir>/index/`: a tantivy index of every message of every account, plus a
//! small SQLite catalog of which file (account, folder, Maildir key, file name) each document
//! came from. An update compares each folder's `new/` and `cur/` with the catalog: new keys are
//! added, vanished keys removed, renamed files (flag changes) re-indexed. Every add deletes the
//! document's id first, so an update interrupted anywhere is repaired by the next one. A folder
//! whose directory mtimes equal those recorded (and not recorded in the same second as the
//! change, which a coarse clock could hide) is not even listed.
// Nothing a server or a file holds may make it panic: no indexing that could (tests may).
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub mod accounts;
pub mod extract;
pub mod live;
pub mod search;
pub mod snippet;
pub mod stem;

use crate::model::Flags;
use crate::store::maildir::info;
use crate::store::maildir::keywords::KeywordTable;
use crate::sync::index_diff;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index, IndexWriter, TantivyDocument, Term};

/// Bumped when the schema or the tokenizer changes: an index of another version is rebuilt.
const SCHEMA_VERSION: i64 = 3;
/// Updates that add at least this many messages end with the index merged into one segment.
const MERGE_INTO_ONE_AFTER: usize = 1000;
/// Updates adding fewer messages than this use a small writer ([`SMALL_WRITER_HEAP`]).
const SMALL_UPDATE: usize = 1000;
/// The memory budget of a small update's writer: tantivy's minimum for one thread is 15 MB.
const SMALL_WRITER_HEAP: usize = 15_000_000;
/// A big update commits after each this many messages (see `MailIndex::update`).
const COMMIT_EVERY: usize = 2000;
/// A file in the index directory holding [`SCHEMA_VERSION`] (see [`MailIndex::open_for_search`]).
const SCHEMA_MARKER: &str = "schema-version";

/// The tokenizer of every text field: words, lower case, accents folded, English stems.
pub const TOKENIZER: &str = "arctern_mail";

/// Why the index could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// tantivy failed.
    #[error("search index {path}: {message}")]
    Tantivy {
        /// The index directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The catalog failed.
    #[error("search index catalog {path}: {source}")]
    Catalog {
        /// The catalog file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Reading the Maildir failed.
    #[error("{0}")]
    Io(String),
}

/// The schema's fields.
#[derive(Clone, Copy, Debug)]
pub struct Fields {
    /// account \0 folder \0 Maildir key: one document per message file.
    pub id: Field,
    /// Account name.
    pub account: Field,
    /// Canonical folder name.
    pub folder: Field,
    /// Absolute path of the file when indexed.
    pub path: Field,
    /// Message-ID without brackets.
    pub message_id: Field,
    /// Subject.
    pub subject: Field,
    /// From.
    pub from: Field,
    /// To.
    pub to: Field,
    /// Cc.
    pub cc: Field,
    /// Body text (indexed, not stored).
    pub body: Field,
    /// The start of the body text, stored for snippets.
    pub preview: Field,
    /// Attachment file names.
    pub attachment: Field,
    /// 1 when the message has attachments.
    pub has_attachment: Field,
    /// seen, flagged, answered, draft, deleted, forwarded (multi-valued).
    pub flag: Field,
    /// Keywords, lower case (multi-valued).
    pub tag: Field,
    /// Date header (else the file's mtime).
    pub date: Field,
    /// Size of the file in bytes.
    pub size: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        account: b.add_text_field("account", STRING | STORED),
        folder: b.add_text_field("folder", STRING | STORED),
        path: b.add_text_field("path", STORED),
        message_id: b.add_text_field("message_id", STRING | STORED),
        subject: b.add_text_field("subject", text.clone()),
        from: b.add_text_field("from", text.clone()),
        to: b.add_text_field("to", text.clone()),
        cc: b.add_text_field("cc", text.clone()),
        body: b.add_text_field(
            "body",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(TOKENIZER)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            ),
        ),
        preview: b.add_text_field("preview", STORED),
        attachment: b.add_text_field("attachment", text),
        has_attachment: b.add_u64_field("has_attachment", INDEXED),
        flag: b.add_text_field("flag", STRING | STORED),
        tag: b.add_text_field("tag", STRING | STORED),
        date: b.add_date_field("date", INDEXED | STORED | FAST),
        size: b.add_u64_field("size", INDEXED | STORED | FAST),
    };
    (b.build(), fields)
}

/// The index's settings: each segment keeps its documents sorted by date, newest first (tantivy
/// sorts a segment when it is written and keeps the order when merging), so a search for the
/// newest matches can stop after the first few of each segment (see `MailIndex::newest`).
fn index_settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        sort_by_field: Some(tantivy::IndexSortByField {
            field: "date".to_string(),
            order: tantivy::Order::Desc,
        }),
        ..Default::default()
    }
}

/// Whether `index` keeps its segments sorted newest first (made with [`index_settings`]).
fn sorted_newest_first(index: &Index) -> bool {
    index.settings().sort_by_field == index_settings().sort_by_field
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(48))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(stem::MemoStemmer)
        .build()
}

/// The open index.
pub struct MailIndex {
    index: Index,
    /// The schema's fields.
    pub fields: Fields,
    dir: PathBuf,
    catalog: Connection,
    writable: bool,
}

/// What an update did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpdateReport {
    /// Documents added (new messages).
    pub added: usize,
    /// Documents re-indexed (renamed files: flags changed).
    pub updated: usize,
    /// Documents removed (messages gone).
    pub removed: usize,
    /// Folders listed (the others were provably unchanged).
    pub folders_scanned: usize,
}

/// One Maildir folder to index.
#[derive(Clone, Debug)]
pub struct FolderSource {
    /// Account name.
    pub account: String,
    /// Canonical folder name.
    pub folder: String,
    /// The folder's directory (holding cur/ new/ tmp/).
    pub path: PathBuf,
}

impl MailIndex {
    /// The index directory under a state dir.
    pub fn dir_in(state_dir: &Path) -> PathBuf {
        state_dir.join("index")
    }

    /// Opens the index, creating it (or recreating it, when it was built with another schema
    /// version or is unreadable: it is derived state) as needed.
    pub fn open(state_dir: &Path) -> Result<MailIndex, IndexError> {
        let dir = Self::dir_in(state_dir);
        match Self::open_dir(&dir) {
            Ok(i) => Ok(i),
            Err(e) => {
                tracing::warn!("{e}; rebuilding the search index");
                Self::destroy(state_dir)?;
                Self::open_dir(&dir)
            }
        }
    }

    /// Removes the index (for `arctern index --rebuild`).
    pub fn destroy(state_dir: &Path) -> Result<(), IndexError> {
        let dir = Self::dir_in(state_dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IndexError::Io(format!(
                "cannot remove {}: {e}",
                dir.display()
            ))),
        }
    }

    fn open_dir(dir: &Path) -> Result<MailIndex, IndexError> {
        let t = |e: tantivy::TantivyError| IndexError::Tantivy {
            path: dir.to_path_buf(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir.join("tantivy"))
            .map_err(|e| IndexError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let catalog_path = dir.join("catalog.sqlite3");
        let c = |source| IndexError::Catalog {
            path: catalog_path.clone(),
            source,
        };
        let catalog = Connection::open(&catalog_path).map_err(c)?;
        catalog
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS docs (
                    id TEXT PRIMARY KEY, account TEXT NOT NULL, folder TEXT NOT NULL,
                    file_name TEXT NOT NULL);
                 CREATE INDEX IF NOT EXISTS docs_folder ON docs (account, folder);
                 CREATE TABLE IF NOT EXISTS folders (
                    account TEXT NOT NULL, folder TEXT NOT NULL,
                    cur_mtime INTEGER, new_mtime INTEGER, PRIMARY KEY (account, folder));
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER);",
            )
            .map_err(c)?;
        let version: Option<i64> = catalog
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .ok();
        let (schema, fields) = schema();
        let tdir = tantivy::directory::MmapDirectory::open(dir.join("tantivy")).map_err(|e| {
            IndexError::Tantivy {
                path: dir.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        let index = match version {
            Some(SCHEMA_VERSION) => Index::open(tdir).map_err(t)?,
            Some(other) => {
                return Err(IndexError::Tantivy {
                    path: dir.to_path_buf(),
                    message: format!("built by another version (schema {other})"),
                });
            }
            None => {
                let index = Index::create(tdir, schema, index_settings()).map_err(t)?;
                catalog
                    .execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?1)",
                        [SCHEMA_VERSION],
                    )
                    .map_err(c)?;
                index
            }
        };
        index.tokenizers().register(TOKENIZER, analyzer());
        // The schema version also as a plain file, so a search can check it without SQLite.
        let marker = dir.join(SCHEMA_MARKER);
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(&SCHEMA_VERSION.to_string()) {
            std::fs::write(&marker, SCHEMA_VERSION.to_string())
                .map_err(|e| IndexError::Io(format!("cannot write {}: {e}", marker.display())))?;
        }
        Ok(MailIndex {
            index,
            fields,
            dir: dir.to_path_buf(),
            catalog,
            writable: true,
        })
    }

    /// Opens the index for searching only: no writes, no schema setup (a search is a few
    /// milliseconds, and this is most of them). Falls back to [`MailIndex::open`] when the index
    /// does not exist yet or was built by another version.
    pub fn open_for_search(state_dir: &Path) -> Result<MailIndex, IndexError> {
        let dir = Self::dir_in(state_dir);
        // The version marker instead of the catalog: opening SQLite (and its WAL files) was a
        // tenth of a search's time, and a search never needs the catalog.
        let current = std::fs::read_to_string(dir.join(SCHEMA_MARKER))
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            == Some(SCHEMA_VERSION);
        if !current {
            return Self::open(state_dir);
        }
        let catalog = Connection::open_in_memory().map_err(|source| IndexError::Catalog {
            path: dir.join("catalog.sqlite3"),
            source,
        })?;
        let tdir = tantivy::directory::MmapDirectory::open(dir.join("tantivy")).map_err(|e| {
            IndexError::Tantivy {
                path: dir.clone(),
                message: e.to_string(),
            }
        })?;
        let index = Index::open(tdir).map_err(|e| IndexError::Tantivy {
            path: dir.clone(),
            message: e.to_string(),
        })?;
        index.tokenizers().register(TOKENIZER, analyzer());
        Ok(MailIndex {
            index,
            fields: schema().1,
            dir,
            catalog,
            writable: false,
        })
    }

    fn terr(&self, e: impl std::fmt::Display) -> IndexError {
        IndexError::Tantivy {
            path: self.dir.clone(),
            message: e.to_string(),
        }
    }

    fn cerr(&self, source: rusqlite::Error) -> IndexError {
        IndexError::Catalog {
            path: self.dir.join("catalog.sqlite3"),
            source,
        }
    }

    /// Brings the index up to date with `sources`; folders of `accounts` not in `sources` are
    /// dropped from it (a folder deleted, an account removed from the config). `progress` is
    /// called with (done, total) messages to index.
    pub fn update(
        &mut self,
        accounts: &[String],
        sources: &[FolderSource],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<UpdateReport, IndexError> {
        if !self.writable {
            return Err(IndexError::Io(format!(
                "{}: opened for searching only",
                self.dir.display()
            )));
        }
        let mut report = UpdateReport::default();
        let f = self.fields;

        // Folders that no longer exist: drop their documents.
        let known: Vec<(String, String)> = {
            let mut st = self
                .catalog
                .prepare("SELECT DISTINCT account, folder FROM docs")
                .map_err(|e| self.cerr(e))?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.cerr(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.cerr(e))?
        };
        let source_names: Vec<(String, String)> = sources
            .iter()
            .map(|s| (s.account.clone(), s.folder.clone()))
            .collect();
        let gone_folders = index_diff::gone_folders(&known, accounts, &source_names);

        // Per folder: what to add, re-index and remove.
        let mut to_add: Vec<(FolderSource, String, String)> = Vec::new(); // source, key, file name
        let mut to_remove: Vec<String> = Vec::new();
        let mut mtimes: Vec<(FolderSource, Option<(i64, i64)>)> = Vec::new();
        for src in sources {
            let before = crate::store::maildir::dir_mtimes(&src.path);
            // Read before the listing (see `settled_mtimes`).
            let now_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            let stored: Option<(Option<i64>, Option<i64>)> = self
                .catalog
                .query_row(
                    "SELECT cur_mtime, new_mtime FROM folders WHERE account = ?1 AND folder = ?2",
                    params![src.account, src.folder],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .ok();
            if let (Some((c, n)), Some((sc, sn))) = (before, stored)
                && Some(c) == sc
                && Some(n) == sn
            {
                continue;
            }
            report.folders_scanned += 1;
            let on_disk = list_folder(&src.path)?;
            let indexed: HashMap<String, (String, String)> = {
                let mut st = self
                    .catalog
                    .prepare_cached(
                        "SELECT id, file_name FROM docs WHERE account = ?1 AND folder = ?2",
                    )
                    .map_err(|e| self.cerr(e))?;
                let rows = st
                    .query_map(params![src.account, src.folder], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(|e| self.cerr(e))?;
                let mut m = HashMap::new();
                for row in rows {
                    let (id, name) = row.map_err(|e| self.cerr(e))?;
                    let key = id.rsplit('\0').next().unwrap_or_default().to_string();
                    m.insert(key, (id, name));
                }
                m
            };
            let diff = index_diff::folder_diff(&on_disk, &indexed);
            report.added += diff.add.len();
            report.updated += diff.reindex.len();
            report.removed += diff.remove.len();
            for (key, name) in diff.add.into_iter().chain(diff.reindex) {
                to_add.push((src.clone(), key, name));
            }
            to_remove.extend(diff.remove);
            let settled = index_diff::settled_mtimes(before, now_ns);
            mtimes.push((src.clone(), settled));
        }

        let phase = std::time::Instant::now();
        tracing::debug!(
            folders = report.folders_scanned,
            add = to_add.len(),
            remove = to_remove.len(),
            "index update: folders listed"
        );
        if to_add.is_empty() && to_remove.is_empty() && gone_folders.is_empty() {
            // Nothing to write (a quiet resync, or a pull indexed while it downloaded): no
            // writer, no commit, only the folders' mtimes.
            self.record_folder_mtimes(&mtimes)?;
            return Ok(report);
        }
        // A small update (a resync's flag changes) gets a small writer: one indexing thread and
        // tantivy's smallest memory budget, instead of a 64 MB arena allocated for a few
        // documents.
        let mut writer: IndexWriter = if to_add.len() < SMALL_UPDATE {
            self.index
                .writer_with_num_threads(1, SMALL_WRITER_HEAP)
                .map_err(|e| self.terr(e))?
        } else {
            self.index
                .writer(64 * 1024 * 1024)
                .map_err(|e| self.terr(e))?
        };
        // A big update ends merged into one segment, decided below after the commit, on a stable
        // set of segments: tantivy's background merge policy would race with that (a segment it
        // merged away cannot be merged again: found at 100,000 messages). A small update (a
        // resync's few changes) leaves merging to tantivy's log merge policy, which merges
        // segments of a like size once there are several: the cost of a merge stays in
        // proportion to what is merged, never the whole index on every resync (merging all but
        // the biggest segment took 110 ms of a 370 ms resync at 10,000 messages).
        let big_update = to_add.len() >= MERGE_INTO_ONE_AFTER;
        if big_update {
            writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        } else {
            writer.set_merge_policy(tiered_merge_policy());
        }
        for id in &to_remove {
            writer.delete_term(Term::from_field_text(f.id, id));
        }
        for (account, folder) in &gone_folders {
            let mut st = self
                .catalog
                .prepare("SELECT id FROM docs WHERE account = ?1 AND folder = ?2")
                .map_err(|e| self.cerr(e))?;
            let ids: Vec<String> = st
                .query_map(params![account, folder], |r| r.get(0))
                .map_err(|e| self.cerr(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.cerr(e))?;
            report.removed += ids.len();
            for id in ids {
                writer.delete_term(Term::from_field_text(f.id, &id));
            }
        }

        // Parse on all cores; tantivy indexes on its own threads.
        let keyword_tables: HashMap<&Path, KeywordTable> = to_add
            .iter()
            .map(|(src, _, _)| src.path.as_path())
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .map(|p| (p, KeywordTable::load(p).unwrap_or_default()))
            .collect();
        let keyword_tables = &keyword_tables;
        let total = to_add.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let failure: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        // A commit every COMMIT_EVERY messages bounds what waits in tantivy's queue: it holds up
        // to 10,000 parsed documents, and with whole message texts in them that was most of the
        // ~450 MB peak of indexing 10,000 mails from a warm cache. The merge below makes the
        // extra segments one again.
        let chunks: Vec<&[(FolderSource, String, String)]> = to_add.chunks(COMMIT_EVERY).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let writer_ref = &writer;
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((src, key, name)) = chunk.get(i) else {
                                break;
                            };
                            let id = doc_id(&src.account, &src.folder, key);
                            writer_ref.delete_term(Term::from_field_text(f.id, &id));
                            let keywords = &keyword_tables[src.path.as_path()];
                            match build_doc(&f, src, &id, name, keywords) {
                                Ok(Some(doc)) => {
                                    if let Err(e) = writer_ref.add_document(doc) {
                                        *failure.lock().expect("not poisoned") =
                                            Some(e.to_string());
                                        break;
                                    }
                                }
                                Ok(None) => {} // vanished meanwhile: the next update removes it
                                Err(e) => tracing::warn!("{e}"),
                            }
                            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            if n.is_multiple_of(200) || n == total {
                                progress(n, total);
                            }
                        }
                    });
                }
            });
            if let Some(e) = failure.lock().expect("not poisoned").take() {
                return Err(self.terr(e));
            }
            if n + 1 < chunks.len() {
                writer.commit().map_err(|e| self.terr(e))?;
            }
        }
        writer.commit().map_err(|e| self.terr(e))?;
        tracing::debug!(
            ms = phase.elapsed().as_millis() as u64,
            "index update: committed"
        );
        // After a big update (a first index, a rebuild, a large pull) the index is left in one
        // segment: a search then opens a handful of files instead of dozens and walks one
        // posting list per term.
        let mut merged = 0;
        if big_update {
            let metas = self
                .index
                .searchable_segment_metas()
                .map_err(|e| self.terr(e))?;
            let merge: Vec<tantivy::index::SegmentId> = metas.iter().map(|m| m.id()).collect();
            // Segment metas held here keep their files alive for tantivy's garbage collection.
            drop(metas);
            merged = merge.len();
            if merge.len() > 1 {
                match writer.merge(&merge).wait() {
                    // The update is committed; an unmerged index is only a little slower to search.
                    Err(e) => tracing::warn!("search index: segments not merged: {e}"),
                    // The merged-away segments' files (after a rebuild, as big as the index
                    // itself) go now rather than when the next update opens a writer.
                    Ok(_) => {
                        if let Err(e) = writer.garbage_collect_files().wait() {
                            tracing::warn!("search index: old segment files not removed: {e}");
                        }
                    }
                }
            }
        }
        // A small update's background merges, if its commit started any, finish here.
        writer.wait_merging_threads().map_err(|e| self.terr(e))?;
        tracing::debug!(
            ms = phase.elapsed().as_millis() as u64,
            merged,
            "index update: merged"
        );

        // The catalog follows the committed index.
        let tx = self
            .catalog
            .transaction()
            .map_err(|e| IndexError::Catalog {
                path: self.dir.join("catalog.sqlite3"),
                source: e,
            })?;
        {
            let cerr = |source| IndexError::Catalog {
                path: self.dir.join("catalog.sqlite3"),
                source,
            };
            let mut del = tx.prepare("DELETE FROM docs WHERE id = ?1").map_err(cerr)?;
            for id in &to_remove {
                del.execute([id]).map_err(cerr)?;
            }
            for (account, folder) in &gone_folders {
                tx.execute(
                    "DELETE FROM docs WHERE account = ?1 AND folder = ?2",
                    params![account, folder],
                )
                .map_err(cerr)?;
                tx.execute(
                    "DELETE FROM folders WHERE account = ?1 AND folder = ?2",
                    params![account, folder],
                )
                .map_err(cerr)?;
            }
            put_docs(
                &tx,
                to_add
                    .iter()
                    .map(|(src, key, name)| (src, key.as_str(), name.as_str())),
            )
            .map_err(cerr)?;
            put_folder_mtimes(&tx, &mtimes).map_err(cerr)?;
        }
        tx.commit().map_err(|e| self.cerr(e))?;
        tracing::debug!(
            ms = phase.elapsed().as_millis() as u64,
            "index update: catalog written"
        );
        Ok(report)
    }

    /// Records the folders' mtimes as listed (`None`: list again next time).
    fn record_folder_mtimes(
        &mut self,
        mtimes: &[(FolderSource, Option<(i64, i64)>)],
    ) -> Result<(), IndexError> {
        if mtimes.is_empty() {
            return Ok(());
        }
        self.in_catalog(|tx| put_folder_mtimes(tx, mtimes))
    }

    /// Runs `work` in one catalog transaction, committed when it succeeds.
    fn in_catalog(
        &mut self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), IndexError> {
        let path = self.dir.join("catalog.sqlite3");
        let cerr = |source| IndexError::Catalog {
            path: path.clone(),
            source,
        };
        let tx = self.catalog.transaction().map_err(cerr)?;
        work(&tx).map_err(cerr)?;
        tx.commit().map_err(cerr)
    }

    /// Number of documents.
    pub fn doc_count(&self) -> Result<u64, IndexError> {
        let reader = self
            .index
            .reader_builder()
            .reload_policy(tantivy::ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| self.terr(e))?;
        Ok(reader.searcher().num_docs())
    }
}

/// tantivy's log merge policy with layers from [`MIN_MERGE_LAYER`] documents up: segments
/// merge with others of a like size (a resync's segments of a few hundred documents with each
/// other, never with the pull's big ones). With tantivy's default lowest layer (10,000
/// documents) every segment of a 10,000-message index was one layer, and the eighth resync's
/// commit merged the whole index (350 ms).
pub(crate) fn tiered_merge_policy() -> Box<dyn tantivy::indexer::MergePolicy> {
    let mut policy = tantivy::indexer::LogMergePolicy::default();
    policy.set_min_layer_size(MIN_MERGE_LAYER);
    Box::new(policy)
}

/// The lowest merge layer's size, in documents.
const MIN_MERGE_LAYER: u32 = 200;

/// Records indexed documents (source, Maildir key, `cur/…` or `new/…` file name) in the
/// catalog.
fn put_docs<'a>(
    tx: &rusqlite::Transaction<'_>,
    docs: impl IntoIterator<Item = (&'a FolderSource, &'a str, &'a str)>,
) -> rusqlite::Result<()> {
    let mut put = tx.prepare_cached(
        "INSERT INTO docs (id, account, folder, file_name) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(id) DO UPDATE SET file_name = excluded.file_name",
    )?;
    for (src, key, name) in docs {
        put.execute(params![
            doc_id(&src.account, &src.folder, key),
            src.account,
            src.folder,
            name
        ])?;
    }
    Ok(())
}

/// Writes folders' listed mtimes into the catalog.
fn put_folder_mtimes(
    tx: &rusqlite::Transaction<'_>,
    mtimes: &[(FolderSource, Option<(i64, i64)>)],
) -> rusqlite::Result<()> {
    let mut fold = tx.prepare_cached(
        "INSERT INTO folders (account, folder, cur_mtime, new_mtime) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(account, folder) DO UPDATE SET cur_mtime = excluded.cur_mtime,
           new_mtime = excluded.new_mtime",
    )?;
    for (src, m) in mtimes {
        fold.execute(params![
            src.account,
            src.folder,
            m.map(|m| m.0),
            m.map(|m| m.1)
        ])?;
    }
    Ok(())
}

/// Stored for snippets: the first [`PREVIEW_CHARS`] characters of the body. (Storing whole
/// bodies would make every hit cost a large decompression, and the index as big as the mail.)
fn preview(body: &str) -> &str {
    match body.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => &body[..cut],
        None => body,
    }
}

/// Body characters stored per message for snippets.
pub const PREVIEW_CHARS: usize = 1000;

/// The document id of a message file.
pub fn doc_id(account: &str, folder: &str, key: &str) -> String {
    format!("{account}\0{folder}\0{key}")
}

/// `key → file name` for every message file in `new/` and `cur/`.
fn list_folder(path: &Path) -> Result<HashMap<String, String>, IndexError> {
    let mut out = HashMap::new();
    for sub in ["new", "cur"] {
        let dir = path.join(sub);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(IndexError::Io(format!(
                    "cannot read {}: {e}",
                    dir.display()
                )));
            }
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| IndexError::Io(format!("cannot read {}: {e}", dir.display())))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if let Some(parsed) = info::parse_file_name(&name) {
                out.insert(parsed.key.0, format!("{sub}/{name}"));
            }
        }
    }
    Ok(out)
}

fn build_doc(
    f: &Fields,
    src: &FolderSource,
    id: &str,
    rel_name: &str,
    keywords: &KeywordTable,
) -> Result<Option<TantivyDocument>, IndexError> {
    let path = src.path.join(rel_name);
    let raw = match std::fs::read(&path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(IndexError::Io(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let ex = extract::extract(&raw);
    let mut doc = TantivyDocument::default();
    doc.add_text(f.id, id);
    doc.add_text(f.account, &src.account);
    doc.add_text(f.folder, &src.folder);
    doc.add_text(f.path, path.to_string_lossy());
    doc.add_text(f.message_id, &ex.message_id);
    doc.add_text(f.subject, &ex.subject);
    doc.add_text(f.from, &ex.from);
    doc.add_text(f.to, &ex.to);
    doc.add_text(f.cc, &ex.cc);
    doc.add_text(f.body, &ex.body);
    doc.add_text(f.preview, preview(&ex.body));
    for a in &ex.attachments {
        doc.add_text(f.attachment, a);
    }
    doc.add_u64(f.has_attachment, u64::from(!ex.attachments.is_empty()));
    let file_name = rel_name.rsplit('/').next().unwrap_or(rel_name);
    let flags = flags_of(file_name, keywords);
    for flag in flags.iter() {
        match flag {
            crate::model::Flag::Keyword(k) => doc.add_text(f.tag, k.to_lowercase()),
            other => {
                if let Some(name) = flag_word(other) {
                    doc.add_text(f.flag, name);
                }
            }
        }
    }
    let date = ex.date.unwrap_or_else(|| {
        std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64)
    });
    doc.add_date(f.date, tantivy::DateTime::from_timestamp_secs(date));
    doc.add_u64(f.size, raw.len() as u64);
    Ok(Some(doc))
}

/// Flags from a Maildir file name's info letters; keyword letters through the folder's
/// `dovecot-keywords`.
fn flags_of(file_name: &str, keywords: &KeywordTable) -> Flags {
    let Some(parsed) = info::parse_file_name(file_name) else {
        return Flags::new();
    };
    info::decode_letters(&parsed.letters, keywords).flags
}

/// The query-language name of a standard flag.
pub fn flag_word(flag: &crate::model::Flag) -> Option<&'static str> {
    use crate::model::Flag;
    Some(match flag {
        Flag::Seen => "seen",
        Flag::Answered => "answered",
        Flag::Flagged => "flagged",
        Flag::Deleted => "deleted",
        Flag::Draft => "draft",
        Flag::Forwarded => "forwarded",
        Flag::Keyword(_) => return None,
    })
}
