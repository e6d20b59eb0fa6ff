//! Waiting for the server: IDLE (RFC 2177) until the folder changes or time runs out, and
//! waiting until a folder stops growing (recovery after a killed run's APPENDs).

use super::*;

impl ImapConn {
    /// Waits until a mailbox stops growing: UIDNEXT unchanged over `settle` (at most `limit`).
    ///
    /// After a crash in the middle of pipelined APPENDs, the server may still be storing
    /// messages the dead connection sent: its commands sit in the server's receive buffer and
    /// are carried out after the client is gone. Recovery must look for copies only once that
    /// is over, or it uploads again what is about to appear.
    pub async fn wait_until_quiet(
        &mut self,
        wire_name: &str,
        settle: Duration,
        limit: Duration,
    ) -> Result<(), ImapError> {
        let started = std::time::Instant::now();
        let mut last = self.status(wire_name).await?.uidnext;
        let mut stable_since = std::time::Instant::now();
        while started.elapsed() < limit {
            tokio::time::sleep(settle.div_f64(4.0)).await;
            let now = self.status(wire_name).await?.uidnext;
            if now != last {
                last = now;
                stable_since = std::time::Instant::now();
            } else if stable_since.elapsed() >= settle {
                break;
            }
        }
        Ok(())
    }

    /// Waits in IDLE (RFC 2177) on the selected folder for at most `max`: returns
    /// [`IdleOutcome::Changed`] as soon as the server reports new, expunged or changed messages,
    /// [`IdleOutcome::Timeout`] when `max` passes (callers re-issue IDLE well before the
    /// server's 30-minute limit), ending IDLE with DONE in both cases. `stop` ends it early
    /// (shutdown) as a timeout. A server without IDLE is an error.
    pub async fn idle_wait(
        &mut self,
        max: Duration,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<IdleOutcome, ImapError> {
        let label = "IDLE".to_string();
        if !self.has("IDLE") {
            return Err(ImapError::Protocol {
                command: label,
                message: "the server does not offer IDLE".into(),
            });
        }
        self.ensure_usable(&label)?;
        let sent = send_outcome(
            &label,
            self.timeout,
            tokio::time::timeout(self.timeout, self.session.run_command("IDLE")).await,
        );
        let tag = match sent {
            Ok(tag) => tag,
            Err(e) => return self.poison(e),
        };
        // Untagged answers may come before the continuation: they count as activity too.
        let mut changed = false;
        loop {
            let (cont, activity, refused) = self
                .with_next_response(&label, |r| match r {
                    Response::Continue { .. } => (true, false, None),
                    Response::Done {
                        status, outcome, ..
                    } => (
                        false,
                        false,
                        Some(outcome.information.as_deref().unwrap_or("").to_string())
                            .filter(|_| *status != Status::Ok),
                    ),
                    other => (false, is_mailbox_activity(other), None),
                })
                .await?;
            if let Some(text) = refused {
                return Err(ImapError::Refused {
                    command: label,
                    status: "NO".into(),
                    text,
                });
            }
            changed |= activity;
            if cont {
                break;
            }
        }
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(max).unwrap_or(now);
        while !changed {
            let next = tokio::select! {
                r = tokio::time::timeout_at(deadline, self.session.read_response()) => r,
                _ = stop.changed() => break,
            };
            match next {
                Err(_) => break, // the time is up: DONE below
                Ok(Ok(Some(r))) => {
                    if let Response::Data {
                        status: Status::Bye,
                        outcome,
                    } = r.parsed()
                    {
                        let message = format!(
                            "server said BYE: {}",
                            outcome.information.as_deref().unwrap_or("")
                        );
                        return self.poison(ImapError::Connection {
                            command: label,
                            message,
                        });
                    }
                    changed = is_mailbox_activity(r.parsed());
                }
                Ok(Ok(None)) => {
                    return self.poison(ImapError::Connection {
                        command: label,
                        message: "server closed the connection".into(),
                    });
                }
                Ok(Err(e)) => {
                    return self.poison(ImapError::Connection {
                        command: label,
                        message: format!("unreadable response: {}", truncate(&e.to_string(), 300)),
                    });
                }
            }
        }
        let done = async {
            let stream = self.session.get_mut();
            stream.write_all(b"DONE\r\n").await?;
            stream.flush().await
        };
        if let Err(e) = send_outcome(
            &label,
            self.timeout,
            tokio::time::timeout(self.timeout, done).await,
        ) {
            return self.poison(e);
        }
        self.read_until_tagged(&tag, &label, &mut |_| Ok(()))
            .await?;
        Ok(if changed {
            IdleOutcome::Changed
        } else {
            IdleOutcome::Timeout
        })
    }
}
