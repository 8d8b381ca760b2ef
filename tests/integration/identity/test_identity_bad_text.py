"""Issue 7: bad text in any field of any IdentityService RPC is a clear INVALID_ARGUMENT, never
UNKNOWN or INTERNAL, never internal text, and a refused request writes nothing.

Every RPC (from the service descriptor), and every string field of its request (recursively) gets NUL,
a lone surrogate (as wire bytes), 1 MB, random text and bytes and tampered page tokens, on top of an
otherwise valid request, with the admin token; the whole database is counted before and after.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf import field_mask_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity_service.bootstrap import IdentityApp
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from tests.integration.bad_text_support import (
    FIXED,
    Answer,
    Hostile,
    Rpc,
    Slot,
    call,
    hostile_values,
    judge,
    request_class,
    row_counts,
    rpcs,
    serialise,
    string_slots,
    table_names,
    tampered_token,
    valid_request,
)
from tests.integration.identity.identity_support import IdentityClient, invalid, unique

RPCS = rpcs(pb.DESCRIPTOR, "IdentityService")
EXAMPLES_PER_RPC = int(os.environ.get("ROLLCALL_BAD_TEXT_EXAMPLES", "12"))
T = TypeVar("T")


@dataclass
class World:
    """A school with staff, a pending and an active student, a loop to reach the database from the
    hypothesis thread, and a plain channel to the server."""

    identity: IdentityClient
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel
    school_id: str
    domain: str
    pending_id: str
    active_id: str
    tables: list[str]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def counts(self) -> dict[str, int]:
        return self.run(row_counts(self.identity.db, self.tables))

    def values(self) -> dict[str, Callable[[], Any]]:
        fresh_email = lambda: f"{unique('e')}@{self.domain}"  # noqa: E731
        return {
            "school_id": lambda: self.school_id,
            "GetSchoolRequest.id": lambda: self.school_id,
            "School.id": lambda: self.school_id,
            "id": lambda: self.active_id,
            "user_id": lambda: self.pending_id,
            "pending_user_id": lambda: self.pending_id,
            "existing_user_id": lambda: self.active_id,
            "email": fresh_email,
            "new_email": fresh_email,
            "email_address": fresh_email,
            "username": lambda: unique("u"),
            "first_name": lambda: "Ann",
            "last_name": lambda: "Lee",
            "auth_identifier": lambda: unique("sis"),
            "password": lambda: "correct horse battery",
            "new_password": lambda: "correct horse battery",
            "name": lambda: f"School {unique()}",
            "email_domains": lambda: [f"{unique('d')}.edu"],
            "notify_emails": lambda: [f"careers@{self.domain}"],
            "user_ids": lambda: [self.pending_id],
            "update_mask": lambda: field_mask_pb2.FieldMask(paths=["name", "email_domains", "notify_emails"]),
            "query": lambda: "ann",
            "note": lambda: "checked",
            "reason": lambda: "not one of ours",
            "code": lambda: "ABCD-EFGH",
            "job_id": lambda: unique("job-"),
            "undo_job_id": lambda: unique("undo-"),
            "row_number": lambda: 1,
        }

    def send(self, rpc: Rpc, slot: Slot | None, value: Hostile | bytes) -> Answer:
        """One request with ``value`` in ``slot`` (or ``value`` as the whole body); judged, and a field
        refusal must have written nothing."""
        if slot is None:
            assert isinstance(value, bytes)
            wire = value
        else:
            assert not isinstance(value, bytes)
            wire = serialise(valid_request(request_class(rpc), self.values()), slot, value)
        before = self.counts()
        answer = call(self.channel, rpc, wire, self.identity.admin, ())
        judge(rpc, slot, answer)
        if answer.violations or answer.code == grpc.StatusCode.INVALID_ARGUMENT:
            assert self.counts() == before, f"{rpc.name} {slot and slot.path}: refused but wrote"
        return answer


@pytest.fixture
async def world(identity: IdentityClient, identity_app: IdentityApp) -> Any:
    campus = await identity.new_campus()
    pending = await identity.sign_up(campus)
    active = await identity.new_student(campus, username=unique("alee"), first_name="Ann", last_name="Lee")
    tables = await table_names(identity.db)
    assert identity_app.running is not None
    channel = grpc.insecure_channel(
        f"127.0.0.1:{identity_app.running.port}",
        options=[("grpc.max_send_message_length", 8 * 1024 * 1024)],
    )
    try:
        yield World(
            identity,
            asyncio.get_running_loop(),
            channel,
            campus.school.id,
            campus.domain,
            pending.id,
            active.id,
            tables,
        )
    finally:
        channel.close()


def test_every_rpc_has_string_fields_to_try() -> None:
    assert len(RPCS) >= 21
    for rpc in RPCS:
        assert string_slots(rpc.request), rpc.name


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
async def test_every_string_field_refuses_nul_surrogates_and_megabytes(rpc: Rpc, world: World) -> None:
    """Each string field of the request in turn: NUL, a lone surrogate, 1 MB."""

    def sweep() -> None:
        for slot in string_slots(rpc.request):
            for _, value in FIXED:
                world.send(rpc, slot, value)

    await asyncio.to_thread(sweep)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
async def test_property_no_unknown_or_internal_and_refusals_write_nothing(rpc: Rpc, world: World) -> None:
    slots = string_slots(rpc.request)
    bodies = st.binary(max_size=200)

    @settings(
        max_examples=EXAMPLES_PER_RPC,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def property_holds(data: st.DataObject) -> None:
        if not slots or data.draw(st.integers(0, 9), label="whole body?") == 0:
            world.send(rpc, None, data.draw(bodies, label="body"))
            return
        slot = data.draw(st.sampled_from(slots), label="field")
        world.send(rpc, slot, data.draw(hostile_values(), label="value"))

    await asyncio.to_thread(property_holds)


# ----------------------------------------------------------------------------------------------
# regressions named in issue 7
# ----------------------------------------------------------------------------------------------

ADMIN = IdentityClient.md("admin")


def _tampered() -> list[str]:
    return [
        tampered_token("audit", ["1\x00"]),
        tampered_token("audit", [2**70]),
        tampered_token("audit", [-(2**70)]),
        tampered_token("search", ["Ann\x00", "Lee", "00000000-0000-0000-0000-000000000000"]),
        tampered_token("search", ["\ud800", "Lee", "00000000-0000-0000-0000-000000000000"]),
        tampered_token("pending", ["2026-01-01T00:00:00+00:00", "not-a-uuid\x00"]),
        tampered_token(
            "pending", ["9999-12-31T23:59:59.999999-23:59", "00000000-0000-0000-0000-000000000000"]
        ),
        base64.urlsafe_b64encode(b"\x00\xff garbage").decode(),
        "not base64 at all!\x00",
        "a" * 1024 * 1024,
    ]


async def test_tampered_page_tokens_name_page_token(identity: IdentityClient, world: World) -> None:
    school = world.school_id
    for token in _tampered():
        await invalid(
            identity.stub.ListAuditEvents(
                pb.ListAuditEventsRequest(school_id=school, page_token=token), metadata=ADMIN
            ),
            "page_token",
        )
        await invalid(
            identity.stub.SearchUsers(
                pb.SearchUsersRequest(school_id=school, page_token=token), metadata=ADMIN
            ),
            "page_token",
        )
        await invalid(
            identity.stub.ListPendingStudents(
                pb.ListPendingStudentsRequest(school_id=school, page_token=token), metadata=ADMIN
            ),
            "page_token",
        )


async def test_nul_in_a_job_id_is_refused_naming_job_id(identity: IdentityClient, world: World) -> None:
    before = await row_counts(identity.db, world.tables)
    row = rows_pb.StudentRow(
        row_number=1, username=unique("u"), email_address=f"{unique('e')}@{world.domain}"
    )
    request = pb.ApplyStudentRowsRequest(
        school_id=world.school_id, job_id="job\x00one", mode=rows_pb.IMPORT_MODE_ONGOING_SYNC, rows=[row]
    )
    await invalid(identity.stub.ApplyStudentRows(request, metadata=ADMIN), "job_id")
    assert await row_counts(identity.db, world.tables) == before


async def test_undecodable_text_names_the_field(identity: IdentityClient, world: World) -> None:
    """A string field that is not UTF-8 (e.g. a lone surrogate another client put on the wire)."""
    rpc = next(r for r in RPCS if r.name == "CreateSchool")
    slot = next(s for s in string_slots(rpc.request) if s.path == "name")
    answer = await asyncio.to_thread(world.send, rpc, slot, FIXED[1][1])
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT
    assert answer.reason == "INVALID_ARGUMENT" and answer.violations == ("name",)


async def test_nul_in_a_student_row_is_that_row_failing(identity: IdentityClient, world: World) -> None:
    row = rows_pb.StudentRow(row_number=1, username="a\x00b", email_address=f"{unique('e')}@{world.domain}")
    request = pb.ApplyStudentRowsRequest(
        school_id=world.school_id, job_id=unique("job-"), mode=rows_pb.IMPORT_MODE_ONGOING_SYNC, rows=[row]
    )
    response = await identity.stub.ApplyStudentRows(request, metadata=ADMIN)
    assert [(r.outcome, r.reason) for r in response.results] == [(rows_pb.ROW_OUTCOME_FAILED, "INVALID_ROW")]
