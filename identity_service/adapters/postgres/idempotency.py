"""The idempotency_records table: first answers by (client, request_id), kept 48 hours."""

from __future__ import annotations

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

    async def lock(self, client: str, request_id: str) -> None:
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 7001))", client, request_id
        )

    async def find(self, client: str, request_id: str) -> StoredResponse | None:
        row = await self._conn.fetchrow(
            """SELECT rpc, request_sha256, response FROM idempotency_records
               WHERE client = $1 AND request_id = $2 AND created_at > now() - $3::interval""",
            client,
            request_id,
            RETENTION,
        )
        if row is None:
            return None
        return StoredResponse(row["rpc"], bytes(row["request_sha256"]), bytes(row["response"]))

    async def save(self, client: str, request_id: str, stored: StoredResponse) -> None:
        """Store (or replace an expired) answer; now and then purge a batch of expired ones."""
        await self._conn.execute(
            """INSERT INTO idempotency_records (client, request_id, rpc, request_sha256, response)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (client, request_id) DO UPDATE
               SET rpc = EXCLUDED.rpc, request_sha256 = EXCLUDED.request_sha256,
                   response = EXCLUDED.response, created_at = now()
               WHERE idempotency_records.created_at <= now() - $6::interval""",
            client,
            request_id,
            stored.rpc,
            stored.request_sha256,
            stored.response,
            RETENTION,
        )
        if random.random() < PURGE_CHANCE:
            await self.purge()

    async def purge(self) -> int:
        """Delete up to PURGE_BATCH expired records no other transaction is holding."""
        status = await self._conn.execute(
            """DELETE FROM idempotency_records WHERE ctid IN (
                   SELECT ctid FROM idempotency_records WHERE created_at < now() - $1::interval
                   LIMIT $2 FOR UPDATE SKIP LOCKED)""",
            RETENTION,
            PURGE_BATCH,
        )
        return int(status.split()[-1])
