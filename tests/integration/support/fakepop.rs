//! A scripted POP3 server for what Dovecot will not do on request: no UIDL, LOGIN-DELAY and
//! EXPIRE, a malformed listing, a connection dropped in the middle of a RETR. It keeps a
//! maildrop in memory and, as RFC 1939 says, deletes only at QUIT.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// How the server misbehaves.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// Offer and answer UIDL.
    pub uidl: bool,
    /// Advertise LOGIN-DELAY with this many seconds.
    pub login_delay: Option<u64>,
    /// Advertise EXPIRE with this value ("0", "30", "NEVER").
    pub expire: Option<String>,
    /// Send this line inside the UIDL listing.
    pub bad_uidl_line: Option<String>,
    /// Close the connection halfway through the body of the Nth RETR of the session (1-based).
    pub drop_in_retr: Option<usize>,
}

/// A maildrop: (uidl, raw bytes with CRLF) per message.
pub type Maildrop = Vec<(String, Vec<u8>)>;

/// The maildrop and the script, shared with the server thread.
pub struct FakePop {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Messages: (uidl, raw bytes with CRLF).
    pub messages: Arc<Mutex<Maildrop>>,
    /// The script; change it between runs.
    pub script: Arc<Mutex<Script>>,
    /// Commands received, for assertions (passwords replaced).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl FakePop {
    /// Starts the server on a free port, in a thread that lives as long as the test.
    pub fn start(script: Script) -> FakePop {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = FakePop {
            port,
            messages: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(Mutex::new(script)),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        let (messages, script, log) = (me.messages.clone(), me.script.clone(), me.log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                session(stream, &messages, &script.lock().unwrap().clone(), &log);
            }
        });
        me
    }

    /// Adds a message.
    pub fn add(&self, uidl: &str, body: &[u8]) {
        self.messages
            .lock()
            .unwrap()
            .push((uidl.to_string(), body.to_vec()));
    }

    /// How many messages the maildrop holds.
    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

fn session(
    stream: std::net::TcpStream,
    messages: &Mutex<Maildrop>,
    script: &Script,
    log: &Mutex<Vec<String>>,
) {
    let mut out = stream.try_clone().unwrap();
    let mut input = BufReader::new(stream);
    let snapshot: Maildrop = messages.lock().unwrap().clone();
    let mut deleted = vec![false; snapshot.len()];
    let mut retrs = 0usize;
    let _ = out.write_all(b"+OK fake POP3 ready\r\n");
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return; // dropped: no UPDATE state, nothing deleted
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        log.lock().unwrap().push(if upper.starts_with("PASS") {
            "PASS <hidden>".into()
        } else {
            cmd.clone()
        });
        let arg = |i: usize| -> Option<usize> { cmd.split(' ').nth(i)?.parse().ok() };
        let reply: Vec<u8> = if upper == "CAPA" {
            let mut caps = String::from("+OK\r\nUSER\r\nTOP\r\n");
            if script.uidl {
                caps.push_str("UIDL\r\n");
            }
            if let Some(d) = script.login_delay {
                caps.push_str(&format!("LOGIN-DELAY {d}\r\n"));
            }
            if let Some(e) = &script.expire {
                caps.push_str(&format!("EXPIRE {e}\r\n"));
            }
            caps.push_str(".\r\n");
            caps.into_bytes()
        } else if upper.starts_with("USER") || upper.starts_with("PASS") || upper == "NOOP" {
            b"+OK\r\n".to_vec()
        } else if upper == "STAT" {
            let n = snapshot.len();
            let size: usize = snapshot.iter().map(|m| m.1.len()).sum();
            format!("+OK {n} {size}\r\n").into_bytes()
        } else if upper == "LIST" {
            let mut r = String::from("+OK\r\n");
            for (i, m) in snapshot.iter().enumerate() {
                if !deleted[i] {
                    r.push_str(&format!("{} {}\r\n", i + 1, m.1.len()));
                }
            }
            r.push_str(".\r\n");
            r.into_bytes()
        } else if upper == "UIDL" && script.uidl {
            let mut r = String::from("+OK\r\n");
            for (i, m) in snapshot.iter().enumerate() {
                if !deleted[i] {
                    r.push_str(&format!("{} {}\r\n", i + 1, m.0));
                }
            }
            if let Some(bad) = &script.bad_uidl_line {
                r.push_str(&format!("{bad}\r\n"));
            }
            r.push_str(".\r\n");
            r.into_bytes()
        } else if upper.starts_with("RETR") || upper.starts_with("TOP") {
            match arg(1).filter(|n| *n >= 1 && *n <= snapshot.len() && !deleted[*n - 1]) {
                None => b"-ERR no such message\r\n".to_vec(),
                Some(n) => {
                    let body = &snapshot[n - 1].1;
                    let body: Vec<u8> = if upper.starts_with("TOP") {
                        let end = body
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map_or(body.len(), |p| p + 4);
                        body[..end].to_vec()
                    } else {
                        retrs += 1;
                        body.clone()
                    };
                    let mut r = b"+OK\r\n".to_vec();
                    r.extend(stuff(&body));
                    r.extend_from_slice(b".\r\n");
                    if upper.starts_with("RETR") && script.drop_in_retr == Some(retrs) {
                        let _ = out.write_all(&r[..r.len() / 2]);
                        return;
                    }
                    r
                }
            }
        } else if upper.starts_with("DELE") {
            match arg(1).filter(|n| *n >= 1 && *n <= snapshot.len() && !deleted[*n - 1]) {
                None => b"-ERR no such message\r\n".to_vec(),
                Some(n) => {
                    deleted[n - 1] = true;
                    b"+OK deleted\r\n".to_vec()
                }
            }
        } else if upper == "RSET" {
            deleted.iter_mut().for_each(|d| *d = false);
            b"+OK\r\n".to_vec()
        } else if upper == "QUIT" {
            let gone: Vec<String> = snapshot
                .iter()
                .zip(&deleted)
                .filter(|(_, d)| **d)
                .map(|(m, _)| m.0.clone())
                .collect();
            messages.lock().unwrap().retain(|m| !gone.contains(&m.0));
            let _ = out.write_all(b"+OK bye\r\n");
            return;
        } else {
            b"-ERR unknown command\r\n".to_vec()
        };
        if out.write_all(&reply).is_err() {
            return;
        }
    }
}

/// Byte-stuffs a message (RFC 1939 §3): a line starting with "." gets another ".".
fn stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    for line in body.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}
