//! What each `parley` command does.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use parley_sdk::messenger::{KEY_PACKAGES_TARGET, Messenger, NewDevice};
use parley_sdk::{Client, Error, Profile, ServerCa, Session, SignIn, SignInError};
use parley_specs::client_api::{ChangePasswordRequest, LoginRequest, MAX_DEVICE_NAME_CHARS, RegisterRequest};
use parley_specs::{DeviceId, ErrorCode};
use url::Url;

use crate::output::{Output, device_table, printable};
use crate::password::{PasswordSource, read_password};
use crate::{Cli, Command, DevicesCommand, TwoFactorCommand, messaging, second_factor};

/// Everything a command needs besides its own arguments.
pub(crate) struct Ctx {
    pub(crate) profile: Profile,
    pub(crate) out: Output,
    server: Option<Url>,
    ca_file: Option<PathBuf>,
    pub(crate) passphrase_file: Option<PathBuf>,
}

/// Runs one parsed `parley` invocation. Output goes to stdout; the error is returned for
/// the caller to print with [`crate::explain`].
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let home = match cli.global.home {
        Some(home) => home,
        None => default_home()?,
    };
    let ctx = Ctx {
        profile: Profile::new(&home, &cli.global.profile)?,
        out: Output { json: cli.global.json },
        server: cli.global.server,
        ca_file: cli.global.ca_file,
        passphrase_file: cli.global.passphrase_file,
    };
    match cli.command {
        Command::Register {
            username,
            password_file,
            invite_token,
            device_name,
        } => register(&ctx, username, password_file.as_deref(), invite_token, device_name).await,
        Command::Login {
            username,
            password_file,
            device_name,
            totp_code,
        } => login(&ctx, username, password_file.as_deref(), device_name, totp_code).await,
        Command::Logout { all, local } => logout(&ctx, all, local).await,
        Command::Whoami => whoami(&ctx).await,
        Command::Keys => keys(&ctx).await,
        Command::Passwd {
            password_file,
            new_password_file,
        } => passwd(&ctx, password_file.as_deref(), new_password_file.as_deref()).await,
        Command::Devices(DevicesCommand::List) => list_devices(&ctx).await,
        Command::Devices(DevicesCommand::Rename { device_id, name }) => rename_device(&ctx, &device_id, &name).await,
        Command::Devices(DevicesCommand::Delete { device_id }) => delete_device(&ctx, &device_id).await,
        Command::Devices(DevicesCommand::Audit { accept }) => audit_devices(&ctx, accept.as_deref()).await,
        Command::Devices(DevicesCommand::Published { user }) => messaging::published_devices(&ctx, &user).await,
        Command::TwoFactor(TwoFactorCommand::Enable { code }) => second_factor::enable(&ctx, code).await,
        Command::TwoFactor(TwoFactorCommand::Disable { password_file, code }) => {
            second_factor::disable(&ctx, password_file.as_deref(), code).await
        }
        Command::TwoFactor(TwoFactorCommand::Status) => second_factor::status(&ctx).await,
        Command::Group(command) => messaging::group(&ctx, command).await,
        Command::Send {
            group,
            text,
            file: Some(file),
            expires,
        } => messaging::send_file(&ctx, &group, text.as_deref(), &file, expires.as_deref()).await,
        Command::Send {
            group, text, expires, ..
        } => messaging::send(&ctx, &group, text.as_deref().unwrap_or_default(), expires.as_deref()).await,
        Command::Download { group, seq, out } => messaging::download(&ctx, &group, seq, out.as_deref()).await,
        Command::Reply {
            group,
            seq,
            text,
            expires,
        } => messaging::reply(&ctx, &group, seq, &text, expires.as_deref()).await,
        Command::React {
            group,
            seq,
            emoji,
            remove,
        } => messaging::react(&ctx, &group, seq, &emoji, remove).await,
        Command::Edit { group, seq, text } => messaging::edit(&ctx, &group, seq, &text).await,
        Command::Listen => messaging::listen(&ctx).await,
        Command::Sync => messaging::sync(&ctx).await,
        Command::History { group, search } => messaging::history(&ctx, &group, search.as_deref()).await,
        Command::Export { group, format } => messaging::export(&ctx, &group, format).await,
        Command::Verify { user, mark } => messaging::verify(&ctx, &user, mark).await,
        Command::Delete {
            group,
            seq,
            for_everyone,
        } => messaging::delete(&ctx, &group, seq, for_everyone).await,
        Command::Backup(command) => crate::key_backup::backup(&ctx, command).await,
        Command::Restore { recovery_key_file } => crate::key_backup::restore(&ctx, recovery_key_file.as_deref()).await,
        Command::Ui { port, no_open: _ } => ui(ctx, port).await,
    }
}

/// `parley ui`: starts unlocked when the profile has a session and --passphrase-file is
/// given; otherwise the web app signs in or unlocks.
async fn ui(ctx: Ctx, port: u16) -> anyhow::Result<()> {
    let passphrase = match (&ctx.passphrase_file, ctx.profile.load()?) {
        (Some(file), Some(_)) => Some(read_password(PasswordSource {
            file: Some(file),
            flag: "--passphrase-file",
            prompt: "Passphrase of the message store",
            confirm: false,
        })?),
        _ => None,
    };
    crate::ui::run(crate::ui::UiOptions {
        profile: ctx.profile,
        port,
        json: ctx.out.json,
        passphrase,
    })
    .await
}

async fn register(
    ctx: &Ctx,
    username: String,
    password_file: Option<&Path>,
    invite_token: Option<String>,
    device_name: Option<String>,
) -> anyhow::Result<()> {
    ensure_replaceable(&ctx.profile).await?;
    let sign_in = start_sign_in(ctx)?;
    let password = read_password(PasswordSource {
        file: password_file,
        flag: "--password-file",
        prompt: "Password for the new account",
        confirm: true,
    })?;
    let device = new_device(ctx, password_file)?;
    let device_name = device_name.unwrap_or_else(default_device_name);
    let (session, messenger) = sign_in
        .register_with_messenger(
            &RegisterRequest {
                username,
                password,
                device_name: Some(device_name.clone()),
                invite_token,
                signature_key: None,
            },
            device,
        )
        .await?;
    ctx.out.print(&session_view(&session, &messenger), || {
        format!(
            "Registered {} — this device is {} (\"{}\")\n{}",
            session.user_id,
            session.device_id,
            printable(&device_name),
            messaging_ready(&messenger)
        )
    })
}

async fn login(
    ctx: &Ctx,
    username: String,
    password_file: Option<&Path>,
    device_name: Option<String>,
    totp_code: Option<String>,
) -> anyhow::Result<()> {
    ensure_replaceable(&ctx.profile).await?;
    let sign_in = start_sign_in(ctx)?;
    let password = read_password(PasswordSource {
        file: password_file,
        flag: "--password-file",
        prompt: "Password",
        confirm: false,
    })?;
    let passphrase = new_passphrase(ctx, password_file)?;
    let device_name = device_name.unwrap_or_else(default_device_name);
    let mut request = LoginRequest {
        username,
        password,
        device_name: Some(device_name.clone()),
        signature_key: None,
        second_factor: totp_code,
    };
    let signed_in = sign_in
        .login_with_messenger(&request, NewDevice::new(ctx.profile.messenger_store(), &passphrase)?)
        .await;
    let (session, messenger) = match signed_in {
        // The server created no device: ask for the code and log in again.
        Err(SignInError::Api(e))
            if e.code() == Some(ErrorCode::SecondFactorRequired) && request.second_factor.is_none() =>
        {
            request.second_factor = Some(second_factor::read_code(
                None,
                "This account has a second factor. Code shown by the authenticator app (or a recovery code)",
            )?);
            start_sign_in(ctx)?
                .login_with_messenger(&request, NewDevice::new(ctx.profile.messenger_store(), &passphrase)?)
                .await?
        }
        other => other?,
    };
    ctx.out.print(&session_view(&session, &messenger), || {
        format!(
            "Logged in as {} — this device is {} (\"{}\")\n{}",
            session.user_id,
            session.device_id,
            printable(&device_name),
            messaging_ready(&messenger)
        )
    })
}

/// The new device's identity and store (register and login create both): asks for the
/// passphrase that seals the store (`--passphrase-file`, `PARLEY_PASSPHRASE_FILE` or a
/// prompt), before anything is sent to the server.
fn new_device(ctx: &Ctx, password_file: Option<&Path>) -> anyhow::Result<NewDevice> {
    let passphrase = new_passphrase(ctx, password_file)?;
    Ok(NewDevice::new(ctx.profile.messenger_store(), &passphrase)?)
}

/// The passphrase that will seal a new device's store (see [`new_device`]).
fn new_passphrase(ctx: &Ctx, password_file: Option<&Path>) -> anyhow::Result<String> {
    let stdin = Some(Path::new("-"));
    if password_file == stdin && ctx.passphrase_file.as_deref() == stdin {
        bail!("--password-file and --passphrase-file cannot both read stdin");
    }
    let passphrase = read_password(PasswordSource {
        file: ctx.passphrase_file.as_deref(),
        flag: "--passphrase-file",
        prompt: "New passphrase for this device's message store",
        confirm: true,
    })?;
    // Checked now, before anything is sent to the server.
    NewDevice::new(ctx.profile.messenger_store(), &passphrase)?;
    Ok(passphrase)
}

/// What register and login say about the device's messaging.
fn messaging_ready(messenger: &Messenger) -> String {
    format!(
        "Created its message store {} and published its KeyPackages ({KEY_PACKAGES_TARGET} and a last-resort \
         one): others can add you to groups now.",
        messenger.store_path().display()
    )
}

async fn logout(ctx: &Ctx, all: bool, local: bool) -> anyhow::Result<()> {
    let (client, session) = logged_in_client(&ctx.profile)?;
    if local {
        ctx.profile.forget()?;
        return ctx.out.ok(|| {
            format!(
                "Forgot the session of {} in profile \"{}\". Device {} stays on the account \
                 until you delete it from another device (`parley devices delete {}`).",
                session.user_id,
                ctx.profile.name(),
                session.device_id,
                session.device_id
            )
        });
    }
    let result = if all {
        client.logout_all().await
    } else {
        client.logout().await
    };
    let already = match result {
        Ok(()) => false,
        // The token is dead already (device deleted elsewhere, password changed): the
        // goal of logging out is reached, only the local copy is left to remove.
        Err(e) if e.code() == Some(ErrorCode::UnknownToken) && !all => true,
        Err(e) => return Err(e.into()),
    };
    ctx.profile.forget()?;
    ctx.out.ok(|| {
        if already {
            format!(
                "Device {} of {} was already logged out; forgot its session.",
                session.device_id, session.user_id
            )
        } else if all {
            format!("Logged out every device of {}.", session.user_id)
        } else {
            format!("Logged out {} (device {}).", session.user_id, session.device_id)
        }
    })
}

async fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let (client, session) = logged_in_client(&ctx.profile)?;
    let me = client.whoami().await?;
    ctx.out.print(&me, || {
        format!(
            "{} (device {}) on {}",
            me.user_id,
            me.device_id,
            session.server.as_str().trim_end_matches('/')
        )
    })
}

async fn keys(ctx: &Ctx) -> anyhow::Result<()> {
    let (client, _) = logged_in_client(&ctx.profile)?;
    let count = client.key_package_count().await?;
    ctx.out.print(&count, || {
        let mut text = format!(
            "{} one-time KeyPackages left, {} last-resort one; {} claimed in the last hour",
            count.available,
            if count.last_resort { "a" } else { "no" },
            count.claimed_last_hour
        );
        if count.last_resort_claimed_last_hour > 0 {
            text.push_str(&format!(
                " ({} of them got the last-resort package: none was left, or a claimer used up its \
                 hourly share)",
                count.last_resort_claimed_last_hour
            ));
        }
        text
    })
}

async fn passwd(ctx: &Ctx, password_file: Option<&Path>, new_password_file: Option<&Path>) -> anyhow::Result<()> {
    let stdin = Some(Path::new("-"));
    if password_file == stdin && new_password_file == stdin {
        bail!("--password-file and --new-password-file cannot both read stdin");
    }
    let (client, _) = logged_in_client(&ctx.profile)?;
    let current_password = read_password(PasswordSource {
        file: password_file,
        flag: "--password-file",
        prompt: "Current password",
        confirm: false,
    })?;
    let new_password = read_password(PasswordSource {
        file: new_password_file,
        flag: "--new-password-file",
        prompt: "New password",
        confirm: true,
    })?;
    client
        .change_password(&ChangePasswordRequest {
            current_password,
            new_password,
        })
        .await?;
    ctx.out
        .ok(|| "Password changed. Your other devices were logged out.".to_owned())
}

async fn list_devices(ctx: &Ctx) -> anyhow::Result<()> {
    let (client, _) = logged_in_client(&ctx.profile)?;
    let list = client.devices().await?;
    ctx.out.print(&list, || device_table(&list.devices))
}

async fn rename_device(ctx: &Ctx, device_id: &str, name: &str) -> anyhow::Result<()> {
    let device_id = parse_device_id(device_id)?;
    let (client, _) = logged_in_client(&ctx.profile)?;
    let device = client.rename_device(&device_id, name).await?;
    ctx.out.print(&device, || {
        format!(
            "Renamed device {} to \"{}\".",
            device.device_id,
            printable(&device.display_name)
        )
    })
}

async fn audit_devices(ctx: &Ctx, accept: Option<&str>) -> anyhow::Result<()> {
    let mut messenger = messaging::open(ctx).await?;
    if let Some(device_id) = accept {
        let device_id = parse_device_id(device_id)?;
        if !messenger.accept_device_alert(&device_id).await? {
            anyhow::bail!("no alert names device {device_id}; see `parley devices audit`");
        }
    }
    let events = messenger.sync().await?;
    for event in &events {
        if let parley_sdk::messenger::Event::TransparencyFailed { .. } = event {
            eprintln!("{}", crate::messaging_output::event_text(event));
        }
    }
    let alerts = messenger.device_alerts();
    let view = serde_json::json!({ "ok": true, "alerts": alerts });
    ctx.out.print(&view, || {
        if alerts.is_empty() {
            return "No device of this account appeared without this device knowing.".to_owned();
        }
        let mut text = String::from("Devices of this account that appeared without this device knowing:");
        for alert in &alerts {
            text.push_str(&format!(
                "\n  {}  published in epoch {}{}{}",
                alert.device_id,
                alert.epoch,
                alert.published_at_ms.map_or(String::new(), |ms| format!(
                    " at {}",
                    crate::messaging_output::time_of_ms(ms)
                )),
                if alert.accepted {
                    "  (accepted as yours)"
                } else {
                    "  NOT ACCEPTED"
                }
            ));
        }
        text.push_str("\nA device that is not yours: `parley devices delete <id>`, then change your password.");
        text
    })
}

async fn delete_device(ctx: &Ctx, device_id: &str) -> anyhow::Result<()> {
    let device_id = parse_device_id(device_id)?;
    let (client, session) = logged_in_client(&ctx.profile)?;
    let this_device = device_id == session.device_id;
    if this_device || !Messenger::store_exists(&ctx.profile.messenger_store()) {
        client.delete_device(&device_id).await?;
    } else {
        // Another device: revoked, then removed from every conversation this one shares.
        let mut messenger = messaging::open(ctx).await?;
        let deletion = messenger.delete_device(&device_id).await?;
        let mut view = serde_json::to_value(&deletion)?;
        view["ok"] = serde_json::Value::Bool(true);
        return ctx.out.print(&view, || {
            let mut text = format!(
                "Deleted device {device_id}; its access is revoked, and it was removed from {} conversation(s).",
                deletion.removed_from.len()
            );
            for (group, why) in &deletion.not_removed {
                text.push_str(&format!(
                    "\nwarning: could not remove it from {group} ({}); members remove it before their next message.",
                    printable(why)
                ));
            }
            text
        });
    }
    if this_device {
        ctx.profile.forget()?;
    }
    ctx.out.ok(|| {
        if this_device {
            format!(
                "Deleted device {device_id}, this one: profile \"{}\" is logged out.",
                ctx.profile.name()
            )
        } else {
            format!("Deleted device {device_id}; its access is revoked.")
        }
    })
}

/// Refuses to overwrite a profile's session that still works: that would leave a
/// logged-in device behind with nobody holding its token. A session the server has
/// revoked is replaced silently.
async fn ensure_replaceable(profile: &Profile) -> anyhow::Result<()> {
    let Some(saved) = profile.load()? else {
        return Ok(());
    };
    let check = match saved.client() {
        Ok(client) => client.whoami().await.map(drop),
        Err(e) => Err(e),
    };
    let dead = |e: &Error| matches!(e.code(), Some(ErrorCode::UnknownToken | ErrorCode::MissingToken));
    let other_profile = "run `parley logout` first, or use another --profile";
    match check {
        Err(e) if dead(&e) => Ok(()),
        Ok(()) => bail!(
            "profile \"{}\" is already logged in as {} (device {}); {other_profile}",
            profile.name(),
            saved.user_id,
            saved.device_id
        ),
        Err(e) => bail!(
            "profile \"{}\" holds a session of {} that could not be checked ({e}); \
             {other_profile} (`parley logout --local` forgets it without the server)",
            profile.name(),
            saved.user_id
        ),
    }
}

/// Starts register or login: the server is --server, else the profile's; the CA file is
/// --ca-file (made absolute), else the profile's when the server is the profile's, else
/// the system roots.
fn start_sign_in(ctx: &Ctx) -> anyhow::Result<SignIn<'_>> {
    let saved = ctx.profile.load().ok().flatten();
    let server = match (&ctx.server, &saved) {
        (Some(server), _) => server.clone(),
        (None, Some(saved)) => saved.server.clone(),
        (None, None) => {
            bail!("which homeserver? pass --server URL (e.g. --server https://chat.example.org)")
        }
    };
    let ca_file = match (&ctx.ca_file, saved) {
        (Some(path), _) => {
            Some(std::path::absolute(path).with_context(|| format!("cannot resolve --ca-file {}", path.display()))?)
        }
        (None, Some(saved)) if saved.server == server => saved.ca_file,
        (None, _) => None,
    };
    let ca = ca_file.map_or(ServerCa::SystemRoots, ServerCa::File);
    Ok(ctx.profile.sign_in(server, ca)?)
}

/// The profile's client, logged in as its device.
pub(crate) fn logged_in_client(profile: &Profile) -> anyhow::Result<(Client, Session)> {
    let session = profile.load()?.ok_or(Error::NotLoggedIn)?;
    Ok((session.client()?, session))
}

/// What register and login print with --json: the session without its secret token
/// (which is saved in the profile, never printed), and the device's messaging.
fn session_view(session: &Session, messenger: &Messenger) -> serde_json::Value {
    serde_json::json!({
        "user_id": session.user_id,
        "device_id": session.device_id,
        "message_store": messenger.store_path(),
        "key_packages_published": true,
    })
}

fn parse_device_id(raw: &str) -> anyhow::Result<DeviceId> {
    DeviceId::parse(raw).map_err(|e| anyhow::anyhow!("invalid device id \"{}\": {e}", printable(raw)))
}

/// `$XDG_CONFIG_HOME/parley`, else `~/.config/parley`.
fn default_home() -> anyhow::Result<PathBuf> {
    let absolute = |var: &str| std::env::var_os(var).map(PathBuf::from).filter(|dir| dir.is_absolute());
    if let Some(dir) = absolute("XDG_CONFIG_HOME") {
        return Ok(dir.join("parley"));
    }
    match absolute("HOME") {
        Some(home) => Ok(home.join(".config").join("parley")),
        None => bail!("cannot find your home directory; pass --home DIR"),
    }
}

/// "parley CLI on <hostname>", or "parley CLI" when the host name is unknown.
fn default_device_name() -> String {
    let hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .and_then(|h| h.lines().next().map(str::trim).map(str::to_owned))
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().map(|h| h.trim().to_owned()))
        .filter(|h| !h.is_empty() && !h.chars().any(char::is_control));
    device_name_for(hostname.as_deref())
}

fn device_name_for(hostname: Option<&str>) -> String {
    match hostname {
        Some(host) => format!("parley CLI on {host}")
            .chars()
            .take(MAX_DEVICE_NAME_CHARS)
            .collect(),
        None => "parley CLI".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_device_names() {
        assert_eq!(device_name_for(Some("laptop")), "parley CLI on laptop");
        assert_eq!(device_name_for(None), "parley CLI");
        let long = device_name_for(Some(&"h".repeat(500)));
        assert_eq!(long.chars().count(), MAX_DEVICE_NAME_CHARS);
        assert!(default_device_name().starts_with("parley CLI"));
    }

    #[test]
    fn device_ids_are_checked_before_any_request() {
        assert!(parse_device_id("ABC123").is_ok());
        let err = parse_device_id("../x").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("invalid device id \"../x\""), "{err}");
    }

    #[tokio::test]
    async fn commands_need_a_session() -> anyhow::Result<()> {
        let home = tempfile::tempdir()?;
        let ctx = Ctx {
            profile: Profile::new(home.path(), "default")?,
            out: Output { json: true },
            server: None,
            ca_file: None,
            passphrase_file: None,
        };
        let err = whoami(&ctx).await.err().context("whoami without a session")?;
        assert!(matches!(err.downcast_ref::<Error>(), Some(Error::NotLoggedIn)));
        // register/login need a server from somewhere, and say so before asking a password.
        let err = login(&ctx, "alice".into(), None, None, None)
            .await
            .err()
            .context("login")?;
        assert!(err.to_string().contains("--server"), "{err}");
        Ok(())
    }
}
