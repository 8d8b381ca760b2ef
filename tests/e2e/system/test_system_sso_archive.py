"""Issue 9's SSO story through both running services, the broker and PostgreSQL: a student whose
auth_identifier came from the SIS file signs in by subject; a file row with status=archived archives
them (a dry run first only says it would), after which SSO answers USER_ARCHIVED and the password
INVALID_CREDENTIALS; next week's ordinary row restores them and both sign-ins work again."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from shared.grpc_kit.errors import error_info
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from tests.e2e.system.system_support import (
    PASSWORD,
    UPLOAD_HEADER,
    Campus,
    csv_text,
    email,
    outcome_name,
    publish_csv,
    spec_for,
)
from tests.process_stack import ProcessStack

WITH_STATUS = (*UPLOAD_HEADER, "status")


async def _sso_campus(stack: ProcessStack) -> Campus:
    school = await stack.identity.CreateSchool(
        ipb.CreateSchoolRequest(
            name=f"SSO University {uuid.uuid4().hex[:6]}", email_domains=["uni.example"], sso_enabled=True
        ),
        metadata=stack.admin_md,
        timeout=10,
    )
    staff = await stack.identity.CreateUser(
        ipb.CreateUserRequest(
            user_type=res.USER_TYPE_STAFF,
            school_id=school.id,
            email=email("careers"),
            first_name="C",
            last_name="C",
        ),
        metadata=stack.admin_md,
        timeout=10,
    )
    return Campus(stack, school, staff)


async def _sso(stack: ProcessStack, campus: Campus, subject: str) -> res.User:
    request = ipb.ResolveSsoSignInRequest(school_id=campus.id, subject=subject)
    return await stack.identity.ResolveSsoSignIn(request, metadata=stack.platform_md, timeout=10)


async def _password(stack: ProcessStack, address: str) -> res.User:
    request = ipb.AuthenticateRequest(email=address, password=PASSWORD)
    return await stack.identity.Authenticate(request, metadata=stack.platform_md, timeout=20)


async def _refused(call: object, code: grpc.StatusCode, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    info = error_info(caught.value)
    assert (caught.value.code(), info.reason if info else "") == (code, reason)


async def _run(
    stack: ProcessStack, tmp_path: Path, campus: Campus, text: str, *, dry_run: bool = False
) -> list:
    spec = spec_for(campus.id, dry_run=dry_run)
    await publish_csv(stack, tmp_path, text, spec)
    job = await stack.wait_job(spec.job_id, timeout=60)
    return [job, *await stack.row_results(spec.job_id)]


async def test_sso_sign_in_by_subject_until_archived_by_a_file_and_again_once_restored(
    stack: ProcessStack, tmp_path: Path
) -> None:
    campus = await _sso_campus(stack)
    address = email(f"kim-{uuid.uuid4().hex[:6]}")
    signed_up = await campus.sign_up(address, first="Kim", last="Park")  # PENDING, with a password

    job, row = await _run(stack, tmp_path, campus, csv_text([(address, address, "Kim", "Park", "SSO-Kim-7")]))
    assert (outcome_name(row.outcome), row.approved, row.user_id) == ("UPDATED", True, signed_up.id)
    assert (await _sso(stack, campus, "sso-kim-7")).id == signed_up.id
    assert (await _password(stack, address)).id == signed_up.id

    leaving = csv_text([(address, address, "", "", "", "archived")], header=WITH_STATUS)
    job, row = await _run(stack, tmp_path, campus, leaving, dry_run=True)
    assert (outcome_name(row.outcome), job.counts.archived) == ("ARCHIVED", 1)
    assert (await campus.user(signed_up.id)).status == res.USER_STATUS_ACTIVE, "a dry run archives nobody"
    job, row = await _run(stack, tmp_path, campus, leaving)
    assert (outcome_name(row.outcome), job.counts.archived, row.message) == ("ARCHIVED", 1, "archived")
    assert row.row.status == "archived" and row.outcome == rows_pb.ROW_OUTCOME_ARCHIVED
    assert (await campus.user(signed_up.id)).status == res.USER_STATUS_ARCHIVED
    await _refused(_sso(stack, campus, "SSO-KIM-7"), grpc.StatusCode.FAILED_PRECONDITION, "USER_ARCHIVED")
    await _refused(_password(stack, address), grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")

    job, row = await _run(stack, tmp_path, campus, csv_text([(address, address, "Kim", "Park", "SSO-Kim-7")]))
    assert (outcome_name(row.outcome), row.message, job.counts.updated) == ("UPDATED", "unarchived", 1)
    assert [(c.field, c.old_value, c.new_value) for c in row.changes] == [("status", "ARCHIVED", "ACTIVE")]
    assert row.row.status == ""
    assert (await _sso(stack, campus, "sso-kim-7")).id == signed_up.id
    assert (await _password(stack, address)).id == signed_up.id
