//! IDLE watchers (RFC 2177): one connection per watched folder, waiting for the server to report
//! new, expunged or changed messages and passing that on as a [`Trigger`]. IDLE is re-issued
//! before `renew` passes (29 minutes by default: servers may drop an IDLE after 30). A broken
//! connection is reopened with backoff, followed by a trigger (changes may have been missed), and
//! so is a `password_command` that failed; a refused login waits an hour (the account's own
//! sync reports it and pauses as long).

use super::schedule::Trigger;
use crate::clock::jitter;
use crate::config::ImapAccount;
use crate::engine::DaemonAction;
use crate::names::FolderPatterns;
use crate::store::imap::{self, IdleOutcome};
use crate::sync::backoff::Backoff;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a watcher whose login was refused waits before trying again (the account's sync
/// pauses as long; a SIGHUP restarts both at once).
const LOGIN_REFUSED_PAUSE: Duration = Duration::from_secs(3600);

/// At most this many IDLE connections per account: servers limit connections per user
/// (Dovecot: 10 by default) and the sync needs some of its own.
pub const MAX_IDLE_FOLDERS: usize = 5;

/// A logged-in connection to the account's server.
async fn login(account: &ImapAccount) -> Result<imap::ImapConn, crate::engine::Error> {
    crate::engine::credentials::imap_login(&account.imap, &account.name)
        .await
        .map(|(conn, _)| conn)
}

/// The folders of `account` that its `idle` patterns select (and its `folders` patterns allow),
/// by canonical name with their wire names; at most [`MAX_IDLE_FOLDERS`], the rest are named
/// in the second list (they are synced every interval only).
pub async fn idle_folders(
    account: &ImapAccount,
) -> Result<(Vec<(String, String)>, Vec<String>), crate::engine::Error> {
    let mut conn = login(account).await?;
    let listed = conn.folders().await?;
    conn.logout().await;
    let idle = FolderPatterns::new(&account.idle);
    let allowed = FolderPatterns::new(&account.folders);
    let mut chosen = Vec::new();
    let mut rest = Vec::new();
    for (name, e) in &listed.by_name {
        if !(idle.selects(name) && allowed.selects(name)) {
            continue;
        }
        if chosen.len() < MAX_IDLE_FOLDERS {
            chosen.push((name.to_string(), e.wire_name.clone()));
        } else {
            rest.push(name.to_string());
        }
    }
    Ok((chosen, rest))
}

/// How long a watcher waits after a failed login or connection: the same decision as the
/// account's own sync makes (engine::ErrorKind): a refused login waits for long (the sync
/// reports it and pauses the account), a credential helper that failed or a lost connection is
/// retried with backoff.
fn wait_after(e: &crate::engine::Error, backoff: &mut Backoff) -> Duration {
    match e.kind().daemon_action() {
        DaemonAction::Pause => LOGIN_REFUSED_PAUSE,
        DaemonAction::Backoff | DaemonAction::RetrySoon => backoff.next_delay(jitter()),
    }
}

/// Finds the folders to watch ([`idle_folders`], retried with backoff until the server answers)
/// and starts one [`watch_folder`] for each.
pub async fn watch_account(
    account: ImapAccount,
    renew: Duration,
    triggers: mpsc::Sender<Trigger>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1));
    let (folders, rest) = loop {
        match idle_folders(&account).await {
            Ok(found) => break found,
            Err(e) => {
                let wait = wait_after(&e, &mut backoff);
                tracing::warn!(
                    account = account.name,
                    "IDLE not started yet ({e}); trying again in {:.0}s",
                    wait.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    if !rest.is_empty() {
        tracing::warn!(
            account = account.name,
            "IDLE on at most {MAX_IDLE_FOLDERS} folders; synced every interval only: {}",
            rest.join(", ")
        );
    }
    for (folder, wire) in folders {
        tokio::spawn(watch_folder(
            account.clone(),
            folder,
            wire,
            renew,
            triggers.clone(),
            stop.clone(),
        ));
    }
}

/// Watches one folder until `stop` turns true.
pub async fn watch_folder(
    account: ImapAccount,
    folder: String,
    wire: String,
    renew: Duration,
    triggers: mpsc::Sender<Trigger>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1));
    while !*stop.borrow() {
        let session = async {
            let mut conn = login(&account).await?;
            conn.select(&wire).await?;
            Ok::<_, crate::engine::Error>(conn)
        };
        let mut conn = match session.await {
            Ok(c) => c,
            Err(e) => {
                let wait = wait_after(&e, &mut backoff);
                tracing::warn!(
                    account = account.name,
                    folder,
                    "IDLE connection failed: {e}; retrying in {:.0}s",
                    wait.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        backoff.reset();
        tracing::debug!(account = account.name, folder, "IDLE watching");
        // What happened before this connection watched is unknown (mail may have arrived
        // between the account's last sync and this SELECT, or while disconnected): ask for a sync.
        let _ = triggers.try_send(Trigger::Server(folder.clone()));
        loop {
            match conn.idle_wait(renew, &mut stop).await {
                Ok(IdleOutcome::Changed) => {
                    tracing::debug!(account = account.name, folder, "IDLE: change reported");
                    let _ = triggers.try_send(Trigger::Server(folder.clone()));
                }
                Ok(IdleOutcome::Timeout) if *stop.borrow() => {
                    conn.logout().await;
                    return;
                }
                Ok(IdleOutcome::Timeout) => {} // re-issue IDLE
                Err(e) => {
                    tracing::warn!(
                        account = account.name,
                        folder,
                        "IDLE connection lost: {e}; reconnecting"
                    );
                    break;
                }
            }
        }
        let wait = backoff.next_delay(jitter());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}
