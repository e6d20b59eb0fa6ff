//! Fetching: every UID and its flags (a listing shorter than EXISTS is an error, never
//! "deleted"), changes since a MODSEQ (CONDSTORE/QRESYNC), evidence (size and Message-ID),
//! sizes, and message bodies streamed to a callback.

use super::*;

impl ImapConn {
    /// UIDs and flags of messages changed since `modseq` (CONDSTORE `CHANGEDSINCE`, RFC 7162
    /// §3.1.4), and with QRESYNC the UIDs expunged since (`VANISHED (EARLIER)`, §3.2.6). New
    /// messages count as changed. Without QRESYNC the expunged list is `None`: unknown.
    pub async fn fetch_changed(
        &mut self,
        modseq: u64,
    ) -> Result<(BTreeMap<Uid, Flags>, Option<Vec<Uid>>), ImapError> {
        let mut changed = BTreeMap::new();
        let mut vanished = Vec::new();
        let qresync = self.qresync;
        let command = if qresync {
            format!("UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
        } else {
            format!("UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {modseq})")
        };
        self.run_with(&command, |r| {
            match r {
                Response::Fetch(_, attrs) => {
                    if let (Some(u), Some(f)) = (uid_of(attrs), flags_of(attrs)) {
                        changed.insert(u, f);
                    }
                }
                Response::Vanished { uids, .. } => {
                    extend_vanished(&mut vanished, uids, "UID FETCH CHANGEDSINCE")?;
                }
                _ => {}
            }
            Ok(())
        })
        .await?;
        Ok((changed, qresync.then_some(vanished)))
    }

    /// Every UID and its flags in the selected mailbox. `exists` is the count SELECT reported:
    /// a listing with fewer messages than the server says it has is an error, never "deleted".
    pub async fn fetch_all_flags(
        &mut self,
        exists: u32,
    ) -> Result<BTreeMap<Uid, Flags>, ImapError> {
        let mut out = BTreeMap::new();
        if exists == 0 {
            return Ok(out);
        }
        let mut count = i64::from(exists);
        let mut bad = None;
        self.run_with("UID FETCH 1:* (UID FLAGS)", |r| {
            match r {
                Response::Fetch(_, attrs) => match (uid_of(attrs), flags_of(attrs)) {
                    (Some(u), Some(f)) => {
                        out.insert(u, f);
                    }
                    (Some(_), None) => {} // an unsolicited FETCH of something else
                    _ => bad = Some("FETCH without UID"),
                },
                Response::MailboxData(MailboxDatum::Exists(n)) => count = i64::from(*n),
                Response::Expunge(_) => count = count.saturating_sub(1),
                Response::Vanished {
                    earlier: false,
                    uids,
                } => {
                    let gone: u64 = uids.iter().map(range_len).sum();
                    count = count.saturating_sub(i64::try_from(gone).unwrap_or(i64::MAX));
                }
                _ => {}
            }
            Ok(())
        })
        .await?;
        if let Some(message) = bad {
            return self.poison(ImapError::Protocol {
                command: "UID FETCH".into(),
                message: message.into(),
            });
        }
        if (out.len() as i64) < count {
            return self.poison(ImapError::Protocol {
                command: "UID FETCH".into(),
                message: format!(
                    "server listed {} of the {} messages it reports; refusing to treat the rest as deleted",
                    out.len(),
                    count
                ),
            });
        }
        Ok(out)
    }

    /// Size and Message-ID of messages with UIDs in `set` (a sequence set such as `1:*`).
    pub async fn fetch_evidence(&mut self, set: &str) -> Result<Vec<Evidence>, ImapError> {
        let mut out = Vec::new();
        self.run_with(
            &format!("UID FETCH {set} (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID X-TUID X-OFFLINEIMAP)])"),
            |r| {
                if let Response::Fetch(_, attrs) = r {
                    let uid = uid_of(attrs);
                    let size = attrs.iter().find_map(|a| match a {
                        AttributeValue::Rfc822Size(s) => Some(*s),
                        _ => None,
                    });
                    let header = attrs.iter().find_map(|a| match a {
                        AttributeValue::BodySection { data: Some(d), .. } => Some(d.as_ref()),
                        _ => None,
                    });
                    if let (Some(uid), Some(size)) = (uid, size) {
                        out.push(Evidence {
                            uid,
                            size,
                            message_id: header.and_then(crate::message::message_id),
                            markers: header
                                .map(crate::message::sync_marker_wire_bytes)
                                .and_then(|n| u32::try_from(n).ok())
                                .unwrap_or(0),
                        });
                    }
                }
                Ok(())
            },
        )
        .await?;
        Ok(out)
    }

    /// The FETCH item that names a message across the account's folders: Gmail's
    /// `X-GM-MSGID` (X-GM-EXT-1), else RFC 8474's `EMAILID` (OBJECTID), else none.
    pub fn object_id_item(&self) -> Option<&'static str> {
        if self.has("X-GM-EXT-1") {
            Some("X-GM-MSGID")
        } else if self.has("OBJECTID") {
            Some("EMAILID")
        } else {
            None
        }
    }

    /// What tells whether a message of `set` is one already stored in another folder: size,
    /// Message-ID and, where the server has one, its account-wide identity
    /// ([`ImapConn::object_id_item`]).
    pub async fn fetch_identities(&mut self, set: &str) -> Result<Vec<Identity>, ImapError> {
        let identity = self
            .object_id_item()
            .map(|i| format!(" {i}"))
            .unwrap_or_default();
        let mut out = Vec::new();
        self.run_with(
            &format!(
                "UID FETCH {set} (UID RFC822.SIZE{identity} BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
            ),
            |r| {
                if let Response::Fetch(_, attrs) = r
                    && let Some(uid) = uid_of(attrs)
                    && let Some(size) = attrs.iter().find_map(|a| match a {
                        AttributeValue::Rfc822Size(s) => Some(*s),
                        _ => None,
                    })
                {
                    let header = attrs.iter().find_map(|a| match a {
                        AttributeValue::BodySection { data: Some(d), .. } => Some(d.as_ref()),
                        _ => None,
                    });
                    out.push(Identity {
                        uid,
                        size,
                        message_id: header.and_then(crate::message::message_id),
                        object_id: object_id_of(attrs),
                    });
                }
                Ok(())
            },
        )
        .await?;
        Ok(out)
    }

    /// The header sections (`BODY.PEEK[HEADER]`, CRLF as stored) of the messages with UIDs in
    /// `uids` that the server reports.
    pub async fn fetch_headers(
        &mut self,
        uids: &[Uid],
    ) -> Result<BTreeMap<Uid, Vec<u8>>, ImapError> {
        let mut out = BTreeMap::new();
        for set in uid_sets(uids, 200) {
            self.run_with(&format!("UID FETCH {set} (UID BODY.PEEK[HEADER])"), |r| {
                if let Response::Fetch(_, attrs) = r
                    && let Some(uid) = uid_of(attrs)
                    && let Some(data) = attrs.iter().find_map(|a| match a {
                        AttributeValue::BodySection { data, .. } => {
                            Some(data.as_deref().unwrap_or(b""))
                        }
                        _ => None,
                    })
                {
                    out.insert(uid, data.to_vec());
                }
                Ok(())
            })
            .await?;
        }
        Ok(out)
    }

    /// RFC822.SIZE of the messages with UIDs in `uids` (those the server reports). Asked before
    /// downloading when the account has a `max_size`, so an oversized message is never fetched.
    pub async fn fetch_sizes(&mut self, uids: &[Uid]) -> Result<BTreeMap<Uid, u32>, ImapError> {
        let mut out = BTreeMap::new();
        for set in uid_sets(uids, 200) {
            self.run_with(&format!("UID FETCH {set} (UID RFC822.SIZE)"), |r| {
                if let Response::Fetch(_, attrs) = r
                    && let Some(uid) = uid_of(attrs)
                    && let Some(size) = attrs.iter().find_map(|a| match a {
                        AttributeValue::Rfc822Size(s) => Some(*s),
                        _ => None,
                    })
                {
                    out.insert(uid, size);
                }
                Ok(())
            })
            .await?;
        }
        Ok(out)
    }

    /// Fetches full messages with UIDs in `uids`, handing each to `each` as it arrives.
    pub async fn fetch_bodies(
        &mut self,
        uids: &[Uid],
        mut each: impl FnMut(FetchedMessage<'_>) -> Result<(), ImapError>,
    ) -> Result<(), ImapError> {
        let identity = self
            .object_id_item()
            .map(|i| format!(" {i}"))
            .unwrap_or_default();
        for set in uid_sets(uids, 200) {
            self.run_with(
                &format!(
                    "UID FETCH {set} (UID FLAGS INTERNALDATE RFC822.SIZE{identity} BODY.PEEK[])"
                ),
                |r| {
                    let Response::Fetch(_, attrs) = r else {
                        return Ok(());
                    };
                    let Some(uid) = uid_of(attrs) else {
                        return Ok(());
                    };
                    let body = attrs.iter().find_map(|a| match a {
                        AttributeValue::BodySection {
                            section: None,
                            data,
                            ..
                        } => Some(data.as_deref().unwrap_or(b"")),
                        AttributeValue::Rfc822(data) => Some(data.as_deref().unwrap_or(b"")),
                        _ => None,
                    });
                    let Some(body) = body else {
                        return Ok(()); // a flag update riding along, not our body
                    };
                    each(FetchedMessage {
                        uid,
                        flags: flags_of(attrs),
                        internal_date: attrs.iter().find_map(|a| match a {
                            AttributeValue::InternalDate(d) => Some(d.to_string()),
                            _ => None,
                        }),
                        size: attrs.iter().find_map(|a| match a {
                            AttributeValue::Rfc822Size(s) => Some(*s),
                            _ => None,
                        }),
                        object_id: object_id_of(attrs),
                        body,
                    })
                },
            )
            .await?;
        }
        Ok(())
    }
}

/// A message's account-wide identity in a FETCH answer, tagged with its kind so that two
/// schemes never compare equal: `gm:` + X-GM-MSGID, `emailid:` + EMAILID.
pub fn object_id_of(attrs: &[AttributeValue<'_>]) -> Option<String> {
    attrs.iter().find_map(|a| match a {
        AttributeValue::GmailMsgId(n) => Some(format!("gm:{n}")),
        AttributeValue::EmailId(id) if !id.is_empty() => Some(format!("emailid:{id}")),
        _ => None,
    })
}

/// A server message's identity evidence ([`ImapConn::fetch_identities`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// UID.
    pub uid: Uid,
    /// RFC822.SIZE.
    pub size: u32,
    /// Normalised Message-ID.
    pub message_id: Option<String>,
    /// X-GM-MSGID or EMAILID, tagged ([`object_id_of`]).
    pub object_id: Option<String>,
}
