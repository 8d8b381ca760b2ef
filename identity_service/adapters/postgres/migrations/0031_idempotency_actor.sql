-- request_id is scoped to the actor for platform calls (issue 7): two staff members signed in to one
-- web client may pick the same request_id for different requests, and each gets its own answer.
--
-- Expand step: the answers move to a table keyed by (client, actor, request_id), actor '' for calls
-- without one (admin, importer, sign-up: still one key per client and request_id). The old table
-- stays untouched, so the version still running during a rollout keeps working on it, and the new
-- version still reads an answer from it (only when the fingerprint, which covers the actor, matches)
-- until it expires (48 hours). A later contract migration drops idempotency_records.
CREATE TABLE idempotency_answers (
    client         text NOT NULL,
    actor          text NOT NULL DEFAULT '',
    request_id     text NOT NULL,
    rpc            text NOT NULL,
    request_sha256 bytea NOT NULL,
    response       bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, actor, request_id)
);

CREATE INDEX idempotency_answers_created_at ON idempotency_answers (created_at);
