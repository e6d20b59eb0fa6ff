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

/// Runs openssl in `dir`, asserting success; stdout.
fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A certificate for localhost/127.0.0.1 the way self-hosted servers have one: `openssl req
/// -x509` (which marks it CA:TRUE), or with `expired` made by `openssl ca -selfsign` for two
/// days in 2020. Returns (cert, key, openssl's SHA-256 fingerprint, the SPKI pin in base64).
fn self_signed(dir: &std::path::Path, expired: bool) -> (String, String, String, String) {
    let san = "subjectAltName=DNS:localhost,IP:127.0.0.1";
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    if expired {
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\nunique_subject = no\n[p]\ncommonName = supplied\n",
        )
        .unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "01\n").unwrap();
        let mut args = vec!["req", "-new"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "self.key",
            "-out",
            "self.csr",
            "-subj",
            "/CN=localhost",
            "-addext",
            san,
        ]);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "ca",
                "-selfsign",
                "-keyfile",
                "self.key",
                "-in",
                "self.csr",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
                "-config",
                "ca.cnf",
                "-batch",
                "-notext",
                "-out",
                "self.crt",
            ],
        );
    } else {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "self.key",
            "-out",
            "self.crt",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            san,
        ]);
        openssl(dir, &args);
        let ext = openssl(
            dir,
            &[
                "x509",
                "-in",
                "self.crt",
                "-noout",
                "-ext",
                "basicConstraints",
            ],
        );
        assert!(ext.contains("CA:TRUE"), "openssl req -x509 made {ext}");
    }
    let fp = openssl(
        dir,
        &[
            "x509",
            "-in",
            "self.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let fp = fp.trim().rsplit('=').next().unwrap().to_string();
    let pubkey = openssl(dir, &["x509", "-in", "self.crt", "-pubkey", "-noout"]);
    std::fs::write(dir.join("pub.pem"), pubkey).unwrap();
    openssl(
        dir,
        &[
            "pkey", "-pubin", "-in", "pub.pem", "-outform", "der", "-out", "pub.der",
        ],
    );
    openssl(
        dir,
        &["dgst", "-sha256", "-binary", "-out", "pub.sha", "pub.der"],
    );
    let digest = std::fs::read(dir.join("pub.sha")).unwrap();
    let b64 = openssl_base64(dir, &digest);
    (
        dir.join("self.crt").display().to_string(),
        dir.join("self.key").display().to_string(),
        fp,
        b64,
    )
}

fn openssl_base64(dir: &std::path::Path, bytes: &[u8]) -> String {
    std::fs::write(dir.join("b64.in"), bytes).unwrap();
    openssl(dir, &["base64", "-A", "-in", "b64.in"])
        .trim()
        .to_string()
}

/// Makes the test Dovecot serve `cert`/`key` (restarting it).
fn serve(w: &mut World, cert: &str, key: &str) {
    std::fs::copy(cert, w.dovecot.dir.join("server.crt")).unwrap();
    std::fs::copy(key, w.dovecot.dir.join("server.key")).unwrap();
    w.dovecot.restart(std::time::Duration::ZERO);
}

#[test]
fn a_self_signed_certificate_given_as_ca_file_is_trusted_and_check_prints_its_pins() {
    let mut w = World::new("", "");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, fingerprint, spki) = self_signed(dir.path(), false);
    serve(&mut w, &cert, &key);
    let port = w.dovecot.imaps_port;
    w.write_config(
        &format!("tls = \"implicit\"\nport = {port}\nca_file = \"{cert}\""),
        "",
    );
    let out = w.arctern(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("certificate sha256:{fingerprint}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("public key spki-sha256:{spki}")),
        "{stdout}"
    );
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 100), "");
    w.sync_ok();
    assert_same(&mut c, "INBOX", &w.maildir);
    // Not trusted without it: refused, and the error gives what to trust or pin.
    w.write_config(&format!("tls = \"implicit\"\nport = {port}"), "");
    let out = w.arctern(&["sync"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("sha256:{fingerprint}")) && err.contains("tls_pin"),
        "{err}"
    );
}

#[test]
fn a_pinned_certificate_is_accepted_even_expired_and_a_wrong_pin_is_refused() {
    let mut w = World::new("", "");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, fingerprint, spki) = self_signed(dir.path(), true);
    serve(&mut w, &cert, &key);
    let port = w.dovecot.imaps_port;
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 100), "");
    // Either form, openssl's spelling or without colons in lower case.
    let bare = fingerprint.replace(':', "").to_lowercase();
    for pin in [
        format!("sha256:{fingerprint}"),
        format!("sha256:{bare}"),
        format!("spki-sha256:{spki}"),
    ] {
        w.write_config(
            &format!("tls = \"implicit\"\nport = {port}\ntls_pin = [\"{pin}\"]"),
            "",
        );
        let out = w.arctern(&["check"]);
        assert!(
            out.status.success(),
            "{pin}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    w.sync_ok();
    assert_same(&mut c, "INBOX", &w.maildir);
    // A wrong pin (a rotated key, say) is refused with the digest seen; a second pin that
    // matches lets it through (rotation).
    let wrong = format!("sha256:{}", "00".repeat(32));
    w.write_config(
        &format!("tls = \"implicit\"\nport = {port}\ntls_pin = [\"{wrong}\"]"),
        "",
    );
    let out = w.arctern(&["sync"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("matches no tls_pin") && err.contains(&fingerprint),
        "{err}"
    );
    w.write_config(
        &format!(
            "tls = \"implicit\"\nport = {port}\ntls_pin = [\"{wrong}\", \"spki-sha256:{spki}\"]"
        ),
        "",
    );
    assert!(w.arctern(&["check"]).status.success());
    // A pin that is not one: a config error naming the key.
    w.write_config(
        &format!("tls = \"implicit\"\nport = {port}\ntls_pin = [\"md5:00\"]"),
        "",
    );
    let out = w.arctern(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("imap.tls_pin"));
}

#[test]
fn implicit_tls_against_a_plain_text_port_says_what_to_change() {
    let w = World::new("", "");
    w.write_config(
        &format!("tls = \"implicit\"\nport = {}", w.dovecot.imap_port),
        "",
    );
    let out = w.arctern(&["check"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("answered in plain text")
            && err.contains("tls = \"starttls\"")
            && err.contains("993"),
        "{err}"
    );
}

/// An account config for `user` at 127.0.0.1:`port` with these TLS lines.
fn tls_config(dir: &std::path::Path, port: u16, user: &str, tls: &str) -> std::path::PathBuf {
    let config = dir.join(format!("{user}-{port}.toml"));
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{d}/state-{port}\"\n[accounts.t]\nmaildir = \"{d}/Mail-{port}\"\n[accounts.t.imap]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\npassword = \"secret\"\ntimeout_seconds = 20\n{tls}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn cyrus_and_courier_with_self_signed_certificates_trusted_by_file_or_pin() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, fingerprint, spki) = self_signed(certs.path(), false);
    let (cert, key) = (std::path::Path::new(&cert), std::path::Path::new(&key));
    let local = tempfile::tempdir().unwrap();

    // Cyrus: implicit TLS with the certificate as ca_file, STARTTLS pinned by public key.
    let cyrus = Cyrus::start_tls(cert, key);
    cyrus.add_user("alice");
    let mut c = Client::connect(cyrus.imap_port, "alice");
    c.append("INBOX", &message(1, "INBOX", 300), "");
    let implicit = tls_config(
        local.path(),
        cyrus.imaps_port,
        "alice",
        &format!("tls = \"implicit\"\nca_file = \"{}\"", cert.display()),
    );
    let out = arctern_with(&implicit, &["check"]);
    let text = stdout_ok(out, "check (Cyrus, ca_file)", &cyrus.log());
    assert!(
        text.contains(&format!("certificate sha256:{fingerprint}")),
        "{text}"
    );
    stdout_ok(
        arctern_with(&implicit, &["sync"]),
        "sync (Cyrus, implicit TLS)",
        &cyrus.log(),
    );
    let starttls = tls_config(
        local.path(),
        cyrus.imap_port,
        "alice",
        &format!("tls = \"starttls\"\ntls_pin = [\"spki-sha256:{spki}\"]"),
    );
    stdout_ok(
        arctern_with(&starttls, &["sync"]),
        "sync (Cyrus, STARTTLS, pinned)",
        &cyrus.log(),
    );
    // Without either: refused, exit 4.
    let bare = tls_config(
        local.path(),
        cyrus.imaps_port,
        "alice",
        "tls = \"implicit\"",
    );
    assert_eq!(arctern_with(&bare, &["check"]).status.code(), Some(4));

    // Courier: STARTTLS, pinned by the certificate's fingerprint; a wrong pin is refused.
    let courier = Courier::start_tls(&["bob"], cert, key);
    let pinned = tls_config(
        local.path(),
        courier.imap_port,
        "bob",
        &format!("tls = \"starttls\"\ntls_pin = [\"sha256:{fingerprint}\"]"),
    );
    let text = stdout_ok(
        arctern_with(&pinned, &["check"]),
        "check (Courier, pinned)",
        &courier.log(),
    );
    assert!(text.contains("IMAP4REV1"), "{text}");
    stdout_ok(
        arctern_with(&pinned, &["sync"]),
        "sync (Courier, STARTTLS)",
        &courier.log(),
    );
    let wrong = tls_config(
        local.path(),
        courier.imap_port,
        "bob",
        "tls = \"starttls\"\ntls_pin = [\"sha256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\"]",
    );
    let out = arctern_with(&wrong, &["check"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&fingerprint.replace(':', "").to_lowercase()) || err.contains(&fingerprint),
        "{err}"
    );
}
