-- Issue 17: status events, written in the transaction of the status change they report and
-- published to the user's brokers and webhooks from here (at least once, by stable id).
CREATE TABLE notification_events (
    seq          bigserial PRIMARY KEY,
    id           text NOT NULL UNIQUE,
    event        jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    published_at timestamptz
);
CREATE INDEX notification_events_unpublished ON notification_events (seq) WHERE published_at IS NULL;
