-- Cheaper writes of student files: every created student paid for two trigram indexes (names, and
-- names + email + username, so each name's trigrams twice) and a B-tree on recorded_at per outcome.
--
-- One GIN index now holds two columns, the name and the contact (email + username): duplicate
-- candidates ask the name column (similarity), search asks either column (LIKE on the name OR on the
-- contact), so a search still matches a fragment of any one field; a fragment spanning two fields
-- ("lee ann.lee@") no longer does. A multicolumn GIN index is one structure: each row adds its name
-- trigrams and its contact trigrams once.
CREATE INDEX users_trgm ON users USING gin (
    lower(first_name || ' ' || last_name) gin_trgm_ops,
    lower(email || ' ' || coalesce(username, '')) gin_trgm_ops
);
DROP INDEX users_name_trgm;
DROP INDEX users_search_trgm;

-- Outcomes are appended in recorded_at order and purged by it: a BRIN index serves the purge and
-- costs next to nothing per insert.
DROP INDEX import_row_outcomes_recorded_at;
CREATE INDEX import_row_outcomes_recorded_at ON import_row_outcomes USING brin (recorded_at);
