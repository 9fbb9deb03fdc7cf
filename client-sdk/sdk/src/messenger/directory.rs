//! The client's side of the device key directory: every leaf that enters this device's
//! view of a group (each leaf of a group joined from a Welcome, each leaf a commit adds
//! or changes, each KeyPackage this device adds) must name a device whose own homeserver
//! vouches for exactly the leaf's signature key, and a device has one leaf at most. So a
//! hub (or a homeserver relaying for it) that accepts a forged leaf cannot slip it in:
//! this device refuses the Welcome or the commit and tells the user
//! ([`Event::LeafRefused`](super::Event::LeafRefused)).
//!
//! Device lists come from this device's homeserver (`Client::user_devices`), which serves
//! its own users' lists signed by itself and relays other servers' lists as their servers
//! signed them, with the public key that signed. The signature is checked here with the
//! signing server's key, which the store pins per server on first use: a list signed by
//! another key later is refused ([`DirectoryError::ServerKeyChanged`]) until the user
//! accepts the new key ([`Messenger::trust_server_key`]). Lists are cached for the life of
//! the process (a device's key never changes once bound); a leaf the cached list does not
//! vouch for makes one fetch of that user's list per check.
//!
//! What this does not stop: a homeserver that lies about its own users (it signs their
//! lists), a homeserver that relays another server's list under a forged key to a device
//! that never saw that server's real key (trust on first use), and the replay, within a
//! day, of an older list that still names a since-revoked device (older lists are refused).
//! See `specs/threat-model.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use openmls::prelude::{LeafNode, Member, Sender, StagedCommit};
use parley_federation::KeyId;
use parley_federation::device_keys::verify;
use parley_federation::key_document::{PublishedKey, VerifiedKeys};
use parley_federation::server_key::decode_public_key;
use parley_specs::groups_api::GroupMember;
use parley_specs::keys_api::{ServerVerifyKey, SignedDeviceKeys, UserDeviceKeys, UserDevices};
use parley_specs::mls::parse_credential_identity;
use parley_specs::{ErrorCode, ServerName, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::MessengerError;
use super::transparency::Transparent;
use super::{Messenger, Result};

/// A cached list is relied on this long; after that it is fetched again before use.
const MAX_AGE: Duration = Duration::from_secs(600);
/// A list signed longer ago than this is refused: an honest homeserver relays lists it
/// fetched minutes ago at most (and signs its own users' lists when asked), so an older
/// one is a replay (perhaps naming a device deleted since). Generous, for clocks that are off.
const MAX_LIST_AGE_MS: i64 = 24 * 3_600_000;

/// How long a list naming devices not yet published in their server's key directory is
/// fetched again, waiting for the next epoch (servers publish every few seconds).
const PUBLICATION_WAIT: Duration = Duration::from_secs(20);
const PUBLICATION_POLL: Duration = Duration::from_millis(250);

/// One leaf of a group tree, as the directory checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeLeaf {
    /// Its index in the tree.
    pub(crate) index: u32,
    /// The credential's identity (`user_id/device_id` for a Parley device).
    pub(crate) identity: Vec<u8>,
    /// The leaf's signature public key.
    pub(crate) signature_key: Vec<u8>,
}

impl TreeLeaf {
    /// The leaf of a group member (from `MlsGroup::members`, `StagedWelcome::members`,
    /// `PublicGroup::members`).
    pub(crate) fn of_member(member: &Member) -> Self {
        Self {
            index: member.index.u32(),
            identity: member.credential.serialized_content().to_vec(),
            signature_key: member.signature_key.clone(),
        }
    }

    /// The leaf a tree would hold at `index` with `node`.
    pub(crate) fn of_leaf_node(index: u32, node: &LeafNode) -> Self {
        Self {
            index,
            identity: node.credential().serialized_content().to_vec(),
            signature_key: node.signature_key().as_slice().to_vec(),
        }
    }

    /// The device the leaf names, if it names one.
    pub(crate) fn device(&self) -> Option<GroupMember> {
        parse_credential_identity(&self.identity).map(|(user_id, device_id)| GroupMember { user_id, device_id })
    }
}

/// A leaf this device refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedLeaf {
    /// Its index in the group's tree.
    pub leaf_index: u32,
    /// The device its credential claims to be (absent when it names no Parley device).
    pub claims: Option<GroupMember>,
    /// The credential's identity as written, for a leaf that names no device.
    pub identity: String,
    /// Its signature public key, hex.
    pub signature_key: String,
    /// Why it was refused.
    pub reason: String,
}

/// A server key pinned in the store: the first key seen signing the server's lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PinnedKey {
    pub(crate) key_id: String,
    /// Base64 of the Ed25519 public key.
    pub(crate) key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) pinned_at: OffsetDateTime,
}

/// Why a user's device list could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The list came with another server key than the one this device pinned for the server.
    #[error(
        "{server} signed the device list with key {key_id}, but this device knows {server} by key {pinned_id}: \
         either {server} changed its key, or your homeserver is relaying a forged list; until you accept the \
         new key (`trust_server_key`), leaves of {server}'s users are refused"
    )]
    ServerKeyChanged {
        /// The user's server.
        server: ServerName,
        /// The key the list came with.
        key_id: String,
        /// The key pinned for the server.
        pinned_id: String,
    },
    /// The list is unsigned, signed by the wrong server, or its signature does not verify.
    #[error("the device list of {user} does not verify: {reason}")]
    BadList {
        /// The user.
        user: UserId,
        /// Why.
        reason: String,
    },
    /// The server key relayed with a list or root is malformed.
    #[error("the key {server} signs with, as relayed, is unusable: {reason}")]
    BadServerKey {
        /// The server.
        server: ServerName,
        /// Why.
        reason: String,
    },
    /// The list's key transparency proof is missing a piece, does not verify, or is
    /// against a root older than one seen before.
    #[error("the device list of {user} is not proved by its server's key directory: {reason}")]
    NotTransparent {
        /// The user.
        user: UserId,
        /// Why.
        reason: String,
    },
    /// The user's server signed one root of its key directory for the lookup and another
    /// for the same epoch to this device's own server, which audited it: it shows
    /// different logs to different parties.
    #[error(
        "{server} showed two different key directories for epoch {epoch} (a split view): the one proving this \
         device list and the one your server audited; its users' devices are refused"
    )]
    SplitView {
        /// The server.
        server: ServerName,
        /// The epoch.
        epoch: u64,
    },
    /// The user's server says there is no such user.
    #[error("{user} does not exist on {}", user.server_name())]
    NoSuchUser {
        /// The user.
        user: UserId,
    },
    /// The homeserver refused the lookup for good (e.g. it does not federate with the
    /// user's server).
    #[error("cannot look up the devices of {user}: {reason}")]
    Refused {
        /// The user.
        user: UserId,
        /// The homeserver's answer.
        reason: String,
    },
}

/// The device lists this process looked up, and how many lookups it made.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    lists: HashMap<UserId, Cached>,
    lookups: u64,
}

#[derive(Debug)]
struct Cached {
    /// The list, or why it cannot be used.
    list: std::result::Result<UserDeviceKeys, DirectoryError>,
    /// The epoch its devices were published in (see `transparency.rs`).
    since_epoch: Option<u64>,
    fetched_at: Instant,
}

impl Cached {
    fn fresh(&self) -> bool {
        self.fetched_at.elapsed() < MAX_AGE
    }

    /// Whether the list names `device` with exactly `key`.
    fn vouches(&self, device: &GroupMember, key: &[u8]) -> bool {
        self.fresh()
            && self
                .list
                .as_ref()
                .is_ok_and(|l| l.key_of(&device.device_id) == Some(key))
    }
}

impl Messenger {
    /// The epoch `user`'s devices were published in, as this process last checked them.
    pub(crate) fn published_since(&self, user: &UserId) -> Option<u64> {
        self.directory.lists.get(user).and_then(|c| c.since_epoch)
    }

    /// How many device lists this process fetched from the homeserver to check leaves.
    pub fn directory_lookups(&self) -> u64 {
        self.directory.lookups
    }

    /// Accepts a new signing key of `server` for the device key directory: forgets the
    /// key pinned for it, so the next list of one of its users pins the key it comes with.
    /// For after a [`DirectoryError::ServerKeyChanged`] the user checked (the server's
    /// operator announced a key rotation, say). Returns whether a key was pinned.
    pub async fn trust_server_key(&mut self, server: &ServerName) -> Result<bool> {
        let lock = self.begin().await?;
        let removed = self.state.server_keys.remove(server).is_some();
        self.directory.lists.retain(|user, _| user.server_name() != *server);
        let result = if removed {
            self.save(&lock).map(|()| true)
        } else {
            Ok(false)
        };
        self.end(lock, result)
    }

    /// Checks every leaf of a tree this device is about to join: a Welcome's, or, for an
    /// external join, the group built from the GroupInfo and its tree before the external
    /// commit is submitted (`tree_leaves(group.members())`; on a refusal, delete that
    /// group state, submit nothing and report [`Event::LeafRefused`](super::Event)).
    pub(crate) async fn check_tree(&mut self, leaves: &[TreeLeaf]) -> Result<Vec<RefusedLeaf>> {
        self.check_leaves(leaves, leaves).await
    }

    /// Checks `changed`, leaves entering this device's view of a group whose whole tree
    /// will be `tree` (for a Welcome, both are every leaf), against the device key
    /// directory; returns the leaves refused (none: all vouched for). Fails only when a
    /// list cannot be fetched now (the homeserver or the user's server unreachable): the
    /// caller tries again later rather than accept or refuse.
    ///
    /// Usable on a GroupInfo's tree before an external join: pass every leaf as both.
    pub(crate) async fn check_leaves(&mut self, changed: &[TreeLeaf], tree: &[TreeLeaf]) -> Result<Vec<RefusedLeaf>> {
        let mut refused = Vec::new();
        let mut to_check: Vec<(&TreeLeaf, GroupMember)> = Vec::new();
        for leaf in changed {
            let Some(device) = leaf.device() else {
                refused.push(refusal(
                    leaf,
                    None,
                    "its credential names no Parley device (user_id/device_id)",
                ));
                continue;
            };
            if let Some(other) = tree
                .iter()
                .find(|o| o.index != leaf.index && o.device().as_ref() == Some(&device))
            {
                let reason = format!("leaf {} is the same device; a device has one leaf", other.index);
                refused.push(refusal(leaf, Some(device), &reason));
                continue;
            }
            // This device's own leaf, with its own key: nothing to ask.
            let own = device.user_id == self.state.user_id && device.device_id == self.state.device_id;
            if own && leaf.signature_key.as_slice() == self.identity.signer.public() {
                continue;
            }
            to_check.push((leaf, device));
        }
        // Users whose cached list does not vouch for one of their leaves: fetched once.
        let stale: BTreeSet<UserId> = to_check
            .iter()
            .filter(|(leaf, device)| {
                !self
                    .directory
                    .lists
                    .get(&device.user_id)
                    .is_some_and(|c| c.vouches(device, &leaf.signature_key))
            })
            .map(|(_, device)| device.user_id.clone())
            .collect();
        for user in stale {
            let checked = self.fetch_device_list(&user).await?;
            self.directory.lists.insert(
                user,
                Cached {
                    since_epoch: checked.as_ref().ok().and_then(|c| c.since_epoch),
                    list: checked.map(|c| c.list),
                    fetched_at: Instant::now(),
                },
            );
        }
        for (leaf, device) in to_check {
            let reason = match self.directory.lists.get(&device.user_id).map(|c| &c.list) {
                Some(Ok(list)) => match list.key_of(&device.device_id) {
                    Some(key) if key == leaf.signature_key.as_slice() => continue,
                    Some(_) => format!(
                        "{} vouches for another signature key for this device",
                        device.user_id.server_name()
                    ),
                    None => format!(
                        "{} lists no such device of {} (with a key) in its published key directory",
                        device.user_id.server_name(),
                        device.user_id
                    ),
                },
                Some(Err(e)) => e.to_string(),
                None => "its owner's device list was not fetched".to_owned(),
            };
            refused.push(refusal(leaf, Some(device), &reason));
        }
        refused.sort_by_key(|r| r.leaf_index);
        Ok(refused)
    }

    /// `user`'s list from the homeserver, checked; `Err` inside for a list that cannot
    /// be used (which refuses the user's leaves), `Err` outside when it cannot be had now.
    /// A list naming devices its server has not published yet (a device that just bound
    /// its key) is fetched again until they are, for up to `PUBLICATION_WAIT`; after that
    /// they are left out (refused).
    pub(crate) async fn fetch_device_list(
        &mut self,
        user: &UserId,
    ) -> Result<std::result::Result<Transparent, DirectoryError>> {
        let deadline = Instant::now() + PUBLICATION_WAIT;
        loop {
            self.directory.lookups += 1;
            let answer = match self.client.user_devices(user).await {
                Ok(answer) => answer,
                Err(e) => {
                    return match e.code() {
                        Some(ErrorCode::NotFound) => Ok(Err(DirectoryError::NoSuchUser { user: user.clone() })),
                        Some(ErrorCode::ServerNotAllowed | ErrorCode::InvalidParam) => {
                            Ok(Err(DirectoryError::Refused {
                                user: user.clone(),
                                reason: e.to_string(),
                            }))
                        }
                        _ => Err(MessengerError::DirectoryUnavailable {
                            user: user.clone(),
                            reason: e.to_string(),
                        }),
                    };
                }
            };
            match self.checked_list(user, answer) {
                Ok(checked) if checked.unpublished > 0 && Instant::now() < deadline => {
                    tokio::time::sleep(PUBLICATION_POLL).await;
                }
                Ok(checked) => return Ok(Ok(checked)),
                Err(e) => return Ok(Err(e)),
            }
        }
    }

    /// Verifies an answer of `user_devices`: the signature of the user's server, with the
    /// key pinned for it (pinning it on first use), then its key transparency proof.
    fn checked_list(&mut self, user: &UserId, answer: UserDevices) -> std::result::Result<Transparent, DirectoryError> {
        let bad = |reason: String| DirectoryError::BadList {
            user: user.clone(),
            reason,
        };
        if answer.device_keys.user_id != *user {
            return Err(bad(format!("it lists the devices of {}", answer.device_keys.user_id)));
        }
        let server = user.server_name();
        let (signature, key) = match (answer.server_signature, answer.server_key) {
            (Some(signature), Some(key)) => (signature, key),
            // A homeserver that does not federate signs nothing and keeps no key
            // directory: its own users' lists are taken as it gives them (it is their
            // authority either way).
            (None, _) if server == self.state.user_id.server_name() => {
                return Ok(Transparent {
                    list: answer.device_keys,
                    unpublished: 0,
                    since_epoch: None,
                });
            }
            _ => return Err(bad("it is not signed by the user's server".to_owned())),
        };
        let server_keys = self.pinned_server_keys(&server, key)?;
        let signed = SignedDeviceKeys {
            device_keys: answer.device_keys,
            server_signature: signature,
            transparency: None,
        };
        let signed_at = signed.server_signature.signed_at_ms;
        let now_ms = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        if signed_at < now_ms.saturating_sub(MAX_LIST_AGE_MS) {
            return Err(bad(format!(
                "it was signed {} hours ago; a relayed list is fetched from the user's server within minutes",
                (now_ms - signed_at) / 3_600_000
            )));
        }
        let verified = verify(signed, &server_keys).map_err(|e| bad(e.to_string()))?;
        self.check_transparency(
            user,
            &server_keys,
            verified.into_signed().device_keys,
            answer.transparency,
        )
    }

    /// `server`'s keys as `key` says them, if `key` is the one pinned for `server`;
    /// pinned on first use (saved with the state by the operation that checks).
    pub(crate) fn pinned_server_keys(
        &mut self,
        server: &ServerName,
        key: ServerVerifyKey,
    ) -> std::result::Result<VerifiedKeys, DirectoryError> {
        if let Some(pinned) = self.state.server_keys.get(server)
            && (pinned.key_id != key.key_id || pinned.key != key.key)
        {
            return Err(DirectoryError::ServerKeyChanged {
                server: server.clone(),
                key_id: key.key_id,
                pinned_id: pinned.key_id.clone(),
            });
        }
        let server_keys = verified_keys(server, &key).map_err(|reason| DirectoryError::BadServerKey {
            server: server.clone(),
            reason,
        })?;
        self.state
            .server_keys
            .entry(server.clone())
            .or_insert_with(|| PinnedKey {
                key_id: key.key_id,
                key: key.key,
                pinned_at: OffsetDateTime::now_utc(),
            });
        Ok(server_keys)
    }
}

/// `server`'s keys as one relayed key says them, for checking a list it signed.
fn verified_keys(server: &ServerName, key: &ServerVerifyKey) -> std::result::Result<VerifiedKeys, String> {
    let key_id = KeyId::parse(&key.key_id).map_err(|e| format!("malformed key id: {e}"))?;
    let public = decode_public_key(&key.key).map_err(|e| format!("malformed server key: {e}"))?;
    Ok(VerifiedKeys {
        server_name: server.clone(),
        valid_until_ms: i64::MAX,
        keys: BTreeMap::from([(
            key_id,
            PublishedKey {
                key: public,
                expired_at_ms: None,
                revoked: false,
            },
        )]),
    })
}

fn refusal(leaf: &TreeLeaf, claims: Option<GroupMember>, reason: &str) -> RefusedLeaf {
    RefusedLeaf {
        leaf_index: leaf.index,
        claims,
        identity: String::from_utf8_lossy(&leaf.identity).into_owned(),
        signature_key: hex::encode(&leaf.signature_key),
        reason: reason.to_owned(),
    }
}

/// Every leaf of a tree, from its members.
pub(crate) fn tree_leaves(members: impl Iterator<Item = Member>) -> Vec<TreeLeaf> {
    members.map(|m| TreeLeaf::of_member(&m)).collect()
}

fn leaf_of_node(index: u32, node: &LeafNode) -> TreeLeaf {
    TreeLeaf::of_leaf_node(index, node)
}

/// The leaves of the group after `staged` is merged, and those among them it adds or
/// changes: compared with `before` by index, a leaf that is new or whose (identity,
/// signature key) differs (as the hub decides, `hub/vouch.rs`). Leaves are placed as
/// openmls places them (updates, removes, adds at the leftmost free leaf, then the
/// committer's update path), so the indices the user is told are the tree's.
pub(crate) fn leaves_after(
    before: &[TreeLeaf],
    staged: &StagedCommit,
    committer: &Sender,
) -> (Vec<TreeLeaf>, Vec<TreeLeaf>) {
    let mut slots: BTreeMap<u32, TreeLeaf> = before.iter().map(|l| (l.index, l.clone())).collect();
    let first_free = |slots: &BTreeMap<u32, TreeLeaf>| (0u32..).find(|i| !slots.contains_key(i)).unwrap_or(u32::MAX);
    for update in staged.update_proposals() {
        if let Sender::Member(index) = update.sender() {
            let index = index.u32();
            slots.insert(index, leaf_of_node(index, update.update_proposal().leaf_node()));
        }
    }
    for remove in staged.remove_proposals() {
        slots.remove(&remove.remove_proposal().removed().u32());
    }
    for add in staged.add_proposals() {
        let index = first_free(&slots);
        slots.insert(index, leaf_of_node(index, add.add_proposal().key_package().leaf_node()));
    }
    if let Some(node) = staged.update_path_leaf_node() {
        let index = match committer {
            Sender::Member(index) => index.u32(),
            _ => first_free(&slots),
        };
        slots.insert(index, leaf_of_node(index, node));
    }
    let before: BTreeMap<u32, &TreeLeaf> = before.iter().map(|l| (l.index, l)).collect();
    let after: Vec<TreeLeaf> = slots.into_values().collect();
    let changed = after
        .iter()
        .filter(|leaf| {
            before
                .get(&leaf.index)
                .is_none_or(|old| old.identity != leaf.identity || old.signature_key != leaf.signature_key)
        })
        .cloned()
        .collect();
    (changed, after)
}
