//! Replays every committed seed (`fuzz/corpus/<target>/`) and crash regression input
//! (`fuzz/regressions/<target>/`) through its fuzz target's body, on stable Rust: none may
//! panic, and each seed named `valid-*` must be accepted all the way (so the seeds keep
//! reaching the code behind the checks; regenerate them with `tests/seeds.rs` when the
//! formats change).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use parley_fuzz::TARGETS;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_regression_input_replays_without_a_panic() {
    let mut report = Vec::new();
    for (target, check) in TARGETS {
        let seeds = files(&root().join("corpus").join(target));
        assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seed");
        let regressions = files(&root().join("regressions").join(target));
        let mut valid = 0;
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).expect("read the input");
            let accepted = check(&data);
            let file_name = path.file_name().expect("file name").to_string_lossy();
            if file_name.starts_with("valid-") {
                assert!(accepted, "{} is named valid-* but {target} refuses it", path.display());
                valid += 1;
            }
        }
        assert!(valid > 0, "fuzz/corpus/{target} has no valid-* seed");
        report.push(format!(
            "{target}: {} seeds ({valid} valid), {} regression inputs",
            seeds.len(),
            regressions.len()
        ));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn every_target_has_a_libfuzzer_binary_and_nothing_else_does() {
    let listed: BTreeSet<String> = TARGETS.iter().map(|(name, _)| (*name).to_owned()).collect();
    let binaries: BTreeSet<String> = files(&root().join("libfuzzer/fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed, binaries,
        "fuzz/libfuzzer/fuzz_targets must hold one file per TARGETS entry"
    );
    let manifest = std::fs::read_to_string(root().join("libfuzzer/Cargo.toml")).expect("libfuzzer manifest");
    for target in &listed {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/libfuzzer/Cargo.toml declares no [[bin]] {target}"
        );
    }
    for dir in ["corpus", "regressions"] {
        for path in std::fs::read_dir(root().join(dir)).into_iter().flatten() {
            let name = path.expect("entry").file_name().to_string_lossy().into_owned();
            assert!(listed.contains(&name), "fuzz/{dir}/{name} belongs to no target");
        }
    }
}

#[test]
fn split_takes_apart_what_join_puts_together() {
    let joined = parley_fuzz::join(b"abc", b"de");
    assert_eq!(parley_fuzz::split(&joined), Some((&b"abc"[..], &b"de"[..])));
    assert_eq!(parley_fuzz::split(&[0, 0, 0, 9, 1]), None);
    assert_eq!(parley_fuzz::split(&[0, 0]), None);
}
