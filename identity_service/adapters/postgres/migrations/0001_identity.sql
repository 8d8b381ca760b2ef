-- Identity schema: schools, users, the append-only audit trail, idempotency records.
-- Emails are stored in normal form and unique by lower(email) across every user type (product rule 1);
-- usernames are unique per school, case-insensitively (rule 2).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE schools (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    email_domains text[] NOT NULL DEFAULT '{}',
    sso_enabled   boolean NOT NULL DEFAULT false,
    create_time   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id                    uuid PRIMARY KEY,
    user_type             text NOT NULL CHECK (user_type IN ('STUDENT', 'STAFF', 'EMPLOYER')),
    status                text NOT NULL CHECK (status IN ('PENDING', 'ACTIVE', 'DECLINED')),
    school_id             uuid REFERENCES schools (id),
    username              text CHECK (char_length(username) BETWEEN 1 AND 254),
    email                 text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    first_name            text NOT NULL DEFAULT '' CHECK (char_length(first_name) <= 100),
    last_name             text NOT NULL DEFAULT '' CHECK (char_length(last_name) <= 100),
    auth_identifier       text NOT NULL DEFAULT '' CHECK (char_length(auth_identifier) <= 254),
    origin                text NOT NULL CHECK (origin IN ('SELF_SIGNUP', 'STUDENT_FILE', 'STAFF')),
    file_updates_disabled boolean NOT NULL DEFAULT false,
    email_verified        boolean NOT NULL DEFAULT false,
    password_hash         text,
    create_time           timestamptz NOT NULL DEFAULT now(),
    update_time           timestamptz NOT NULL DEFAULT now(),
    version               bigint NOT NULL DEFAULT 1,
    -- used by student-file imports (a later job's rows win over an earlier job's)
    last_import_job_time  timestamptz,
    last_import_job_id    text,
    last_import_row       bigint,
    -- students and staff belong to a school, employers to none
    CONSTRAINT users_school_by_type CHECK ((user_type = 'EMPLOYER') = (school_id IS NULL)),
    -- only students are ever pending or declined
    CONSTRAINT users_status_by_type CHECK (user_type = 'STUDENT' OR status = 'ACTIVE')
);

CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_school_username_key ON users (school_id, lower(username))
    WHERE username IS NOT NULL;
CREATE INDEX users_pending_queue ON users (school_id, create_time, id) WHERE status = 'PENDING';
CREATE INDEX users_school_name ON users (school_id, lower(last_name), lower(first_name), id);
CREATE INDEX users_name_trgm ON users USING gin (lower(first_name || ' ' || last_name) gin_trgm_ops);
CREATE INDEX users_search_trgm ON users USING gin (
    lower(first_name || ' ' || last_name || ' ' || email || ' ' || coalesce(username, '')) gin_trgm_ops
);
CREATE INDEX users_school_email_local_part ON users (
    school_id, lower(left(email, length(email) - strpos(reverse(email), '@')))
);
CREATE INDEX users_school_auth_identifier ON users (school_id, lower(auth_identifier))
    WHERE auth_identifier <> '';

-- Append-only: no foreign keys, so events outlive the users and actors they name.
CREATE TABLE audit_events (
    id        bigserial PRIMARY KEY,
    time      timestamptz NOT NULL DEFAULT now(),
    actor_id  uuid,
    client    text NOT NULL,
    action    text NOT NULL,
    user_id   uuid,
    school_id uuid,
    details   jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_school ON audit_events (school_id, id DESC);
CREATE INDEX audit_events_user ON audit_events (user_id, id DESC);

CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- The first response to each (client, request_id), kept at least 24 hours.
CREATE TABLE idempotency_records (
    client         text NOT NULL,
    request_id     text NOT NULL,
    rpc            text NOT NULL,
    request_sha256 bytea NOT NULL,
    response       bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, request_id)
);

CREATE INDEX idempotency_records_created_at ON idempotency_records (created_at);
