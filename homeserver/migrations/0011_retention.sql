-- Retention: the sweeper (retention.rs) deletes what only grows, in small batches.

-- Inbox entries dropped by retention (the device was idle too long, or the message
-- outlived the longest retention) before the device read them: the highest position
-- dropped and how many, until the device acknowledges past that position. The inbox
-- API tells the device it missed messages while it is set.
ALTER TABLE devices ADD COLUMN inbox_dropped_through BIGINT;
ALTER TABLE devices ADD COLUMN inbox_dropped_count BIGINT NOT NULL DEFAULT 0;

-- The sweeper walks messages oldest first, from where its last batch stopped.
CREATE INDEX group_messages_age ON group_messages (created_at, group_id, seq);
-- Whether any inbox entry or queued send still needs a message.
CREATE INDEX inbox_by_message ON inbox (group_id, seq);
CREATE INDEX federation_queue_by_message ON federation_queue (group_id, seq);
-- Old claim records and expired one-time KeyPackages, found without a scan.
CREATE INDEX key_package_claims_age ON key_package_claims (claimed_at);
CREATE INDEX key_packages_expiry ON key_packages (expires_at) WHERE NOT last_resort;
