-- Groups hubbed on other servers that have members here are kept in the same tables:
-- this server stores the hub's ordered messages of them for its own devices. Their rows
-- have no public state (only the hub validates commits); last_seq is the highest message
-- stored without a gap before it.
ALTER TABLE groups ALTER COLUMN public_state DROP NOT NULL;

-- With a commit: the group's member devices after it, as [{"user_id", "device_id"}].
-- Followers route by it; the hub sends it with the commit.
ALTER TABLE group_messages ADD COLUMN members JSONB;

-- A retried submit is recognised within its group: devices of different servers may
-- share ids, and one device may use a transaction id in groups of different hubs.
ALTER TABLE group_messages DROP CONSTRAINT group_messages_sender_device_txn_id_key;
ALTER TABLE group_messages
    ADD CONSTRAINT group_messages_submit_once UNIQUE (group_id, sender_user, sender_device, txn_id);

-- Other servers this one sends group messages to, with their retry state. A sender
-- holds a destination's row lock (FOR NO KEY UPDATE SKIP LOCKED) while it sends, so one
-- process at a time sends to a destination and its messages stay in order.
CREATE TABLE federation_destinations (
    destination      TEXT PRIMARY KEY,
    failures         INT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error       TEXT
);

-- Messages waiting to be sent, in order per destination; a row is written in the
-- transaction that accepts the message and deleted once the destination has it.
CREATE TABLE federation_queue (
    id           BIGSERIAL PRIMARY KEY,
    destination  TEXT NOT NULL REFERENCES federation_destinations (destination),
    group_id     TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    enqueued_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX federation_queue_by_destination ON federation_queue (destination, id);
