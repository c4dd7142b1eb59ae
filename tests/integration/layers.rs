//! The layer rules of docs/ARCHITECTURE.md, checked on the source: requests flow
//! net → lync → core → store ports, and each layer imports only what the rules allow.
//! A `use` of a forbidden layer (or of a crate that belongs to another layer) fails here.

use std::path::{Path, PathBuf};

/// Per top-level module of the library: the sibling modules it may not name, and the
/// external crates it may not use (each of those belongs to exactly one layer).
const RULES: &[(&str, &[&str], &[&str])] = &[
    // The core: no protocol, no backend, no sockets.
    (
        "core",
        &["lync", "xmpp", "xml", "net", "store", "app", "http"],
        &["rusqlite", "quick_xml", "tokio_rustls", "rustls", "axum"],
    ),
    // Backends implement the core's ports and know nothing of connections or protocols.
    (
        "store",
        &["lync", "xmpp", "xml", "net", "app", "http"],
        &["quick_xml", "tokio_rustls", "rustls", "axum"],
    ),
    // The gateway translates and renders; it never touches a backend or the app.
    (
        "lync",
        &["xmpp", "store", "app", "http"],
        &["rusqlite", "axum"],
    ),
    // The HTTPS side renders what the core and the network layer count, and asks the
    // store's port; no SIP, no backend.
    (
        "http",
        &["lync", "xmpp", "store", "app"],
        &["rusqlite", "quick_xml"],
    ),
    // The XMPP gateway, like the Lync one: the core and the network layer, no backend.
    (
        "xmpp",
        &["store", "app", "http", "lync"],
        &["rusqlite", "axum"],
    ),
    // The shared XML tree is a utility: it names no other module.
    (
        "xml",
        &["core", "lync", "xmpp", "net", "store", "app", "http"],
        &["rusqlite", "axum", "tokio_rustls", "rustls"],
    ),
    // The network layer is generic over the protocol.
    (
        "net",
        &["lync", "xmpp", "xml", "core", "store", "app", "http"],
        &["rusqlite", "quick_xml", "axum"],
    ),
];

/// The layer's source files. A gateway's unit-test files may wire the app and a real
/// backend under the gateway they test; the core's tests run on the ports in memory, so
/// every file of the core is held to its rule.
fn rust_files(dir: &Path, with_tests: bool, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, with_tests, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && (with_tests || !is_test_file(&path))
        {
            out.push(path);
        }
    }
}

/// Unit-test files: `tests.rs`, `*_tests.rs`.
fn is_test_file(path: &Path) -> bool {
    path.file_stem()
        .and_then(|stem| stem.to_str())
        .is_some_and(|stem| stem == "tests" || stem.ends_with("_tests"))
}

/// Whether `line` names `module` of this crate or `krate` as a path root.
fn names(line: &str, root: &str) -> bool {
    let line = line.trim_start();
    if line.starts_with("//") {
        return false;
    }
    [format!("crate::{root}"), format!("perch::{root}")]
        .iter()
        .any(|path| {
            line.match_indices(path.as_str()).any(|(at, _)| {
                let after = line[at + path.len()..].chars().next();
                !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
}

fn uses_crate(line: &str, krate: &str) -> bool {
    let line = line.trim_start();
    !line.starts_with("//")
        && line
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .any(|word| word == krate || word.starts_with(&format!("{krate}::")))
}

#[test]
fn layers_import_only_what_the_rules_allow() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (layer, modules, crates) in RULES {
        let mut files = Vec::new();
        // A layer is a directory, or a single file (`xml.rs`).
        let single = src.join(format!("{layer}.rs"));
        if single.is_file() {
            files.push(single);
        } else {
            rust_files(&src.join(layer), *layer == "core", &mut files);
        }
        assert!(!files.is_empty(), "no sources under src/{layer}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (number, line) in text.lines().enumerate() {
                let place = format!("{}:{}", file.display(), number + 1);
                for module in *modules {
                    if names(line, module) {
                        violations.push(format!("{place}: {layer} names {module}: {line}"));
                    }
                }
                for krate in *crates {
                    if uses_crate(line, krate) {
                        violations.push(format!("{place}: {layer} uses {krate}: {line}"));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer rules broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_a_violation() {
    assert!(names("use crate::lync::sip::Message;", "lync"));
    assert!(names(
        "    let x = crate::store::SqliteStore::open(p);",
        "store"
    ));
    assert!(!names("use crate::lync_like::x;", "lync"));
    assert!(!names("// crate::store is mentioned in a comment", "store"));
    assert!(uses_crate("use rusqlite::Connection;", "rusqlite"));
    assert!(uses_crate("fn f(e: rusqlite::Error) {}", "rusqlite"));
    assert!(!uses_crate("use my_rusqlite_wrapper::X;", "rusqlite"));
}
