//! TLS is verified: a self-signed CA works through ca_file and is refused without it; STARTTLS
//! upgrades before the password is sent; config errors name the file and line.

use crate::support::*;

#[test]
fn implicit_tls_and_starttls_verify_the_server() {
    let w = World::new("", "");
    let ca = w.dovecot.ca_file.display().to_string();
    // Implicit TLS on the imaps port, trusting the test CA.
    w.write_config(
        &format!(
            "tls = \"implicit\"\nport = {}\nca_file = \"{ca}\"",
            w.dovecot.imaps_port
        ),
        "",
    );
    let out = w.arctern(&["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("IMAP4REV1"));
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 100), "");
    w.sync_ok();
    assert_same(&mut c, "INBOX", &w.maildir);

    // Without the CA: refused, exit code 4, and nothing synced.
    w.write_config(
        &format!("tls = \"implicit\"\nport = {}", w.dovecot.imaps_port),
        "",
    );
    let out = w.arctern(&["check"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TLS") && err.to_lowercase().contains("certificate"),
        "{err}"
    );

    // STARTTLS on the plain port.
    w.write_config(
        &format!(
            "tls = \"starttls\"\nport = {}\nca_file = \"{ca}\"",
            w.dovecot.imap_port
        ),
        "",
    );
    let out = w.arctern(&["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.write_config(
        &format!("tls = \"starttls\"\nport = {}", w.dovecot.imap_port),
        "",
    );
    assert_eq!(w.arctern(&["check"]).status.code(), Some(4));
}

#[test]
fn config_errors_name_file_and_line_and_exit_2() {
    let w = World::new("", "");
    let text = std::fs::read_to_string(&w.config).unwrap();
    let text = text.replace("timeout_seconds", "timeout_secs");
    let line = text
        .lines()
        .position(|l| l.starts_with("timeout_secs"))
        .unwrap()
        + 1;
    std::fs::write(&w.config, &text).unwrap();
    let out = w.arctern(&["sync"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:{line}:", w.config.display())),
        "{err}"
    );
    assert!(err.contains("timeout_secs"), "{err}");
}
