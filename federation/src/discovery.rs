//! Server discovery: where a server name's federation API listens.
//!
//! In order:
//! 1. a static address from `[federation.peers]` (private federations, tests): no lookup;
//! 2. the server's well-known document, `GET https://<name>/.well-known/parley/server`
//!    (the name's own port if it has one, else 443), `{"server": "<host>[:<port>]"}`, port
//!    8448 when it names none;
//! 3. when that document cannot be had or used (unreachable, not 2xx, a redirect, too
//!    large, not that JSON): the name's own host, on the port the name gives or 8448.
//!
//! Results are cached per server name: a delegation for an hour (or the document's
//! `Cache-Control: max-age`, kept between a minute and a day), a fallback for five minutes
//! so a peer that is down does not cost a well-known fetch per request. Concurrent
//! look-ups of one name share one fetch.
//!
//! Delegation changes where a request connects, never whom it authenticates: requests
//! keep the server name's host in their URL (with the delegated port), so TLS checks the
//! peer's certificate against the server name, and the [`Resolver`] given to the
//! federation client's HTTP stack turns that host into the delegated host's addresses.
//! The resolver maps host names, not ports: two development names that share a host
//! (`localhost:8001`, `localhost:8002`) and delegate to different hosts would share the
//! most recent mapping, and a static peer's host is never remapped by a delegation.
//! Delegation targets are DNS names or IPv4 addresses; IPv6 literals are not accepted.
//!
//! Only servers on the public internet are reached by name ([`Reach::PublicOnly`], the
//! default): a server name that is an IP address, or a name (or delegation) that resolves
//! to loopback, private, link-local or other non-public addresses, is refused before
//! anything is dialled, unless it is a static peer. Otherwise a user could make this
//! server probe its own network just by naming `someone@10.0.0.5:22`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use parley_specs::ServerName;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;

use crate::client::{BodyError, ClientError, DEFAULT_PORT, error_chain, read_capped};

/// Where a server publishes its delegation.
pub const WELL_KNOWN_PATH: &str = "/.well-known/parley/server";
/// The port of the well-known document when the server name gives none.
pub const WELL_KNOWN_PORT: u16 = 443;
/// The longest a well-known fetch may take, connection included.
pub const WELL_KNOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest well-known document read.
pub const MAX_WELL_KNOWN_BYTES: usize = 64 * 1024;
/// How long a delegation is used when the document does not say (`Cache-Control`).
pub const SUCCESS_TTL: Duration = Duration::from_secs(3600);
/// The bounds of a document's own `max-age`.
pub const MIN_SUCCESS_TTL: Duration = Duration::from_secs(60);
pub const MAX_SUCCESS_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a fallback is used before the well-known document is tried again.
pub const FAILURE_TTL: Duration = Duration::from_secs(300);
/// Past this many cached names, expired entries are dropped when a new name comes.
const PRUNE_ABOVE: usize = 10_000;

/// Which addresses servers found by name (not static peers) may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reach {
    /// Public addresses only: names that are IP addresses, and names that resolve to
    /// loopback, private, link-local, shared, multicast or unspecified addresses, are
    /// refused.
    #[default]
    PublicOnly,
    /// Any address (a federation on a private network or one machine).
    Any,
}

impl Reach {
    fn permits(self, ip: IpAddr) -> bool {
        self == Reach::Any || is_public(ip)
    }
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                // Shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
                // Reserved for future use, 240.0.0.0/4.
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                // Documentation 2001:db8::/32.
                || (first == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// Where a server name's federation API listens, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A static `[federation.peers]` address.
    Static(SocketAddr),
    /// The host and port the server's well-known document delegates to.
    WellKnown { host: String, port: u16 },
    /// No usable well-known document: the name's own host, on its port or 8448.
    Fallback {
        host: String,
        port: u16,
        /// Why the well-known document was not used.
        reason: String,
    },
}

impl Route {
    /// The port requests go to (the URL's port).
    pub fn port(&self) -> u16 {
        match self {
            Route::Static(addr) => addr.port(),
            Route::WellKnown { port, .. } | Route::Fallback { port, .. } => *port,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Static(addr) => write!(f, "{addr} (static peer address)"),
            Route::WellKnown { host, port } => write!(f, "{host}:{port} (from its well-known document)"),
            Route::Fallback { host, port, reason } => {
                write!(f, "{host}:{port} (no well-known delegation: {reason})")
            }
        }
    }
}

/// The well-known document.
#[derive(Debug, Deserialize)]
struct WellKnown {
    server: String,
}

struct Cached {
    route: Route,
    expires: Instant,
}

/// One name's cache slot; its async lock makes concurrent look-ups share one fetch.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Maps server names to where their federation API listens: static peers, well-known
/// delegation, fallback; cached. See the module documentation.
pub struct Discovery {
    peers: BTreeMap<ServerName, SocketAddr>,
    reach: Reach,
    /// Fetches well-known documents: the configured roots, no client certificate, no
    /// redirects, the ordinary resolver.
    http: reqwest::Client,
    cache: Mutex<HashMap<ServerName, Slot>>,
    resolver: Arc<Resolver>,
}

impl Discovery {
    /// `peers` pins the addresses of some servers; well-known documents must be served
    /// with a certificate that chains to `roots`; other servers must have addresses
    /// `reach` permits.
    pub fn new(
        peers: BTreeMap<ServerName, SocketAddr>,
        roots: rustls::RootCertStore,
        reach: Reach,
    ) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Setup(format!("well-known client: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(WELL_KNOWN_TIMEOUT)
            .connect_timeout(WELL_KNOWN_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Resolver::new(reach)))
            .build()
            .map_err(|e| ClientError::Setup(format!("well-known client: {}", error_chain(&e))))?;
        let resolver = Resolver::new(reach);
        for (name, addr) in &peers {
            resolver.set(name.host(), Mapping::Static(*addr));
        }
        Ok(Self {
            peers,
            reach,
            http,
            cache: Mutex::new(HashMap::new()),
            resolver: Arc::new(resolver),
        })
    }

    /// The DNS resolver the federation client's HTTP stack must use, so that a request
    /// to a delegated server name connects to the delegated host.
    pub(crate) fn resolver(&self) -> Arc<Resolver> {
        Arc::clone(&self.resolver)
    }

    /// Whether `name` may be dialled at all: a static peer always; otherwise not a name
    /// that is an IP address `reach` refuses. (Names are checked again, address by
    /// address, when they are resolved.) An IP address never goes through the resolver,
    /// which is why this check comes first.
    pub fn check_reachable(&self, name: &ServerName) -> Result<(), String> {
        if self.peers.contains_key(name) {
            return Ok(());
        }
        match name.host().parse::<IpAddr>() {
            Ok(ip) if !self.reach.permits(ip) => {
                Err(format!("{name} is a non-public IP address and not a configured peer"))
            }
            _ => Ok(()),
        }
    }

    /// Where `name`'s federation API listens. Never fails: without a usable well-known
    /// document the answer is the fallback, which says why.
    pub async fn route(&self, name: &ServerName) -> Route {
        self.route_at(name, Instant::now()).await
    }

    /// [`Self::route`] at a given time (tests move the clock).
    pub(crate) async fn route_at(&self, name: &ServerName, now: Instant) -> Route {
        if let Some(addr) = self.peers.get(name) {
            return Route::Static(*addr);
        }
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= PRUNE_ABOVE && !cache.contains_key(name) {
                self.prune(&mut cache, now);
            }
            Arc::clone(cache.entry(name.clone()).or_default())
        };
        // Held across the fetch on purpose: it is this name's lock only, and whoever
        // waits on it wants the answer being fetched.
        let mut cached = slot.lock().await;
        if let Some(entry) = cached.as_ref()
            && entry.expires > now
        {
            return entry.route.clone();
        }
        let fetched = match self.check_reachable(name) {
            Ok(()) => self.fetch(name).await,
            Err(reason) => Err(reason),
        };
        let (route, ttl) = match fetched {
            Ok((host, port, ttl)) => (Route::WellKnown { host, port }, ttl),
            Err(reason) => (
                Route::Fallback {
                    host: name.host().to_owned(),
                    port: name.port().unwrap_or(DEFAULT_PORT),
                    reason,
                },
                FAILURE_TTL,
            ),
        };
        match &route {
            Route::WellKnown { host, .. } if host != name.host() => self.resolver.set(
                name.host(),
                Mapping::Delegated {
                    host: host.clone(),
                    by: name.clone(),
                },
            ),
            _ => self.resolver.forget(name),
        }
        *cached = Some(Cached {
            route: route.clone(),
            expires: now.checked_add(ttl).unwrap_or(now),
        });
        route
    }

    /// Drops expired entries nobody is using.
    fn prune(&self, cache: &mut HashMap<ServerName, Slot>, now: Instant) {
        cache.retain(|name, slot| {
            let keep = Arc::strong_count(slot) > 1
                || slot
                    .try_lock()
                    .map_or(true, |entry| entry.as_ref().is_some_and(|e| e.expires > now));
            if !keep {
                self.resolver.forget(name);
            }
            keep
        });
    }

    /// The delegated host and port, and how long to use them; or why not.
    async fn fetch(&self, name: &ServerName) -> Result<(String, u16, Duration), String> {
        let url = well_known_url(name);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(format!("GET {url} answered {status}, a redirect (not followed)"));
        }
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}"));
        }
        let ttl = success_ttl(response.headers());
        let body = read_capped(response, MAX_WELL_KNOWN_BYTES).await.map_err(|e| match e {
            BodyError::TooLarge { limit } => format!("GET {url}: the document is larger than {limit} bytes"),
            BodyError::Failed(reason) => format!("GET {url}: {reason}"),
        })?;
        let document: WellKnown =
            serde_json::from_slice(&body).map_err(|e| format!("{url} is not a well-known document: {e}"))?;
        let (host, port) = parse_server(&document.server).map_err(|e| format!("{url}: {e}"))?;
        Ok((host, port, ttl))
    }
}

/// `https://<name>/.well-known/parley/server`, on the name's port or 443.
pub fn well_known_url(name: &ServerName) -> String {
    let port = name.port().unwrap_or(WELL_KNOWN_PORT);
    format!("https://{}:{port}{WELL_KNOWN_PATH}", name.host())
}

/// `<host>[:<port>]` from a well-known document, port 8448 by default.
fn parse_server(server: &str) -> Result<(String, u16), String> {
    let parsed = ServerName::parse(server)
        .map_err(|_| format!("\"server\" is {server:?}, not a DNS name or IPv4 address with an optional port"))?;
    Ok((parsed.host().to_owned(), parsed.port().unwrap_or(DEFAULT_PORT)))
}

/// How long to use a delegation: the response's `max-age` (`no-cache`/`no-store`: the
/// minimum), clamped; otherwise [`SUCCESS_TTL`].
fn success_ttl(headers: &reqwest::header::HeaderMap) -> Duration {
    let mut max_age = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            if directive == "no-cache" || directive == "no-store" {
                max_age = Some(0);
            } else if let Some(secs) = directive.strip_prefix("max-age=")
                && let Ok(secs) = secs.trim_matches('"').parse::<u64>()
            {
                max_age = Some(max_age.map_or(secs, |m: u64| m.min(secs)));
            }
        }
    }
    max_age.map_or(SUCCESS_TTL, |secs| {
        Duration::from_secs(secs).clamp(MIN_SUCCESS_TTL, MAX_SUCCESS_TTL)
    })
}

/// What the resolver does with one host name.
#[derive(Debug, Clone)]
enum Mapping {
    /// A static peer: this address.
    Static(SocketAddr),
    /// A delegated server name: the addresses of `host` (set by the name `by`).
    Delegated { host: String, by: ServerName },
}

/// DNS for the federation client: a server name's host resolves to its static address
/// or to its delegated host's addresses; any other host resolves normally. Addresses
/// looked up (not static ones) are kept only if `reach` permits them.
#[derive(Debug)]
pub(crate) struct Resolver {
    mappings: RwLock<HashMap<String, Mapping>>,
    reach: Reach,
}

impl Resolver {
    fn new(reach: Reach) -> Self {
        Self {
            mappings: RwLock::default(),
            reach,
        }
    }

    fn set(&self, host: &str, mapping: Mapping) {
        let mut mappings = self.mappings.write().unwrap_or_else(PoisonError::into_inner);
        if !matches!(mappings.get(host), Some(Mapping::Static(_))) {
            mappings.insert(host.to_owned(), mapping);
        }
    }

    /// Removes `name`'s delegation, if the mapping of its host is still its own.
    fn forget(&self, name: &ServerName) {
        let mut mappings = self.mappings.write().unwrap_or_else(PoisonError::into_inner);
        if matches!(mappings.get(name.host()), Some(Mapping::Delegated { by, .. }) if by == name) {
            mappings.remove(name.host());
        }
    }

    fn mapping(&self, host: &str) -> Option<Mapping> {
        let mappings = self.mappings.read().unwrap_or_else(PoisonError::into_inner);
        mappings.get(host).cloned()
    }
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let mapping = self.mapping(&host);
        let reach = self.reach;
        Box::pin(async move {
            let (target, found) = match mapping {
                Some(Mapping::Static(addr)) => {
                    return Ok::<Addrs, Box<dyn std::error::Error + Send + Sync>>(Box::new(std::iter::once(addr)));
                }
                Some(Mapping::Delegated { host: target, by }) => {
                    let found = lookup(&target)
                        .await
                        .map_err(|e| format!("cannot resolve {target} (where {by} delegates to): {e}"))?;
                    (target, found)
                }
                None => {
                    let found = lookup(&host).await.map_err(|e| format!("cannot resolve {host}: {e}"))?;
                    (host, found)
                }
            };
            let addrs: Vec<SocketAddr> = found.into_iter().filter(|a| reach.permits(a.ip())).collect();
            if addrs.is_empty() {
                return Err(format!("{target} has no public address (only public servers are reached by name)").into());
            }
            Ok(Box::new(addrs.into_iter()))
        })
    }
}

async fn lookup(host: &str) -> std::io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host, 0)).await?.collect())
}

#[cfg(test)]
mod tests;
