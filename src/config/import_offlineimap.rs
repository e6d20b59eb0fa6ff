//! `arctern import offlineimap`: an offlineimaprc turned into the equivalent arctern config
//! text. Every account whose repositories are an IMAP (or Gmail) server and a Maildir becomes
//! an arctern account; every setting without an arctern equivalent is kept as a comment, so
//! nothing is silently dropped. Reads text only: offlineimap's files are never written.
//!
//! The format is Python's configparser: `[section]` headers, `key = value` or `key: value`,
//! `#`/`;` comment lines, indented continuation lines. Sections are `[general]`,
//! `[Account NAME]` and `[Repository NAME]`. Python in values (`remotepasseval`, `nametrans`,
//! most `folderfilter`s) cannot be run here: the simple `folderfilter` forms (`lambda f: f in
//! [...]`, `not in`) are translated, the rest is named in a comment.

use super::import_text::{Setting, last_value, toml_key, toml_str, untranslated};
use std::collections::BTreeMap;

/// One section: its keys lower-cased, with value and line number.
#[derive(Debug, Default)]
struct Section {
    keys: Vec<Setting>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&str> {
        last_value(&self.keys, key)
    }

    fn flag(&self, key: &str) -> Option<bool> {
        match self.get(key)?.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Some(true),
            "no" | "false" | "off" | "0" => Some(false),
            _ => None,
        }
    }
}

fn parse(text: &str) -> BTreeMap<String, Section> {
    let mut out: BTreeMap<String, Section> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            // A continuation of the previous value.
            if let Some(s) = current.as_ref().and_then(|c| out.get_mut(c))
                && let Some(last) = s.keys.last_mut()
            {
                last.1.push('\n');
                last.1.push_str(trimmed);
            }
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let name = name.trim().to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let split = trimmed.find(['=', ':']).unwrap_or(trimmed.len());
        let (key, value) = trimmed.split_at(split);
        let value = value.get(1..).unwrap_or("").trim().to_string();
        if let Some(s) = current.as_ref().and_then(|c| out.get_mut(c)) {
            s.keys.push((key.trim().to_ascii_lowercase(), value, n + 1));
        }
    }
    out
}

/// The folder list of a simple `folderfilter`: `lambda f: f in ['A', 'B']` → `["A", "B"]`,
/// `lambda f: f not in [...]` → `["*", "!A", ...]`. Anything else: `None`.
fn folder_filter(expr: &str) -> Option<Vec<String>> {
    let body = expr.trim().strip_prefix("lambda")?;
    let (var, rest) = body.split_once(':')?;
    let var = var.trim();
    let rest = rest.trim();
    let after_var = rest.strip_prefix(var)?.trim_start();
    let (negated, list) = if let Some(l) = after_var.strip_prefix("not in") {
        (true, l)
    } else {
        (false, after_var.strip_prefix("in")?)
    };
    let inner = list.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut names = Vec::new();
    for item in inner.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let name = item
            .strip_prefix('\'')
            .and_then(|i| i.strip_suffix('\''))
            .or_else(|| item.strip_prefix('"').and_then(|i| i.strip_suffix('"')))?;
        names.push(name.to_string());
    }
    Some(if negated {
        std::iter::once("*".to_string())
            .chain(names.into_iter().map(|n| format!("!{n}")))
            .collect()
    } else {
        names
    })
}

/// Translates an offlineimaprc (`source` names it in the header comment) into arctern config
/// text.
pub fn translate(text: &str, source: &str) -> String {
    let sections = parse(text);
    let general = sections.get("general");
    let metadata = general
        .and_then(|g| g.get("metadata"))
        .unwrap_or("~/.offlineimap")
        .trim_end_matches('/')
        .to_string();
    let mut out = format!(
        "# Translated from {source} by `arctern import offlineimap`: one account per\n\
         # offlineimap account. Settings with no arctern equivalent are kept as comments. Stop\n\
         # offlineimap before the first `arctern sync` (its Maildir is adopted as it is, paired\n\
         # by its status under {metadata}).\n"
    );
    let accounts: Vec<String> = general
        .and_then(|g| g.get("accounts"))
        .map(|a| {
            a.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if accounts.is_empty() {
        out.push_str("# [general] names no accounts: nothing translated\n");
    }
    for name in accounts {
        out.push('\n');
        out.push_str(&account_of(&name, &sections, &metadata));
    }
    out
}

fn account_of(name: &str, sections: &BTreeMap<String, Section>, metadata: &str) -> String {
    let Some(account) = sections.get(&format!("Account {name}")) else {
        return format!("# Account {name}: no [Account {name}] section; not translated\n");
    };
    let repo = |key: &str| {
        account
            .get(key)
            .and_then(|r| sections.get(&format!("Repository {r}")).map(|s| (r, s)))
    };
    let (Some((local_name, local)), Some((remote_name, remote))) =
        (repo("localrepository"), repo("remoterepository"))
    else {
        return format!(
            "# Account {name}: its localrepository/remoterepository sections are missing; not translated\n"
        );
    };
    let local_type = local.get("type").unwrap_or("").to_ascii_lowercase();
    let remote_type = remote.get("type").unwrap_or("").to_ascii_lowercase();
    if !matches!(local_type.as_str(), "maildir" | "gmailmaildir")
        || !matches!(remote_type.as_str(), "imap" | "gmail")
    {
        return format!(
            "# Account {name}: {local_name} ({local_type}) <-> {remote_name} ({remote_type}) is not Maildir <-> IMAP: no equivalent\n"
        );
    }
    let gmail = remote_type == "gmail";
    let mut notes: Vec<String> = Vec::new();
    let mut acc = format!("[accounts.{}]\n", toml_key(name));
    let mut server = format!("[accounts.{}.imap]\n", toml_key(name));

    let folders_dir = local.get("localfolders").unwrap_or("~/Mail");
    acc.push_str(&format!(
        "maildir = {}\n",
        toml_str(folders_dir.trim_end_matches('/'))
    ));
    // offlineimap keeps each folder in its own directory under localfolders, INBOX included.
    acc.push_str("layout = \"verbatim\"\n");
    if local.get("sep").is_some_and(|s| s != "/") || local.get("sep").is_none() {
        notes.push(format!(
            "sep {}: offlineimap writes a subfolder as one directory (A{}B); arctern's verbatim layout nests them (A/B): the first sync renames each such directory and says so",
            local.get("sep").unwrap_or(". (the default)"),
            local.get("sep").unwrap_or(".")
        ));
    }
    acc.push_str(&format!(
        "offlineimap_status = {}\n",
        toml_str(&format!("{metadata}/Account-{name}"))
    ));
    if let Some(filter) = remote.get("folderfilter") {
        match folder_filter(filter) {
            Some(list) => {
                let list: Vec<String> = list.iter().map(|f| toml_str(f)).collect();
                acc.push_str(&format!("folders = [{}]\n", list.join(", ")));
            }
            None => notes.push(format!(
                "folderfilter {filter}: Python that arctern does not run; choose folders with folders = [\"*\", \"!Name\"]"
            )),
        }
    }
    let read_only = (
        remote.flag("readonly").unwrap_or(false),
        local.flag("readonly").unwrap_or(false),
    );
    match read_only {
        (true, false) => acc.push_str("sync = \"pull\"\n"),
        (false, true) => acc.push_str("sync = \"push\"\n"),
        (true, true) => notes.push("both repositories are readonly: nothing would sync".into()),
        (false, false) => {}
    }
    if let Some(size) = account.get("maxsize") {
        acc.push_str(&format!("max_size = {}\n", toml_str(size)));
    }
    if remote.flag("expunge") == Some(false) {
        notes.push(
            "expunge no: arctern's expunge = \"none\" keeps deletions from reaching the other side; offlineimap's leaves them flagged \\Deleted on the server".into(),
        );
    }
    notes.extend(unmapped(
        &account.keys,
        &["localrepository", "remoterepository", "maxsize"],
        "Account",
    ));
    notes.extend(unmapped(
        &local.keys,
        &["type", "localfolders", "sep", "readonly"],
        local_name,
    ));

    // The server.
    let host = remote
        .get("remotehost")
        .or(gmail.then_some("imap.gmail.com"));
    let Some(host) = host else {
        return format!(
            "# Account {name}: the remote repository names no remotehost; not translated\n"
        );
    };
    server.push_str(&format!("host = {}\n", toml_str(host)));
    if let Some(port) = remote.get("remoteport") {
        server.push_str(&format!("port = {port}\n"));
    }
    let ssl = remote.flag("ssl").unwrap_or(true);
    let starttls = remote.flag("starttls").unwrap_or(true);
    let tls = match (ssl || gmail, starttls) {
        (true, _) => "implicit",
        (false, true) => "starttls",
        (false, false) => "none",
    };
    server.push_str(&format!("tls = {}\n", toml_str(tls)));
    if tls == "none" {
        notes.push(
            "ssl = no and starttls = no: tls = \"none\" sends the password in the clear; use it only on a trusted link".into(),
        );
    }
    match remote.get("remoteuser") {
        Some(u) => server.push_str(&format!("user = {}\n", toml_str(u))),
        None => server.push_str(
            "user = \"CHANGE-ME\"                 # offlineimap had no remoteuser (it asked at run time)\n",
        ),
    }
    match (
        remote.get("remotepass"),
        remote.get("remotepassfile"),
        remote.get("remotepasseval"),
    ) {
        (Some(p), _, _) => server.push_str(&format!("password = {}\n", toml_str(p))),
        (None, Some(file), _) => server.push_str(&format!(
            "password_command = {}\n",
            toml_str(&format!("head -n 1 {}", shell_quote(file)))
        )),
        (None, None, Some(eval)) => {
            server.push_str(
                "password_command = \"CHANGE-ME\"     # a command printing the password\n",
            );
            notes.push(format!(
                "remotepasseval {eval}: Python that arctern does not run; give password_command a command printing the password"
            ));
        }
        (None, None, None) => server.push_str(
            "password_command = \"CHANGE-ME\"     # offlineimap had no password setting (it asked at run time)\n",
        ),
    }
    if let Some(ca) = remote
        .get("sslcacertfile")
        .filter(|c| !c.eq_ignore_ascii_case("OS-DEFAULT"))
    {
        server.push_str(&format!("ca_file = {}\n", toml_str(ca)));
    }
    if gmail {
        notes.push(
            "type = Gmail: labels are folders on Gmail's IMAP; arctern syncs them as folders"
                .into(),
        );
    }
    notes.extend(unmapped(
        &remote.keys,
        &[
            "type",
            "remotehost",
            "remoteport",
            "remoteuser",
            "remotepass",
            "remotepassfile",
            "remotepasseval",
            "ssl",
            "starttls",
            "sslcacertfile",
            "folderfilter",
            "readonly",
            "expunge",
        ],
        remote_name,
    ));
    let mut text = acc;
    for n in notes {
        text.push_str(&format!("# offlineimap: {n}\n"));
    }
    text.push('\n');
    text.push_str(&server);
    text
}

/// A path as one shell word.
fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-~".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn unmapped<'a>(
    keys: &'a [Setting],
    translated: &'a [&str],
    section: &'a str,
) -> impl Iterator<Item = String> + 'a {
    untranslated(keys, translated).map(move |(k, v, line)| {
        let v = v.replace('\n', " ");
        format!("line {line} ({section}): {k} = {v}: no equivalent")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_config(text: &str) -> crate::config::Config {
        crate::config::parse(std::path::Path::new("/tmp/x.toml"), text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn offlineimaps_minimal_example_maps() {
        let rc = include_str!("../../tests/fixtures/offlineimap.conf.minimal");
        let text = translate(rc, "offlineimap.conf.minimal");
        let config = parse_config(&text);
        let a = &config.accounts["Test"];
        assert_eq!(a.imap.host, "examplehost");
        assert_eq!(a.imap.user, "jgoerzen");
        assert_eq!(a.imap.tls, crate::config::TlsMode::Implicit);
        assert_eq!(a.layout, crate::model::policy::Layout::Verbatim);
        assert!(a.maildir.ends_with("Test"), "{:?}", a.maildir);
        let status = a.adopt.offlineimap_status.clone().unwrap();
        assert!(status.ends_with(".offlineimap/Account-Test"), "{status:?}");
    }

    #[test]
    fn passwords_filters_tls_and_the_rest_map_or_are_named() {
        let rc = "[general]\naccounts = Work, Home\nmetadata = ~/.cache/oi\n\n\
                  [Account Work]\nlocalrepository = WL\nremoterepository = WR\nmaxsize = 2000000\nautorefresh = 5\n\n\
                  [Repository WL]\ntype = Maildir\nlocalfolders = ~/Mail/work\nsep = /\n\n\
                  [Repository WR]\ntype = IMAP\nremotehost = imap.example.org\nremoteport = 143\nssl = no\n\
                  remoteuser = me\nremotepassfile = ~/.secrets/work pass\nsslcacertfile = /etc/ssl/work.pem\n\
                  folderfilter = lambda folder: folder not in ['Trash',\n    'Spam']\nnametrans = lambda f: f.upper()\n\n\
                  [Account Home]\nlocalrepository = HL\nremoterepository = HR\n\n\
                  [Repository HL]\ntype = Maildir\nlocalfolders = ~/Mail/home\n\n\
                  [Repository HR]\ntype = Gmail\nremoteuser = me@gmail.com\nremotepasseval = get_pass()\nreadonly = True\n\
                  folderfilter = lambda f: f in ['INBOX', '[Gmail]/Sent Mail']\n";
        let text = translate(rc, "rc");
        let config = parse_config(&text);
        let w = &config.accounts["Work"];
        assert_eq!(w.imap.tls, crate::config::TlsMode::Starttls);
        assert_eq!(w.imap.port, 143);
        assert_eq!(w.folders, vec!["*", "!Trash", "!Spam"]);
        assert_eq!(w.max_size, Some(2_000_000));
        assert!(w.imap.ca_file.is_some());
        assert!(
            matches!(w.imap.login, crate::config::Login::Password(crate::config::PasswordSource::Command(ref c)) if c == "head -n 1 '~/.secrets/work pass'"),
            "{:?}",
            w.imap.login
        );
        assert!(
            text.contains("nametrans = lambda f: f.upper(): no equivalent"),
            "{text}"
        );
        assert!(text.contains("autorefresh = 5: no equivalent"), "{text}");
        assert!(!text.contains("sep /:"), "{text}");
        let status = w.adopt.offlineimap_status.clone().unwrap();
        assert!(status.ends_with(".cache/oi/Account-Work"), "{status:?}");
        let h = &config.accounts["Home"];
        assert_eq!(h.imap.host, "imap.gmail.com");
        assert_eq!(h.sync, crate::config::SyncMode::Pull);
        assert_eq!(h.folders, vec!["INBOX", "[Gmail]/Sent Mail"]);
        assert!(text.contains("remotepasseval get_pass()"), "{text}");
        assert!(text.contains("sep . (the default)"), "{text}");
    }

    #[test]
    fn python_filters_are_not_guessed() {
        assert_eq!(folder_filter("lambda f: f.startswith('A')"), None);
        assert_eq!(
            folder_filter("lambda x: x in [\"A\", 'B']"),
            Some(vec!["A".to_string(), "B".to_string()])
        );
    }
}
