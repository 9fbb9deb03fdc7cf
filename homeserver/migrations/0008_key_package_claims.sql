-- Who took which device's KeyPackages in the last hour, so that nobody can drain a
-- device's one-time packages: past a claimer's (or everyone's) hourly budget of a
-- device, claims get the device's last-resort package instead. Rows older than an hour
-- are deleted as the device is claimed again. `claimer` is a local user id, or the
-- server name of another server claiming for its users.
CREATE TABLE key_package_claims (
    device_id   TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    claimer     TEXT NOT NULL,
    one_time    BOOLEAN NOT NULL,
    claimed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX key_package_claims_of_device ON key_package_claims (device_id, claimed_at);
