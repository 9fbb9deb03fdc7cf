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
use super::roles::{self, PolicyEdit};
use super::store::StoreLock;
use super::{Messenger, Result, new_txn_id};
use crate::Error;
use parley_specs::roles::carried_admins;

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
    /// The group policy: name, topic, roles (see `roles.rs`).
    Policy(PolicyEdit),
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
            let Some(staged) = self.stage(group_id, &mut group, &change)? else {
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
                // A user left and this device has not seen their `leave` message yet:
                // read it, and the next attempt removes them too.
                Err(err) if err.code() == Some(ErrorCode::MemberLeft) => {
                    self.conclude_commit(lock, group_id, &mut group, false)?;
                    self.catch_up(lock, group_id, None).await?;
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
    /// Every commit also removes the users who announced they leave (the hub takes no
    /// commit that keeps them, `member_left`) and keeps the group policy's admins to
    /// members (`parley_specs::roles::carried_admins`: when the last admin goes, the role
    /// passes to the user of the lowest-indexed remaining leaf); a commit that adds
    /// devices carries the group's metadata key to them inside the Welcome.
    fn stage(&self, group_id: &GroupId, group: &mut MlsGroup, change: &Change) -> Result<Option<Staged>> {
        let current = members_of(group);
        let own = group.own_leaf_index();
        let leavers = self.state.leave_requests.get(group_id);
        let fresh: Vec<&(GroupMember, KeyPackage)> = match change {
            Change::Add(packages) => packages.iter().filter(|(m, _)| !current.contains(m)).collect(),
            _ => Vec::new(),
        };
        let removals: Vec<(LeafNodeIndex, GroupMember)> = group
            .members()
            .filter(|m| m.index != own)
            .filter_map(|m| member_of(&m.credential).map(|gm| (m.index, gm)))
            .filter(|(_, gm)| {
                let asked = match change {
                    Change::Remove(users) => users.contains(&gm.user_id),
                    Change::RemoveDevices(devices) => devices.contains(gm),
                    Change::Add(_) | Change::Policy(_) => false,
                };
                asked || leavers.is_some_and(|users| users.contains(&gm.user_id))
            })
            .collect();
        let removed_indexes: BTreeSet<LeafNodeIndex> = removals.iter().map(|(i, _)| *i).collect();
        let policy_before = roles::policy_of(group);
        let policy_after = match &policy_before {
            None => None,
            Some(policy) => {
                let mut next = match change {
                    Change::Policy(edit) => self.edited_policy(group_id, group, policy, edit)?,
                    _ => policy.clone(),
                };
                let leaves_after: Vec<(u32, GroupMember)> = group
                    .members()
                    .filter(|m| !removed_indexes.contains(&m.index))
                    .filter_map(|m| member_of(&m.credential).map(|gm| (m.index.u32(), gm)))
                    .collect();
                next.admins = carried_admins(&next.admins, &leaves_after);
                Some(next)
            }
        };
        let policy_changes = policy_after != policy_before;
        let asked_something = match change {
            Change::Add(_) => !fresh.is_empty(),
            Change::Remove(_) | Change::RemoveDevices(_) => removals.iter().any(|(_, gm)| match change {
                Change::Remove(users) => users.contains(&gm.user_id),
                Change::RemoveDevices(devices) => devices.contains(gm),
                _ => false,
            }),
            Change::Policy(_) => policy_changes,
        };
        if !asked_something {
            return Ok(None);
        }
        let mut builder = group
            .commit_builder()
            .propose_adds(fresh.iter().map(|(_, p)| p.clone()))
            .propose_removals(removed_indexes.iter().copied());
        if policy_changes && let Some(policy) = &policy_after {
            builder = builder
                .propose_group_context_extensions(roles::context_extensions(policy)?)
                .map_err(mls("changing the group policy"))?;
        }
        let mut builder = builder
            .load_psks(self.provider.storage())
            .map_err(mls("making the commit"))?;
        if !fresh.is_empty()
            && let Some(key) = self.state.group_keys.get(group_id)
        {
            builder = builder
                .create_group_info_with_extensions([roles::key_extension(key.as_slice())])
                .map_err(mls("adding the group key to the Welcome"))?;
        }
        let bundle = builder
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.identity.signer,
                |_| true,
            )
            .map_err(mls("making the commit"))?
            .stage_commit(&self.provider)
            .map_err(mls("making the commit"))?;
        let (commit, welcome, _) = bundle.into_messages();
        let affected = match change {
            Change::Add(_) => fresh.iter().map(|(m, _)| m.clone()).collect(),
            Change::Remove(users) => removals
                .iter()
                .filter(|(_, gm)| users.contains(&gm.user_id))
                .map(|(_, gm)| gm.clone())
                .collect(),
            Change::RemoveDevices(devices) => removals
                .iter()
                .filter(|(_, gm)| devices.contains(gm))
                .map(|(_, gm)| gm.clone())
                .collect(),
            Change::Policy(_) => Vec::new(),
        };
        Ok(Some(Staged {
            commit: encode(&commit)?,
            welcome: welcome.as_ref().map(encode).transpose()?,
            affected,
        }))
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
