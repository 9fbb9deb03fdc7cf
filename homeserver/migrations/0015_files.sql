-- Encrypted files (blobs): their ciphertext is in the blob store (`[files] dir`); this is
-- what the server knows of each: whose, for which group, how large, how far uploaded,
-- and when it goes. Followers keep no rows: they fetch from the origin for their users.
CREATE TABLE blobs (
    blob_id TEXT PRIMARY KEY,
    owner_user TEXT NOT NULL,
    owner_device TEXT NOT NULL,
    -- The group it was posted in: servers with members there may fetch it.
    group_id TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    received BIGINT NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= size),
    complete BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Its message disappears then.
    expires_at TIMESTAMPTZ,
    -- A PUT is writing until then: one writer per upload, on any process.
    writing_until TIMESTAMPTZ
);
CREATE INDEX blobs_by_owner ON blobs (owner_user);
CREATE INDEX blobs_expiry ON blobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX blobs_age ON blobs (created_at);
