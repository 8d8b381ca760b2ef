-- Import jobs, per-row outcomes, dead letters and re-drive idempotency (import service database).

-- One student file. Counters are maintained by the statement that records a batch's outcomes, so
-- reading a job never scans its rows. total_rows stays NULL until the end-of-file message.
CREATE TABLE jobs (
    job_id                  text PRIMARY KEY CHECK (char_length(job_id) BETWEEN 1 AND 128),
    parent_job_id           text NULL,
    school_id               text NOT NULL CHECK (char_length(school_id) BETWEEN 1 AND 128),
    mode                    text NOT NULL CHECK (mode IN ('ONGOING_SYNC', 'MANUAL_FILE')),
    sensitive_fields_update boolean NOT NULL,
    dry_run                 boolean NOT NULL,
    source_name             text NOT NULL DEFAULT '',
    total_rows              bigint NULL CHECK (total_rows >= 0),
    end_seen                boolean NOT NULL DEFAULT false,
    rows_recorded           bigint NOT NULL DEFAULT 0,
    created                 bigint NOT NULL DEFAULT 0,
    updated                 bigint NOT NULL DEFAULT 0,
    unchanged               bigint NOT NULL DEFAULT 0,
    skipped                 bigint NOT NULL DEFAULT 0,
    failed                  bigint NOT NULL DEFAULT 0,
    approved                bigint NOT NULL DEFAULT 0,
    create_time             timestamptz NOT NULL DEFAULT clock_timestamp(),
    complete_time           timestamptz NULL
) WITH (fillfactor = 70);

CREATE INDEX jobs_by_school_newest ON jobs (school_id, create_time DESC, job_id DESC);
CREATE INDEX jobs_newest ON jobs (create_time DESC, job_id DESC);

-- The one recorded outcome of each row (first outcome wins: inserts use ON CONFLICT DO NOTHING),
-- with the row as received so failed rows can be exported and re-driven.
CREATE TABLE row_results (
    job_id     text NOT NULL,
    row_number bigint NOT NULL CHECK (row_number >= 1),
    outcome    text NOT NULL CHECK (outcome IN ('CREATED', 'UPDATED', 'UNCHANGED', 'SKIPPED', 'FAILED')),
    approved   boolean NOT NULL DEFAULT false,
    user_id    text NULL,
    reason     text NULL,
    message    text NULL,
    row        jsonb NOT NULL,
    PRIMARY KEY (job_id, row_number)
);

CREATE INDEX row_results_failed ON row_results (job_id, row_number) WHERE outcome = 'FAILED';

-- Messages the consumer refused (undecodable or off-contract). body is truncated to a bound;
-- body_bytes is the original size. dedupe_key (message id, else a digest of the body) keeps a
-- redelivered refusal from being counted twice.
CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    dedupe_key   text NOT NULL UNIQUE,
    job_id       text NULL,
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    routing_key  text NOT NULL DEFAULT '',
    content_type text NOT NULL DEFAULT '',
    message_id   text NOT NULL DEFAULT '',
    body         bytea NOT NULL,
    body_bytes   integer NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dead_letters_by_job ON dead_letters (job_id) WHERE job_id IS NOT NULL;

-- RetryFailedRows idempotency: a request_id names one re-drive (same parent and setting).
CREATE TABLE retry_requests (
    request_id              text PRIMARY KEY,
    parent_job_id           text NOT NULL,
    sensitive_fields_update boolean NOT NULL,
    job_id                  text NOT NULL,
    create_time             timestamptz NOT NULL DEFAULT now()
);
