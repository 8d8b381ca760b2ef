"""Concurrency: guesses racing on one change, students racing for one address, merge atomicity."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from identity_service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from identity_service.bootstrap import IdentityApp
from identity_service.domain.identity_keys import email_key
from identity_service.domain.mail import OutgoingMail
from identity_service.service.courier import Courier
from identity_service.service.email_change import CodeSettings
from identity_service.service.merge import merge_pending_student
from shared.grpc_kit.auth import Caller
from shared.grpc_kit.errors import error_info
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.settings import Role
from tests.integration.identity.identity_support import Campus, IdentityClient, refused
from tests.integration.identity_email.email_support import (
    change_row,
    confirm,
    next_code,
    personal,
    request_change,
    wrong,
)
from tests.integration.identity_mail.mail_helpers import SmtpServer


async def _outcome(call: Any) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        info = error_info(error)
        return info.reason if info else error.code().name
    return "OK"


async def test_twenty_parallel_wrong_guesses_count_five_tries_and_lock(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.new_student(campus)
    address = personal()
    change = await request_change(identity, campus, student, address)
    code = await next_code(courier, mail_server, address)
    outcomes = await asyncio.gather(
        *(_outcome(confirm(identity, student.id, wrong(code))) for _ in range(20))
    )
    assert Counter(outcomes) == {"CODE_INVALID": 4, "CODE_ATTEMPTS_EXCEEDED": 16}
    row = await change_row(identity.db, change.id)
    assert (row["attempts"], row["state"]) == (5, "LOCKED")
    await refused(
        confirm(identity, student.id, code), grpc.StatusCode.RESOURCE_EXHAUSTED, "CODE_ATTEMPTS_EXCEEDED"
    )


@pytest.mark.parametrize("round_number", range(3))
async def test_two_students_confirming_one_address_exactly_one_wins(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer, round_number: int
) -> None:
    address = personal(f"race{round_number}-")
    ann, bob = await identity.new_student(campus), await identity.new_student(campus)
    await request_change(identity, campus, ann, address)
    ann_code = await next_code(courier, mail_server, address)
    await request_change(identity, campus, bob, address.upper())
    bob_code = await next_code(courier, mail_server, address)
    outcomes = await asyncio.gather(
        _outcome(confirm(identity, ann.id, ann_code, "ann's new password")),
        _outcome(confirm(identity, bob.id, bob_code, "bob's new password")),
    )
    assert sorted(outcomes) == ["EMAIL_TAKEN", "OK"]
    assert await identity.users_with_email(address) == 1
    holder = await identity.db.fetchval("SELECT id::text FROM users WHERE email_key = $1", email_key(address))
    assert holder == (ann.id if outcomes[0] == "OK" else bob.id)


async def test_merge_is_undone_when_the_email_change_is_refused(
    identity: IdentityClient, campus: Campus
) -> None:
    existing = await identity.new_student(campus)
    for _ in range(5):  # the existing student used up this hour's email-change requests
        await request_change(identity, campus, existing, personal())
    pending = await identity.sign_up(campus)
    request = pb.MergePendingStudentRequest(pending_user_id=pending.id, existing_user_id=existing.id)
    await refused(
        identity.stub.MergePendingStudent(request, metadata=campus.staff_md),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
    )
    assert await identity.count("SELECT count(*) FROM users WHERE id = $1", pending.id) == 1
    merged = "SELECT count(*) FROM audit_events WHERE user_id = $1 AND action = 'user.merged'"
    assert await identity.count(merged, pending.id) == 0


class BrokenOutbox:
    async def enqueue(self, mail: OutgoingMail) -> int:
        raise RuntimeError("the outbox broke")

    async def discard_pending(self, user_id: str, kind: str) -> int:
        return 0


async def test_merge_is_undone_when_a_late_step_fails(
    identity: IdentityClient, campus: Campus, email_app: IdentityApp
) -> None:
    existing = await identity.new_student(campus)
    pending = await identity.sign_up(campus)

    @asynccontextmanager
    async def failing_uow() -> AsyncIterator[PostgresUnitOfWork]:
        async with PostgresUnitOfWork(email_app.pool) as uow:
            uow.outbox = BrokenOutbox()  # type: ignore[assignment]
            yield uow

    merge = functools.partial(
        merge_pending_student,
        failing_uow,
        CodeSettings(),
        Caller("tests", Role.ADMIN),
        pending_user_id=pending.id,
        existing_user_id=existing.id,
        request_id="",
    )
    with pytest.raises(RuntimeError, match="outbox broke"):
        await merge()
    assert await identity.count("SELECT count(*) FROM users WHERE id = $1", pending.id) == 1
    assert await identity.count("SELECT count(*) FROM email_changes WHERE user_id = $1", existing.id) == 0
    flags = await identity.db.fetchval("SELECT file_updates_disabled FROM users WHERE id = $1", existing.id)
    assert flags is False
    assert await identity.audit_count(user_id=pending.id) == 1  # only its sign-up
