"""Driving a ``ProcessStack`` the way its clients do: the web app and staff over gRPC, SIS connectors
over RabbitMQ (protobuf or JSON bodies, persistent, confirmed, unique message ids)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
from google.protobuf import json_format

from import_service.domain.jobs import ImportMode, JobSpec
from import_service.domain.rows import FileFormat
from shared.amqp.publisher import amqp_user
from shared.cli.publishing import publish_file
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.process_stack import ProcessStack, eventually, unique

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEAD_REASON = "x-rollcall-dead-reason"
SENSITIVE_MESSAGE = "attempting to update sensitive fields without sensitive fields setting"
UPLOAD_HEADER = ("username", "email_address", "first_name", "last_name", "auth_identifier")
PASSWORD = "correct horse battery staple"


def email(tag: str, domain: str = "uni.example") -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@{domain}"


# --- identity: schools and users set up the way the platform and admins do ------------------------


@dataclass
class Campus:
    """A school with one ACTIVE staff member (who acts for staff RPCs)."""

    stack: ProcessStack
    school: res.School
    staff: res.User

    @property
    def id(self) -> str:
        return self.school.id

    @property
    def staff_md(self) -> tuple[tuple[str, str], ...]:
        return (
            ("authorization", f"Bearer {self.stack.platform_token}"),
            ("x-rollcall-actor", self.staff.id),
        )

    async def student(
        self, username: str, address: str, first: str = "Ann", last: str = "Lee", auth: str = ""
    ) -> res.User:
        """An ACTIVE student created by staff (CreateUser), as if loaded earlier."""
        return await self.stack.identity.CreateUser(
            ipb.CreateUserRequest(
                user_type=res.USER_TYPE_STUDENT,
                school_id=self.id,
                email=address,
                username=username,
                first_name=first,
                last_name=last,
                auth_identifier=auth,
            ),
            metadata=self.staff_md,
            timeout=10,
        )

    async def sign_up(self, address: str, first: str = "Pat", last: str = "Self") -> res.User:
        """A self-registered PENDING student (username = email), through the web app."""
        return await self.stack.identity.SignUpStudent(
            ipb.SignUpStudentRequest(
                school_id=self.id, email=address, first_name=first, last_name=last, password=PASSWORD
            ),
            metadata=self.stack.platform_md,
            timeout=20,
        )

    async def set_file_updates(self, user_id: str, enabled: bool) -> res.User:
        return await self.stack.identity.SetFileUpdates(
            ipb.SetFileUpdatesRequest(user_id=user_id, enabled=enabled), metadata=self.staff_md, timeout=10
        )

    async def user(self, user_id: str) -> res.User:
        return await self.stack.identity.GetUser(
            ipb.GetUserRequest(id=user_id), metadata=self.stack.admin_md, timeout=10
        )

    async def pending_ids(self) -> set[str]:
        reply = await self.stack.identity.ListPendingStudents(
            ipb.ListPendingStudentsRequest(school_id=self.id, page_size=500),
            metadata=self.staff_md,
            timeout=10,
        )
        return {user.id for user in reply.users}

    async def users(self) -> list[res.User]:
        """Every user of the school (SearchUsers, all pages), by id."""
        found: list[res.User] = []
        token = ""
        while True:
            page = await self.stack.identity.SearchUsers(
                ipb.SearchUsersRequest(school_id=self.id, page_size=500, page_token=token),
                metadata=self.staff_md,
                timeout=30,
            )
            found.extend(page.users)
            token = page.next_page_token
            if not token:
                return sorted(found, key=lambda user: user.id)

    async def audit_events(self) -> list[ipb.AuditEvent]:
        found: list[ipb.AuditEvent] = []
        token = ""
        while True:
            page = await self.stack.identity.ListAuditEvents(
                ipb.ListAuditEventsRequest(school_id=self.id, page_size=500, page_token=token),
                metadata=self.stack.admin_md,
                timeout=30,
            )
            found.extend(page.events)
            token = page.next_page_token
            if not token:
                return found


async def new_campus(stack: ProcessStack, name: str = "Example University") -> Campus:
    school = await stack.identity.CreateSchool(
        ipb.CreateSchoolRequest(name=f"{name} {uuid.uuid4().hex[:6]}", email_domains=["uni.example"]),
        metadata=stack.admin_md,
        timeout=10,
    )
    staff = await stack.identity.CreateUser(
        ipb.CreateUserRequest(
            user_type=res.USER_TYPE_STAFF,
            school_id=school.id,
            email=email("careers"),
            first_name="Casey",
            last_name="Careers",
        ),
        metadata=stack.admin_md,
        timeout=10,
    )
    return Campus(stack, school, staff)


# --- files and connectors -----------------------------------------------------------------------


def csv_text(rows: Iterable[Sequence[str]], header: Sequence[str] = UPLOAD_HEADER) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def spec_for(
    school_id: str,
    *,
    mode: ImportMode = ImportMode.ONGOING_SYNC,
    sensitive: bool = False,
    dry_run: bool = False,
    source: str = "SIS nightly feed",
) -> JobSpec:
    return JobSpec(
        job_id=unique("job"),
        school_id=school_id,
        mode=mode,
        sensitive_fields_update=sensitive,
        dry_run=dry_run,
        source_name=source,
    )


async def publish_csv(
    stack: ProcessStack, directory: Path, text: str, spec: JobSpec, rows_per_message: int = 3
) -> int:
    """Publishes a CSV file exactly as the connector CLI does (shared.cli.publishing)."""
    path = directory / f"{spec.job_id}.csv"
    path.write_text(text, encoding="utf-8")
    return await publish_file(
        path,
        spec,
        file_format=FileFormat.CSV,
        rows_per_message=rows_per_message,
        amqp_url=stack.amqp_url,
        prefix=stack.prefix,
    )


def header(
    school_id: str,
    *,
    job_id: str | None = None,
    mode: int = rows_pb.IMPORT_MODE_ONGOING_SYNC,
    sensitive: bool = False,
    dry_run: bool = False,
) -> pb.ImportMessage:
    return pb.ImportMessage(
        job_id=job_id or unique("job"),
        school_id=school_id,
        mode=mode,  # type: ignore[arg-type]
        sensitive_fields_update=sensitive,
        dry_run=dry_run,
        source_name="test connector",
    )


def rows_message(job: pb.ImportMessage, rows: Sequence[rows_pb.StudentRow]) -> pb.ImportMessage:
    message = pb.ImportMessage()
    message.CopyFrom(job)
    message.rows.rows.extend(rows)
    return message


def end_message(job: pb.ImportMessage, total_rows: int) -> pb.ImportMessage:
    message = pb.ImportMessage()
    message.CopyFrom(job)
    message.end.total_rows = total_rows
    return message


def student_row(
    number: int, username: str, address: str, first: str = "", last: str = ""
) -> rows_pb.StudentRow:
    return rows_pb.StudentRow(
        row_number=number, username=username, email_address=address, first_name=first, last_name=last
    )


@dataclass(frozen=True)
class Sent:
    """One published message, kept so that it can be published again byte for byte."""

    body: bytes
    content_type: str | None
    routing_key: str
    message_id: str


@dataclass
class Connector:
    """Publishes like a SIS connector: persistent, with publisher confirms, ``rows.<school_id>``."""

    channel: aio_pika.abc.AbstractChannel
    exchange: aio_pika.abc.AbstractExchange
    sent: list[Sent] = field(default_factory=list)
    user_id: str | None = None
    """The AMQP user of the connection, set on every message (the import service requires it)."""

    async def raw(
        self,
        body: bytes,
        *,
        content_type: str | None,
        routing_key: str,
        message_id: str | None = None,
    ) -> str:
        sent = Sent(body, content_type, routing_key, message_id or str(uuid.uuid4()))
        await self.republish(sent)
        self.sent.append(sent)
        return sent.message_id

    async def republish(self, sent: Sent) -> None:
        message = aio_pika.Message(
            sent.body,
            content_type=sent.content_type,
            message_id=sent.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=self.user_id,
        )
        await self.exchange.publish(message, routing_key=sent.routing_key, timeout=30)

    async def send(
        self, message: pb.ImportMessage, *, as_json: bool = False, routing_school: str = ""
    ) -> str:
        if as_json:
            body, content_type = json_format.MessageToJson(message).encode(), JSON
        else:
            body, content_type = message.SerializeToString(), PROTOBUF
        return await self.raw(
            body, content_type=content_type, routing_key=f"rows.{routing_school or message.school_id}"
        )

    async def rows(
        self,
        job: pb.ImportMessage,
        rows: Sequence[rows_pb.StudentRow],
        per_message: int = 100,
        *,
        as_json: bool = False,
    ) -> None:
        for start in range(0, len(rows), per_message):
            await self.send(rows_message(job, rows[start : start + per_message]), as_json=as_json)

    async def end(self, job: pb.ImportMessage, total_rows: int, *, as_json: bool = False) -> None:
        await self.send(end_message(job, total_rows), as_json=as_json)


@asynccontextmanager
async def connector(stack: ProcessStack) -> AsyncIterator[Connector]:
    connection = await aio_pika.connect(stack.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(stack.exchange)
        yield Connector(channel, exchange, user_id=amqp_user(stack.amqp_url))
    finally:
        await connection.close()


@dataclass(frozen=True)
class DeadLetter:
    headers: dict[str, object]
    body: bytes


async def dead_letters(stack: ProcessStack, wanted: set[str], timeout: float = 60.0) -> dict[str, DeadLetter]:
    """The dead-letter queue's copies of the messages ``wanted`` (by message id), taken off the
    queue; other dead letters stay unacknowledged and return to the queue when the channel closes."""
    connection = await aio_pika.connect(stack.amqp_url)
    found: dict[str, DeadLetter] = {}
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(stack.dead_queue)

        async def drain() -> bool:
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                if message.message_id in wanted:
                    found[message.message_id] = DeadLetter(dict(message.headers), message.body)
                    await message.ack()
            return wanted <= found.keys()

        await eventually(drain, timeout=timeout, what=f"dead letters {sorted(wanted - found.keys())}")
    finally:
        await connection.close()
    return found


def outcome_name(value: int) -> str:
    return rows_pb.RowOutcome.Name(value).removeprefix("ROW_OUTCOME_")  # type: ignore[arg-type]


def essence(record: pb.RowRecord) -> tuple[int, str, str, bool]:
    """What a row's outcome says, without ids: (row, outcome, reason, approved)."""
    return (record.row_number, outcome_name(record.outcome), record.reason, record.approved)


async def completed_after_release(stack: ProcessStack, campus: Campus, job_id: str) -> pb.ImportJob:
    """The job once COMPLETED; a guarded job the school's threshold HELD is released by the school's
    staff first, as a careers office does once it has read the preview (issue 9)."""

    def ended(job: pb.ImportJob) -> bool:
        return job.state in (pb.IMPORT_JOB_STATE_COMPLETED, pb.IMPORT_JOB_STATE_HELD)

    job = await stack.wait_job(job_id, until=ended, timeout=90)
    if job.state == pb.IMPORT_JOB_STATE_HELD:
        await stack.importer.ReleaseImportJob(
            pb.ReleaseImportJobRequest(job_id=job_id, request_id=f"release-{job_id}"),
            metadata=campus.staff_md,
        )
        job = await stack.wait_job(job_id, timeout=90)
    return job
