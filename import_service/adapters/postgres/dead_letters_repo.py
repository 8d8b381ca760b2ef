"""The ``dead_letters`` table: messages the consumer refused, with the reason and a bounded body.

Every text column is made storable first (NUL and lone surrogates, which PostgreSQL refuses, become
U+FFFD): a refusal must be recordable whatever the message carried."""

from __future__ import annotations

from typing import Any

from import_service.adapters.postgres.storable import storable
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
                    body, body_bytes, school_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (dedupe_key) DO NOTHING
               RETURNING true""",
            storable(letter.dedupe_key),
            None if letter.job_id is None else storable(letter.job_id[:128]),
            storable(letter.reason),
            storable(letter.detail[:1000]),
            storable(letter.routing_key[:255]),
            storable(letter.content_type[:255]),
            storable(letter.message_id[:255]),
            letter.body[:MAX_STORED_BODY_BYTES],
            len(letter.body),
            None if letter.school_id is None else storable(letter.school_id[:128]),
        )
        return bool(inserted)
