-- A job id belongs to one school for ever, and a job counts only dead letters of its own school: a
-- message refused for school B that reuses school A's job id must not show on A's job. The school
-- of a dead letter is its routing key's (rows.<school_id>, which RabbitMQ's topic permissions tie to
-- the connector); NULL when the connector was not allowed for it (CONNECTOR_NOT_ALLOWED), counted
-- nowhere. Letters recorded before this migration take the school of their routing key.
ALTER TABLE dead_letters ADD COLUMN school_id text NULL;
UPDATE dead_letters SET school_id = substr(routing_key, 6)
WHERE routing_key LIKE 'rows.%' AND length(routing_key) > 5;
