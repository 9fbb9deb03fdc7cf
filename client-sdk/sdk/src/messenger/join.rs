//! A new device joins its user's conversations by itself, with no other device online:
//! for every group in which another device of this user is a member and this one is not,
//! it fetches the group's current GroupInfo and ratchet tree from the hub, makes an MLS
//! external commit that adds its own leaf (nothing else), and submits it. The hub accepts
//! such a commit only from a device of a user who has a member device (see
//! `specs/protocol.md`, "A user's new device joins"). The conversation's history starts at
//! the join: MLS gives a joiner no keys of earlier epochs.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    LeafNodeParameters, MlsGroup, MlsMessageBodyIn, MlsMessageIn, OpenMlsProvider, ProcessedWelcome, RatchetTreeIn,
};
use parley_specs::groups_api::{InboxEntry, InboxEntryKind, SubmitCommitRequest};
use parley_specs::{ErrorCode, GroupId};
use time::OffsetDateTime;

use super::commits::encode;
use super::device::join_config;
use super::directory::tree_leaves;
use super::error::{MessengerError, mls};
use super::events::Event;
use super::groups::{members_of, mls_group_id};
use super::history::Conversation;
use super::store::StoreLock;
use super::{Messenger, Result, new_txn_id};
use crate::Error;

/// Joins tried per group when other members keep committing first (`wrong_epoch`).
const MAX_JOIN_ATTEMPTS: usize = 3;
/// Submits of one external commit when the answer is lost (same transaction id).
const MAX_SUBMITS: usize = 3;

impl Messenger {
    /// Joins every conversation of this user that this device is not in yet (another
    /// device of the user is a member), by external commit; returns the groups joined.
    /// A group that cannot be joined is reported as [`Event::JoinFailed`] by the next
    /// `sync` or `receive`, and the others are still joined. Operations that talk to the
    /// homeserver do this once per process.
    pub async fn join_own_conversations(&mut self) -> Result<Vec<GroupId>> {
        let lock = self.begin().await?;
        let result = self.join_own_locked(&lock).await;
        self.end(lock, result)
    }

    pub(crate) async fn join_own_locked(&mut self, lock: &StoreLock) -> Result<Vec<GroupId>> {
        let joinable = self.client.list_joinable_groups().await?;
        let mut joined = Vec::new();
        for summary in joinable.groups {
            let group_id = summary.group_id;
            if self.state.conversations.get(&group_id).is_some_and(|c| c.member) {
                continue;
            }
            let mut outcome = Err(MessengerError::Mls("not tried".into()));
            for _ in 0..MAX_JOIN_ATTEMPTS {
                outcome = self.join_one(lock, &group_id).await;
                match &outcome {
                    Err(e) if e.code() == Some(ErrorCode::WrongEpoch) => continue,
                    _ => break,
                }
            }
            match outcome {
                Ok(()) => joined.push(group_id),
                // Not reaching the homeserver at all ends the operation, as elsewhere.
                Err(MessengerError::Api(e)) if !matches!(e, Error::Api { .. }) => return Err(e.into()),
                Err(e) => self.undelivered.push(Event::JoinFailed {
                    group_id,
                    reason: e.to_string(),
                }),
            }
        }
        Ok(joined)
    }

    /// One external join; on failure nothing of it is kept.
    async fn join_one(&mut self, lock: &StoreLock, group_id: &GroupId) -> Result<()> {
        let result = self.external_commit(lock, group_id).await;
        if result.is_err()
            && !self.state.conversations.get(group_id).is_some_and(|c| c.member)
            && let Some(mut group) = self.load_group(group_id)?
        {
            group
                .delete(self.provider.storage())
                .map_err(mls("deleting the state of a refused join"))?;
        }
        result
    }

    async fn external_commit(&mut self, lock: &StoreLock, group_id: &GroupId) -> Result<()> {
        let info = self.client.group_info(group_id).await?;
        let message = MlsMessageIn::tls_deserialize_exact(info.group_info.as_slice())
            .map_err(|e| MessengerError::Mls(format!("the hub's GroupInfo does not parse: {e}")))?;
        let MlsMessageBodyIn::GroupInfo(group_info) = message.extract() else {
            return Err(MessengerError::Mls("the hub's GroupInfo is another MLS message".into()));
        };
        if group_info.group_id() != &mls_group_id(group_id) {
            return Err(MessengerError::Mls("the hub's GroupInfo is of another group".into()));
        }
        let tree = RatchetTreeIn::tls_deserialize_exact(info.ratchet_tree.as_slice())
            .map_err(|e| MessengerError::Mls(format!("the hub's ratchet tree does not parse: {e}")))?;
        // The state of a former membership makes way.
        if let Some(mut old) = self.load_group(group_id)? {
            old.delete(self.provider.storage())
                .map_err(mls("deleting the former group state"))?;
        }
        // openmls checks the GroupInfo's signature against the signer's leaf in this tree
        // and the tree against the GroupInfo's tree hash.
        let (mut group, bundle) = MlsGroup::external_commit_builder()
            .with_ratchet_tree(tree)
            .with_config(join_config())
            .build_group(&self.provider, group_info, self.identity.credential.clone())
            .map_err(mls("joining from the hub's GroupInfo"))?
            .leaf_node_parameters(
                LeafNodeParameters::builder()
                    .with_capabilities(super::roles::capabilities(false))
                    .build(),
            )
            .load_psks(self.provider.storage())
            .map_err(mls("joining from the hub's GroupInfo"))?
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.identity.signer,
                |_| true,
            )
            .map_err(mls("making the external commit"))?
            .finalize(&self.provider)
            .map_err(mls("making the external commit"))?;
        // Every leaf of the hub's tree must be one its user's server vouches for, as for a
        // Welcome: a hub cannot slip a leaf into the group this device joins.
        let refused = self.check_tree(&tree_leaves(group.members())).await?;
        if !refused.is_empty() {
            group
                .delete(self.provider.storage())
                .map_err(mls("deleting a refused group state"))?;
            let reasons: Vec<String> = refused
                .iter()
                .map(|r| format!("leaf {}: {}", r.leaf_index, r.reason))
                .collect();
            return Err(MessengerError::Mls(format!(
                "not joined: the hub's tree of {group_id} has leaves the device key directory does not vouch for ({})",
                reasons.join("; ")
            )));
        }
        let members = members_of(&group);
        if !members
            .iter()
            .any(|m| m.user_id == self.state.user_id && m.device_id != self.state.device_id)
        {
            return Err(MessengerError::Mls(format!(
                "{} has no other device in the group; only a member's devices join by themselves",
                self.state.user_id
            )));
        }
        let new_info = group
            .export_group_info(self.provider.crypto(), &self.identity.signer, false)
            .map_err(mls("exporting the group info"))?;
        let request = SubmitCommitRequest {
            txn_id: new_txn_id(),
            commit: encode(bundle.commit())?.into(),
            welcome: None,
            group_info: encode(&new_info)?.into(),
        };
        // The same transaction id: a resubmit whose first answer was lost gets that answer.
        let mut answer = self.client.submit_commit(group_id, &request).await;
        for _ in 1..MAX_SUBMITS {
            match &answer {
                Err(e) if !matches!(e, Error::Api { .. }) => {
                    answer = self.client.submit_commit(group_id, &request).await;
                }
                _ => break,
            }
        }
        answer?;
        let conversation = self
            .state
            .conversations
            .entry(group_id.clone())
            .or_insert_with(|| Conversation::new(OffsetDateTime::now_utc()));
        conversation.member = true;
        conversation.joined_at = OffsetDateTime::now_utc();
        conversation.joined_epoch = group.epoch().as_u64();
        self.undelivered.push(Event::Joined {
            group_id: group_id.clone(),
            added_by: Some(self.state.user_id.clone()),
            members: members.into_iter().collect(),
        });
        self.save(lock)
    }

    /// Fetches from the hub the ratchet tree of each new Welcome in `entries` that lacks
    /// the ratchet-tree extension (another client may send such Welcomes), for
    /// `process_welcome` to join with. Best effort: the hub serves the group's current
    /// tree, so a Welcome to an epoch the group has left since cannot be joined this way
    /// (and is reported as undecryptable, like any Welcome that cannot be joined).
    pub(crate) async fn fetch_welcome_trees(&mut self, entries: &[InboxEntry]) {
        for entry in entries {
            if entry.kind != InboxEntryKind::Welcome || entry.cursor <= self.state.inbox_cursor {
                continue;
            }
            let Some(MlsMessageBodyIn::Welcome(welcome)) = entry
                .payload
                .as_ref()
                .and_then(|p| MlsMessageIn::tls_deserialize_exact(p.as_slice()).ok())
                .map(MlsMessageIn::extract)
            else {
                continue;
            };
            // Opening the Welcome consumes its KeyPackage: look, then put the state back.
            let snapshot = self.provider.export();
            let lacks_tree = ProcessedWelcome::new_from_welcome(&self.provider, &join_config(), welcome)
                .is_ok_and(|p| p.unverified_group_info().extensions().ratchet_tree().is_none());
            self.provider.import(snapshot);
            if !lacks_tree {
                continue;
            }
            if let Ok(info) = self.client.group_info(&entry.group_id).await
                && let Ok(tree) = RatchetTreeIn::tls_deserialize_exact(info.ratchet_tree.as_slice())
            {
                self.welcome_trees.insert(entry.cursor, tree);
            }
        }
    }
}
