//! Indexing while the sync downloads. A sync's download is bound by the network and the disk,
//! the index by the CPU: run one after the other, a pull's core sat idle for half the run. A
//! [`LiveIndex`] takes each message as soon as its file is published (a [`LiveSink`] is handed
//! to the sync's folder workers), parses it on its own threads and adds it to the index, with
//! the catalog rows that say it is indexed; a file the sync renamed (flags) is indexed again
//! under its new name, a file it removed leaves the index. The index update that follows the
//! sync then finds the catalog current and writes nothing, unless a mail reader changed the
//! folder meanwhile; the index it leaves equals a rebuild's (tested).
//!
//! Crash safety is the update's: a document is in the catalog only once committed, and every
//! add deletes its id first, so a kill at any point leaves at most work for the next update.

use super::{FolderSource, IndexError, MailIndex, build_doc, doc_id};
use crate::store::maildir::keywords::KeywordTable;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use tantivy::{TantivyDocument, Term};

/// The indexing memory of the live writer (one tantivy indexing thread): the download runs
/// beside it. Measured on a 10,000-message pull (bench data, 2 cores, alternating runs): 32 MB
/// 6.6 to 7.7 s with a 130 to 138 MB peak; tantivy's least, 15 MB, 7.9 to 8.0 s (and 9.8 s in
/// a bench run) with 110 to 115 MB, as the arena fills and flushes more often. Time wins.
const LIVE_WRITER_HEAP: usize = 32 * 1024 * 1024;

/// Documents per commit. A commit waits for tantivy's indexing queue to drain, and that queue
/// (up to 10,000 documents, whole message texts in them) is what grows when two parsers feed
/// one indexing thread: the first live pull committing every 2,000 peaked at 205 MB.
const LIVE_COMMIT_EVERY: usize = 500;

/// Parsed documents waiting for the writer: bounds what parsing ahead can hold in memory.
const PARSED_QUEUE: usize = 64;

/// What the sync says about a folder.
#[derive(Debug)]
enum Change {
    /// Message `key` is in this file now (`cur/<file name>` or `new/<file name>`): delivered,
    /// or renamed because its flags changed.
    Published(String),
    /// Message `key` is gone.
    Removed,
    /// Commit what is indexed so far: the sync's folders are done, what is left is proving
    /// them settled, which takes as long as a commit.
    Flush,
    /// The folder holds exactly what the sync left, as of directory mtimes `after`; it held what
    /// the catalog says when its mtimes were `before`.
    Settled {
        before: (i64, i64),
        after: (i64, i64),
    },
}

/// A change the sync made to a folder.
#[derive(Debug)]
struct Job {
    source: Arc<FolderSource>,
    key: String,
    change: Change,
}

/// A job after the parsers.
enum Parsed {
    /// Its document, to add.
    Doc(Job, TantivyDocument),
    /// Nothing to parse (a removal, a settled folder).
    Pass(Job),
    /// Its file could not be indexed (gone meanwhile, unreadable): the update after the sync
    /// lists the folder.
    Failed(Arc<FolderSource>),
}

/// Where the sync says what it published; cheap to clone, one per folder worker.
#[derive(Clone, Debug)]
pub struct LiveSink {
    jobs: Sender<Job>,
}

impl LiveSink {
    /// The file `rel_name` (`cur/…` or `new/…`) of folder `source` holds message `key` now
    /// (delivered, or renamed because its flags changed).
    pub fn published(&self, source: &Arc<FolderSource>, key: &str, rel_name: String) {
        // A stopped indexer (it failed) only leaves the work to the update after the sync.
        let _ = self.jobs.send(Job {
            source: source.clone(),
            key: key.to_string(),
            change: Change::Published(rel_name),
        });
    }

    /// Message `key` of folder `source` is gone from it.
    pub fn removed(&self, source: &Arc<FolderSource>, key: &str) {
        let _ = self.jobs.send(Job {
            source: source.clone(),
            key: key.to_string(),
            change: Change::Removed,
        });
    }

    /// Commits what is indexed so far (the sync is done with its folders).
    pub fn flush(&self) {
        let _ = self.jobs.send(Job {
            source: Arc::new(FolderSource {
                account: String::new(),
                folder: String::new(),
                path: PathBuf::new(),
            }),
            key: String::new(),
            change: Change::Flush,
        });
    }

    /// Folder `source` holds exactly what the sync left as of directory mtimes `after`
    /// (proven by a listing); its mtimes were `before` when the sync read it. If the catalog
    /// was current then (it recorded `before`) and every change the sync told was indexed, the
    /// catalog records `after`: the update after the sync skips the folder instead of listing
    /// it.
    pub fn settled(&self, source: &Arc<FolderSource>, before: (i64, i64), after: (i64, i64)) {
        let _ = self.jobs.send(Job {
            source: source.clone(),
            key: String::new(),
            change: Change::Settled { before, after },
        });
    }
}

/// The indexer, running on its own threads from [`LiveIndex::start`] to [`LiveIndex::finish`].
pub struct LiveIndex {
    sink: Option<LiveSink>,
    worker: Option<std::thread::JoinHandle<Result<usize, IndexError>>>,
}

impl LiveIndex {
    /// Starts the indexer of the index in `state_dir`. The index is opened with the first
    /// message published: a sync that downloads nothing costs no index work here.
    pub fn start(state_dir: &Path) -> Result<LiveIndex, IndexError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let state_dir = state_dir.to_path_buf();
        let worker = std::thread::Builder::new()
            .name("arctern-index".into())
            .spawn(move || {
                let Ok(first) = queue.recv() else {
                    return Ok(0);
                };
                let mut index = MailIndex::open(&state_dir)?;
                index.index_published(first, queue)
            })
            .map_err(|e| IndexError::Io(format!("cannot start the indexer: {e}")))?;
        Ok(LiveIndex {
            sink: Some(LiveSink { jobs }),
            worker: Some(worker),
        })
    }

    /// Where the sync tells what it published.
    pub fn sink(&self) -> Option<&LiveSink> {
        self.sink.as_ref()
    }

    /// Waits for everything told to be indexed and committed; returns how many documents
    /// were added.
    pub fn finish(mut self) -> Result<usize, IndexError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<usize, IndexError> {
        self.sink = None;
        match self.worker.take().map(std::thread::JoinHandle::join) {
            None => Ok(0),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(IndexError::Io("the indexer thread panicked".into())),
        }
    }
}

impl Drop for LiveIndex {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl MailIndex {
    /// Indexes every job `queue` brings until it closes: parsed on up to four threads, added
    /// by this one, committed with their catalog rows every [`LIVE_COMMIT_EVERY`] documents.
    fn index_published(&mut self, first: Job, queue: Receiver<Job>) -> Result<usize, IndexError> {
        let mut writer = self
            .index
            .writer_with_num_threads(1, LIVE_WRITER_HEAP)
            .map_err(|e| self.terr(e))?;
        // tantivy's log merge policy (layered from small segments up) merges the commits'
        // segments in the background while the download goes on (the update after the sync
        // then finds nothing to add and merges nothing); `finish` waits for those merges. No
        // explicit merge is asked of this writer, so none can race with them.
        writer.set_merge_policy(super::tiered_merge_policy());
        let fields = self.fields;
        let parsers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 4);
        let first = Mutex::new(Some(first));
        let queue = Mutex::new(queue);
        let keywords: Mutex<HashMap<PathBuf, Arc<KeywordTable>>> = Mutex::new(HashMap::new());
        let (parsed_tx, parsed) = std::sync::mpsc::sync_channel::<Parsed>(PARSED_QUEUE);
        let mut added = 0usize;
        let mut uncommitted: Vec<(Arc<FolderSource>, String, String)> = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        let mut settled: Vec<Job> = Vec::new();
        let mut unclean: std::collections::HashSet<(String, String)> = Default::default();
        let result = std::thread::scope(|scope| {
            for _ in 0..parsers {
                let parsed_tx: SyncSender<Parsed> = parsed_tx.clone();
                let (first, queue, keywords) = (&first, &queue, &keywords);
                scope.spawn(move || {
                    loop {
                        let taken = first.lock().ok().and_then(|mut f| f.take());
                        let job = match taken {
                            Some(job) => Ok(job),
                            None => match queue.lock() {
                                Ok(q) => q.recv(),
                                Err(_) => return,
                            },
                        };
                        let Ok(job) = job else { return };
                        let Change::Published(rel_name) = &job.change else {
                            if parsed_tx.send(Parsed::Pass(job)).is_err() {
                                return;
                            }
                            continue;
                        };
                        let table = {
                            let mut k = keywords.lock().unwrap_or_else(|p| p.into_inner());
                            k.entry(job.source.path.clone())
                                .or_insert_with(|| {
                                    Arc::new(
                                        KeywordTable::load(&job.source.path).unwrap_or_default(),
                                    )
                                })
                                .clone()
                        };
                        let id = doc_id(&job.source.account, &job.source.folder, &job.key);
                        let parsed = match build_doc(&fields, &job.source, &id, rel_name, &table) {
                            Ok(Some(doc)) => Parsed::Doc(job, doc),
                            // Renamed or deleted meanwhile: the update after the sync sees it.
                            Ok(None) => Parsed::Failed(job.source),
                            Err(e) => {
                                tracing::warn!("{e}");
                                Parsed::Failed(job.source)
                            }
                        };
                        if parsed_tx.send(parsed).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(parsed_tx);
            // Owned here: returning early (a failure) drops it, which stops the parsers.
            let parsed = parsed;
            for item in parsed.iter() {
                match item {
                    Parsed::Doc(job, doc) => {
                        let id = doc_id(&job.source.account, &job.source.folder, &job.key);
                        writer.delete_term(Term::from_field_text(fields.id, &id));
                        writer.add_document(doc).map_err(|e| self.terr(e))?;
                        if let Change::Published(rel_name) = job.change {
                            uncommitted.push((job.source, job.key, rel_name));
                        }
                        added += 1;
                    }
                    Parsed::Pass(job) => match job.change {
                        Change::Removed => {
                            let id = doc_id(&job.source.account, &job.source.folder, &job.key);
                            writer.delete_term(Term::from_field_text(fields.id, &id));
                            removed.push(id);
                        }
                        Change::Settled { .. } => settled.push(job),
                        Change::Flush if !uncommitted.is_empty() || !removed.is_empty() => {
                            writer.commit().map_err(|e| self.terr(e))?;
                            self.catalog_published(
                                &std::mem::take(&mut uncommitted),
                                &std::mem::take(&mut removed),
                            )?;
                        }
                        Change::Flush | Change::Published(_) => {}
                    },
                    Parsed::Failed(source) => {
                        unclean.insert((source.account.clone(), source.folder.clone()));
                    }
                }
                if uncommitted.len() + removed.len() >= LIVE_COMMIT_EVERY {
                    writer.commit().map_err(|e| self.terr(e))?;
                    self.catalog_published(
                        &std::mem::take(&mut uncommitted),
                        &std::mem::take(&mut removed),
                    )?;
                }
            }
            Ok::<(), IndexError>(())
        });
        // A failure above stopped the parsers (their sends fail once `parsed` is gone).
        result?;
        if !uncommitted.is_empty() || !removed.is_empty() {
            writer.commit().map_err(|e| self.terr(e))?;
            self.catalog_published(&uncommitted, &removed)?;
        }
        writer.wait_merging_threads().map_err(|e| self.terr(e))?;
        let settled: Vec<Job> = settled
            .into_iter()
            .filter(|j| !unclean.contains(&(j.source.account.clone(), j.source.folder.clone())))
            .collect();
        self.catalog_settled(&settled)?;
        Ok(added)
    }

    /// Records the mtimes of settled folders whose catalog was current when the sync read them
    /// (it still holds their mtimes of then) and took every change since.
    fn catalog_settled(&mut self, settled: &[Job]) -> Result<(), IndexError> {
        if settled.is_empty() {
            return Ok(());
        }
        self.in_catalog(|tx| {
            let mut set = tx.prepare_cached(
                "UPDATE folders SET cur_mtime = ?3, new_mtime = ?4
                 WHERE account = ?1 AND folder = ?2 AND cur_mtime = ?5 AND new_mtime = ?6",
            )?;
            for job in settled {
                if let Change::Settled { before, after } = job.change {
                    set.execute(rusqlite::params![
                        job.source.account,
                        job.source.folder,
                        after.0,
                        after.1,
                        before.0,
                        before.1
                    ])?;
                }
            }
            Ok(())
        })
    }

    /// Records committed documents (and removed ones) in the catalog. The folders' mtimes are
    /// left alone, so the update after the sync lists those folders and sees what changed
    /// since.
    fn catalog_published(
        &mut self,
        docs: &[(Arc<FolderSource>, String, String)],
        removed: &[String],
    ) -> Result<(), IndexError> {
        self.in_catalog(|tx| {
            super::put_docs(
                tx,
                docs.iter()
                    .map(|(src, key, name)| (&**src, key.as_str(), name.as_str())),
            )?;
            let mut del = tx.prepare_cached("DELETE FROM docs WHERE id = ?1")?;
            for id in removed {
                del.execute([id])?;
            }
            Ok(())
        })
    }
}
