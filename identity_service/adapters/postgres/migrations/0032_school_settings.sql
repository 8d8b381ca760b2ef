-- Issue 9, school settings: the change guard's threshold (a guarded import job that would change or
-- archive more than this percentage of the school's students is held; 0 turns the guard off) and who
-- hears about held jobs and pending requests. Additive: existing schools get the default 10 and no one
-- to notify; the version still running during a rollout never reads these columns.
ALTER TABLE schools
    ADD COLUMN change_threshold_percent integer NOT NULL DEFAULT 10
        CONSTRAINT schools_change_threshold_percent_range CHECK (change_threshold_percent BETWEEN 0 AND 100),
    ADD COLUMN notify_emails text[] NOT NULL DEFAULT '{}'
        CONSTRAINT schools_notify_emails_bound CHECK (cardinality(notify_emails) <= 20);
