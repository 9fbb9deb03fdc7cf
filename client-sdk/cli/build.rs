//! Embeds the web app (`web/dist/`, the Vite build) in the `parley` binary for
//! `parley ui`: generates `$OUT_DIR/ui_assets.rs` with one `(path, bytes, content type)`
//! entry per file. Without a build, a small page saying how to make one is embedded.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const FALLBACK: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parley</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>The Parley web app was not built</h1>
<p>This <code>parley</code> binary was compiled without the web app. Build it, then rebuild
<code>parley</code>:</p>
<pre>npm --prefix client-sdk/cli/web ci &amp;&amp; npm --prefix client-sdk/cli/web run build
cargo build --bin parley</pre>
</body></html>
"#;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let web = manifest.join("web");
    let dist = web.join("dist");
    println!("cargo:rerun-if-changed=build.rs");
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        // A directory is scanned recursively for changes.
        println!("cargo:rerun-if-changed={}", dist.display());
        let mut found = Vec::new();
        collect(&dist, &dist, &mut found);
        // Copied, so that a web build running meanwhile cannot break this one.
        let copies = out_dir.join("ui_dist");
        let _ = std::fs::remove_dir_all(&copies);
        let _ = std::fs::create_dir_all(&copies);
        for (i, (name, source)) in found.into_iter().enumerate() {
            let copy = copies.join(i.to_string());
            match std::fs::copy(&source, &copy) {
                Ok(_) => files.push((name, copy)),
                Err(_) => {
                    files.clear();
                    break;
                }
            }
        }
        if !files.iter().any(|(name, _)| name == "index.html") {
            files.clear();
        }
    }
    if files.is_empty() {
        // Notices when `web/dist` appears (a missing path would rerun every build).
        if web.is_dir() {
            println!("cargo:rerun-if-changed={}", web.display());
        }
        let fallback = out_dir.join("ui_fallback_index.html");
        if let Err(e) = std::fs::write(&fallback, FALLBACK) {
            panic!("cannot write {}: {e}", fallback.display());
        }
        files.push(("index.html".to_owned(), fallback));
    }
    files.sort();
    let mut code = String::from(
        "/// The embedded web app: (path, content, content type).\npub static ASSETS: &[(&str, &[u8], &str)] = &[\n",
    );
    for (path, file) in &files {
        let _ = writeln!(
            code,
            "    ({path:?}, include_bytes!({:?}), {:?}),",
            file.display().to_string(),
            content_type(path)
        );
    }
    code.push_str("];\n");
    let target = out_dir.join("ui_assets.rs");
    if let Err(e) = std::fs::write(&target, code) {
        panic!("cannot write {}: {e}", target.display());
    }
}

/// Every file under `dir`, as (path relative to `root` with `/`, absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let absolute = std::path::absolute(&path).unwrap_or(path);
            files.push((name, absolute));
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
