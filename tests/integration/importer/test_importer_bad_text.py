"""Issue 7: bad text in any field of any ImportService RPC is a clear INVALID_ARGUMENT, never
UNKNOWN or INTERNAL, never internal text, and a refused request writes nothing.

Every RPC (from the service descriptor), and every string field of its request (recursively; for
SubmitFile the header, followed by a small valid CSV) gets NUL, a lone surrogate (as wire bytes),
1 MB, random text and bytes and tampered page tokens on top of an otherwise valid request, with the
admin token; the import database is counted before and after. A request that is accepted and starts
a job (SubmitFile, RetryFailedRows) is waited for until that job completes, so its rows cannot land
in the next example's counts.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from import_service.bootstrap import ImportApp
from shared.grpc_kit.errors import error_info, field_violations
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc
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
from tests.integration.importer.importer_support import (
    ADMIN_MD,
    Connector,
    FakeIdentity,
    eventually,
    job_header,
    student_rows,
    unique,
)

RPCS = rpcs(pb.DESCRIPTOR, "ImportService")
EXAMPLES_PER_RPC = int(os.environ.get("ROLLCALL_BAD_TEXT_EXAMPLES", "15"))
CSV = b"username,email_address,first_name,last_name\nbt-1,bt-1@uni.example,Ann,Lee\n"
T = TypeVar("T")


@dataclass
class World:
    """A school with one completed job (one row failed), the import database, a loop to reach it
    from the hypothesis thread, and a plain channel to the server."""

    db: asyncpg.Pool
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel
    school_id: str
    job_id: str
    tables: list[str]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def counts(self) -> dict[str, int]:
        return self.run(row_counts(self.db, self.tables))

    def values(self) -> dict[str, Callable[[], Any]]:
        return {
            "school_id": lambda: self.school_id,
            "job_id": lambda: self.job_id,
            "source_name": lambda: "upload.csv",
        }

    def send(self, rpc: Rpc, slot: Slot | None, value: Hostile | bytes) -> Answer:
        if slot is None:
            assert isinstance(value, bytes)
            wire = value
        else:
            assert not isinstance(value, bytes)
            wire = serialise(valid_request(request_class(rpc), self.values()), slot, value)
        extra = [pb.SubmitFileRequest(chunk=CSV).SerializeToString()] if rpc.method.client_streaming else []
        before = self.counts()
        answer = call(self.channel, rpc, wire, ADMIN_MD, extra)
        judge(rpc, slot, answer)
        if answer.violations or answer.code == grpc.StatusCode.INVALID_ARGUMENT:
            assert self.counts() == before, f"{rpc.name} {slot and slot.path}: refused but wrote"
        if answer.code == grpc.StatusCode.OK and isinstance(answer.response, pb.ImportJob):
            self.settle(answer.response.job_id)
        return answer

    def settle(self, job_id: str) -> None:
        """Wait until an accepted job has completed (all its rows recorded)."""
        stub = pb_grpc.ImportServiceStub(self.channel)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                job = stub.GetImportJob(pb.GetImportJobRequest(job_id=job_id), metadata=ADMIN_MD)
                if job.state == pb.IMPORT_JOB_STATE_COMPLETED:
                    return
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not complete")


@pytest.fixture
async def import_db(import_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(import_db_url, min_size=1, max_size=3)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
async def world(
    import_app: ImportApp,
    importer: pb_grpc.ImportServiceStub,
    connector: Connector,
    fake_identity: FakeIdentity,
    import_db: asyncpg.Pool,
) -> AsyncIterator[World]:
    school = unique("school")
    header = job_header(school)
    rows = student_rows(3)
    rows[1].username = "fail-2"
    await connector.rows(header, rows)
    await connector.end(header, len(rows))
    await _finished(importer, header.job_id)
    tables = await table_names(import_db)
    assert import_app.running is not None
    channel = grpc.insecure_channel(
        f"127.0.0.1:{import_app.running.port}", options=[("grpc.max_send_message_length", 8 * 1024 * 1024)]
    )
    try:
        yield World(import_db, asyncio.get_running_loop(), channel, school, header.job_id, tables)
    finally:
        channel.close()


async def _finished(importer: pb_grpc.ImportServiceStub, job_id: str) -> pb.ImportJob:
    async def check() -> pb.ImportJob | None:
        try:
            job = await importer.GetImportJob(pb.GetImportJobRequest(job_id=job_id), metadata=ADMIN_MD)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None
        return job if job.state == pb.IMPORT_JOB_STATE_COMPLETED else None

    return await eventually(check, what=f"job {job_id} COMPLETED")


def test_every_rpc_has_string_fields_to_try() -> None:
    assert len(RPCS) >= 7
    for rpc in RPCS:
        assert string_slots(rpc.request), rpc.name


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
async def test_every_string_field_refuses_nul_surrogates_and_megabytes(rpc: Rpc, world: World) -> None:
    def sweep() -> None:
        for slot in string_slots(rpc.request):
            for _, value in FIXED:
                world.send(rpc, slot, value)

    await asyncio.to_thread(sweep)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
async def test_property_no_unknown_or_internal_and_refusals_write_nothing(rpc: Rpc, world: World) -> None:
    slots = string_slots(rpc.request)

    @settings(
        max_examples=EXAMPLES_PER_RPC, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(data=st.data())
    def property_holds(data: st.DataObject) -> None:
        if data.draw(st.integers(0, 9), label="whole body?") == 0:
            world.send(rpc, None, data.draw(st.binary(max_size=200), label="body"))
            return
        slot = data.draw(st.sampled_from(slots), label="field")
        world.send(rpc, slot, data.draw(hostile_values(), label="value"))

    await asyncio.to_thread(property_holds)


# ----------------------------------------------------------------------------------------------
# regressions named in issue 7
# ----------------------------------------------------------------------------------------------


async def _refused_naming(call: Any, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    info = error_info(error)
    assert info is not None and (info.domain, info.reason) == ("rollcall", "INVALID_ARGUMENT")
    assert [name for name, _ in field_violations(error)] == [field], error.details()


async def _upload(header: pb.FileHeader) -> AsyncIterator[pb.SubmitFileRequest]:
    yield pb.SubmitFileRequest(header=header)
    yield pb.SubmitFileRequest(chunk=CSV)


async def test_nul_in_a_source_name_is_refused_and_leaves_no_job(
    importer: pb_grpc.ImportServiceStub, world: World
) -> None:
    header = pb.FileHeader(
        school_id=world.school_id,
        mode=rows_pb.IMPORT_MODE_MANUAL_FILE,
        source_name="roster\x00.csv",
        format=pb.FILE_FORMAT_CSV,
    )
    before = await row_counts(world.db, world.tables)
    await _refused_naming(importer.SubmitFile(_upload(header), metadata=ADMIN_MD), "header.source_name")
    assert await row_counts(world.db, world.tables) == before


async def test_nul_in_a_job_id_is_refused_naming_job_id(
    importer: pb_grpc.ImportServiceStub, world: World
) -> None:
    bad = world.job_id + "\x00"
    await _refused_naming(
        importer.GetImportJob(pb.GetImportJobRequest(job_id=bad), metadata=ADMIN_MD), "job_id"
    )
    await _refused_naming(
        importer.ListRowResults(pb.ListRowResultsRequest(job_id=bad), metadata=ADMIN_MD), "job_id"
    )
    await _refused_naming(
        importer.RetryFailedRows(pb.RetryFailedRowsRequest(job_id=bad), metadata=ADMIN_MD), "job_id"
    )
    stream = importer.WatchImportJob(pb.WatchImportJobRequest(job_id=bad), metadata=ADMIN_MD)
    await _refused_naming(_drain(stream), "job_id")
    stream = importer.ExportFailedRows(pb.ExportFailedRowsRequest(job_id=bad), metadata=ADMIN_MD)
    await _refused_naming(_drain(stream), "job_id")


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


def _tampered(kind: str) -> list[str]:
    return [
        tampered_token(kind, ["2026-01-01T00:00:00+00:00", "job\x00"]),
        tampered_token(kind, ["0001-01-01T00:00:00+14:00", "job"]),
        tampered_token(kind, ["\ud800", "job"]),
        tampered_token(kind, 2**70),  # type: ignore[arg-type]
        tampered_token(kind, -5),  # type: ignore[arg-type]
        tampered_token(kind, [1]),
        tampered_token("other", 1),  # type: ignore[arg-type]
        "not a token\x00",
        "eyJrIjoicm93cyIsInYiOjF9!!",  # a good token with junk after it
        "x" * 1024 * 1024,
    ]


async def test_tampered_page_tokens_name_page_token(
    importer: pb_grpc.ImportServiceStub, world: World
) -> None:
    for token in _tampered("jobs"):
        request = pb.ListImportJobsRequest(school_id=world.school_id, page_token=token)
        await _refused_naming(importer.ListImportJobs(request, metadata=ADMIN_MD), "page_token")
    for token in _tampered("rows"):
        rows = pb.ListRowResultsRequest(job_id=world.job_id, page_token=token)
        await _refused_naming(importer.ListRowResults(rows, metadata=ADMIN_MD), "page_token")


async def test_tokens_still_page(importer: pb_grpc.ImportServiceStub, world: World) -> None:
    first = await importer.ListRowResults(
        pb.ListRowResultsRequest(job_id=world.job_id, page_size=1), metadata=ADMIN_MD
    )
    assert first.next_page_token
    second = await importer.ListRowResults(
        pb.ListRowResultsRequest(job_id=world.job_id, page_size=1, page_token=first.next_page_token),
        metadata=ADMIN_MD,
    )
    assert [r.row_number for r in (*first.results, *second.results)] == [1, 2]
