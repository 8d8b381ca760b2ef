"""``rollcall import changes JOB`` (typer CliRunner) against a stand-in ImportService on a local port:
every change of every page of ListRowResults, one table row per change, and ``--json``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from typer.testing import CliRunner

from shared.cli.main import app
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc

JOB = "job-7"


def _record(number: int, outcome: int, *changes: tuple[str, str, str]) -> pb.RowRecord:
    return pb.RowRecord(
        row_number=number,
        outcome=outcome,
        user_id=f"user-{number}",
        changes=[rows_pb.FieldChange(field=f, old_value=o, new_value=n) for f, o, n in changes],
    )


PAGES = {
    "": (
        [
            _record(1, rows_pb.ROW_OUTCOME_UPDATED, ("first_name", "Ann", "Annie")),
            _record(2, rows_pb.ROW_OUTCOME_UNCHANGED),
        ],
        "page-2",
    ),
    "page-2": (
        [_record(3, rows_pb.ROW_OUTCOME_CREATED, ("username", "", "nia"), ("status", "", "ACTIVE"))],
        "",
    ),
}


class StandIn(pb_grpc.ImportServiceServicer):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def GetImportJob(self, request: pb.GetImportJobRequest, context: grpc.ServicerContext) -> pb.ImportJob:
        counts = pb.ImportCounts(created=1, updated=1, unchanged=1)
        counts.field_changes.update({"first_name": 1, "username": 1, "status": 1})
        return pb.ImportJob(job_id=request.job_id, counts=counts)

    def ListRowResults(
        self, request: pb.ListRowResultsRequest, context: grpc.ServicerContext
    ) -> pb.ListRowResultsResponse:
        self.tokens.append(request.page_token)
        records, token = PAGES[request.page_token]
        return pb.ListRowResultsResponse(results=records, next_page_token=token)


@pytest.fixture
def served() -> Iterator[tuple[str, StandIn]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    stand_in = StandIn()
    pb_grpc.add_ImportServiceServicer_to_server(stand_in, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", stand_in
    finally:
        server.stop(None)


def test_changes_as_json_lists_every_change_of_every_page(served: tuple[str, StandIn]) -> None:
    address, stand_in = served
    result = CliRunner().invoke(app, ["--import-addr", address, "import", "changes", JOB, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["job_id"] == JOB
    assert payload["field_changes"] == {"first_name": 1, "status": 1, "username": 1}
    assert [(c["row_number"], c["field"], c["old_value"], c["new_value"]) for c in payload["changes"]] == [
        (1, "first_name", "Ann", "Annie"),
        (3, "username", "", "nia"),
        (3, "status", "", "ACTIVE"),
    ]
    assert payload["changes"][0]["outcome"] == "UPDATED" and payload["changes"][1]["user_id"] == "user-3"
    assert stand_in.tokens == ["", "page-2"]


def test_changes_as_a_table_has_a_row_per_change(served: tuple[str, StandIn]) -> None:
    address, _ = served
    result = CliRunner().invoke(app, ["--import-addr", address, "import", "changes", JOB])
    assert result.exit_code == 0, result.output
    assert "Ann → Annie" in result.stdout and "∅ → nia" in result.stdout and "∅ → ACTIVE" in result.stdout
    assert "rows changing each field: first_name 1, status 1, username 1" in result.stdout


def test_an_unknown_job_is_an_error_naming_the_status() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()  # no ImportService: every call is UNIMPLEMENTED
    try:
        result = CliRunner().invoke(app, ["--import-addr", f"127.0.0.1:{port}", "import", "changes", JOB])
    finally:
        server.stop(None)
    assert result.exit_code == 1 and "UNIMPLEMENTED" in result.output
