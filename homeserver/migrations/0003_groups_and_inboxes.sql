-- Groups hubbed on this server. public_state is the hub's openmls PublicGroup storage
-- (see hub/public_state.rs); last_seq numbers the group's messages.
CREATE TABLE groups (
    group_id      TEXT PRIMARY KEY,
    epoch         BIGINT NOT NULL,
    last_seq      BIGINT NOT NULL DEFAULT 0,
    public_state  BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The member devices of each group, as of its latest commit; derived from public_state
-- and kept beside it for routing and membership checks.
CREATE TABLE group_members (
    group_id   TEXT NOT NULL REFERENCES groups (group_id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id, device_id)
);
CREATE INDEX group_members_by_device ON group_members (device_id);

-- Every accepted message once, in hub order. txn_id makes a retried submit idempotent.
CREATE TABLE group_messages (
    group_id       TEXT NOT NULL REFERENCES groups (group_id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    epoch          BIGINT NOT NULL,
    sender_user    TEXT NOT NULL,
    sender_device  TEXT NOT NULL,
    kind           SMALLINT NOT NULL,       -- 1 commit, 2 application
    txn_id         TEXT NOT NULL,
    payload        BYTEA NOT NULL,
    welcome        BYTEA,
    expires_at     TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, seq),
    UNIQUE (sender_device, txn_id)
);
CREATE INDEX group_messages_expiry ON group_messages (expires_at) WHERE expires_at IS NOT NULL;

-- Each device's inbox: small rows pointing at group_messages. Positions are per device
-- and handed out under the device's row lock, so a reader that has seen position n has
-- seen every committed entry below n.
ALTER TABLE devices ADD COLUMN inbox_position BIGINT NOT NULL DEFAULT 0;
CREATE TABLE inbox (
    device_id       TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    position        BIGINT NOT NULL,
    kind            SMALLINT NOT NULL,       -- 1 message, 2 welcome, 3 receipt
    group_id        TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    receipt_user    TEXT,                    -- receipts: the device that received
    receipt_device  TEXT,
    expires_at      TIMESTAMPTZ,
    PRIMARY KEY (device_id, position)
);
CREATE INDEX inbox_expiry ON inbox (expires_at) WHERE expires_at IS NOT NULL;
