//! Telling other servers that this server's signing key changed. They cache its key
//! document for up to `key_document_validity_secs` (a week by default); after a rotation
//! that revokes a stolen key, they must not go on trusting it until then. Each process
//! watches the key file and, when it signs with a new key, sends `KEYS_CHANGED` (signed
//! with the new key) to every server it knows: the configured peers, the servers it
//! queues group messages for, and those whose keys it holds (they talked to it).

use std::collections::BTreeSet;
use std::time::Duration;

use parley_specs::ServerName;
use parley_specs::endpoints::federation::KEYS_CHANGED;

use super::{MAX_SMALL_ANSWER_BYTES, Remote};
use crate::store;

const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Announces every change of this server's key, until the process ends.
pub async fn announce_forever(remote: std::sync::Arc<Remote>) {
    let mut announced = remote.keys.current().key_id().clone();
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let current = remote.keys.current().key_id().clone();
        if current == announced {
            continue;
        }
        announced = current;
        let servers = known_servers(&remote).await;
        tracing::info!(key_id = %announced, servers = servers.len(), "telling other servers that this server's key changed");
        let remote = &remote;
        let notices = servers.iter().map(|server| async move {
            let result = remote
                .call(
                    reqwest::Method::POST,
                    server,
                    KEYS_CHANGED.path,
                    Vec::new(),
                    MAX_SMALL_ANSWER_BYTES,
                )
                .await;
            match result {
                Ok((status, _)) if status.is_success() => {}
                Ok((status, _)) => tracing::warn!(%server, %status, "a server refused the key change notice"),
                Err(error) => tracing::warn!(%server, %error, "the key change notice did not reach a server"),
            }
        });
        futures_util::future::join_all(notices).await;
    }
}

async fn known_servers(remote: &Remote) -> BTreeSet<ServerName> {
    let mut servers: BTreeSet<ServerName> = remote.config.peers.keys().cloned().collect();
    servers.extend(remote.peer_keys.servers());
    match remote.pool.get().await {
        Ok(db) => match store::federation::destinations(&db).await {
            Ok(destinations) => servers.extend(destinations.iter().filter_map(|d| ServerName::parse(d).ok())),
            Err(error) => tracing::warn!(%error, "cannot list the federation destinations"),
        },
        Err(error) => tracing::warn!(%error, "cannot list the federation destinations"),
    }
    servers.remove(&remote.server_name);
    servers
}
