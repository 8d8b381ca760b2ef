"""Domain values ↔ protobuf messages. No rules here: only names and shapes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from google.protobuf import struct_pb2, timestamp_pb2

from identity_service.domain.duplicates import Candidate
from identity_service.domain.email_changes import EmailChange
from identity_service.domain.notifications import NotificationKind
from identity_service.domain.sign_in import SignInResolution
from identity_service.domain.users import User, UserStatus, UserType
from identity_service.service.import_guard import ImportGuard
from identity_service.service.models import AuditEvent, BatchDecision, School
from identity_service.service.roster_sweep import SweepResult
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res

E = TypeVar("E", bound=StrEnum)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """What ``Timestamp.FromDatetime`` gives (a naive datetime is UTC), in a third of its time: the
    seconds and nanos of the distance from the epoch, set in the constructor."""
    delta = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)) - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def etag(version: int) -> str:
    return f'W/"{version}"'


_NUMBERS: dict[tuple[str, StrEnum], Any] = {}


def enum_value(enum_type: Any, prefix: str, member: StrEnum) -> Any:
    """``UserType.STUDENT`` → ``USER_TYPE_STUDENT``'s number (typed as the proto enum's value type).
    Each number is looked up by name once (a prefix names one proto enum)."""
    key = (prefix, member)
    number = _NUMBERS.get(key)
    if number is None:
        number = _NUMBERS[key] = enum_type.Value(f"{prefix}_{member.value}")
    return number


def domain_enum(domain: type[E], enum_type: Any, prefix: str, number: int) -> E | None:
    """A proto enum number → the domain member; None for UNSPECIFIED or a number this build does not know."""
    try:
        name = str(enum_type.Name(number)).removeprefix(f"{prefix}_")
    except ValueError:
        return None
    return domain(name) if name in domain.__members__ else None


def user_type(number: int) -> UserType | None:
    return domain_enum(UserType, res.UserType, "USER_TYPE", number)


def user_types(numbers: Iterable[int]) -> list[UserType | None]:
    return [user_type(n) for n in numbers]


def user_statuses(numbers: Iterable[int]) -> list[UserStatus | None]:
    return [domain_enum(UserStatus, res.UserStatus, "USER_STATUS", n) for n in numbers]


def user(value: User) -> res.User:
    return res.User(
        id=value.id,
        user_type=enum_value(res.UserType, "USER_TYPE", value.user_type),
        status=enum_value(res.UserStatus, "USER_STATUS", value.status),
        school_id=value.school_id or "",
        username=value.username or "",
        email=value.email,
        first_name=value.first_name,
        last_name=value.last_name,
        auth_identifier=value.auth_identifier,
        origin=enum_value(res.UserOrigin, "USER_ORIGIN", value.origin),
        file_updates_disabled=value.file_updates_disabled,
        email_verified=value.email_verified,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        etag=etag(value.version),
    )


def users(values: Sequence[User]) -> list[res.User]:
    return [user(v) for v in values]


def school(value: School) -> res.School:
    return res.School(
        id=value.id,
        name=value.name,
        email_domains=list(value.email_domains),
        sso_enabled=value.sso_enabled,
        create_time=timestamp(value.create_time),
        change_threshold_percent=value.change_threshold_percent,
        notify_emails=list(value.notify_emails),
        muted_notifications=[
            res.NotificationKind.Value(f"NOTIFICATION_KIND_{kind}") for kind in value.muted_notifications
        ],
    )


def notification_kinds(numbers: Iterable[int]) -> list[NotificationKind | None]:
    return [domain_enum(NotificationKind, res.NotificationKind, "NOTIFICATION_KIND", n) for n in numbers]


def batch_decisions(values: Sequence[BatchDecision]) -> pb.BatchDecideStudentsResponse:
    return pb.BatchDecideStudentsResponse(
        results=[
            pb.BatchDecisionResult(
                user_id=v.user_id,
                user=user(v.user) if v.user else None,
                error_reason=v.error_reason,
                error_message=v.error_message,
            )
            for v in values
        ]
    )


def sign_in(value: SignInResolution) -> pb.ResolveSignInResponse:
    return pb.ResolveSignInResponse(
        outcome=enum_value(pb.SignInOutcome, "SIGN_IN_OUTCOME", value.outcome),
        school_email_domains=list(value.domains),
        sso_enabled=value.sso_enabled,
    )


def candidate(value: Candidate) -> pb.DuplicateCandidate:
    return pb.DuplicateCandidate(
        user=user(value.user),
        score=value.score,
        reasons=[enum_value(pb.MatchReason, "MATCH_REASON", reason) for reason in value.reasons],
    )


def audit_event(value: AuditEvent) -> pb.AuditEvent:
    details = struct_pb2.Struct()
    details.update(dict(value.details))
    return pb.AuditEvent(
        id=str(value.id),
        time=timestamp(value.time),
        actor_id=value.actor_id or "",
        client=value.client,
        action=value.action,
        user_id=value.user_id or "",
        school_id=value.school_id or "",
        details=details,
    )


def email_change(value: EmailChange) -> res.EmailChange:
    return res.EmailChange(
        id=value.id,
        user_id=value.user_id,
        new_email=value.new_email,
        state=enum_value(res.EmailChangeState, "EMAIL_CHANGE_STATE", value.state),
        expire_time=timestamp(value.expire_time),
        file_updates_disabled=value.file_updates_disabled,
    )


def sweep(result: SweepResult) -> pb.ArchiveStudentsNotInJobResponse:
    students = [
        pb.SweptStudent(
            user_id=s.user_id,
            username=s.username or "",
            email_address=s.email,
            archive_time=timestamp(s.archive_time) if s.archive_time is not None else None,
        )
        for s in result.archived
    ]
    return pb.ArchiveStudentsNotInJobResponse(archived=students, school_students=result.school_students)


def import_guard(guard: ImportGuard) -> pb.ImportGuard:
    return pb.ImportGuard(
        change_threshold_percent=guard.change_threshold_percent, school_students=guard.school_students
    )
