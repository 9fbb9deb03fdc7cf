//! The fuzz targets' bodies: one function per parser of untrusted bytes, doing with the
//! input exactly what the homeserver does with those bytes when they arrive.
//!
//! `fuzz/libfuzzer` (cargo-fuzz, its own workspace) calls each of them from a libFuzzer
//! target of the same name; `tests/corpus.rs` replays every committed seed
//! (`fuzz/corpus/<target>/`) and every crash regression input (`fuzz/regressions/<target>/`)
//! through them on stable Rust, so `cargo test --workspace` covers the corpora.
//!
//! Each function returns whether the input was accepted all the way (a seed named
//! `valid-*` must be). Refusing is fine; a panic, an abort or an unbounded allocation is a
//! finding. Inputs that carry two byte strings (a commit and its GroupInfo, a GroupInfo and
//! its tree) are split with [`split`].
//!
//! What the signed-object targets verify against is fixed: the server key in
//! `fixtures/server-key.json` (a key made for fuzzing only) and the time [`NOW_MS`], so the
//! committed seeds, which `tests/seeds.rs` made with that key, keep verifying.

use std::sync::OnceLock;

use openmls::prelude::{ProcessedMessageContent, ProtocolMessage, PublicGroup};
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use parley_federation::key_document::{KeyDocument, VerifiedKeys};
use parley_federation::request_auth::{RequestParts, SignedRequest};
use parley_federation::{ServerKeyring, canonical, device_keys, hub_signature, transparency_root};
use parley_homeserver::config::Config;
use parley_homeserver::hub::mls;
use parley_homeserver::hub::public_state::{PublicState, serialize_storage};
use parley_homeserver::key_packages;
use parley_specs::federation_api::SignedMessage;
use parley_specs::groups_api::GroupMember;
use parley_specs::keys_api::{SignedDeviceKeys, UploadKeyPackagesRequest};
use parley_specs::mls::MAX_KEY_PACKAGES_PER_UPLOAD;
use parley_specs::transparency_api::TransparencyLookup;
use parley_specs::{DeviceId, GroupId, ServerName, UserId};

/// A target's body: whether the input was accepted all the way.
pub type Body = fn(&[u8]) -> bool;

/// Every target: its name (that of its libFuzzer binary and of its corpus directories)
/// and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("request_auth", request_auth),
    ("canonical_json", canonical_json),
    ("key_document", key_document),
    ("server_key_file", server_key_file),
    ("device_keys", device_keys),
    ("hub_signature", hub_signature),
    ("transparency_lookup", transparency_lookup),
    ("config", config),
    ("key_package", key_package),
    ("key_package_upload", key_package_upload),
    ("mls_message", mls_message),
    ("mls_create_group", mls_create_group),
    ("mls_commit", mls_commit),
];

/// The time every signature check runs at (the seeds were signed then).
pub const NOW_MS: i64 = 1_764_460_800_000;
/// How long the fixture key document is valid after [`NOW_MS`].
pub const DAY_MS: i64 = 86_400_000;
/// The server the fixture key belongs to, hub of [`GROUP`] and server of [`OWNER_USER`].
pub const ORIGIN: &str = "a.test";
/// The server the signed requests are addressed to.
pub const DESTINATION: &str = "b.test";
/// The group the MLS targets submit to; `fixtures/commit-group.state` is its hub state.
pub const GROUP: &str = "fuzzgroup1@a.test";
/// The device uploading key packages and submitting commits.
pub const OWNER_USER: &str = "alice@a.test";
pub const OWNER_DEVICE: &str = "ALICE1";
/// What the `request_auth` target's requests carry besides their header.
pub const REQUEST: RequestParts<'static> = RequestParts {
    method: "PUT",
    path_and_query: "/federation/v1/transactions/t1",
    body: br#"{"messages":[]}"#,
};

const SERVER_KEY_FILE: &[u8] = include_bytes!("../fixtures/server-key.json");
const COMMIT_GROUP_STATE: &[u8] = include_bytes!("../fixtures/commit-group.state");

/// Two byte strings from one input: a 4-byte big-endian length, that many bytes, the rest.
pub fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// The input [`split`] takes apart into `first` and `second`.
pub fn join(first: &[u8], second: &[u8]) -> Vec<u8> {
    let len = u32::try_from(first.len()).unwrap_or(u32::MAX);
    [&len.to_be_bytes()[..], first, second].concat()
}

fn name(s: &str) -> ServerName {
    ServerName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The fixture keyring (fuzzing only; see the module documentation).
pub fn keyring() -> &'static ServerKeyring {
    static KEYRING: OnceLock<ServerKeyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        ServerKeyring::parse_key_file(SERVER_KEY_FILE)
            .unwrap_or_else(|e| panic!("fuzz/fixtures/server-key.json: {e} (regenerate with tests/seeds.rs)"))
    })
}

/// [`ORIGIN`]'s keys, as a peer holds them after verifying its key document.
fn origin_keys() -> &'static VerifiedKeys {
    static KEYS: OnceLock<VerifiedKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        KeyDocument::signed(&name(ORIGIN), keyring(), NOW_MS, DAY_MS)
            .verify(&name(ORIGIN), NOW_MS)
            .unwrap_or_else(|e| panic!("the fixture key document: {e}"))
    })
}

pub fn owner() -> GroupMember {
    GroupMember {
        user_id: UserId::parse(OWNER_USER).unwrap_or_else(|e| panic!("{e}")),
        device_id: DeviceId::parse(OWNER_DEVICE).unwrap_or_else(|e| panic!("{e}")),
    }
}

fn group() -> GroupId {
    GroupId::parse(GROUP).unwrap_or_else(|e| panic!("{e}"))
}

/// A federation request's `Authorization` header, as the federation API checks it.
pub fn request_auth(data: &[u8]) -> bool {
    // actix hands the handler the header only when it is visible ASCII.
    let Ok(header) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(signed) = SignedRequest::parse(Some(header)) else {
        return false;
    };
    let Ok(verified) = signed.verify(&REQUEST, &name(DESTINATION), NOW_MS, origin_keys()) else {
        return false;
    };
    !verified.replay_key().is_empty()
}

/// Canonical JSON: what the bytes of a parsed value are, and that they are a fixed point
/// (a verifier recomputing them from what it received gets the signer's bytes).
pub fn canonical_json(data: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    let bytes = canonical::to_bytes(&value);
    let again: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "canonical JSON does not parse: {e}: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let bytes_again = canonical::to_bytes(&again);
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&bytes_again),
        "canonical JSON is not a fixed point"
    );
    true
}

/// A key document fetched from [`ORIGIN`], checked as a peer checks it; a document that
/// verifies verifies again after a JSON round trip.
pub fn key_document(data: &[u8]) -> bool {
    let Ok(document) = serde_json::from_slice::<KeyDocument>(data) else {
        return false;
    };
    let wire = serde_json::to_vec(&document).unwrap_or_else(|e| panic!("a parsed key document serializes: {e}"));
    let Ok(keys) = document.verify(&name(ORIGIN), NOW_MS) else {
        return false;
    };
    for key_id in keys.keys.keys() {
        let _ = keys.key_for(key_id, NOW_MS);
    }
    let again: KeyDocument = serde_json::from_slice(&wire).unwrap_or_else(|e| panic!("re-parsing: {e}"));
    assert_eq!(again.verify(&name(ORIGIN), NOW_MS).as_ref(), Ok(&keys));
    true
}

/// A server key file's contents (the key file is the operator's, but it is read at every
/// start and after each rotation by every process).
pub fn server_key_file(data: &[u8]) -> bool {
    ServerKeyring::parse_key_file(data).is_ok()
}

/// A user's device list signed by [`ORIGIN`], as a hub or homeserver checks it.
pub fn device_keys(data: &[u8]) -> bool {
    let Ok(signed) = serde_json::from_slice::<SignedDeviceKeys>(data) else {
        return false;
    };
    let Ok(verified) = device_keys::verify(signed, origin_keys()) else {
        return false;
    };
    let wire = serde_json::to_vec(verified.signed()).unwrap_or_else(|e| panic!("serializing: {e}"));
    let again: SignedDeviceKeys = serde_json::from_slice(&wire).unwrap_or_else(|e| panic!("re-parsing: {e}"));
    assert!(
        device_keys::verify(again, origin_keys()).is_ok(),
        "a verified device list no longer verifies after a JSON round trip"
    );
    true
}

/// A lookup proof of [`OWNER_USER`] with the root of [`ORIGIN`]'s key directory it is
/// against, as a client checks it with a contact's device list (the root's signature,
/// then the proof); the value it proves must be a well-formed device list.
pub fn transparency_lookup(data: &[u8]) -> bool {
    let Ok(lookup) = serde_json::from_slice::<TransparencyLookup>(data) else {
        return false;
    };
    let Ok(root) = transparency_root::verify(lookup.root, origin_keys()) else {
        return false;
    };
    let Ok(user) = UserId::parse(OWNER_USER) else {
        return false;
    };
    parley_transparency::verify_lookup(root.root(), &user, lookup.proof.as_slice()).is_ok()
}

/// A message signed by its hub [`ORIGIN`], as a follower checks it (in a transaction, in
/// backfill); one that verifies verifies again after a JSON round trip, as relayed.
pub fn hub_signature(data: &[u8]) -> bool {
    let Ok(signed) = serde_json::from_slice::<SignedMessage>(data) else {
        return false;
    };
    let Ok(verified) = hub_signature::verify(signed.clone(), origin_keys()) else {
        return false;
    };
    let wire = serde_json::to_vec(&signed).unwrap_or_else(|e| panic!("serializing: {e}"));
    let again: SignedMessage = serde_json::from_slice(&wire).unwrap_or_else(|e| panic!("re-parsing: {e}"));
    assert_eq!(
        hub_signature::verify(again, origin_keys()).map(|v| v.into_message()),
        Ok(verified.into_message())
    );
    true
}

/// The config loader: TOML text, then (after a line `# env`) `PARLEY_*` variables, one
/// `NAME=value` a line, as `Config::load` applies them.
pub fn config(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let (toml_text, env) = text.split_once("\n# env\n").unwrap_or((text, ""));
    let Ok(table) = toml_text.parse::<toml::Table>() else {
        return false;
    };
    let env = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
    Config::from_table(table, env).is_ok()
}

/// One uploaded KeyPackage of [`OWNER_USER`]'s device, as the upload checks it.
pub fn key_package(data: &[u8]) -> bool {
    key_packages::validate(data, &owner(), 0).is_ok()
}

/// The body of a KeyPackage upload (`POST /client/v1/keys/key-packages`): JSON with base64
/// KeyPackages, each checked as `key_packages::upload` checks them before the database.
pub fn key_package_upload(data: &[u8]) -> bool {
    let Ok(request) = serde_json::from_slice::<UploadKeyPackagesRequest>(data) else {
        return false;
    };
    if request.key_packages.len() > MAX_KEY_PACKAGES_PER_UPLOAD {
        return false;
    }
    let owner = owner();
    let Ok(valid) = request
        .key_packages
        .iter()
        .enumerate()
        .map(|(i, raw)| key_packages::validate(raw.as_slice(), &owner, i))
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    valid.windows(2).all(|w| w[0].signature_key == w[1].signature_key)
}

/// One MLS message as the hub's framing checks take it, whatever field it came in: a
/// commit, an application message, a Welcome, a GroupInfo, a ratchet tree.
pub fn mls_message(data: &[u8]) -> bool {
    let group = group();
    let mut accepted = false;
    if let Ok(commit) = mls::parse_commit(data, &group) {
        accepted = true;
        let _ = commit.is_external();
        let _ = commit.epoch();
    }
    accepted |= mls::parse_application(data, &group).is_ok();
    accepted |= mls::check_welcome(data).is_ok();
    if let Ok(info) = mls::parse_group_info(data) {
        accepted = true;
        let _ = mls::parse_stored_group_info(data);
        let _ = std::str::from_utf8(info.group_id().as_slice()).map(GroupId::parse);
    }
    accepted | mls::parse_ratchet_tree(data).is_ok()
}

/// A new group as the hub registers it (`create_group`): a GroupInfo and a ratchet tree
/// (see [`split`]) that must form a valid group of one Parley device.
pub fn mls_create_group(data: &[u8]) -> bool {
    let Some((info, tree)) = split(data) else {
        return false;
    };
    let (Ok(info), Ok(tree)) = (mls::parse_stored_group_info(info), mls::parse_ratchet_tree(tree)) else {
        return false;
    };
    let group_id = std::str::from_utf8(info.group_id().as_slice())
        .ok()
        .and_then(|s| GroupId::parse(s).ok());
    let mls_group_id = info.group_id().clone();
    let storage = MemoryStorage::default();
    let Ok((group, _)) = PublicGroup::from_external(
        &RustCrypto::default(),
        &storage,
        tree,
        info,
        openmls::prelude::ProposalStore::new(),
    ) else {
        return false;
    };
    let Ok(leaves) = mls::leaves(&group) else {
        return false;
    };
    // What the hub stores loads back as the same group.
    let bytes = serialize_storage(&storage).unwrap_or_else(|e| panic!("serializing the group: {e:?}"));
    let loaded = PublicState::load(&bytes, &mls_group_id).unwrap_or_else(|e| panic!("loading the group: {e:?}"));
    assert_eq!(loaded.group.group_context(), group.group_context());
    group_id.is_some() && leaves.len() == 1
}

/// A commit (and the GroupInfo that comes with it, see [`split`]) submitted by a member
/// of [`GROUP`], processed as the hub does (`decide_commit`) against the group's stored
/// state in `fixtures/commit-group.state`: framing, then openmls's validation of the
/// commit, the committer's credential, the merge, and the GroupInfo against the new state.
pub fn mls_commit(data: &[u8]) -> bool {
    let Some((commit, group_info)) = split(data) else {
        return false;
    };
    let Ok(commit) = mls::parse_commit(commit, &group()) else {
        return false;
    };
    process_commit(commit, group_info).is_some()
}

fn process_commit(commit: ProtocolMessage, group_info: &[u8]) -> Option<()> {
    let mut public = PublicState::load(COMMIT_GROUP_STATE, commit.group_id())
        .unwrap_or_else(|e| panic!("fuzz/fixtures/commit-group.state: {e:?} (regenerate with tests/seeds.rs)"));
    let before = mls::leaves(&public.group).ok()?;
    let processed = public.group.process_message(&RustCrypto::default(), commit).ok()?;
    let sender = mls::member_of(processed.credential())?;
    let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
        return None;
    };
    public
        .group
        .merge_commit(&public.storage, *staged)
        .unwrap_or_else(|e| panic!("merging a commit openmls accepted: {e}"));
    let after = mls::leaves(&public.group).ok()?;
    let _ = (mls::members_of(&before), mls::members_of(&after));
    mls::check_group_info(group_info, &public.group, &sender).ok()?;
    // What the hub writes back loads again.
    let bytes = public
        .serialize()
        .unwrap_or_else(|e| panic!("serializing the group: {e:?}"));
    let id = public.group.group_id().clone();
    PublicState::load(&bytes, &id).unwrap_or_else(|e| panic!("loading the group after a commit: {e:?}"));
    Some(())
}
