//! The homeserver's layers point one way (ARCHITECTURE.md): handlers (`api/`,
//! `federation/`, `admin/`) → domain (`accounts`, `devices`, `hub/`, `inbox/`,
//! `key_packages`, `key_backup`, `follower`, `transparency`) → `remote/` and `store/`. This test reads the sources and
//! fails on an import against that direction.

#![allow(clippy::expect_used)] // a test: an unreadable source tree should stop it loudly

use std::path::{Path, PathBuf};

const HANDLERS: &[&str] = &["api", "federation", "admin", "startup", "dev"];
const DOMAIN: &[&str] = &[
    "accounts",
    "devices",
    "hub",
    "inbox",
    "key_packages",
    "key_backup",
    "follower",
    "retention",
    "files",
    "second_factor",
    "transparency",
];

/// The modules (first path segment under `crate::`) a source file names.
fn imported_modules(source: &str) -> Vec<String> {
    let mut modules = Vec::new();
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c}`: every item in the braces (nested braces are deeper paths).
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        modules.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            modules.push(first_segment(&item));
        } else {
            modules.push(first_segment(rest));
        }
    }
    modules.retain(|m| !m.is_empty());
    modules
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Which layer a file is in: its top-level module's name.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("a file under src");
    let first = relative.components().next().expect("a path");
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()
}

#[test]
fn imports_point_down_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for file in sources(&src) {
        let module = module_of(&src, &file);
        let source = std::fs::read_to_string(&file).expect("read a source file");
        for imported in imported_modules(&source) {
            let forbidden = match module.as_str() {
                // The store is the bottom: it imports nothing of the crate but itself.
                "store" => imported != "store",
                "remote" => HANDLERS.contains(&imported.as_str()) || DOMAIN.contains(&imported.as_str()),
                m if DOMAIN.contains(&m) => HANDLERS.contains(&imported.as_str()),
                _ => false,
            };
            if forbidden {
                violations.push(format!("{} imports crate::{imported}", file.display()));
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "imports against the layering (see ARCHITECTURE.md):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_import_reader_sees_grouped_imports() {
    let modules = imported_modules("use crate::{hub, remote::{self, Remote}};\nuse crate::store::groups;");
    assert_eq!(modules, ["hub", "remote", "store"]);
}
