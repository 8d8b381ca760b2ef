-- Undo (issue 9): each recorded outcome that changed a student keeps the student's version after
-- the row's change, so an undo can tell a student nobody touched since (same version) from one that
-- anything else changed (staff, an email change, another job: every change bumps version). NULL for
-- rows that changed nothing and for outcomes recorded before this migration (never undone blindly:
-- a NULL version reads as "changed since").
ALTER TABLE import_row_outcomes ADD COLUMN user_version bigint NULL;

-- Which job undid which: a job is undone at most once, and an undo job is never undone itself.
CREATE TABLE import_job_undos (
    job_id      text PRIMARY KEY CHECK (char_length(job_id) BETWEEN 1 AND 128),
    undo_job_id text NOT NULL UNIQUE CHECK (char_length(undo_job_id) BETWEEN 1 AND 128),
    undo_time   timestamptz NOT NULL DEFAULT now()
);

-- An undo deletes the students the job created: its outcome for them is DELETED.
ALTER TABLE import_row_outcomes DROP CONSTRAINT IF EXISTS import_row_outcomes_outcome_check;
ALTER TABLE import_row_outcomes ADD CONSTRAINT import_row_outcomes_outcome_check
    CHECK (outcome IN ('CREATED', 'UPDATED', 'UNCHANGED', 'SKIPPED', 'FAILED', 'ARCHIVED', 'DELETED'));
