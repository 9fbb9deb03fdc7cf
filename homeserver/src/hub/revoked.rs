//! Revoked devices still in a group hubbed here.
//!
//! When a device of this server is revoked (deleted by its owner, logged out, by a
//! password change or reset, or by an administrator), the revoking transaction marks
//! every group hubbed here where it has a leaf (`groups.revoked_members`, see
//! `devices::revoke_in`). A revoked device can no longer read its inbox, but its leaf
//! still holds the group's secrets: until a commit removes it, whatever is encrypted in
//! the group's epoch is readable with its keys. So, while a group is marked, the hub
//! refuses every application message (`hub::writer`, which reads the mark with the group
//! row it locks anyway) and every commit that keeps such a leaf, with `member_revoked`
//! naming the devices; clients answer by committing their removal and sending again. The
//! first accepted commit that removes them all clears the mark, and from then on the hub
//! takes application messages only for the epoch that commit starts or later
//! (`groups.min_epoch`; older ones get `wrong_epoch`), so no member encrypts for an
//! epoch the revoked devices can read, even within `past_epochs_accepted`.
//!
//! Devices of other servers in groups hubbed here are not marked: their owners' devices
//! remove them (a hub learns of another server's revocation only through the device
//! lists it fetches when vouching).

use std::collections::BTreeSet;

use parley_specs::groups_api::GroupMember;
use parley_specs::{ErrorCode, GroupId};

use crate::error::ApiError;
use crate::store::groups::LockedGroup;
use crate::store::{self, Db};

/// The refusal of a submit to a group that still has leaves of `revoked` devices.
pub fn refusal(group: &GroupId, revoked: &[GroupMember]) -> ApiError {
    let names: Vec<String> = revoked
        .iter()
        .map(|m| format!("{}/{}", m.user_id, m.device_id))
        .collect();
    ApiError::new(
        ErrorCode::MemberRevoked,
        format!(
            "{group} still has leaves of revoked devices ({}); commit their removal first",
            names.join(", ")
        ),
    )
}

/// For a commit about to be accepted: refuses it when it leaves a revoked device in the
/// group (`after`: the member devices after it), and clears the group's mark when none
/// is left.
pub async fn check_commit(
    db: &impl Db,
    group: &GroupId,
    locked: &LockedGroup,
    after: &BTreeSet<GroupMember>,
) -> Result<(), ApiError> {
    if locked.revoked.is_empty() {
        return Ok(());
    }
    let left: Vec<GroupMember> = locked.revoked.iter().filter(|m| after.contains(m)).cloned().collect();
    if !left.is_empty() {
        return Err(refusal(group, &left));
    }
    // Nothing more for an epoch the removed devices can read.
    store::groups::clear_revoked(db, group, locked.epoch + 1).await?;
    Ok(())
}
