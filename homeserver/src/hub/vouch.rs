//! The hub's side of the device key directory: every leaf a commit adds or changes must
//! name a device whose own homeserver vouches for exactly the signature key the leaf
//! carries, and a device has one leaf at most.
//!
//! "Adds or changes" is decided by comparing every leaf before and after the commit by
//! index: a leaf that is new, or whose (identity, signature key) differs, is checked —
//! Adds, the committer's update path (which may carry another credential), anything else
//! a commit can do. Leaves that only changed their encryption key (self-updates) are not.
//!
//! This server's users are checked against the store, in the commit's transaction. Other
//! servers' users are checked against the lists cached in `remote::device_keys`; a leaf
//! the cached list does not vouch for is not refused at once: the commit's transaction
//! is abandoned, the lists of those users are fetched again (outside any lock), and the
//! commit is decided anew with what was fetched, which is then final for this request.
//! So the group's row lock is never held across a network call, and a warm cache (the
//! usual case) costs nothing but a map lookup.

use std::collections::{BTreeMap, BTreeSet};

use parley_federation::device_keys::VerifiedDeviceKeys;
use parley_specs::groups_api::GroupMember;
use parley_specs::{ErrorCode, ServerName, UserId};

use super::mls::Leaf;
use crate::error::ApiError;
use crate::remote;
use crate::state::AppState;
use crate::store::{self, Db};

/// Device lists fetched from other servers while deciding one commit: they decide it.
/// `None`: the user's server has no such user.
#[derive(Default)]
pub struct Fetched(BTreeMap<UserId, Option<VerifiedDeviceKeys>>);

impl Fetched {
    pub fn has(&self, user: &UserId) -> bool {
        self.0.contains_key(user)
    }
}

/// What the directory says about a commit's new and changed leaves.
pub enum Vouching {
    Vouched,
    /// These users of other servers have leaves their cached lists do not vouch for:
    /// fetch their lists and decide again.
    Fetch(BTreeSet<UserId>),
}

/// The leaves of `after` that `before` does not have, with the same identity and
/// signature key, at the same index.
pub fn changed<'a>(before: &[Leaf], after: &'a [Leaf]) -> Vec<&'a Leaf> {
    let before: BTreeMap<u32, &Leaf> = before.iter().map(|l| (l.index, l)).collect();
    after
        .iter()
        .filter(|leaf| {
            before
                .get(&leaf.index)
                .is_none_or(|old| old.member != leaf.member || old.signature_key != leaf.signature_key)
        })
        .collect()
}

/// One device, one leaf: a new or changed leaf may not name a device another leaf names.
pub fn one_leaf_per_device(changed: &[&Leaf], after: &[Leaf]) -> Result<(), ApiError> {
    for leaf in changed {
        if let Some(other) = after
            .iter()
            .find(|other| other.index != leaf.index && other.member == leaf.member)
        {
            return Err(ApiError::new(
                ErrorCode::DuplicateDevice,
                format!(
                    "leaves {} and {} would both be device {}/{}; a device has one leaf",
                    other.index.min(leaf.index),
                    other.index.max(leaf.index),
                    leaf.member.user_id,
                    leaf.member.device_id
                ),
            ));
        }
    }
    Ok(())
}

fn not_vouched(leaf: &Leaf, why: &str) -> ApiError {
    let GroupMember { user_id, device_id } = &leaf.member;
    ApiError::new(
        ErrorCode::DeviceNotVouched,
        format!(
            "leaf {} names device {user_id}/{device_id}, but {} does not vouch for its signature key: {why}",
            leaf.index,
            user_id.server_name()
        ),
    )
}

/// Checks every changed leaf against the directory: this server's store (through `db`,
/// the commit's transaction) for its users, the cached or just `fetched` lists for
/// others. Refuses with `device_not_vouched`, or asks for lists to fetch.
pub async fn check(state: &AppState, db: &impl Db, changed: &[&Leaf], fetched: &Fetched) -> Result<Vouching, ApiError> {
    let own = &state.config.server_name;
    let (local, others): (Vec<&Leaf>, Vec<&Leaf>) = changed
        .iter()
        .partition(|leaf| leaf.member.user_id.server_name() == *own);
    check_local(db, &local).await?;

    let mut to_fetch = BTreeSet::new();
    for leaf in others {
        let user = &leaf.member.user_id;
        if let Some(list) = fetched.0.get(user) {
            let Some(list) = list else {
                return Err(not_vouched(leaf, "it has no such user"));
            };
            match list.device_keys().key_of(&leaf.member.device_id) {
                Some(key) if key == leaf.signature_key.as_slice() => {}
                Some(_) => return Err(not_vouched(leaf, "the device has another key")),
                None => return Err(not_vouched(leaf, "it lists no such device with a key")),
            }
            continue;
        }
        let cached = state
            .remote
            .as_deref()
            .is_some_and(|r| r.device_keys.vouches(user, &leaf.member.device_id, &leaf.signature_key));
        if !cached {
            to_fetch.insert(user.clone());
        }
    }
    Ok(if to_fetch.is_empty() {
        Vouching::Vouched
    } else {
        Vouching::Fetch(to_fetch)
    })
}

async fn check_local(db: &impl Db, leaves: &[&Leaf]) -> Result<(), ApiError> {
    if leaves.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = leaves.iter().map(|l| l.member.device_id.as_str()).collect();
    let rows = store::devices::keys_of(db, &ids).await?;
    for leaf in leaves {
        let row = rows.iter().find(|r| r.device_id == leaf.member.device_id.as_str());
        match row {
            Some(row) if row.localpart == leaf.member.user_id.localpart().as_str() => match &row.signature_key {
                Some(key) if *key == leaf.signature_key => {}
                Some(_) => return Err(not_vouched(leaf, "the device has another key")),
                None => return Err(not_vouched(leaf, "the device has not published a key yet")),
            },
            _ => return Err(not_vouched(leaf, "the user has no such device")),
        }
    }
    Ok(())
}

/// Fetches the lists of `users` from their servers, all at once, into `fetched`. A
/// server that cannot be reached (or answers nothing it signed) refuses the commit:
/// nobody may join in the name of a server that cannot vouch for them.
pub async fn fetch(state: &AppState, users: BTreeSet<UserId>, fetched: &mut Fetched) -> Result<(), ApiError> {
    let Some(remote) = state.remote.as_deref() else {
        // Leaves of other servers were refused before (`server_not_allowed`).
        return Err(ApiError::internal(
            "vouching for leaves",
            "other servers' users in a group on a server without federation",
        ));
    };
    let lookups = users.into_iter().map(|user| async move {
        let answer = remote::device_keys::fetch(remote, &user).await;
        (user, answer)
    });
    for (user, answer) in futures_util::future::join_all(lookups).await {
        match answer {
            Ok(list) => {
                fetched.0.insert(user, Some(list));
            }
            Err(e) if e.code == ErrorCode::NotFound => {
                fetched.0.insert(user, None);
            }
            Err(e) => {
                let server: ServerName = user.server_name();
                return Err(ApiError::new(
                    e.code,
                    format!(
                        "the commit has leaves of {user}, but {server} could not be asked to vouch for them: {}",
                        e.message
                    ),
                ));
            }
        }
    }
    Ok(())
}
