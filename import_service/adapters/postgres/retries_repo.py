"""The ``retry_requests`` table: RetryFailedRows idempotency by request id."""

from __future__ import annotations

from typing import Any

from import_service.service.ports import RetryRequest


class RetryRequestsRepository:
    def __init__(self, db: Any) -> None:
        self._db = db

    async def get(self, request_id: str) -> RetryRequest | None:
        rec = await self._db.fetchrow(
            """SELECT request_id, parent_job_id, sensitive_fields_update, job_id
               FROM retry_requests WHERE request_id = $1""",
            request_id,
        )
        return None if rec is None else RetryRequest(**dict(rec))

    async def add(self, request: RetryRequest) -> bool:
        """Stores the request; False when the request id was already taken."""
        inserted = await self._db.fetchval(
            """INSERT INTO retry_requests (request_id, parent_job_id, sensitive_fields_update, job_id)
               VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING RETURNING true""",
            request.request_id,
            request.parent_job_id,
            request.sensitive_fields_update,
            request.job_id,
        )
        return bool(inserted)
