//! What the config importers (`import_mbsync`, `import_offlineimap`) share: the keyword list
//! a section of another tool's file is read into, and writing TOML strings and table keys.

/// One setting as read: (keyword lower-cased, value, line number).
pub(super) type Setting = (String, String, usize);

/// The value of the last setting named `key` (later lines win, as in both tools).
pub(super) fn last_value<'a>(settings: &'a [Setting], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|(k, _, _)| k == key)
        .map(|(_, v, _)| v.as_str())
}

/// The settings whose keyword is not among `translated` (each gets a comment).
pub(super) fn untranslated<'a>(
    settings: &'a [Setting],
    translated: &'a [&str],
) -> impl Iterator<Item = &'a Setting> + 'a {
    settings
        .iter()
        .filter(move |(k, _, _)| !translated.contains(&k.as_str()))
}

/// A TOML basic string.
pub(super) fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML table key: bare when it can be, quoted otherwise.
pub(super) fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_string()
    } else {
        toml_str(name)
    }
}
