"""Which AMQP users may write rows for which schools (product.md, "Connectors write only for their
schools").

RabbitMQ checks that a message's ``user_id`` property is the user of the connection that published
it, so ``user_id`` names the connector for certain. The import service accepts rows for school S
only from a connector granted S (or every school, ``*``) in ``ROLLCALL_CONNECTORS``, or from its own
AMQP user (its SubmitFile and RetryFailedRows publishing). Nothing else: a message without
``user_id`` is nobody's.

School ids are canonical lower-case UUID text everywhere; ``canonical_school_id`` says whether a
value is one (the queue side refuses every other spelling rather than guessing which school it meant).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

EVERY_SCHOOL = "*"


def is_canonical_school_id(value: str) -> bool:
    """``value`` is a UUID written the one canonical way: lower-case hex, hyphenated, no braces."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def parse_connectors(spec: str) -> dict[str, frozenset[str]]:
    """``amqp_user:school_id|*`` entries (comma- or newline-separated) → user → granted schools.

    A user may appear several times (one entry per school). Raises ValueError naming the bad entry.
    """
    grants: dict[str, set[str]] = {}
    for raw in spec.replace("\n", ",").split(","):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        user, sep, school = entry.rpartition(":")
        user, school = user.strip(), school.strip()
        if not sep or not user or not school:
            raise ValueError(f"entry {entry!r} must be amqp_user:school_id or amqp_user:*")
        if any(c.isspace() or not c.isprintable() for c in user):
            raise ValueError(f"entry {entry!r}: the AMQP user name has a space or control character")
        if school != EVERY_SCHOOL and not is_canonical_school_id(school):
            raise ValueError(f"entry {entry!r}: the school must be a lower-case UUID or *")
        grants.setdefault(user, set()).add(school)
    return {user: frozenset(schools) for user, schools in grants.items()}


@dataclass(frozen=True)
class ConnectorPolicy:
    """``own_user`` is the import service's own AMQP user; ``grants`` what ``parse_connectors`` gave."""

    own_user: str
    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def allows(self, user_id: str | None, school_id: str) -> bool:
        if not user_id:
            return False
        if user_id == self.own_user:
            return True
        schools = self.grants.get(user_id, frozenset())
        return EVERY_SCHOOL in schools or school_id in schools

    def refusal(self, user_id: str | None, school_id: str) -> str | None:
        """Why a message of ``user_id`` for ``school_id`` is refused (None when it is allowed)."""
        if self.allows(user_id, school_id):
            return None
        if not user_id:
            return "the message has no user_id property (connectors must set it to their AMQP user)"
        return f"AMQP user {user_id[:64]!r} is not a connector allowed for school {school_id[:64]!r}"
