-- Key backup: each account's end-to-end encrypted backup, as opaque chunks its devices
-- write and read (key_backup.rs). The server never holds the key; it keeps bytes, a
-- version per chunk for optimistic concurrency, and counts the bytes against a quota.
CREATE TABLE key_backup_chunks (
    localpart   TEXT NOT NULL REFERENCES accounts (localpart) ON DELETE CASCADE,
    chunk_id    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    size        BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (localpart, chunk_id)
);

-- Bytes each account's chunks take, kept in step with the chunks (one row per account
-- with a backup): the quota check reads one row, under its lock, instead of summing.
CREATE TABLE key_backup_usage (
    localpart   TEXT PRIMARY KEY REFERENCES accounts (localpart) ON DELETE CASCADE,
    used_bytes  BIGINT NOT NULL DEFAULT 0
);
