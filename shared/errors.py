"""Domain errors shared by both services.

A domain or service function raises ``RollcallError`` (or a subclass) with a ``reason`` from the
api.md table; the gRPC adapter turns it into a status with ``google.rpc.ErrorInfo`` (and
``BadRequest`` field violations when there are any). Nothing here knows about gRPC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    """``ErrorInfo.reason`` values (api.md) and the status each maps to lives in grpc_kit.errors."""

    EMAIL_TAKEN = "EMAIL_TAKEN"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    INVALID_EMAIL = "INVALID_EMAIL"
    EMAIL_CONFUSABLE = "EMAIL_CONFUSABLE"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    SCHOOL_NOT_FOUND = "SCHOOL_NOT_FOUND"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    NOT_PENDING = "NOT_PENDING"
    NOT_SAME_SCHOOL = "NOT_SAME_SCHOOL"
    FILE_UPDATES_MUST_BE_DISABLED = "FILE_UPDATES_MUST_BE_DISABLED"
    NO_PENDING_EMAIL_CHANGE = "NO_PENDING_EMAIL_CHANGE"
    CODE_INVALID = "CODE_INVALID"
    CODE_EXPIRED = "CODE_EXPIRED"
    CODE_ATTEMPTS_EXCEEDED = "CODE_ATTEMPTS_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    NOT_STAFF_OF_SCHOOL = "NOT_STAFF_OF_SCHOOL"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"
    # issue 9: SSO sign-in (ResolveSsoSignIn) and auth identifiers unique per school
    AUTH_IDENTIFIER_TAKEN = "AUTH_IDENTIFIER_TAKEN"
    USER_ARCHIVED = "USER_ARCHIVED"
    USER_PENDING = "USER_PENDING"
    USER_DECLINED = "USER_DECLINED"
    SSO_NOT_ENABLED = "SSO_NOT_ENABLED"
    # issue 9: undo of an import job (an undo, or a job already undone)
    JOB_NOT_UNDOABLE = "JOB_NOT_UNDOABLE"
    # issue 9: release or discard of a job that is not HELD
    JOB_NOT_HELD = "JOB_NOT_HELD"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: ``field`` is the proto field path (e.g. ``rows[3].email_address``)."""

    field: str
    description: str


@dataclass
class RollcallError(Exception):
    """A refusal the caller can act on. ``message`` never contains secrets, codes or passwords."""

    reason: Reason
    message: str
    violations: Sequence[FieldViolation] = field(default_factory=tuple)
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def invalid(field_name: str, description: str, reason: Reason = Reason.INVALID_ARGUMENT) -> RollcallError:
    """An INVALID_ARGUMENT error naming one field."""
    return RollcallError(reason, f"{field_name}: {description}", (FieldViolation(field_name, description),))


def invalid_fields(violations: Sequence[FieldViolation]) -> RollcallError:
    """An INVALID_ARGUMENT error naming several fields (all of them, so the caller fixes them at once)."""
    text = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return RollcallError(Reason.INVALID_ARGUMENT, text, tuple(violations))


def not_found(reason: Reason, what: str) -> RollcallError:
    return RollcallError(reason, f"{what} not found")
