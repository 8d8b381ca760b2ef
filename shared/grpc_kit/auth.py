"""Who is calling: bearer token → client + role, ``x-rollcall-actor`` → the person acted for.

Tokens are compared in constant time against SHA-256 hashes; the plain tokens are not kept.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from shared.errors import Reason, RollcallError, invalid
from shared.settings import ClientToken, Role

ACTOR_HEADER = "x-rollcall-actor"
_NO_MATCH = hashlib.sha256(b"no token matches this").digest()


@dataclass(frozen=True)
class Caller:
    """The authenticated client, its role, and the signed-in person it acts for (if any)."""

    client: str
    role: Role
    actor_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


_current: ContextVar[Caller | None] = ContextVar("rollcall_caller", default=None)


def current_caller() -> Caller:
    """The caller of the RPC being served (set by the interceptor)."""
    caller = _current.get()
    if caller is None:
        raise RuntimeError("no authenticated caller in this context")
    return caller


def bind_caller(caller: Caller) -> object:
    return _current.set(caller)


def unbind_caller(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


class TokenAuthenticator:
    """Checks ``authorization: Bearer <token>`` against the configured clients."""

    def __init__(self, tokens: Iterable[ClientToken]) -> None:
        self._tokens = tuple(tokens)

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]]) -> Caller:
        header = actor = ""
        for key, value in metadata:  # one pass, the last of a repeated header wins
            if isinstance(value, str):
                name = key.lower()
                if name == "authorization":
                    header = value
                elif name == ACTOR_HEADER:
                    actor = value
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RollcallError(Reason.UNAUTHENTICATED, "missing bearer token")
        client = self._match(hashlib.sha256(token.strip().encode()).digest())
        if client is None:
            raise RollcallError(Reason.UNAUTHENTICATED, "unknown token")
        return Caller(client=client.name, role=client.role, actor_id=_actor(actor))

    def _match(self, digest: bytes) -> ClientToken | None:
        found: ClientToken | None = None
        for candidate in self._tokens:  # no early exit: time does not depend on which one matches
            if hmac.compare_digest(candidate.token_sha256, digest):
                found = candidate
        hmac.compare_digest(_NO_MATCH, digest)
        return found


def _actor(header: str) -> str | None:
    raw = header.strip()
    if not raw:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise invalid(ACTOR_HEADER, "must be a user id (UUID)") from None


def require_role(caller: Caller, allowed: frozenset[Role], method: str) -> None:
    if caller.role not in allowed:
        raise RollcallError(
            Reason.PERMISSION_DENIED, f"role {caller.role} may not call {method}", metadata={"method": method}
        )
