//! One process per account: an exclusive advisory lock on `<state_dir>/<account>.lock`, released
//! by the kernel when the process ends (even by `kill -9`), so a stale lock cannot exist.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another daemon runs on this state.
    #[error("another arctern daemon{} is running on {state_dir}; stop it first (one daemon per state_dir)", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    DaemonRunning {
        /// The state dir.
        state_dir: PathBuf,
        /// The holder's pid, if it wrote one.
        holder: Option<u32>,
    },
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

/// The daemon lock file's path.
pub fn daemon_lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join(".daemon.lock")
}

/// Takes the daemon's lock on `state_dir` (`.daemon.lock`) without waiting.
pub fn acquire_daemon(state_dir: &Path) -> Result<AccountLock, LockError> {
    match lock_file(&daemon_lock_path(state_dir)) {
        Err(LockError::Held { holder, .. }) => Err(LockError::DaemonRunning {
            state_dir: state_dir.to_path_buf(),
            holder,
        }),
        other => other,
    }
}

/// Takes the lock for `account` without waiting.
pub fn acquire(state_dir: &Path, account: &str) -> Result<AccountLock, LockError> {
    match lock_file(&state_dir.join(format!("{account}.lock"))) {
        Err(LockError::Held { holder, .. }) => Err(LockError::Held {
            account: account.to_string(),
            holder,
        }),
        other => other,
    }
}

fn lock_file(path: &Path) -> Result<AccountLock, LockError> {
    let path = path.to_path_buf();
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
                account: String::new(),
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
