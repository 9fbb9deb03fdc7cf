//! `parley-homeserver`: run, migrate, or try out a Parley homeserver.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parley_federation::ServerKeyring;
use parley_federation::server_key::{ROTATION_OVERLAP_MS, encode_public_key};
use parley_homeserver::config::{Config, LogConfig};
use parley_homeserver::{Application, db, dev, telemetry};

#[derive(Parser)]
#[command(
    name = "parley-homeserver",
    version,
    about = "The Parley homeserver: accounts, devices and end-to-end encrypted group messaging over HTTPS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the homeserver with a configuration file (see deploy/homeserver.example.toml).
    /// Every key can be overridden by PARLEY_* environment variables, e.g. PARLEY_DATABASE__URL.
    Serve {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show or rotate this server's federation signing key (the [federation] signing_key
    /// file). Running processes pick up a rotated key within a second.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// The homeserver's configuration file.
        #[arg(long, short, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
    },
    /// Start a complete development homeserver with nothing to set up: a private
    /// PostgreSQL cluster and a development CA under --data-dir. Ctrl-C stops both.
    Dev(dev::DevArgs),
}

#[derive(Subcommand)]
enum KeysAction {
    /// Print the current key id and public key, and the retired keys.
    Show,
    /// Sign with a new key from now on; the old public key stays published, with the time
    /// it stopped signing, so what it signed stays verifiable.
    Rotate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Migrate { config } => migrate(config).await,
        Command::Keys { action, config } => keys(action, config),
        Command::Dev(args) => dev::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    telemetry::init(&config.log);
    let app = Application::build(config).await?;
    tracing::info!(address = %app.addr(), "parley-homeserver listening (HTTPS)");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    telemetry::init(&LogConfig::default());
    let pool = db::create_pool(&config.database)?;
    let version = db::migrate(&pool).await?;
    println!("database schema is at version {version}");
    Ok(())
}

fn keys(action: KeysAction, config: Option<PathBuf>) -> anyhow::Result<()> {
    let config_path = config.ok_or_else(|| anyhow::anyhow!("--config FILE is required"))?;
    let config = Config::load(&config_path)?;
    let federation = config.federation.ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no [federation] section, so this server has no signing key",
            config_path.display()
        )
    })?;
    let path = federation.signing_key;
    if !path.exists() {
        anyhow::bail!(
            "there is no signing key at {} yet; the server creates it when it first starts",
            path.display()
        );
    }
    let mut keyring = ServerKeyring::load(&path)?;
    if let KeysAction::Rotate = action {
        let retired = keyring.key_id().clone();
        keyring.rotate(parley_homeserver::federation::now_ms() + ROTATION_OVERLAP_MS);
        keyring.save(&path)?;
        println!(
            "retired {retired} (it verifies for another {} s); signing with {} from now on",
            ROTATION_OVERLAP_MS / 1000,
            keyring.key_id()
        );
    }
    println!("key file: {}", path.display());
    println!(
        "current:  {} {}",
        keyring.key_id(),
        encode_public_key(&keyring.public_key())
    );
    for old in keyring.retired() {
        println!(
            "retired:  {} {} (verifies what it signed before {} ms)",
            old.key_id,
            encode_public_key(&old.public_key),
            old.expired_at_ms
        );
    }
    Ok(())
}
