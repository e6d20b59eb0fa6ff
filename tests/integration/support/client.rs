//! A second IMAP client for tests: seeds and changes the server independently of arctern's own
//! IMAP code (it uses async-imap's typed API over plain TCP), and reads back what is there.

use futures_util::TryStreamExt;
use std::collections::BTreeSet;
use tokio::net::TcpStream;

type Session = async_imap::Session<TcpStream>;

/// A message as the server has it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerMessage {
    /// UID.
    pub uid: u32,
    /// Flags, without \Recent.
    pub flags: BTreeSet<String>,
    /// Raw bytes (CRLF).
    pub body: Vec<u8>,
}

/// A connected, logged-in test client.
pub struct Client {
    session: Session,
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// Connects to 127.0.0.1:`port` as `user` / `secret`.
    pub fn connect(port: u16, user: &str) -> Client {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let session = rt.block_on(async {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await.unwrap().unwrap();
            client
                .login(user, "secret")
                .await
                .map_err(|(e, _)| e)
                .unwrap()
        });
        Client { session, rt }
    }

    /// Creates a folder (wire name).
    pub fn create(&mut self, folder: &str) {
        self.rt.block_on(self.session.create(folder)).unwrap();
    }

    /// Deletes a folder.
    pub fn delete(&mut self, folder: &str) {
        self.rt.block_on(self.session.delete(folder)).unwrap();
    }

    /// Appends a message with flags like `\Seen work`.
    pub fn append(&mut self, folder: &str, body: &[u8], flags: &str) {
        let flags = format!("({flags})");
        self.rt
            .block_on(self.session.append(folder, Some(&flags), None, body))
            .unwrap();
    }

    /// Adds or removes flags on UIDs in `folder`.
    pub fn store(&mut self, folder: &str, uids: &str, change: &str) {
        self.rt.block_on(async {
            self.session.select(folder).await.unwrap();
            let s = self.session.uid_store(uids, change).await.unwrap();
            let _: Vec<_> = s.try_collect().await.unwrap();
        });
    }

    /// Expunges UIDs in `folder`.
    pub fn expunge(&mut self, folder: &str, uids: &str) {
        self.rt.block_on(async {
            self.session.select(folder).await.unwrap();
            let s = self
                .session
                .uid_store(uids, "+FLAGS.SILENT (\\Deleted)")
                .await
                .unwrap();
            let _: Vec<_> = s.try_collect().await.unwrap();
            let s = self.session.uid_expunge(uids).await.unwrap();
            let _: Vec<_> = s.try_collect().await.unwrap();
        });
    }

    /// Moves UIDs from `folder` to `to`.
    pub fn move_to(&mut self, folder: &str, uids: &str, to: &str) {
        self.rt.block_on(async {
            self.session.select(folder).await.unwrap();
            self.session.uid_mv(uids, to).await.unwrap();
        });
    }

    /// Copies UIDs from `folder` to `to`.
    pub fn copy_to(&mut self, folder: &str, uids: &str, to: &str) {
        self.rt.block_on(async {
            self.session.select(folder).await.unwrap();
            self.session.uid_copy(uids, to).await.unwrap();
        });
    }

    /// Wire names of all folders.
    pub fn folders(&mut self) -> Vec<String> {
        self.rt.block_on(async {
            let s = self.session.list(Some(""), Some("*")).await.unwrap();
            let names: Vec<_> = s.try_collect().await.unwrap();
            let mut v: Vec<String> = names.iter().map(|n| n.name().to_string()).collect();
            v.sort();
            v
        })
    }

    /// Every message of a folder (read-only EXAMINE, so nothing is expunged by looking).
    pub fn messages(&mut self, folder: &str) -> Vec<ServerMessage> {
        self.rt.block_on(async {
            let mb = self.session.examine(folder).await.unwrap();
            if mb.exists == 0 {
                return Vec::new();
            }
            let s = self
                .session
                .uid_fetch("1:*", "(UID FLAGS BODY.PEEK[])")
                .await
                .unwrap();
            let fetches: Vec<_> = s.try_collect().await.unwrap();
            let mut out: Vec<ServerMessage> = fetches
                .iter()
                .map(|f| ServerMessage {
                    uid: f.uid.unwrap(),
                    flags: f
                        .flags()
                        .filter_map(|fl| match fl {
                            async_imap::types::Flag::Seen => Some("\\Seen".to_string()),
                            async_imap::types::Flag::Answered => Some("\\Answered".to_string()),
                            async_imap::types::Flag::Flagged => Some("\\Flagged".to_string()),
                            async_imap::types::Flag::Deleted => Some("\\Deleted".to_string()),
                            async_imap::types::Flag::Draft => Some("\\Draft".to_string()),
                            async_imap::types::Flag::Recent => None,
                            async_imap::types::Flag::MayCreate => None,
                            async_imap::types::Flag::Custom(c) => Some(c.to_string()),
                        })
                        .collect(),
                    body: f.body().unwrap_or_default().to_vec(),
                })
                .collect();
            out.sort();
            assert_eq!(
                out.len() as u32,
                mb.exists,
                "test client saw a partial listing"
            );
            out
        })
    }

    /// UIDVALIDITY of a folder.
    pub fn uidvalidity(&mut self, folder: &str) -> u32 {
        self.rt
            .block_on(self.session.examine(folder))
            .unwrap()
            .uid_validity
            .unwrap()
    }
}
