//! `provider = "gmail" | "outlook" | "fastmail" | "icloud" | "yahoo"`: the servers, ports, TLS,
//! sign-in and connection limits of the large providers, filled into an account's or target's
//! server table where it leaves them out (every value written in the table wins). Pure data.

use super::login::OAuth2Provider;
use serde::Deserialize;

/// A known mail provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Gmail and Google Workspace.
    Gmail,
    /// Microsoft 365 and Outlook.com (Exchange Online).
    Outlook,
    /// Fastmail.
    Fastmail,
    /// iCloud Mail.
    Icloud,
    /// Yahoo Mail.
    Yahoo,
}

/// A server of a provider: host, port, whether TLS starts at once.
#[derive(Clone, Copy, Debug)]
pub struct Server {
    /// Host name.
    pub host: &'static str,
    /// Port.
    pub port: u16,
    /// True for TLS from the first byte, false for STARTTLS.
    pub implicit_tls: bool,
}

const fn tls(host: &'static str, port: u16) -> Server {
    Server {
        host,
        port,
        implicit_tls: true,
    }
}

const fn starttls(host: &'static str, port: u16) -> Server {
    Server {
        host,
        port,
        implicit_tls: false,
    }
}

impl Provider {
    /// The provider's name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Gmail => "gmail",
            Provider::Outlook => "outlook",
            Provider::Fastmail => "fastmail",
            Provider::Icloud => "icloud",
            Provider::Yahoo => "yahoo",
        }
    }

    /// Its IMAP server.
    pub fn imap(self) -> Server {
        match self {
            Provider::Gmail => tls("imap.gmail.com", 993),
            Provider::Outlook => tls("outlook.office365.com", 993),
            Provider::Fastmail => tls("imap.fastmail.com", 993),
            Provider::Icloud => tls("imap.mail.me.com", 993),
            Provider::Yahoo => tls("imap.mail.yahoo.com", 993),
        }
    }

    /// Its POP3 server, where it has one.
    pub fn pop3(self) -> Option<Server> {
        match self {
            Provider::Gmail => Some(tls("pop.gmail.com", 995)),
            Provider::Outlook => Some(tls("outlook.office365.com", 995)),
            Provider::Fastmail => Some(tls("pop.fastmail.com", 995)),
            Provider::Icloud => None,
            Provider::Yahoo => Some(tls("pop.mail.yahoo.com", 995)),
        }
    }

    /// Its submission server.
    pub fn smtp(self) -> Server {
        match self {
            Provider::Gmail => tls("smtp.gmail.com", 465),
            Provider::Outlook => starttls("smtp.office365.com", 587),
            Provider::Fastmail => tls("smtp.fastmail.com", 465),
            Provider::Icloud => starttls("smtp.mail.me.com", 587),
            Provider::Yahoo => tls("smtp.mail.yahoo.com", 465),
        }
    }

    /// The OAuth2 endpoints it gives third-party clients, if any: Google and Microsoft do;
    /// the others take app passwords.
    pub fn oauth2(self) -> Option<OAuth2Provider> {
        match self {
            Provider::Gmail => Some(OAuth2Provider::Google),
            Provider::Outlook => Some(OAuth2Provider::Microsoft),
            _ => None,
        }
    }

    /// True when it accepts no password at all (Exchange Online turned basic auth off).
    pub fn oauth2_only(self) -> bool {
        self == Provider::Outlook
    }

    /// The most IMAP connections of one account it allows at once (Gmail: 15; Exchange
    /// Online: 20, some kept free for mail readers), when it documents a limit.
    pub fn max_connections(self) -> Option<u8> {
        match self {
            Provider::Gmail => Some(10),
            Provider::Outlook => Some(8),
            Provider::Icloud | Provider::Yahoo => Some(4),
            Provider::Fastmail => None,
        }
    }

    /// The bytes a day it lets one account download and upload over IMAP, where it documents
    /// a budget (Gmail: 2,500 MB down, 500 MB up, "Bandwidth limits" in Google's IMAP help;
    /// over it, IMAP is locked for up to a day). Decimal megabytes, as Google counts.
    pub fn daily_budgets(self) -> (Option<u64>, Option<u64>) {
        match self {
            Provider::Gmail => (Some(2_500_000_000), Some(500_000_000)),
            _ => (None, None),
        }
    }

    /// What a password login needs there, for the error when none is given.
    pub fn password_hint(self) -> &'static str {
        match self {
            Provider::Gmail => {
                "an app password (Google Account, Security, App passwords) or auth = \"oauth2\" with an oauth2 table"
            }
            Provider::Outlook => {
                "auth = \"oauth2\" with an oauth2 table (Microsoft accepts nothing else)"
            }
            Provider::Fastmail => "an app password (Settings, Privacy & Security, App passwords)",
            Provider::Icloud => {
                "an app-specific password (account.apple.com, Sign-In and Security)"
            }
            Provider::Yahoo => "an app password (Account Security, Generate app password)",
        }
    }
}
