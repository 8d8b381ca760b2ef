"""The identity client's deadlines: the full-roster sweep (ArchiveStudentsNotInJob) and the undo
(UndoStudentRows) work on a whole school in one call and get ROLLCALL_IDENTITY_LONG_CALL_TIMEOUT_SECONDS;
every other call keeps ROLLCALL_IDENTITY_CALL_TIMEOUT_SECONDS. Checked on the deadline each call
hands gRPC (a stub standing in for identity's), and the setting itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from import_service.adapters.identity.client import IdentityClient
from import_service.domain.jobs import ImportMode, Job, JobSpec
from import_service.domain.rows import FileRow
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.settings import Settings

ORDINARY, LONG = 7.0, 450.0
SCHOOL = "6f1d3a52-7d0e-4c4e-9a57-3f2b8c1d0e91"


class RecordingStub:
    """Answers each RPC the client makes with an empty response and notes the deadline it got."""

    def __init__(self) -> None:
        self.deadlines: dict[str, float] = {}

    def _rpc(self, name: str, response: Any) -> Any:
        async def call(request: Any, *, timeout: float, metadata: Any) -> Any:
            assert dict(metadata)["authorization"] == "Bearer importer-token-0123456789"
            self.deadlines[name] = timeout
            return response

        return call

    def __getattr__(self, name: str) -> Any:
        responses = {
            "ApplyStudentRows": pb.ApplyStudentRowsResponse(),
            "GetImportGuard": pb.ImportGuard(),
            "ArchiveStudentsNotInJob": pb.ArchiveStudentsNotInJobResponse(),
            "UndoStudentRows": pb.UndoStudentRowsResponse(),
            "GetUser": res.User(),
        }
        return self._rpc(name, responses[name])


def _job(job_id: str, undo_of: str = "") -> Job:
    spec = JobSpec(job_id, SCHOOL, ImportMode.ONGOING_SYNC, full_roster=not undo_of, undo_of_job_id=undo_of)
    return Job(spec, datetime(2026, 1, 5, tzinfo=UTC))


async def _every_call(client: IdentityClient) -> dict[str, float]:
    stub = RecordingStub()
    client._stub = stub  # type: ignore[assignment]
    try:
        await client.apply_rows(_job("j1"), [FileRow(1, "ann", "ann@uni.edu", "Ann")], dry_run=False)
        await client.import_guard(SCHOOL)
        await client.sweep(_job("j1"), dry_run=False)
        await client.undo_rows(_job("j2", undo_of="j1"))
        await client.get_user("0b0c3c2e-2f55-4f1e-8a0e-1d4a1e2c9b7f")
        await client.active_staff_school("5a4e8f0e-0c6f-4f9e-9d3c-5a2b1c0d9e8f")
    finally:
        await client.close()
    return stub.deadlines


async def test_the_sweep_and_the_undo_get_the_long_deadline_every_other_call_the_ordinary_one() -> None:
    client = IdentityClient("localhost:1", "importer-token-0123456789", ORDINARY, long_timeout_seconds=LONG)
    assert await _every_call(client) == {
        "ApplyStudentRows": ORDINARY,
        "GetImportGuard": ORDINARY,
        "ArchiveStudentsNotInJob": LONG,
        "UndoStudentRows": LONG,
        "GetUser": ORDINARY,
    }


async def test_without_a_long_deadline_every_call_gets_the_ordinary_one() -> None:
    client = IdentityClient("localhost:1", "importer-token-0123456789", ORDINARY)
    assert set((await _every_call(client)).values()) == {ORDINARY}


def test_the_long_deadline_defaults_to_ten_minutes_and_is_read_from_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ROLLCALL_IDENTITY_CALL_TIMEOUT_SECONDS", raising=False)
    monkeypatch.delenv("ROLLCALL_IDENTITY_LONG_CALL_TIMEOUT_SECONDS", raising=False)
    settings = Settings()
    assert (settings.identity_call_timeout_seconds, settings.identity_long_call_timeout_seconds) == (30, 600)
    monkeypatch.setenv("ROLLCALL_IDENTITY_LONG_CALL_TIMEOUT_SECONDS", "1800")
    assert Settings().identity_long_call_timeout_seconds == 1800


def test_a_long_deadline_shorter_than_the_ordinary_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="LONG_CALL_TIMEOUT_SECONDS is shorter"):
        Settings(identity_call_timeout_seconds=60, identity_long_call_timeout_seconds=45)
