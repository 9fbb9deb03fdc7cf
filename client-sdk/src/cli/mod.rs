//! The `parley` command-line client. The binary only parses arguments and calls `run`.

mod password;
mod session;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use parley_specs::client_api::{ChangePasswordRequest, DeviceInfo, LoginRequest, LoginResponse, RegisterRequest};
use parley_specs::{DeviceId, ErrorCode};
use serde::Serialize;

pub use password::read_password;
pub use session::{Profile, Session};

use crate::{Client, Error, Trust};

#[derive(Parser)]
#[command(name = "parley", version, about = "Parley: end-to-end encrypted messaging from the command line")]
pub struct Cli {
    /// Which saved login to use; each profile is one device of one account.
    #[arg(long, global = true, env = "PARLEY_PROFILE", default_value = "default")]
    profile: String,
    /// Where profiles are kept [default: $XDG_CONFIG_HOME/parley or ~/.config/parley].
    #[arg(long, global = true, env = "PARLEY_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Homeserver URL, e.g. https://chat.example.org (for register and login; remembered).
    #[arg(long, global = true, env = "PARLEY_SERVER", value_name = "URL")]
    server: Option<url::Url>,
    /// CA certificate file to trust instead of the system roots (private or dev servers).
    #[arg(long, global = true, env = "PARLEY_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account and log this profile in as its first device.
    Register {
        username: String,
        /// Read the password from the first line of FILE instead of prompting.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Invite token, if the server requires one.
        #[arg(long)]
        invite_token: Option<String>,
        /// Name shown in your device list.
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Log this profile in as a new device of an existing account.
    Login {
        /// `alice` or `alice@chat.example.org`.
        username: String,
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Log out this device (the server deletes it); --all logs out every device.
    Logout {
        #[arg(long)]
        all: bool,
    },
    /// Show the account and device of this profile.
    Whoami,
    /// Change your password; every other device is logged out.
    Passwd {
        /// Current password from the first line of FILE.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// New password from the first line of FILE.
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// List, rename or delete your devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// List the account's devices.
    List,
    /// Give a device a new display name.
    Rename { device_id: String, name: String },
    /// Delete a device, revoking its access at once.
    Delete { device_id: String },
}

/// Runs one CLI invocation; the error is printed by the binary.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let home = match &cli.home {
        Some(home) => home.clone(),
        None => default_home()?,
    };
    let profile = Profile::new(&home, &cli.profile)?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Register { ref username, ref password_file, ref invite_token, ref device_name } => {
            let client = anonymous_client(&cli, &profile)?;
            let password = read_password(password_file.as_deref(), "New password", true)?;
            let req = RegisterRequest {
                username: username.clone(),
                password,
                device_name: Some(device_name.clone().unwrap_or_else(default_device_name)),
                invite_token: invite_token.clone(),
            };
            let session = client.register(&req).await?;
            remember(&profile, &cli, &client, &session)?;
            out.print(&session_view(&session), || {
                format!("Registered {} — this device is {}.", session.user_id, session.device_id)
            })
        }
        Command::Login { ref username, ref password_file, ref device_name } => {
            let client = anonymous_client(&cli, &profile)?;
            let password = read_password(password_file.as_deref(), "Password", false)?;
            let req = LoginRequest {
                username: username.clone(),
                password,
                device_name: Some(device_name.clone().unwrap_or_else(default_device_name)),
            };
            let session = client.login(&req).await?;
            remember(&profile, &cli, &client, &session)?;
            out.print(&session_view(&session), || {
                format!("Logged in as {} — this device is {}.", session.user_id, session.device_id)
            })
        }
        Command::Logout { all } => {
            let (client, session) = logged_in_client(&profile)?;
            if all { client.logout_all().await? } else { client.logout().await? }
            profile.forget()?;
            let what = if all { "every device of" } else { "this device of" };
            out.print(&serde_json::json!({"ok": true}), || format!("Logged out {what} {}.", session.user_id))
        }
        Command::Whoami => {
            let (client, session) = logged_in_client(&profile)?;
            let me = client.whoami().await?;
            out.print(&me, || format!("{} (device {}) on {}", me.user_id, me.device_id, session.server))
        }
        Command::Passwd { ref password_file, ref new_password_file } => {
            let (client, _) = logged_in_client(&profile)?;
            let current_password = read_password(password_file.as_deref(), "Current password", false)?;
            let new_password = read_password(new_password_file.as_deref(), "New password", true)?;
            client.change_password(&ChangePasswordRequest { current_password, new_password }).await?;
            out.print(&serde_json::json!({"ok": true}), || {
                "Password changed. Your other devices were logged out.".to_owned()
            })
        }
        Command::Devices(DevicesCommand::List) => {
            let (client, _) = logged_in_client(&profile)?;
            let list = client.devices().await?;
            out.print(&list, || device_table(&list.devices))
        }
        Command::Devices(DevicesCommand::Rename { ref device_id, ref name }) => {
            let (client, _) = logged_in_client(&profile)?;
            let device = client.rename_device(&parse_device_id(device_id)?, name).await?;
            out.print(&device, || format!("Renamed {} to {:?}.", device.device_id, device.display_name))
        }
        Command::Devices(DevicesCommand::Delete { ref device_id }) => {
            let (client, session) = logged_in_client(&profile)?;
            let device_id = parse_device_id(device_id)?;
            client.delete_device(&device_id).await?;
            if device_id == session.device_id {
                profile.forget()?;
            }
            out.print(&serde_json::json!({"ok": true}), || format!("Deleted device {device_id}; its access is revoked."))
        }
    }
}

/// The line printed for a failed command: what went wrong and what to do about it.
pub fn explain(err: &anyhow::Error) -> String {
    let Some(api) = err.downcast_ref::<Error>() else {
        return format!("error: {err:#}");
    };
    let hint = match api {
        Error::Transport { .. } => Some("is the homeserver running? check --server and --ca-file".to_owned()),
        Error::InvalidCaFile { .. } => Some("--ca-file must be the server's CA certificate in PEM".to_owned()),
        Error::NotLoggedIn => Some("run `parley login` first".to_owned()),
        Error::Api { .. } => match api.code() {
            Some(ErrorCode::UnknownToken) => Some("this device was logged out; run `parley login`".to_owned()),
            Some(ErrorCode::RateLimited) => {
                api.retry_after().map(|wait| format!("retry in {} s", wait.as_secs().max(1)))
            }
            Some(ErrorCode::InvalidInviteToken) => Some("ask the server's operator for an invite token".to_owned()),
            _ => None,
        },
        _ => None,
    };
    match hint {
        Some(hint) => format!("error: {api}\nhint: {hint}"),
        None => format!("error: {api}"),
    }
}

struct Output {
    json: bool,
}

impl Output {
    fn print<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            println!("{}", text());
        }
        Ok(())
    }
}

/// What register and login print with --json: the session without its secret.
fn session_view(session: &LoginResponse) -> serde_json::Value {
    serde_json::json!({"user_id": session.user_id, "device_id": session.device_id})
}

fn device_table(devices: &[DeviceInfo]) -> String {
    let when = |t: time::OffsetDateTime| {
        let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
        t.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_default()
    };
    let mut out = format!("  {:<14} {:<32} {:<22} {}\n", "DEVICE", "NAME", "CREATED", "LAST SEEN");
    for d in devices {
        let marker = if d.current { "*" } else { " " };
        out.push_str(&format!(
            "{marker} {:<14} {:<32} {:<22} {}\n",
            d.device_id.as_str(),
            d.display_name,
            when(d.created_at),
            when(d.last_seen_at)
        ));
    }
    out.push_str("(* this device)");
    out
}

fn anonymous_client(cli: &Cli, profile: &Profile) -> anyhow::Result<Client> {
    let saved = profile.load()?;
    let server = cli
        .server
        .clone()
        .or_else(|| saved.as_ref().map(|s| s.server.clone()))
        .context("which homeserver? pass --server https://your.homeserver")?;
    let ca_file = match &cli.ca_file {
        Some(path) => Some(std::path::absolute(path)?),
        None => saved.and_then(|s| s.ca_file),
    };
    Ok(Client::new(server, trust(ca_file.as_deref()))?)
}

fn logged_in_client(profile: &Profile) -> anyhow::Result<(Client, Session)> {
    let session = profile.load()?.ok_or(Error::NotLoggedIn)?;
    let client = Client::new(session.server.clone(), trust(session.ca_file.as_deref()))?
        .with_access_token(session.access_token.clone());
    Ok((client, session))
}

fn remember(profile: &Profile, cli: &Cli, client: &Client, session: &LoginResponse) -> anyhow::Result<()> {
    let ca_file = match &cli.ca_file {
        Some(path) => Some(std::path::absolute(path)?),
        None => profile.load()?.and_then(|s| s.ca_file),
    };
    profile.save(&Session {
        server: client.base_url().clone(),
        ca_file,
        user_id: session.user_id.clone(),
        device_id: session.device_id.clone(),
        access_token: session.access_token.clone(),
    })
}

fn trust(ca_file: Option<&Path>) -> Trust {
    ca_file.map_or(Trust::SystemRoots, |p| Trust::CaFile(p.to_owned()))
}

fn parse_device_id(raw: &str) -> anyhow::Result<DeviceId> {
    DeviceId::parse(raw).map_err(|e| anyhow::anyhow!("{raw:?}: {e}"))
}

fn default_home() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("parley"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("parley")),
        None => bail!("cannot find a home directory; pass --home DIR"),
    }
}

fn default_device_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok());
    match host {
        Some(host) => format!("parley CLI on {host}"),
        None => "parley CLI".to_owned(),
    }
}
