-- Rows are kept as the bytes of the protobuf StudentRow they arrived as (rollcall.identity.v1), not as
-- jsonb: building a JSON text per row in Python and parsing it into jsonb in PostgreSQL were a good
-- part of what recording a batch cost. Rows recorded before this migration keep their jsonb; a row
-- has one of the two.
ALTER TABLE row_results ADD COLUMN row_pb bytea;
ALTER TABLE row_results ALTER COLUMN row DROP NOT NULL;
ALTER TABLE row_results ADD CONSTRAINT row_results_row_kept CHECK (row IS NOT NULL OR row_pb IS NOT NULL);
