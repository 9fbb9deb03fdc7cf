-- Devices of this server's users that were revoked (deleted) while they had a leaf in a
-- group hubbed here, as [{"user_id", "device_id"}]; NULL when none. Set in the
-- transaction that revokes the device, cleared by the first accepted commit that
-- leaves none of them in the group. While set, the hub accepts no application message
-- and no commit that keeps such a leaf (`member_revoked`): nothing is ever encrypted
-- again to an epoch a revoked device can read. It is read with the group's row lock,
-- which every submit takes anyway.
ALTER TABLE groups ADD COLUMN revoked_members JSONB;

-- The oldest epoch the hub takes application messages for: set to the epoch a commit
-- that removed revoked devices starts, so that a member that did not process that commit
-- yet cannot encrypt for an epoch the revoked devices can read (past_epochs_accepted
-- would allow it otherwise). The hub answers such a message `wrong_epoch`.
ALTER TABLE groups ADD COLUMN min_epoch BIGINT NOT NULL DEFAULT 0;
