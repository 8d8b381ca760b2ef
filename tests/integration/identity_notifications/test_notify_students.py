"""Mail to students through the real service, the real courier and a real SMTP server: "your request is
waiting for <school>" on SignUpStudent, "approved" / "declined" after ApproveStudent, DeclineStudent
and their batches (one mail per student decided), and "approved" when a student file approves."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from identity_service.service.courier import Courier
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows
from tests.integration.identity.identity_support import Campus, IdentityClient, unique
from tests.integration.identity_mail.mail_helpers import SmtpServer
from tests.integration.identity_notifications.notify_support import deliver, mails_to, subject_of, text_of


async def test_a_student_who_signs_up_is_told_the_request_waits_for_the_school(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.sign_up(campus, first_name="Ann", request_id=unique("r"))
    await deliver(courier)
    [mail] = mails_to(mail_server, student.email)
    assert subject_of(mail) == f"Your request is waiting for {campus.school.name}"
    assert mail["From"] == "careers@rollcall.example" and mail.get_content_type() == "text/plain"
    body = text_of(mail)
    assert body.startswith("Hello Ann,") and student.email in body and "cannot sign in yet" in body
    row = await identity.db.fetchrow(
        "SELECT status, body, user_id::text FROM outbox_messages WHERE user_id = $1", student.id
    )
    assert (row["status"], row["body"], row["user_id"]) == ("SENT", "", student.id)


async def test_each_student_decided_gets_one_mail_single_or_batch(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    students = [await identity.sign_up(campus, first_name=f"S{n}") for n in range(6)]
    staff = campus.staff_md
    await identity.stub.ApproveStudent(pb.ApproveStudentRequest(user_id=students[0].id), metadata=staff)
    await identity.stub.DeclineStudent(
        pb.DeclineStudentRequest(user_id=students[1].id, reason="internal: duplicate of s-42"), metadata=staff
    )
    batch_approve = pb.BatchApproveStudentsRequest(
        school_id=campus.school.id,
        user_ids=[students[2].id, students[3].id, students[0].id],
        request_id="ba-1",
    )
    answer = await identity.stub.BatchApproveStudents(batch_approve, metadata=staff)
    assert [r.error_reason for r in answer.results] == ["", "", "NOT_PENDING"]
    await identity.stub.BatchApproveStudents(batch_approve, metadata=staff)  # a replay decides nothing
    await identity.stub.BatchDeclineStudents(
        pb.BatchDeclineStudentsRequest(school_id=campus.school.id, user_ids=[s.id for s in students[4:]]),
        metadata=staff,
    )
    await deliver(courier)

    school = campus.school.name
    for index, student in enumerate(students):
        decided = [m for m in mails_to(mail_server, student.email) if "waiting" not in subject_of(m)]
        approved = index in (0, 2, 3)
        assert len(decided) == 1, (index, [subject_of(m) for m in decided])
        word = "approved" if approved else "declined"
        assert subject_of(decided[0]) == f"{school}: your request was {word}"
        assert "duplicate of s-42" not in text_of(decided[0])
    assert all(len(mails_to(mail_server, s.email)) == 2 for s in students)  # waiting + decided


async def test_a_file_that_approves_a_pending_student_tells_them(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.sign_up(campus, first_name="Dee")
    row = rows.StudentRow(row_number=1, username=student.email, email_address=student.email, first_name="Dee")
    request = pb.ApplyStudentRowsRequest(
        school_id=campus.school.id,
        job_id=unique("job-"),
        mode=rows.IMPORT_MODE_MANUAL_FILE,
        rows=[row],
        job_create_time=timestamp_pb2.Timestamp(seconds=1_800_000_000),
    )
    dry = await identity.stub.ApplyStudentRows(
        pb.ApplyStudentRowsRequest(
            school_id=request.school_id,
            job_id=unique("dry-"),
            mode=request.mode,
            rows=[row],
            job_create_time=request.job_create_time,
            dry_run=True,
        ),
        metadata=identity.md("importer"),
    )
    assert dry.results[0].approved
    applied = await identity.stub.ApplyStudentRows(request, metadata=identity.md("importer"))
    assert applied.results[0].approved
    await identity.stub.ApplyStudentRows(request, metadata=identity.md("importer"))  # a replay
    await deliver(courier)
    subjects = [subject_of(m) for m in mails_to(mail_server, student.email)]
    assert subjects == [
        f"Your request is waiting for {campus.school.name}",
        f"{campus.school.name}: your request was approved",
    ]
