//! Building and running a homeserver: `Application::build` connects to the database,
//! migrates it, binds the listener (port 0 picks a free one) and reports the address,
//! so tests and the binary start servers the same way.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::api;
use crate::config::Config;
use crate::db;
use crate::inbox;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::tls;

pub struct Application {
    addr: SocketAddr,
    server: Server,
    background: Vec<tokio::task::JoinHandle<()>>,
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
        let max_body = config.limits.max_body_bytes;
        let sweep_every = Duration::from_secs(config.limits.expiry_sweep_interval_secs.max(1));
        let background = vec![tokio::spawn(inbox::sweep_expired_forever(pool.clone(), sweep_every))];
        let state = web::Data::new(AppState::new(config, pool, Arc::new(Metrics::new()?)));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(api::json_config(max_body))
                .app_data(api::path_config())
                .app_data(api::query_config())
                .app_data(web::PayloadConfig::new(max_body))
                .wrap(from_fn(api::observe))
                .configure(api::configure)
                .default_service(web::to(api::unrecognized_endpoint))
        })
        .workers(workers)
        .shutdown_timeout(10)
        .listen_rustls_0_23(listener, tls_config)?
        .run();
        Ok(Self {
            addr,
            server,
            background,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A handle that stops the server gracefully (also done on SIGTERM and SIGINT).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        for task in &self.background {
            task.abort();
        }
        result
    }
}
