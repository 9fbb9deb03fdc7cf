//! A revoked device leaves its conversations: the user's device that deletes another one
//! commits the removal of its leaves in every conversation both are in, and any member
//! whose send the hub refuses with `member_revoked` (a device revoked while none of its
//! user's other devices was online) removes the leaves the device key directory no
//! longer vouches for, then sends again.

use std::collections::{BTreeMap, BTreeSet};

use parley_specs::groups_api::GroupMember;
use parley_specs::{DeviceId, ErrorCode, GroupId, UserId};
use serde::Serialize;

use super::commits::{Change, Committed};
use super::groups::member_of;
use super::store::StoreLock;
use super::{Messenger, Result};

/// What deleting one of the user's devices did.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceDeletion {
    /// The deleted device.
    pub device_id: DeviceId,
    /// The conversations its leaves were removed from by this device.
    pub removed_from: Vec<GroupId>,
    /// Conversations where the removal could not be committed, and why (the hub still
    /// refuses to send there until a member removes it).
    pub not_removed: Vec<(GroupId, String)>,
}

impl Messenger {
    /// Deletes `device`, another device of this user, at the homeserver (its access is
    /// revoked at once), then removes its leaves from every conversation this device is
    /// in with it.
    pub async fn delete_device(&mut self, device: &DeviceId) -> Result<DeviceDeletion> {
        let lock = self.begin().await?;
        let result = self.delete_device_locked(&lock, device).await;
        self.end(lock, result)
    }

    async fn delete_device_locked(&mut self, lock: &StoreLock, device: &DeviceId) -> Result<DeviceDeletion> {
        self.client.delete_device(device).await?;
        let gone = GroupMember {
            user_id: self.state.user_id.clone(),
            device_id: device.clone(),
        };
        let mut deletion = DeviceDeletion {
            device_id: device.clone(),
            removed_from: Vec::new(),
            not_removed: Vec::new(),
        };
        if *device == self.state.device_id {
            return Ok(deletion);
        }
        self.prepare_online(lock).await?;
        let groups = self.member_groups();
        for group_id in groups {
            let Ok(group) = self.active_group(&group_id) else {
                continue;
            };
            if !super::groups::members_of(&group).contains(&gone) {
                continue;
            }
            let change = Change::RemoveDevices(BTreeSet::from([gone.clone()]));
            match self.commit_change(lock, &group_id, change).await {
                Ok(_) => deletion.removed_from.push(group_id),
                Err(e) if e.code() == Some(ErrorCode::MemberRevoked) => {
                    // Other revoked devices too: remove every leaf no longer vouched for.
                    match self.remove_revoked_devices(lock, &group_id).await {
                        Ok(_) => deletion.removed_from.push(group_id),
                        Err(e) => deletion.not_removed.push((group_id, e.to_string())),
                    }
                }
                Err(e) => deletion.not_removed.push((group_id, e.to_string())),
            }
        }
        Ok(deletion)
    }

    /// `commit_change` of the change `make` builds; when the hub refuses it because the
    /// group still has a revoked device's leaf, removes those first and commits it again.
    pub(crate) async fn commit_change_past_revoked(
        &mut self,
        lock: &StoreLock,
        group_id: &GroupId,
        make: impl Fn() -> Change,
    ) -> Result<Option<Committed>> {
        match self.commit_change(lock, group_id, make()).await {
            Err(e) if e.code() == Some(ErrorCode::MemberRevoked) => {
                self.remove_revoked_devices(lock, group_id).await?;
                self.commit_change(lock, group_id, make()).await
            }
            other => other,
        }
    }

    /// Commits the removal of every leaf of the group (but this device's) whose user's
    /// homeserver no longer vouches for it in the device key directory (a revoked
    /// device); returns how many were removed.
    pub(crate) async fn remove_revoked_devices(&mut self, lock: &StoreLock, group_id: &GroupId) -> Result<usize> {
        let group = self.active_group(group_id)?;
        let own = group.own_leaf_index();
        let mut leaves: BTreeMap<UserId, Vec<(GroupMember, Vec<u8>)>> = BTreeMap::new();
        for member in group.members().filter(|m| m.index != own) {
            if let Some(gm) = member_of(&member.credential) {
                leaves
                    .entry(gm.user_id.clone())
                    .or_default()
                    .push((gm, member.signature_key.clone()));
            }
        }
        let mut revoked = BTreeSet::new();
        for (user, devices) in leaves {
            let vouched: BTreeSet<(DeviceId, Vec<u8>)> = match self.client.user_devices(&user).await {
                Ok(list) => list
                    .device_keys
                    .devices
                    .into_iter()
                    .map(|d| (d.device_id, d.signature_key.into_vec()))
                    .collect(),
                // The server vouches for no device of a user it does not have.
                Err(e) if e.code() == Some(ErrorCode::NotFound) => BTreeSet::new(),
                Err(e) => return Err(e.into()),
            };
            for (member, key) in devices {
                if !vouched.contains(&(member.device_id.clone(), key)) {
                    revoked.insert(member);
                }
            }
        }
        if revoked.is_empty() {
            return Ok(0);
        }
        let committed = self
            .commit_change(lock, group_id, Change::RemoveDevices(revoked))
            .await?;
        Ok(committed.map_or(0, |c| c.affected.len()))
    }
}
