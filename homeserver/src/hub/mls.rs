//! Reading MLS messages as the hub sees them: framing checks that need no group state,
//! and the member list of a `PublicGroup`.

use std::collections::BTreeSet;

use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{
    BasicCredential, ContentType, LeafNodeIndex, MlsMessageBodyIn, MlsMessageIn, OpenMlsSignaturePublicKey,
    ProtocolMessage, PublicGroup, RatchetTreeIn, Verifiable as _,
};
use openmls_rust_crypto::RustCrypto;
use parley_specs::groups_api::GroupMember;
use parley_specs::mls::parse_credential_identity;
use parley_specs::{ErrorCode, GroupId};

use crate::error::ApiError;

fn invalid(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidMlsMessage, what.to_string())
}

fn parse(bytes: &[u8], what: &str) -> Result<MlsMessageBodyIn, ApiError> {
    MlsMessageIn::tls_deserialize_exact(bytes)
        .map(MlsMessageIn::extract)
        .map_err(|e| invalid(format!("the {what} is not an MLS message: {e}")))
}

fn check_group(message: &ProtocolMessage, group: &GroupId) -> Result<(), ApiError> {
    if message.group_id().as_slice() != group.as_str().as_bytes() {
        return Err(ApiError::new(
            ErrorCode::GroupMismatch,
            format!(
                "the message is for group {:?}, not {group}",
                String::from_utf8_lossy(message.group_id().as_slice())
            ),
        ));
    }
    Ok(())
}

/// A commit must travel as a PublicMessage so the hub can validate it.
pub fn parse_commit(bytes: &[u8], group: &GroupId) -> Result<ProtocolMessage, ApiError> {
    let message = match parse(bytes, "commit")? {
        MlsMessageBodyIn::PublicMessage(m) => ProtocolMessage::from(m),
        MlsMessageBodyIn::PrivateMessage(_) => {
            return Err(invalid(
                "commits must be PublicMessages (use the mixed plaintext wire-format policy)",
            ));
        }
        _ => return Err(invalid("the commit is not a PublicMessage")),
    };
    check_group(&message, group)?;
    if message.content_type() != ContentType::Commit {
        return Err(invalid(format!(
            "expected a commit, got {:?}; send proposals inside the commit",
            message.content_type()
        )));
    }
    Ok(message)
}

/// An application message must be a PrivateMessage of application content; returns its epoch.
pub fn parse_application(bytes: &[u8], group: &GroupId) -> Result<u64, ApiError> {
    let message = match parse(bytes, "message")? {
        MlsMessageBodyIn::PrivateMessage(m) => ProtocolMessage::from(m),
        _ => return Err(invalid("application messages must be PrivateMessages")),
    };
    check_group(&message, group)?;
    if message.content_type() != ContentType::Application {
        return Err(invalid(
            "handshake messages go to the commits endpoint as PublicMessages",
        ));
    }
    Ok(message.epoch().as_u64())
}

pub fn check_welcome(bytes: &[u8]) -> Result<(), ApiError> {
    match parse(bytes, "welcome")? {
        MlsMessageBodyIn::Welcome(_) => Ok(()),
        _ => Err(invalid("the welcome is not an MLS Welcome")),
    }
}

pub fn parse_group_info(bytes: &[u8]) -> Result<VerifiableGroupInfo, ApiError> {
    match parse(bytes, "group info")? {
        MlsMessageBodyIn::GroupInfo(info) => Ok(info),
        _ => Err(invalid("group_info is not an MLS GroupInfo")),
    }
}

/// A GroupInfo as the hub keeps it: without the ratchet tree (the hub serves its own),
/// with the external public key (so a user's new device can join by external commit).
pub fn parse_stored_group_info(bytes: &[u8]) -> Result<VerifiableGroupInfo, ApiError> {
    let info = parse_group_info(bytes)?;
    if info.extensions().ratchet_tree().is_some() {
        return Err(invalid(
            "group_info must not carry the ratchet-tree extension; the hub serves the tree itself",
        ));
    }
    if info.extensions().external_pub().is_none() {
        return Err(invalid("group_info lacks the external_pub extension"));
    }
    Ok(info)
}

/// Checks that `bytes` is a GroupInfo of exactly the state `group` is in, signed by
/// `committer`: it parses as one (see `parse_stored_group_info`), its group context
/// (group id, epoch, tree hash, transcript hashes, extensions) is the hub's, the signer
/// it names is the committer's leaf in the hub's tree, and its signature verifies with
/// that leaf's key. One signature check: the tree itself is the hub's, checked already.
pub fn check_group_info(bytes: &[u8], group: &PublicGroup, committer: &GroupMember) -> Result<(), ApiError> {
    let info = parse_stored_group_info(bytes)?;
    if info.group_context() != group.group_context() {
        return Err(invalid(
            "group_info does not describe the group as the commit leaves it (another group context)",
        ));
    }
    // GroupInfoTBS ends with the signer's leaf index (uint32).
    let tbs = info
        .unsigned_payload()
        .map_err(|e| invalid(format!("group_info does not encode: {e}")))?;
    let signer = tbs
        .last_chunk::<4>()
        .map(|b| u32::from_be_bytes(*b))
        .ok_or_else(|| invalid("group_info names no signer"))?;
    let leaf = group
        .leaf(LeafNodeIndex::new(signer))
        .filter(|leaf| member_of(leaf.credential()).as_ref() == Some(committer))
        .ok_or_else(|| invalid("group_info is not signed by the committer's leaf"))?;
    let key = OpenMlsSignaturePublicKey::from_signature_key(
        leaf.signature_key().clone(),
        group.ciphersuite().signature_algorithm(),
    );
    info.verify(&RustCrypto::default(), &key)
        .map_err(|e| invalid(format!("group_info's signature does not verify: {e}")))?;
    Ok(())
}

/// The hub's ratchet tree of `group`, TLS-serialized.
pub fn export_tree(group: &PublicGroup) -> Result<Vec<u8>, ApiError> {
    group
        .export_ratchet_tree()
        .tls_serialize_detached()
        .map_err(|e| ApiError::internal("encoding the ratchet tree", e))
}

pub fn parse_ratchet_tree(bytes: &[u8]) -> Result<RatchetTreeIn, ApiError> {
    RatchetTreeIn::tls_deserialize_exact(bytes).map_err(|e| invalid(format!("ratchet_tree does not parse: {e}")))
}

/// The user and device a credential names, if it is a Parley BasicCredential.
pub fn member_of(credential: &openmls::prelude::Credential) -> Option<GroupMember> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    let (user_id, device_id) = parse_credential_identity(basic.identity())?;
    Some(GroupMember { user_id, device_id })
}

/// One leaf of a group as the device key directory sees it: the device its credential
/// names and the signature key it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub index: u32,
    pub member: GroupMember,
    pub signature_key: Vec<u8>,
}

/// Every leaf of the group, in leaf order. Fails if a leaf is not a Parley device.
pub fn leaves(group: &PublicGroup) -> Result<Vec<Leaf>, ApiError> {
    group
        .members()
        .map(|m| {
            let member = member_of(&m.credential).ok_or_else(|| {
                invalid(format!(
                    "the member at leaf {} has no Parley credential (user_id/device_id)",
                    m.index.u32()
                ))
            })?;
            Ok(Leaf {
                index: m.index.u32(),
                member,
                signature_key: m.signature_key,
            })
        })
        .collect()
}

/// The member devices of these leaves.
pub fn members_of(leaves: &[Leaf]) -> BTreeSet<GroupMember> {
    leaves.iter().map(|l| l.member.clone()).collect()
}
