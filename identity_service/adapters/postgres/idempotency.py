"""Stored first answers by (client, actor, request_id), kept 48 hours (migration 0031).

``actor`` is '' for calls without one. Answers stored by the previous version under (client,
request_id) in ``idempotency_records`` are still read until they expire, but only when their
fingerprint matches: the fingerprint covers the actor, so another actor's old answer is never
replayed (nor refused as a reuse) under an actor-scoped key.
"""

from __future__ import annotations

import hmac
import random
from datetime import timedelta

import asyncpg

from identity_service.service.models import StoredResponse

RETENTION = timedelta(hours=48)
PURGE_CHANCE = 0.01
PURGE_BATCH = 500


class PostgresIdempotency:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def lock(self, client: str, actor: str, request_id: str) -> None:
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2 || chr(31) || $3, 7001))",
            client,
            actor,
            request_id,
        )

    async def find(
        self, client: str, actor: str, request_id: str, fingerprint: bytes
    ) -> StoredResponse | None:
        row = await self._conn.fetchrow(
            """SELECT rpc, request_sha256, response FROM idempotency_answers
               WHERE client = $1 AND actor = $2 AND request_id = $3 AND created_at > now() - $4::interval""",
            client,
            actor,
            request_id,
            RETENTION,
        )
        if row is None:
            row = await self._conn.fetchrow(
                """SELECT rpc, request_sha256, response FROM idempotency_records
                   WHERE client = $1 AND request_id = $2 AND created_at > now() - $3::interval""",
                client,
                request_id,
                RETENTION,
            )
            if (
                row is not None
                and actor
                and not hmac.compare_digest(bytes(row["request_sha256"]), fingerprint)
            ):
                return None  # stored before keys were scoped to actors: maybe someone else's
        if row is None:
            return None
        return StoredResponse(row["rpc"], bytes(row["request_sha256"]), bytes(row["response"]))

    async def save(self, client: str, actor: str, request_id: str, stored: StoredResponse) -> None:
        """Store (or replace an expired) answer; now and then purge a batch of expired ones."""
        await self._conn.execute(
            """INSERT INTO idempotency_answers (client, actor, request_id, rpc, request_sha256, response)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (client, actor, request_id) DO UPDATE
               SET rpc = EXCLUDED.rpc, request_sha256 = EXCLUDED.request_sha256,
                   response = EXCLUDED.response, created_at = now()
               WHERE idempotency_answers.created_at <= now() - $7::interval""",
            client,
            actor,
            request_id,
            stored.rpc,
            stored.request_sha256,
            stored.response,
            RETENTION,
        )
        if random.random() < PURGE_CHANCE:
            await self.purge()

    async def purge(self) -> int:
        """Delete up to PURGE_BATCH expired answers of each table no other transaction is holding."""
        deleted = 0
        for table in ("idempotency_answers", "idempotency_records"):
            status = await self._conn.execute(
                f"""DELETE FROM {table} WHERE ctid IN (
                       SELECT ctid FROM {table} WHERE created_at < now() - $1::interval
                       LIMIT $2 FOR UPDATE SKIP LOCKED)""",
                RETENTION,
                PURGE_BATCH,
            )
            deleted += int(status.split()[-1])
        return deleted
