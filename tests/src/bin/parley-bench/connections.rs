//! Many idle devices connected over WebSockets: what each costs the homeserver in memory.
//! The devices are inserted into the database directly (their tokens hashed as the server
//! hashes them): registration cost is measured by `accounts`, not here.
//!
//! Each device opens a TLS WebSocket on the inbox stream endpoint as the SDK's
//! `Client::inbox_stream` does (same path, bearer token, ALPN), but from a source address
//! of the benchmark's choosing: from one address, connections to the server's one port are
//! limited by `net.ipv4.ip_local_port_range` (28,232 ports by default), so the devices are
//! spread over 127.0.0.2, 127.0.0.3, … (`--source-addresses`; Linux routes all of
//! 127.0.0.0/8 to loopback without configuration). At the end every stream must answer a
//! ping, which the homeserver's task for that stream sends: a refused or dropped stream
//! would not.
//!
//! What many connections need from the OS (for the homeserver, and for this command, which
//! holds the other end of each):
//! - Open files: the homeserver holds two descriptors per connection (the socket, and the
//!   duplicate `shutdown::Connections` keeps to close idle connections on shutdown), plus
//!   about a thousand; this command one per connection. It raises its RLIMIT_NOFILE (soft
//!   to hard, and hard to 1,048,576 when it may: root with CAP_SYS_RESOURCE), and the
//!   homeserver it starts inherits it. A homeserver under systemd needs `LimitNOFILE=` of
//!   at least 2 × connections + 1,000 (deploy/parley-homeserver.service sets 65,536: about
//!   32,000 connections; 100,000 need 201,000, e.g. `LimitNOFILE=262144`); in a container,
//!   `--ulimit nofile=N:N`. `fs.nr_open` caps one process's limit (1,048,576 by default),
//!   `fs.file-max` the machine's.
//! - HTTP workers: each accepts at most 25,600 connections (actix-web's default, which the
//!   homeserver keeps) and the homeserver runs one per core, so past 25,600 × cores
//!   connections `listen.workers` must be at least connections / 25,600; this command sets it.
//! - Connection tracking, where a firewall uses it: `net.netfilter.nf_conntrack_max` above
//!   the connection count.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use parley_homeserver::devcerts::DevCa;
use parley_specs::endpoints::client::INBOX_STREAM;
use rand::distr::{Alphanumeric, SampleString};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::server::BenchServer;

type InboxSocket = WebSocketStream<TlsStream<TcpStream>>;

/// The first address devices connect from; 127.0.0.1 stays for everything else.
const FIRST_SOURCE_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The last address of 127.0.0.0/8 that is not its broadcast address.
const LAST_LOOPBACK_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 254);
/// actix-server's default limit on one worker's open connections (`max_connections`).
const CONNECTIONS_PER_WORKER: usize = 25_600;
/// Descriptors a process needs besides its connections (database pool, listeners,
/// epoll and event descriptors, logs).
const SPARE_FDS: u64 = 1_000;
/// Descriptors the homeserver holds per connection: the socket and the duplicate its
/// graceful shutdown keeps (`shutdown::Connections::on_connect`).
const HOMESERVER_FDS_PER_CONNECTION: u64 = 2;
/// The open-file limit asked for when the hard limit is lower (Linux's default `fs.nr_open`).
const WANTED_FD_LIMIT: u64 = 1 << 20;
/// How long one stream may take to open, or to answer the final ping: a server out of
/// descriptors stops accepting, and connections would otherwise wait forever.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Args, Clone)]
pub struct ConnectionsArgs {
    /// Devices to connect.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Loopback addresses to connect from, 127.0.0.2 onwards (default: enough for
    /// `--devices` within `net.ipv4.ip_local_port_range`).
    #[arg(long)]
    source_addresses: Option<u32>,
}

pub async fn run(args: ConnectionsArgs) -> anyhow::Result<()> {
    let sources = source_addresses(args.devices, args.source_addresses)?;
    check_system_limits(args.devices)?;
    raise_fd_limit(args.devices)?;
    let workers = workers_needed(args.devices);
    if let Some(workers) = workers {
        eprintln!(
            "{} connections exceed {CONNECTIONS_PER_WORKER} per HTTP worker × one worker per core: \
             the homeserver runs with listen.workers = {workers}",
            args.devices
        );
    }
    eprintln!("starting a durable PostgreSQL and a release homeserver ...");
    let ca = DevCa::generate("Parley bench CA")?;
    let server = BenchServer::start_configured(8, &ca, None, |config| {
        if let Some(workers) = workers {
            config["listen"]["workers"] = workers.into();
        }
    })
    .await?;
    let tokens = insert_devices(&server.database_url, args.devices).await?;
    let target = InboxTarget::new(&server)?;
    let idle_rss = server.rss_bytes();
    let started = Instant::now();
    let opened: Vec<anyhow::Result<InboxSocket>> = futures_util::stream::iter(tokens.iter().enumerate())
        .map(|(i, token)| {
            let source = sources[i % sources.len()];
            let open = target.open(source, token);
            async move {
                tokio::time::timeout(STREAM_TIMEOUT, open)
                    .await
                    .map_err(|_| anyhow!("no inbox stream from {source} within {} s", STREAM_TIMEOUT.as_secs()))?
            }
        })
        .buffer_unordered(args.parallel)
        .collect()
        .await;
    let connect_time = started.elapsed();
    let mut streams = Vec::with_capacity(opened.len());
    let mut failures = Vec::new();
    for result in opened {
        match result {
            Ok(stream) => streams.push(stream),
            Err(e) => failures.push(e),
        }
    }
    if let Some(first) = failures.first() {
        bail!(
            "{} of {} connections failed; the first: {first:#}",
            failures.len(),
            args.devices
        );
    }
    // Give the server a moment to settle its buffers before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected_rss = server.rss_bytes();
    let generator_rss = own_rss_bytes();
    let mib = |b: Option<u64>| b.map_or("?".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0));
    println!(
        "{} devices connected over WebSockets from {} source addresses in {:.1} s; homeserver RSS {} idle, {} connected ({:.1} KiB per device); generator RSS {}",
        streams.len(),
        sources.len(),
        connect_time.as_secs_f64(),
        mib(idle_rss),
        mib(connected_rss),
        match (idle_rss, connected_rss) {
            (Some(idle), Some(busy)) => busy.saturating_sub(idle) as f64 / 1024.0 / streams.len().max(1) as f64,
            _ => f64::NAN,
        },
        mib(generator_rss),
    );
    let silent: Vec<anyhow::Error> = futures_util::stream::iter(streams.iter_mut())
        .map(answer_ping)
        .buffer_unordered(args.parallel)
        .filter_map(|result| async move { result.err() })
        .collect()
        .await;
    if let Some(first) = silent.first() {
        bail!(
            "{} of {} streams did not answer a ping; the first: {first:#}",
            silent.len(),
            streams.len()
        );
    }
    println!("all {} inbox streams answered a ping", streams.len());
    // The homeserver closes first, so that the TIME_WAIT sockets are its own and not ones
    // holding this command's ephemeral ports for the next run.
    drop(server);
    drop(streams);
    Ok(())
}

/// Where and how a device opens its inbox stream: what `Client::inbox_stream` sends.
struct InboxTarget {
    server: SocketAddr,
    server_name: ServerName<'static>,
    url: url::Url,
    tls: TlsConnector,
}

impl InboxTarget {
    fn new(server: &BenchServer) -> anyhow::Result<Self> {
        let mut url: url::Url = server.url.parse()?;
        let host = url.host_str().context("the server URL has no host")?.to_owned();
        let port = url.port_or_known_default().context("the server URL has no port")?;
        url.set_path(INBOX_STREAM.path);
        url.set_query(Some("after=0"));
        url.set_scheme("wss")
            .map_err(|()| anyhow!("cannot make {url} a wss URL"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&server.ca_pem) {
            roots.add(cert?)?;
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // As the SDK's WebSocket connections: the upgrade is an HTTP/1.1 request.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            // The homeserver listens on 127.0.0.1 (server.rs); its URL names it `localhost`.
            server: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            server_name: ServerName::try_from(host)?,
            url,
            tls: TlsConnector::from(Arc::new(tls)),
        })
    }

    async fn open(&self, source: Ipv4Addr, token: &str) -> anyhow::Result<InboxSocket> {
        let socket = TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::from((source, 0)))
            .with_context(|| format!("cannot bind a socket to {source}"))?;
        let tcp = socket
            .connect(self.server)
            .await
            .with_context(|| format!("cannot connect from {source} to {}", self.server))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .context("TLS handshake")?;
        let mut request = self.url.as_str().into_client_request()?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))?;
        auth.set_sensitive(true);
        request.headers_mut().insert("authorization", auth);
        // An idle device reads a few small frames: tungstenite's default 128 KiB read
        // buffer per connection would make this process, not the server, run out of memory.
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let (socket, _) = tokio_tungstenite::client_async_with_config(request, tls, Some(config))
            .await
            .map_err(|e| match e {
                tungstenite::Error::Http(response) => anyhow!(
                    "the server refused the WebSocket: {} {}",
                    response.status(),
                    String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                ),
                other => other.into(),
            })?;
        Ok(socket)
    }
}

/// Pings over the stream and waits for the pong, which the homeserver's task serving this
/// device's stream sends.
async fn answer_ping(socket: &mut InboxSocket) -> anyhow::Result<()> {
    let pong = async {
        socket.send(Message::Ping(b"bench".to_vec().into())).await?;
        while let Some(message) = socket.next().await {
            if let Message::Pong(_) = message? {
                return Ok(());
            }
        }
        bail!("the server closed the stream")
    };
    tokio::time::timeout(STREAM_TIMEOUT, pong)
        .await
        .map_err(|_| anyhow!("no pong within {} s", STREAM_TIMEOUT.as_secs()))?
}

/// The loopback addresses the devices connect from, in turn: enough that none needs more
/// ephemeral ports than `net.ipv4.ip_local_port_range` holds.
fn source_addresses(devices: usize, asked: Option<u32>) -> anyhow::Result<Vec<Ipv4Addr>> {
    let ports = ephemeral_ports()?;
    // A quarter of each address's range stays free, for other sockets and slack.
    let per_address = (ports * 3 / 4).max(1);
    let count = match asked {
        Some(0) => bail!("--source-addresses must be at least 1"),
        Some(count) => count as usize,
        None => devices.div_ceil(per_address).max(1),
    };
    if devices.div_ceil(count) > ports {
        bail!(
            "{devices} devices from {count} source addresses need {} ephemeral ports each, but \
             net.ipv4.ip_local_port_range holds {ports}: pass more --source-addresses",
            devices.div_ceil(count)
        );
    }
    let first = u32::from(FIRST_SOURCE_ADDRESS);
    if count as u64 > u64::from(u32::from(LAST_LOOPBACK_ADDRESS) - first + 1) {
        bail!("--source-addresses {count} does not fit in 127.0.0.0/8");
    }
    Ok((0..count as u32).map(|i| Ipv4Addr::from(first + i)).collect())
}

/// How many ports `net.ipv4.ip_local_port_range` holds.
fn ephemeral_ports() -> anyhow::Result<usize> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")?;
    let bounds: Vec<usize> = range
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("net.ipv4.ip_local_port_range")?;
    match bounds[..] {
        [low, high] if high >= low => Ok(high - low + 1),
        _ => bail!("net.ipv4.ip_local_port_range is not `low high`: {range:?}"),
    }
}

/// Open files the homeserver needs for `devices` connections; this process needs fewer.
fn homeserver_fds(devices: usize) -> u64 {
    HOMESERVER_FDS_PER_CONNECTION * devices as u64 + SPARE_FDS
}

/// Refuses to start when the machine cannot hold the connections' descriptors, in the
/// homeserver and in this process.
fn check_system_limits(devices: usize) -> anyhow::Result<()> {
    let homeserver = homeserver_fds(devices);
    let nr_open = sysctl("fs/nr_open")?;
    if nr_open < homeserver {
        bail!(
            "the homeserver needs {homeserver} open files for {devices} connections, but \
             fs.nr_open caps a process at {nr_open}: sysctl -w fs.nr_open={homeserver}"
        );
    }
    let machine = homeserver + devices as u64 + SPARE_FDS;
    // `fs/file-nr`: allocated, unused (always 0), maximum.
    let file_nr = std::fs::read_to_string("/proc/sys/fs/file-nr")?;
    let allocated: u64 = file_nr.split_whitespace().next().unwrap_or("0").parse()?;
    let file_max = sysctl("fs/file-max")?;
    if file_max.saturating_sub(allocated) < machine {
        bail!(
            "{machine} more open files are needed on this machine, but fs.file-max is {file_max} \
             with {allocated} in use: sysctl -w fs.file-max={}",
            allocated + machine
        );
    }
    if let Ok(conntrack_max) = sysctl("net/netfilter/nf_conntrack_max")
        && conntrack_max < devices as u64 + SPARE_FDS
    {
        eprintln!(
            "warning: net.netfilter.nf_conntrack_max is {conntrack_max}: if a firewall tracks \
             loopback connections here, new ones will be dropped past it"
        );
    }
    Ok(())
}

/// Raises this process's open-file limit, which the homeserver it starts inherits.
fn raise_fd_limit(devices: usize) -> anyhow::Result<()> {
    let needed = homeserver_fds(devices);
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let wanted = WANTED_FD_LIMIT.min(sysctl("fs/nr_open")?).max(hard);
    // Raising the hard limit takes CAP_SYS_RESOURCE; without it, soft can reach hard.
    let limit = match setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted) {
        Ok(()) => wanted,
        Err(_) => {
            setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(RLIMIT_NOFILE)")?;
            hard
        }
    };
    if limit < needed {
        bail!(
            "the homeserver needs {needed} open files for {devices} connections (two each), but \
             RLIMIT_NOFILE is {limit} and raising it needs CAP_SYS_RESOURCE: raise the hard limit \
             first (as root: `ulimit -Hn {needed}`; systemd: LimitNOFILE={needed}; docker/podman: \
             --ulimit nofile={needed}:{needed}), or pass --devices {} at most",
            limit.saturating_sub(SPARE_FDS) / HOMESERVER_FDS_PER_CONNECTION
        );
    }
    Ok(())
}

/// `listen.workers` for the homeserver when its default, one worker per core, cannot accept
/// `devices` connections.
fn workers_needed(devices: usize) -> Option<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let needed = devices.div_ceil(CONNECTIONS_PER_WORKER);
    (needed > cores).then_some(needed)
}

/// A number from /proc/sys, e.g. `fs/nr_open`.
fn sysctl(path: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/sys/{path}"))?;
    text.trim()
        .parse()
        .with_context(|| format!("/proc/sys/{path} is not a number: {text:?}"))
}

/// Resident memory of this process (the load generator), from /proc.
fn own_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn insert_devices(database_url: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let (client, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO accounts (localpart, password_hash) VALUES ('idle', 'x') ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    let tokens: Vec<String> = (0..count)
        .map(|_| format!("pat_{}", Alphanumeric.sample_string(&mut rand::rng(), 43)))
        .collect();
    let ids: Vec<String> = (0..count).map(|i| format!("IDLE{i:08}")).collect();
    let hashes: Vec<Vec<u8>> = tokens.iter().map(|t| Sha256::digest(t.as_bytes()).to_vec()).collect();
    client
        .execute(
            "INSERT INTO devices (device_id, localpart, display_name, token_hash)
             SELECT id, 'idle', 'idle bench device', hash FROM unnest($1::text[], $2::bytea[]) AS t(id, hash)",
            &[&ids, &hashes],
        )
        .await?;
    Ok(tokens)
}
