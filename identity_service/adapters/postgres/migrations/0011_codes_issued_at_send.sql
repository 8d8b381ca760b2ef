-- Codes are issued by the courier when it sends the code mail, never stored in plain text anywhere
-- (product rule 8): a change starts without a code, and its code mail holds a placeholder instead
-- of the code until the courier fills it in memory right before handing the mail to SMTP.

-- No code yet until the courier issues one (and a retry after a failed send issues a fresh one).
ALTER TABLE email_changes ALTER COLUMN code_hash DROP NOT NULL;

-- A code mail names the change whose code it carries.
ALTER TABLE outbox_messages ADD COLUMN email_change_id uuid;

-- Code mails written before this migration carried their code in the body: drop them.
DELETE FROM outbox_messages WHERE kind = 'email_change.code';

ALTER TABLE outbox_messages ADD CONSTRAINT outbox_code_mail_names_its_change
    CHECK (kind <> 'email_change.code' OR email_change_id IS NOT NULL);

CREATE INDEX outbox_messages_pending_change ON outbox_messages (email_change_id)
    WHERE status = 'PENDING' AND email_change_id IS NOT NULL;
