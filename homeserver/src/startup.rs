//! Building and running a homeserver: `Application::build` connects to the database,
//! migrates it, binds the listener (port 0 picks a free one) and reports the address,
//! so tests and the binary start servers the same way.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use parley_federation::client::FederationClient;
use parley_federation::discovery::Reach;

use crate::admin::{self, AdminState};
use crate::config::{Config, FederationConfig};
use crate::federation::{self, BodyLimits, FederationApi};
use crate::hub::writer::{MessageWriter, WriterRules};
use crate::inbox::{self, InboxWaker};
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::remote::{self, FederationPolicy, KeyringFile, Remote};
use crate::shutdown::{self, Connections, GRACE_PERIOD_SECS};
use crate::state::AppState;
use crate::token_file::TokenHash;
use crate::{api, db, routes, tls};

pub struct Application {
    addr: SocketAddr,
    server: Server,
    federation: Option<(SocketAddr, Server)>,
    admin: Option<(SocketAddr, Server)>,
    background: Vec<tokio::task::JoinHandle<()>>,
    /// The client and federation API connections, closed when idle on shutdown.
    connections: Arc<Connections>,
    inbox_waker: Arc<InboxWaker>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        tls::install_crypto_provider();
        let tls_config = tls::server_config(&config.tls.cert, &config.tls.key)?;
        let pool = db::create_pool(&config.database)?;
        let version = db::migrate(&pool).await?;
        tracing::info!(schema_version = version, "database ready");

        let listener = TcpListener::bind(config.listen.client)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen.client))?;
        let addr = listener.local_addr()?;
        let workers = match config.listen.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let metrics = Arc::new(Metrics::new()?);
        // The allow/deny lists in effect from the first request: stored ones, if any.
        let policy = Arc::new(FederationPolicy::new(config.federation.as_ref()));
        policy.reload(&pool.get().await?).await?;
        let remote = match &config.federation {
            Some(federation_config) => Some(Arc::new(remote(
                &config,
                federation_config,
                pool.clone(),
                metrics.clone(),
                policy.clone(),
            )?)),
            None => None,
        };
        let max_body = config.limits.max_body_bytes;
        let sweep_every = Duration::from_secs(config.limits.expiry_sweep_interval_secs.max(1));
        let inbox_waker = Arc::new(InboxWaker::default());
        let rules = WriterRules {
            server_name: config.server_name.clone(),
            past_epochs_accepted: config.limits.past_epochs_accepted,
            remote: remote.clone(),
        };
        let (message_writer, writer) = MessageWriter::new(pool.clone(), rules, inbox_waker.clone());
        // Not among `background`: it ends by itself once the servers holding its handle
        // have stopped, after writing what they handed it.
        tokio::spawn(writer.run());
        let mut background = vec![
            tokio::spawn(inbox::sweep_expired_forever(pool.clone(), sweep_every)),
            tokio::spawn(crate::retention::sweep_forever(
                pool.clone(),
                config.retention.clone(),
                metrics.clone(),
            )),
            tokio::spawn(crate::gauges::refresh_forever(
                pool.clone(),
                metrics.clone(),
                Duration::from_secs(config.limits.database_gauges_secs),
            )),
            tokio::spawn(inbox::recheck_forever(
                pool.clone(),
                inbox_waker.clone(),
                metrics.clone(),
                Duration::from_secs(config.limits.inbox_recheck_secs.max(1)),
            )),
            tokio::spawn(inbox::relay::relay_forever(
                config.database.url.clone(),
                inbox_waker.clone(),
                metrics.clone(),
            )),
        ];
        let metrics_token = match &config.metrics.token_file {
            Some(path) => Some(anyhow::Context::context(TokenHash::load(path), "[metrics] token_file")?),
            None => None,
        };
        let second_factor_key = match config.second_factor_key_file() {
            Some(path) => Some(Arc::new(anyhow::Context::context(
                crate::second_factor::SealingKey::open_or_create(&path),
                "[second_factor] key_file",
            )?)),
            None => None,
        };
        let transparency = match (&remote, config.transparency_vrf_key_file()) {
            (Some(remote), Some(vrf_key_file)) => {
                let transparency = crate::transparency::Transparency::open(
                    remote.clone(),
                    pool.clone(),
                    metrics.clone(),
                    config.transparency.clone(),
                    &vrf_key_file,
                )
                .await
                .map_err(|e| e.context("[transparency] the key directory"))?;
                background.push(tokio::spawn(crate::transparency::publish_forever(transparency.clone())));
                background.push(tokio::spawn(crate::transparency::audit::audit_forever(
                    transparency.clone(),
                )));
                Some(transparency)
            }
            _ => None,
        };
        let connections = Arc::new(Connections::default());
        let state = web::Data::new(
            AppState::new(
                config,
                pool.clone(),
                metrics,
                remote.clone(),
                inbox_waker.clone(),
                message_writer,
            )
            .with_metrics_token(metrics_token)
            .with_second_factor_key(second_factor_key)
            .with_transparency(transparency),
        );
        background.push(tokio::spawn(crate::files::sweep_forever(
            pool.clone(),
            state.blobs.clone(),
            state.config.files.clone(),
        )));
        let federation = match (&state.config.federation, remote) {
            (Some(federation_config), Some(remote)) => {
                background.push(tokio::spawn(remote::policy::reload_forever(
                    policy.clone(),
                    pool.clone(),
                )));
                if !state.config.retention.enabled {
                    // Otherwise the retention sweeper forgets them, in batches.
                    background.push(tokio::spawn(federation::forget_old_requests_forever(pool)));
                }
                background.push(tokio::spawn(remote::outbound::send_forever(remote.clone())));
                background.push(tokio::spawn(remote::key_notice::announce_forever(remote.clone())));
                let api = FederationApi {
                    remote,
                    requests_per_origin: RateLimiter::per_minute(federation_config.requests_per_origin_per_minute),
                    body_limits: BodyLimits {
                        // A client's submit, with its sender named.
                        submit: state.config.limits.max_body_bytes + 1024,
                        transaction: federation_config.max_transaction_bytes,
                    },
                };
                Some(federation_server(
                    &state.config,
                    federation_config,
                    web::Data::new(api),
                    state.clone(),
                    workers,
                    connections.clone(),
                )?)
            }
            _ => None,
        };
        let admin = match &state.config.admin {
            Some(admin_config) => {
                let admin_state = web::Data::new(AdminState::new(state.clone(), admin_config, policy)?);
                Some(admin::server(&state.config, admin_config, admin_state, state.clone())?)
            }
            None => None,
        };
        let tracked = connections.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(routes::json_config(max_body))
                .app_data(routes::path_config())
                .app_data(routes::query_config())
                .app_data(web::PayloadConfig::new(max_body))
                .wrap(from_fn(routes::observe))
                .wrap(from_fn(shutdown::track))
                .configure(api::configure)
                .default_service(web::to(api::unrecognized_endpoint))
        })
        .on_connect(move |connection, extensions| tracked.on_connect(connection, extensions))
        .workers(workers)
        // Answers go out as soon as they are written: with Nagle's algorithm a body
        // written after its headers waited for the client's delayed ACK (40 ms a request).
        .tcp_nodelay(true)
        .shutdown_timeout(GRACE_PERIOD_SECS)
        // SIGTERM and SIGINT are handled by `run_until_stopped`.
        .disable_signals()
        .listen_rustls_0_23(listener, tls_config)?
        .run();
        Ok(Self {
            addr,
            server,
            federation,
            admin,
            background,
            connections,
            inbox_waker,
        })
    }

    /// Where the admin API listens, when `[admin]` is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(addr, _)| *addr)
    }

    /// Where the federation API listens, when it is enabled.
    pub fn federation_addr(&self) -> Option<SocketAddr> {
        self.federation.as_ref().map(|(addr, _)| *addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A handle that stops the client API gracefully; the rest stops with it. SIGTERM and
    /// SIGINT stop everything promptly (see `run_until_stopped`).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until the client API stops (its handle), or until SIGTERM or SIGINT. Then
    /// every listener stops accepting, requests in flight finish (within the grace period,
    /// `GRACE_PERIOD_SECS`), inbox WebSockets get a close frame, long-polls answer, idle
    /// connections close, and the background loops stop: with nothing in flight, the
    /// process is done in about a second (`shutdown`).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let client_handle = self.server.handle();
        let mut client = tokio::spawn(self.server);
        let federation = self.federation.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let admin = self.admin.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let ended = tokio::select! {
            ended = &mut client => Some(ended),
            () = shutdown::stop_signal() => None,
        };
        let started = std::time::Instant::now();
        if ended.is_none() {
            tracing::info!("stopping: finishing requests in flight, closing idle connections");
        }
        self.connections.begin_stop();
        self.inbox_waker.stop();
        let closer = tokio::spawn(self.connections.clone().close_idle_forever());
        // Every listener stops accepting at once; each then waits for its connections.
        let mut handles: Vec<ServerHandle> = federation.iter().chain(&admin).map(|(h, _)| h.clone()).collect();
        if ended.is_none() {
            handles.push(client_handle);
        }
        futures_util::future::join_all(handles.iter().map(|h| h.stop(true))).await;
        let result = match ended {
            Some(ended) => ended,
            None => client.await,
        }
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        for (_, task) in federation.into_iter().chain(admin) {
            let _ = task.await;
        }
        closer.abort();
        for task in &self.background {
            task.abort();
        }
        tracing::info!(seconds = started.elapsed().as_secs_f64(), "all listeners stopped");
        result
    }
}

/// Talking to other servers: this server's keys, its federation client and policy.
fn remote(
    config: &Config,
    federation: &FederationConfig,
    pool: deadpool_postgres::Pool,
    metrics: Arc<Metrics>,
    policy: Arc<FederationPolicy>,
) -> anyhow::Result<Remote> {
    let client = FederationClient::new(
        config.server_name.clone(),
        tls::certified_key(&config.tls.cert, &config.tls.key)?,
        tls::root_store(federation.trust_roots.as_deref())?,
        federation.peers.clone(),
        if federation.reach_private_addresses {
            Reach::Any
        } else {
            Reach::PublicOnly
        },
    )?;
    Ok(Remote {
        server_name: config.server_name.clone(),
        keys: KeyringFile::open_or_create(&federation.signing_key)?,
        pool,
        client,
        peer_keys: Default::default(),
        device_keys: Default::default(),
        config: federation.clone(),
        policy,
        metrics,
        outbound: Default::default(),
        backfills: Default::default(),
        hub_questions: RateLimiter::per_minute(federation.hub_questions_per_user_per_minute),
    })
}

/// The federation API's own server: mutual TLS on its own port.
fn federation_server(
    config: &Config,
    federation: &FederationConfig,
    api: web::Data<FederationApi>,
    app_state: web::Data<AppState>,
    workers: usize,
    connections: Arc<Connections>,
) -> anyhow::Result<(SocketAddr, Server)> {
    let tls_config =
        tls::federation_server_config(&config.tls.cert, &config.tls.key, federation.trust_roots.as_deref())?;
    let listener = TcpListener::bind(federation.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (federation): {e}", federation.listen))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        // Bodies are read by `Signed`, each up to its endpoint's limit.
        App::new()
            .app_data(api.clone())
            .app_data(app_state.clone())
            .app_data(routes::path_config())
            .app_data(routes::query_config())
            .wrap(from_fn(shutdown::track))
            .configure(federation::configure)
            .default_service(web::to(federation::unrecognized_endpoint))
    })
    .on_connect(move |connection, extensions| {
        federation::capture_peer_certificate(connection, extensions);
        connections.on_connect(connection, extensions);
    })
    .workers(workers)
    .tcp_nodelay(true)
    .shutdown_timeout(GRACE_PERIOD_SECS)
    .disable_signals()
    .listen_rustls_0_23(listener, tls_config)?
    .run();
    tracing::info!(%addr, "federation API listening (mutual TLS)");
    Ok((addr, server))
}
