-- Change events for internal platforms (issue 10; api.md "Events"; domain/events.py).
--
-- Every audited change writes its event here in the same transaction (the audit append does both),
-- with the user or school as it is right after the change (snapshot: the same columns the services
-- read, never secrets). event_sequences numbers each subject's events 1, 2, 3, ... under a row lock,
-- so a subject's events are numbered — and, through ``position``, ordered — in commit order. The
-- relay (``identity-service relay``; one leader at a time) publishes unpublished rows by position
-- with publisher confirms and stamps published_time; published rows are purged after
-- ROLLCALL_EVENTS_RETENTION_HOURS.
CREATE TABLE event_sequences (
    subject text PRIMARY KEY,
    last    bigint NOT NULL CHECK (last >= 1)
);

CREATE TABLE event_outbox (
    position       bigserial PRIMARY KEY,
    id             uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    type           text NOT NULL,
    subject        text NOT NULL,
    sequence       bigint NOT NULL,
    time           timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id       text NULL,
    client         text NOT NULL DEFAULT '',
    kind           text NOT NULL CHECK (kind IN ('user', 'user_deleted', 'school')),
    changed_fields text[] NOT NULL DEFAULT '{}',
    snapshot       jsonb NULL,
    published_time timestamptz NULL,
    UNIQUE (subject, sequence)
);

CREATE INDEX event_outbox_unpublished ON event_outbox (position) WHERE published_time IS NULL;
CREATE INDEX event_outbox_published ON event_outbox (published_time) WHERE published_time IS NOT NULL;
