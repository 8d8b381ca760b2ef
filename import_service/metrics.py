"""Prometheus metrics of the import service (served with the shared RPC metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS = Counter("rollcall_import_rows_total", "Row outcomes recorded, by outcome", ["outcome"])
DUPLICATE_ROWS = Counter(
    "rollcall_import_duplicate_rows_total", "Rows received again after their outcome was recorded"
)
DEAD_LETTERED = Counter(
    "rollcall_import_dead_lettered_total", "Messages sent to the dead-letter queue, by reason", ["reason"]
)
IN_FLIGHT = Gauge("rollcall_import_in_flight_messages", "Messages received and not yet settled")
BATCH_SECONDS = Histogram(
    "rollcall_import_batch_seconds",
    "Time to apply and record one batch (identity call included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
IDENTITY_RETRIES = Counter(
    "rollcall_import_identity_retries_total", "ApplyStudentRows calls retried after an outage"
)
BATCH_SPLITS = Counter(
    "rollcall_import_batch_splits_total", "Batches identity refused, split in two to isolate the rows"
)
JOBS_COMPLETED = Counter("rollcall_import_jobs_completed_total", "Jobs that reached COMPLETED")
JOBS_HELD = Counter("rollcall_import_jobs_held_total", "Guarded jobs held for staff (over the threshold)")
