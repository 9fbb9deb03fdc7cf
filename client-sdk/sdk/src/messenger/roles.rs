//! Roles, name and topic (see `protocol.md`, "Roles, names and topics").
//!
//! The group policy (`parley_specs::roles::GroupPolicy`) is a GroupContext extension that
//! every leaf supports (its type is in the group's required capabilities and in every
//! KeyPackage's and leaf's capabilities), so all members agree on it at every epoch. It
//! lists the admins and carries the name and topic encrypted under the group's metadata
//! key: 32 random bytes the creator makes, which travel to added devices inside the
//! Welcome's (encrypted) GroupInfo, never through the hub. Every client applies the same
//! rule as the hub to each commit it receives (`parley_specs::roles::check_commit`).

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use openmls::prelude::{
    Capabilities, Extension, ExtensionType, Extensions, GroupContext, MlsGroup, RequiredCapabilitiesExtension,
    UnknownExtension,
};
use std::collections::BTreeSet;
use std::time::Duration;

use openmls::prelude::StagedCommit;
use parley_specs::groups_api::{GroupMember, InboxEntry};
use parley_specs::roles::{GROUP_KEY_EXTENSION_TYPE, GroupPolicy, POLICY_EXTENSION_TYPE, check_commit};

use super::directory::{TreeLeaf, tree_leaves};
use parley_specs::{Base64Bytes, GroupId, UserId};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use super::commits::Change;
use super::error::{MessengerError, mls};
use super::store::StoreLock;
use super::{Messenger, Result};

const META_AAD: &[u8] = b"parley-group-meta-v1:";
/// The plaintext is padded to a multiple of this, so the hub learns little of its length.
const META_PADDING: usize = 64;
/// Longest name and topic, in characters.
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_TOPIC_CHARS: usize = 500;

/// The capabilities of every leaf this device makes: the group policy extension (and the
/// last-resort one for a last-resort KeyPackage).
pub(crate) fn capabilities(last_resort: bool) -> Capabilities {
    let mut extensions = vec![ExtensionType::Unknown(POLICY_EXTENSION_TYPE)];
    if last_resort {
        extensions.push(ExtensionType::LastResort);
    }
    Capabilities::new(None, None, Some(&extensions), None, None)
}

/// A group's context extensions with `policy`: the policy, and the requirement that every
/// leaf supports it.
pub(crate) fn context_extensions(policy: &GroupPolicy) -> Result<Extensions<GroupContext>> {
    Extensions::from_vec(vec![
        Extension::RequiredCapabilities(RequiredCapabilitiesExtension::new(
            &[ExtensionType::Unknown(POLICY_EXTENSION_TYPE)],
            &[],
            &[],
        )),
        Extension::Unknown(POLICY_EXTENSION_TYPE, UnknownExtension(policy.to_bytes())),
    ])
    .map_err(mls("making the group policy extension"))
}

/// The extension that carries the metadata key inside a Welcome's GroupInfo.
pub(crate) fn key_extension(key: &[u8]) -> Extension {
    Extension::Unknown(GROUP_KEY_EXTENSION_TYPE, UnknownExtension(key.to_vec()))
}

/// The group policy of `extensions`: `None` without one, `Some(None)` when unreadable.
pub(crate) fn policy_in(extensions: &Extensions<GroupContext>) -> Option<Option<GroupPolicy>> {
    extensions
        .unknown(POLICY_EXTENSION_TYPE)
        .map(|ext| GroupPolicy::from_bytes(&ext.0))
}

/// The group policy of the group's current epoch (`None` without a readable one).
pub(crate) fn policy_of(group: &MlsGroup) -> Option<GroupPolicy> {
    policy_in(group.extensions()).flatten()
}

/// A fresh metadata key.
pub(crate) fn new_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

/// The name, topic and disappearing timer of a group, as its members see them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub topic: String,
    /// The group's disappearing timer in seconds: members' messages disappear after this
    /// long unless their device sets a timer of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_secs: Option<u64>,
}

/// The longest disappearing timer: a year (and a day).
pub const MAX_TIMER_SECS: u64 = 366 * 86_400;

fn cipher(key: &[u8]) -> Result<XChaCha20Poly1305> {
    XChaCha20Poly1305::new_from_slice(key)
        .map_err(|_| MessengerError::Mls("the group's metadata key is not 32 bytes".into()))
}

fn aad(group: &GroupId) -> Vec<u8> {
    [META_AAD, group.as_str().as_bytes()].concat()
}

/// `meta` encrypted under `key`: a 24-byte nonce, then XChaCha20-Poly1305 of the JSON
/// padded with spaces to a multiple of 64 bytes, the group id in the associated data.
pub(crate) fn seal_meta(key: &[u8], group: &GroupId, meta: &GroupMeta) -> Result<Vec<u8>> {
    let mut plain = serde_json::to_vec(meta).map_err(|e| MessengerError::Mls(e.to_string()))?;
    let padded = plain.len().div_ceil(META_PADDING).max(1) * META_PADDING;
    plain.resize(padded, b' ');
    let mut nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher(key)?
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad(group),
            },
        )
        .map_err(|_| MessengerError::Mls("encrypting the group's name".into()))?;
    Ok([nonce.as_slice(), &sealed].concat())
}

/// The name and topic in `sealed`, if `key` opens it.
pub(crate) fn open_meta(key: &[u8], group: &GroupId, sealed: &[u8]) -> Option<GroupMeta> {
    let (nonce, body) = sealed.split_at_checked(24)?;
    let plain = cipher(key)
        .ok()?
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: &aad(group),
            },
        )
        .ok()?;
    serde_json::from_slice(&plain).ok()
}

/// A change to the group policy (committed by an admin).
#[derive(Debug, Clone)]
pub(crate) enum PolicyEdit {
    Name(String),
    Topic(String),
    Timer(Option<u64>),
    Promote(UserId),
    Demote(UserId),
}

/// A group's name, topic and roles, as this device sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSettings {
    /// The group.
    pub group_id: GroupId,
    /// Its name (empty when none was set, or when this device lacks the group's
    /// metadata key: see `name_known`).
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// The group's disappearing timer in seconds, set by an admin (`None`: off).
    pub timer_secs: Option<u64>,
    /// Whether this device can read the name and topic (a device that joined by itself
    /// has no metadata key until an admin changes them... see `protocol.md`).
    pub name_known: bool,
    /// The admins; empty for a group made without roles (everyone may do everything).
    pub admins: Vec<UserId>,
    /// Whether this device's user is an admin (always, in a group without roles).
    pub is_admin: bool,
}

impl Messenger {
    /// The name and topic of a group this device can read (`None` when it lacks the key).
    pub(crate) fn group_meta(&self, group_id: &GroupId, group: &MlsGroup) -> Option<GroupMeta> {
        let policy = policy_of(group)?;
        let Some(sealed) = policy.meta else {
            return Some(GroupMeta::default());
        };
        let key = self.state.group_keys.get(group_id)?;
        open_meta(key.as_slice(), group_id, sealed.as_slice())
    }

    pub(crate) fn settings_of(&self, group_id: &GroupId, group: &MlsGroup) -> GroupSettings {
        let policy = policy_of(group);
        let meta = self.group_meta(group_id, group);
        let admins = policy.as_ref().map(|p| p.admins.clone()).unwrap_or_default();
        GroupSettings {
            group_id: group_id.clone(),
            name_known: meta.is_some(),
            name: meta.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
            topic: meta.as_ref().map(|m| m.topic.clone()).unwrap_or_default(),
            timer_secs: meta.and_then(|m| m.timer_secs),
            is_admin: policy.is_none() || admins.contains(&self.state.user_id),
            admins,
        }
    }

    /// The policy after `edit`, from `policy` (the group's current one); `None` when the
    /// group has no roles.
    pub(crate) fn edited_policy(
        &self,
        group_id: &GroupId,
        group: &MlsGroup,
        policy: &GroupPolicy,
        edit: &PolicyEdit,
    ) -> Result<GroupPolicy> {
        let mut next = policy.clone();
        match edit {
            PolicyEdit::Name(_) | PolicyEdit::Topic(_) | PolicyEdit::Timer(_) => {
                let mut meta = self.group_meta(group_id, group).unwrap_or_default();
                match edit {
                    PolicyEdit::Name(name) => meta.name = name.clone(),
                    PolicyEdit::Topic(topic) => meta.topic = topic.clone(),
                    PolicyEdit::Timer(secs) => meta.timer_secs = *secs,
                    _ => {}
                }
                let key = self
                    .state
                    .group_keys
                    .get(group_id)
                    .ok_or_else(|| MessengerError::Mls("this device lacks the group's metadata key".into()))?;
                next.meta = Some(seal_meta(key.as_slice(), group_id, &meta)?.into());
            }
            PolicyEdit::Promote(user) => {
                if !next.admins.contains(user) {
                    next.admins.push(user.clone());
                }
            }
            PolicyEdit::Demote(user) => next.admins.retain(|u| u != user),
        }
        Ok(next)
    }

    /// The name, topic and roles of a group.
    pub async fn group_settings(&mut self, group_id: &GroupId) -> Result<GroupSettings> {
        let lock = self.begin().await?;
        let result = self
            .active_group(group_id)
            .map(|group| self.settings_of(group_id, &group));
        self.end(lock, result)
    }

    /// Renames a group (admins only; the hub and every member refuse it from others).
    pub async fn rename_group(&mut self, group_id: &GroupId, name: &str) -> Result<GroupSettings> {
        let name = checked_text(name, MAX_NAME_CHARS, "name")?;
        self.edit_policy(group_id, PolicyEdit::Name(name)).await
    }

    /// Sets a group's topic (admins only).
    pub async fn set_topic(&mut self, group_id: &GroupId, topic: &str) -> Result<GroupSettings> {
        let topic = checked_text(topic, MAX_TOPIC_CHARS, "topic")?;
        self.edit_policy(group_id, PolicyEdit::Topic(topic)).await
    }

    /// Sets the group's disappearing timer for every member (admins only): later
    /// messages disappear after `timer` (whole seconds, at most [`MAX_TIMER_SECS`]) unless
    /// the sending device set its own ([`Messenger::set_timer`]). `None` turns it off.
    pub async fn set_group_timer(&mut self, group_id: &GroupId, timer: Option<Duration>) -> Result<GroupSettings> {
        let secs = timer.map(|t| t.as_secs().max(1));
        if secs.is_some_and(|s| s > MAX_TIMER_SECS) {
            return Err(MessengerError::InvalidInput(format!(
                "a disappearing timer is at most {} days",
                MAX_TIMER_SECS / 86_400
            )));
        }
        self.edit_policy(group_id, PolicyEdit::Timer(secs)).await
    }

    /// The timer a message sent now without its own expiry gets: this device's for the
    /// conversation, else the group's (an admin's value outside 1 s to a year is ignored).
    pub(crate) fn conversation_timer(&self, group_id: &GroupId) -> Option<Duration> {
        let own = self.state.conversations.get(group_id).and_then(|c| c.timer_secs);
        own.or_else(|| {
            let group = self.load_group(group_id).ok().flatten()?;
            self.group_meta(group_id, &group)?
                .timer_secs
                .filter(|secs| (1..=MAX_TIMER_SECS).contains(secs))
        })
        .map(Duration::from_secs)
    }

    /// Makes `user` (a member) an admin (admins only).
    pub async fn promote(&mut self, group_id: &GroupId, user: &UserId) -> Result<GroupSettings> {
        self.edit_policy(group_id, PolicyEdit::Promote(user.clone())).await
    }

    /// Takes the admin role from `user` (admins only; the last admin cannot be demoted,
    /// but may leave: the role then passes on).
    pub async fn demote(&mut self, group_id: &GroupId, user: &UserId) -> Result<GroupSettings> {
        self.edit_policy(group_id, PolicyEdit::Demote(user.clone())).await
    }

    async fn edit_policy(&mut self, group_id: &GroupId, edit: PolicyEdit) -> Result<GroupSettings> {
        let lock = self.begin().await?;
        let result = self.edit_policy_locked(&lock, group_id, edit).await;
        self.end(lock, result)
    }

    async fn edit_policy_locked(
        &mut self,
        lock: &StoreLock,
        group_id: &GroupId,
        edit: PolicyEdit,
    ) -> Result<GroupSettings> {
        self.prepare_online(lock).await?;
        let group = self.active_group(group_id)?;
        let Some(policy) = policy_of(&group) else {
            return Err(MessengerError::NoRoles(group_id.clone()));
        };
        match &edit {
            PolicyEdit::Promote(user) if !super::groups::members_of(&group).iter().any(|m| &m.user_id == user) => {
                return Err(MessengerError::NotInGroup {
                    user: user.clone(),
                    group: group_id.clone(),
                });
            }
            PolicyEdit::Demote(user) if policy.admins == [user.clone()] => {
                return Err(MessengerError::LastAdmin(group_id.clone()));
            }
            _ => {}
        }
        self.commit_change_past_revoked(lock, group_id, || Change::Policy(edit.clone()))
            .await?;
        let group = self.active_group(group_id)?;
        Ok(self.settings_of(group_id, &group))
    }

    /// Whether a member's commit (`staged`, by `sender`, leaving the tree `after`) keeps
    /// to the group policy, by the rule the hub applies (`parley_specs::roles`). A member
    /// who is not an admin may remove another user's leaves when that user announced
    /// leaving (a signed `leave` message this device saw) or when the device key directory
    /// no longer vouches for the leaf (a revoked device).
    pub(crate) async fn policy_allows(
        &mut self,
        entry: &InboxEntry,
        group: &MlsGroup,
        sender: &GroupMember,
        staged: &StagedCommit,
        after: &[TreeLeaf],
    ) -> Result<std::result::Result<(), String>> {
        let Some(before) = policy_in(group.extensions()) else {
            return Ok(Ok(()));
        };
        let Some(before) = before else {
            return Ok(Ok(()));
        };
        let policy_after = policy_in(staged.group_context().extensions());
        let before_leaves = tree_leaves(group.members());
        let indexed = |leaves: &[TreeLeaf]| -> Vec<(u32, GroupMember)> {
            leaves.iter().filter_map(|l| l.device().map(|d| (l.index, d))).collect()
        };
        let (leaves_before, leaves_after) = (indexed(&before_leaves), indexed(after));
        // Removed leaves of other users whom no signed leave names: removable by a member
        // only if the directory no longer vouches for them.
        let announced = self
            .state
            .announced_leaves
            .get(&entry.group_id)
            .cloned()
            .unwrap_or_default();
        let mut unvouched = BTreeSet::new();
        if !before.is_admin(&sender.user_id) {
            let gone: Vec<TreeLeaf> = before_leaves
                .iter()
                .filter(|l| !after.iter().any(|a| a.index == l.index && a.identity == l.identity))
                .filter(|l| {
                    l.device()
                        .is_some_and(|d| d.user_id != sender.user_id && !announced.contains(&d.user_id))
                })
                .cloned()
                .collect();
            if !gone.is_empty() {
                for refused in self.check_leaves(&gone, &before_leaves).await? {
                    unvouched.insert(refused.leaf_index);
                }
            }
        }
        let may_remove = |m: &GroupMember| {
            announced.contains(&m.user_id) || leaves_before.iter().any(|(i, d)| d == m && unvouched.contains(i))
        };
        Ok(check_commit(
            Some(&before),
            policy_after.as_ref().map(Option::as_ref),
            &sender.user_id,
            &leaves_before,
            &leaves_after,
            &may_remove,
        )
        .map_err(|v| v.to_string()))
    }

    /// Keeps the metadata key a Welcome carried (inside its encrypted GroupInfo).
    pub(crate) fn keep_group_key(&mut self, group_id: &GroupId, key: Option<Vec<u8>>) {
        if let Some(key) = key.filter(|k| k.len() == 32) {
            self.state.group_keys.insert(group_id.clone(), Base64Bytes(key));
        }
    }
}

/// A name or topic: trimmed, without control characters, at most `max` characters.
fn checked_text(text: &str, max: usize, what: &str) -> Result<String> {
    let text = text.trim();
    if text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(MessengerError::InvalidInput(format!(
            "a group {what} has at most {max} characters and no control characters"
        )));
    }
    Ok(text.to_owned())
}
