//! Asking a group's hub for the messages after the last one stored here, when a gap in a
//! group's sequence numbers shows some did not arrive.

use std::collections::BTreeSet;
use std::sync::Mutex;

use parley_federation::hub_signature::VerifiedMessage;
use parley_specs::GroupId;
use parley_specs::endpoints::federation::BACKFILL;
use parley_specs::federation_api::BackfillPage;

use super::ordered::verify_all;
use super::{Remote, peer_keys, refused, unavailable};
use crate::error::ApiError;

/// Groups being backfilled by this process, so a burst of transactions after one gap
/// starts one backfill.
#[derive(Default)]
pub struct Backfills(Mutex<BTreeSet<GroupId>>);

impl Backfills {
    /// `false` when the group is being backfilled already.
    pub fn start(&self, group: &GroupId) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(group.clone())
    }

    pub fn finish(&self, group: &GroupId) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(group);
    }
}

/// One page of a group's messages after `after`, each with the hub's signature checked,
/// and the group's last sequence number at the hub.
pub async fn fetch_page(remote: &Remote, group: &GroupId, after: i64) -> Result<(Vec<VerifiedMessage>, i64), ApiError> {
    let hub = group.hub();
    let path = format!("{}?after={after}", BACKFILL.path_with(&[group.as_str()]));
    let (status, bytes) = remote
        .call(
            reqwest::Method::GET,
            &hub,
            &path,
            Vec::new(),
            remote.bulk_answer_limit(),
        )
        .await?;
    if !status.is_success() {
        return Err(refused(&hub, "the backfill", status, &bytes));
    }
    let page: BackfillPage = serde_json::from_slice(&bytes)
        .map_err(|e| unavailable(format!("{hub} answered the backfill with something else: {e}")))?;
    let keys = peer_keys::of_server(remote, &hub).await?;
    if page.messages.iter().any(|m| m.message.group_id != *group) {
        return Err(unavailable(format!("{hub} backfilled messages of another group")));
    }
    if page.messages.iter().any(|m| m.message.seq <= after) {
        return Err(unavailable(format!("{hub} backfilled messages at or before {after}")));
    }
    let verified = verify_all(page.messages, &keys, |e| unavailable(e.to_string())).await?;
    Ok((verified, page.last_seq))
}
