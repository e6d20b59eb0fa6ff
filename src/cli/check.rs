//! `arctern check`: the config is valid, the server answers, TLS verifies, the login works.

use super::exit;
use crate::config::Config;
use crate::store::imap;

/// Runs `check` and returns the exit code.
pub async fn run(config: &Config, accounts: &[String]) -> u8 {
    let selected = match super::select_accounts(config, accounts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    println!("config {} is valid", config.path.display());
    let mut code = exit::OK;
    for account in selected {
        let cfg = &account.imap;
        let password = match cfg.password.resolve(&account.name) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{}: {e}", account.name);
                code = exit::CONFIG;
                continue;
            }
        };
        match imap::connect(cfg, &password).await {
            Ok(conn) => {
                let caps: Vec<&str> = conn.capabilities().iter().map(String::as_str).collect();
                let tls = match cfg.tls {
                    crate::config::TlsMode::Implicit => "implicit TLS, certificate verified",
                    crate::config::TlsMode::Starttls => "STARTTLS, certificate verified",
                    crate::config::TlsMode::None => "no TLS (tls = \"none\")",
                };
                println!(
                    "{}: logged in to {}:{} ({tls}) as {}",
                    account.name, cfg.host, cfg.port, cfg.user
                );
                println!("{}: capabilities: {}", account.name, caps.join(" "));
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
