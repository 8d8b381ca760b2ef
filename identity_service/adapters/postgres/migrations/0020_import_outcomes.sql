-- The outcome of every student-file row identity has applied, keyed by (job, row): applying the same
-- row again (a redelivered message, a retried call) returns this first outcome and changes nothing.
-- Rows of dry runs are never stored. Old rows may be purged by recorded_at once their jobs are done.
CREATE TABLE import_row_outcomes (
    job_id      text NOT NULL CHECK (char_length(job_id) BETWEEN 1 AND 128),
    row_number  bigint NOT NULL CHECK (row_number >= 1),
    outcome     text NOT NULL CHECK (outcome IN ('CREATED', 'UPDATED', 'UNCHANGED', 'SKIPPED', 'FAILED')),
    approved    boolean NOT NULL DEFAULT false,
    user_id     uuid,
    reason      text,
    message     text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, row_number)
);

CREATE INDEX import_row_outcomes_recorded_at ON import_row_outcomes (recorded_at);

-- Every row a file applies moves the student's import mark (last_import_*), UNCHANGED rows included,
-- so a re-sent roster rewrites each of its students. Those columns are in no index: with room left on
-- each page the rewrite is a HOT update that touches none of the users indexes. (Pages written from
-- now on keep 20 % free; existing pages get it when the table is next rewritten.)
ALTER TABLE users SET (fillfactor = 80);
