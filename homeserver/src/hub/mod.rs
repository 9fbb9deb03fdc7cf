//! The hub: the one place that orders a group's messages.
//!
//! Every accepted message gets the group's next sequence number under the group's row
//! lock, and is stored and fanned out to the member devices' inboxes in the same
//! transaction: an accepted message is never lost, and every device sees one order.
//! Commits are validated against the hub's public view of the group (openmls
//! `PublicGroup`), which is updated in that transaction too, and every leaf they add or
//! change against the device key directory (`vouch`).

pub mod backfill;
pub mod delivery;
pub mod group_info;
pub mod leave;
pub mod mls;
pub mod public_state;
mod revoked;
pub mod roles;
mod vouch;
pub mod writer;

use std::collections::BTreeSet;

use openmls::prelude::{ProcessedMessageContent, ProposalStore, ProtocolMessage, PublicGroup, Sender};
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use parley_specs::endpoints::federation::{SUBMIT_COMMIT, SUBMIT_MESSAGE};
use parley_specs::federation_api::{ForwardedCommit, ForwardedMessage};
use parley_specs::groups_api::{
    Accepted, CreateGroupRequest, GroupList, GroupListOf, GroupListQuery, GroupMember, GroupSummary, InboxEntryKind,
    MAX_TXN_ID_LEN, SubmitCommitRequest, SubmitMessageRequest,
};
use parley_specs::{ErrorCode, GroupId, ServerName, UserId};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::remote::{self, Remote};
use crate::state::AppState;
use crate::store::groups::{KIND_COMMIT, NewMessage};
use crate::store::inbox::Recipient;
use crate::store::{self, Db};
use public_state::{PublicState, serialize_storage};
use writer::Submission;

fn check_txn_id(txn_id: &str) -> Result<(), ApiError> {
    let ok = !txn_id.is_empty() && txn_id.len() <= MAX_TXN_ID_LEN && txn_id.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!("txn_id must be 1 to {MAX_TXN_ID_LEN} printable ASCII characters"),
        ))
    }
}

fn check_size(state: &AppState, bytes: &[u8], what: &str) -> Result<(), ApiError> {
    let max = state.config.limits.max_message_bytes;
    if bytes.len() > max {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the {what} is {} bytes; at most {max}", bytes.len()),
        ));
    }
    Ok(())
}

fn not_hubbed_here(group: &GroupId) -> ApiError {
    ApiError::new(
        ErrorCode::NotHubbedHere,
        format!("{group} is hubbed on {}, not here", group.hub()),
    )
}

fn not_followed(group: &GroupId, origin: &ServerName) -> ApiError {
    ApiError::not_found(&format!("group {group} with members of {origin}"))
}

/// What a follower may ask about: a group hubbed here in which `origin` has members.
/// Other servers learn nothing, not even whether the group exists.
async fn check_followed_by(
    db: &impl Db,
    own: &ServerName,
    origin: &ServerName,
    group: &GroupId,
) -> Result<(), ApiError> {
    if group.hub() != *own {
        return Err(not_hubbed_here(group));
    }
    if !store::groups::has_members_of(db, group, origin.as_str()).await? {
        return Err(not_followed(group, origin));
    }
    Ok(())
}

/// How a group hubbed elsewhere is reached.
pub(crate) fn remote_to_hub<'a>(state: &'a AppState, group: &GroupId) -> Result<&'a Remote, ApiError> {
    state.remote.as_deref().ok_or_else(|| {
        ApiError::not_found(&format!(
            "group {group} (it is hubbed on {} and this server does not federate)",
            group.hub()
        ))
    })
}

/// A group may only gain members whose servers the hub federates with: it could not send
/// them anything, nor ask their servers to vouch for them.
fn check_federates_with<'a>(
    state: &AppState,
    added: impl IntoIterator<Item = &'a GroupMember>,
) -> Result<(), ApiError> {
    let own = &state.config.server_name;
    for server in remote_servers(own, added) {
        if !state.remote.as_ref().is_some_and(|r| r.policy.permits(&server)) {
            return Err(ApiError::new(
                ErrorCode::ServerNotAllowed,
                format!("the group's hub {own} does not federate with {server}, so its users cannot be added"),
            ));
        }
    }
    Ok(())
}

/// Other servers with member devices among `members`: where a message must be sent.
pub fn remote_servers<'a>(
    own: &ServerName,
    members: impl IntoIterator<Item = &'a GroupMember>,
) -> BTreeSet<ServerName> {
    members
        .into_iter()
        .map(|m| m.user_id.server_name())
        .filter(|server| server != own)
        .collect()
}

fn invalid_mls(context: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidMlsMessage, format!("{context}: {err}"))
}

/// Local member devices, the ones with inboxes here.
fn local<'a>(state: &AppState, members: impl IntoIterator<Item = &'a GroupMember>) -> Vec<Recipient<'a>> {
    local_recipients(&state.config.server_name, members)
}

fn local_recipients<'a>(
    server_name: &ServerName,
    members: impl IntoIterator<Item = &'a GroupMember>,
) -> Vec<Recipient<'a>> {
    members
        .into_iter()
        .filter(|m| m.user_id.server_name() == *server_name)
        .map(|m| Recipient {
            localpart: m.user_id.localpart(),
            device_id: &m.device_id,
        })
        .collect()
}

pub async fn create_group(
    state: &AppState,
    who: &GroupMember,
    req: CreateGroupRequest,
) -> Result<GroupSummary, ApiError> {
    check_size(state, req.group_info.as_slice(), "group info")?;
    let info = mls::parse_stored_group_info(req.group_info.as_slice())?;
    let tree = mls::parse_ratchet_tree(req.ratchet_tree.as_slice())?;
    let group_id = std::str::from_utf8(info.group_id().as_slice())
        .ok()
        .and_then(|s| GroupId::parse(s).ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidParam,
                "the MLS group id must be a Parley group id, <random>@<hub>",
            )
        })?;
    if group_id.hub() != state.config.server_name {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!(
                "a group created here must be hubbed here: its id must end in @{}",
                state.config.server_name
            ),
        ));
    }
    let storage = MemoryStorage::default();
    let (group, _) = PublicGroup::from_external(&RustCrypto::default(), &storage, tree, info, ProposalStore::new())
        .map_err(|e| invalid_mls("the group info and ratchet tree do not form a valid group", e))?;
    let leaves = mls::leaves(&group)?;
    let [creator] = leaves.as_slice() else {
        return Err(ApiError::new(
            ErrorCode::CredentialMismatch,
            "a new group's only member must be the device creating it",
        ));
    };
    if creator.member != *who {
        return Err(ApiError::new(
            ErrorCode::CredentialMismatch,
            "a new group's only member must be the device creating it",
        ));
    }
    roles::check_new(&group, &who.user_id)?;
    let members = mls::members_of(&leaves);
    let epoch = group.group_context().epoch().as_u64();
    if epoch != 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!("a new group starts at epoch 0, not {epoch}"),
        ));
    }
    let bytes = serialize_storage(&storage)?;

    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    if !store::groups::insert(&tx, &group_id, epoch, &bytes, req.group_info.as_slice()).await? {
        return Err(ApiError::new(
            ErrorCode::GroupExists,
            format!("group {group_id} exists"),
        ));
    }
    // After the group's row (groups before devices): the creator's leaf carries the
    // device's key, or binds it if this is the device's first use of one.
    crate::devices::bind_signature_key(&tx, &who.device_id, &creator.signature_key, "the creator's leaf").await?;
    store::groups::replace_members(&tx, &group_id, &members).await?;
    tx.commit().await?;
    tracing::info!(group = %group_id, creator = %who.user_id, "group created");
    Ok(GroupSummary {
        group_id,
        epoch,
        last_seq: 0,
        members: members.into_iter().collect(),
    })
}

/// A commit of `sender`, a device of this server's user or (forwarded by its server) of
/// another server's user. For a group hubbed elsewhere it is forwarded to the hub.
pub async fn submit_commit(
    state: &AppState,
    sender: &GroupMember,
    group_id: GroupId,
    req: SubmitCommitRequest,
) -> Result<Accepted, ApiError> {
    check_txn_id(&req.txn_id)?;
    check_size(state, req.commit.as_slice(), "commit")?;
    mls::parse_commit(req.commit.as_slice(), &group_id)?;
    if let Some(welcome) = &req.welcome {
        check_size(state, welcome.as_slice(), "welcome")?;
        mls::check_welcome(welcome.as_slice())?;
    }
    // Checked against the group after the commit (a retry finds its first answer first).
    check_size(state, req.group_info.as_slice(), "group info")?;
    // Commits count against the same per-device budget as application messages.
    check_send_rate(state, sender)?;
    if group_id.hub() != state.config.server_name {
        let forwarded = ForwardedCommit {
            sender: sender.clone(),
            commit: req,
        };
        return remote::forward::forward(remote_to_hub(state, &group_id)?, &group_id, SUBMIT_COMMIT, &forwarded).await;
    }

    // Decided under the group's lock; when leaves of other servers' users need their
    // device lists fetched, the lock is released, they are fetched, and it is decided
    // again (see `vouch`). Each round fetches at least one list this request had not,
    // so this ends.
    let mut fetched = vouch::Fetched::default();
    loop {
        let commit = mls::parse_commit(req.commit.as_slice(), &group_id)?;
        match decide_commit(state, sender, &group_id, &req, commit, &fetched).await? {
            Decided::Accepted(accepted) => return Ok(accepted),
            Decided::Fetch(users) => {
                if users.iter().any(|u| fetched.has(u)) {
                    return Err(ApiError::internal(
                        "vouching for leaves",
                        "a device list fetched for this commit was asked for again",
                    ));
                }
                vouch::fetch(state, users, &mut fetched).await?;
            }
        }
    }
}

/// What deciding a commit under the group's lock came to.
enum Decided {
    /// Stored and fanned out.
    Accepted(Accepted),
    /// Nothing was written: these users' device lists are needed first.
    Fetch(BTreeSet<UserId>),
}

/// One transaction under the group's row lock: validates `commit` (of `req`) and its new
/// and changed leaves, and stores and fans it out.
async fn decide_commit(
    state: &AppState,
    sender: &GroupMember,
    group_id: &GroupId,
    req: &SubmitCommitRequest,
    commit: ProtocolMessage,
    fetched: &vouch::Fetched,
) -> Result<Decided, ApiError> {
    let group_id = group_id.clone();
    let sent_epoch = commit.epoch().as_u64();
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    let locked = store::groups::lock(&tx, &group_id)
        .await?
        .ok_or_else(|| not_a_member(&group_id))?;
    // Checked under the group's lock, so a retry racing its original finds it.
    if let Some(prior) = store::groups::prior_submit(&tx, &group_id, sender, &req.txn_id).await? {
        return accepted_before(prior).map(Decided::Accepted);
    }
    // An external commit (`new_member_commit`) is how a user's new device joins: only
    // by a device that is not a member, of a user who has a member device.
    let external = commit.is_external();
    let is_member = store::groups::is_member(&tx, &group_id, sender).await?;
    match (is_member, external) {
        (true, false) => {}
        (false, false) => return Err(not_a_member(&group_id)),
        (true, true) => {
            return Err(external_join_refused("this device is a member already"));
        }
        (false, true) => {
            if !store::groups::has_user(&tx, &group_id, &sender.user_id).await? {
                return Err(external_join_refused(&format!(
                    "{} has no member device in the group; only a member user's devices may join by themselves",
                    sender.user_id
                )));
            }
        }
    }
    if sent_epoch != locked.epoch {
        return Err(ApiError::wrong_epoch(sent_epoch, locked.epoch));
    }

    let mut public = PublicState::load(&store::groups::public_state(&tx, &group_id).await?, commit.group_id())?;
    let leaves_before = mls::leaves(&public.group)?;
    let policy_before = roles::policy(&public.group);
    let processed = public
        .group
        .process_message(&RustCrypto::default(), commit)
        .map_err(|e| invalid_mls("the hub refuses the commit", e))?;
    let expected_sender = if external {
        matches!(processed.sender(), Sender::NewMemberCommit)
    } else {
        matches!(processed.sender(), Sender::Member(_))
    };
    if !expected_sender || mls::member_of(processed.credential()).as_ref() != Some(sender) {
        return Err(ApiError::new(
            ErrorCode::CredentialMismatch,
            "the commit is not signed by the sending device's own leaf",
        ));
    }
    let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
        return Err(ApiError::new(ErrorCode::InvalidMlsMessage, "expected a commit"));
    };
    public
        .group
        .merge_commit(&public.storage, *staged)
        .map_err(|e| ApiError::internal("merging a commit", e))?;
    let leaves_after = mls::leaves(&public.group)?;
    let policy_after = roles::policy(&public.group);
    if external {
        check_external_join(sender, &leaves_before, &leaves_after)?;
        if policy_after != policy_before {
            return Err(external_join_refused(
                "an external join may not change the group policy",
            ));
        }
    }
    // Leaves, not users or devices: each leaf is a member the group must serve.
    if leaves_after.len() > state.config.limits.max_group_size {
        return Err(ApiError::new(
            ErrorCode::GroupFull,
            format!(
                "the commit would give the group {} leaves; at most {}",
                leaves_after.len(),
                state.config.limits.max_group_size
            ),
        ));
    }
    let changed = vouch::changed(&leaves_before, &leaves_after);
    vouch::one_leaf_per_device(&changed, &leaves_after)?;
    check_federates_with(state, changed.iter().map(|leaf| &leaf.member))?;
    // Roles: what a member who is not an admin may not do (external joins: above).
    if !external {
        roles::check(
            policy_before,
            policy_after,
            &sender.user_id,
            &leaves_before,
            &leaves_after,
            &locked.leaving,
            &locked.revoked,
        )?;
    }
    if let vouch::Vouching::Fetch(users) = vouch::check(state, &tx, &changed, fetched).await? {
        // Releases the group's lock before anyone goes out on the network.
        tx.rollback().await?;
        return Ok(Decided::Fetch(users));
    }
    // The GroupInfo a new device will join from must be this very state's.
    mls::check_group_info(req.group_info.as_slice(), &public.group, sender)?;
    let before = mls::members_of(&leaves_before);
    let after = mls::members_of(&leaves_after);
    revoked::check_commit(&tx, &group_id, &locked, &after).await?;
    leave::check_commit(&tx, &group_id, &locked.leaving, &after).await?;
    // Devices added by a member, which join from the Welcome (an external joiner is the
    // sender itself and has its group state already).
    let added: BTreeSet<_> = after.difference(&before).filter(|m| *m != sender).cloned().collect();
    match (&req.welcome, added.is_empty()) {
        (None, false) => {
            return Err(ApiError::new(
                ErrorCode::InvalidMlsMessage,
                "a commit that adds members needs their Welcome",
            ));
        }
        (Some(_), true) => {
            return Err(ApiError::new(
                ErrorCode::InvalidMlsMessage,
                "a Welcome came with a commit that adds nobody",
            ));
        }
        _ => {}
    }
    let epoch = public.group.group_context().epoch().as_u64();
    let seq = locked.last_seq + 1;

    store::groups::set_state(
        &tx,
        &group_id,
        epoch,
        seq,
        &public.serialize()?,
        req.group_info.as_slice(),
    )
    .await?;
    store::groups::replace_members(&tx, &group_id, &after).await?;
    let inserted = store::groups::insert_messages(
        &tx,
        &[NewMessage {
            group_id: &group_id,
            seq,
            epoch: sent_epoch,
            kind: KIND_COMMIT,
            sender,
            txn_id: &req.txn_id,
            payload: req.commit.as_slice(),
            welcome: req.welcome.as_ref().map(|w| w.as_slice()),
            members: Some(&after.iter().cloned().collect::<Vec<_>>()),
            sent_at: OffsetDateTime::now_utc(),
            expires_at: None,
        }],
    )
    .await?
        == 1;
    if !inserted {
        return Err(ApiError::internal(
            "storing a commit",
            "its transaction id was stored under the group's lock by someone else",
        ));
    }
    // The members of the old epoch (removed ones included) get the commit; the new ones
    // start from the Welcome instead. Other servers with members in either get it too.
    // Users who left get nothing more, not even their removal (`leave`).
    let existing = local(
        state,
        before
            .iter()
            .filter(|m| *m != sender && !locked.leaving.iter().any(|u| u.as_str() == m.user_id.as_str())),
    );
    let entries: Vec<_> = existing
        .into_iter()
        .map(|r| r.entry(InboxEntryKind::Message, &group_id, seq))
        .chain(
            local(state, &added)
                .into_iter()
                .map(|r| r.entry(InboxEntryKind::Welcome, &group_id, seq)),
        )
        .collect();
    let destinations = match &state.remote {
        Some(_) => remote_servers(&state.config.server_name, before.iter().chain(&after)),
        None => BTreeSet::new(),
    };
    let queued: Vec<_> = destinations
        .iter()
        .map(|d| (d.as_str(), group_id.as_str(), seq))
        .collect();
    let (appended, ()) = tokio::try_join!(
        store::inbox::append(&tx, &entries),
        store::federation::enqueue(&tx, &queued),
    )?;
    let woken = store::inbox::devices(appended);
    tx.commit().await?;

    state.inbox_waker.wake(&woken);
    if let Some(remote) = &state.remote {
        remote.outbound.kick(destinations.iter().map(ToString::to_string));
    }
    state.metrics.messages_accepted.with_label_values(&["commit"]).inc();
    state.metrics.fanout_devices.observe(woken.len() as f64);
    tracing::debug!(group = %group_id, seq, epoch, added = added.len(), "commit accepted");
    Ok(Decided::Accepted(Accepted { group_id, seq, epoch }))
}

/// The one answer to a device that is not a member of a group, whether or not the group
/// exists here: no group endpoint tells a non-member which groups exist.
pub(crate) fn not_a_member(group: &GroupId) -> ApiError {
    ApiError::new(ErrorCode::NotAMember, format!("this device is not a member of {group}"))
}

fn external_join_refused(why: &str) -> ApiError {
    ApiError::new(ErrorCode::ExternalJoinRefused, format!("external join refused: {why}"))
}

/// What an external join may do: add the joining device's own leaf and nothing else.
/// Its leaf is vouched for like every new leaf, afterwards.
fn check_external_join(sender: &GroupMember, before: &[mls::Leaf], after: &[mls::Leaf]) -> Result<(), ApiError> {
    // Every leaf stays where it was, naming the same device with the same key (a Remove
    // whose leaf the joiner then takes shows up here too).
    if let Some(gone) = before.iter().find(|old| {
        !after
            .iter()
            .any(|l| l.index == old.index && l.member == old.member && l.signature_key == old.signature_key)
    }) {
        return Err(external_join_refused(&format!(
            "it removes leaf {} ({}/{}); joining removes nobody",
            gone.index, gone.member.user_id, gone.member.device_id
        )));
    }
    let changed = vouch::changed(before, after);
    match changed.as_slice() {
        [own] if own.member == *sender => Ok(()),
        _ => Err(external_join_refused(
            "the only leaf an external join may add or change is the joining device's own",
        )),
    }
}

/// An application message of `sender` (see `submit_commit`).
pub async fn submit_message(
    state: &AppState,
    sender: &GroupMember,
    group_id: GroupId,
    req: SubmitMessageRequest,
) -> Result<Accepted, ApiError> {
    check_txn_id(&req.txn_id)?;
    check_size(state, req.message.as_slice(), "message")?;
    let sent_epoch = mls::parse_application(req.message.as_slice(), &group_id)?;
    if let Some(expires_at) = req.expires_at
        && expires_at <= OffsetDateTime::now_utc()
    {
        return Err(ApiError::new(ErrorCode::InvalidParam, "expires_at is in the past"));
    }
    check_send_rate(state, sender)?;
    if group_id.hub() != state.config.server_name {
        let forwarded = ForwardedMessage {
            sender: sender.clone(),
            message: req,
        };
        return remote::forward::forward(remote_to_hub(state, &group_id)?, &group_id, SUBMIT_MESSAGE, &forwarded).await;
    }
    let written = state
        .message_writer
        .submit(Submission {
            group_id,
            sender: sender.clone(),
            txn_id: req.txn_id,
            payload: req.message.into_vec(),
            epoch: sent_epoch,
            expires_at: req.expires_at,
        })
        .await?;
    if let Some(fanout) = written.fanout {
        state
            .metrics
            .messages_accepted
            .with_label_values(&["application"])
            .inc();
        state.metrics.fanout_devices.observe(fanout as f64);
    }
    Ok(written.accepted)
}

/// A commit forwarded by `origin`, the server of its sender, for a group hubbed here.
pub async fn submit_forwarded_commit(
    state: &AppState,
    origin: &ServerName,
    group_id: GroupId,
    forwarded: ForwardedCommit,
) -> Result<Accepted, ApiError> {
    check_forwarded(state, origin, &group_id, &forwarded.sender)?;
    submit_commit(state, &forwarded.sender, group_id, forwarded.commit).await
}

/// An application message forwarded by `origin` (see `submit_forwarded_commit`).
pub async fn submit_forwarded_message(
    state: &AppState,
    origin: &ServerName,
    group_id: GroupId,
    forwarded: ForwardedMessage,
) -> Result<Accepted, ApiError> {
    check_forwarded(state, origin, &group_id, &forwarded.sender)?;
    submit_message(state, &forwarded.sender, group_id, forwarded.message).await
}

/// A server forwards submits of its own users only, and only to the group's hub.
pub(crate) fn check_forwarded(
    state: &AppState,
    origin: &ServerName,
    group: &GroupId,
    sender: &GroupMember,
) -> Result<(), ApiError> {
    if group.hub() != state.config.server_name {
        return Err(not_hubbed_here(group));
    }
    if sender.user_id.server_name() != *origin {
        return Err(ApiError::new(
            ErrorCode::SenderNotOfOrigin,
            format!("{origin} may submit for its own users only, not for {}", sender.user_id),
        ));
    }
    Ok(())
}

/// Devices of every server share one budget per device; the user id keeps devices of
/// different servers apart.
fn check_send_rate(state: &AppState, sender: &GroupMember) -> Result<(), ApiError> {
    state
        .sends_per_device
        .check(&format!("{}/{}", sender.user_id, sender.device_id))
        .map_err(ApiError::rate_limited)
}

/// A retried submit returns what the first one got, and stores nothing new.
fn accepted_before(prior: store::groups::PriorSubmit) -> Result<Accepted, ApiError> {
    let group_id = GroupId::parse(&prior.group_id).map_err(|e| ApiError::internal("stored group id", e))?;
    Ok(Accepted {
        group_id,
        seq: prior.seq,
        epoch: prior.epoch_after,
    })
}

pub async fn get_group(state: &AppState, who: &GroupMember, group_id: GroupId) -> Result<GroupSummary, ApiError> {
    let db = state.pool.get().await?;
    // Non-members learn nothing, not even that the group exists.
    if !store::groups::is_member(&db, &group_id, who).await? {
        return Err(not_a_member(&group_id));
    }
    let (epoch, last_seq) = store::groups::position(&db, &group_id)
        .await?
        .ok_or_else(|| not_a_member(&group_id))?;
    let members = store::groups::members(&db, &group_id).await?;
    Ok(GroupSummary {
        group_id,
        epoch,
        last_seq,
        members,
    })
}

/// The groups `who` is a member of, or (`of=user`) those another device of its user is
/// a member of and it is not: the ones it can join by external commit. Groups hubbed
/// elsewhere are answered from this server's follower state.
pub async fn list_groups(state: &AppState, who: &GroupMember, query: GroupListQuery) -> Result<GroupList, ApiError> {
    let db = state.pool.get().await?;
    let ids = match query.of.unwrap_or(GroupListOf::Device) {
        GroupListOf::Device => store::groups::of_device(&db, who).await?,
        GroupListOf::User => store::groups::joinable_by(&db, who).await?,
    };
    let mut groups = Vec::new();
    for id in ids {
        let group_id = GroupId::parse(&id).map_err(|e| ApiError::internal("stored group id", e))?;
        if let Some((epoch, last_seq)) = store::groups::position(&db, &group_id).await? {
            let members = store::groups::members(&db, &group_id).await?;
            groups.push(GroupSummary {
                group_id,
                epoch,
                last_seq,
                members,
            });
        }
    }
    Ok(GroupList { groups })
}
