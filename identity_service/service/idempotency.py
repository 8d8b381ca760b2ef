"""request_id idempotency (api.md): a repeated request gets the first answer, acted on once.

The first successful answer is stored in the same transaction as the change it reports, under
(client, actor, request_id) with a fingerprint of the request: a platform call made for a signed-in
person is keyed by that person too, so two staff members of one web client never collide on a
request_id; a call without an actor (admin, importer, sign-up) keeps (client, request_id). A repeat
with the same fingerprint returns the stored answer; any other content under that key is refused
with REQUEST_ID_REUSED. Concurrent repeats wait on a transaction-level lock of the key, so the
second sees the first's answer. Failures are not stored: retrying a refused request tries again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from identity_service.domain.fields import REQUEST_ID_MAX, Violations
from identity_service.service.models import StoredResponse
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller

T = TypeVar("T")
Change = Callable[[UnitOfWork], Awaitable[T]]


@dataclass(frozen=True)
class RequestKey:
    """Who asked (client, and the actor or ''), under which request_id, for which RPC, and a hash of
    what was asked."""

    client: str
    actor: str
    request_id: str
    rpc: str
    fingerprint: bytes


@dataclass(frozen=True)
class Replay(Generic[T]):
    """How an answer is stored and read back."""

    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]


def request_key(
    caller: Caller, rpc: str, request_id: str, found: Violations, **content: object
) -> RequestKey | None:
    """The key of a mutating request (None without a request_id). ``content`` is what the request asks,
    without secrets: the fingerprint also covers the RPC and the actor, so one person's key never
    replays another's answer."""
    cleaned = found.text(request_id, "request_id", max_len=REQUEST_ID_MAX)
    if not cleaned:
        return None
    document = json.dumps(
        {"rpc": rpc, "actor": caller.actor_id, "content": content}, sort_keys=True, default=str
    )
    fingerprint = hashlib.sha256(document.encode()).digest()
    return RequestKey(caller.client, caller.actor_id or "", cleaned, rpc, fingerprint)


async def once(new_uow: UnitOfWorkFactory, key: RequestKey | None, replay: Replay[T], change: Change[T]) -> T:
    """Run ``change`` in one transaction, at most once per ``key``."""
    async with new_uow() as uow:
        if key is None:
            return await change(uow)
        await uow.idempotency.lock(key.client, key.actor, key.request_id)
        stored = await uow.idempotency.find(key.client, key.actor, key.request_id, key.fingerprint)
        if stored is not None:
            return _replayed(stored, key, replay)
        result = await change(uow)
        answer = StoredResponse(key.rpc, key.fingerprint, replay.encode(result))
        await uow.idempotency.save(key.client, key.actor, key.request_id, answer)
        return result


async def read(new_uow: UnitOfWorkFactory, query: Change[T]) -> T:
    """Run a query that changes nothing (no transaction: each statement sees the latest commit)."""
    async with new_uow(read_only=True) as uow:
        return await query(uow)


def _replayed(stored: StoredResponse, key: RequestKey, replay: Replay[T]) -> T:
    same = stored.rpc == key.rpc and hmac.compare_digest(stored.request_sha256, key.fingerprint)
    if not same:
        raise RollcallError(
            Reason.REQUEST_ID_REUSED,
            "request_id was already used for a different request",
            metadata={"request_id": key.request_id},
        )
    return replay.decode(stored.response)
