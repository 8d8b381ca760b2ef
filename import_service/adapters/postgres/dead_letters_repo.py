"""The ``dead_letters`` table: messages the consumer refused, with the reason and a bounded body."""

from __future__ import annotations

from typing import Any

from import_service.service.ports import DeadLetter

MAX_STORED_BODY_BYTES = 64 * 1024


class DeadLettersRepository:
    def __init__(self, db: Any) -> None:
        self._db = db

    async def add(self, letter: DeadLetter) -> bool:
        """Records a refused message once (by its dedupe key); True when it was new."""
        inserted = await self._db.fetchval(
            """INSERT INTO dead_letters
                   (dedupe_key, job_id, reason, detail, routing_key, content_type, message_id,
                    body, body_bytes)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (dedupe_key) DO NOTHING
               RETURNING true""",
            letter.dedupe_key,
            letter.job_id,
            letter.reason,
            letter.detail[:1000],
            letter.routing_key[:255],
            letter.content_type[:255],
            letter.message_id[:255],
            letter.body[:MAX_STORED_BODY_BYTES],
            len(letter.body),
        )
        return bool(inserted)

    async def count_for_job(self, job_id: str) -> int:
        return int(await self._db.fetchval("SELECT count(*) FROM dead_letters WHERE job_id = $1", job_id))
