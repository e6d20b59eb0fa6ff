//! Durability barriers, shared per filesystem: making a batch of written files durable costs one
//! `syncfs(2)`, and barriers requested at the same time by several folder workers coalesce into
//! one, so more connections do not mean more flushes.
//!
//! A request takes a ticket after its writes; a `syncfs` that starts after a ticket was taken
//! covers that ticket's writes. Whoever holds the lock runs one `syncfs` for every ticket issued
//! before it started; a request whose ticket is already covered returns at once.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

struct FsBarrier {
    tickets: AtomicU64,
    covered: tokio::sync::Mutex<u64>,
}

fn barrier_for(dev: u64) -> Arc<FsBarrier> {
    static BARRIERS: OnceLock<Mutex<BTreeMap<u64, Arc<FsBarrier>>>> = OnceLock::new();
    let map = BARRIERS.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    map.entry(dev)
        .or_insert_with(|| {
            Arc::new(FsBarrier {
                tickets: AtomicU64::new(0),
                covered: tokio::sync::Mutex::new(0),
            })
        })
        .clone()
}

/// Makes everything written so far under `dir`'s filesystem durable.
pub async fn make_durable(dir: PathBuf) -> std::io::Result<()> {
    let dev = std::fs::metadata(&dir)?.dev();
    let barrier = barrier_for(dev);
    let ticket = barrier
        .tickets
        .fetch_add(1, Ordering::SeqCst)
        .wrapping_add(1);
    let mut covered = barrier.covered.lock().await;
    if *covered >= ticket {
        return Ok(());
    }
    let start = barrier.tickets.load(Ordering::SeqCst);
    let file = std::fs::File::open(&dir)?;
    tokio::task::spawn_blocking(move || rustix::fs::syncfs(&file).map_err(std::io::Error::from))
        .await
        .map_err(std::io::Error::other)??;
    *covered = start;
    Ok(())
}

/// Makes everything written so far under `dir`'s filesystem durable, from synchronous code
/// (one `syncfs`; no coalescing, for a single writer such as the mbox import).
pub fn make_durable_now(dir: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::File::open(dir)?;
    rustix::fs::syncfs(&file).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_barriers_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<_> = (0..8)
            .map(|_| tokio::spawn(make_durable(dir.path().to_path_buf())))
            .collect();
        for j in jobs {
            j.await.unwrap().unwrap();
        }
    }
}
