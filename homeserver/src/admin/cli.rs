//! `parley-homeserver admin ...`: the admin API's command-line client. It finds the API
//! and the token through the server's configuration file (`[admin]`, with the same
//! `PARLEY_*` overrides as `serve`), prints tables for people and `--json` for scripts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use parley_specs::ErrorBody;
use parley_specs::ErrorCode;
use parley_specs::ServerName;
use parley_specs::admin_api::{
    AdminDeviceList, AdminUser, DeactivateResponse, Destination, DestinationList, PolicyLists, PolicySource,
    PolicyView, ResetPasswordRequest, ResetPasswordResponse, ResetSecondFactorResponse, ServerStats, StorageReport,
    UserList, UserQuery,
};
use parley_specs::client_api::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use parley_specs::endpoints::{Endpoint, Method, admin as endpoints};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::Config;
use crate::{admin, tls};

#[derive(clap::Args)]
pub struct AdminArgs {
    /// The homeserver's configuration file; its [admin] section says where the admin API
    /// listens and which file holds the token. PARLEY_* variables override it as for `serve`.
    #[arg(long, short, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// The admin API's base URL instead of the one [admin] listen implies (http://<listen>
    /// on loopback, else https://<server_name host>:<port>).
    #[arg(long, value_name = "URL", global = true)]
    url: Option<String>,
    /// The admin token file instead of [admin] token_file.
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// PEM CA bundle to trust when the admin API speaks HTTPS (default: the system's roots).
    #[arg(long, value_name = "FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// Accounts: list, show, deactivate, reactivate, reset a password.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// A user's devices (logged-in sessions): list, revoke.
    Devices {
        #[command(subcommand)]
        action: DevicesAction,
    },
    /// Other servers: outbound queues and backoff, retry, allow/deny policy.
    Federation {
        #[command(subcommand)]
        action: FederationAction,
    },
    /// Counts of users, devices, groups, messages and queues; database size and schema.
    Stats,
    /// Table sizes, rows past their retention still waiting for the sweeper, and the
    /// oldest undelivered entry per other server and in local inboxes.
    Storage,
}

#[derive(clap::Subcommand)]
enum UsersAction {
    /// Accounts in name order, one page at a time.
    List {
        /// Only accounts whose name contains this.
        #[arg(long)]
        search: Option<String>,
        /// Start after this account name (the previous page's last).
        #[arg(long)]
        after: Option<String>,
        /// Accounts per page (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// One account.
    Show {
        /// A name (`alice`) or user id (`alice@chat.example.org`).
        user: String,
    },
    /// Refuse the account's logins, revoke all its sessions and delete its KeyPackages.
    Deactivate {
        /// A name (`alice`) or user id (`alice@chat.example.org`).
        user: String,
    },
    /// Let a deactivated account log in again.
    Reactivate {
        /// A name (`alice`) or user id (`alice@chat.example.org`).
        user: String,
    },
    /// Set a new password and end every session of the account.
    ResetPassword {
        /// A name (`alice`) or user id (`alice@chat.example.org`).
        user: String,
        /// Read the new password from this file's first line; otherwise it is asked for
        /// (never given on the command line).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Turn the account's second factor (TOTP) off, for a user who lost their
    /// authenticator and recovery codes; the next login needs the password only.
    #[command(name = "reset-2fa")]
    Reset2fa {
        /// A name (`alice`) or user id (`alice@chat.example.org`).
        user: String,
    },
}

#[derive(clap::Subcommand)]
enum DevicesAction {
    /// The account's devices, with their unclaimed KeyPackages and inbox entries.
    List {
        /// A name (`alice`) or user id (`alice@chat.example.org`).
        user: String,
    },
    /// Delete a device: its access token stops working at once.
    Revoke {
        /// A name (`alice`) or user id (`alice@chat.example.org`).
        user: String,
        /// The device id, as `devices list` shows it.
        device: String,
    },
}

#[derive(clap::Subcommand)]
enum FederationAction {
    /// Servers this one sends to: queue depth, oldest message, failures, backoff.
    Destinations,
    /// End a server's backoff so its queue is sent now.
    Retry {
        /// The server name, e.g. `b.example`.
        server: String,
    },
    /// The allow and deny lists (stored in the database once edited here).
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
}

#[derive(clap::Subcommand)]
enum PolicyAction {
    /// The lists in effect and where they come from.
    Show,
    /// The allow list: when there is one, the only servers this one federates with.
    Allow {
        #[command(subcommand)]
        edit: AllowEdit,
    },
    /// The deny list: servers this one never federates with.
    Deny {
        #[command(subcommand)]
        edit: DenyEdit,
    },
    /// Forget the edited lists: the configuration file's apply again.
    Reset,
}

#[derive(clap::Subcommand)]
enum AllowEdit {
    /// Add a server (starting an allow list restricts federation to the servers on it).
    Add {
        /// The server name, e.g. `b.example`.
        server: String,
    },
    /// Take a server off the allow list.
    Remove {
        /// The server name, e.g. `b.example`.
        server: String,
    },
    /// No allow list: every server that is not denied.
    Clear,
}

#[derive(clap::Subcommand)]
enum DenyEdit {
    /// Refuse a server: its requests get 403 `server_not_allowed`, nothing is sent to it.
    Add {
        /// The server name, e.g. `b.example`.
        server: String,
    },
    /// Take a server off the deny list.
    Remove {
        /// The server name, e.g. `b.example`.
        server: String,
    },
    /// Empty the deny list.
    Clear,
}

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args)?;
    let json = args.json;
    match args.command {
        AdminCommand::Users { action } => users(&client, action, json).await,
        AdminCommand::Devices { action } => devices(&client, action, json).await,
        AdminCommand::Federation { action } => federation(&client, action, json).await,
        AdminCommand::Stats => {
            let (raw, stats) = client.call::<ServerStats>(endpoints::STATS, &[], None).await?;
            output(json, &raw, || print_stats(&stats));
            Ok(())
        }
        AdminCommand::Storage => {
            let (raw, report) = client.call::<StorageReport>(endpoints::STORAGE, &[], None).await?;
            output(json, &raw, || print_storage(&report));
            Ok(())
        }
    }
}

async fn users(client: &AdminClient, action: UsersAction, json: bool) -> anyhow::Result<()> {
    match action {
        UsersAction::List { search, after, limit } => {
            let query = UserQuery { search, after, limit };
            let query = query_pairs(&query);
            let (raw, list) = client.call_query::<UserList>(endpoints::LIST_USERS, &query).await?;
            output(json, &raw, || {
                print_users(&list.users);
                if let Some(next) = &list.next_after {
                    eprintln!("(more: --after {next})");
                }
            });
        }
        UsersAction::Show { user } => {
            let (raw, shown) = client.call::<AdminUser>(endpoints::GET_USER, &[&user], None).await?;
            output(json, &raw, || print_users(std::slice::from_ref(&shown)));
        }
        UsersAction::Deactivate { user } => {
            let (raw, done) = client
                .call::<DeactivateResponse>(endpoints::DEACTIVATE_USER, &[&user], None)
                .await?;
            output(json, &raw, || {
                println!(
                    "deactivated {}: {} session(s) revoked, {} KeyPackage(s) deleted; logins are refused",
                    done.user.user_id, done.revoked_devices, done.deleted_key_packages
                );
            });
        }
        UsersAction::Reactivate { user } => {
            let (raw, shown) = client
                .call::<AdminUser>(endpoints::REACTIVATE_USER, &[&user], None)
                .await?;
            output(json, &raw, || {
                println!("reactivated {}: it may log in again", shown.user_id)
            });
        }
        UsersAction::ResetPassword { user, password_file } => {
            let password = match password_file {
                Some(path) => password_from_file(&path)?,
                None => prompt_new_password()?,
            };
            let body = serde_json::to_value(ResetPasswordRequest { password })?;
            let (raw, done) = client
                .call::<ResetPasswordResponse>(endpoints::RESET_PASSWORD, &[&user], Some(body))
                .await?;
            output(json, &raw, || {
                println!("password of {user} reset; {} session(s) revoked", done.revoked_devices);
            });
        }
        UsersAction::Reset2fa { user } => {
            let (raw, done) = client
                .call::<ResetSecondFactorResponse>(endpoints::RESET_SECOND_FACTOR, &[&user], None)
                .await?;
            output(json, &raw, || {
                if done.was_enabled {
                    println!("second factor of {user} turned off; it logs in with its password only");
                } else {
                    println!("{user} had no second factor");
                }
            });
        }
    }
    Ok(())
}

async fn devices(client: &AdminClient, action: DevicesAction, json: bool) -> anyhow::Result<()> {
    match action {
        DevicesAction::List { user } => {
            let (raw, list) = client
                .call::<AdminDeviceList>(endpoints::LIST_DEVICES, &[&user], None)
                .await?;
            output(json, &raw, || {
                let rows = list
                    .devices
                    .iter()
                    .map(|d| {
                        vec![
                            d.device_id.to_string(),
                            d.display_name.clone(),
                            when(d.created_at),
                            when(d.last_seen_at),
                            d.unclaimed_key_packages.to_string(),
                            d.inbox_entries.to_string(),
                        ]
                    })
                    .collect();
                table(
                    &["DEVICE", "NAME", "CREATED", "LAST SEEN", "KEYPACKAGES", "INBOX"],
                    rows,
                );
            });
        }
        DevicesAction::Revoke { user, device } => {
            let (raw, ()) = client
                .call_empty(endpoints::REVOKE_DEVICE, &[&user, &device], None)
                .await?;
            output(json, &raw, || println!("revoked device {device} of {user}"));
        }
    }
    Ok(())
}

async fn federation(client: &AdminClient, action: FederationAction, json: bool) -> anyhow::Result<()> {
    match action {
        FederationAction::Destinations => {
            let (raw, list) = client
                .call::<DestinationList>(endpoints::LIST_DESTINATIONS, &[], None)
                .await?;
            output(json, &raw, || print_destinations(&list.destinations));
        }
        FederationAction::Retry { server } => {
            let (raw, destination) = client
                .call::<Destination>(endpoints::RETRY_DESTINATION, &[&server], None)
                .await?;
            output(json, &raw, || {
                println!(
                    "{}: backoff ended; {} queued message(s) are sent now",
                    destination.server, destination.queue_depth
                );
            });
        }
        FederationAction::Policy { action } => {
            let (raw, view) = match action {
                PolicyAction::Show => client.call::<PolicyView>(endpoints::GET_POLICY, &[], None).await?,
                PolicyAction::Reset => client.call::<PolicyView>(endpoints::RESET_POLICY, &[], None).await?,
                PolicyAction::Allow { edit } => {
                    let (_, current) = client.call::<PolicyView>(endpoints::GET_POLICY, &[], None).await?;
                    let mut lists = PolicyLists {
                        allow: current.allow,
                        deny: current.deny,
                    };
                    match edit {
                        AllowEdit::Add { server } => {
                            let server = server_name(&server)?;
                            if lists.allow.is_none() {
                                eprintln!(
                                    "note: this starts an allow list; from now on this server federates only with the servers on it"
                                );
                            }
                            let allow = lists.allow.get_or_insert_with(Vec::new);
                            if !allow.contains(&server) {
                                allow.push(server);
                            }
                        }
                        AllowEdit::Remove { server } => {
                            let server = server_name(&server)?;
                            if let Some(allow) = lists.allow.as_mut() {
                                allow.retain(|s| *s != server);
                            }
                        }
                        AllowEdit::Clear => lists.allow = None,
                    }
                    client.put_policy(&lists).await?
                }
                PolicyAction::Deny { edit } => {
                    let (_, current) = client.call::<PolicyView>(endpoints::GET_POLICY, &[], None).await?;
                    let mut lists = PolicyLists {
                        allow: current.allow,
                        deny: current.deny,
                    };
                    match edit {
                        DenyEdit::Add { server } => {
                            let server = server_name(&server)?;
                            if !lists.deny.contains(&server) {
                                lists.deny.push(server);
                            }
                        }
                        DenyEdit::Remove { server } => {
                            let server = server_name(&server)?;
                            lists.deny.retain(|s| *s != server);
                        }
                        DenyEdit::Clear => lists.deny.clear(),
                    }
                    client.put_policy(&lists).await?
                }
            };
            output(json, &raw, || print_policy(&view));
        }
    }
    Ok(())
}

fn server_name(raw: &str) -> anyhow::Result<ServerName> {
    ServerName::parse(raw).map_err(|e| anyhow::anyhow!("{raw:?} is not a server name: {e}"))
}

fn query_pairs(query: &UserQuery) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(search) = &query.search {
        pairs.push(("search", search.clone()));
    }
    if let Some(after) = &query.after {
        pairs.push(("after", after.clone()));
    }
    if let Some(limit) = query.limit {
        pairs.push(("limit", limit.to_string()));
    }
    pairs
}

fn password_from_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn prompt_new_password() -> anyhow::Result<String> {
    let password = rpassword::prompt_password(format!("New password (at least {MIN_PASSWORD_CHARS} characters): "))
        .context("cannot read the password from the terminal (use --password-file FILE)")?;
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        bail!("a password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters");
    }
    let again = rpassword::prompt_password("Repeat it: ").context("cannot read the password from the terminal")?;
    if again != password {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(password)
}

/// Prints the API's JSON as received, or the human rendering.
fn output(json: bool, raw: &serde_json::Value, human: impl FnOnce()) {
    if json {
        println!("{}", serde_json::to_string_pretty(raw).unwrap_or_default());
    } else {
        human();
    }
}

fn when(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    if rows.is_empty() {
        println!("(none)");
    }
    for row in rows {
        line(row);
    }
}

fn print_users(users: &[AdminUser]) {
    let rows = users
        .iter()
        .map(|u| {
            vec![
                u.user_id.to_string(),
                when(u.created_at),
                u.devices.to_string(),
                match u.deactivated_at {
                    Some(at) => format!("deactivated {}", when(at)),
                    None if u.deactivated => "deactivated".into(),
                    None => "active".into(),
                },
            ]
        })
        .collect();
    table(&["USER", "CREATED", "DEVICES", "STATUS"], rows);
}

fn print_destinations(destinations: &[Destination]) {
    let rows = destinations
        .iter()
        .map(|d| {
            vec![
                d.server.clone(),
                d.queue_depth.to_string(),
                d.oldest_queued_age_secs
                    .map_or_else(|| "-".into(), |s| format!("{s:.0}s")),
                d.failures.to_string(),
                if d.backing_off {
                    format!("backing off until {}", when(d.next_attempt_at))
                } else {
                    "due".into()
                },
                if d.allowed { "yes" } else { "no (queue dropped)" }.into(),
                d.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "SERVER",
            "QUEUED",
            "OLDEST",
            "FAILURES",
            "STATE",
            "ALLOWED",
            "LAST ERROR",
        ],
        rows,
    );
}

fn names(list: &[ServerName]) -> String {
    if list.is_empty() {
        return "(none)".into();
    }
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn print_policy(view: &PolicyView) {
    let source = match view.source {
        PolicySource::Database => "edited with the admin API (stored in the database)",
        PolicySource::ConfigFile => "the configuration file",
    };
    println!("source: {source}");
    match &view.allow {
        Some(allow) => println!("allow:  only {}", names(allow)),
        None => println!("allow:  every server not denied"),
    }
    println!("deny:   {}", names(&view.deny));
    if !view.federation_enabled {
        println!("note:   this server has no [federation] section; the lists apply once it has");
    }
}

/// Text stored from elsewhere (a peer's error message), without control characters.
fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn print_storage(r: &StorageReport) {
    let mib = |b: i64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
    println!("database size {}", mib(r.database_size_bytes));
    table(
        &["TABLE", "ROWS (ESTIMATE)", "SIZE"],
        r.tables
            .iter()
            .map(|t| vec![t.table.clone(), t.rows_estimate.to_string(), mib(t.bytes)])
            .collect(),
    );
    let b = &r.retention_backlog;
    println!();
    println!(
        "retention backlog (rows past retention, waiting for the sweeper){}:",
        if r.retention_enabled {
            ""
        } else {
            " - the sweeper is OFF ([retention] enabled = false)"
        }
    );
    let rows = [
        ("messages", b.messages),
        ("inbox entries of idle devices", b.idle_device_inbox_entries),
        ("old delivery receipts", b.receipts),
        ("expired KeyPackages", b.expired_key_packages),
        ("KeyPackage claim records", b.key_package_claims),
        ("federation replay records", b.replay_records),
    ];
    for (name, value) in rows {
        println!("  {name:<30} {value}");
    }
    println!();
    let oldest = r.inbox.oldest_entry.as_ref().map_or("none".to_owned(), |e| {
        format!(
            "{} (device {} of {}, {} #{})",
            when(e.sent_at),
            clean(&e.device_id),
            clean(&e.localpart),
            clean(&e.group_id),
            e.seq
        )
    });
    println!(
        "local inboxes: ~{} entries on {} devices; oldest undelivered: {oldest}",
        r.inbox.entries_estimate, r.inbox.devices_with_entries
    );
    if r.peers.is_empty() {
        println!("outbound federation: no destinations");
    } else {
        table(
            &["DESTINATION", "QUEUED", "OLDEST UNDELIVERED", "FAILURES", "LAST ERROR"],
            r.peers
                .iter()
                .map(|p| {
                    vec![
                        clean(&p.server),
                        p.queued.to_string(),
                        p.oldest_enqueued_at.map_or("-".to_owned(), when),
                        p.failures.to_string(),
                        p.last_error.as_deref().map_or("-".to_owned(), clean),
                    ]
                })
                .collect(),
        );
    }
}

fn print_stats(s: &ServerStats) {
    let rows = [
        ("server", s.server_name.to_string()),
        ("version", s.version.clone()),
        ("schema version", s.schema_version.to_string()),
        ("users", s.users.to_string()),
        ("deactivated users", s.deactivated_users.to_string()),
        ("devices", s.devices.to_string()),
        ("groups hubbed here", s.groups_hubbed.to_string()),
        ("groups followed", s.groups_followed.to_string()),
        ("stored messages", s.stored_messages.to_string()),
        ("undelivered inbox entries", s.undelivered_inbox_entries.to_string()),
        ("unclaimed KeyPackages", s.unclaimed_key_packages.to_string()),
        ("federation queue", s.federation_queue.to_string()),
        ("federation destinations", s.federation_destinations.to_string()),
        (
            "database size",
            format!("{:.1} MiB", s.database_size_bytes as f64 / (1024.0 * 1024.0)),
        ),
    ];
    for (name, value) in rows {
        println!("{name:<26} {value}");
    }
}

/// The admin API over HTTP(S) with the token.
struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
    token_file: PathBuf,
}

impl AdminClient {
    fn new(args: &AdminArgs) -> anyhow::Result<Self> {
        let config = match &args.config {
            Some(path) => Some(Config::load(path)?),
            None => None,
        };
        let admin = config.as_ref().and_then(|c| c.admin.as_ref());
        if config.is_some() && admin.is_none() && (args.url.is_none() || args.token_file.is_none()) {
            bail!(
                "{} has no [admin] section, so the server runs no admin API; add one (listen, token_file) and restart it",
                args.config
                    .as_deref()
                    .map(Path::display)
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            );
        }
        let base = match (&args.url, admin, &config) {
            (Some(url), _, _) => url.trim_end_matches('/').to_owned(),
            (None, Some(admin), Some(config)) => {
                if admin::plain_http(admin.listen) {
                    format!("http://{}", admin.listen)
                } else {
                    format!("https://{}:{}", config.server_name.host(), admin.listen.port())
                }
            }
            _ => bail!(
                "say where the admin API is: --config FILE (its [admin] section), or --url URL and --token-file FILE"
            ),
        };
        let token_file = match (&args.token_file, admin) {
            (Some(path), _) => path.clone(),
            (None, Some(admin)) => admin.token_file.clone(),
            (None, None) => {
                bail!("say where the admin token is: --config FILE (its [admin] token_file) or --token-file FILE")
            }
        };
        let token = admin::token::load(&token_file)?;
        tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120));
        if base.starts_with("https://") {
            let roots = tls::root_store(args.ca_file.as_deref())?;
            let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            builder = builder.tls_backend_preconfigured(tls);
        }
        Ok(Self {
            http: builder.build()?,
            base,
            token,
            token_file,
        })
    }

    async fn send(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Option<serde_json::Value>> {
        let mut url = format!("{}{}", self.base, endpoint.path_with(params));
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(name);
            url.push('=');
            url.push_str(&query_encode(value));
        }
        let method = match endpoint.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() || e.is_timeout() {
                anyhow::anyhow!(
                    "cannot reach the admin API at {}: {e}\n(is parley-homeserver running, with an [admin] section listening there?)",
                    self.base
                )
            } else {
                anyhow::anyhow!("the admin API at {} failed: {e}", self.base)
            }
        })?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(error) if error.error == ErrorCode::InvalidAdminToken => anyhow::anyhow!(
                    "the admin API refused the token in {} ({}): is it the token_file the server was started with?",
                    self.token_file.display(),
                    error.error
                ),
                Ok(error) => anyhow::anyhow!("{} ({status})", format_error(&error)),
                Err(_) => anyhow::anyhow!(
                    "the admin API answered {status}: {}",
                    String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>()
                ),
            });
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            serde_json::from_slice(&bytes).context("the admin API answered something else than JSON")?,
        ))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(serde_json::Value, T)> {
        let raw = self
            .send(endpoint, params, &[], body)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the admin API answered with no body"))?;
        let typed = serde_json::from_value(raw.clone()).context("unexpected answer from the admin API")?;
        Ok((raw, typed))
    }

    async fn call_query<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        query: &[(&str, String)],
    ) -> anyhow::Result<(serde_json::Value, T)> {
        let raw = self
            .send(endpoint, &[], query, None)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the admin API answered with no body"))?;
        let typed = serde_json::from_value(raw.clone()).context("unexpected answer from the admin API")?;
        Ok((raw, typed))
    }

    async fn call_empty(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(serde_json::Value, ())> {
        self.send(endpoint, params, &[], body).await?;
        Ok((serde_json::json!({"ok": true}), ()))
    }

    async fn put_policy(&self, lists: &PolicyLists) -> anyhow::Result<(serde_json::Value, PolicyView)> {
        self.call(endpoints::SET_POLICY, &[], Some(serde_json::to_value(lists)?))
            .await
    }
}

fn query_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn format_error(error: &ErrorBody) -> String {
    format!("{}: {}", error.error, error.message)
}
