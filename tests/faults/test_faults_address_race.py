"""F5 (operations.md, "Reliability targets"): 100 concurrent attempts at one email address — web
sign-ups at two schools, email-change confirmations (codes really mailed by the courier process),
and student-file rows of forty one-row jobs published to the broker — with the address written in
different letter cases (a dotted capital I, a fullwidth letter: the same identity key) and with
spaces around it. Exactly one user ends up holding it; every other
attempt is refused with the reason the rules give, and nothing else goes wrong."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest

from identity_service.domain.identity_keys import email_key
from shared.grpc_kit.errors import error_info
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from tests.e2e.system.system_support import (
    PASSWORD,
    Campus,
    connector,
    email,
    end_message,
    header,
    new_campus,
    outcome_name,
    rows_message,
)
from tests.integration.identity_email.email_support import code_in, mails_to
from tests.integration.identity_mail.mail_helpers import SmtpServer
from tests.process_stack import ProcessStack, eventually, process_stack

pytestmark = pytest.mark.faults


@pytest.fixture
async def mailing_stack(
    pg_server_url: str, amqp_url: str, amqp_prefix: str
) -> AsyncIterator[tuple[ProcessStack, SmtpServer]]:
    mail = SmtpServer()
    mail.start()
    try:
        async with process_stack(pg_server_url, amqp_url, f"{amqp_prefix}_f5", smtp_port=mail.port) as stack:
            yield stack, mail
    finally:
        mail.stop()


def variants(address: str) -> list[str]:
    local, _, domain = address.partition("@")
    return [
        address,
        address.upper(),
        f"{local.title()}@{domain.title()}",
        f"  {address}  ",
        f"{local}@{domain.upper()}",
        f"{local.upper()}@{domain}",
        f"{local.upper().replace('I', 'İ')}@{domain}",  # dotted capital I: PostgreSQL and Python disagreed
        f"\uff49{local[1:]}@{domain}",  # a fullwidth first letter (NFKC makes it the same address)
    ]


async def _outcome(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        info = error_info(error)
        return f"{error.code().name}:{info.reason if info else '-'}"
    return "OK"


async def _open_changes(
    stack: ProcessStack, mail: SmtpServer, campus: Campus, forms: list[str]
) -> list[tuple[res.User, str]]:
    """Five students each with an email change to the address (the per-address hourly limit) and
    the code mailed to it by the courier."""
    opened: list[tuple[res.User, str]] = []
    for n in range(5):
        student = await campus.student(f"changer{n}", email(f"changer{n}"), "Cha", f"Nger{n}")
        before = len(mails_to(mail, forms[0]))
        await stack.identity.RequestEmailChange(
            ipb.RequestEmailChangeRequest(user_id=student.id, new_email=forms[n], disable_file_updates=True),
            metadata=campus.staff_md,
            timeout=10,
        )

        async def mailed(count: int = before) -> bool:
            return len(mails_to(mail, forms[0])) > count

        await eventually(mailed, timeout=30, what=f"the code mail of change {n}")
        opened.append((student, code_in(mails_to(mail, forms[0])[-1])))
    return opened


async def test_f5_one_hundred_attempts_at_one_address_leave_exactly_one_holder(
    mailing_stack: tuple[ProcessStack, SmtpServer],
) -> None:
    stack, mail = mailing_stack
    home, other = await new_campus(stack), await new_campus(stack, "Rival College")
    address = f"inrace-{uuid.uuid4().hex[:8]}@gmail.com"
    forms = variants(address)
    changes = await _open_changes(stack, mail, home, forms)

    def confirm(student: res.User, code: str) -> object:
        md = (("authorization", f"Bearer {stack.platform_token}"), ("x-rollcall-actor", student.id))
        request = ipb.ConfirmEmailChangeRequest(user_id=student.id, code=code, new_password=PASSWORD)
        return stack.identity.ConfirmEmailChange(request, metadata=md, timeout=60)

    def sign_up(n: int) -> object:
        request = ipb.SignUpStudentRequest(
            school_id=(home if n % 2 else other).id,
            email=forms[n % len(forms)],
            first_name="Racer",
            last_name=f"No{n}",
            password=PASSWORD,
        )
        return stack.identity.SignUpStudent(request, metadata=stack.platform_md, timeout=60)

    jobs = [header((home if n % 2 else other).id) for n in range(40)]

    async def import_rows() -> None:
        async with connector(stack) as sis:
            for n, job in enumerate(jobs):
                row = rows_pb.StudentRow(
                    row_number=1, username=f"imp{n}", email_address=forms[n % len(forms)], first_name="Imp"
                )
                await sis.send(rows_message(job, [row]))
                await sis.send(end_message(job, 1))

    confirms = [_outcome(confirm(student, code)) for student, code in changes]
    sign_ups = [_outcome(sign_up(n)) for n in range(55)]
    results = await asyncio.gather(asyncio.gather(*confirms), asyncio.gather(*sign_ups), import_rows())
    confirmed, signed_up = Counter(results[0]), Counter(results[1])
    rows = []
    for job in jobs:
        await stack.wait_job(job.job_id, timeout=60)
        rows.append((job.school_id, (await stack.row_results(job.job_id))[0]))
    imported = Counter((outcome_name(r.outcome), r.reason) for _, r in rows)

    async with stack.identity_db() as db:
        holders = await db.fetch(
            """SELECT id::text AS id, school_id::text AS school_id, email, file_updates_disabled,
                      last_import_job_id
               FROM users WHERE email_key = $1""",
            email_key(address),
        )
    assert len(holders) == 1, f"{len(holders)} holders of {address}: {holders}"
    holder = holders[0]
    assert holder["email"] == holder["email"].strip()
    wins = confirmed["OK"] + signed_up["OK"] + imported[("CREATED", "")]
    assert wins == 1, (confirmed, signed_up, imported)
    assert set(confirmed) <= {"OK", "ALREADY_EXISTS:EMAIL_TAKEN"}, confirmed
    assert set(signed_up) <= {"OK", "ALREADY_EXISTS:EMAIL_TAKEN"}, signed_up
    for school_id, record in rows:
        if record.outcome == rows_pb.ROW_OUTCOME_CREATED:
            assert record.user_id == holder["id"]
        elif school_id != holder["school_id"]:
            assert (outcome_name(record.outcome), record.reason) == ("FAILED", "EMAIL_TAKEN")
        elif holder["file_updates_disabled"]:
            assert (outcome_name(record.outcome), record.reason) == ("SKIPPED", "FILE_UPDATES_DISABLED")
        elif (outcome_name(record.outcome), record.reason) == ("SKIPPED", "SUPERSEDED"):
            # the holder came from a later job's row: across jobs the later job wins (product.md)
            assert record.user_id == holder["id"] and holder["last_import_job_id"] is not None
        else:
            assert (outcome_name(record.outcome), record.reason) == ("FAILED", "SENSITIVE_FIELDS_REQUIRED")
    for form in forms:
        found = await stack.identity.LookupUserByEmail(
            ipb.LookupUserByEmailRequest(email=form), metadata=stack.admin_md, timeout=10
        )
        assert found.id == holder["id"]
