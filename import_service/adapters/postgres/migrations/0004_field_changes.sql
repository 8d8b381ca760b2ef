-- Field-level changes (issue 9). Each row result keeps what identity said the row changed: a JSON
-- array of [field, old_value, new_value] triples (field names as in StudentRow, plus status), NULL
-- when it changed nothing. Each job counts, per field, the rows that changed it ({"username": 3}),
-- moved by the same statement that records a batch's outcomes. Rows and jobs recorded before this
-- migration have none.
ALTER TABLE row_results ADD COLUMN changes jsonb NULL;
ALTER TABLE jobs ADD COLUMN field_changes jsonb NOT NULL DEFAULT '{}'::jsonb;
