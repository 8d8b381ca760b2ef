-- Explicit archive rows (issue 9): identity answers ROW_OUTCOME_ARCHIVED for a status=archived row
-- that archived an ACTIVE student. The outcome is recorded like any other and counted on the job
-- (jobs.archived), moved by the same statement that records a batch's outcomes. Additive: the version
-- still running during a rollout never writes the new value and ignores the new column.
ALTER TABLE row_results DROP CONSTRAINT row_results_outcome_check;
ALTER TABLE row_results ADD CONSTRAINT row_results_outcome_check
    CHECK (outcome IN ('CREATED', 'UPDATED', 'UNCHANGED', 'SKIPPED', 'FAILED', 'ARCHIVED'));
ALTER TABLE jobs ADD COLUMN archived bigint NOT NULL DEFAULT 0;
