-- The GroupInfo of each group's current epoch, as its creator or last committer signed
-- it (an MLSMessage, without the ratchet-tree extension: the hub serves the tree from
-- public_state). Served to member devices and to new devices of member users, which
-- join by external commit. NULL on rows of groups hubbed elsewhere, and on groups
-- created before this column, until their next commit.
ALTER TABLE groups ADD COLUMN group_info BYTEA;
