//! Groups: create, add and remove members by user id (committed through `commits.rs`),
//! leave, and this device's view of its groups and their members.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{
    Credential, GroupId as MlsGroupId, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup, OpenMlsProvider,
};
use parley_specs::groups_api::{CreateGroupRequest, GroupMember};
use parley_specs::keys_api::ClaimKeyPackagesRequest;
use parley_specs::mls::parse_credential_identity;
use parley_specs::{ErrorCode, GroupId, UserId};
use rand::RngCore as _;
use serde::Serialize;
use time::OffsetDateTime;

use super::commits::{Change, encode};
use super::device::{CIPHERSUITE, PAST_EPOCHS_KEPT, checked_key_package};
use super::directory::{TreeLeaf, tree_leaves};
use super::envelope::Envelope;
use super::error::{MessengerError, mls};
use super::history::Conversation;
use super::roles::{self, GroupSettings};
use super::store::StoreLock;
use super::{Messenger, Result};
use crate::Error;
use parley_specs::roles::GroupPolicy;

/// A device in a group, as the group's MLS tree shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberDevice {
    /// The account.
    pub user_id: UserId,
    /// The device.
    pub device_id: parley_specs::DeviceId,
    /// Its public signature key, hex.
    pub signature_key: String,
    /// Whether it is the device of this messenger.
    pub this_device: bool,
}

/// A conversation on this device.
#[derive(Debug, Clone, Serialize)]
pub struct GroupOverview {
    /// The group.
    pub group_id: GroupId,
    /// Whether this device is still a member.
    pub member: bool,
    /// The MLS epoch this device is at (absent once removed).
    pub epoch: Option<u64>,
    /// The member devices (empty once removed).
    pub members: Vec<GroupMember>,
    /// Messages in the local history.
    pub messages: usize,
    /// When the latest of them was sent.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_message_at: Option<OffsetDateTime>,
    /// Messages of other users not marked read (see [`Messenger::mark_read`]).
    pub unread: usize,
    /// The disappearing-message timer of messages sent from this device, in seconds
    /// (see [`Messenger::set_timer`]).
    pub timer_secs: Option<u64>,
    /// Set when this device refused a commit of the group (it put a device the device key
    /// directory does not vouch for in it): the conversation takes no further messages.
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The group's name, topic and admins (absent once removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<GroupSettings>,
}

/// What adding users did.
#[derive(Debug, Clone, Serialize)]
pub struct AddOutcome {
    /// The group.
    pub group_id: GroupId,
    /// The devices added.
    pub added: Vec<GroupMember>,
    /// Devices of these users that were members already.
    pub already_members: Vec<GroupMember>,
    /// Devices with no KeyPackage left: they could not be added now.
    pub without_key_packages: Vec<GroupMember>,
    /// Devices whose claimed KeyPackage was refused, and why.
    pub refused_key_packages: Vec<(GroupMember, String)>,
    /// The group's epoch afterwards.
    pub epoch: u64,
}

/// What removing users did.
#[derive(Debug, Clone, Serialize)]
pub struct RemoveOutcome {
    /// The group.
    pub group_id: GroupId,
    /// The devices removed (empty when someone else removed them first).
    pub removed: Vec<GroupMember>,
    /// The group's epoch afterwards.
    pub epoch: u64,
}

/// What leaving a group did.
#[derive(Debug, Clone, Serialize)]
pub struct LeaveOutcome {
    /// The group.
    pub group_id: GroupId,
    /// Whether the other members were asked to remove this user's devices (false when
    /// this device had been removed already).
    pub announced: bool,
    /// Messages deleted with the conversation.
    pub messages_deleted: usize,
}

/// The user and device a credential names, if it names one.
pub(crate) fn member_of(credential: &Credential) -> Option<GroupMember> {
    parse_credential_identity(credential.serialized_content())
        .map(|(user_id, device_id)| GroupMember { user_id, device_id })
}

/// The devices of a group.
pub(crate) fn members_of(group: &MlsGroup) -> BTreeSet<GroupMember> {
    group.members().filter_map(|m| member_of(&m.credential)).collect()
}

pub(crate) fn mls_group_id(id: &GroupId) -> MlsGroupId {
    MlsGroupId::from_slice(id.as_str().as_bytes())
}

impl Messenger {
    /// Creates a group with this device as its only member, hubbed on this user's
    /// homeserver; its id is `<16 random bytes in base64url, 22 characters, never starting
    /// with '-'>@<server>`.
    pub async fn create_group(&mut self) -> Result<GroupId> {
        let lock = self.begin().await?;
        let result = self.create_group_locked(&lock).await;
        self.end(lock, result)
    }

    async fn create_group_locked(&mut self, lock: &StoreLock) -> Result<GroupId> {
        self.prepare_online(lock).await?;
        let id = GroupId::parse(&format!("{}@{}", random_local_part(), self.state.user_id.server_name()))?;
        // The creator is the group's one admin; every leaf must support the policy.
        let policy = GroupPolicy::new(self.state.user_id.clone());
        let group = MlsGroup::builder()
            .with_group_id(mls_group_id(&id))
            .with_capabilities(roles::capabilities(false))
            .with_group_context_extensions(roles::context_extensions(&policy)?)
            .ciphersuite(CIPHERSUITE)
            .with_wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .use_ratchet_tree_extension(true)
            .max_past_epochs(PAST_EPOCHS_KEPT)
            .build(&self.provider, &self.identity.signer, self.identity.credential.clone())
            .map_err(mls("creating the group"))?;
        let info = group
            .export_group_info(self.provider.crypto(), &self.identity.signer, false)
            .map_err(mls("exporting the group info"))?;
        let tree = group
            .export_ratchet_tree()
            .tls_serialize_detached()
            .map_err(mls("encoding the ratchet tree"))?;
        let request = CreateGroupRequest {
            group_info: encode(&info)?.into(),
            ratchet_tree: tree.into(),
        };
        self.client.create_group(&request).await?;
        self.state
            .conversations
            .insert(id.clone(), Conversation::new(OffsetDateTime::now_utc()));
        self.state.group_keys.insert(id.clone(), roles::new_key().into());
        self.save(lock)?;
        Ok(id)
    }

    /// Adds every device of each of `users` (this user's other devices too, when listed)
    /// in one commit: claims a KeyPackage per device, checks that each names its device,
    /// commits with the Welcome. Devices already in the group are skipped. Fails with
    /// [`MessengerError::CannotAdd`] when no device at all could be added.
    pub async fn add_members(&mut self, group_id: &GroupId, users: &[UserId]) -> Result<AddOutcome> {
        let lock = self.begin().await?;
        let result = self.add_members_locked(&lock, group_id, users).await;
        self.end(lock, result)
    }

    async fn add_members_locked(
        &mut self,
        lock: &StoreLock,
        group_id: &GroupId,
        users: &[UserId],
    ) -> Result<AddOutcome> {
        self.prepare_online(lock).await?;
        let current = members_of(&self.active_group(group_id)?);
        let mut outcome = AddOutcome {
            group_id: group_id.clone(),
            added: Vec::new(),
            already_members: Vec::new(),
            without_key_packages: Vec::new(),
            refused_key_packages: Vec::new(),
            epoch: 0,
        };
        let mut packages = Vec::new();
        let mut first_failure = None;
        let users: BTreeSet<&UserId> = users.iter().collect();
        for user in users {
            let claimed = self
                .client
                .claim_key_packages(&ClaimKeyPackagesRequest { user_id: user.clone() })
                .await?;
            let device = |device_id| GroupMember {
                user_id: user.clone(),
                device_id,
            };
            let before = (packages.len(), outcome.already_members.len());
            outcome.without_key_packages.extend(
                claimed
                    .devices_without_key_packages
                    .into_iter()
                    .map(device)
                    .filter(|d| !current.contains(d)),
            );
            for claim in claimed.key_packages {
                let member = device(claim.device_id.clone());
                if current.contains(&member) {
                    outcome.already_members.push(member);
                    continue;
                }
                if packages.iter().any(|(m, _)| m == &member) {
                    let reason = "the server handed out two KeyPackages for this device".to_owned();
                    outcome.refused_key_packages.push((member, reason));
                    continue;
                }
                match checked_key_package(&self.provider, claim.key_package.as_slice(), user, &claim.device_id) {
                    Ok(package) => packages.push((member, package)),
                    Err(reason) => outcome
                        .refused_key_packages
                        .push((member, format!("the KeyPackage {reason}"))),
                }
            }
            // Devices of this user already in the group (the calling one is never claimed).
            let in_group: Vec<GroupMember> = current
                .iter()
                .filter(|m| &m.user_id == user && !outcome.already_members.contains(m))
                .cloned()
                .collect();
            outcome.already_members.extend(in_group);
            if (packages.len(), outcome.already_members.len()) == before && first_failure.is_none() {
                first_failure = Some(user.clone());
            }
        }
        // Each KeyPackage's leaf must be its device's, as the device key directory says.
        let group = self.active_group(group_id)?;
        let mut tree = tree_leaves(group.members());
        let first_new = tree.iter().map(|l| l.index + 1).max().unwrap_or(0);
        let new: Vec<TreeLeaf> = packages
            .iter()
            .zip(first_new..)
            .map(|((_, package), index)| TreeLeaf::of_leaf_node(index, package.leaf_node()))
            .collect();
        tree.extend(new.iter().cloned());
        let refused = self.check_leaves(&new, &tree).await?;
        for refusal in refused {
            let at = (refusal.leaf_index - first_new) as usize;
            if let Some((member, _)) = packages.get(at) {
                outcome.refused_key_packages.push((
                    member.clone(),
                    format!("the KeyPackage's leaf is refused: {}", refusal.reason),
                ));
            }
        }
        let refused_members: Vec<GroupMember> = outcome.refused_key_packages.iter().map(|(m, _)| m.clone()).collect();
        packages.retain(|(m, _)| !refused_members.contains(m));
        if packages.is_empty()
            && let Some((member, _)) = outcome.refused_key_packages.first()
        {
            first_failure.get_or_insert_with(|| member.user_id.clone());
        }
        outcome.epoch = group.epoch().as_u64();
        if packages.is_empty() {
            return match first_failure {
                None => Ok(outcome),
                Some(user) => Err(MessengerError::CannotAdd {
                    reason: why_not_added(&user, &outcome),
                    user,
                }),
            };
        }
        let add = || Change::Add(packages.clone());
        if let Some(committed) = self.commit_change_past_revoked(lock, group_id, add).await? {
            outcome.added = committed.affected;
            outcome.epoch = committed.accepted.epoch;
        }
        Ok(outcome)
    }

    /// Removes every device of each of `users` in one commit (this user's other devices
    /// when it is listed; a device cannot remove itself: see [`Messenger::leave_group`]).
    pub async fn remove_members(&mut self, group_id: &GroupId, users: &[UserId]) -> Result<RemoveOutcome> {
        let lock = self.begin().await?;
        let result = self.remove_members_locked(&lock, group_id, users).await;
        self.end(lock, result)
    }

    async fn remove_members_locked(
        &mut self,
        lock: &StoreLock,
        group_id: &GroupId,
        users: &[UserId],
    ) -> Result<RemoveOutcome> {
        self.prepare_online(lock).await?;
        let group = self.active_group(group_id)?;
        let own = group.own_leaf_index();
        let removable: BTreeSet<UserId> = group
            .members()
            .filter(|m| m.index != own)
            .filter_map(|m| member_of(&m.credential))
            .map(|m| m.user_id)
            .collect();
        for user in users {
            if !removable.contains(user) {
                return Err(if user == &self.state.user_id {
                    MessengerError::CannotRemoveSelf
                } else {
                    MessengerError::NotInGroup {
                        user: user.clone(),
                        group: group_id.clone(),
                    }
                });
            }
        }
        let change = || Change::Remove(users.iter().cloned().collect());
        Ok(match self.commit_change_past_revoked(lock, group_id, change).await? {
            Some(committed) => RemoveOutcome {
                group_id: group_id.clone(),
                removed: committed.affected,
                epoch: committed.accepted.epoch,
            },
            None => RemoveOutcome {
                group_id: group_id.clone(),
                removed: Vec::new(),
                epoch: self.active_group(group_id)?.epoch().as_u64(),
            },
        })
    }

    /// Leaves a group and deletes the conversation from this device for real: its MLS
    /// state and its whole history are removed from the store.
    ///
    /// MLS does not let a member commit its own removal, and the hub accepts only commits
    /// (no standalone proposals), so leaving is: an encrypted `{"type":"leave"}` message
    /// to the group, asking the other members' devices to remove all of this user's
    /// devices (the first one online commits it), then the local deletion. Until someone
    /// commits the removal, the hub still counts this device as a member and queues the
    /// group's ciphertext for it, which it can no longer decrypt and discards.
    pub async fn leave_group(&mut self, group_id: &GroupId) -> Result<LeaveOutcome> {
        let lock = self.begin().await?;
        let result = self.leave_group_locked(&lock, group_id).await;
        self.end(lock, result)
    }

    async fn leave_group_locked(&mut self, lock: &StoreLock, group_id: &GroupId) -> Result<LeaveOutcome> {
        let conversation = self
            .state
            .conversations
            .get(group_id)
            .ok_or_else(|| MessengerError::UnknownGroup(group_id.clone()))?;
        let mut announced = false;
        if conversation.member {
            self.prepare_online(lock).await?;
            match self.send_envelope(lock, group_id, &Envelope::Leave, None).await {
                Ok(_) => announced = true,
                Err(e) if e.code() == Some(ErrorCode::NotAMember) || matches!(e, MessengerError::NotAMember(_)) => {}
                Err(e) => return Err(e),
            }
            // The hub records the leave: it stops delivering the group to this user's
            // devices, and the next commit, whoever makes it, removes them.
            if announced {
                match self.client.leave_group(group_id).await {
                    Ok(_) => {}
                    Err(e) if e.code() == Some(ErrorCode::NotAMember) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let messages_deleted = self.forget_group(group_id)?;
        self.save(lock)?;
        Ok(LeaveOutcome {
            group_id: group_id.clone(),
            announced,
            messages_deleted,
        })
    }

    /// Deletes everything this device holds about a group; returns how many messages.
    fn forget_group(&mut self, group_id: &GroupId) -> Result<usize> {
        if let Some(mut group) = self.load_group(group_id)? {
            group
                .delete(self.provider.storage())
                .map_err(mls("deleting the group state"))?;
        }
        self.state.leave_requests.remove(group_id);
        self.state.announced_leaves.remove(group_id);
        self.state.group_keys.remove(group_id);
        self.state.pending_commits.remove(group_id);
        Ok(self
            .state
            .conversations
            .remove(group_id)
            .map_or(0, |c| c.messages.len()))
    }

    /// The conversations on this device.
    pub async fn groups(&mut self) -> Result<Vec<GroupOverview>> {
        let lock = self.begin().await?;
        let result = self.groups_locked();
        self.end(lock, result)
    }

    fn groups_locked(&self) -> Result<Vec<GroupOverview>> {
        let now = OffsetDateTime::now_utc();
        let mut all = Vec::new();
        for (group_id, conversation) in &self.state.conversations {
            let group = self.load_group(group_id)?.filter(|_| conversation.member);
            all.push(GroupOverview {
                group_id: group_id.clone(),
                member: group.is_some(),
                epoch: group.as_ref().map(|g| g.epoch().as_u64()),
                members: group
                    .as_ref()
                    .map(|g| members_of(g).into_iter().collect())
                    .unwrap_or_default(),
                messages: conversation.messages.len(),
                last_message_at: conversation.messages.iter().map(|m| m.sent_at).max(),
                unread: conversation.unread(&self.state.user_id, now),
                timer_secs: conversation.timer_secs,
                refused: conversation.refused.clone(),
                settings: group
                    .as_ref()
                    .filter(|_| conversation.refused.is_none())
                    .map(|g| self.settings_of(group_id, g)),
            });
        }
        Ok(all)
    }

    /// The devices of a group, as this device's copy of its tree shows them.
    pub async fn members(&mut self, group_id: &GroupId) -> Result<Vec<MemberDevice>> {
        let lock = self.begin().await?;
        let result = self.active_group(group_id).map(|group| {
            let own = group.own_leaf_index();
            let mut devices: Vec<MemberDevice> = group
                .members()
                .filter_map(|m| {
                    member_of(&m.credential).map(|gm| MemberDevice {
                        user_id: gm.user_id,
                        device_id: gm.device_id,
                        signature_key: hex::encode(&m.signature_key),
                        this_device: m.index == own,
                    })
                })
                .collect();
            devices.sort_by(|a, b| (&a.user_id, &a.device_id).cmp(&(&b.user_id, &b.device_id)));
            devices
        });
        self.end(lock, result)
    }

    /// The MLS group, if this device has its state.
    pub(crate) fn load_group(&self, group_id: &GroupId) -> Result<Option<MlsGroup>> {
        MlsGroup::load(self.provider.storage(), &mls_group_id(group_id)).map_err(mls("loading the group state"))
    }

    /// The MLS group of a conversation this device is a member of.
    pub(crate) fn active_group(&self, group_id: &GroupId) -> Result<MlsGroup> {
        let conversation = self
            .state
            .conversations
            .get(group_id)
            .ok_or_else(|| MessengerError::UnknownGroup(group_id.clone()))?;
        if let Some(reason) = &conversation.refused {
            return Err(MessengerError::ConversationRefused {
                group: group_id.clone(),
                reason: reason.clone(),
            });
        }
        match self.load_group(group_id)? {
            Some(group) if conversation.member && group.is_active() => Ok(group),
            _ => Err(MessengerError::NotAMember(group_id.clone())),
        }
    }

    /// Removes the users who announced they leave a group, in the groups where this
    /// device is still a member. Another member's device may do it first; that is fine.
    pub(crate) async fn honour_leave_requests(&mut self, lock: &StoreLock) -> Result<()> {
        // A catch-up inside may bring more requests; a few passes finish them.
        for _ in 0..3 {
            let requests: Vec<_> = self
                .state
                .leave_requests
                .iter()
                .map(|(g, u)| (g.clone(), u.clone()))
                .collect();
            if requests.is_empty() {
                break;
            }
            for (group_id, users) in requests {
                let result = match self.active_group(&group_id) {
                    Ok(_) => self
                        .commit_change(lock, &group_id, Change::Remove(users))
                        .await
                        .map(drop),
                    Err(_) => Ok(()),
                };
                match result {
                    Err(MessengerError::Api(e)) if !matches!(e, Error::Api { .. }) => return Err(e.into()),
                    // Done, impossible, or refused: either way nothing more to try.
                    _ => {
                        self.state.leave_requests.remove(&group_id);
                        self.save(lock)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// 16 random bytes in base64url (22 characters), never starting with `-` (which command
/// lines would take for an option).
fn random_local_part() -> String {
    loop {
        let mut random = [0u8; 16];
        rand::rng().fill_bytes(&mut random);
        let encoded = URL_SAFE_NO_PAD.encode(random);
        if !encoded.starts_with('-') {
            return encoded;
        }
    }
}

/// Why none of `user`'s devices could be added.
fn why_not_added(user: &UserId, outcome: &AddOutcome) -> String {
    let of_user = |list: &[GroupMember]| -> Vec<String> {
        list.iter()
            .filter(|m| &m.user_id == user)
            .map(|m| m.device_id.to_string())
            .collect()
    };
    let refused: Vec<String> = outcome
        .refused_key_packages
        .iter()
        .filter(|(m, _)| &m.user_id == user)
        .map(|(m, why)| format!("device {}: {why}", m.device_id))
        .collect();
    let without = of_user(&outcome.without_key_packages);
    if !refused.is_empty() {
        refused.join("; ")
    } else if !without.is_empty() {
        format!(
            "no KeyPackage left for device(s) {} (they publish more when they next connect)",
            without.join(", ")
        )
    } else {
        "the user has no device that published KeyPackages (each device must have run Parley once)".to_owned()
    }
}
