//! `arctern import mbsync [FILE] [--write PATH]`: another tool's configuration as arctern's
//! (the translation is `config::import_mbsync`'s; this prints or writes it).

use super::{ImportFrom, exit};
use std::io::Write;
use std::path::PathBuf;

/// Runs `import` and returns the exit code.
pub fn run(from: &ImportFrom) -> u8 {
    let ImportFrom::Mbsync { file, write } = from else {
        eprintln!("arctern: import mbox needs the config (and --account)");
        return exit::CONFIG;
    };
    let path = match file {
        Some(f) => f.clone(),
        None => match directories::BaseDirs::new() {
            Some(b) => b.home_dir().join(".mbsyncrc"),
            None => PathBuf::from(".mbsyncrc"),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("arctern: cannot read {}: {e}", path.display());
            return exit::CONFIG;
        }
    };
    let out = crate::config::import_mbsync::translate(&text, &path.display().to_string());
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
