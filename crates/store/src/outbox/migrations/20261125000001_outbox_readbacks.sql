-- Issue 12: `attempts` counts sends (it counted every claim, read-backs and the give-up
-- included); read-backs are counted on their own. Both are added by the relay's finish, not by
-- the claim, so holding a notification back (a paused provider) is no attempt.
ALTER TABLE notifications ADD COLUMN readbacks integer NOT NULL DEFAULT 0;
