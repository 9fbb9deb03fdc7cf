//! Other servers' key directories: their signed roots (checked with their published
//! keys) and the append-only proofs between them, fetched for this server's audits
//! (`GET /federation/v1/transparency/audit`).

use parley_federation::KeyId;
use parley_federation::transparency_root::{self, VerifiedRoot};
use parley_specs::ServerName;
use parley_specs::endpoints::federation::TRANSPARENCY_AUDIT;
use parley_specs::transparency_api::{SignedRoot, TransparencyAudit};

use super::{Remote, refused, unavailable};
use crate::error::ApiError;

/// An audit answer can hold this much: 64 roots and the append-only proof of the
/// nodes inserted in 64 epochs.
const MAX_AUDIT_ANSWER_BYTES: usize = 16 << 20;

/// Checks a root `server` signed, with its published keys (fetched when the root names a
/// key this server does not know yet). A root of another server is refused.
pub async fn verify_root(remote: &Remote, server: &ServerName, signed: SignedRoot) -> Result<VerifiedRoot, String> {
    if signed.root.server != *server {
        return Err(format!(
            "a root of {} in the place of one of {server}",
            signed.root.server
        ));
    }
    let key_id = KeyId::parse(&signed.server_signature.key_id).map_err(|e| format!("malformed key id: {e}"))?;
    let keys = super::peer_keys::with_key(remote, server, &key_id, signed.server_signature.signed_at_ms)
        .await
        .map_err(|e| e.message)?;
    transparency_root::verify(signed, &keys).map_err(|e| e.to_string())
}

/// `server`'s roots of epochs `from..=to` (clamped by the server to its latest) and the
/// append-only proof between them, as received: nothing in it is checked yet. `None`
/// when the server has no epoch `from` (`404`; also when it keeps no key directory).
pub async fn fetch_audit(
    remote: &Remote,
    server: &ServerName,
    from: u64,
    to: u64,
) -> Result<Option<TransparencyAudit>, ApiError> {
    let path = format!("{}?from_epoch={from}&to_epoch={to}", TRANSPARENCY_AUDIT.path);
    let (status, bytes) = remote
        .call(reqwest::Method::GET, server, &path, Vec::new(), MAX_AUDIT_ANSWER_BYTES)
        .await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(refused(server, "its key directory's audit proof", status, &bytes));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| unavailable(format!("{server} answered the audit with something else: {e}")))
}
