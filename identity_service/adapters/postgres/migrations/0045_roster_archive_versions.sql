-- Undo (issue 9) puts back a job's full-roster sweep too: each student the sweep archived keeps the
-- student's version right after the sweep's archive, so an undo can tell a student nobody touched
-- since (same version → ACTIVE again) from one anything changed since (SKIPPED CHANGED_SINCE), as
-- import_row_outcomes.user_version does for rows (0043). NULL for archives recorded before this
-- migration: never undone blindly, a NULL version reads as "changed since".
ALTER TABLE roster_archives ADD COLUMN user_version bigint NULL;
