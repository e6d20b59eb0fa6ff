//! Listing and selecting: LIST (with SPECIAL-USE attributes), STATUS, CREATE and SELECT, plain
//! or with QRESYNC parameters (RFC 7162 §3.2.5), whose answer carries the changes since a
//! known HIGHESTMODSEQ.

use super::*;

impl ImapConn {
    /// STATUS of a mailbox: (MESSAGES, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ when CONDSTORE).
    pub async fn status(&mut self, wire_name: &str) -> Result<MailboxStatus, ImapError> {
        let mut st = MailboxStatus::default();
        let items = self.status_items();
        self.run_with(&format!("STATUS {} {items}", quote(wire_name)), |r| {
            if let Response::MailboxData(MailboxDatum::Status { status, .. }) = r {
                st = status_of(status);
            }
            Ok(())
        })
        .await?;
        Ok(st)
    }

    /// The STATUS items the unchanged-folder check needs.
    fn status_items(&self) -> &'static str {
        if self.has("CONDSTORE") {
            "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"
        } else {
            "(MESSAGES UIDNEXT UIDVALIDITY)"
        }
    }

    /// Lists all mailboxes (`LIST "" "*"`), with their STATUS in the same answer where the
    /// server has LIST-STATUS (RFC 5819): one round trip for what took one per folder.
    pub async fn list(&mut self) -> Result<Vec<ListEntry>, ImapError> {
        let mut out = Vec::new();
        let mut statuses: BTreeMap<String, MailboxStatus> = BTreeMap::new();
        let command = if self.has("LIST-STATUS") {
            // With RETURN options, a server sends the special-use attributes only when asked
            // (Dovecot does so: RFC 6154 §5.1).
            let special = if self.has("SPECIAL-USE") {
                "SPECIAL-USE "
            } else {
                ""
            };
            format!(
                "LIST \"\" \"*\" RETURN ({special}STATUS {})",
                self.status_items()
            )
        } else {
            "LIST \"\" \"*\"".to_string()
        };
        self.run_with(&command, |r| {
            if let Response::MailboxData(MailboxDatum::Status { mailbox, status }) = r {
                statuses.insert(mailbox.to_string(), status_of(status));
            }
            if let Response::MailboxData(MailboxDatum::List(l)) = r {
                let selectable = !l.name_attributes.iter().any(|a| {
                    matches!(
                        a,
                        imap_proto::NameAttribute::NoSelect
                    ) || matches!(a, imap_proto::NameAttribute::Extension(x) if x.eq_ignore_ascii_case("\\NonExistent"))
                });
                use crate::model::SpecialUse;
                let special_use = l.name_attributes.iter().find_map(|a| match a {
                    imap_proto::NameAttribute::Sent => Some(SpecialUse::Sent),
                    imap_proto::NameAttribute::Drafts => Some(SpecialUse::Drafts),
                    imap_proto::NameAttribute::Trash => Some(SpecialUse::Trash),
                    imap_proto::NameAttribute::Junk => Some(SpecialUse::Junk),
                    imap_proto::NameAttribute::Archive => Some(SpecialUse::Archive),
                    imap_proto::NameAttribute::All => Some(SpecialUse::All),
                    imap_proto::NameAttribute::Flagged => Some(SpecialUse::Flagged),
                    imap_proto::NameAttribute::Extension(x) => SpecialUse::parse(x)
                        .filter(|u| *u == SpecialUse::Important),
                    _ => None,
                });
                out.push(ListEntry {
                    wire_name: l.name.to_string(),
                    delimiter: l.delimiter.as_ref().and_then(|d| d.chars().next()),
                    selectable,
                    special_use,
                    status: None,
                });
            }
            Ok(())
        })
        .await?;
        for entry in &mut out {
            entry.status = statuses.remove(&entry.wire_name);
        }
        Ok(out)
    }

    /// Creates a mailbox.
    ///
    /// A refused CREATE of a mailbox that exists afterwards is not an error: Cyrus creates
    /// missing parents itself (a CREATE of `Archive/2023` makes `Archive`) and then answers a
    /// CREATE of the parent `NO Mailbox already exists`, without RFC 5530's `[ALREADYEXISTS]`;
    /// another client may have created it meanwhile. Asked with `LIST "" name`, never assumed
    /// from the answer's text.
    pub async fn create(&mut self, wire_name: &str) -> Result<(), ImapError> {
        let refused = match self.run(&format!("CREATE {}", quote(wire_name))).await {
            Ok(_) => return Ok(()),
            Err(e @ ImapError::Refused { .. }) => e,
            Err(e) => return Err(e),
        };
        let mut exists = false;
        self.run_with(&format!("LIST \"\" {}", quote(wire_name)), |r| {
            if let Response::MailboxData(MailboxDatum::List(l)) = r
                && l.name == wire_name
                && !l
                    .name_attributes
                    .iter()
                    .any(|a| matches!(a, imap_proto::NameAttribute::NoSelect))
            {
                exists = true;
            }
            Ok(())
        })
        .await?;
        if exists {
            tracing::debug!(
                mailbox = wire_name,
                "CREATE refused but the mailbox exists: {refused}"
            );
            Ok(())
        } else {
            Err(refused)
        }
    }

    /// Selects a mailbox read-write; UIDVALIDITY is required.
    pub async fn select(&mut self, wire_name: &str) -> Result<SelectInfo, ImapError> {
        self.select_with(wire_name, None).await
    }

    /// SELECT, with QRESYNC parameters (RFC 7162 §3.2.5) when `known` gives the UIDVALIDITY and
    /// HIGHESTMODSEQ of the last completed sync and QRESYNC is enabled: the server then reports,
    /// inside the SELECT, the UIDs expunged since (`VANISHED (EARLIER)`) and the flags of
    /// messages changed since, saving the separate `UID FETCH … CHANGEDSINCE`. The delta is in
    /// [`SelectInfo::qresync`], and only when the server accepted the parameters (same
    /// UIDVALIDITY); otherwise it is `None` and the caller falls back.
    pub async fn select_with(
        &mut self,
        wire_name: &str,
        known: Option<(UidValidity, u64)>,
    ) -> Result<SelectInfo, ImapError> {
        let mut uidvalidity = None;
        let mut uidnext = None;
        let mut exists = None;
        let mut highestmodseq = None;
        let known = known.filter(|_| self.qresync);
        let mut changed = BTreeMap::new();
        let mut vanished = Vec::new();
        let command = match known {
            Some((v, m)) => format!("SELECT {} (QRESYNC ({} {m}))", quote(wire_name), v.0),
            None => format!("SELECT {}", quote(wire_name)),
        };
        let done = self
            .run_with(&command, |r| {
                match r {
                    Response::MailboxData(MailboxDatum::Exists(n)) => exists = Some(*n),
                    Response::Data { outcome, .. } => match &outcome.code {
                        Some(ResponseCode::UidValidity(v)) => uidvalidity = Some(*v),
                        Some(ResponseCode::UidNext(v)) => uidnext = Some(*v),
                        Some(ResponseCode::HighestModSeq(v)) => highestmodseq = Some(*v),
                        _ => {}
                    },
                    Response::Fetch(_, attrs) if known.is_some() => {
                        if let (Some(u), Some(f)) = (uid_of(attrs), flags_of(attrs)) {
                            changed.insert(u, f);
                        }
                    }
                    Response::Vanished { uids, .. } if known.is_some() => {
                        extend_vanished(&mut vanished, uids, "SELECT (QRESYNC)")?;
                    }
                    _ => {}
                }
                Ok(())
            })
            .await?;
        if done == DoneCode::ReadOnly {
            tracing::warn!(mailbox = wire_name, "server opened the mailbox read-only");
        }
        let (Some(uidvalidity), Some(exists)) = (uidvalidity, exists) else {
            return self.poison(ImapError::Protocol {
                command: format!("SELECT {wire_name}"),
                message: "no UIDVALIDITY or EXISTS in the answer".into(),
            });
        };
        let uidvalidity = UidValidity(uidvalidity);
        // The server ignores the parameters when the UIDVALIDITY differs: no delta then.
        let qresync = known
            .filter(|(v, _)| *v == uidvalidity)
            .map(|(_, since)| QresyncDelta {
                since,
                changed,
                vanished,
            });
        Ok(SelectInfo {
            uidvalidity,
            uidnext,
            exists,
            highestmodseq,
            qresync,
        })
    }
}

/// The values of a STATUS answer.
fn status_of(attributes: &[imap_proto::StatusAttribute]) -> MailboxStatus {
    let mut st = MailboxStatus::default();
    for a in attributes {
        match a {
            imap_proto::StatusAttribute::Messages(n) => st.messages = Some(*n),
            imap_proto::StatusAttribute::UidNext(n) => st.uidnext = Some(*n),
            imap_proto::StatusAttribute::UidValidity(n) => st.uidvalidity = Some(UidValidity(*n)),
            imap_proto::StatusAttribute::HighestModSeq(n) => st.highestmodseq = Some(*n),
            _ => {}
        }
    }
    st
}
