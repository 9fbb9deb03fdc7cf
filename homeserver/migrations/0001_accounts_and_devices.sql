-- Accounts of this server's domain. The user id is localpart@server_name.
CREATE TABLE accounts (
    localpart      TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,          -- Argon2id PHC string
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A device is one login session and, later, one MLS client. Its access token is
-- stored only as a SHA-256 hash; deleting the device revokes the token.
CREATE TABLE devices (
    device_id      TEXT PRIMARY KEY,
    localpart      TEXT NOT NULL REFERENCES accounts (localpart) ON DELETE CASCADE,
    display_name   TEXT NOT NULL,
    token_hash     BYTEA NOT NULL UNIQUE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX devices_by_account ON devices (localpart);
