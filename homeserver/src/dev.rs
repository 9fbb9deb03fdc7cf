//! `parley-homeserver dev`: a working homeserver for a newcomer, with no setup.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use parley_specs::ServerName;

use crate::config::{Config, LogConfig};
use crate::devcerts::{DevTlsFiles, ensure_dev_tls};
use crate::embedded_pg::{Durability, PgCluster};
use crate::{Application, admin, telemetry};
use parley_private_file as private_file;

#[derive(clap::Args)]
pub struct DevArgs {
    /// Where the private database, certificates and CA live; reused across runs.
    #[arg(long, value_name = "DIR", default_value = ".parley-dev")]
    data_dir: PathBuf,
    /// Port of the HTTPS client API on 127.0.0.1.
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// Port of the admin API (plain HTTP) on 127.0.0.1.
    #[arg(long, default_value_t = 8449)]
    admin_port: u16,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    telemetry::init(&LogConfig {
        level: "info,actix_server=warn".into(),
        ..LogConfig::default()
    });
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
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
    let config = dev_config(
        &server_name,
        port,
        admin_port,
        &token_file,
        &tls,
        &cluster.url("parley"),
    )?;
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
fn dev_config(
    server_name: &ServerName,
    port: u16,
    admin_port: u16,
    token_file: &Path,
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
            "token_file": token_file,
        },
    }))?;
    Ok(Config::from_table(table, std::env::vars())?)
}
