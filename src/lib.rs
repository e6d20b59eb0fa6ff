//! arctern: a mailbox sync and archival engine.
//!
//! The architecture in a screenful:
//! - [`config`] reads the TOML into a validated [`config::Config`].
//! - [`sync`] is pure: the planner takes the last synced state and a complete snapshot of each
//!   side (`Far` = IMAP server, `Near` = Maildir) and returns a plan. No I/O, no clock.
//! - [`engine`] executes plans against the stores ([`store::imap`], [`store::maildir`]) and
//!   records results in [`db`], the SQLite state that is the source of truth; [`engine::run`] is
//!   the one run pipeline (sync, history, index, metrics) of `arctern sync` and the daemon, and
//!   [`engine::Error`] the one error type whose kind decides exit codes and the daemon's moves.
//!
//! Layers, from the bottom; a module may use its own layer and those below, never one above
//! (the `layering` test below keeps it so, and keeps the module graph free of cycles):
//!
//! | layer | modules | what they are |
//! |---|---|---|
//! | 0 | [`model`], [`names`], [`message`], [`clock`], [`exit`] | vocabulary: identifiers, flags, state rows, policies, folder names, the clock, exit codes |
//! | 1 | [`config`], [`search`] | the validated config; the query language (pure) |
//! | 2 | [`sync`], [`db`], [`store`] | the pure planner (model only); the state database (`now` passed in); one adapter per protocol or on-disk format |
//! | 3 | [`index`], [`metrics`] | derived state: the search index, the metrics file |
//! | 4 | [`engine`] | the only place that joins planner, stores, db and index: one run of one account |
//! | 5 | [`daemon`] | when to run the engine |
//! | 6 | [`cli`] | wiring and printing |
//!
//! Invariants:
//! - *Unknown is not gone.* Only a complete, verified listing reaches the planner; an IMAP error
//!   poisons the connection instead of yielding an empty result, and a missing Maildir is an error.
//! - *Intent → effect → state.* Anything that could duplicate a message (download, APPEND) is
//!   recorded as an intent first and reconciled after a crash (`engine::recover`).
//! - *Identity is the UID pair.* Message-ID and size are only evidence for re-pairing after a
//!   UIDVALIDITY change.
//! - *Nothing a server sends becomes a path unchecked*: folder names pass [`names`].

pub mod cli;
pub(crate) mod clock;
pub(crate) mod config;
pub mod daemon;
pub(crate) mod db;
pub mod engine;
pub mod exit;
pub(crate) mod index;
pub(crate) mod message;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod names;
pub(crate) mod search;
pub(crate) mod store;
pub(crate) mod sync;

#[cfg(test)]
mod layering {
    //! Keeps the table of layers in the crate doc true: reads every source file, finds the
    //! `crate::<module>` paths its code (not its comments, not its tests) names, and fails on an
    //! import from a higher layer or a cycle between top-level modules.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The layer of each top-level module (the crate doc's table).
    const LAYERS: &[(&str, u8)] = &[
        ("model", 0),
        ("names", 0),
        ("message", 0),
        ("clock", 0),
        ("exit", 0),
        ("config", 1),
        ("search", 1),
        ("sync", 2),
        ("db", 2),
        ("store", 2),
        ("index", 3),
        ("metrics", 3),
        ("engine", 4),
        ("daemon", 5),
        ("cli", 6),
    ];

    /// The code of a file without its `#[cfg(test)]` part and without comments.
    fn code_of(text: &str) -> String {
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        text.lines()
            .map(|l| match l.find("//") {
                Some(i) => &l[..i],
                None => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Top-level module → the other top-level modules its code names.
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let rel = path.strip_prefix(&root).unwrap();
                let first = rel.components().next().unwrap().as_os_str();
                let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
                if module == "lib" || module == "main" {
                    continue;
                }
                let code = code_of(&std::fs::read_to_string(&path).unwrap());
                let deps = out.entry(module.clone()).or_default();
                for (i, _) in code.match_indices("crate::") {
                    let name: String = code[i + "crate::".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name != module && !name.is_empty() {
                        deps.insert(name);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn no_module_imports_from_a_layer_above_its_own_and_there_is_no_cycle() {
        let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
        let graph = imports();
        for module in graph.keys() {
            assert!(
                layer.contains_key(module.as_str()),
                "module {module} has no layer: add it to LAYERS and to the table in lib.rs"
            );
        }
        let mut wrong = Vec::new();
        for (module, deps) in &graph {
            for dep in deps {
                let (Some(m), Some(d)) = (layer.get(module.as_str()), layer.get(dep.as_str()))
                else {
                    continue;
                };
                if d > m {
                    wrong.push(format!("{module} (layer {m}) uses {dep} (layer {d})"));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "imports from above:\n{}",
            wrong.join("\n")
        );
        // No cycle among top-level modules (same-layer imports are allowed, cycles are not).
        fn visit<'a>(
            node: &'a str,
            graph: &'a BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) {
            if done.contains(node) {
                return;
            }
            if let Some(at) = path.iter().position(|n| *n == node) {
                panic!("import cycle: {} -> {node}", path[at..].join(" -> "));
            }
            path.push(node);
            for dep in graph.get(node).into_iter().flatten() {
                visit(dep, graph, path, done);
            }
            path.pop();
            done.insert(node);
        }
        let mut done = BTreeSet::new();
        for module in graph.keys() {
            visit(module, &graph, &mut Vec::new(), &mut done);
        }
    }

    #[test]
    fn the_check_sees_an_import_from_above() {
        // The test's own reader must see a real import, or the test above could never fail.
        let code = code_of(
            "use crate::engine::run;\n// crate::cli in a comment\n#[cfg(test)]\nmod t { use crate::daemon; }",
        );
        assert!(code.contains("crate::engine"));
        assert!(!code.contains("crate::cli"));
        assert!(!code.contains("crate::daemon"));
        let graph = imports();
        assert!(graph["engine"].contains("sync"), "{graph:?}");
        assert!(graph["cli"].contains("engine"), "{graph:?}");
    }
}
