//! `parley-homeserver`: run, migrate, or try out a Parley homeserver.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parley_federation::ServerKeyring;
use parley_federation::server_key::{ROTATION_OVERLAP_MS, encode_public_key};
use parley_homeserver::config::{Config, LogConfig};
use parley_homeserver::{Application, admin, db, dev, telemetry};

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
        /// The configuration file (TOML; every key is commented in
        /// deploy/homeserver.example.toml).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        /// The configuration file whose [database] is migrated (PARLEY_* variables apply
        /// as for `serve`).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Create, show or rotate this server's federation signing key (the [federation]
    /// signing_key file). Running processes pick up a rotated key within a second.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// The homeserver's configuration file (names the key file).
        #[arg(long, short, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// The key file itself, instead of the one --config names (e.g. to make one for a
        /// Kubernetes Secret).
        #[arg(long, value_name = "FILE", global = true, conflicts_with = "config")]
        key_file: Option<PathBuf>,
    },
    /// Start a complete development homeserver with nothing to set up: a private
    /// PostgreSQL cluster and a development CA under --data-dir. Ctrl-C stops both.
    /// With --domains N, N homeservers that federate with each other on loopback.
    Dev(dev::DevArgs),
    /// Manage a running server through its admin API ([admin] in the configuration):
    /// users, devices, federation queues and policy, statistics.
    Admin(admin::cli::AdminArgs),
}

#[derive(Subcommand)]
enum KeysAction {
    /// Write a new key file (owner-only); refuses to replace an existing one. Every
    /// process of the server must use the same file.
    Generate,
    /// Print the current key id and public key, and the retired keys.
    Show,
    /// Sign with a new key from now on; the old public key stays published, with the time
    /// it stopped signing, so what it signed stays verifiable.
    Rotate {
        /// How long the old key keeps verifying: longer than it takes every process to
        /// load the new file (about a second on one host; a rolling restart when the file
        /// comes from a Kubernetes Secret). 0 after a compromise: the old key is then
        /// published as revoked, and nothing it signed verifies any more; the running
        /// server tells the servers it knows within seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = ROTATION_OVERLAP_MS / 1000)]
        overlap_secs: i64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Migrate { config } => migrate(config).await,
        Command::Keys {
            action,
            config,
            key_file,
        } => keys(action, config, key_file),
        Command::Dev(args) => dev::run(args).await,
        Command::Admin(args) => admin::cli::run(args).await,
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

fn keys(action: KeysAction, config: Option<PathBuf>, key_file: Option<PathBuf>) -> anyhow::Result<()> {
    let path = match (key_file, config) {
        (Some(path), _) => path,
        (None, Some(config_path)) => {
            let config = Config::load(&config_path)?;
            let federation = config.federation.ok_or_else(|| {
                anyhow::anyhow!(
                    "{} has no [federation] section, so this server has no signing key",
                    config_path.display()
                )
            })?;
            federation.signing_key
        }
        (None, None) => anyhow::bail!("--config FILE or --key-file FILE is required"),
    };
    if let KeysAction::Generate = action {
        let (_, created) = ServerKeyring::load_or_create(&path)?;
        if !created {
            anyhow::bail!("{} already exists; not replacing it", path.display());
        }
        println!("created a new signing key");
    } else if !path.exists() {
        anyhow::bail!(
            "there is no signing key at {} yet; the server creates it when it first starts \
             (or run `parley-homeserver keys generate`)",
            path.display()
        );
    }
    let mut keyring = ServerKeyring::load(&path)?;
    if let KeysAction::Rotate { overlap_secs } = action {
        if overlap_secs < 0 {
            anyhow::bail!("--overlap-secs cannot be negative");
        }
        let retired = keyring.key_id().clone();
        let revoked = overlap_secs == 0;
        keyring.rotate(
            parley_homeserver::remote::now_ms() + overlap_secs.saturating_mul(1000),
            revoked,
        );
        keyring.save(&path)?;
        if revoked {
            println!(
                "revoked {retired}: nothing it signed verifies any more; signing with {} from now on",
                keyring.key_id()
            );
        } else {
            println!(
                "retired {retired} (it verifies for another {overlap_secs} s); signing with {} from now on",
                keyring.key_id()
            );
        }
    }
    println!("key file: {}", path.display());
    println!(
        "current:  {} {}",
        keyring.key_id(),
        encode_public_key(&keyring.public_key())
    );
    for old in keyring.retired() {
        println!(
            "retired:  {} {} ({})",
            old.key_id,
            encode_public_key(&old.public_key),
            if old.revoked {
                "revoked: verifies nothing".to_owned()
            } else {
                format!("verifies what it signed before {} ms", old.expired_at_ms)
            }
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "../../tests/src/clap_help.rs"]
mod clap_help;

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_argument_and_subcommand_has_help_text() {
        let missing = super::clap_help::undocumented(&super::Cli::command());
        assert!(missing.is_empty(), "without a --help description: {missing:#?}");
    }
}
