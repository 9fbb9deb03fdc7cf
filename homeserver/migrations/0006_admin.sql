-- Operator actions through the admin API.

-- A deactivated account cannot log in; deactivating it also deleted its devices (their
-- tokens, inboxes and KeyPackages). Reactivating clears the mark; the user logs in anew.
ALTER TABLE accounts ADD COLUMN deactivated_at TIMESTAMPTZ;

-- The federation allow and deny lists as edited through the admin API. When the row
-- exists it replaces the configuration file's lists; every process rereads it each
-- second. allow NULL: every server not denied.
CREATE TABLE federation_policy (
    singleton   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    allow       TEXT[],
    deny        TEXT[] NOT NULL DEFAULT '{}',
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
