-- Email changes (product rule 8), the mail outbox the courier drains, and sliding-window rate events.

-- One row per email-change request. Only the HMAC of its code is kept (domain/codes.hash_code).
-- `attempts` counts every confirmation try, counted BEFORE the code is checked, so concurrent guesses
-- can never exceed `max_attempts` (see EmailChangeRepository.count_attempt).
CREATE TABLE email_changes (
    id                    uuid PRIMARY KEY,
    user_id               uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    new_email             text NOT NULL CHECK (char_length(new_email) BETWEEN 3 AND 254),
    new_email_key         text NOT NULL CHECK (new_email_key = lower(new_email)),
    code_hash             text NOT NULL CHECK (char_length(code_hash) BETWEEN 1 AND 200),
    state                 text NOT NULL DEFAULT 'PENDING'
                          CHECK (state IN ('PENDING', 'CONFIRMED', 'CANCELLED', 'EXPIRED', 'LOCKED')),
    attempts              integer NOT NULL DEFAULT 0 CHECK (attempts >= 0 AND attempts <= max_attempts),
    max_attempts          integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    file_updates_disabled boolean NOT NULL DEFAULT false,
    requested_by          uuid,
    client                text NOT NULL DEFAULT '' CHECK (char_length(client) <= 200),
    create_time           timestamptz NOT NULL DEFAULT now(),
    expire_time           timestamptz NOT NULL,
    close_time            timestamptz,
    -- a change is open exactly while it is PENDING
    CONSTRAINT email_changes_closed_when_final CHECK ((state = 'PENDING') = (close_time IS NULL))
);

-- A user has at most one PENDING change; a new request closes the old one first.
CREATE UNIQUE INDEX email_changes_one_pending ON email_changes (user_id) WHERE state = 'PENDING';
CREATE INDEX email_changes_pending_new_email ON email_changes (new_email_key) WHERE state = 'PENDING';
CREATE INDEX email_changes_user_history ON email_changes (user_id, create_time DESC);

-- Mail waiting for (or done with) the courier. Written in the transaction of the change it tells
-- about; the body is erased once the message is SENT or ABANDONED (a code mail carries its code).
-- `last_error` never holds an address or a code. `locked_until` is a courier's lease on the row.
CREATE TABLE outbox_messages (
    id              bigserial PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    to_address      text NOT NULL CHECK (char_length(to_address) BETWEEN 3 AND 254),
    subject         text NOT NULL CHECK (char_length(subject) <= 998),
    body            text NOT NULL CHECK (char_length(body) <= 100000),
    kind            text NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 64),
    school_id       uuid,
    user_id         uuid,
    status          text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENT', 'ABANDONED')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text CHECK (char_length(last_error) <= 500),
    sent_at         timestamptz,
    locked_until    timestamptz
);

CREATE INDEX outbox_messages_due ON outbox_messages (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX outbox_messages_pending_user ON outbox_messages (user_id, kind) WHERE status = 'PENDING';
CREATE INDEX outbox_messages_finished ON outbox_messages (created_at) WHERE status <> 'PENDING';

-- One row per counted event (a code resend, a failed sign-in ...) under a key such as
-- 'email_change.user:<uuid>'; RateLimiter counts the rows of a key inside a sliding window.
CREATE TABLE rate_events (
    key        text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 400),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX rate_events_key_time ON rate_events (key, created_at);
CREATE INDEX rate_events_time ON rate_events (created_at);
