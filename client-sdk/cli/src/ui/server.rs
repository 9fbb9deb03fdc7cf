//! The process of `parley ui`: binds 127.0.0.1, prints the URL with the launch secret,
//! serves the API, the event WebSocket and the embedded web app, and receives.

use std::io::Write as _;

use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use parley_sdk::messenger::Messenger;
use parley_sdk::{Profile, Session};
use parley_specs::endpoints::local_ui;

use super::delivery::Deliveries;
use super::error::ApiError;
use super::events::{Hub, receive_loop};
use super::{assets, auth, routes};

/// What `parley ui` was asked for.
#[derive(Debug, Clone)]
pub struct UiOptions {
    /// The profile (its session and message store).
    pub profile: Profile,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Print the URL as JSON.
    pub json: bool,
    /// The passphrase of the profile's store, to start unlocked.
    pub passphrase: Option<String>,
}

/// The state shared by the handlers and the receive loop.
pub(crate) struct Ui {
    pub(crate) secret: String,
    pub(crate) port: u16,
    pub(crate) profile: Profile,
    pub(crate) state: tokio::sync::Mutex<Signed>,
    pub(crate) hub: Hub,
    /// How far each member server has received each conversation.
    pub(crate) deliveries: std::sync::Arc<Deliveries>,
}

/// The signed-in state: a session (from the profile) and, once unlocked, the messenger.
#[derive(Default)]
pub(crate) struct Signed {
    pub(crate) session: Option<Session>,
    pub(crate) messenger: Option<Messenger>,
}

/// Runs `parley ui` until Ctrl-C.
pub async fn run(options: UiOptions) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", options.port))
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", options.port))?;
    let port = listener.local_addr()?.port();
    let session = options.profile.load()?;
    let ui = web::Data::new(Ui {
        secret: auth::new_secret(),
        port,
        profile: options.profile.clone(),
        state: tokio::sync::Mutex::new(Signed {
            session,
            messenger: None,
        }),
        hub: Hub::new(),
        deliveries: std::sync::Arc::default(),
    });
    if let Some(passphrase) = options.passphrase.as_deref()
        && ui.state.lock().await.session.is_some()
    {
        routes::unlock_with(&ui, passphrase)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    }
    let url = format!("http://127.0.0.1:{port}/#secret={}", ui.secret);
    let mut stdout = std::io::stdout();
    if options.json {
        writeln!(stdout, "{}", serde_json::json!({"url": url, "port": port}))?;
    } else {
        writeln!(stdout, "Open {url}")?;
        writeln!(stdout, "(only this address works; press Ctrl-C to stop)")?;
    }
    stdout.flush()?;

    let data = ui.clone();
    let server = HttpServer::new(move || {
        let csp = format!(
            "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' ws://127.0.0.1:{port}; frame-ancestors 'none'"
        );
        App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(256 * 1024).error_handler(|err, _| {
                ApiError::invalid_input(format!("The request is not valid JSON for this call: {err}")).into()
            }))
            .app_data(
                web::PathConfig::default()
                    .error_handler(|err, _| ApiError::invalid_input(format!("Invalid address: {err}")).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|err, _| ApiError::invalid_input(format!("Invalid query: {err}")).into()),
            )
            .wrap(from_fn(auth::guard))
            .wrap(
                DefaultHeaders::new()
                    .add(("Cache-Control", "no-store"))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "no-referrer"))
                    .add(("X-Frame-Options", "DENY"))
                    .add(("Content-Security-Policy", csp)),
            )
            // Everything the router sends into the API's scope, its unknown paths
            // included, needs the secret: deny by default.
            .service(
                web::scope(local_ui::PREFIX)
                    .wrap(from_fn(auth::require_secret))
                    .configure(routes::configure)
                    .default_service(web::to(routes::unknown)),
            )
            .default_service(web::to(assets::serve))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let stop = async {
        tokio::select! {
            () = receive_loop(ui.clone()) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        handle.stop(true).await;
    };
    // The server keeps being polled while it stops.
    let (served, ()) = tokio::join!(server, stop);
    served.context("the local server failed")
}
