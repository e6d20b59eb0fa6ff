//! `arctern import mbsync`: an mbsyncrc (isync 1.4's format) turned into the equivalent arctern
//! config text. Every IMAP ↔ Maildir `Channel` becomes an account; every setting that has no
//! arctern equivalent is kept as a comment beside it, so nothing is silently dropped. Reads
//! text only: the mbsync files are never written.
//!
//! The format (mbsync(1), "CONFIGURATION"): sections start with `IMAPAccount`, `IMAPStore`,
//! `MaildirStore`, `Channel` or `Group` and a name; each line is `Keyword value`, `#` starts a
//! comment, values may be quoted. Channel keywords before the first section are defaults.

use super::import_text::{Setting, last_value, toml_key, toml_str, untranslated};
use std::collections::BTreeMap;

/// One section (or the global defaults, kind "").
#[derive(Debug, Default)]
struct Section {
    kind: String,
    name: String,
    /// The settings, in order.
    keys: Vec<Setting>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&str> {
        last_value(&self.keys, key)
    }
}

/// A value without its surrounding quotes (and with `\"`, `\\` unescaped).
fn unquote(v: &str) -> String {
    let v = v.trim();
    match v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

fn parse(text: &str) -> Vec<Section> {
    const KINDS: [&str; 5] = [
        "imapaccount",
        "imapstore",
        "maildirstore",
        "channel",
        "group",
    ];
    let mut out = vec![Section::default()];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let key = key.to_ascii_lowercase();
        if KINDS.contains(&key.as_str()) {
            out.push(Section {
                kind: key,
                name: unquote(value),
                keys: Vec::new(),
            });
        } else if let Some(section) = out.last_mut() {
            section.keys.push((key, unquote(value), n + 1));
        }
    }
    out
}

/// `:store:path` → (store, path).
fn store_ref(v: &str) -> Option<(String, String)> {
    let rest = v.strip_prefix(':')?;
    let (store, path) = rest.split_once(':')?;
    Some((store.to_string(), path.to_string()))
}

/// Translates an mbsyncrc (`source` names it in the header comment) into arctern config text.
pub fn translate(text: &str, source: &str) -> String {
    let sections = parse(text);
    let by = |kind: &str| -> BTreeMap<String, &Section> {
        sections
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| (s.name.clone(), s))
            .collect()
    };
    let (accounts, imap_stores, maildir_stores) =
        (by("imapaccount"), by("imapstore"), by("maildirstore"));
    let defaults = &sections[0];
    let mut out = format!(
        "# Translated from {source} by `arctern import mbsync`: one account per IMAP <-> Maildir\n\
         # Channel. Settings with no arctern equivalent are kept as comments. Stop mbsync before\n\
         # the first `arctern sync` (its Maildir is adopted as it is).\n"
    );
    for note in unmapped(
        &defaults.keys,
        &[
            "expunge",
            "create",
            "sync",
            "patterns",
            "maxsize",
            "syncstate",
        ],
    ) {
        out.push_str(&format!("# {note}\n"));
    }
    for group in sections.iter().filter(|s| s.kind == "group") {
        out.push_str(&format!(
            "# Group {}: arctern syncs every account (or the ones named on the command line)\n",
            group.name
        ));
    }
    for channel in sections.iter().filter(|s| s.kind == "channel") {
        out.push('\n');
        out.push_str(&account_of(
            channel,
            defaults,
            &accounts,
            &imap_stores,
            &maildir_stores,
        ));
    }
    out
}

/// One channel as an account (or, when it cannot be one, as comments saying why).
fn account_of(
    channel: &Section,
    defaults: &Section,
    accounts: &BTreeMap<String, &Section>,
    imap_stores: &BTreeMap<String, &Section>,
    maildir_stores: &BTreeMap<String, &Section>,
) -> String {
    let name = &channel.name;
    let key = |k: &str| channel.get(k).or_else(|| defaults.get(k));
    let far = key("far").or_else(|| key("master")).and_then(store_ref);
    let near = key("near").or_else(|| key("slave")).and_then(store_ref);
    let (Some((far_store, far_path)), Some((near_store, near_path))) = (far, near) else {
        return format!("# Channel {name}: no Far/Near stores: not translated\n");
    };
    let (Some(imap), Some(maildir)) =
        (imap_stores.get(&far_store), maildir_stores.get(&near_store))
    else {
        return format!(
            "# Channel {name}: {far_store} -> {near_store} is not IMAP -> Maildir: no equivalent (arctern mirrors an IMAP server into a Maildir)\n"
        );
    };
    let account = imap.get("account").and_then(|a| accounts.get(a));
    let imap_key = |k: &str| imap.get(k).or_else(|| account.and_then(|a| a.get(k)));
    let mut notes: Vec<String> = Vec::new();
    let mut acc = format!("[accounts.{}]\n", toml_key(name));
    let mut server = format!("[accounts.{}.imap]\n", toml_key(name));

    // The Maildir: mbsync's Inbox is the root in Maildir++ (as arctern and Dovecot have it).
    let path = maildir.get("path").unwrap_or("~/Mail/");
    let layout = maildir.get("subfolders").map(str::to_ascii_lowercase);
    let root = match (layout.as_deref(), maildir.get("inbox")) {
        (Some("maildir++"), Some(inbox)) => inbox.to_string(),
        _ => format!("{path}{near_path}"),
    };
    acc.push_str(&format!(
        "maildir = {}\n",
        toml_str(root.trim_end_matches('/'))
    ));
    match layout.as_deref() {
        Some("maildir++") => acc.push_str("layout = \"maildir++\"\n"),
        Some("verbatim") => acc.push_str("layout = \"verbatim\"\n"),
        other => notes.push(format!(
            "SubFolders {}: arctern's layouts are maildir++ (the default) and verbatim; check the folder names on disk",
            other.unwrap_or("(unset)")
        )),
    }
    if !far_path.is_empty() {
        notes.push(format!(
            "Far :{far_store}:{far_path}: arctern syncs whole folder trees chosen by `folders`, not a sub-path"
        ));
    }
    if let Some(p) = key("patterns") {
        let list: Vec<String> = p
            .split_whitespace()
            .map(|w| toml_str(&unquote(w)))
            .collect();
        acc.push_str(&format!("folders = [{}]\n", list.join(", ")));
    }
    if let Some(sync) = key("sync") {
        let words: Vec<String> = sync
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        let mode = match words.as_slice() {
            [w] if w == "all" || w == "full" => Some("two-way"),
            [w] if w == "pull" => Some("pull"),
            [w] if w == "push" => Some("push"),
            _ => None,
        };
        match mode {
            Some(m) => acc.push_str(&format!("sync = {}\n", toml_str(m))),
            None => notes.push(format!(
                "Sync {sync}: arctern syncs everything one way or both (sync = \"two-way\" | \"pull\" | \"push\"); two-way is the default"
            )),
        }
    }
    if let Some(e) = key("expunge") {
        match e.to_ascii_lowercase().as_str() {
            "both" => acc.push_str("expunge = \"both\"\n"),
            "near" | "slave" => acc.push_str("expunge = \"near\"\n"),
            "far" | "master" => acc.push_str("expunge = \"far\"\n"),
            "none" => acc.push_str("expunge = \"none\"\n"),
            other => notes.push(format!("Expunge {other}: not understood")),
        }
    }
    if let Some(size) = key("maxsize") {
        acc.push_str(&format!("max_size = {}\n", toml_str(size)));
    }
    // mbsync's records make adopting its Maildir exact: in each folder (`*`, found there) or
    // under a path (mbsync's default `~/.mbsync/` is looked at without a key).
    match key("syncstate") {
        Some("*") => acc.push_str(
            "# mbsync: SyncState *: its state in each Maildir folder is read on the first sync\n",
        ),
        Some(p) => acc.push_str(&format!("mbsync_state = {}\n", toml_str(p))),
        None => {}
    }
    if let Some(c) = key("create").filter(|c| !c.eq_ignore_ascii_case("both")) {
        notes.push(format!(
            "Create {c}: arctern creates new folders on the side that lacks them (in the directions `sync` allows)"
        ));
    }
    notes.extend(unmapped(
        &channel.keys,
        &[
            "far",
            "near",
            "master",
            "slave",
            "patterns",
            "sync",
            "expunge",
            "maxsize",
            "create",
            "syncstate",
        ],
    ));

    // The server.
    let host = imap_key("host");
    let tunnel = imap_key("tunnel");
    let (host, implicit) = match host {
        Some(h) => match h.strip_prefix("imaps:") {
            Some(rest) => (Some(rest.to_string()), true),
            None => (Some(h.to_string()), false),
        },
        None => (None, false),
    };
    let Some(host) = host else {
        let why = match tunnel {
            Some(t) => format!("Tunnel {t:?}: arctern connects over TCP only"),
            None => "no Host".to_string(),
        };
        return format!("# Channel {name}: {why}; not translated\n");
    };
    server.push_str(&format!("host = {}\n", toml_str(&host)));
    if let Some(port) = imap_key("port") {
        server.push_str(&format!("port = {port}\n"));
    }
    let tls = match imap_key("ssltype").or_else(|| imap_key("tlstype")) {
        Some(t) if t.eq_ignore_ascii_case("imaps") => "implicit",
        Some(t) if t.eq_ignore_ascii_case("none") => "none",
        Some(_) => "starttls",
        None if implicit => "implicit",
        None => "starttls", // mbsync's default
    };
    server.push_str(&format!("tls = {}\n", toml_str(tls)));
    match imap_key("user") {
        Some(u) => server.push_str(&format!("user = {}\n", toml_str(u))),
        None => server.push_str(
            "user = \"CHANGE-ME\"                 # mbsync had no User (it asked at run time)\n",
        ),
    }
    match (imap_key("passcmd"), imap_key("pass")) {
        (Some(cmd), _) => {
            let cmd = cmd.strip_prefix('+').unwrap_or(cmd);
            server.push_str(&format!("password_command = {}\n", toml_str(cmd)));
        }
        (None, Some(p)) => server.push_str(&format!("password = {}\n", toml_str(p))),
        (None, None) => server.push_str(
            "password_command = \"CHANGE-ME\"     # mbsync had no Pass or PassCmd (it asked at run time)\n",
        ),
    }
    if let Some(cert) = imap_key("certificatefile") {
        server.push_str(&format!("ca_file = {}\n", toml_str(cert)));
    }
    if imap_key("requiressl").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
        notes.push(
            "RequireSSL no: arctern still requires TLS (STARTTLS here); set tls = \"none\" only for a trusted link".into(),
        );
    }
    notes.extend(unmapped(&maildir.keys, &["path", "inbox", "subfolders"]));
    for section in [Some(*imap), account.copied()].into_iter().flatten() {
        notes.extend(unmapped(
            &section.keys,
            &[
                "host",
                "port",
                "user",
                "pass",
                "passcmd",
                "ssltype",
                "tlstype",
                "certificatefile",
                "account",
                "requiressl",
                "tunnel",
            ],
        ));
    }
    let mut text = acc;
    for n in notes {
        text.push_str(&format!("# mbsync: {n}\n"));
    }
    text.push('\n');
    text.push_str(&server);
    text
}

/// A note for each key of a section that is not among those translated.
fn unmapped<'a>(keys: &'a [Setting], translated: &'a [&str]) -> impl Iterator<Item = String> + 'a {
    untranslated(keys, translated)
        .map(|(k, v, line)| format!("line {line}: {k} {v}: no equivalent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// isync's own example configuration (Debian's /usr/share/doc/isync/examples/mbsyncrc.sample,
    /// isync 1.4.4), verbatim.
    const SAMPLE: &str = include_str!("../../tests/fixtures/mbsyncrc.sample");

    #[test]
    fn isyncs_sample_translates_into_a_config_that_parses() {
        let text = translate(SAMPLE, "mbsyncrc.sample");
        let config = crate::config::parse(std::path::Path::new("/tmp/x.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let names: Vec<&str> = config.accounts.keys().map(String::as_str).collect();
        assert_eq!(names, vec!["inbox", "o2o", "personal", "work"], "{text}");
        let work = &config.accounts["work"];
        assert_eq!(work.imap.host, "work.host.com");
        assert_eq!(work.imap.user, "tehuser");
        assert_eq!(work.expunge, crate::model::policy::ExpungePolicy::Near);
        assert!(work.maildir.ends_with("Mail/work"), "{:?}", work.maildir);
        let personal = &config.accounts["personal"];
        assert_eq!(personal.imap.port, 6789);
        // `RequireSSL no` never turns TLS off by itself: STARTTLS, and a note.
        assert_eq!(personal.imap.tls, crate::config::TlsMode::Starttls);
        assert!(
            text.contains("RequireSSL no: arctern still requires TLS"),
            "{text}"
        );
        assert!(text.contains("trash Trash: no equivalent"), "{text}");
        assert_eq!(personal.max_size, Some(200 << 10));
        let o2o = &config.accounts["o2o"];
        assert_eq!(o2o.imap.host, "foo.bar.com");
        assert_eq!(o2o.imap.tls, crate::config::TlsMode::Implicit);
        assert_eq!(o2o.layout, crate::model::policy::Layout::Verbatim);
        assert_eq!(o2o.folders, vec!["%"]);
        // What has no equivalent is said, not dropped.
        assert!(text.contains("Tunnel"), "{text}");
        assert!(text.contains("st1 -> st2 is not IMAP -> Maildir"), "{text}");
        assert!(text.contains("Sync PullNew Push"), "{text}");
        assert!(text.contains("maxmessages 150: no equivalent"), "{text}");
        assert!(text.contains("mapinbox inbox: no equivalent"), "{text}");
        assert!(text.contains("Group boxes"), "{text}");
        assert!(text.contains("Far :server:INBOX"), "{text}");
    }

    #[test]
    fn pass_cmd_tls_and_maildir_plus_plus_map_to_their_keys() {
        let rc = "IMAPAccount me\nHost imap.example.org\nUser me@example.org\nPassCmd \"pass show mail/me\"\nSSLType IMAPS\nCertificateFile /etc/ssl/me.pem\n\n\
                  IMAPStore me-far\nAccount me\n\nMaildirStore me-near\nPath ~/Mail/me/\nInbox ~/Mail/me\nSubFolders Maildir++\n\n\
                  Channel me\nFar :me-far:\nNear :me-near:\nPatterns * !Trash\nSync All\nCreate Near\nSyncState *\n";
        let text = translate(rc, "rc");
        let config = crate::config::parse(std::path::Path::new("/tmp/x.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let me = &config.accounts["me"];
        assert_eq!(me.imap.tls, crate::config::TlsMode::Implicit);
        assert_eq!(me.imap.port, 993);
        assert_eq!(me.folders, vec!["*", "!Trash"]);
        assert_eq!(me.layout, crate::model::policy::Layout::MaildirPlusPlus);
        assert!(me.maildir.ends_with("Mail/me"), "{:?}", me.maildir);
        assert!(
            matches!(me.imap.login, crate::config::Login::Password(crate::config::PasswordSource::Command(ref c)) if c == "pass show mail/me")
        );
        assert!(me.imap.ca_file.is_some());
        assert!(text.contains("Create Near"), "{text}");
        assert!(
            text.contains("SyncState *: its state in each Maildir folder"),
            "{text}"
        );
        assert!(me.adopt.mbsync_state.is_none());
        let with_path = translate(
            &rc.replace("SyncState *", "SyncState ~/.cache/mbsync/"),
            "rc",
        );
        let config = crate::config::parse(std::path::Path::new("/tmp/x.toml"), &with_path)
            .unwrap_or_else(|e| panic!("{e}\n{with_path}"));
        let state = config.accounts["me"].adopt.mbsync_state.clone().unwrap();
        assert!(
            state.to_string_lossy().ends_with(".cache/mbsync/"),
            "{state:?}"
        );
    }
}
