//! Application messages are written in batches. One transaction per message caps the hub
//! at the database's commit rate; instead one writer task takes every submission that
//! arrived while its previous transaction ran and orders, stores and fans them out in one
//! transaction. Each sender is answered only after that commit, so an accepted message is
//! as durable as before; the commit cost is shared by the batch.
//!
//! The rules are the single-message ones: under the group's row lock a message gets the
//! group's next sequence number if its sender is a member device and its epoch is current
//! or within the accepted window. Groups are locked in id order, then devices in id order
//! (by `inbox::append`), the same order every other writer uses, so writers never deadlock.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::Pool;
use parley_specs::groups_api::{Accepted, GroupMember, InboxEntry, InboxEntryKind};
use parley_specs::{ErrorCode, GroupId, ServerName};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::{accepted_before, local_recipients, remote_servers};
use crate::error::ApiError;
use crate::inbox::{FreshEntry, InboxWaker};
use crate::remote::Remote;
use crate::store;
use crate::store::groups::{KIND_APPLICATION, LockedGroup, NewMessage, PriorSubmit, SubmitKey, submit_key};
use crate::store::inbox::{Appended, NewEntry};

/// Submissions written in one transaction at most; bounds the statement sizes.
const MAX_BATCH: usize = 256;
/// Submissions waiting for the writer before senders wait to hand theirs over.
const QUEUE_DEPTH: usize = 8 * MAX_BATCH;

/// An application message that passed every check that needs no database.
pub struct Submission {
    pub group_id: GroupId,
    pub sender: GroupMember,
    pub txn_id: String,
    pub payload: Vec<u8>,
    pub epoch: u64,
    pub expires_at: Option<OffsetDateTime>,
}

impl Submission {
    fn key(&self) -> SubmitKey {
        submit_key(&self.group_id, &self.sender, &self.txn_id)
    }
}

/// The hub's answer to an accepted submission.
pub struct Written {
    pub accepted: Accepted,
    /// Local devices the message was fanned out to; `None` for a retry answered from
    /// what the first submission got.
    pub fanout: Option<usize>,
}

struct Pending {
    submission: Submission,
    reply: oneshot::Sender<Result<Written, ApiError>>,
}

/// Where the hub's rules come from.
pub struct WriterRules {
    pub server_name: ServerName,
    pub past_epochs_accepted: u64,
    /// With federation: messages for other servers' members are queued for them.
    pub remote: Option<Arc<Remote>>,
}

/// Hands submissions to the writer task and waits for their answer.
pub struct MessageWriter {
    queue: mpsc::Sender<Pending>,
}

/// The writer task, for the caller to spawn (see `MessageWriter::new`).
pub struct WriterTask {
    incoming: mpsc::Receiver<Pending>,
    pool: Pool,
    rules: WriterRules,
    waker: Arc<InboxWaker>,
}

impl WriterTask {
    /// Writes submissions until the last `MessageWriter` handle is dropped.
    pub async fn run(self) {
        run(self.incoming, self.pool, self.rules, self.waker).await;
    }
}

impl MessageWriter {
    /// A writer and the one task that writes what it is handed. (Two writers with
    /// overlapping transactions measured no faster here, and one writer per process never
    /// contends with itself for locks.)
    pub fn new(pool: Pool, rules: WriterRules, waker: Arc<InboxWaker>) -> (Self, WriterTask) {
        let (queue, incoming) = mpsc::channel(QUEUE_DEPTH);
        let task = WriterTask {
            incoming,
            pool,
            rules,
            waker,
        };
        (Self { queue }, task)
    }

    pub async fn submit(&self, submission: Submission) -> Result<Written, ApiError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ApiError::internal("message writer", "the writer task has stopped");
        self.queue
            .send(Pending { submission, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(mut incoming: mpsc::Receiver<Pending>, pool: Pool, rules: WriterRules, waker: Arc<InboxWaker>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut carried = Vec::new();
    loop {
        batch.append(&mut carried);
        if batch.is_empty() && incoming.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        while batch.len() < MAX_BATCH
            && let Ok(pending) = incoming.try_recv()
        {
            batch.push(pending);
        }
        carried = write_or_split(&pool, &rules, &waker, std::mem::take(&mut batch)).await;
    }
}

/// Writes a batch; if the transaction fails, writes each submission on its own so one
/// that cannot be written fails alone. Returns the submissions to try again next round.
async fn write_or_split(pool: &Pool, rules: &WriterRules, waker: &InboxWaker, batch: Vec<Pending>) -> Vec<Pending> {
    let batch = match write_batch(pool, rules, waker, batch).await {
        Ok(carried) => return carried,
        // Without a database, one at a time would only fail slower.
        Err((err, batch))
            if batch.len() == 1 || matches!(err.code, ErrorCode::Unavailable | ErrorCode::DatabaseUnavailable) =>
        {
            answer_all(batch, &err);
            return Vec::new();
        }
        Err((err, batch)) => {
            tracing::warn!(error = %err, size = batch.len(), "message batch failed; writing its messages one by one");
            batch
        }
    };
    let mut carried = Vec::new();
    for pending in batch {
        match write_batch(pool, rules, waker, vec![pending]).await {
            Ok(mut again) => carried.append(&mut again),
            Err((err, failed)) => answer_all(failed, &err),
        }
    }
    carried
}

fn answer_all(batch: Vec<Pending>, err: &ApiError) {
    for pending in batch {
        let _ = pending.reply.send(Err(err.clone()));
    }
}

/// What the hub decided for one submission of a batch.
enum Decision {
    Write { seq: i64, group_epoch: u64 },
    Answer(Result<Written, ApiError>),
}

/// One transaction for the whole batch. On success every submission has been answered
/// except those returned to be carried into the next batch (a second submission with a
/// transaction id already in this batch, or the whole batch when a concurrent process
/// stored one of its transaction ids first). On failure nothing is answered.
async fn write_batch(
    pool: &Pool,
    rules: &WriterRules,
    waker: &InboxWaker,
    batch: Vec<Pending>,
) -> Result<Vec<Pending>, (ApiError, Vec<Pending>)> {
    // A retry of a submission in this same batch waits for the next one, where it finds
    // the first one's stored answer.
    let mut seen = HashSet::new();
    let (batch, carried): (Vec<_>, Vec<_>) = batch.into_iter().partition(|p| seen.insert(p.submission.key()));
    let written = match pool.get().await {
        Ok(mut db) => decide_and_write(&mut db, rules, &batch).await,
        Err(e) => Err(e.into()),
    };
    let decided = match written {
        Ok(decided) => decided,
        Err(e) => {
            let mut failed = batch;
            failed.extend(carried);
            return Err((e, failed));
        }
    };
    let Some(decided) = decided else {
        // Another process stored one of these transaction ids after we looked: the
        // transaction was rolled back; next round finds the stored answers.
        let mut again = batch;
        again.extend(carried);
        return Ok(again);
    };
    for ((pending, decision), fanout) in batch.into_iter().zip(decided.decisions).zip(decided.fanouts) {
        let answer = match decision {
            Decision::Write { seq, group_epoch } => Ok(Written {
                accepted: Accepted {
                    group_id: pending.submission.group_id,
                    seq,
                    epoch: group_epoch,
                },
                fanout: Some(fanout),
            }),
            Decision::Answer(answer) => answer,
        };
        let _ = pending.reply.send(answer);
    }
    waker.deliver(decided.fresh);
    if let Some(remote) = &rules.remote {
        remote.outbound.kick(decided.destinations);
    }
    Ok(carried)
}

/// What a committed batch decided, submission by submission, and what it wrote.
struct Decided {
    decisions: Vec<Decision>,
    /// Inbox entries written for each submission.
    fanouts: Vec<usize>,
    /// Every inbox entry written, in position order.
    fresh: Vec<FreshEntry>,
    /// Other servers messages were queued for.
    destinations: BTreeSet<String>,
}

/// Decides every submission under the group locks and writes the accepted ones. `None`
/// when a transaction id turned out to be taken by a concurrent writer (rolled back).
async fn decide_and_write(
    db: &mut deadpool_postgres::Client,
    rules: &WriterRules,
    batch: &[Pending],
) -> Result<Option<Decided>, ApiError> {
    let tx = db.transaction().await?;
    let mut group_ids: Vec<&str> = batch.iter().map(|p| p.submission.group_id.as_str()).collect();
    group_ids.sort_unstable();
    group_ids.dedup();
    let submitted: Vec<SubmitKey> = batch.iter().map(|p| p.submission.key()).collect();
    // Pipelined, in order: the groups are locked before their members are read.
    let (locked, members, prior) = tokio::try_join!(
        store::groups::lock_many(&tx, &group_ids),
        store::groups::members_of_many(&tx, &group_ids),
        store::groups::prior_submits(&tx, &submitted),
    )?;

    let mut groups: HashMap<String, LockedGroup> = locked.into_iter().collect();
    let decisions: Vec<Decision> = batch
        .iter()
        .map(|pending| decide(rules, &mut groups, &members, &prior, &pending.submission))
        .collect();

    let sent_at = OffsetDateTime::now_utc();
    let mut messages = Vec::new();
    let mut entries = Vec::new();
    let mut queued = Vec::new();
    for (pending, decision) in batch.iter().zip(&decisions) {
        let Decision::Write { seq, .. } = decision else {
            continue;
        };
        let s = &pending.submission;
        messages.push(NewMessage {
            group_id: &s.group_id,
            seq: *seq,
            epoch: s.epoch,
            kind: KIND_APPLICATION,
            sender: &s.sender,
            txn_id: &s.txn_id,
            payload: &s.payload,
            welcome: None,
            members: None,
            sent_at,
            expires_at: s.expires_at,
        });
        let group_members = members.get(s.group_id.as_str()).into_iter().flatten();
        if rules.remote.is_some() {
            let servers = remote_servers(&rules.server_name, group_members.clone());
            queued.extend(servers.into_iter().map(|server| (server, s.group_id.as_str(), *seq)));
        }
        let leaving = groups
            .get(s.group_id.as_str())
            .map(|g| g.leaving.as_slice())
            .unwrap_or_default();
        let others =
            group_members.filter(|m| **m != s.sender && !leaving.iter().any(|u| u.as_str() == m.user_id.as_str()));
        entries.extend(
            local_recipients(&rules.server_name, others)
                .into_iter()
                .map(|r| NewEntry {
                    expires_at: s.expires_at,
                    ..r.entry(InboxEntryKind::Message, &s.group_id, *seq)
                }),
        );
    }
    if messages.is_empty() {
        // Nothing to write: the locks go with the transaction.
        drop(tx);
        return Ok(Some(Decided {
            fanouts: vec![0; batch.len()],
            fresh: Vec::new(),
            decisions,
            destinations: BTreeSet::new(),
        }));
    }
    let last_seqs: Vec<(&str, i64)> = groups.iter().map(|(id, g)| (id.as_str(), g.last_seq)).collect();
    let queue_rows: Vec<(&str, &str, i64)> = queued.iter().map(|(d, g, seq)| (d.as_str(), *g, *seq)).collect();
    let (_, inserted, appended, ()) = tokio::try_join!(
        store::groups::set_last_seqs(&tx, &last_seqs),
        store::groups::insert_messages(&tx, &messages),
        store::inbox::append(&tx, &entries),
        store::federation::enqueue(&tx, &queue_rows),
    )?;
    if inserted != messages.len() as u64 {
        drop(tx);
        return Ok(None);
    }
    tx.commit().await?;
    let destinations = queued.into_iter().map(|(server, ..)| server.to_string()).collect();
    Ok(Some(committed(batch, decisions, appended, sent_at, destinations)))
}

/// The per-submission fan-out counts and the entries for connected readers, from the
/// inbox rows a committed batch wrote.
fn committed(
    batch: &[Pending],
    decisions: Vec<Decision>,
    appended: Vec<Appended>,
    sent_at: OffsetDateTime,
    destinations: BTreeSet<String>,
) -> Decided {
    let index: HashMap<(&str, i64), usize> = batch
        .iter()
        .zip(&decisions)
        .enumerate()
        .filter_map(|(i, (p, d))| match d {
            Decision::Write { seq, .. } => Some(((p.submission.group_id.as_str(), *seq), i)),
            Decision::Answer(_) => None,
        })
        .collect();
    let mut fanouts = vec![0; batch.len()];
    let mut fresh = Vec::with_capacity(appended.len());
    for appended in appended {
        let Some(&i) = index.get(&(appended.group_id.as_str(), appended.seq)) else {
            continue;
        };
        fanouts[i] += 1;
        let s = &batch[i].submission;
        fresh.push(FreshEntry {
            device_id: appended.device_id,
            entry: InboxEntry {
                cursor: appended.position,
                kind: InboxEntryKind::Message,
                group_id: s.group_id.clone(),
                seq: appended.seq,
                epoch: s.epoch,
                sender: s.sender.clone(),
                payload: Some(s.payload.clone().into()),
                sent_at,
                expires_at: s.expires_at,
            },
        });
    }
    fresh.sort_unstable_by_key(|f| f.entry.cursor);
    Decided {
        decisions,
        fanouts,
        fresh,
        destinations,
    }
}

/// The hub's decision on one submission, taking the group's next sequence number if it
/// is accepted.
fn decide(
    rules: &WriterRules,
    groups: &mut HashMap<String, LockedGroup>,
    members: &HashMap<String, Vec<GroupMember>>,
    prior: &HashMap<SubmitKey, PriorSubmit>,
    s: &Submission,
) -> Decision {
    if let Some(first) = prior.get(&s.key()) {
        return Decision::Answer(accepted_before(first.clone()).map(|accepted| Written { accepted, fanout: None }));
    }
    let Some(group) = groups.get_mut(s.group_id.as_str()) else {
        return Decision::Answer(Err(super::not_a_member(&s.group_id)));
    };
    if let Some(refused) = refusal(rules, group, members, s) {
        return Decision::Answer(Err(refused));
    }
    group.last_seq += 1;
    Decision::Write {
        seq: group.last_seq,
        group_epoch: group.epoch,
    }
}

fn refusal(
    rules: &WriterRules,
    group: &LockedGroup,
    members: &HashMap<String, Vec<GroupMember>>,
    s: &Submission,
) -> Option<ApiError> {
    let is_member = members.get(s.group_id.as_str()).is_some_and(|m| m.contains(&s.sender));
    // A user who left sends nothing more (see `hub::leave`).
    if !is_member || group.leaving.iter().any(|u| u.as_str() == s.sender.user_id.as_str()) {
        return Some(super::not_a_member(&s.group_id));
    }
    if s.epoch > group.epoch || group.epoch - s.epoch > rules.past_epochs_accepted || s.epoch < group.min_epoch {
        return Some(ApiError::wrong_epoch(s.epoch, group.epoch));
    }
    // Read with the group's row: no query of its own.
    if !group.revoked.is_empty() {
        return Some(super::revoked::refusal(&s.group_id, &group.revoked));
    }
    None
}
