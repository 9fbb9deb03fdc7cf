//! Programs some tests drive besides our own (helm, kubernetes-validate, schemathesis):
//! found through their environment variable, on PATH, or where `.ci/run` installs them.
//! A missing one makes its test say `skipped` and why, except under `CI=true`, where
//! `.ci/run` has installed it and its absence fails the test.

use std::path::{Path, PathBuf};

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is one level below the root")
        .to_owned()
}

/// Whether this runs under CI (`CI=true`), where every tool must be there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `env_var` if set, else `name` on PATH, else in one of the CI tools cache's folders
/// (`~/.cache/parley-ci/<folder>`) or `extra` folders.
pub fn find(name: &str, env_var: &str, cache_folders: &[&str], extra: &[PathBuf]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{env_var}={} is not a file", path.display());
        return Some(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    let cache = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/parley-ci"));
    let cached = cache_folders
        .iter()
        .filter_map(|folder| cache.as_ref().map(|cache| cache.join(folder)));
    on_path
        .into_iter()
        .chain(cached)
        .chain(extra.iter().cloned())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Like [`find`]; when missing, `None` after printing why the test is skipped (with
/// `hint` on how to install it), or a failure under CI.
pub fn required(name: &str, env_var: &str, cache_folders: &[&str], extra: &[PathBuf], hint: &str) -> Option<PathBuf> {
    let found = find(name, env_var, cache_folders, extra);
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} not found although CI=true (.ci/run installs it); {hint}"
        );
        eprintln!("skipped: {name} not found; {hint}");
    }
    found
}
