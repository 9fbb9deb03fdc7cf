//! Prompt graceful shutdown. On SIGTERM or Ctrl-C the listeners stop accepting, requests
//! in flight finish (their responses say `Connection: close`), inbox WebSockets get a
//! close frame and long-polls are answered (`inbox::InboxWaker::stop`), and connections
//! with nothing in flight (a peer's idle keep-alive federation connection, a client's
//! idle HTTP/1.1 or HTTP/2 connection) are closed at once instead of holding the process
//! until the grace period ends.
//!
//! Every accepted connection is registered here (`Connections::on_connect`) with a
//! duplicate of its socket; the `track` middleware counts what is in flight on it, from
//! the request until its response body is dropped (so a WebSocket counts while open).
//! Closing an idle connection shuts down the read side of its socket: the server sees
//! the end of the stream and drops the connection.

use std::any::Any;
use std::collections::HashMap;
use std::net::Shutdown;
use std::os::fd::AsFd as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::rt::net::TcpStream;
use actix_web::web::Bytes;

/// A connection counts as idle once nothing was in flight on it for this long (so a
/// response written a moment ago has left the process before its socket is closed).
const IDLE_FOR: Duration = Duration::from_millis(100);

/// The grace period of the listeners: requests in flight may take this long to finish
/// after a stop; anything still open then is cut off.
pub const GRACE_PERIOD_SECS: u64 = 10;

/// The open connections of this process's listeners.
pub struct Connections {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    stopping: AtomicBool,
}

struct Connection {
    /// A duplicate of the connection's socket (the same socket, so never another one
    /// that reused its number); closed when the connection is dropped.
    socket: std::net::TcpStream,
    in_flight: AtomicUsize,
    /// Milliseconds since `Connections::epoch` when the last request ended.
    idle_since_ms: AtomicU64,
}

/// Kept in a connection's data (`on_connect`): the connection leaves the registry when
/// the server drops it.
struct Registered {
    id: u64,
    connection: Arc<Connection>,
    connections: Arc<Connections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.open().remove(&self.id);
    }
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
        }
    }
}

impl Connections {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// For `HttpServer::on_connect`: registers a TLS or plain TCP connection.
    pub fn on_connect(self: &Arc<Self>, connection: &dyn Any, extensions: &mut Extensions) {
        let tcp = if let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() {
            tls.get_ref().0
        } else if let Some(tcp) = connection.downcast_ref::<TcpStream>() {
            tcp
        } else {
            return;
        };
        let Ok(fd) = tcp.as_fd().try_clone_to_owned() else {
            return; // out of descriptors: this connection just closes at the grace period
        };
        let connection = Arc::new(Connection {
            socket: std::net::TcpStream::from(fd),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open().insert(id, connection.clone());
        extensions.insert(Registered {
            id,
            connection,
            connections: self.clone(),
        });
    }

    /// From now on responses close their connections, and `close_idle` may be called.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Closes the connections with nothing in flight; returns how many are still open.
    pub fn close_idle(&self) -> usize {
        let now = self.now_ms();
        let idle_ms = u64::try_from(IDLE_FOR.as_millis()).unwrap_or(u64::MAX);
        let open = self.open();
        for connection in open.values() {
            if connection.in_flight.load(Ordering::Acquire) == 0
                && now.saturating_sub(connection.idle_since_ms.load(Ordering::Acquire)) >= idle_ms
            {
                // The server reads the end of the stream and drops the connection.
                let _ = connection.socket.shutdown(Shutdown::Read);
            }
        }
        open.len()
    }

    /// Closes idle connections every few milliseconds until the task is dropped.
    pub async fn close_idle_forever(self: Arc<Self>) {
        loop {
            self.close_idle();
            tokio::time::sleep(IDLE_FOR / 2).await;
        }
    }
}

/// Counts a request as in flight on its connection until its response body is dropped,
/// and closes the connection after the response once the server is stopping.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let registered = req
        .conn_data::<Registered>()
        .map(|r| (r.connection.clone(), r.connections.clone()));
    let guard = registered.map(|(connection, connections)| {
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            connection,
            connections,
        }
    });
    let mut res = next.call(req).await?;
    if let Some(guard) = &guard
        && guard.connections.stopping()
        && res.status() != StatusCode::SWITCHING_PROTOCOLS
    {
        res.response_mut().head_mut().set_connection_type(ConnectionType::Close);
    }
    Ok(res.map_body(|_, body| {
        BoxBody::new(Tracked {
            body: body.boxed(),
            _guard: guard,
        })
    }))
}

struct InFlight {
    connection: Arc<Connection>,
    connections: Arc<Connections>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.connection
            .idle_since_ms
            .store(self.connections.now_ms(), Ordering::Release);
        self.connection.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's `InFlight` until it is dropped.
struct Tracked {
    body: BoxBody,
    _guard: Option<InFlight>,
}

impl MessageBody for Tracked {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
