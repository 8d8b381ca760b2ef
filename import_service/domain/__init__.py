"""Pure import-service domain: rows, jobs and their rules (no I/O, no protobuf)."""
