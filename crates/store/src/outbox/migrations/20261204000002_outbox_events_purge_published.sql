-- Issue 17: a status event is deleted once every sink confirmed it (the table holds only what
-- is still to publish); the events an earlier version kept after publishing them go now.
DELETE FROM notification_events WHERE published_at IS NOT NULL;
