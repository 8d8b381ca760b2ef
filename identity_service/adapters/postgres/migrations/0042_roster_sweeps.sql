-- Issue 9, full rosters: the end-of-job sweep of a full-roster job archives the school's ACTIVE file
-- students no row of the job named. One row per swept job (claimed by the sweep's transaction, so a
-- second call, or two at once, archive nobody new) and one per student it archived (the answer every
-- later call for the job returns). Additive: the version still running during a rollout never reads them.
CREATE TABLE roster_sweeps (
    job_id     text PRIMARY KEY CHECK (char_length(job_id) BETWEEN 1 AND 128),
    school_id  uuid NOT NULL REFERENCES schools (id),
    swept_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roster_archives (
    job_id        text NOT NULL REFERENCES roster_sweeps (job_id),
    user_id       uuid NOT NULL,
    username      text,
    email         text NOT NULL,
    archive_time  timestamptz NOT NULL,
    PRIMARY KEY (job_id, user_id)
);

-- The sweep reads the job's recorded outcomes by user: "named by a row of the job".
CREATE INDEX import_row_outcomes_job_user ON import_row_outcomes (job_id, user_id) WHERE user_id IS NOT NULL;
