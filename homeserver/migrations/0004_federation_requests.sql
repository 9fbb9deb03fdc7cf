-- Signed federation requests seen recently, by a hash of their signature: a request seen
-- again within the clock-skew window is a replay. Rows older than the window are swept.
CREATE TABLE federation_seen_requests (
    replay_key  TEXT PRIMARY KEY,
    seen_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX federation_seen_requests_age ON federation_seen_requests (seen_at);
