-- Issue 10, notifications by mail (product.md "What others are told"; docs/decisions.md "Issue 10 —
-- notifications"). Additive: the version still running during a rollout never reads these.

-- The notification kinds a school switched off (domain/notifications.NotificationKind values).
ALTER TABLE schools
    ADD COLUMN muted_notifications text[] NOT NULL DEFAULT '{}'
        CONSTRAINT schools_muted_notifications_bound CHECK (cardinality(muted_notifications) <= 16);

-- New pending requests no digest has counted yet: one row per sign-up, written in its transaction.
-- A digest takes (deletes) its school's rows in the transaction that queues it; a request deleted or
-- merged away takes its row with it.
CREATE TABLE pending_digest_items (
    user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    school_id   uuid NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX pending_digest_items_school ON pending_digest_items (school_id);

-- Each school's digest claim: when its last digest was queued (by the courier's clock). Locked with
-- FOR UPDATE SKIP LOCKED and moved in the transaction that queues the digest, so two couriers never
-- both queue one, and a school never gets two within the digest interval (an hour).
CREATE TABLE pending_digests (
    school_id        uuid PRIMARY KEY,
    last_digest_time timestamptz NOT NULL DEFAULT '-infinity',
    last_count       integer NOT NULL DEFAULT 0 CHECK (last_count >= 0)
);

-- Events (import_job.held, import_job.completed) the courier's consumer handled, by event id. The
-- mails of one event are queued in the transaction that inserts its id, so an event delivered again
-- queues nothing. Purged after 30 days by the digest timer.
CREATE TABLE notification_events (
    event_id      text PRIMARY KEY CHECK (char_length(event_id) BETWEEN 1 AND 200),
    type          text NOT NULL CHECK (char_length(type) <= 100),
    subject       text NOT NULL CHECK (char_length(subject) <= 300),
    mails         integer NOT NULL DEFAULT 0 CHECK (mails >= 0),
    received_time timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notification_events_received ON notification_events (received_time);
