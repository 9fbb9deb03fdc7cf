//! Roles: the hub applies the group policy (`parley_specs::roles`) to every member
//! commit. The policy is an application-defined GroupContext extension, so the hub reads
//! it from its `PublicGroup` before and after the commit; it never sees the group's name
//! or topic (encrypted by the clients) but does see that they changed.

use std::collections::BTreeSet;

use openmls::prelude::PublicGroup;
use parley_specs::groups_api::GroupMember;
use parley_specs::roles::{GroupPolicy, POLICY_EXTENSION_TYPE, PolicyViolation, check_commit};
use parley_specs::{ErrorCode, UserId};

use super::mls::Leaf;
use crate::error::ApiError;

/// The group policy of `group`'s current epoch: `None` without the extension, `Some(None)`
/// when it does not parse.
pub fn policy(group: &PublicGroup) -> Option<Option<GroupPolicy>> {
    group
        .group_context()
        .extensions()
        .unknown(POLICY_EXTENSION_TYPE)
        .map(|ext| GroupPolicy::from_bytes(&ext.0))
}

fn indexed(leaves: &[Leaf]) -> Vec<(u32, GroupMember)> {
    leaves.iter().map(|l| (l.index, l.member.clone())).collect()
}

/// Refuses a member's commit that the policy forbids: `403 not_group_admin` for what only
/// admins may do, `400 invalid_mls_message` for a malformed policy. A non-admin may
/// remove, besides their own user's leaves, those of users who left (`leaving`) and of
/// revoked devices of this server (`revoked`).
pub fn check(
    before: Option<Option<GroupPolicy>>,
    after: Option<Option<GroupPolicy>>,
    committer: &UserId,
    leaves_before: &[Leaf],
    leaves_after: &[Leaf],
    leaving: &[String],
    revoked: &[GroupMember],
) -> Result<(), ApiError> {
    let before = match before {
        None => return Ok(()),
        // A policy the hub cannot read was refused when it was set; nothing to hold to.
        Some(None) => return Ok(()),
        Some(Some(p)) => p,
    };
    let leaving: BTreeSet<&str> = leaving.iter().map(String::as_str).collect();
    let may_remove = |m: &GroupMember| leaving.contains(m.user_id.as_str()) || revoked.contains(m);
    check_commit(
        Some(&before),
        after.as_ref().map(Option::as_ref),
        committer,
        &indexed(leaves_before),
        &indexed(leaves_after),
        &may_remove,
    )
    .map_err(|violation| match violation {
        PolicyViolation::NotAdmin(why) => ApiError::new(ErrorCode::NotGroupAdmin, why),
        PolicyViolation::Invalid(why) => ApiError::new(ErrorCode::InvalidMlsMessage, why),
    })
}

/// A new group's policy, when it has one, must name its creator as the one admin.
pub fn check_new(group: &PublicGroup, creator: &UserId) -> Result<(), ApiError> {
    match policy(group) {
        None => Ok(()),
        Some(Some(p)) if p.admins == [creator.clone()] => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::InvalidMlsMessage,
            "a new group's policy must name its creator as its one admin",
        )),
    }
}
