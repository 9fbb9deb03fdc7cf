//! The inbox WebSocket: the homeserver pushes this device's inbox entries as they arrive.

use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use parley_specs::groups_api::{AckRequest, InboxEntry};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::Error;

/// Entries pushed by the server, in inbox order. Acknowledge them with [`InboxStream::ack`]
/// (or the HTTP endpoint); unacknowledged entries come again on the next connection.
pub struct InboxStream {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    url: String,
}

impl std::fmt::Debug for InboxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxStream").field("url", &self.url).finish()
    }
}

impl InboxStream {
    pub(crate) async fn connect(url: &Url, token: &str, tls: Arc<rustls::ClientConfig>) -> Result<Self, Error> {
        let shown = url.to_string();
        let transport = |reason: String| Error::Transport {
            url: shown.clone(),
            reason,
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| transport(e.to_string()))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::MalformedToken)?;
        auth.set_sensitive(true);
        request.headers_mut().insert("authorization", auth);
        let (socket, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(Connector::Rustls(tls)))
                .await
                .map_err(|e| match e {
                    tungstenite::Error::Http(response) => {
                        let status = response.status().as_u16();
                        let body = response.body().clone().unwrap_or_default();
                        Error::from_response(status, None, &body)
                    }
                    other => transport(other.to_string()),
                })?;
        Ok(Self { socket, url: shown })
    }

    /// The next entry; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Option<Result<InboxEntry, Error>> {
        loop {
            let message = match self.socket.next().await? {
                Ok(message) => message,
                Err(e) => {
                    return Some(Err(Error::Transport {
                        url: self.url.clone(),
                        reason: e.to_string(),
                    }));
                }
            };
            match message {
                Message::Text(text) => {
                    return Some(serde_json::from_str(text.as_str()).map_err(|e| Error::Decode {
                        url: self.url.clone(),
                        reason: format!("not an inbox entry: {e}"),
                    }));
                }
                Message::Close(_) => return None,
                _ => continue, // pings are answered by tungstenite
            }
        }
    }

    /// Acknowledges (deletes) entries up to `up_to`.
    pub async fn ack(&mut self, up_to: i64) -> Result<(), Error> {
        let json = serde_json::to_string(&AckRequest { up_to }).map_err(|e| Error::Decode {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        self.socket
            .send(Message::text(json))
            .await
            .map_err(|e| Error::Transport {
                url: self.url.clone(),
                reason: e.to_string(),
            })
    }
}
