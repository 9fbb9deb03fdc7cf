-- Users who left a group hubbed here (POST /client/v1/groups/{g}/leave) whose leaves no
-- commit has removed yet, as user ids; empty when none. Set under the group's row lock.
-- While a user is listed, the hub takes no application message from their devices,
-- writes no inbox entry for them, and takes no commit that keeps one of their leaves
-- (`member_left`); a member who is not an admin may commit their removal. On a follower
-- (the leaver's own server) it lists the users of this server who left, whose devices
-- get no more inbox entries of the group. The first commit without their leaves clears
-- them.
ALTER TABLE groups ADD COLUMN leaving_users TEXT[] NOT NULL DEFAULT '{}';
