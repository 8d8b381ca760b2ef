"""Plain values the service layer passes across its ports that the domain package does not define.

``School`` and the audit records live here (the domain has no rules about them beyond validation);
``Page`` is one page of a listing with the token of the next one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from identity_service.domain.users import User

T = TypeVar("T")


@dataclass(frozen=True)
class School:
    """A school; ``email_domains`` are in normal form (lower case, no ``@``), ``notify_emails`` too
    (``emails.normalise_email``); ``change_threshold_percent`` is 0..100 (0: no change guard);
    ``muted_notifications``: the ``notifications.NotificationKind`` values it switched off."""

    id: str
    name: str
    email_domains: tuple[str, ...]
    sso_enabled: bool
    create_time: datetime
    change_threshold_percent: int = 10
    notify_emails: tuple[str, ...] = ()
    muted_notifications: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchDecision:
    """One id of a batch decision: the student after it (success), or ``error_reason`` (a ``Reason``)
    and ``error_message`` (failure, ``user`` None)."""

    user_id: str
    user: User | None
    error_reason: str
    error_message: str


@dataclass(frozen=True)
class NewAuditEvent:
    """What one change did: ``details`` maps a field to ``[old, new]`` (plus context such as a note)."""

    actor_id: str | None
    client: str
    action: str
    user_id: str | None
    school_id: str | None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEvent:
    """A stored audit event; ``id`` grows with every append."""

    id: int
    time: datetime
    actor_id: str | None
    client: str
    action: str
    user_id: str | None
    school_id: str | None
    details: Mapping[str, Any]


@dataclass(frozen=True)
class StoredResponse:
    """The first answer to a (client, request_id): which RPC, a hash of its content, the reply bytes."""

    rpc: str
    request_sha256: bytes
    response: bytes


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results; ``next_page_token`` is empty on the last page."""

    items: Sequence[T]
    next_page_token: str
