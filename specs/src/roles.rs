//! Roles in a group: the group policy, an application-defined MLS GroupContext extension
//! that every member's leaf must support, and the rule both the hub and every client
//! apply to each commit (see `protocol.md`, "Roles, names and topics").
//!
//! The extension's data is UTF-8 JSON, `{"v": 1, "admins": [user ids], "meta": "<base64>"}`:
//! the users who are admins (the group's creator first) and, optionally, the group's name
//! and topic encrypted by the clients under a key the hub never sees (`meta`, opaque here).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::Base64Bytes;
use crate::groups_api::GroupMember;
use crate::ids::UserId;

/// The GroupContext extension type of the group policy (RFC 9420 private-use range).
pub const POLICY_EXTENSION_TYPE: u16 = 0xF7A0;
/// The GroupInfo extension, inside a Welcome only, that carries the group's metadata key
/// to the devices it adds (32 bytes). Encrypted to them by MLS: the hub never sees it.
pub const GROUP_KEY_EXTENSION_TYPE: u16 = 0xF7A1;

/// The group policy: who the admins are, and the encrypted name and topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPolicy {
    /// The format's version, 1.
    pub v: u8,
    /// The admins, in the order they became admins.
    pub admins: Vec<UserId>,
    /// The name and topic, encrypted by the clients (opaque to the hub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Base64Bytes>,
}

impl GroupPolicy {
    /// A new group's policy: its creator is the one admin.
    pub fn new(creator: UserId) -> Self {
        Self {
            v: 1,
            admins: vec![creator],
            meta: None,
        }
    }

    /// The extension's data.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the extension's data; `None` when it is not a version-1 policy.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes).ok().filter(|p| p.v == 1)
    }

    pub fn is_admin(&self, user: &UserId) -> bool {
        self.admins.contains(user)
    }
}

/// The admins after a commit that a non-admin may make: those of `before` who still have
/// a leaf, or, when none does, the user of the lowest-indexed remaining leaf (the
/// longest-standing member: MLS fills the leftmost free leaf, so a lower index was
/// taken earlier, except after removals).
pub fn carried_admins(before: &[UserId], leaves_after: &[(u32, GroupMember)]) -> Vec<UserId> {
    let users: BTreeSet<&UserId> = leaves_after.iter().map(|(_, m)| &m.user_id).collect();
    let kept: Vec<UserId> = before.iter().filter(|u| users.contains(u)).cloned().collect();
    if !kept.is_empty() {
        return kept;
    }
    leaves_after
        .iter()
        .min_by_key(|(index, _)| *index)
        .map(|(_, m)| vec![m.user_id.clone()])
        .unwrap_or_default()
}

/// Why a commit breaks the group policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyViolation {
    /// A member who is not an admin did what only admins may (`not_group_admin`).
    NotAdmin(String),
    /// The policy after the commit is malformed (`invalid_mls_message`).
    Invalid(String),
}

impl std::fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAdmin(why) | Self::Invalid(why) => f.write_str(why),
        }
    }
}

/// The rule of every commit of a member (external joins have their own rule), applied by
/// the hub and by every client alike. `before`/`after`: the group policy of the epochs
/// before and after the commit (`None`: no policy extension, or one that does not parse:
/// `Some(None)`); leaves as (leaf index, device). `may_remove` says whether a member who
/// is not an admin may remove another user's leaf (a user who announced leaving, a
/// device whose homeserver no longer vouches for it).
///
/// - Without a policy before, nothing is checked (a group made without roles).
/// - The policy may not disappear or become unreadable, and afterwards its admins are
///   users with a leaf, at least one while the group has members.
/// - An admin may do anything else.
/// - A member who is not an admin may add devices of their own user only, remove leaves
///   of their own user or those `may_remove` allows, not change `meta`, and must leave
///   the admins exactly as `carried_admins` says.
pub fn check_commit(
    before: Option<&GroupPolicy>,
    after: Option<Option<&GroupPolicy>>,
    committer: &UserId,
    leaves_before: &[(u32, GroupMember)],
    leaves_after: &[(u32, GroupMember)],
    may_remove: &dyn Fn(&GroupMember) -> bool,
) -> Result<(), PolicyViolation> {
    let Some(before) = before else {
        return Ok(());
    };
    let is_admin = before.is_admin(committer);
    let after = match after {
        None => {
            return Err(if is_admin {
                PolicyViolation::Invalid("the commit removes the group policy extension".into())
            } else {
                PolicyViolation::NotAdmin(format!("{committer} is not an admin and the commit removes the roles"))
            });
        }
        Some(None) => {
            return Err(PolicyViolation::Invalid(
                "the group policy extension does not parse".into(),
            ));
        }
        Some(Some(after)) => after,
    };
    let users_after: BTreeSet<&UserId> = leaves_after.iter().map(|(_, m)| &m.user_id).collect();
    let distinct: BTreeSet<&UserId> = after.admins.iter().collect();
    if distinct.len() != after.admins.len() {
        return Err(PolicyViolation::Invalid("the group policy names an admin twice".into()));
    }
    if let Some(gone) = after.admins.iter().find(|u| !users_after.contains(u)) {
        return Err(PolicyViolation::Invalid(format!(
            "the group policy names {gone} admin, who has no leaf in the group"
        )));
    }
    if after.admins.is_empty() && !leaves_after.is_empty() {
        return Err(PolicyViolation::Invalid("the group would have no admin".into()));
    }
    if is_admin {
        return Ok(());
    }
    let not_admin =
        |what: String| PolicyViolation::NotAdmin(format!("{committer} is not an admin of the group and {what}"));
    for (index, member) in leaves_before {
        let kept = leaves_after.iter().any(|(i, m)| i == index && m == member);
        if !kept && member.user_id != *committer && !may_remove(member) {
            return Err(not_admin(format!(
                "the commit removes {}/{}",
                member.user_id, member.device_id
            )));
        }
    }
    for (index, member) in leaves_after {
        let existed = leaves_before.iter().any(|(i, m)| i == index && m == member);
        if !existed && member.user_id != *committer {
            return Err(not_admin(format!(
                "the commit adds {}/{}",
                member.user_id, member.device_id
            )));
        }
    }
    if after.meta != before.meta {
        return Err(not_admin("the commit changes the group's name or topic".into()));
    }
    if after.admins != carried_admins(&before.admins, leaves_after) {
        return Err(not_admin("the commit changes the roles".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DeviceId;

    fn leaf(index: u32, user: &str, device: &str) -> (u32, GroupMember) {
        (
            index,
            GroupMember {
                user_id: UserId::parse(user).expect("user"),
                device_id: DeviceId::parse(device).expect("device"),
            },
        )
    }

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("user")
    }

    #[test]
    fn the_rule() {
        let alice = user("alice@a.example");
        let bob = user("bob@b.example");
        let before = GroupPolicy::new(alice.clone());
        let two = [leaf(0, "alice@a.example", "A1"), leaf(1, "bob@b.example", "B1")];
        let three = [
            leaf(0, "alice@a.example", "A1"),
            leaf(1, "bob@b.example", "B1"),
            leaf(2, "carol@c.example", "C1"),
        ];
        let never = |_: &GroupMember| false;
        // An admin adds; a member may not.
        assert_eq!(
            check_commit(Some(&before), Some(Some(&before)), &alice, &two, &three, &never),
            Ok(())
        );
        assert!(matches!(
            check_commit(Some(&before), Some(Some(&before)), &bob, &two, &three, &never),
            Err(PolicyViolation::NotAdmin(_))
        ));
        // A member adds their own device.
        let own = [
            leaf(0, "alice@a.example", "A1"),
            leaf(1, "bob@b.example", "B1"),
            leaf(2, "bob@b.example", "B2"),
        ];
        assert_eq!(
            check_commit(Some(&before), Some(Some(&before)), &bob, &two, &own, &never),
            Ok(())
        );
        // The last admin removed: the role passes to the lowest leaf.
        let without_alice = [leaf(1, "bob@b.example", "B1"), leaf(2, "carol@c.example", "C1")];
        let may = |m: &GroupMember| m.user_id == alice;
        let handed = GroupPolicy {
            admins: vec![bob.clone()],
            ..before.clone()
        };
        assert_eq!(
            check_commit(Some(&before), Some(Some(&handed)), &bob, &three, &without_alice, &may),
            Ok(())
        );
        assert!(check_commit(Some(&before), Some(Some(&before)), &bob, &three, &without_alice, &may).is_err());
        // A member may not promote themselves, nor rename.
        let promoted = GroupPolicy {
            admins: vec![alice.clone(), bob.clone()],
            ..before.clone()
        };
        assert!(check_commit(Some(&before), Some(Some(&promoted)), &bob, &two, &two, &never).is_err());
        let renamed = GroupPolicy {
            meta: Some(vec![1, 2, 3].into()),
            ..before.clone()
        };
        assert!(check_commit(Some(&before), Some(Some(&renamed)), &bob, &two, &two, &never).is_err());
        assert_eq!(
            check_commit(Some(&before), Some(Some(&renamed)), &alice, &two, &two, &never),
            Ok(())
        );
        // Without a policy before, anything goes; the policy cannot be dropped.
        assert_eq!(check_commit(None, None, &bob, &two, &three, &never), Ok(()));
        assert!(check_commit(Some(&before), None, &alice, &two, &two, &never).is_err());
        assert_eq!(GroupPolicy::from_bytes(&before.to_bytes()), Some(before));
    }
}
