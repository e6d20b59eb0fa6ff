//! One process per account: an exclusive advisory lock on `<state_dir>/<account>.lock`, released
//! by the kernel when the process ends (even by `kill -9`), so a stale lock cannot exist.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("account {account} is being synced by another arctern process{}; try again when it has finished", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held {
        /// The account.
        account: String,
        /// The holder's pid, if it wrote one.
        holder: Option<u32>,
    },
    /// The lock file could not be opened.
    #[error("cannot open lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A held account lock; dropping it releases the lock.
#[derive(Debug)]
pub struct AccountLock {
    _file: File,
}

/// Takes the lock for `account` without waiting.
pub fn acquire(state_dir: &Path, account: &str) -> Result<AccountLock, LockError> {
    let path = state_dir.join(format!("{account}.lock"));
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held {
                account: account.to_string(),
                holder: text.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(AccountLock { _file: file })
}
