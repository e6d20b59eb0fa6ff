//! `arctern import mbsync|offlineimap [FILE] [--write PATH]`: another tool's configuration as
//! arctern's (the translations are `config::import_mbsync`'s and `config::import_offlineimap`'s;
//! this prints or writes them).

use super::{ImportFrom, exit};
use std::io::Write;
use std::path::PathBuf;

/// Runs `import` and returns the exit code.
pub fn run(from: &ImportFrom) -> u8 {
    type Translate = fn(&str, &str) -> String;
    let (file, write, default_name, translate): (_, _, _, Translate) = match from {
        ImportFrom::Mbsync { file, write } => (
            file,
            write,
            ".mbsyncrc",
            crate::config::import_mbsync::translate,
        ),
        ImportFrom::Offlineimap { file, write } => (
            file,
            write,
            ".offlineimaprc",
            crate::config::import_offlineimap::translate,
        ),
        ImportFrom::Mbox { .. } => {
            eprintln!("arctern: import mbox needs the config (and --account)");
            return exit::CONFIG;
        }
    };
    let path = match file {
        Some(f) => f.clone(),
        None => match directories::BaseDirs::new() {
            Some(b) => b.home_dir().join(default_name),
            None => PathBuf::from(default_name),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("arctern: cannot read {}: {e}", path.display());
            return exit::CONFIG;
        }
    };
    let out = translate(&text, &path.display().to_string());
    match write {
        None => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = stdout.write_all(out.as_bytes());
            exit::OK
        }
        Some(dest) => {
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dest)
                .and_then(|mut f| f.write_all(out.as_bytes()));
            match written {
                Ok(()) => {
                    eprintln!(
                        "arctern: wrote {}; check it, then run `arctern -c {} check`",
                        dest.display(),
                        dest.display()
                    );
                    exit::OK
                }
                Err(e) => {
                    eprintln!("arctern: cannot write {}: {e}", dest.display());
                    exit::LOCAL
                }
            }
        }
    }
}
