//! `parley-homeserver dev`: a working homeserver for a newcomer, with no setup; with
//! `--domains N`, N homeservers on loopback that federate with each other.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use parley_specs::ServerName;

use crate::config::{Config, LogConfig};
use crate::devcerts::{DevTlsFiles, ensure_dev_federation_tls, ensure_dev_tls};
use crate::embedded_pg::{Durability, PgCluster};
use crate::{Application, admin, telemetry};
use parley_private_file as private_file;

#[derive(clap::Args)]
pub struct DevArgs {
    /// Where the private database, certificates and CA live; reused across runs.
    #[arg(long, value_name = "DIR", default_value = ".parley-dev")]
    data_dir: PathBuf,
    /// Port of the HTTPS client API on 127.0.0.1. With --domains, domain i uses PORT +
    /// 10 (i - 1) for its client API and that + 5 for its federation API; 0 picks free
    /// ports.
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// Port of the admin API (plain HTTP) on 127.0.0.1; with --domains, domain i uses
    /// ADMIN_PORT + 10 (i - 1). 0 picks a free one.
    #[arg(long, default_value_t = 8449)]
    admin_port: u16,
    /// How many homeservers to start: with 2 or more, each is its own domain
    /// (domain1.localhost, domain2.localhost, ...) with its own database in the one
    /// private PostgreSQL, a certificate from one development CA, and federation with
    /// every other one (static peers and allow lists, on loopback).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=50))]
    domains: u16,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    telemetry::init(&LogConfig {
        level: "info,actix_server=warn".into(),
        ..LogConfig::default()
    });
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    if args.domains > 1 {
        return run_federation(args, data_dir, started).await;
    }
    let server_name = ServerName::parse(&format!("localhost:{}", args.port))?;

    eprintln!(
        "Starting a private PostgreSQL in {} ...",
        data_dir.join("postgres").display()
    );
    let pg_root = data_dir.join("postgres");
    let cluster = tokio::task::spawn_blocking(move || PgCluster::start(&pg_root, Durability::Durable)).await??;
    let result = serve(&cluster, &data_dir, server_name, args.port, args.admin_port).await;
    eprintln!("Stopping PostgreSQL ...");
    cluster.stop()?;
    eprintln!("Stopped.");
    result
}

async fn serve(
    cluster: &PgCluster,
    data_dir: &Path,
    server_name: ServerName,
    port: u16,
    admin_port: u16,
) -> anyhow::Result<()> {
    cluster
        .create_database("parley")
        .await
        .context("cannot create the database")?;
    let tls = ensure_dev_tls(&data_dir.join("tls")).context("cannot create development certificates")?;
    let token_file = data_dir.join("admin.token");
    admin::token::create_if_missing(&token_file).context("cannot create the admin token file")?;
    let config = dev_config(&server_name, port, admin_port, data_dir, &tls, &cluster.url("parley"))?;
    // For `parley-homeserver admin --config ...` (and a look at what dev runs with).
    let config_file = data_dir.join("homeserver.toml");
    private_file::write(&config_file, toml::to_string(&config)?.as_bytes())
        .with_context(|| format!("cannot write {}", config_file.display()))?;
    let app = Application::build(config).await?;
    let url = format!("https://localhost:{}", app.port());
    let ca = tls.ca.display();
    println!(
        "\nParley development homeserver is running.\n\
         \x20 server name  {server_name}\n\
         \x20 client API   {url}\n\
         \x20 CA file      {ca}\n\
         \x20 database     private PostgreSQL on 127.0.0.1:{} (data in {})\n\
         \x20 admin API    http://127.0.0.1:{} (token in {})\n\
         \x20 config       {}\n\n\
         Next, in another terminal (from a checkout, `parley` is `cargo run -q --bin parley --`):\n\
         \x20 parley --server {url} --ca-file {ca} register alice\n\
         \x20 parley whoami\n\
         \x20 parley-homeserver admin --config {} users list\n\n\
         Press Ctrl-C to stop the homeserver and its database.\n",
        cluster.port(),
        data_dir.join("postgres").display(),
        app.admin_addr().map_or(admin_port, |a| a.port()),
        token_file.display(),
        config_file.display(),
        config_file.display(),
    );
    app.run_until_stopped().await?;
    Ok(())
}

/// The development configuration; like a config file, it yields to `PARLEY_*` variables
/// (e.g. `PARLEY_LIMITS__LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE=100000` for load tests).
/// Everything it writes (blobs, the second factor's key) stays under `data_dir`.
fn dev_config(
    server_name: &ServerName,
    port: u16,
    admin_port: u16,
    data_dir: &Path,
    tls: &DevTlsFiles,
    database_url: &str,
) -> anyhow::Result<Config> {
    let table = toml::Table::try_from(serde_json::json!({
        "server_name": server_name.as_str(),
        "listen": { "client": SocketAddr::from((Ipv4Addr::LOCALHOST, port)).to_string() },
        "tls": { "cert": tls.cert, "key": tls.key },
        "database": { "url": database_url },
        "admin": {
            "listen": SocketAddr::from((Ipv4Addr::LOCALHOST, admin_port)).to_string(),
            "token_file": data_dir.join("admin.token"),
        },
        "files": { "dir": data_dir.join("blobs") },
        "second_factor": { "key_file": data_dir.join("second-factor.key") },
    }))?;
    Ok(Config::from_table(table, std::env::vars())?)
}

/// One domain of `dev --domains N`.
struct Domain {
    name: ServerName,
    /// `domain<i>`: its database and directory.
    label: String,
    client: SocketAddr,
    federation: SocketAddr,
    admin: SocketAddr,
}

/// A port on 127.0.0.1: `wanted`, or a free one when it is 0 (bound and released now, so
/// it can be given to the other domains before this one starts).
fn loopback_port(wanted: u16) -> anyhow::Result<SocketAddr> {
    if wanted != 0 {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, wanted)));
    }
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?)
}

fn offset_port(base: u16, i: u16, plus: u16) -> anyhow::Result<u16> {
    if base == 0 {
        return Ok(0);
    }
    base.checked_add(10 * i + plus)
        .ok_or_else(|| anyhow::anyhow!("port {base} + {} is past 65535", 10 * i + plus))
}

async fn run_federation(args: DevArgs, data_dir: PathBuf, started: Instant) -> anyhow::Result<()> {
    let mut domains = Vec::new();
    for i in 0..args.domains {
        let label = format!("domain{}", i + 1);
        domains.push(Domain {
            name: ServerName::parse(&format!("{label}.localhost"))?,
            label,
            client: loopback_port(offset_port(args.port, i, 0)?)?,
            federation: loopback_port(offset_port(args.port, i, 5)?)?,
            admin: loopback_port(offset_port(args.admin_port, i, 0)?)?,
        });
    }
    eprintln!(
        "Starting a private PostgreSQL in {} ...",
        data_dir.join("postgres").display()
    );
    let pg_root = data_dir.join("postgres");
    let cluster = tokio::task::spawn_blocking(move || PgCluster::start(&pg_root, Durability::Durable)).await??;
    let result = serve_federation(&cluster, &data_dir, &domains, started).await;
    eprintln!("Stopping PostgreSQL ...");
    cluster.stop()?;
    eprintln!("Stopped.");
    result
}

async fn serve_federation(
    cluster: &PgCluster,
    data_dir: &Path,
    domains: &[Domain],
    started: Instant,
) -> anyhow::Result<()> {
    let root = data_dir.join("domains");
    let names: Vec<&str> = domains.iter().map(|d| d.name.host()).collect();
    let tls = ensure_dev_federation_tls(&root, &names).context("cannot create development certificates")?;
    let mut configs = Vec::new();
    for (domain, files) in domains.iter().zip(&tls.servers) {
        cluster
            .create_database(&domain.label)
            .await
            .with_context(|| format!("cannot create the database {}", domain.label))?;
        let dir = root.join(&domain.label);
        let token_file = dir.join("admin.token");
        admin::token::create_if_missing(&token_file).context("cannot create the admin token file")?;
        let others: Vec<&Domain> = domains.iter().filter(|d| d.name != domain.name).collect();
        let config = federating_dev_config(
            domain,
            &others,
            &dir,
            &token_file,
            files,
            &tls.ca,
            &cluster.url(&domain.label),
        )?;
        let config_file = dir.join("homeserver.toml");
        private_file::write(&config_file, toml::to_string(&config)?.as_bytes())
            .with_context(|| format!("cannot write {}", config_file.display()))?;
        configs.push((config, config_file));
    }
    let apps = futures_util::future::try_join_all(configs.iter().map(|(config, _)| Application::build(config.clone())))
        .await?;
    let ready_in = started.elapsed();
    let ca = tls.ca.display();
    let url = |app: &Application| format!("https://127.0.0.1:{}", app.port());
    let mut banner = format!(
        "\nParley development federation: {} homeservers are running (ready in {:.1} s).\n\n",
        domains.len(),
        ready_in.as_secs_f64()
    );
    for ((domain, app), (_, config_file)) in domains.iter().zip(&apps).zip(&configs) {
        banner.push_str(&format!(
            "  {}\n    client API   {}\n    federation   {}\n    admin API    http://{}\n    config       {}\n",
            domain.name,
            url(app),
            app.federation_addr().unwrap_or(domain.federation),
            app.admin_addr().unwrap_or(domain.admin),
            config_file.display(),
        ));
    }
    let (first, second) = (&domains[0], &domains[1]);
    banner.push_str(&format!(
        "\n  CA file      {ca}\n  database     private PostgreSQL on 127.0.0.1:{} (one database per domain; data in {})\n\n\
         A conversation across domains, in another terminal (from a checkout, `parley` is\n\
         `cargo run -q --bin parley --`); GROUP is the id `group create` prints:\n\
         \x20 parley --profile alice --server {} --ca-file {ca} register alice\n\
         \x20 parley --profile bob --server {} --ca-file {ca} register bob\n\
         \x20 parley --profile alice group create\n\
         \x20 parley --profile alice group add GROUP bob@{}\n\
         \x20 parley --profile alice send GROUP \"Hello from {}\"\n\
         \x20 parley --profile bob sync\n\
         \x20 parley --profile bob history GROUP\n\n\
         Press Ctrl-C to stop the homeservers and their database.\n",
        cluster.port(),
        data_dir.join("postgres").display(),
        url(&apps[0]),
        url(&apps[1]),
        second.name,
        first.name,
    ));
    println!("{banner}");
    // Each stops on Ctrl-C or SIGTERM (`Application::run_until_stopped`).
    let results = futures_util::future::join_all(apps.into_iter().map(Application::run_until_stopped)).await;
    for result in results {
        result?;
    }
    Ok(())
}

/// One domain's configuration: federating with every one of `others` (static peers on
/// loopback, and the allow list), trusting only the development CA.
fn federating_dev_config(
    domain: &Domain,
    others: &[&Domain],
    dir: &Path,
    token_file: &Path,
    tls: &DevTlsFiles,
    ca: &Path,
    database_url: &str,
) -> anyhow::Result<Config> {
    let peers: serde_json::Map<String, serde_json::Value> = others
        .iter()
        .map(|o| (o.name.to_string(), o.federation.to_string().into()))
        .collect();
    let allow: Vec<String> = others.iter().map(|o| o.name.to_string()).collect();
    let table = toml::Table::try_from(serde_json::json!({
        "server_name": domain.name.as_str(),
        "listen": { "client": domain.client.to_string() },
        "tls": { "cert": tls.cert, "key": tls.key },
        "database": { "url": database_url },
        "admin": {
            "listen": domain.admin.to_string(),
            "token_file": token_file,
        },
        "files": { "dir": dir.join("blobs") },
        "federation": {
            "listen": domain.federation.to_string(),
            "signing_key": dir.join("signing.key"),
            "trust_roots": ca,
            "allow": allow,
            "peers": peers,
        },
    }))?;
    Ok(Config::from_table(table, std::env::vars())?)
}
