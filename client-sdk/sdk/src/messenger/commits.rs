//! Commits: a membership change committed so that it survives a concurrent commit
//! (`wrong_epoch`: catch up, rebuild the change against the group as it now is, retry)
//! and a lost answer (the commit is saved before it is sent and resubmitted with the
//! same transaction id before anything else).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{KeyPackage, LeafNodeIndex, MlsGroup, MlsMessageOut, OpenMlsProvider};
use parley_specs::groups_api::{Accepted, GroupMember, SubmitCommitRequest};
use parley_specs::{Base64Bytes, ErrorCode, GroupId, UserId};
use serde::{Deserialize, Serialize};

use super::error::{MessengerError, mls};
use super::groups::{member_of, members_of};
use super::store::StoreLock;
use super::{Messenger, Result, new_txn_id};
use crate::Error;

/// Commits tried before giving up when other members keep committing first.
const MAX_COMMIT_ATTEMPTS: usize = 5;
/// How long a catch-up waits for the commits that moved the group on to arrive.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);

/// A commit sent to the hub whose answer this device has not seen yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingCommit {
    txn_id: String,
    commit: Base64Bytes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    welcome: Option<Base64Bytes>,
    /// The GroupInfo of the epoch the commit creates (empty in stores of versions that
    /// did not send one: the hub then answers a retry from its record, or refuses).
    #[serde(default)]
    group_info: Base64Bytes,
}

impl PendingCommit {
    fn request(&self) -> SubmitCommitRequest {
        SubmitCommitRequest {
            txn_id: self.txn_id.clone(),
            commit: self.commit.clone(),
            welcome: self.welcome.clone(),
            group_info: self.group_info.clone(),
        }
    }
}

/// A membership change to commit; re-evaluated against the group at every attempt.
pub(crate) enum Change {
    Add(Vec<(GroupMember, KeyPackage)>),
    Remove(BTreeSet<UserId>),
    /// These devices' leaves (a revoked device: its user stays).
    RemoveDevices(BTreeSet<GroupMember>),
}

/// A commit made for a change, ready to submit.
struct Staged {
    commit: Vec<u8>,
    welcome: Option<Vec<u8>>,
    affected: Vec<GroupMember>,
}

/// A commit the hub accepted.
pub(crate) struct Committed {
    pub(crate) accepted: Accepted,
    pub(crate) affected: Vec<GroupMember>,
}

/// The TLS encoding of an MLS message, as the hub takes it.
pub(crate) fn encode(message: &MlsMessageOut) -> Result<Vec<u8>> {
    message.tls_serialize_detached().map_err(mls("encoding an MLS message"))
}

/// The group's epoch a `wrong_epoch` refusal names.
pub(crate) fn current_epoch(err: &Error) -> Option<u64> {
    match err {
        Error::Api { body, .. } => body.current_epoch,
        _ => None,
    }
}

impl Messenger {
    /// Commits `change`, catching up and rebuilding it when another commit came first.
    /// `None` when there was nothing (left) to do.
    pub(crate) async fn commit_change(
        &mut self,
        lock: &StoreLock,
        group_id: &GroupId,
        change: Change,
    ) -> Result<Option<Committed>> {
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let mut group = self.active_group(group_id)?;
            let Some(staged) = self.stage(&mut group, &change)? else {
                return Ok(None);
            };
            let group_info = self.pending_group_info(group_id)?;
            let pending = PendingCommit {
                txn_id: new_txn_id(),
                commit: staged.commit.into(),
                welcome: staged.welcome.map(Into::into),
                group_info: group_info.into(),
            };
            // Saved before it is sent: if the answer is lost, the next operation resubmits
            // it with the same transaction id and learns whether it was accepted.
            self.state.pending_commits.insert(group_id.clone(), pending.clone());
            self.save(lock)?;
            match self.client.submit_commit(group_id, &pending.request()).await {
                Ok(accepted) => {
                    self.conclude_commit(lock, group_id, &mut group, true)?;
                    return Ok(Some(Committed {
                        accepted,
                        affected: staged.affected,
                    }));
                }
                Err(err) if err.code() == Some(ErrorCode::WrongEpoch) => {
                    self.conclude_commit(lock, group_id, &mut group, false)?;
                    self.catch_up(lock, group_id, current_epoch(&err)).await?;
                }
                Err(err @ Error::Api { .. }) => {
                    self.conclude_commit(lock, group_id, &mut group, false)?;
                    return Err(err.into());
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(MessengerError::Contention {
            group: group_id.clone(),
            attempts: MAX_COMMIT_ATTEMPTS,
        })
    }

    /// Makes the commit for `change` as the group is now; `None` when nothing is left to do.
    fn stage(&self, group: &mut MlsGroup, change: &Change) -> Result<Option<Staged>> {
        let current = members_of(group);
        match change {
            Change::Add(packages) => {
                let fresh: Vec<_> = packages.iter().filter(|(m, _)| !current.contains(m)).collect();
                if fresh.is_empty() {
                    return Ok(None);
                }
                let key_packages: Vec<KeyPackage> = fresh.iter().map(|(_, p)| p.clone()).collect();
                let (commit, welcome, _) = group
                    .add_members(&self.provider, &self.identity.signer, &key_packages)
                    .map_err(mls("adding members"))?;
                Ok(Some(Staged {
                    commit: encode(&commit)?,
                    welcome: Some(encode(&welcome)?),
                    affected: fresh.into_iter().map(|(m, _)| m.clone()).collect(),
                }))
            }
            Change::Remove(_) | Change::RemoveDevices(_) => {
                let own = group.own_leaf_index();
                let targets: Vec<(LeafNodeIndex, GroupMember)> = group
                    .members()
                    .filter(|m| m.index != own)
                    .filter_map(|m| member_of(&m.credential).map(|gm| (m.index, gm)))
                    .filter(|(_, gm)| match change {
                        Change::Remove(users) => users.contains(&gm.user_id),
                        Change::RemoveDevices(devices) => devices.contains(gm),
                        Change::Add(_) => false,
                    })
                    .collect();
                if targets.is_empty() {
                    return Ok(None);
                }
                let leaves: Vec<LeafNodeIndex> = targets.iter().map(|(index, _)| *index).collect();
                let (commit, welcome, _) = group
                    .remove_members(&self.provider, &self.identity.signer, &leaves)
                    .map_err(mls("removing members"))?;
                Ok(Some(Staged {
                    commit: encode(&commit)?,
                    welcome: welcome.as_ref().map(encode).transpose()?,
                    affected: targets.into_iter().map(|(_, m)| m).collect(),
                }))
            }
        }
    }

    /// The GroupInfo (without the ratchet tree) of the epoch the group's pending commit
    /// creates, signed by this device, as the hub takes it with the commit. openmls makes
    /// it only from a merged state: the commit is merged on a copy of the stored state,
    /// which is then put back as it was.
    fn pending_group_info(&self, group_id: &GroupId) -> Result<Vec<u8>> {
        let snapshot = self.provider.export();
        let result = (|| {
            let mut merged = self
                .load_group(group_id)?
                .ok_or_else(|| MessengerError::UnknownGroup(group_id.clone()))?;
            merged
                .merge_pending_commit(&self.provider)
                .map_err(mls("applying the commit to a copy"))?;
            let info = merged
                .export_group_info(self.provider.crypto(), &self.identity.signer, false)
                .map_err(mls("exporting the group info"))?;
            encode(&info)
        })();
        self.provider.import(snapshot);
        result
    }

    /// Applies (accepted) or drops (refused) the group's pending commit, and saves.
    fn conclude_commit(
        &mut self,
        lock: &StoreLock,
        group_id: &GroupId,
        group: &mut MlsGroup,
        accepted: bool,
    ) -> Result<()> {
        if accepted {
            group
                .merge_pending_commit(&self.provider)
                .map_err(mls("applying the accepted commit"))?;
        } else {
            group
                .clear_pending_commit(self.provider.storage())
                .map_err(mls("dropping the refused commit"))?;
        }
        self.state.pending_commits.remove(group_id);
        if accepted {
            self.check_verified_contacts()?;
        }
        self.save(lock)
    }

    /// Resubmits commits whose answer was lost (same transaction id: the hub answers what
    /// it answered the first time) and applies or drops them.
    pub(crate) async fn resolve_pending_commits(&mut self, lock: &StoreLock) -> Result<()> {
        let pending: Vec<_> = self
            .state
            .pending_commits
            .iter()
            .map(|(g, p)| (g.clone(), p.clone()))
            .collect();
        for (group_id, commit) in pending {
            let Some(mut group) = self.load_group(&group_id)? else {
                self.state.pending_commits.remove(&group_id);
                self.save(lock)?;
                continue;
            };
            match self.client.submit_commit(&group_id, &commit.request()).await {
                Ok(_) => self.conclude_commit(lock, &group_id, &mut group, true)?,
                Err(Error::Api { .. }) => self.conclude_commit(lock, &group_id, &mut group, false)?,
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Processes the inbox until the group reaches `target_epoch` (when known), waiting
    /// a little for commits that are still on their way.
    pub(crate) async fn catch_up(
        &mut self,
        lock: &StoreLock,
        group_id: &GroupId,
        target_epoch: Option<u64>,
    ) -> Result<()> {
        self.drain_inbox(lock, None).await?;
        let deadline = Instant::now() + CATCH_UP_WAIT;
        while let Some(target) = target_epoch {
            let epoch = match self.load_group(group_id)? {
                Some(group) if group.is_active() => group.epoch().as_u64(),
                _ => break,
            };
            if epoch >= target || Instant::now() >= deadline {
                break;
            }
            self.drain_inbox(lock, Some(Duration::from_secs(2))).await?;
        }
        Ok(())
    }
}
