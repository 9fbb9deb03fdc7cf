//! The files in deploy/ stay valid: every configuration parses with the homeserver's own
//! loader, the compose servers point at each other, the scripts parse.

use std::path::{Path, PathBuf};
use std::process::Command;

use parley_homeserver::config::Config;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads a configuration file as the homeserver would, with exactly these PARLEY_*
/// variables (the test process's own environment is left out).
fn load(path: &Path, env: &[(&str, &str)]) -> Config {
    let table: toml::Table = read(path).parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::from_table(table, env).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_compose_homeservers_are_valid_and_federate_with_each_other() {
    let compose = read(&deploy("compose.yaml"));
    for (me, other) in [("a", "b"), ("b", "a")] {
        let url = format!("postgres://parley:pw@db-{me}:5432/parley");
        let config = load(
            &deploy(&format!("compose/{me}.toml")),
            &[("PARLEY_DATABASE__URL", url.as_str())],
        );
        let other_config = load(&deploy(&format!("compose/{other}.toml")), &[]);
        assert_eq!(config.server_name.as_str(), format!("{me}.parley.test"));
        assert!(
            compose.contains(&format!("PARLEY_DATABASE__URL: postgres://parley:${{PARLEY_DB_PASSWORD:-parley-compose-only}}@db-{me}:5432/parley")),
            "compose.yaml gives {me} its database"
        );
        assert!(compose.contains(&format!("./compose/{me}.toml:/etc/parley/homeserver.toml:ro")));
        assert!(compose.contains(&format!("certs-{me}:/etc/parley/tls:ro")));
        assert!(compose.contains(&format!("data-{me}:/var/lib/parley")));
        assert!(
            compose.contains(&format!("\"/out/{me}:{me}.parley.test\"")),
            "certs for {me}"
        );
        // Files where compose.yaml mounts them: TLS from the certs volume, state in the data volume.
        for file in [&config.tls.cert, &config.tls.key] {
            assert!(file.starts_with("/etc/parley/tls"), "{file:?}");
        }
        assert_eq!(
            config.listen.client.port(),
            8443,
            "the port compose.yaml publishes and checks"
        );
        let federation = config.federation.as_ref().expect("[federation]");
        assert!(federation.signing_key.starts_with("/var/lib/parley"));
        assert_eq!(
            federation.trust_roots.as_deref(),
            Some(Path::new("/etc/parley/tls/ca.pem"))
        );
        // The peer is the other server's federation listener at its fixed compose address.
        let peer = federation
            .peers
            .get(&other_config.server_name)
            .unwrap_or_else(|| panic!("{me} names {other} as a peer"));
        let other_listen = other_config.federation.as_ref().expect("[federation]").listen;
        assert_eq!(peer.port(), other_listen.port());
        assert!(
            compose.contains(&format!("ipv4_address: {}", peer.ip())),
            "compose.yaml gives {other} the address {me} expects ({peer})"
        );
        let other_name = &other_config.server_name;
        assert!(!federation.deny.contains(other_name));
        assert!(federation.allow.as_ref().is_none_or(|allow| allow.contains(other_name)));
    }
}

#[test]
fn every_example_configuration_is_valid() {
    let mut checked = 0;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(deploy("examples"))
        .expect("deploy/examples")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.push(deploy("homeserver.example.toml"));
    for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        load(path, &[]);
        checked += 1;
    }
    assert!(checked >= 3, "{paths:?}");
    // The systemd environment file holds configuration variables only.
    let env: Vec<(String, String)> = read(&deploy("examples/homeserver.env"))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("VAR=value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert!(!env.is_empty());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = load(&deploy("examples/single-server.toml"), &env);
    assert!(config.database.url.contains("REPLACE-ME"));
}

/// Runs a command with a deadline; None when the program is not installed.
fn run(program: &str, args: &[&str]) -> Option<std::process::Output> {
    let mut child = match Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{program}: {e}"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{program} {args:?} did not finish within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(child.wait_with_output().expect("output"))
}

#[test]
fn the_compose_file_is_valid_for_docker_compose() {
    let file = deploy("compose.yaml");
    match run("docker-compose", &["-f", file.to_str().unwrap(), "config", "-q"]) {
        None => eprintln!(
            "SKIPPED: docker-compose is not installed (apt-get install docker-compose), compose.yaml not validated"
        ),
        Some(out) => assert!(
            out.status.success(),
            "docker-compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn the_scripts_parse_and_explain_themselves() {
    for (shell, script) in [
        ("bash", "backup.sh"),
        ("bash", "restore.sh"),
        ("sh", "compose/gen-certs.sh"),
    ] {
        let path = deploy(script);
        let out = run(shell, &["-n", path.to_str().unwrap()]).expect("a shell");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for script in ["backup.sh", "restore.sh"] {
        let path = deploy(script);
        let out = run("bash", &[path.to_str().unwrap(), "--help"]).expect("bash");
        assert!(out.status.success(), "{script} --help");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("Usage: "));
        let out = run("bash", &[path.to_str().unwrap(), "--no-such-option"]).expect("bash");
        assert!(!out.status.success(), "{script} refuses an unknown option");
    }
}
