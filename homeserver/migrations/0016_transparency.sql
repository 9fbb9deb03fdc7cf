-- Key transparency: this server's auditable key directory (the `akd` crate's storage) and
-- what it learns auditing other servers' directories. See protocol.md, "Key transparency".

-- The directory's tree and its state record, by akd's binary id. kind: 1 the aZKS state
-- record (one row), 2 a tree node (with its previous value).
CREATE TABLE transparency_records (
    kind   SMALLINT NOT NULL,
    id     BYTEA    NOT NULL,
    record BYTEA    NOT NULL,
    PRIMARY KEY (kind, id)
);

-- Each published value of each user (label = the user id), one row per epoch it changed in.
CREATE TABLE transparency_values (
    username BYTEA  NOT NULL,
    epoch    BIGINT NOT NULL,
    version  BIGINT NOT NULL,
    record   BYTEA  NOT NULL,
    PRIMARY KEY (username, epoch)
);
CREATE UNIQUE INDEX transparency_values_by_version ON transparency_values (username, version);

-- Users whose device list changed since it was last published. Written in the same
-- transaction as the change itself (a key bound, a device deleted), deleted in the same
-- transaction as the epoch that publishes it: a device is vouched for exactly when it is
-- published or pending. change_seq tells a change made while an epoch was being built
-- (it keeps its row for the next epoch).
CREATE SEQUENCE transparency_change_seq;
CREATE TABLE transparency_pending (
    localpart  TEXT   PRIMARY KEY,
    change_seq BIGINT NOT NULL
);

-- This server's signed root of each epoch (one per epoch, never replaced).
CREATE TABLE transparency_roots (
    epoch  BIGINT PRIMARY KEY,
    signed JSONB  NOT NULL
);

-- Other servers' signed roots, as this server received and checked them while auditing.
CREATE TABLE transparency_peer_roots (
    server     TEXT        NOT NULL,
    epoch      BIGINT      NOT NULL,
    signed     JSONB       NOT NULL,
    audited_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (server, epoch)
);

-- Failed audits: a proof that did not verify, a bad signature, an epoch going backwards
-- or missing, two roots for one epoch.
CREATE TABLE transparency_audit_failures (
    id          BIGSERIAL   PRIMARY KEY,
    server      TEXT        NOT NULL,
    epoch       BIGINT,
    reason      TEXT        NOT NULL,
    evidence    JSONB,
    detected_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX transparency_audit_failures_by_server ON transparency_audit_failures (server, id);

-- Devices bound before this migration are published in the first epoch.
INSERT INTO transparency_pending (localpart, change_seq)
SELECT localpart, nextval('transparency_change_seq')
FROM (SELECT DISTINCT localpart FROM devices WHERE mls_signature_key IS NOT NULL) AS bound;
