//! A scripted SMTP server for what Postfix will not do on request: answer the end of DATA with
//! a chosen sequence of temporary (4xx) failures. It keeps every accepted message (the bytes
//! between DATA and the end-of-data line, dot-unstuffed) and every command line it received.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// The fake server's shared state.
pub struct FakeSmtp {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Answers for the end of DATA, used in order (one starting with 2 accepts the message);
    /// once empty every message is accepted.
    pub data_answers: Arc<Mutex<Vec<String>>>,
    /// Accepted messages.
    pub accepted: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Command lines received (AUTH lines replaced).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl FakeSmtp {
    /// Starts the server on a free port, in a thread that lives as long as the test.
    pub fn start(data_answers: &[&str]) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let me = FakeSmtp {
            port: listener.local_addr().unwrap().port(),
            data_answers: Arc::new(Mutex::new(
                data_answers.iter().map(|s| s.to_string()).collect(),
            )),
            accepted: Arc::new(Mutex::new(Vec::new())),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        let (answers, accepted, log) =
            (me.data_answers.clone(), me.accepted.clone(), me.log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = session(stream, &answers, &accepted, &log);
            }
        });
        me
    }
}

fn session(
    stream: std::net::TcpStream,
    answers: &Mutex<Vec<String>>,
    accepted: &Mutex<Vec<Vec<u8>>>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    out.write_all(b"220 fake.test ESMTP\r\n")?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let verb = text
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        log.lock().unwrap().push(if verb == "AUTH" {
            "AUTH <hidden>".into()
        } else {
            text.clone()
        });
        let reply: String = match verb.as_str() {
            "EHLO" => "250-fake.test\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n".into(),
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => "250 ok\r\n".into(),
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            "DATA" => {
                out.write_all(b"354 go ahead\r\n")?;
                let mut message = Vec::new();
                loop {
                    line.clear();
                    if input.read_until(b'\n', &mut line)? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    let l = line.strip_prefix(b".").unwrap_or(&line);
                    message.extend_from_slice(l);
                }
                let answer = {
                    let mut a = answers.lock().unwrap();
                    if a.is_empty() {
                        None
                    } else {
                        Some(a.remove(0))
                    }
                };
                match answer {
                    Some(a) if !a.starts_with('2') => format!("{a}\r\n"),
                    _ => {
                        accepted.lock().unwrap().push(message);
                        "250 2.0.0 queued as FAKE\r\n".into()
                    }
                }
            }
            _ => "502 not implemented\r\n".into(),
        };
        out.write_all(reply.as_bytes())?;
    }
}
