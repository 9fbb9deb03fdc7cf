-- MLS KeyPackages uploaded by devices, waiting to be claimed by people adding them to
-- groups. One-time packages are deleted when claimed; a device's single last-resort
-- package is handed out when it has no other and is never consumed.
CREATE TABLE key_packages (
    id           BIGSERIAL PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    hash_ref     BYTEA NOT NULL UNIQUE,      -- KeyPackageRef (RFC 9420, 5.2)
    key_package  BYTEA NOT NULL,             -- TLS-serialized, as uploaded
    last_resort  BOOLEAN NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    uploaded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX key_packages_claim ON key_packages (device_id, last_resort, id);
CREATE UNIQUE INDEX key_packages_one_last_resort ON key_packages (device_id) WHERE last_resort;
