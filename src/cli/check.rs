//! `arctern check`: the config is valid, the server answers, TLS verifies, the login works.

use super::exit;
use crate::config::{AnyAccount, Config, Pop3Account, TlsMode};

fn tls_words(tls: TlsMode, upgrade: &str) -> String {
    match tls {
        TlsMode::Implicit => "implicit TLS, certificate verified".into(),
        TlsMode::Starttls => format!("{upgrade}, certificate verified"),
        TlsMode::None => "no TLS (tls = \"none\")".into(),
    }
}

/// Checks a POP3 account: connect, TLS, login, CAPA; QUIT without touching anything.
async fn check_pop3(account: &Pop3Account) -> u8 {
    let cfg = &account.pop3;
    match crate::engine::credentials::pop3_login(cfg, &account.name).await {
        Ok(conn) => {
            let c = conn.capabilities().clone();
            println!(
                "{}: logged in to POP3 {}:{} ({}) as {}",
                account.name,
                cfg.host,
                cfg.port,
                tls_words(cfg.tls, "STLS"),
                cfg.user
            );
            let mut caps = Vec::new();
            for (on, name) in [
                (c.uidl, "UIDL"),
                (c.top, "TOP"),
                (c.pipelining, "PIPELINING"),
                (c.user, "USER"),
            ] {
                if on {
                    caps.push(name.to_string());
                }
            }
            if !c.sasl.is_empty() {
                caps.push(format!("SASL {}", c.sasl.join(" ")));
            }
            if let Some(d) = c.login_delay {
                caps.push(format!("LOGIN-DELAY {d}"));
            }
            if let Some(e) = c.expire {
                caps.push(format!("EXPIRE {e:?}"));
            }
            println!("{}: capabilities: {}", account.name, caps.join(", "));
            if !c.uidl && account.pop3.identify_by == crate::config::Pop3Identity::Uidl {
                eprintln!(
                    "{}: the server does not offer UIDL; set identify_by = \"header-hash\"",
                    account.name
                );
            }
            let _ = conn.quit().await;
            exit::OK
        }
        Err(e) => {
            eprintln!("{}: {e}", account.name);
            exit::CONNECT
        }
    }
}

/// Runs `check` and returns the exit code.
pub async fn run(config: &Config, accounts: &[String]) -> u8 {
    let selected = match config.select_accounts(accounts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    println!("config {} is valid", config.path.display());
    let mut code = exit::OK;
    for account in selected {
        let account = match account {
            AnyAccount::Imap(a) => a,
            AnyAccount::Pop3(a) => {
                let this = check_pop3(a).await;
                code = code.max(this);
                continue;
            }
        };
        let cfg = &account.imap;
        match crate::engine::credentials::imap_login(cfg, &account.name).await {
            Ok((conn, _)) => {
                let caps: Vec<&str> = conn.capabilities().iter().map(String::as_str).collect();
                let tls = tls_words(cfg.tls, "STARTTLS");
                println!(
                    "{}: logged in to {}:{} ({tls}) as {}",
                    account.name, cfg.host, cfg.port, cfg.user
                );
                println!("{}: capabilities: {}", account.name, caps.join(" "));
                let names = conn.server_names(None);
                if !names.prefix().is_empty() {
                    println!(
                        "{}: personal folders under {:?} (local folder names leave it out)",
                        account.name,
                        names.prefix()
                    );
                }
                if let Some(cert) = conn.peer_certificate() {
                    // Both forms `tls_pin` takes, ready to copy.
                    println!("{}: certificate {}", account.name, cert.sha256_pin());
                    if let Some(spki) = cert.spki_pin() {
                        println!("{}: public key {spki}", account.name);
                    }
                }
                conn.logout().await;
            }
            Err(e) => {
                eprintln!("{}: {e}", account.name);
                code = exit::CONNECT;
            }
        }
    }
    code
}
