-- Second factor (TOTP, RFC 6238), optional per account (second_factor/).

-- An account's TOTP secret, sealed (XChaCha20-Poly1305) with the key in the
-- `[second_factor] key_file` outside the database: never stored in clear. confirmed_at
-- NULL: an enrolment waiting for its first code; logins need no code until it is set.
-- last_used_step: the 30-second step of the last accepted code; a code of that step or
-- an earlier one is refused (no replay).
CREATE TABLE second_factors (
    localpart      TEXT PRIMARY KEY REFERENCES accounts (localpart) ON DELETE CASCADE,
    secret_sealed  BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    confirmed_at   TIMESTAMPTZ,
    last_used_step BIGINT NOT NULL DEFAULT 0
);

-- Single-use recovery codes: only the SHA-256 of each (80 random bits, see
-- second_factor/mod.rs), marked when used.
CREATE TABLE second_factor_recovery_codes (
    localpart TEXT NOT NULL REFERENCES second_factors (localpart) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL,
    used_at   TIMESTAMPTZ,
    PRIMARY KEY (localpart, code_hash)
);
