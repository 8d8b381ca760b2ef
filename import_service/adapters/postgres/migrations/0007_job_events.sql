-- import_job.* events (issue 10; api.md "Events"): the same outbox as identity's (shared/events),
-- written by a trigger in the transaction that moves a job to COMPLETED or HELD — whichever statement
-- does it (recording a batch, an end, the job runner's steps) — with the job as it is then.
-- event_sequences numbers a job's events (held, then completed after a release) under a row lock.
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
    kind           text NOT NULL CHECK (kind IN ('job')),
    changed_fields text[] NOT NULL DEFAULT '{}',
    snapshot       jsonb NULL,
    published_time timestamptz NULL,
    UNIQUE (subject, sequence)
);

CREATE INDEX event_outbox_unpublished ON event_outbox (position) WHERE published_time IS NULL;
CREATE INDEX event_outbox_published ON event_outbox (published_time) WHERE published_time IS NOT NULL;

CREATE FUNCTION job_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    numbered bigint;
BEGIN
    INSERT INTO event_sequences AS s (subject, last) VALUES (NEW.job_id, 1)
    ON CONFLICT (subject) DO UPDATE SET last = s.last + 1
    RETURNING last INTO numbered;
    INSERT INTO event_outbox (type, subject, sequence, actor_id, client, kind, snapshot)
    VALUES (
        CASE NEW.phase WHEN 'HELD' THEN 'import_job.held' ELSE 'import_job.completed' END,
        NEW.job_id,
        numbered,
        NEW.decided_by,
        'import',
        'job',
        to_jsonb(NEW) || jsonb_build_object(
            'dead_lettered',
            (SELECT count(*) FROM dead_letters d WHERE d.job_id = NEW.job_id AND d.school_id = NEW.school_id))
    );
    RETURN NEW;
END
$$;

-- WHEN keeps the trigger off the hot path: recording a batch sets phase to itself.
CREATE TRIGGER jobs_events AFTER UPDATE OF phase ON jobs
    FOR EACH ROW WHEN (NEW.phase IS DISTINCT FROM OLD.phase AND NEW.phase IN ('COMPLETED', 'HELD'))
    EXECUTE FUNCTION job_event();
