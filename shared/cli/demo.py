"""``rollcall demo``: the help-centre article's story, end to end, against the running services.

1. An administrator creates a school and a career-services staff member.
2. A few students self-register with their school email before the student file arrives
   (their username is their email, so ordinary syncs cannot update them).
3. The SIS connector publishes a student file as an ongoing sync: most rows create students; the
   self-registered students' rows fail with SENSITIVE_FIELDS_REQUIRED.
4. One alumna self-registers with a personal email; staff see her loaded account as the top
   duplicate candidate.
5. Staff re-drive the failed rows with the sensitive-fields setting: usernames are updated and the
   pending students approved.
"""

from __future__ import annotations

import csv
import tempfile
import uuid
from pathlib import Path

from rich.console import Console

from import_service.domain.jobs import ImportMode, JobSpec
from import_service.domain.rows import FileFormat
from shared.cli.clients import Target
from shared.cli.jobs_view import failed_rows, print_job, wait_for_job
from shared.cli.publishing import publish_file
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

out = Console()
SELF_REGISTERED = 5


def _write_file(folder: Path, rows: int, domain: str) -> Path:
    path = folder / "students.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["username", "email_address", "first_name", "last_name", "auth_identifier"])
        for n in range(1, rows + 1):
            writer.writerow([f"s{n:07d}", f"s{n:07d}@{domain}", f"Given{n}", f"Family{n}", f"sis-{n:07d}"])
    return path


async def run(target: Target, rows: int) -> None:
    tag = uuid.uuid4().hex[:6]
    domain = f"demo-{tag}.edu"
    channel, identity = target.identity()
    admin = target.metadata(actor="")
    try:
        out.rule("1. a school and its career-services staff")
        school = await identity.CreateSchool(
            ipb.CreateSchoolRequest(name=f"Demo University {tag}", email_domains=[domain]), metadata=admin
        )
        staff = await identity.CreateUser(
            ipb.CreateUserRequest(
                user_type=res.USER_TYPE_STAFF,
                school_id=school.id,
                email=f"careers@{domain}",
                first_name="Casey",
                last_name="Careers",
            ),
            metadata=admin,
        )
        out.print(f"school {school.name} ({school.id}); staff {staff.email}")
        as_staff = target.metadata(actor=staff.id)

        out.rule("2. students self-register with their school email")
        for n in range(1, SELF_REGISTERED + 1):
            await identity.SignUpStudent(
                ipb.SignUpStudentRequest(
                    school_id=school.id,
                    email=f"s{n:07d}@{domain}",
                    first_name=f"Given{n}",
                    last_name=f"Family{n}",
                    password=f"correct horse {n} battery",
                ),
                metadata=admin,
            )
        pending = await identity.ListPendingStudents(
            ipb.ListPendingStudentsRequest(school_id=school.id), metadata=as_staff
        )
        out.print(f"{len(pending.users)} pending requests, usernames = emails")

        out.rule(f"3. the SIS publishes a {rows}-row ongoing sync")
        with tempfile.TemporaryDirectory() as folder:
            path = _write_file(Path(folder), rows, domain)
            spec = JobSpec(str(uuid.uuid4()), school.id, ImportMode.ONGOING_SYNC, source_name=path.name)
            await publish_file(
                path,
                spec,
                file_format=FileFormat.CSV,
                rows_per_message=100,
                amqp_url=target.amqp_url,
                prefix=target.prefix,
            )
        job = await wait_for_job(target, spec.job_id, show_progress=True)
        print_job(job, await failed_rows(target, spec.job_id, SELF_REGISTERED), False)

        out.rule("4. an alumna signs up with a personal email; staff look for duplicates")
        alumna = await identity.SignUpStudent(
            ipb.SignUpStudentRequest(
                school_id=school.id,
                email=f"given42.family42.{tag}@personal.example",
                first_name="Given42",
                last_name="Family42",
                password="a long enough password",  # noqa: S106 - demo data
            ),
            metadata=admin,
        )
        found = await identity.FindDuplicateCandidates(
            ipb.FindDuplicateCandidatesRequest(user_id=alumna.id), metadata=as_staff
        )
        for candidate in found.candidates[:3]:
            reasons = ", ".join(res_name(r) for r in candidate.reasons)
            user = candidate.user
            out.print(f"  {user.username:>10}  {user.email:<28} {candidate.score:.2f}  {reasons}")

        out.rule("5. staff re-drive the failed rows with the sensitive-fields setting")
        _, importer = target.importer()
        redrive = await importer.RetryFailedRows(
            pb.RetryFailedRowsRequest(job_id=spec.job_id, sensitive_fields_update=True), metadata=as_staff
        )
        job = await wait_for_job(target, redrive.job_id, show_progress=True)
        print_job(job, [], False)
        pending = await identity.ListPendingStudents(
            ipb.ListPendingStudentsRequest(school_id=school.id), metadata=as_staff
        )
        out.print(f"pending requests left: {len(pending.users)} (the alumna, awaiting a staff decision)")
    finally:
        await channel.close()


def res_name(reason: int) -> str:
    return ipb.MatchReason.Name(reason).removeprefix("MATCH_REASON_")  # type: ignore[arg-type]
