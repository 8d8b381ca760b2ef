-- Field-level changes (issue 9): each recorded row outcome keeps what the row changed, so a replayed
-- row answers the same changes as the first time. A JSON array of [field, old_value, new_value]
-- triples (field names as in StudentRow, plus status); NULL when the row changed nothing. Rows
-- recorded before this migration have NULL: their changes were not kept.
ALTER TABLE import_row_outcomes ADD COLUMN changes jsonb NULL;
