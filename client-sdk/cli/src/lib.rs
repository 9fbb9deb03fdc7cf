//! The `parley` command-line client and `parley ui`, on the Parley SDK
//! ([`parley_sdk`]). The binary only calls [`main`]; the commands live in this library
//! so that they are testable and reusable.

mod commands;
mod key_backup;
mod messaging;
mod messaging_output;
mod output;
mod password;
mod report;
mod second_factor;
pub mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use commands::run;
pub use report::explain;

/// Command-line arguments of `parley`.
#[derive(Debug, Parser)]
#[command(
    name = "parley",
    version,
    about = "Parley: end-to-end encrypted messaging from the command line",
    long_about = "Parley: end-to-end encrypted messaging from the command line.\n\n\
        Start with `parley --server https://chat.example.org register USERNAME` (add \
        --ca-file for a private or development server). The session is saved in the \
        profile, so later commands need no --server.",
    after_help = "Passwords and passphrases are never taken as arguments: they are prompted \
        for, or read from the first line of a file (--password-file FILE, --passphrase-file \
        FILE, or - for stdin)."
)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Which saved login to use; each profile is one device of one account.
    #[arg(
        long,
        global = true,
        env = "PARLEY_PROFILE",
        default_value = "default",
        value_name = "NAME"
    )]
    pub profile: String,
    /// Where profiles are kept [default: $XDG_CONFIG_HOME/parley or ~/.config/parley].
    #[arg(long, global = true, env = "PARLEY_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Homeserver URL, e.g. `https://chat.example.org`. Used by register and login and
    /// remembered in the profile; other commands use the profile's server.
    #[arg(long, global = true, env = "PARLEY_SERVER", value_name = "URL")]
    pub server: Option<url::Url>,
    /// PEM file of the CA that issued the homeserver's certificate, instead of the system
    /// roots (private or development servers). Used by register and login; remembered.
    #[arg(long, global = true, env = "PARLEY_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Read the passphrase of this profile's message store from the first line of FILE
    /// (- for stdin) instead of prompting. The store keeps the device's MLS keys and
    /// message history, encrypted; its passphrase is chosen at first use.
    #[arg(long, global = true, env = "PARLEY_PASSPHRASE_FILE", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// The commands of `parley`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account and log this profile in as its first device.
    Register {
        /// The username to register (the part before the @: lowercase letters, digits, . _ -).
        username: String,
        /// Read the password from the first line of FILE (- for stdin) instead of prompting.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Invite token, if the server requires one to register.
        #[arg(long, value_name = "TOKEN")]
        invite_token: Option<String>,
        /// Name of this device in your device list [default: "parley CLI on HOSTNAME"].
        #[arg(long, value_name = "NAME")]
        device_name: Option<String>,
    },
    /// Log this profile in as a new device of an existing account.
    Login {
        /// `alice` or `alice@chat.example.org`.
        username: String,
        /// Read the password from the first line of FILE (- for stdin) instead of prompting.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Name of this device in your device list [default: "parley CLI on HOSTNAME"].
        #[arg(long, value_name = "NAME")]
        device_name: Option<String>,
        /// The current code of the account's second factor (6 digits from the
        /// authenticator app), or one of its recovery codes; without it, it is asked for
        /// when the server needs one.
        #[arg(long, value_name = "CODE")]
        totp_code: Option<String>,
    },
    /// Log out this device: the server deletes it and its access token, and the profile
    /// forgets the session.
    Logout {
        /// Log out every device of the account, not only this one.
        #[arg(long, conflicts_with = "local")]
        all: bool,
        /// Only forget the saved session, without telling the server (when the server is
        /// gone); the device stays on the account until deleted from another device.
        #[arg(long)]
        local: bool,
    },
    /// Show the account and device of this profile.
    Whoami,
    /// Show this device's KeyPackages on the server (what others claim to add it to a
    /// group): how many are left, whether a last-resort one is there, and how many were
    /// claimed in the last hour. Messaging commands top them up.
    Keys,
    /// Change your password; every other device of the account is logged out.
    Passwd {
        /// Read the current password from the first line of FILE (- for stdin).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Read the new password from the first line of FILE (- for stdin).
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// List, rename or delete the devices of your account.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Turn the account's second factor (TOTP codes from an authenticator app) on or
    /// off, or show it.
    #[command(subcommand, name = "2fa")]
    TwoFactor(TwoFactorCommand),
    /// Create groups, add or remove members, leave, list.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Send a text message or a file to a group (end-to-end encrypted).
    Send {
        /// The group (its id, or the start of it).
        group: String,
        /// The text (optional with --file); - reads it from stdin.
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// Send this file, encrypted on this device (with the text, if any). Shows the
        /// upload's progress on a terminal.
        #[arg(long, value_name = "PATH")]
        file: Option<std::path::PathBuf>,
        /// Make it a disappearing message, deleted everywhere after DURATION (e.g. 30s,
        /// 10m, 2h, 7d, 1h30m).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Reply to a message: send TEXT quoting message SEQ.
    Reply {
        /// The group (its id, or the start of it).
        group: String,
        /// The number of the message answered, as shown by `parley history` (#N).
        seq: i64,
        /// The text; - reads it from stdin.
        text: String,
        /// Make it a disappearing message, deleted everywhere after DURATION (e.g. 30s,
        /// 10m, 2h, 7d, 1h30m).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// React to a message with an emoji; the same emoji again takes it back.
    React {
        /// The group (its id, or the start of it).
        group: String,
        /// The number of the message, as shown by `parley history` (#N).
        seq: i64,
        /// The reaction, e.g. 👍 (at most 32 bytes, no spaces).
        emoji: String,
        /// Only take your reaction back (never add it).
        #[arg(long)]
        remove: bool,
    },
    /// Replace the text of one of your messages, for everyone; it shows as edited.
    Edit {
        /// The group (its id, or the start of it).
        group: String,
        /// The number of your message, as shown by `parley history` (#N).
        seq: i64,
        /// The new text; - reads it from stdin.
        text: String,
    },
    /// Print incoming messages and events as they arrive, until Ctrl-C (one JSON object
    /// per line with --json).
    Listen,
    /// Process everything waiting in the inbox once, print it, and exit (for scripts).
    Sync,
    /// Show a conversation's messages, as stored on this device.
    History {
        /// The group (its id, or the start of it).
        group: String,
        /// Only messages containing WORD (case-insensitive).
        #[arg(long, value_name = "WORD")]
        search: Option<String>,
    },
    /// Export a conversation on stdout.
    Export {
        /// The group (its id, or the start of it).
        group: String,
        /// Output format [default: text, or json with --json].
        #[arg(long, value_enum)]
        format: Option<ExportFormatArg>,
    },
    /// Show the safety number of you and USER; compare it with theirs (in person or
    /// over another channel), then mark them verified.
    Verify {
        /// `bob` (on your server) or `bob@chat.example.org`.
        user: String,
        /// Mark USER verified with the devices the number covers now; you are warned if
        /// they change.
        #[arg(long)]
        mark: bool,
    },
    /// Open Parley in your web browser: serves the web app and a local API on
    /// 127.0.0.1 only, and prints the address to open (with a secret made at each
    /// launch). Your keys stay in this process. Ctrl-C stops it.
    Ui {
        /// The port on 127.0.0.1 [default: a free one].
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Do not try to open a browser (the default: the address is printed).
        #[arg(long)]
        no_open: bool,
    },
    /// Download the file of a message, check it and decrypt it (progress shown on a
    /// terminal).
    Download {
        /// The group (its id, or the start of it).
        group: String,
        /// The message's number, as shown by `parley history` (#N).
        seq: i64,
        /// Where to write the file (default: its name, in the current directory; an
        /// existing directory: its name there).
        #[arg(long, value_name = "PATH")]
        out: Option<std::path::PathBuf>,
    },
    /// Keep an end-to-end encrypted backup of your history on your homeserver, for a
    /// new device (after losing this one): enable, back up now, show, turn off.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore your backup on this (new) device after logging in: downloads, checks and
    /// decrypts it, adds it to this device's history (never overwriting newer messages),
    /// then joins your conversations. Run it again to continue an interrupted restore.
    Restore {
        /// Read the recovery key (or the backup passphrase) from the first line of FILE
        /// (- for stdin) instead of prompting.
        #[arg(long, value_name = "FILE")]
        recovery_key_file: Option<PathBuf>,
    },
    /// Delete one message from this device's history, for real; with --for-everyone,
    /// one of your messages from every member's history.
    Delete {
        /// The group (its id, or the start of it).
        group: String,
        /// The message's number, as shown by `parley history` (#N).
        seq: i64,
        /// Delete your message for every member of the group, not only on this device
        /// (the other devices remove it when they receive the request).
        #[arg(long)]
        for_everyone: bool,
    },
}

/// `parley 2fa …`.
#[derive(Debug, Subcommand)]
pub enum TwoFactorCommand {
    /// Turn the second factor on: shows a secret (as a QR code and as text) for an
    /// authenticator app, asks for a code from the app to confirm, and prints 10
    /// single-use recovery codes.
    Enable {
        /// The confirming code, instead of asking for it after the secret is shown
        /// (read from stdin otherwise).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
    },
    /// Turn the second factor off; needs the password and a current code (or a
    /// recovery code).
    Disable {
        /// Read the password from the first line of FILE (- for stdin) instead of prompting.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// A current code or a recovery code, instead of asking for it.
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
    },
    /// Show whether the second factor is on and how many recovery codes are left.
    Status,
}

/// `parley group …`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group with this device as its only member; prints its id.
    Create,
    /// Add users (every one of their devices) to a group.
    Add {
        /// The group (its id, or the start of it).
        group: String,
        /// `bob` (on your server) or `bob@chat.example.org`; your own user adds your other devices.
        #[arg(required = true, value_name = "USER")]
        users: Vec<String>,
    },
    /// Remove users (every one of their devices) from a group.
    Remove {
        /// The group (its id, or the start of it).
        group: String,
        /// `bob` (on your server) or `bob@chat.example.org`.
        #[arg(required = true, value_name = "USER")]
        users: Vec<String>,
    },
    /// Leave a group: tell its hub and the other members (who remove your devices, even
    /// if none is online now), and delete the conversation and its history from this
    /// device.
    Leave {
        /// The group (its id, or the start of it).
        group: String,
    },
    /// List a group's member devices (from this device's copy of the group).
    Members {
        /// The group (its id, or the start of it).
        group: String,
    },
    /// List the conversations on this device.
    List,
    /// Give a group a name (admins only; encrypted: servers never see it).
    Rename {
        /// The group (its id, or the start of it).
        group: String,
        /// The new name (at most 100 characters; "" clears it).
        name: String,
    },
    /// Set a group's topic (admins only; encrypted: servers never see it).
    Topic {
        /// The group (its id, or the start of it).
        group: String,
        /// The new topic (at most 500 characters; "" clears it).
        topic: String,
    },
    /// Set a group's disappearing timer for every member (admins only; encrypted):
    /// later messages disappear after DURATION unless sent with --expires.
    Timer {
        /// The group (its id, or the start of it).
        group: String,
        /// e.g. 30s, 10m, 2h, 7d, 1h30m (at most 366d), or `off`.
        #[arg(value_name = "DURATION|off")]
        duration: String,
    },
    /// Show a group's name, topic, disappearing timer and admins.
    Admins {
        /// The group (its id, or the start of it).
        group: String,
    },
    /// Make a member an admin (admins only).
    Promote {
        /// The group (its id, or the start of it).
        group: String,
        /// `bob` (on your server) or `bob@chat.example.org`: a member of the group.
        user: String,
    },
    /// Take the admin role from a member (admins only; the last admin cannot be demoted).
    Demote {
        /// The group (its id, or the start of it).
        group: String,
        /// `bob` (on your server) or `bob@chat.example.org`.
        user: String,
    },
}

/// `parley export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormatArg {
    /// One JSON document.
    Json,
    /// One line per message.
    Text,
}

/// `parley backup …`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Turn the backup on: shows a new recovery key once (or asks for a passphrase with
    /// --passphrase), then backs up everything. Later changes are backed up after each
    /// send and sync.
    Enable {
        /// Protect the backup with a passphrase you choose (at least 12 characters)
        /// instead of a generated recovery key.
        #[arg(long)]
        passphrase: bool,
        /// Read that passphrase from the first line of FILE (- for stdin) instead of
        /// prompting; implies --passphrase.
        #[arg(long, value_name = "FILE")]
        backup_passphrase_file: Option<PathBuf>,
        /// Also write the generated recovery key to FILE (created readable by you only).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["passphrase", "backup_passphrase_file"])]
        recovery_key_file: Option<PathBuf>,
    },
    /// Upload what changed since the last backup now.
    Now,
    /// Show whether this device backs up, when it last did, and the backup's size on
    /// the server against your quota.
    Status,
    /// Turn the backup off and delete it from the server.
    Disable,
}

/// `parley devices …`.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List the account's devices; * marks this one.
    List,
    /// Give a device a new display name.
    Rename {
        /// The device, as shown by `parley devices list`.
        device_id: String,
        /// The new name.
        name: String,
    },
    /// Delete a device, revoking its access at once (this one too: that logs out).
    Delete {
        /// The device, as shown by `parley devices list`.
        device_id: String,
    },
    /// Check the account's history in its server's key directory (key transparency) and
    /// list the devices that appeared without this device knowing, with the epoch and time
    /// each was published: a device logged in elsewhere, or one the server added behind
    /// your back.
    Audit {
        /// Mark this device of the alerts as yours (it stays listed, as accepted).
        #[arg(long, value_name = "DEVICE_ID")]
        accept: Option<String>,
    },
    /// Show a user's devices as their server's key directory publishes them, with the
    /// epoch they were published in (a device added later shows a newer epoch).
    Published {
        /// The user (`name@server`, or `name` for one of your server).
        user: String,
    },
}

/// The whole `parley` program: parses the arguments (usage errors exit with 2), runs the
/// command, prints an error as `error: …` on stderr and exits with 1 when it fails.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let profile = cli.global.profile.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", explain(&err, &profile));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn passwords_are_not_arguments() {
        let with_password = Cli::try_parse_from(["parley", "login", "alice", "--password", "x"]);
        assert!(with_password.is_err());
        let with_positional = Cli::try_parse_from(["parley", "login", "alice", "hunter2hunter2"]);
        assert!(with_positional.is_err());
    }

    #[test]
    fn global_options_go_anywhere() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["parley", "devices", "list", "--json", "--profile", "work"])?;
        assert!(cli.global.json);
        assert_eq!(cli.global.profile, "work");
        assert!(matches!(cli.command, Command::Devices(DevicesCommand::List)));
        assert!(Cli::try_parse_from(["parley", "logout", "--all", "--local"]).is_err());
        Ok(())
    }
}
