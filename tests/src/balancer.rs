//! A TCP load balancer on loopback, as an operator puts in front of several homeserver
//! processes of one domain: each connection goes to the next backend that accepts it,
//! bytes pass through untouched (TLS ends at the homeserver).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};

pub struct TcpBalancer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TcpBalancer {
    /// Listens on `listen` (port 0 picks one) and spreads connections over `backends`
    /// round-robin, skipping backends that refuse.
    pub async fn start(listen: SocketAddr, backends: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind(listen).await.expect("balancer listens");
        let addr = listener.local_addr().expect("balancer address");
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (backends, next) = (backends.clone(), next.clone());
                tokio::spawn(async move {
                    for _ in 0..backends.len() {
                        let backend = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
                        if let Ok(mut server) = TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for TcpBalancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
