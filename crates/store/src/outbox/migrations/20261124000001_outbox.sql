-- The notification outbox (issue 7). One row per Idempotency-Key.
CREATE TABLE notifications (
    key                 text PRIMARY KEY,
    id                  text NOT NULL,
    fingerprint         bytea NOT NULL,
    request             jsonb NOT NULL,
    channel             text NOT NULL,
    provider            text NOT NULL,
    guard_key           bytea,
    duplicate_of        text,
    accepted_status     text NOT NULL,
    status              text NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    -- When it is due; while 'sending', when the lease ends. NULL: no more work.
    next_attempt_at     timestamptz,
    lease               text,
    first_attempt_at    timestamptz,
    provider_message_id text,
    last_error          text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    delivered_at        timestamptz,
    not_after           timestamptz,
    expires_at          timestamptz NOT NULL
);

-- What relays claim.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
-- The content guard.
CREATE INDEX notifications_guard ON notifications (guard_key, created_at DESC) WHERE guard_key IS NOT NULL;
-- The purge of expired keys.
CREATE INDEX notifications_expiry ON notifications (expires_at);
