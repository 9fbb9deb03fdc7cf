//! A federation peer that misbehaves: a tiny HTTPS server on loopback, with a certificate
//! from the test CA (so homeservers trust it), that answers every request with a body far
//! larger than any answer should be, and counts how much of it it managed to send. What a
//! homeserver does with such an answer is seen from outside: its error, and how much the
//! peer could push before the homeserver stopped reading.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::server::issue_cert;

/// What every answer's body repeats: a homeserver's error must never show it.
pub const FILLER: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-huge-answer-";

/// How the huge body is framed.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// A `Content-Length` announcing the whole size.
    ContentLength,
    /// No length: the body runs until the connection closes, so only counting while
    /// reading can stop it.
    UntilClose,
}

pub struct HugeAnswerPeer {
    pub addr: SocketAddr,
    sent: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl HugeAnswerPeer {
    /// Listens on a free loopback port as `name` (its certificate names that host,
    /// `localhost` and `127.0.0.1`) and answers every request `200` with `body_bytes` of
    /// JSON-looking filler, framed as `framing`.
    pub async fn start(name: &str, body_bytes: u64, framing: Framing) -> Self {
        let host = name.split(':').next().unwrap_or(name);
        let issued = issue_cert(&[host, "localhost", "127.0.0.1"]);
        let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        // HTTP/1.1 only: the framing above is HTTP/1.1's.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sent, requests) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (task_sent, task_requests) = (sent.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, sent, requests) = (acceptor.clone(), task_sent.clone(), task_requests.clone());
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if !read_request(&mut stream).await {
                        return;
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    let head = match framing {
                        Framing::ContentLength => format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {body_bytes}\r\n\r\n"
                        ),
                        Framing::UntilClose => {
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n".to_owned()
                        }
                    };
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk: Vec<u8> = FILLER.iter().copied().cycle().take(64 * 1024).collect();
                    let mut left = body_bytes;
                    while left > 0 {
                        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap();
                        if stream.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        sent.fetch_add(n as u64, Ordering::SeqCst);
                        left -= n as u64;
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            addr,
            sent,
            requests,
            task,
        }
    }

    /// Body bytes written to connections so far (accepted by the kernel, not necessarily
    /// read by anyone).
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for HugeAnswerPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and `content-length` body); `false` if the connection ended first.
async fn read_request(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> bool {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > 64 * 1024 {
            return false;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body_read = buffer.len() - head_end;
    while body_read < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => body_read += n,
        }
    }
    true
}
