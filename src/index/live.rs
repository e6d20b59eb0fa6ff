//! Indexing while the sync downloads. A sync's download is bound by the network and the disk,
//! the index by the CPU: run one after the other, a pull's core sat idle for half the run. A
//! [`LiveIndex`] takes each message as soon as its file is published (a [`LiveSink`] is handed
//! to the sync's folder workers), parses it on its own threads and adds it to the index, with
//! the catalog rows that say it is indexed. The index update that follows the sync then finds
//! those files indexed under their names and has only what changed since (flags renamed in the
//! same run, deletions) left to do; the index it leaves equals a rebuild's (tested).
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
/// beside it, so it stays small (a pull of 10,000 mails peaked at 138 MB with the update's
/// 64 MB writer after it).
const LIVE_WRITER_HEAP: usize = 32 * 1024 * 1024;

/// Documents per commit. A commit waits for tantivy's indexing queue to drain, and that queue
/// (up to 10,000 documents, whole message texts in them) is what grows when two parsers feed
/// one indexing thread: the first live pull committing every 2,000 peaked at 205 MB.
const LIVE_COMMIT_EVERY: usize = 500;

/// Parsed documents waiting for the writer: bounds what parsing ahead can hold in memory.
const PARSED_QUEUE: usize = 64;

/// A message published into a folder: where it is and under which key.
#[derive(Debug)]
struct Job {
    source: Arc<FolderSource>,
    key: String,
    /// `cur/<file name>` or `new/<file name>`.
    rel_name: String,
}

/// Where the sync says what it published; cheap to clone, one per folder worker.
#[derive(Clone, Debug)]
pub struct LiveSink {
    jobs: Sender<Job>,
}

impl LiveSink {
    /// The file `rel_name` (`cur/…` or `new/…`) of folder `source` holds message `key` now.
    pub fn published(&self, source: &Arc<FolderSource>, key: &str, rel_name: String) {
        // A stopped indexer (it failed) only leaves the work to the update after the sync.
        let _ = self.jobs.send(Job {
            source: source.clone(),
            key: key.to_string(),
            rel_name,
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
        // tantivy's own merge policy merges the commits' segments in the background while the
        // download goes on (the update after the sync then finds nothing to add and merges
        // nothing); `finish` waits for those merges. No explicit merge is asked of this writer,
        // so none can race with them.
        let fields = self.fields;
        let parsers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 4);
        let first = Mutex::new(Some(first));
        let queue = Mutex::new(queue);
        let keywords: Mutex<HashMap<PathBuf, Arc<KeywordTable>>> = Mutex::new(HashMap::new());
        let (parsed_tx, parsed) =
            std::sync::mpsc::sync_channel::<(Job, TantivyDocument)>(PARSED_QUEUE);
        let mut added = 0usize;
        let mut uncommitted: Vec<(Arc<FolderSource>, String, String)> = Vec::new();
        let result = std::thread::scope(|scope| {
            for _ in 0..parsers {
                let parsed_tx: SyncSender<(Job, TantivyDocument)> = parsed_tx.clone();
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
                        match build_doc(&fields, &job.source, &id, &job.rel_name, &table) {
                            Ok(Some(doc)) => {
                                if parsed_tx.send((job, doc)).is_err() {
                                    return;
                                }
                            }
                            // Renamed or deleted meanwhile: the update after the sync sees it.
                            Ok(None) => {}
                            Err(e) => tracing::warn!("{e}"),
                        }
                    }
                });
            }
            drop(parsed_tx);
            // Owned here: returning early (a failure) drops it, which stops the parsers.
            let parsed = parsed;
            for (job, doc) in parsed.iter() {
                let id = doc_id(&job.source.account, &job.source.folder, &job.key);
                writer.delete_term(Term::from_field_text(fields.id, &id));
                writer.add_document(doc).map_err(|e| self.terr(e))?;
                uncommitted.push((job.source, job.key, job.rel_name));
                added += 1;
                if uncommitted.len() >= LIVE_COMMIT_EVERY {
                    writer.commit().map_err(|e| self.terr(e))?;
                    self.catalog_published(&std::mem::take(&mut uncommitted))?;
                }
            }
            Ok::<(), IndexError>(())
        });
        // A failure above stopped the parsers (their sends fail once `parsed` is gone).
        result?;
        writer.commit().map_err(|e| self.terr(e))?;
        self.catalog_published(&uncommitted)?;
        writer.wait_merging_threads().map_err(|e| self.terr(e))?;
        Ok(added)
    }

    /// Records committed documents in the catalog. The folders' mtimes are left alone, so the
    /// update after the sync lists those folders and sees what changed since.
    fn catalog_published(
        &mut self,
        docs: &[(Arc<FolderSource>, String, String)],
    ) -> Result<(), IndexError> {
        let path = self.dir.join("catalog.sqlite3");
        let cerr = |source| IndexError::Catalog {
            path: path.clone(),
            source,
        };
        let tx = self.catalog.transaction().map_err(cerr)?;
        super::put_docs(
            &tx,
            docs.iter()
                .map(|(src, key, name)| (&**src, key.as_str(), name.as_str())),
        )
        .map_err(cerr)?;
        tx.commit().map_err(cerr)
    }
}
