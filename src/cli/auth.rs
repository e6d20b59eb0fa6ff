//! `arctern auth login|status`: signing in with OAuth2 and saying what is stored. The flows
//! themselves are [`crate::store::oauth`]'s; here the address and code reach the terminal, and
//! the outcome an exit code.

use super::{AuthAction, exit};
use crate::config::{Config, TokenSource};
use crate::store::oauth::{self, SignInUi};

/// Prints what the user must do, on stdout, each address on its own line (a script or a test
/// reads it from there).
struct Terminal;

impl SignInUi for Terminal {
    fn open_this(&self, url: &str) {
        println!("Open this address in a browser to sign in:");
        println!("{url}");
    }

    fn enter_code(&self, url: &str, code: &str) {
        println!("On any device, open this address and enter the code {code}:");
        println!("{url}");
    }
}

/// Runs an `auth` subcommand; returns the exit code.
pub async fn run(config: &Config, action: &AuthAction) -> u8 {
    match action {
        AuthAction::Login {
            name,
            no_browser,
            device,
        } => login(config, name, !*no_browser, *device).await,
        AuthAction::Status { names } => status(config, names),
    }
}

async fn login(config: &Config, name: &str, open_browser: bool, device: bool) -> u8 {
    let login = match config.oauth2_login(name) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    let client = match &login.tokens {
        TokenSource::Client(c) => c,
        TokenSource::Command(_) => {
            eprintln!(
                "arctern: {name} takes its tokens from token_command; sign in with that helper"
            );
            return exit::CONFIG;
        }
    };
    let result = if device {
        oauth::sign_in_device(login, client, &Terminal).await
    } else {
        oauth::sign_in_browser(login, client, open_browser, &Terminal).await
    };
    match result {
        Ok(()) => {
            println!(
                "{name}: signed in; tokens stored in {}",
                client.token_file.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("arctern: {e}");
            crate::engine::Error::from(e).kind().exit_code()
        }
    }
}

fn status(config: &Config, names: &[String]) -> u8 {
    let logins = if names.is_empty() {
        config.oauth2_logins()
    } else {
        let mut out = Vec::new();
        for n in names {
            match config.oauth2_login(n) {
                Ok(l) => out.push(l),
                Err(e) => {
                    eprintln!("arctern: {e}");
                    return exit::CONFIG;
                }
            }
        }
        out
    };
    if logins.is_empty() {
        println!("no account or target logs in with OAuth2");
    }
    let mut code = exit::OK;
    for login in logins {
        match oauth::describe(login) {
            Ok(text) => println!("{}: {text}", login.name),
            Err(e) => {
                println!("{}: {e}", login.name);
                code = exit::CONNECT;
            }
        }
    }
    code
}
