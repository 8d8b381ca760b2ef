-- Issue 9, guarded full rosters: a DRY RUN of a full-roster job remembers which students its rows
-- named (nothing else of a dry run is written), so ArchiveStudentsNotInJob's dry run can tell who
-- the real sweep would archive: not named = neither in the job's recorded outcomes nor here. Written
-- by the dry-run batch's own transaction (one INSERT ... SELECT unnest, first row wins); the real
-- sweep of the job deletes them. Additive: the version still running during a rollout never reads it.
CREATE TABLE roster_previews (
    job_id      text NOT NULL CHECK (char_length(job_id) BETWEEN 1 AND 128),
    row_number  bigint NOT NULL,
    user_id     uuid NOT NULL,
    PRIMARY KEY (job_id, row_number)
);

-- The dry-run sweep asks "did a row of the job name this student?" per candidate.
CREATE INDEX roster_previews_job_user ON roster_previews (job_id, user_id);
