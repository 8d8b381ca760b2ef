"""Test doubles and helpers for the import service: a fake identity served by a real grpc.aio
server, a connector publishing like a SIS integration would, and condition waits with deadlines."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import aio_pika
import grpc
from google.protobuf import json_format

from import_service.bootstrap import ImportApp
from shared.errors import Reason, RollcallError
from shared.grpc_kit.errors import to_grpc_status
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as ipb_grpc
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

T = TypeVar("T")
AppFactory = Callable[..., AbstractAsyncContextManager[ImportApp]]
"""``async with make_app(consume=True, grace=5, **settings_overrides) as app``."""
ADMIN_TOKEN = "admin-token-0123456789abcdef"
PLATFORM_TOKEN = "platform-token-0123456789abcdef"
IMPORTER_TOKEN = "importer-token-0123456789abcdef"
TOKEN_SPEC = f"admin:admin:{ADMIN_TOKEN},web:platform:{PLATFORM_TOKEN},importer:importer:{IMPORTER_TOKEN}"
UNKNOWN_SCHOOL = "no-such-school"
ADMIN_MD = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
IMPORTER_MD = (("authorization", f"Bearer {IMPORTER_TOKEN}"),)


def staff_md(actor_id: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {PLATFORM_TOKEN}"), ("x-rollcall-actor", actor_id))


def unique(prefix: str = "job") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, what: str = "condition"
) -> T:
    """Polls ``check`` until it returns something truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        await asyncio.sleep(0.05)


class FakeIdentity(ipb_grpc.IdentityServiceServicer):
    """ApplyStudentRows with a tiny rule, answering like a well-behaved identity:

    - a username starting with "fail" → FAILED INVALID_ROW;
    - one starting with "sens" → FAILED SENSITIVE_FIELDS_REQUIRED unless the job has the sensitive
      setting, then UPDATED and approved;
    - otherwise CREATED the first time a (school, username) is seen, UNCHANGED after;
    - a row already applied for the same job gets the same answer again (idempotent per job row);
    - school ``no-such-school`` → NOT_FOUND SCHOOL_NOT_FOUND for the whole batch;
    - ``down_for(seconds)`` answers UNAVAILABLE meanwhile; ``delay`` slows every call;
      ``crash_next`` calls answer INTERNAL;
    - GetImportGuard answers ``threshold`` (0 unless a test sets it: the guard off, so an ordinary
      test's sensitive job is not previewed) and the students of the school seen so far;
      ArchiveStudentsNotInJob archives nobody; UndoStudentRows answers one UPDATED result per
      student the job created or matched.
    """

    def __init__(self) -> None:
        self.reset()
        self.users: dict[str, res.User] = {}

    def reset(self) -> None:
        self.seen: dict[tuple[str, str], str] = {}
        self.answers: dict[tuple[str, int], rows_pb.RowResult] = {}
        self.applied: Counter[tuple[str, int]] = Counter()
        self.down_until = 0.0
        self.refused_calls = 0
        self.delay = 0.0
        self.calls = 0
        self.crash_next = 0
        self.threshold = 0

    def down_for(self, seconds: float) -> None:
        self.down_until = time.monotonic() + seconds

    def add_staff(self, school_id: str, *, active: bool = True) -> str:
        user_id = str(uuid.uuid4())
        status = res.USER_STATUS_ACTIVE if active else res.USER_STATUS_PENDING
        self.users[user_id] = res.User(
            id=user_id, user_type=res.USER_TYPE_STAFF, status=status, school_id=school_id
        )
        return user_id

    async def ApplyStudentRows(self, request: Any, context: Any) -> ipb.ApplyStudentRowsResponse:
        await self._check_token(context)
        if time.monotonic() < self.down_until:
            self.refused_calls += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "identity is down for the test")
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.crash_next > 0:
            self.crash_next -= 1
            await context.abort(grpc.StatusCode.INTERNAL, "identity crashed on this batch")
        if request.school_id == UNKNOWN_SCHOOL:
            status = to_grpc_status(RollcallError(Reason.SCHOOL_NOT_FOUND, "school not found"))
            await context.abort(status.code, status.details, status.trailing_metadata)
        self.calls += 1
        return ipb.ApplyStudentRowsResponse(results=[self._apply(request, row) for row in request.rows])

    async def GetImportGuard(self, request: Any, context: Any) -> ipb.ImportGuard:
        await self._check_token(context)
        students = sum(1 for school, _ in self.seen if school == request.school_id)
        return ipb.ImportGuard(change_threshold_percent=self.threshold, school_students=students)

    async def ArchiveStudentsNotInJob(
        self, request: Any, context: Any
    ) -> ipb.ArchiveStudentsNotInJobResponse:
        await self._check_token(context)
        students = sum(1 for school, _ in self.seen if school == request.school_id)
        return ipb.ArchiveStudentsNotInJobResponse(school_students=students)

    async def UndoStudentRows(self, request: Any, context: Any) -> ipb.UndoStudentRowsResponse:
        await self._check_token(context)
        users = sorted(
            {a.user_id for (job, _), a in self.answers.items() if job == request.job_id and a.user_id}
        )
        results = [
            rows_pb.RowResult(row_number=n, outcome=rows_pb.ROW_OUTCOME_UPDATED, user_id=user_id)
            for n, user_id in enumerate(users, start=1)
        ]
        return ipb.UndoStudentRowsResponse(results=results)

    async def GetUser(self, request: Any, context: Any) -> res.User:
        await self._check_token(context)
        user = self.users.get(request.id)
        if user is None:
            status = to_grpc_status(RollcallError(Reason.USER_NOT_FOUND, "user not found"))
            await context.abort(status.code, status.details, status.trailing_metadata)
        return user

    async def _check_token(self, context: Any) -> None:
        headers = dict(context.invocation_metadata())
        if headers.get("authorization") != f"Bearer {IMPORTER_TOKEN}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown token")

    def _apply(self, request: Any, row: rows_pb.StudentRow) -> rows_pb.RowResult:
        key = (request.job_id, row.row_number)
        self.applied[key] += 1
        if key not in self.answers or request.dry_run:
            self.answers[key] = self._decide(request, row)
        return self.answers[key]

    def _decide(self, request: Any, row: rows_pb.StudentRow) -> rows_pb.RowResult:
        number, name = row.row_number, row.username
        if name.startswith("fail"):
            return rows_pb.RowResult(
                row_number=number,
                outcome=rows_pb.ROW_OUTCOME_FAILED,
                reason="INVALID_ROW",
                message="username: rejected by the test rule",
            )
        if name.startswith("sens") and not request.sensitive_fields_update:
            return rows_pb.RowResult(
                row_number=number,
                outcome=rows_pb.ROW_OUTCOME_FAILED,
                reason="SENSITIVE_FIELDS_REQUIRED",
                message="attempting to update sensitive fields without sensitive fields setting",
            )
        if name.startswith("sens"):  # a pending student's username set from the file
            renamed = rows_pb.FieldChange(field="username", old_value=f"pending-{name}", new_value=name)
            return rows_pb.RowResult(
                row_number=number,
                outcome=rows_pb.ROW_OUTCOME_UPDATED,
                approved=True,
                user_id=f"pending-{request.school_id}-{name}",
                changes=[renamed],
            )
        student = (request.school_id, name.lower())
        if student in self.seen:
            outcome = rows_pb.ROW_OUTCOME_UNCHANGED
        else:
            outcome = rows_pb.ROW_OUTCOME_CREATED
            if not request.dry_run:
                self.seen[student] = str(uuid.uuid4())
        return rows_pb.RowResult(row_number=number, outcome=outcome, user_id=self.seen.get(student, ""))


def student_rows(count: int, *, start: int = 1, prefix: str | None = None) -> list[rows_pb.StudentRow]:
    tag = prefix or uuid.uuid4().hex[:8]
    return [
        rows_pb.StudentRow(
            row_number=number,
            username=f"{tag}-{number}",
            email_address=f"{tag}-{number}@uni.example",
            first_name="Ann",
            last_name=f"Lee {number}",
            extra={"cohort": "2026"},
        )
        for number in range(start, start + count)
    ]


class Connector:
    """Publishes like a SIS connector: persistent, confirmed, ``rows.<school_id>``, unique ids."""

    def __init__(
        self,
        channel: aio_pika.abc.AbstractChannel,
        exchange: aio_pika.abc.AbstractExchange,
        user_id: str | None = None,
    ) -> None:
        self.channel = channel
        self.exchange = exchange
        self.user_id = user_id  # the connection's AMQP user, set on every message (the service requires it)

    async def raw(
        self,
        body: bytes,
        *,
        content_type: str | None,
        routing_key: str,
        message_id: str | None = None,
        user_id: str | None = "",
    ) -> str:
        """``user_id`` "" (the default) means the connector's own; None sends no user_id."""
        message_id = message_id or str(uuid.uuid4())
        message = aio_pika.Message(
            body,
            content_type=content_type,
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=self.user_id if user_id == "" else user_id,
        )
        await self.exchange.publish(message, routing_key=routing_key)
        return message_id

    async def send(
        self, message: pb.ImportMessage, *, as_json: bool = False, routing_school: str = ""
    ) -> str:
        if as_json:
            body, content_type = json_format.MessageToJson(message).encode(), "application/json"
        else:
            body, content_type = message.SerializeToString(), "application/x-protobuf"
        return await self.raw(
            body, content_type=content_type, routing_key=f"rows.{routing_school or message.school_id}"
        )

    async def rows(
        self, job: pb.ImportMessage, rows: Sequence[rows_pb.StudentRow], *, per_message: int = 100, **kw: Any
    ) -> None:
        for start in range(0, len(rows), per_message):
            message = pb.ImportMessage()
            message.CopyFrom(job)
            message.rows.rows.extend(rows[start : start + per_message])
            await self.send(message, **kw)

    async def end(self, job: pb.ImportMessage, total_rows: int, **kw: Any) -> None:
        message = pb.ImportMessage()
        message.CopyFrom(job)
        message.end.total_rows = total_rows
        await self.send(message, **kw)


def job_header(
    school_id: str,
    *,
    job_id: str | None = None,
    mode: int = rows_pb.IMPORT_MODE_ONGOING_SYNC,
    sensitive: bool = False,
    dry_run: bool = False,
) -> pb.ImportMessage:
    return pb.ImportMessage(
        job_id=job_id or unique(),
        school_id=school_id,
        mode=mode,  # type: ignore[arg-type]
        sensitive_fields_update=sensitive,
        dry_run=dry_run,
        source_name="test connector",
    )
