//! OAuth2 against a real authorization server (oauth2-mock-server, support/oauth2.rs) and the
//! test Dovecot checking every token at the server's introspection endpoint (its oauth2 passdb):
//! the browser sign-in (PKCE, loopback redirect), the device flow, OAUTHBEARER and XOAUTH2,
//! refresh before expiry and after a refused login, a revoked grant, POP3 and SMTP.

use crate::support::oauth2::{AuthServer, browse};
use crate::support::*;
use std::io::BufRead;
use std::process::{Command, Stdio};

/// A Dovecot that takes tokens from `auth` for `mechanisms`, and a config for alice's account
/// `test` logging in with OAuth2 (`extra` goes into the imap table).
fn world(auth: &AuthServer, mechanisms: &str, device: bool) -> World {
    let dir = tempfile::tempdir().unwrap().keep();
    let w = World::new(&auth.dovecot_config(&dir, mechanisms), "");
    write_oauth_config(&w, auth, device);
    w
}

fn write_oauth_config(w: &World, auth: &AuthServer, device: bool) {
    std::fs::write(
        &w.config,
        format!(
            "state_dir = \"{}\"\n\n[accounts.test]\nmaildir = \"{}\"\n\n[accounts.test.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"alice\"\nauth = \"oauth2\"\ntimeout_seconds = 20\n\n[accounts.test.imap.oauth2]\n{}",
            w.state_dir.display(),
            w.maildir.display(),
            w.dovecot.imap_port,
            auth.client_table(device)
        ),
    )
    .unwrap();
}

/// Runs `arctern auth login test` (with `flags`), plays the browser's part with the address it
/// prints, and returns its output once it has exited.
fn sign_in(w: &World, flags: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_arctern"))
        .arg("-c")
        .arg(&w.config)
        .args(["auth", "login", "test"])
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        printed.push_str(&line);
        if line.starts_with("http://") {
            if !flags.contains(&"--device") {
                let (status, page) = browse(line.trim());
                assert_eq!(status, 200, "{page}");
                assert!(page.contains("signed in"), "{page}");
            }
            break;
        }
        line.clear();
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    printed.push_str(&rest);
    let mut result = child.wait_with_output().unwrap();
    result.stdout = printed.into_bytes();
    result
}

fn token_file(w: &World) -> std::path::PathBuf {
    w.state_dir.join("oauth2/test.json")
}

fn stored(w: &World, key: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(token_file(w)).unwrap()).unwrap();
    v[key].as_str().unwrap().to_string()
}

#[test]
fn browser_sign_in_then_sync_with_oauthbearer_and_xoauth2() {
    let auth = AuthServer::start(3600, "alice");
    let w = world(&auth, "xoauth2 oauthbearer", false);
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 500), "\\Seen");

    // Not signed in yet: exit 4, and the message says what to run.
    let out = w.arctern(&["sync"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run `arctern auth login test`"), "{err}");

    let out = sign_in(&w, &["--no-browser"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("code_challenge_method=S256"), "PKCE: {text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(token_file(&w))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let access = stored(&w, "access_token");
    assert!(!text.contains(&access) && !String::from_utf8_lossy(&out.stderr).contains(&access));
    assert_eq!(auth.count("authorization_code"), 1);

    let out = w.sync_ok();
    assert!(out.contains("+1 ↓"), "{out}");
    assert_same(&mut c, "INBOX", &w.maildir);
    assert!(
        w.dovecot.log().contains("method=OAUTHBEARER"),
        "{}",
        w.dovecot.log()
    );
    let status = stdout_ok(w.arctern(&["auth", "status"]), "auth status", "");
    assert!(
        status.contains("test: signed in; access token valid for"),
        "{status}"
    );
    assert!(!status.contains(&access));

    // A server that offers only XOAUTH2 (as Microsoft 365 does) gets XOAUTH2.
    let dir = tempfile::tempdir().unwrap();
    let x = World::new(&auth.dovecot_config(dir.path(), "xoauth2"), "");
    write_oauth_config(&x, &auth, false);
    std::fs::create_dir_all(x.state_dir.join("oauth2")).unwrap();
    std::fs::copy(token_file(&w), token_file(&x)).unwrap();
    x.client().append("INBOX", &message(2, "INBOX", 500), "");
    let out = x.sync_ok();
    assert!(out.contains("+1 ↓"), "{out}");
    assert!(
        x.dovecot.log().contains("method=XOAUTH2"),
        "{}",
        x.dovecot.log()
    );
}

#[test]
fn tokens_are_refreshed_before_expiry_and_after_a_refusal_and_a_revoked_grant_stops_only_that_account()
 {
    // Access tokens that live 60 s: always within the five minutes before expiry.
    let auth = AuthServer::start(60, "alice");
    let w = world(&auth, "xoauth2 oauthbearer", false);
    let out = sign_in(&w, &["--no-browser"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = stored(&w, "access_token");
    w.sync_ok();
    assert_eq!(auth.count("refresh_token"), 1, "refreshed before expiry");
    assert_ne!(stored(&w, "access_token"), first);

    // A token the server refuses although it looks fresh (revoked early): one refresh, then
    // the login works.
    let auth2 = AuthServer::start(3600, "alice");
    let w2 = world(&auth2, "xoauth2 oauthbearer", false);
    assert!(sign_in(&w2, &["--no-browser"]).status.success());
    auth2.revoke(&stored(&w2, "access_token"));
    let mut c = w2.client();
    c.append("INBOX", &message(3, "INBOX", 400), "");
    let out = w2.sync_ok();
    assert!(out.contains("+1 ↓"), "{out}");
    assert_eq!(
        auth2.count("refresh_token"),
        1,
        "refreshed after the refusal"
    );

    // The grant revoked too: exit 4 naming the command; the Maildir is untouched.
    auth2.revoke(&stored(&w2, "access_token"));
    auth2.revoke(&stored(&w2, "refresh_token"));
    let before = local_messages(&w2.maildir);
    let out = w2.arctern(&["sync"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid_grant") && err.contains("run `arctern auth login test`"),
        "{err}"
    );
    assert_eq!(local_messages(&w2.maildir), before);
}

#[test]
fn device_sign_in_then_pop3_and_smtp_with_tokens() {
    let auth = AuthServer::start(3600, "alice");
    let w = world(&auth, "xoauth2 oauthbearer", true);
    let out = sign_in(&w, &["--device"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("enter the code WDJB-MJHT"), "{text}");
    assert!(auth.count("device_code") >= 2, "polled until approved");
    w.client().append("INBOX", &message(4, "INBOX", 600), "");
    assert!(w.sync_ok().contains("+1 ↓"));

    // POP3 with the same tokens (the account's file, copied to the POP3 account's name).
    let pop = w.config.with_file_name("pop.toml");
    let pop_state = w.state_dir.with_file_name("pop-state");
    std::fs::write(
        &pop,
        format!(
            "state_dir = \"{}\"\n[accounts.p]\nmaildir = \"{}\"\n[accounts.p.pop3]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"alice\"\nauth = \"oauth2\"\ntimeout_seconds = 20\n[accounts.p.pop3.oauth2]\n{}",
            pop_state.display(),
            w.maildir.with_file_name("PopMail").display(),
            w.dovecot.pop3_port,
            auth.client_table(false)
        ),
    )
    .unwrap();
    std::fs::create_dir_all(pop_state.join("oauth2")).unwrap();
    std::fs::copy(token_file(&w), pop_state.join("oauth2/p.json")).unwrap();
    let out = stdout_ok(arctern_with(&pop, &["sync"]), "POP3 sync", &w.dovecot.log());
    assert!(out.contains("+1 ↓"), "{out}");
    let log = w.dovecot.log();
    assert!(
        log.lines()
            .any(|l| l.contains("pop3-login") && l.contains("method=OAUTHBEARER")),
        "{log}"
    );

    // SMTP submission (Postfix asking the Dovecot's auth) with a token.
    let postfix = crate::support::postfix::Postfix::start(&w.dovecot, "", &[]);
    let smtp = w.config.with_file_name("smtp.toml");
    let smtp_state = w.state_dir.with_file_name("smtp-state");
    std::fs::write(
        &smtp,
        format!(
            "state_dir = \"{s}\"\n[accounts.test]\nmaildir = \"{}\"\n[accounts.test.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"alice\"\npassword = \"secret\"\n\n[targets.out]\n[targets.out.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\nuser = \"alice\"\nauth = \"oauth2\"\nenvelope_from = \"alice@example.org\"\nenvelope_to = [\"alice@example.org\"]\n[targets.out.smtp.oauth2]\n{}",
            w.maildir.display(),
            w.dovecot.imap_port,
            postfix.smtp_port,
            w.dovecot.ca_file.display(),
            auth.client_table(false),
            s = smtp_state.display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(smtp_state.join("oauth2")).unwrap();
    std::fs::copy(token_file(&w), smtp_state.join("oauth2/out.json")).unwrap();
    let out = stdout_ok(
        arctern_with(&smtp, &["push", "test", "--to", "out"]),
        "SMTP push",
        &postfix.log(),
    );
    assert!(out.contains("+1 sent"), "{out}");
    postfix.wait_until_delivered(std::time::Duration::from_secs(30));
    let log = postfix.log();
    assert!(log.contains("sasl_method=OAUTHBEARER"), "{log}");
}

#[test]
fn the_daemon_recovers_from_a_token_revoked_while_it_runs() {
    let auth = AuthServer::start(3600, "alice");
    let w = world(&auth, "xoauth2 oauthbearer", false);
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        text.replace(
            "[accounts.test]\n",
            "[accounts.test]\ninterval = \"2s\"\nidle = [\"INBOX\"]\n",
        ),
    )
    .unwrap();
    assert!(sign_in(&w, &["--no-browser"]).status.success());
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_arctern"))
        .arg("-c")
        .arg(&w.config)
        .arg("daemon")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.state_dir.with_file_name("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let log =
        || std::fs::read_to_string(w.state_dir.with_file_name("daemon.log")).unwrap_or_default();
    let arrived = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if local_messages(&w.maildir).len() >= n {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    };
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 400), "");
    assert!(arrived(1), "{}", log());
    assert_eq!(
        auth.count("refresh_token"),
        0,
        "a fresh token is used as it is"
    );
    // The token revoked under the running daemon (as after a password change): the IDLE
    // session goes on, the sync it triggers is refused, renews once and delivers.
    auth.revoke(&stored(&w, "access_token"));
    c.append("INBOX", &message(2, "INBOX", 400), "");
    assert!(arrived(2), "{}", log());
    assert!(auth.count("refresh_token") >= 1, "{}", log());
    assert!(
        !log().contains("no longer accepts the sign-in"),
        "{}",
        log()
    );
    stop_by_pid(daemon.id());
    let _ = daemon.wait();
}
