"""Stand-in identity and import services on local ports for the CLI's tests (typer CliRunner): known
ids answer, any other is refused as the real services refuse it (NOT_FOUND with the ErrorInfo
reason), and every request is kept for the test to look at."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from typer.testing import CliRunner, Result

from shared.cli.main import app
from shared.errors import Reason, RollcallError
from shared.grpc_kit.errors import to_grpc_status
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as ipb_grpc
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc

SCHOOL = "school-1"
JOB = "job-1"
REDRIVE = "job-2"
FAILED_CSV = b"username,email_address,first_name,last_name\r\nbo,bo@uni.edu,Bo,Kim\r\n"
COUNTS = pb.ImportCounts(created=2, failed=1)


def refuse(context: grpc.ServicerContext, reason: Reason, message: str, **metadata: str) -> None:
    context.abort_with_status(to_grpc_status(RollcallError(reason, message, metadata=metadata)))


def job(job_id: str = JOB, state: int = pb.IMPORT_JOB_STATE_COMPLETED, **fields: object) -> pb.ImportJob:
    return pb.ImportJob(job_id=job_id, school_id=SCHOOL, state=state, **fields)  # type: ignore[arg-type]


FAILED_ROW = pb.RowRecord(
    row_number=3,
    outcome=rows_pb.ROW_OUTCOME_FAILED,
    reason="EMAIL_TAKEN",
    message="the email is taken",
    row=rows_pb.StudentRow(username="bo", email_address="bo@uni.edu"),
)


@dataclass
class Identity(ipb_grpc.IdentityServiceServicer):
    schools: dict[str, res.School] = field(
        default_factory=lambda: {SCHOOL: res.School(id=SCHOOL, name="Uni", email_domains=["uni.edu"])}
    )
    pending: set[str] = field(default_factory=lambda: {"u-1", "u-2"})
    asked: list[str] = field(default_factory=list)

    def GetSchool(self, request: ipb.GetSchoolRequest, context: grpc.ServicerContext) -> res.School:
        self.asked.append(f"GetSchool {request.id}")
        if request.id not in self.schools:
            refuse(context, Reason.SCHOOL_NOT_FOUND, "school not found", school_id=request.id)
        return self.schools[request.id]

    def UpdateSchool(self, request: ipb.UpdateSchoolRequest, context: grpc.ServicerContext) -> res.School:
        self.asked.append(f"UpdateSchool {request.school.id}")
        if request.school.id not in self.schools:
            refuse(context, Reason.SCHOOL_NOT_FOUND, "school not found")
        school = self.schools[request.school.id]
        if "change_threshold_percent" in request.update_mask.paths:
            school.change_threshold_percent = request.school.change_threshold_percent
        return school

    def _decide(
        self, school_id: str, ids: list[str], context: grpc.ServicerContext
    ) -> ipb.BatchDecideStudentsResponse:
        if school_id not in self.schools:
            refuse(context, Reason.SCHOOL_NOT_FOUND, "school not found")
        results = []
        for user_id in ids:
            if user_id in self.pending:
                user = res.User(id=user_id, status=res.USER_STATUS_ACTIVE)
                results.append(ipb.BatchDecisionResult(user_id=user_id, user=user))
            else:
                results.append(
                    ipb.BatchDecisionResult(
                        user_id=user_id, error_reason="USER_NOT_FOUND", error_message="no such user"
                    )
                )
        return ipb.BatchDecideStudentsResponse(results=results)

    def BatchApproveStudents(
        self, request: ipb.BatchApproveStudentsRequest, context: grpc.ServicerContext
    ) -> ipb.BatchDecideStudentsResponse:
        return self._decide(request.school_id, list(request.user_ids), context)

    def BatchDeclineStudents(
        self, request: ipb.BatchDeclineStudentsRequest, context: grpc.ServicerContext
    ) -> ipb.BatchDecideStudentsResponse:
        return self._decide(request.school_id, list(request.user_ids), context)

    def CreateSchool(self, request: ipb.CreateSchoolRequest, context: grpc.ServicerContext) -> res.School:
        refuse(context, Reason.PERMISSION_DENIED, "only the admin creates schools")
        raise AssertionError  # abort raised


@dataclass
class Importer(pb_grpc.ImportServiceServicer):
    jobs: dict[str, pb.ImportJob] = field(
        default_factory=lambda: {JOB: job(total_rows=3, rows_received=3, counts=COUNTS)}
    )
    headers: list[pb.FileHeader] = field(default_factory=list)
    uploaded: list[int] = field(default_factory=list)

    def _job(self, job_id: str, context: grpc.ServicerContext) -> pb.ImportJob:
        if job_id not in self.jobs:
            refuse(context, Reason.JOB_NOT_FOUND, "import job not found", job_id=job_id)
        return self.jobs[job_id]

    def GetImportJob(self, request: pb.GetImportJobRequest, context: grpc.ServicerContext) -> pb.ImportJob:
        return self._job(request.job_id, context)

    def WatchImportJob(
        self, request: pb.WatchImportJobRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ImportJob]:
        found = self._job(request.job_id, context)
        yield job(found.job_id, pb.IMPORT_JOB_STATE_RECEIVING, rows_received=1)
        yield found

    def ListRowResults(
        self, request: pb.ListRowResultsRequest, context: grpc.ServicerContext
    ) -> pb.ListRowResultsResponse:
        self._job(request.job_id, context)
        return pb.ListRowResultsResponse(results=[FAILED_ROW])

    def ExportFailedRows(
        self, request: pb.ExportFailedRowsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ExportFailedRowsResponse]:
        self._job(request.job_id, context)
        yield pb.ExportFailedRowsResponse(csv_chunk=FAILED_CSV)

    def RetryFailedRows(
        self, request: pb.RetryFailedRowsRequest, context: grpc.ServicerContext
    ) -> pb.ImportJob:
        self._job(request.job_id, context)
        redrive = job(REDRIVE, pb.IMPORT_JOB_STATE_RECEIVING, parent_job_id=request.job_id)
        self.jobs[REDRIVE] = job(REDRIVE, parent_job_id=request.job_id, counts=pb.ImportCounts(updated=1))
        return redrive

    def SubmitFile(
        self, request_iterator: Iterator[pb.SubmitFileRequest], context: grpc.ServicerContext
    ) -> pb.ImportJob:
        header = next(request_iterator).header
        self.headers.append(header)
        self.uploaded.append(sum(len(piece.chunk) for piece in request_iterator))
        if header.school_id != SCHOOL:
            refuse(context, Reason.NOT_STAFF_OF_SCHOOL, "the actor is not staff of the school")
        self.jobs["job-up"] = job("job-up", source_name=header.source_name, counts=pb.ImportCounts(created=1))
        return job("job-up", pb.IMPORT_JOB_STATE_RECEIVING, source_name=header.source_name)

    def ReleaseImportJob(
        self, request: pb.ReleaseImportJobRequest, context: grpc.ServicerContext
    ) -> pb.ImportJob:
        self._job(request.job_id, context)
        refuse(context, Reason.JOB_NOT_HELD, "the job is COMPLETED")
        raise AssertionError

    def DiscardImportJob(
        self, request: pb.DiscardImportJobRequest, context: grpc.ServicerContext
    ) -> pb.ImportJob:
        self._job(request.job_id, context)
        refuse(context, Reason.JOB_NOT_HELD, "the job is COMPLETED")
        raise AssertionError

    def UndoImportJob(self, request: pb.UndoImportJobRequest, context: grpc.ServicerContext) -> pb.ImportJob:
        self._job(request.job_id, context)
        refuse(context, Reason.JOB_NOT_UNDOABLE, "the job changed nothing")
        raise AssertionError


@dataclass
class Served:
    identity_addr: str
    import_addr: str
    identity: Identity
    importer: Importer

    def head(self) -> list[str]:
        return ["--identity", self.identity_addr, "--import-addr", self.import_addr]


def serve() -> Iterator[Served]:
    identity, importer = Identity(), Importer()
    servers, ports = [], []
    for add, servicer in (
        (ipb_grpc.add_IdentityServiceServicer_to_server, identity),
        (pb_grpc.add_ImportServiceServicer_to_server, importer),
    ):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        add(servicer, server)  # type: ignore[operator]
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        server.start()
        servers.append(server)
    try:
        yield Served(f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}", identity, importer)
    finally:
        for server in servers:
            server.stop(None)


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """One CLI run, wide enough that no table wraps."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def closed_port() -> int:
    """A local port nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
