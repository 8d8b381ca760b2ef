"""``rollcall import hold|release|discard|undo`` and ``upload --full-roster`` (typer CliRunner) against
a stand-in ImportService on a local port: every page of the preview and of the archives, a fresh
request id per decision unless one is given, ``--wait`` following the job, and refusals as one line
naming the ErrorInfo reason."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner, Result

from shared.cli.main import app
from shared.errors import Reason, RollcallError
from shared.grpc_kit.errors import to_grpc_status
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc

HELD = "job-held"
DONE = "job-done"
UNDO = "job-undo"
HOLD = pb.JobHold(sensitive_changes=2, archives=3, school_students=20, threshold_percent=10)


def _job(job_id: str, state: int, **fields: object) -> pb.ImportJob:
    return pb.ImportJob(job_id=job_id, school_id="school-1", state=state, **fields)  # type: ignore[arg-type]


def _record(number: int, *changes: tuple[str, str, str]) -> pb.RowRecord:
    return pb.RowRecord(
        row_number=number,
        outcome=rows_pb.ROW_OUTCOME_UPDATED,
        user_id=f"user-{number}",
        changes=[rows_pb.FieldChange(field=f, old_value=o, new_value=n) for f, o, n in changes],
    )


ROW_PAGES = {
    "": ([_record(1, ("email_address", "a@uni.edu", "a2@uni.edu"))], "rows-2"),
    "rows-2": ([_record(4, ("username", "bo", "bo.kim"), ("first_name", "Bo", "Bob"))], ""),
}
ARCHIVE_PAGES = {
    "": ([pb.JobArchive(user_id="u-1", username="cy", email_address="cy@uni.edu")], "archives-2"),
    "archives-2": (
        [
            pb.JobArchive(user_id="u-2", username="di", email_address="di@uni.edu"),
            pb.JobArchive(user_id="u-3", username="ed", email_address="ed@uni.edu"),
        ],
        "",
    ),
}


class StandIn(pb_grpc.ImportServiceServicer):
    def __init__(self) -> None:
        self.jobs = {
            HELD: _job(HELD, pb.IMPORT_JOB_STATE_HELD, full_roster=True, rows_received=5, hold=HOLD),
            DONE: _job(DONE, pb.IMPORT_JOB_STATE_COMPLETED, sensitive_fields_update=True),
        }
        self.decisions: list[tuple[str, str, str]] = []
        self.row_requests: list[pb.ListRowResultsRequest] = []
        self.archive_tokens: list[str] = []
        self.header: pb.FileHeader | None = None

    def GetImportJob(self, request: pb.GetImportJobRequest, context: grpc.ServicerContext) -> pb.ImportJob:
        return self.jobs[request.job_id]

    def ListRowResults(
        self, request: pb.ListRowResultsRequest, context: grpc.ServicerContext
    ) -> pb.ListRowResultsResponse:
        self.row_requests.append(request)
        if list(request.outcomes) == [rows_pb.ROW_OUTCOME_FAILED]:
            return pb.ListRowResultsResponse()
        records, token = ROW_PAGES[request.page_token]
        return pb.ListRowResultsResponse(results=records, next_page_token=token)

    def ListJobArchives(
        self, request: pb.ListJobArchivesRequest, context: grpc.ServicerContext
    ) -> pb.ListJobArchivesResponse:
        self.archive_tokens.append(request.page_token)
        archives, token = ARCHIVE_PAGES[request.page_token]
        return pb.ListJobArchivesResponse(archives=archives, next_page_token=token)

    def ReleaseImportJob(
        self, request: pb.ReleaseImportJobRequest, context: grpc.ServicerContext
    ) -> pb.ImportJob:
        self.decisions.append(("release", request.job_id, request.request_id))
        if self.jobs[request.job_id].state != pb.IMPORT_JOB_STATE_HELD:
            refusal = RollcallError(Reason.JOB_NOT_HELD, "the job is COMPLETED")
            context.abort_with_status(to_grpc_status(refusal))
        return _job(request.job_id, pb.IMPORT_JOB_STATE_RECEIVING, hold=HOLD)

    def DiscardImportJob(
        self, request: pb.DiscardImportJobRequest, context: grpc.ServicerContext
    ) -> pb.ImportJob:
        self.decisions.append(("discard", request.job_id, request.request_id))
        return _job(request.job_id, pb.IMPORT_JOB_STATE_DISCARDED, hold=HOLD)

    def UndoImportJob(self, request: pb.UndoImportJobRequest, context: grpc.ServicerContext) -> pb.ImportJob:
        self.decisions.append(("undo", request.job_id, request.request_id))
        return _job(UNDO, pb.IMPORT_JOB_STATE_RECEIVING, undo_of_job_id=request.job_id)

    def WatchImportJob(
        self, request: pb.WatchImportJobRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ImportJob]:
        if request.job_id == UNDO:
            counts = pb.ImportCounts(updated=3, deleted=1, skipped=2)
            yield _job(UNDO, pb.IMPORT_JOB_STATE_RECEIVING, undo_of_job_id=DONE, rows_received=2)
            yield _job(UNDO, pb.IMPORT_JOB_STATE_COMPLETED, undo_of_job_id=DONE, total_rows=6, counts=counts)
            return
        counts = pb.ImportCounts(updated=2, archived=0, unchanged=3)
        yield _job(request.job_id, pb.IMPORT_JOB_STATE_COMPLETED, full_roster=True, hold=HOLD, counts=counts)

    def SubmitFile(
        self, request_iterator: Iterator[pb.SubmitFileRequest], context: grpc.ServicerContext
    ) -> pb.ImportJob:
        first = next(request_iterator)
        self.header = first.header
        for _ in request_iterator:
            pass
        return _job("job-up", pb.IMPORT_JOB_STATE_RECEIVING, full_roster=first.header.full_roster)


@pytest.fixture
def served() -> Iterator[tuple[str, StandIn]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    stand_in = StandIn()
    pb_grpc.add_ImportServiceServicer_to_server(stand_in, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", stand_in
    finally:
        server.stop(None)


def _cli(address: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--import-addr", address, "import", *args], env={"COLUMNS": "200"})


def test_hold_as_json_has_the_figures_every_change_and_every_archive(served: tuple[str, StandIn]) -> None:
    address, stand_in = served
    result = _cli(address, "hold", HELD, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["state"], payload["held"], payload["preview"], payload["full_roster"]) == (
        "HELD",
        True,
        True,
        True,
    )
    assert payload["hold"] == {
        "sensitive_changes": 2, "archives": 3, "school_students": 20, "threshold_percent": 10,
        "percent": 25.0, "exceeded": True,
    }  # fmt: skip
    assert [(c["row_number"], c["field"], c["old_value"], c["new_value"]) for c in payload["changes"]] == [
        (1, "email_address", "a@uni.edu", "a2@uni.edu"),
        (4, "username", "bo", "bo.kim"),
        (4, "first_name", "Bo", "Bob"),
    ]
    assert [a["username"] for a in payload["archives"]] == ["cy", "di", "ed"]
    assert payload["archives"][0]["archive_time"] == ""  # would be archived
    assert [r.page_token for r in stand_in.row_requests] == ["", "rows-2"]
    assert rows_pb.ROW_OUTCOME_UNCHANGED not in stand_in.row_requests[0].outcomes
    assert stand_in.archive_tokens == ["", "archives-2"]


def test_hold_as_a_table_says_why_and_what_it_would_change(served: tuple[str, StandIn]) -> None:
    address, _ = served
    result = _cli(address, "hold", HELD)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"job {HELD} is HELD" in out
    assert "why: 2 sensitive changes + 3 archives = 25.0 % of 20 students (threshold 10 %)" in out
    assert "rows it would change (2)" in out and "a@uni.edu → a2@uni.edu" in out and "Bo → Bob" in out
    assert "students it would archive (3)" in out and "di@uni.edu" in out


def test_hold_of_a_job_that_is_not_held_says_its_state(served: tuple[str, StandIn]) -> None:
    address, stand_in = served
    result = _cli(address, "hold", DONE)
    assert result.exit_code == 0, result.output
    assert f"job {DONE} is COMPLETED, not held" in result.stdout and "rows it changed" in result.stdout
    assert stand_in.archive_tokens == []  # not a full roster


def test_release_sends_a_fresh_request_id_each_time_unless_given(served: tuple[str, StandIn]) -> None:
    address, stand_in = served
    first = _cli(address, "release", HELD, "--json")
    second = _cli(address, "release", HELD)
    given = _cli(address, "release", HELD, "--request-id", "fix-1", "--json")
    assert first.exit_code == second.exit_code == given.exit_code == 0, first.output + second.output
    ids = [request_id for _, _, request_id in stand_in.decisions]
    assert ids[2] == "fix-1" and ids[0] != ids[1]
    assert all(uuid.UUID(i) for i in ids[:2])
    assert json.loads(first.stdout)["requestId"] == ids[0]
    assert json.loads(given.stdout)["requestId"] == "fix-1"
    assert f"request id {ids[1]}" in second.output


def test_release_wait_follows_the_job_to_its_counts(served: tuple[str, StandIn]) -> None:
    address, _ = served
    result = _cli(address, "release", HELD, "--wait")
    assert result.exit_code == 0, result.output
    assert f"job {HELD} — COMPLETED" in result.stdout
    assert "released; it was held for 2 sensitive changes + 3 archives" in result.stdout


def test_undo_wait_prints_the_new_job_and_its_counts(served: tuple[str, StandIn]) -> None:
    address, stand_in = served
    result = _cli(address, "undo", DONE, "--wait", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["jobId"], payload["undoOfJobId"], payload["state"]) == (
        UNDO,
        DONE,
        "IMPORT_JOB_STATE_COMPLETED",
    )
    assert (payload["counts"]["updated"], payload["counts"]["deleted"], payload["counts"]["skipped"]) == (
        "3",
        "1",
        "2",
    )
    assert stand_in.decisions[0][:2] == ("undo", DONE)
    table = _cli(address, "undo", DONE, "--wait")
    assert f"undo job {UNDO} of job {DONE}" in table.output
    assert f"undo of job {DONE}: 3 updated, 1 deleted, 2 skipped (changed since)" in table.stdout


def test_discard_prints_the_discarded_job(served: tuple[str, StandIn]) -> None:
    address, stand_in = served
    result = _cli(address, "discard", HELD)
    assert result.exit_code == 0, result.output
    assert f"job {HELD} — DISCARDED" in result.stdout
    assert "discarded, nothing applied; it was held for" in result.stdout
    assert stand_in.decisions[0][:2] == ("discard", HELD)


def test_a_refused_release_is_one_line_naming_the_reason(served: tuple[str, StandIn]) -> None:
    address, _ = served
    result = _cli(address, "release", DONE)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1] == "error FAILED_PRECONDITION JOB_NOT_HELD: the job is COMPLETED"


def test_too_long_request_id_is_a_usage_error(served: tuple[str, StandIn]) -> None:
    address, stand_in = served
    result = _cli(address, "undo", DONE, "--request-id", "x" * 129)
    assert result.exit_code == 2 and "--request-id" in result.output
    assert stand_in.decisions == []


def test_upload_full_roster_sets_the_header_flag(served: tuple[str, StandIn], tmp_path: Path) -> None:
    address, stand_in = served
    roster = tmp_path / "all.csv"
    roster.write_text("username,email_address,first_name,last_name\r\nann,ann@uni.edu,Ann,Lee\r\n")
    result = _cli(address, "upload", str(roster), "--school", "school-1", "--full-roster", "--json")
    assert result.exit_code == 0, result.output
    assert stand_in.header is not None and stand_in.header.full_roster
    assert json.loads(result.stdout)["fullRoster"] is True
    plain = _cli(address, "upload", str(roster), "--school", "school-1", "--json")
    assert plain.exit_code == 0 and not stand_in.header.full_roster
