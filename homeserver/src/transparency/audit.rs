//! Auditing the key directories of the servers this one federates with.
//!
//! A server's roots are fetched from the last one audited on, each checked: signed by
//! the server, epochs consecutive, the first equal to the one stored for that epoch, and
//! the append-only proof between them. The first root ever seen of a server is taken on
//! first use. Every device list relayed from another server comes with the root of its
//! proof, which is compared with the root audited for that epoch (audited on demand when
//! newer): two roots signed by one server for one epoch are a split view. A failure is
//! recorded (`transparency_audit_failures`, the admin API), counted, logged, and from
//! then on the server's device lists are refused to this server's clients.

use std::sync::Arc;
use std::time::Duration;

use parley_specs::ServerName;
use parley_specs::transparency_api::{MAX_AUDIT_EPOCHS, SignedRoot, TransparencyLookup};
use parley_transparency::{DirectoryConfig, decode_audit_proof};

use super::Transparency;
use crate::error::ApiError;
use crate::remote::{self, unavailable};
use crate::store;

/// Rounds of `MAX_AUDIT_EPOCHS` one audit goes through at most; a server further ahead
/// is caught up by the next audits.
const MAX_ROUNDS: usize = 16;

/// What one audit found.
#[derive(Debug)]
enum Finding {
    Failed {
        epoch: Option<u64>,
        reason: String,
        evidence: Option<serde_json::Value>,
    },
    Unreachable(ApiError),
}

impl Transparency {
    /// Audits `server` from its last audited epoch up to its latest (at most
    /// `MAX_ROUNDS` answers). A failure is recorded before it is returned.
    pub async fn audit_server(&self, server: &ServerName) -> Result<(), ApiError> {
        match self.audit_rounds(server).await {
            Ok(()) => {
                self.metrics.transparency_audits.with_label_values(&["ok"]).inc();
                Ok(())
            }
            Err(Finding::Unreachable(e)) => {
                self.metrics
                    .transparency_audits
                    .with_label_values(&["unreachable"])
                    .inc();
                Err(e)
            }
            Err(Finding::Failed {
                epoch,
                reason,
                evidence,
            }) => {
                self.metrics.transparency_audits.with_label_values(&["failed"]).inc();
                self.record_failure(server, epoch, &reason, evidence.as_ref()).await?;
                Err(unavailable(format!(
                    "the key directory of {server} failed its audit: {reason}"
                )))
            }
        }
    }

    async fn record_failure(
        &self,
        server: &ServerName,
        epoch: Option<u64>,
        reason: &str,
        evidence: Option<&serde_json::Value>,
    ) -> Result<(), ApiError> {
        tracing::warn!(%server, ?epoch, reason, "a key directory audit failed");
        self.metrics
            .transparency_audit_failures
            .with_label_values(&[server.as_str()])
            .inc();
        let db = self.pool.get().await?;
        store::transparency::insert_failure(&db, server.as_str(), epoch.map(super::to_i64), reason, evidence).await?;
        Ok(())
    }

    async fn audit_rounds(&self, server: &ServerName) -> Result<(), Finding> {
        let failed = |epoch: Option<u64>, reason: String| Finding::Failed {
            epoch,
            reason,
            evidence: None,
        };
        let db = self.pool.get().await.map_err(|e| Finding::Unreachable(e.into()))?;
        let stored = store::transparency::latest_peer_root(&db, server.as_str())
            .await
            .map_err(|e| Finding::Unreachable(e.into()))?;
        let mut last: Option<SignedRoot> = match stored {
            Some((_, signed)) => Some(
                serde_json::from_value(signed)
                    .map_err(|e| Finding::Unreachable(ApiError::internal("a stored root", e)))?,
            ),
            None => None,
        };
        for _ in 0..MAX_ROUNDS {
            let from = last.as_ref().map_or(1, |r| r.root.epoch);
            let answer =
                match remote::transparency::fetch_audit(&self.remote, server, from, from + MAX_AUDIT_EPOCHS).await {
                    Ok(Some(answer)) => answer,
                    // A server that has published nothing yet has nothing to audit.
                    Ok(None) if last.is_none() => return Ok(()),
                    Ok(None) => {
                        return Err(failed(
                            Some(from),
                            format!(
                                "it no longer has epoch {from}, which it signed before: its log went backwards \
                             (or it turned its key directory off)"
                            ),
                        ));
                    }
                    Err(e) => return Err(Finding::Unreachable(e)),
                };
            let mut verified = Vec::with_capacity(answer.roots.len());
            for (i, signed) in answer.roots.into_iter().enumerate() {
                let expected = from + i as u64;
                if signed.root.epoch != expected {
                    return Err(failed(
                        Some(expected),
                        format!(
                            "it sent epoch {} where epoch {expected} belongs (missing or out of order)",
                            signed.root.epoch
                        ),
                    ));
                }
                let root = remote::transparency::verify_root(&self.remote, server, signed)
                    .await
                    .map_err(|reason| failed(Some(expected), format!("its root does not verify: {reason}")))?;
                verified.push(root);
            }
            let Some(first) = verified.first() else {
                return Err(failed(Some(from), "it sent no root".to_owned()));
            };
            if let Some(last) = &last
                && last.root != first.signed().root
            {
                return Err(Finding::Failed {
                    epoch: Some(from),
                    reason: format!("two different roots signed for epoch {from} (a split view)"),
                    evidence: Some(serde_json::json!({ "audited": last, "received": first.signed() })),
                });
            }
            if verified.len() > 1 {
                let Some(proof) = answer.proof else {
                    return Err(failed(
                        Some(from),
                        "it sent several roots without an append-only proof".to_owned(),
                    ));
                };
                let proof = decode_audit_proof(proof.as_slice())
                    .map_err(|e| failed(Some(from), format!("its append-only proof: {e}")))?;
                let hashes = verified.iter().map(|r| r.root_hash()).collect();
                akd::auditor::audit_verify::<DirectoryConfig>(hashes, proof)
                    .await
                    .map_err(|e| failed(Some(from), format!("its append-only proof does not verify: {e:?}")))?;
            }
            let keep_from = usize::from(last.is_some());
            let roots: Vec<(i64, serde_json::Value)> = verified[keep_from..]
                .iter()
                .map(|r| {
                    (
                        super::to_i64(r.epoch()),
                        serde_json::to_value(r.signed()).unwrap_or_default(),
                    )
                })
                .collect();
            store::transparency::insert_peer_roots(&db, server.as_str(), &roots)
                .await
                .map_err(|e| Finding::Unreachable(e.into()))?;
            let caught_up = (verified.len() as u64) <= MAX_AUDIT_EPOCHS;
            last = verified.pop().map(|r| r.into_signed());
            if caught_up {
                break;
            }
        }
        Ok(())
    }

    /// Checks the lookup proof's root of a device list relayed from `server` against
    /// the root audited for its epoch (auditing first when it is newer) and returns the
    /// audited root, which the client compares too. A server with a failed audit has its
    /// lists refused (`remote_unavailable`).
    pub async fn witness(&self, server: &ServerName, lookup: &TransparencyLookup) -> Result<SignedRoot, ApiError> {
        let db = self.pool.get().await?;
        if let Some(failure) = store::transparency::failures(&db, Some(server.as_str()), 1)
            .await?
            .pop()
        {
            return Err(unavailable(format!(
                "the key directory of {server} failed an audit ({}); its users' devices are not trusted",
                failure.reason
            )));
        }
        let relayed = remote::transparency::verify_root(&self.remote, server, lookup.root.clone())
            .await
            .map_err(|reason| unavailable(format!("the root of {server}'s device list does not verify: {reason}")))?;
        let epoch = super::to_i64(relayed.epoch());
        let mut audited = store::transparency::peer_root(&db, server.as_str(), epoch).await?;
        if audited.is_none() {
            self.audit_server(server).await?;
            audited = store::transparency::peer_root(&db, server.as_str(), epoch).await?;
        }
        let Some(audited) = audited else {
            return Err(unavailable(format!(
                "{server} gave a device list proved at epoch {epoch}, which its audit does not show"
            )));
        };
        let audited: SignedRoot =
            serde_json::from_value(audited).map_err(|e| ApiError::internal("a stored root", e))?;
        if audited.root != relayed.signed().root {
            let evidence = serde_json::json!({ "audited": audited, "received": relayed.signed() });
            self.record_failure(
                server,
                Some(relayed.epoch()),
                &format!("a device list came with another root for epoch {epoch} than its audit (a split view)"),
                Some(&evidence),
            )
            .await?;
        }
        Ok(audited)
    }

    /// Recent failed audits (all servers), newest first.
    pub async fn failures(&self, limit: i64) -> Result<Vec<store::transparency::FailureRow>, ApiError> {
        let db = self.pool.get().await?;
        Ok(store::transparency::failures(&db, None, limit).await?)
    }

    /// Each audited server's latest audited epoch.
    pub async fn audited(&self) -> Result<Vec<(String, i64)>, ApiError> {
        let db = self.pool.get().await?;
        Ok(store::transparency::audited_servers(&db).await?)
    }
}

/// Audits every server audited before (servers are first audited when a device list of
/// theirs is relayed) every `audit_interval_secs`, for good.
pub async fn audit_forever(transparency: Arc<Transparency>) {
    let every = Duration::from_secs(transparency.config.audit_interval_secs.max(1));
    loop {
        tokio::time::sleep(every).await;
        let servers = match transparency.audited().await {
            Ok(servers) => servers,
            Err(e) => {
                tracing::warn!(error = %e.message, "listing audited servers failed");
                continue;
            }
        };
        for (server, _) in servers {
            let Ok(server) = ServerName::parse(&server) else {
                continue;
            };
            if let Err(e) = transparency.audit_server(&server).await {
                tracing::debug!(%server, error = %e.message, "audit not completed");
            }
        }
    }
}
