"""The import service's client of identity: one channel for the process lifetime, a deadline on
every call, the importer token on every call, and outages told apart from refusals.

The deadline is ``ROLLCALL_IDENTITY_CALL_TIMEOUT_SECONDS``, but for the two calls that work on a
whole school at once, the full-roster sweep (ArchiveStudentsNotInJob) and an undo (UndoStudentRows):
those get ``ROLLCALL_IDENTITY_LONG_CALL_TIMEOUT_SECONDS``, so a large school's slow sweep is not
taken for an outage (DEADLINE_EXCEEDED) and started again from the beginning.

Only what really is an outage is waited out (``IdentityUnavailable``: the batch waits and is tried
again, its messages stay unacknowledged):

- UNAVAILABLE that identity did not answer itself: the channel cannot connect (refused, reset,
  GOAWAY, no address) — gRPC makes these, without an ``ErrorInfo`` — or identity's own database
  unreachable (identity's ``ErrorInfo`` says so with metadata ``outage``);
- DEADLINE_EXCEEDED and CANCELLED (no answer at all);
- UNAUTHENTICATED, PERMISSION_DENIED and UNIMPLEMENTED: our token or role is misconfigured, or an
  identity without the RPC is rolling out. The same for every batch whatever its rows: failing rows
  over it would fail every file until an operator fixes the deployment.

Anything else is identity answering while reachable → ``BatchRefused``. NOT_FOUND (the school) is
about the whole batch: every row fails with the ErrorInfo reason. The rest (INVALID_ARGUMENT,
INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED, ABORTED, FAILED_PRECONDITION, an UNAVAILABLE identity chose
to answer, ...) may be caused by some rows only: the batcher splits the batch until they are alone
(``ingest``), so one bad row neither stalls its job nor holds a slot other schools need.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from typing import Any, TypeVar

import grpc

from import_service.adapters.wire import result_from_proto, timestamp_to_proto
from import_service.domain.jobs import Archive, Job, RowResult
from import_service.domain.rows import FileRow
from import_service.service.ports import BatchRefused, IdentityUnavailable
from shared import tracing
from shared.amqp.messages import add_rows, mode_to_proto
from shared.grpc_kit.errors import error_info
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.proto.rollcall.identity.v1 import resources_pb2 as res

_NO_ANSWER = frozenset(
    {
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
T = TypeVar("T")
_WHOLE_BATCH = frozenset({grpc.StatusCode.NOT_FOUND})
OUTAGE_METADATA_KEY = "outage"
"""ErrorInfo metadata key with which a reachable identity says it cannot work (its database)."""
_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # a full roster's sweep or an undo answers every student in one message
    ("grpc.max_receive_message_length", 128 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    # spread calls over every identity replica the address resolves to (a headless Service's pods,
    # or a list such as ipv4:10.0.0.1:50051,10.0.0.2:50051), not just the first one
    ("grpc.lb_policy_name", "round_robin"),
]
STAFF_CACHE_SECONDS = 30.0


class IdentityClient:
    def __init__(
        self,
        address: str,
        token: str,
        timeout_seconds: float,
        credentials: grpc.ChannelCredentials | None = None,
        *,
        long_timeout_seconds: float | None = None,
    ) -> None:
        """``long_timeout_seconds``: the sweep's and the undo's deadline (None: ``timeout_seconds``)."""
        traced = tracing.client_interceptors()  # None when tracing is off
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS, interceptors=traced)
        else:
            self._channel = grpc.aio.secure_channel(
                address, credentials, options=_CHANNEL_OPTIONS, interceptors=traced
            )
        self._stub = pb_grpc.IdentityServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout = timeout_seconds
        self._long_timeout = timeout_seconds if long_timeout_seconds is None else long_timeout_seconds
        self._staff: dict[str, tuple[float, str | None]] = {}

    async def close(self) -> None:
        await self._channel.close()

    async def apply_rows(self, job: Job, rows: Sequence[FileRow], *, dry_run: bool) -> list[RowResult]:
        spec = job.spec
        request = pb.ApplyStudentRowsRequest(
            school_id=spec.school_id,
            job_id=spec.job_id,
            mode=mode_to_proto(spec.mode),
            sensitive_fields_update=spec.sensitive_fields_update,
            dry_run=dry_run,
            job_create_time=timestamp_to_proto(job.create_time),
            full_roster=spec.full_roster,
        )
        add_rows(request.rows, rows)
        response = await self._call(self._stub.ApplyStudentRows, request)
        return [result_from_proto(result) for result in response.results]

    async def import_guard(self, school_id: str) -> tuple[int, int]:
        guard = await self._call(self._stub.GetImportGuard, pb.GetImportGuardRequest(school_id=school_id))
        return guard.change_threshold_percent, guard.school_students

    async def sweep(self, job: Job, *, dry_run: bool) -> tuple[list[Archive], int]:
        request = pb.ArchiveStudentsNotInJobRequest(
            school_id=job.spec.school_id, job_id=job.job_id, dry_run=dry_run
        )
        response = await self._call(self._stub.ArchiveStudentsNotInJob, request, deadline=self._long_timeout)
        archives = [
            Archive(
                s.user_id,
                s.username,
                s.email_address,
                s.archive_time.ToDatetime(tzinfo=UTC) if s.HasField("archive_time") else None,
            )
            for s in response.archived
        ]
        return archives, response.school_students

    async def undo_rows(self, undo: Job) -> list[RowResult]:
        request = pb.UndoStudentRowsRequest(
            school_id=undo.spec.school_id,
            job_id=undo.spec.undo_of_job_id,
            undo_job_id=undo.job_id,
            undo_job_create_time=timestamp_to_proto(undo.create_time),
        )
        response = await self._call(self._stub.UndoStudentRows, request, deadline=self._long_timeout)
        return [result_from_proto(result) for result in response.results]

    async def _call(
        self, method: Callable[..., Awaitable[T]], request: Any, *, deadline: float | None = None
    ) -> T:
        """One call with a deadline (seconds; None: the ordinary one) and the importer token; gRPC
        errors → the port's exceptions."""
        seconds = self._timeout if deadline is None else deadline
        try:
            return await method(request, timeout=seconds, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from exc

    async def get_user(self, user_id: str) -> res.User | None:
        """The user, or None when identity does not know it."""
        try:
            return await self._stub.GetUser(
                pb.GetUserRequest(id=user_id), timeout=self._timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise _translate(exc) from exc

    async def active_staff_school(self, actor_id: str) -> str | None:
        """The school of which ``actor_id`` is ACTIVE STAFF (cached briefly), or None."""
        now = time.monotonic()
        cached = self._staff.get(actor_id)
        if cached is not None and now - cached[0] < STAFF_CACHE_SECONDS:
            return cached[1]
        user = await self.get_user(actor_id)
        school: str | None = None
        if (
            user is not None
            and user.user_type == res.USER_TYPE_STAFF
            and user.status == res.USER_STATUS_ACTIVE
            and user.school_id
        ):
            school = user.school_id
        if len(self._staff) > 10_000:
            self._staff.clear()
        self._staff[actor_id] = (now, school)
        return school


def _translate(exc: grpc.aio.AioRpcError) -> Exception:
    code = exc.code()
    try:
        info = error_info(exc)
    except ValueError:  # a status trailer that contradicts the status: no ErrorInfo to trust
        info = None
    if code in _NO_ANSWER:
        return IdentityUnavailable(f"identity answered {code.name}")
    if code is grpc.StatusCode.UNAVAILABLE and (info is None or OUTAGE_METADATA_KEY in info.metadata):
        return IdentityUnavailable("identity is unreachable (UNAVAILABLE)")
    reason = info.reason if info is not None and info.reason else code.name
    if code in _WHOLE_BATCH:
        return BatchRefused(reason, exc.details() or code.name, code=code.name)
    # no details text: it may be internal (a stack trace, SQL); the code and reason say enough
    return BatchRefused(reason, f"identity answered {code.name}", code=code.name, whole_batch=False)
