//! `parley-homeserver keys generate|show|rotate`, run as an operator runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use parley_federation::ServerKeyring;

fn keys(config: &Path, action: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parley-homeserver"))
        .args(["keys", action, "--config"])
        .arg(config)
        .output()
        .expect("run parley-homeserver keys")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn rotate_retires_the_current_key_and_show_lists_both() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("server.key");
    let config = dir.path().join("homeserver.toml");
    std::fs::write(
        &config,
        format!(
            r#"server_name = "a.example"
[listen]
client = "127.0.0.1:0"
[tls]
cert = "unused.pem"
key = "unused.key"
[database]
url = "postgres://unused@127.0.0.1/unused"
[federation]
signing_key = "{}"
"#,
            key_file.display()
        ),
    )
    .unwrap();

    let missing = keys(&config, "show");
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("creates it when it first starts"),
        "{}",
        text(&missing.stderr)
    );

    ServerKeyring::generate().save(&key_file).unwrap();
    let first = ServerKeyring::load(&key_file).unwrap();
    let rotated = keys(&config, "rotate");
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    let now = ServerKeyring::load(&key_file).unwrap();
    assert_ne!(now.key_id(), first.key_id());
    assert_eq!(now.retired().len(), 1);
    assert_eq!(&now.retired()[0].key_id, first.key_id());

    let shown = text(&keys(&config, "show").stdout);
    assert!(shown.contains(&format!("current:  {}", now.key_id())), "{shown}");
    assert!(shown.contains(&format!("retired:  {}", first.key_id())), "{shown}");
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parley-homeserver"))
        .args(args)
        .output()
        .expect("run parley-homeserver keys")
}

#[test]
fn generate_makes_a_private_key_file_once_and_rotate_takes_an_overlap() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("signing.key");
    let path = key_file.to_str().unwrap();
    let generated = run(&["keys", "generate", "--key-file", path]);
    assert!(generated.status.success(), "{}", text(&generated.stderr));
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first = ServerKeyring::load(&key_file).unwrap();

    let again = run(&["keys", "generate", "--key-file", path]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(ServerKeyring::load(&key_file).unwrap().key_id(), first.key_id(), "kept");

    let before_ms = parley_homeserver::remote::now_ms();
    let rotated = run(&["keys", "rotate", "--key-file", path, "--overlap-secs", "3600"]);
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    let rotated = ServerKeyring::load(&key_file).unwrap();
    let retired = &rotated.retired()[0];
    assert_eq!(&retired.key_id, first.key_id());
    assert!(
        retired.expired_at_ms >= before_ms + 3_600_000,
        "the old key verifies for an hour"
    );
}
