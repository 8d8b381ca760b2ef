-- Guarded jobs, full rosters and undo (issue 9; domain/jobs.py ``Phase``).
--
-- jobs.phase is where a job is in its life; jobs.after_rows what it becomes once every row has an
-- outcome (``phase_after_rows``, fixed when the job is created, read by the recording statements).
-- A guarded job's rows are first recorded as a dry-run preview (row_results.applied = false); the
-- job runner (lease columns: one process at a time per job) decides it against the school's
-- threshold (hold_* figures, kept after a release or discard), applies it (each row re-decided by
-- identity, its result replacing the preview, applied = true), sweeps a full roster (job_archives)
-- and runs undo jobs. Additive for the version still running during a rollout: its statements never
-- name the new columns, and a job it completes (complete_time set, phase untouched) reads as
-- COMPLETED (jobs_repo).
ALTER TABLE jobs
    ADD COLUMN full_roster boolean NOT NULL DEFAULT false,
    ADD COLUMN undo_of_job_id text NULL,
    ADD COLUMN guarded boolean NOT NULL DEFAULT false,
    ADD COLUMN phase text NOT NULL DEFAULT 'RECEIVING',
    ADD COLUMN after_rows text NOT NULL DEFAULT 'COMPLETED',
    ADD COLUMN rows_done_time timestamptz NULL,
    ADD COLUMN deleted bigint NOT NULL DEFAULT 0,
    ADD COLUMN hold_sensitive_changes bigint NULL,
    ADD COLUMN hold_archives bigint NULL,
    ADD COLUMN hold_school_students bigint NULL,
    ADD COLUMN hold_threshold_percent integer NULL,
    ADD COLUMN decided_by text NULL,
    ADD COLUMN lease_owner text NULL,
    ADD COLUMN lease_until timestamptz NULL;

UPDATE jobs SET phase = 'COMPLETED', rows_done_time = complete_time WHERE complete_time IS NOT NULL;

ALTER TABLE jobs ADD CONSTRAINT jobs_phase_check CHECK (phase IN
    ('RECEIVING', 'DECIDING', 'HELD', 'APPLYING', 'SWEEPING', 'UNDOING', 'COMPLETED', 'DISCARDED'));
ALTER TABLE jobs ADD CONSTRAINT jobs_after_rows_check CHECK (after_rows IN ('DECIDING', 'SWEEPING', 'COMPLETED'));

-- A job is undone at most once (UndoImportJob: JOB_NOT_UNDOABLE).
CREATE UNIQUE INDEX jobs_one_undo ON jobs (undo_of_job_id) WHERE undo_of_job_id IS NOT NULL;
-- What the job runner looks for (domain RUNNER_PHASES).
CREATE INDEX jobs_to_run ON jobs (create_time) WHERE phase IN ('DECIDING', 'APPLYING', 'SWEEPING', 'UNDOING');

ALTER TABLE row_results DROP CONSTRAINT row_results_outcome_check;
ALTER TABLE row_results ADD CONSTRAINT row_results_outcome_check
    CHECK (outcome IN ('CREATED', 'UPDATED', 'UNCHANGED', 'SKIPPED', 'FAILED', 'ARCHIVED', 'DELETED'));
ALTER TABLE row_results ADD COLUMN applied boolean NOT NULL DEFAULT true;
CREATE INDEX row_results_to_apply ON row_results (job_id, row_number) WHERE NOT applied;

-- The students a full-roster job archived (archive_time NULL: would archive, while it is held).
CREATE TABLE job_archives (
    job_id        text NOT NULL,
    user_id       text NOT NULL,
    username      text NOT NULL DEFAULT '',
    email_address text NOT NULL DEFAULT '',
    archive_time  timestamptz NULL,
    PRIMARY KEY (job_id, user_id)
);

-- Release, discard and undo idempotency: a request_id names one decision on one job.
CREATE TABLE job_decisions (
    request_id  text PRIMARY KEY,
    action      text NOT NULL CHECK (action IN ('RELEASE', 'DISCARD', 'UNDO')),
    job_id      text NOT NULL,
    result_job  text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now()
);
