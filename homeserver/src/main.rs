//! `parley-homeserver`: run, migrate, or try out a Parley homeserver.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Start a complete development homeserver with nothing to set up: a private
    /// PostgreSQL cluster and a development CA under --data-dir. Ctrl-C stops both.
    Dev(dev::DevArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Migrate { config } => migrate(config).await,
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
