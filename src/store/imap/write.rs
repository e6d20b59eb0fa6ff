//! Changing the mailbox: flags (STORE), deletions (UID EXPUNGE where UIDPLUS allows it),
//! moves (UID MOVE, RFC 6851, with the COPYUID it answers) and APPEND, single or MULTIAPPEND
//! (RFC 3502) with APPENDUID (RFC 4315) read from each answer.

use super::*;

impl ImapConn {
    /// Adds (`add = true`) or removes flags on messages, silently.
    pub async fn store_flags(
        &mut self,
        uids: &[Uid],
        flags: &Flags,
        add: bool,
    ) -> Result<(), ImapError> {
        if uids.is_empty() || flags.is_empty() {
            return Ok(());
        }
        let op = if add {
            "+FLAGS.SILENT"
        } else {
            "-FLAGS.SILENT"
        };
        for set in uid_sets(uids, 200) {
            self.run(&format!("UID STORE {set} {op} {}", flags.to_imap_list()))
                .await?;
        }
        Ok(())
    }

    /// Marks messages `\Deleted` and expunges exactly them (UIDPLUS `UID EXPUNGE`). Without UIDPLUS
    /// a plain EXPUNGE runs only when `others_deleted` is false, so messages someone else marked
    /// are never expunged by us; returns whether the messages were expunged.
    pub async fn delete_messages(
        &mut self,
        uids: &[Uid],
        others_deleted: bool,
    ) -> Result<bool, ImapError> {
        if uids.is_empty() {
            return Ok(true);
        }
        let deleted: Flags = [crate::model::Flag::Deleted].into_iter().collect();
        self.store_flags(uids, &deleted, true).await?;
        if self.has("UIDPLUS") {
            for set in uid_sets(uids, 200) {
                self.run(&format!("UID EXPUNGE {set}")).await?;
            }
            Ok(true)
        } else if !others_deleted {
            self.run("EXPUNGE").await?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Moves messages of the selected folder to `to` (UID MOVE, RFC 6851: the server keeps
    /// their flags and internal dates, and takes them out of this folder). Returns each moved
    /// UID with its UID in `to` where the server said them (COPYUID, RFC 4315: untagged before
    /// the expunges as RFC 6851 asks, or in the tagged answer). The caller checks `MOVE`.
    pub async fn move_messages(
        &mut self,
        uids: &[Uid],
        to: &str,
    ) -> Result<BTreeMap<Uid, Uid>, ImapError> {
        let mut moved = BTreeMap::new();
        for set in uid_sets(uids, 200) {
            let mut pairs = Vec::new();
            let done = self
                .run_with(&format!("UID MOVE {set} {}", quote(to)), |r| {
                    if let Response::Data { outcome, .. } = r
                        && let Some(ResponseCode::CopyUid(_, from, into)) = &outcome.code
                    {
                        pairs.extend(copy_uid_pairs(from, into));
                    }
                    Ok(())
                })
                .await?;
            if let DoneCode::CopyUid(tagged) = done {
                pairs.extend(tagged);
            }
            moved.extend(pairs);
        }
        Ok(moved)
    }

    /// APPENDs a message (CRLF bytes) with flags and internal date. Returns the new UID when the
    /// server says it (UIDPLUS APPENDUID, RFC 4315), with the UIDVALIDITY it belongs to.
    pub async fn append(
        &mut self,
        wire_name: &str,
        flags: &Flags,
        internal_date: Option<&str>,
        body: &[u8],
    ) -> Result<Option<(UidValidity, Uid)>, ImapError> {
        let label = "APPEND".to_string();
        self.ensure_usable(&label)?;
        let literal_plus = self.has("LITERAL+");
        let date = internal_date
            .map(|d| format!(" {}", quote(d)))
            .unwrap_or_default();
        let command = format!(
            "APPEND {} {}{} {{{}{}}}",
            quote(wire_name),
            flags.to_imap_list(),
            date,
            body.len(),
            if literal_plus { "+" } else { "" }
        );
        let sent = send_outcome(
            &label,
            self.timeout,
            tokio::time::timeout(self.timeout, self.session.run_command(&command)).await,
        );
        let tag = match sent {
            Ok(tag) => tag,
            Err(e) => return self.poison(e),
        };
        if !literal_plus {
            let next = tokio::time::timeout(self.timeout, self.session.read_response()).await;
            match next {
                Ok(Ok(Some(r))) => match r.parsed() {
                    Response::Continue(_) => {}
                    Response::Done {
                        status, outcome, ..
                    } => {
                        return Err(ImapError::Refused {
                            command: label,
                            status: status_name(status).to_string(),
                            text: outcome.information.as_deref().unwrap_or("").to_string(),
                        });
                    }
                    _ => {
                        return self.poison(ImapError::Protocol {
                            command: label,
                            message: "expected a continuation request".into(),
                        });
                    }
                },
                _ => {
                    return self.poison(ImapError::Connection {
                        command: label,
                        message: "no continuation request".into(),
                    });
                }
            }
        }
        let write = async {
            let stream = self.session.get_mut();
            stream.write_all(body).await?;
            stream.write_all(b"\r\n").await?;
            stream.flush().await
        };
        if let Err(e) = send_outcome(
            &label,
            self.timeout,
            tokio::time::timeout(self.timeout, write).await,
        ) {
            return self.poison(e);
        }
        let done = self
            .read_until_tagged(&tag, &label, &mut |_| Ok(()))
            .await?;
        if let DoneCode::AppendUid(validity, uid) = done {
            return Ok(Some((validity, uid)));
        }
        Ok(None)
    }

    /// APPENDs several messages. With MULTIAPPEND (RFC 3502) and LITERAL+ the whole batch is one
    /// APPEND command: one round trip, and one transaction on the server (Dovecot makes it
    /// durable once instead of once per message: about twice as fast as separate APPENDs). If
    /// the server refuses that (MULTIAPPEND is all or nothing), or has only LITERAL+ (RFC 7888),
    /// every message gets its own APPEND, pipelined: every command and literal is sent first,
    /// then the answers are read. Without LITERAL+, one at a time. Per message: `Ok(Some(uid))`
    /// with APPENDUID, `Ok(None)` without, `Err` when the server refused that message. A
    /// connection failure fails the whole call.
    pub async fn append_many(
        &mut self,
        wire_name: &str,
        items: &[(Flags, Option<String>, Vec<u8>)],
    ) -> Result<Vec<AppendResult>, ImapError> {
        if items.len() > 1
            && self.has("MULTIAPPEND")
            && self.has("LITERAL+")
            && let Some(results) = self.multiappend(wire_name, items).await?
        {
            return Ok(results);
        }
        if !self.has("LITERAL+") {
            let mut out = Vec::with_capacity(items.len());
            for (flags, date, body) in items {
                match self.append(wire_name, flags, date.as_deref(), body).await {
                    Err(e @ ImapError::Refused { .. }) => out.push(Err(e)),
                    other => out.push(Ok(other?)),
                }
            }
            return Ok(out);
        }
        let label = "APPEND".to_string();
        self.ensure_usable(&label)?;
        let mut tags = Vec::with_capacity(items.len());
        for (flags, date, body) in items {
            let date = date
                .as_deref()
                .map(|d| format!(" {}", quote(d)))
                .unwrap_or_default();
            let command = format!(
                "APPEND {} {}{} {{{}+}}",
                quote(wire_name),
                flags.to_imap_list(),
                date,
                body.len()
            );
            let send = async {
                let tag = self
                    .session
                    .run_command(&command)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let stream = self.session.get_mut();
                stream.write_all(body).await?;
                stream.write_all(b"\r\n").await?;
                stream.flush().await?;
                Ok::<_, std::io::Error>(tag)
            };
            let sent = send_outcome(
                &label,
                self.timeout,
                tokio::time::timeout(self.timeout, send).await,
            );
            match sent {
                Ok(tag) => tags.push(tag),
                Err(e) => return self.poison(e),
            }
        }
        let mut out: Vec<Option<AppendResult>> = (0..items.len()).map(|_| None).collect();
        let mut remaining = items.len();
        while remaining > 0 {
            // (index of the APPEND answered, its result), or a reason to give up on the connection.
            let step = self
                .with_next_response(&label, |r| match r {
                    Response::Done {
                        tag,
                        status,
                        outcome,
                    } => match tags.iter().position(|t| t == tag) {
                        None => Err(ImapError::Protocol {
                            command: label.clone(),
                            message: "tagged answer for another command".into(),
                        }),
                        Some(i) => Ok(Some((
                            i,
                            match status {
                                Status::Ok => {
                                    Ok(match DoneCode::from_code(outcome.code.as_ref()) {
                                        DoneCode::AppendUid(v, u) => Some((v, u)),
                                        _ => None,
                                    })
                                }
                                other => Err(ImapError::Refused {
                                    command: label.clone(),
                                    status: status_name(other).to_string(),
                                    text: outcome.information.as_deref().unwrap_or("").to_string(),
                                }),
                            },
                        ))),
                    },
                    Response::Data {
                        status: Status::Bye,
                        ..
                    } => Err(ImapError::Connection {
                        command: label.clone(),
                        message: "server said BYE".into(),
                    }),
                    _ => Ok(None),
                })
                .await?;
            match step {
                Err(e) => return self.poison(e),
                Ok(Some((i, result))) => {
                    if let Some(slot) = out.get_mut(i) {
                        if slot.is_none() {
                            remaining = remaining.saturating_sub(1);
                        }
                        *slot = Some(result);
                    }
                }
                Ok(None) => {}
            }
        }
        Ok(out.into_iter().map(|r| r.unwrap_or(Ok(None))).collect())
    }

    /// One MULTIAPPEND command for all `items`. `None` when the server refused it (NO or BAD):
    /// then nothing was stored (RFC 3502: all or nothing) and the caller appends one by one.
    async fn multiappend(
        &mut self,
        wire_name: &str,
        items: &[(Flags, Option<String>, Vec<u8>)],
    ) -> Result<Option<Vec<AppendResult>>, ImapError> {
        let label = "APPEND".to_string();
        self.ensure_usable(&label)?;
        let part = |flags: &Flags, date: &Option<String>, len: usize| {
            let date = date
                .as_deref()
                .map(|d| format!(" {}", quote(d)))
                .unwrap_or_default();
            format!("{}{} {{{}+}}", flags.to_imap_list(), date, len)
        };
        let Some(((f0, d0, b0), rest)) = items.split_first() else {
            return Ok(Some(Vec::new()));
        };
        let first = format!("APPEND {} {}", quote(wire_name), part(f0, d0, b0.len()));
        let send = async {
            let tag = self
                .session
                .run_command(&first)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let stream = self.session.get_mut();
            stream.write_all(b0).await?;
            for (flags, date, body) in rest {
                stream
                    .write_all(format!(" {}\r\n", part(flags, date, body.len())).as_bytes())
                    .await?;
                stream.write_all(body).await?;
            }
            stream.write_all(b"\r\n").await?;
            stream.flush().await?;
            Ok::<_, std::io::Error>(tag)
        };
        // The whole batch is on the wire before any answer: allow time for its size.
        let bytes: usize = items.iter().map(|i| i.2.len()).sum();
        let limit = self
            .timeout
            .saturating_add(Duration::from_secs((bytes >> 20) as u64));
        let tag = match send_outcome(&label, limit, tokio::time::timeout(limit, send).await) {
            Ok(tag) => tag,
            Err(e) => return self.poison(e),
        };
        type Outcome = Result<Option<(u32, Vec<u32>)>, ()>;
        let outcome: Outcome = loop {
            let step = self
                .with_next_response(&label, |r| match r {
                    Response::Done {
                        tag: t,
                        status,
                        outcome,
                    } if *t == tag => Some(match (status, &outcome.code) {
                        (Status::Ok, Some(ResponseCode::AppendUid(v, set))) => {
                            let mut uids = Vec::new();
                            for m in set {
                                match m {
                                    UidSetMember::Uid(u) => uids.push(*u),
                                    UidSetMember::UidRange(r) => uids.extend(r.clone()),
                                }
                            }
                            Ok(Some((*v, uids)))
                        }
                        (Status::Ok, _) => Ok(None),
                        _ => Err(()),
                    }),
                    Response::Data {
                        status: Status::Bye,
                        ..
                    } => Some(Err(())),
                    _ => None,
                })
                .await?;
            if let Some(o) = step {
                break o;
            }
        };
        match outcome {
            Ok(Some((v, uids))) if uids.len() == items.len() => Ok(Some(
                uids.into_iter()
                    .map(|u| Ok(Some((UidValidity(v), Uid(u)))))
                    .collect(),
            )),
            // Stored, but the UIDs are unknown (no UIDPLUS): the caller finds them by content.
            Ok(_) => Ok(Some(items.iter().map(|_| Ok(None)).collect())),
            Err(()) => {
                tracing::debug!("MULTIAPPEND refused; appending one by one");
                Ok(None)
            }
        }
    }
}
