"""F6 (operations.md, "Reliability targets"): hostile input on every door.

- the queue: garbage bodies, wrong content types, an oversized body, messages off the contract and
  a well-formed message full of hostile rows → dead letters with reasons (or INVALID_ROW naming the
  field), the consumer keeps going;
- SubmitFile: formula cells, NUL bytes, a 1 MB field, mixed encodings, binary garbage → clear
  INVALID_ARGUMENT errors or per-row INVALID_ROW; formulas stay data and are guarded on export;
- a few hundred fuzzed RPCs (random field values, random bytes as bodies) on both services →
  only clear, documented status codes carrying an ErrorInfo; no crash; nothing written by a call
  that failed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as desc
from google.protobuf import message_factory
from google.protobuf.message import Message

from import_service.domain.messages import DeadReason
from shared.grpc_kit.errors import error_info
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import (
    DEAD_REASON,
    JSON,
    PROTOBUF,
    Campus,
    connector,
    dead_letters,
    email,
    end_message,
    header,
    new_campus,
    outcome_name,
    rows_message,
    student_row,
)
from tests.process_stack import IDENTITY, IMPORT, SERVING, ProcessStack

pytestmark = pytest.mark.faults
SEED = int(os.environ.get("ROLLCALL_FUZZ_SEED", "20260404"))
CLEAR_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE,
}


async def _still_standing(stack: ProcessStack, pids: dict[str, int]) -> None:
    """Same processes as before (no crash, no restart), both SERVING."""
    for name, pid in pids.items():
        service = stack.services[name]
        assert service.running and service.pid == pid, f"{name} crashed:\n{service.log_tail()}"
        assert await stack.health(name) == SERVING


def _pids(stack: ProcessStack) -> dict[str, int]:
    return {IDENTITY: stack.services[IDENTITY].pid, IMPORT: stack.services[IMPORT].pid}


# --- the queue ----------------------------------------------------------------------------------


def _garbage(rng: random.Random, school_id: str) -> list[tuple[str, bytes, str | None]]:
    """(label, body, content type) of messages no consumer can take."""
    valid = rows_message(header(school_id), [student_row(1, "g1", email("g1"))]).SerializeToString()
    deep = b"[" * 20_000 + b"]" * 20_000
    messages: list[tuple[str, bytes, str | None]] = [
        (f"random-protobuf-{n}", rng.randbytes(rng.randint(1, 3000)), PROTOBUF) for n in range(8)
    ]
    messages += [(f"random-json-{n}", rng.randbytes(rng.randint(1, 500)), JSON) for n in range(4)]
    messages += [
        ("json-array", b"[1, 2, 3]", JSON),
        ("json-number", b"42", JSON),
        ("json-null", b"null", JSON),
        ("json-deep", deep, JSON),
        ("json-latin1", '{"jobId": "caf\xe9"}'.encode("latin-1"), JSON),
        ("json-huge-number", b'{"jobId": "j", "rows": {"rows": [{"rowNumber": 1e400}]}}', JSON),
        ("empty-protobuf", b"", PROTOBUF),
        ("empty-json", b"", JSON),
        ("text-plain", valid, "text/plain"),
        ("xml", b"<ImportMessage/>", "application/xml"),
        ("no-content-type", valid, None),
        ("blank-content-type", valid, ""),
        ("oversized", rng.randbytes(9 * 1024 * 1024), PROTOBUF),
        ("no-body", header(school_id).SerializeToString(), PROTOBUF),
        (
            "no-mode",
            rows_message(header(school_id, mode=0), [student_row(1, "m", email("m"))]).SerializeToString(),
            PROTOBUF,
        ),
    ]
    return messages


async def test_f6_garbage_on_the_queue_goes_to_dead_letters_with_reasons(fault_stack: ProcessStack) -> None:
    stack = fault_stack
    pids = _pids(stack)
    rng = random.Random(SEED)
    campus = await new_campus(stack)
    routing = f"rows.{campus.id}"
    hostile = header(campus.id)
    hostile_rows = [
        student_row(1, "bell\x07name", email("h1")),
        student_row(2, "u" * 5000, email("h2")),  # cut to 4096 in transit, still far too long
        student_row(3, "ctl", email("h3"), first="\x1b[31mred"),
        student_row(4, "big-extra", email("h4")),
        student_row(5, "fine", email("h5"), first="Fi", last="Ne"),
        student_row(6, "=1+1", "@" * 300, first="=cmd|' /C calc'!A0"),
    ]
    hostile_rows[3].extra.update({f"k{n}": "v" * 2000 for n in range(100)})
    async with connector(stack) as sis:
        sent = {
            await sis.raw(body, content_type=content_type, routing_key=routing): label
            for label, body, content_type in _garbage(rng, campus.id)
        }
        sent[await sis.send(rows_message(hostile, hostile_rows), routing_school="nobody")] = "school-mismatch"
        await sis.send(rows_message(hostile, hostile_rows))
        await sis.send(end_message(hostile, len(hostile_rows)))

    letters = await dead_letters(stack, set(sent))
    reasons = {label: letters[message_id].headers.get(DEAD_REASON) for message_id, label in sent.items()}
    assert set(reasons.values()) <= {reason.value for reason in DeadReason}, reasons
    assert reasons["oversized"] == "BODY_TOO_LARGE"
    assert reasons["text-plain"] == reasons["no-content-type"] == "UNKNOWN_CONTENT_TYPE"
    assert reasons["json-deep"] == reasons["json-latin1"] == reasons["random-json-0"] == "UNDECODABLE"
    assert (reasons["no-body"], reasons["no-mode"]) == ("NO_BODY", "MODE_MISSING")
    assert reasons["school-mismatch"] == "SCHOOL_MISMATCH"
    async with stack.import_db() as db:
        recorded = await db.fetchval(
            "SELECT count(*) FROM dead_letters WHERE message_id = ANY($1::text[])", list(sent)
        )
    assert recorded == len(sent)

    job = await stack.wait_job(hostile.job_id)
    records = {r.row_number: r for r in await stack.row_results(hostile.job_id)}
    outcomes = {n: (outcome_name(r.outcome), r.reason) for n, r in records.items()}
    assert outcomes == {n: ("FAILED", "INVALID_ROW") for n in (1, 2, 3, 4, 6)} | {5: ("CREATED", "")}
    for number, named in ((1, "username"), (2, "username"), (3, "first_name"), (4, "extra"), (6, "email")):
        assert named in records[number].message, (number, records[number].message)
    assert job.counts.created == 1  # no partial write: the hostile rows created nobody
    students = [u for u in await campus.users() if u.user_type == res.USER_TYPE_STUDENT]
    assert [u.username for u in students] == ["fine"]
    await _still_standing(stack, pids)


# --- SubmitFile ---------------------------------------------------------------------------------


async def _submit(
    campus: Campus, content: bytes, *, dry_run: bool = False, piece: int = 64 * 1024
) -> pb.ImportJob:
    async def requests() -> AsyncIterator[pb.SubmitFileRequest]:
        yield pb.SubmitFileRequest(
            header=pb.FileHeader(
                school_id=campus.id,
                mode=rows_pb.IMPORT_MODE_MANUAL_FILE,
                dry_run=dry_run,
                source_name="hostile.csv",
                format=pb.FILE_FORMAT_CSV,
            )
        )
        for start in range(0, len(content), piece):
            yield pb.SubmitFileRequest(chunk=content[start : start + piece])

    return await campus.stack.importer.SubmitFile(requests(), metadata=campus.staff_md, timeout=60)


async def _jobs_of(campus: Campus) -> list[pb.ImportJob]:
    reply = await campus.stack.importer.ListImportJobs(
        pb.ListImportJobsRequest(school_id=campus.id, page_size=100), metadata=campus.staff_md, timeout=10
    )
    return list(reply.jobs)


async def _refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    info = error_info(error)
    assert info is not None and info.domain == "rollcall"
    return error


async def test_f6_hostile_csv_uploads_get_clear_errors_and_write_nothing_partial(
    fault_stack: ProcessStack,
) -> None:
    stack = fault_stack
    pids = _pids(stack)
    campus = await new_campus(stack)
    addresses = [email(f"csv{n}") for n in range(6)]
    hostile = b"".join(
        [
            "\ufeffusername,email_address,first_name,last_name,auth_identifier\r\n".encode(),
            f'"=HYPERLINK(""http://evil.example"")",{addresses[0]},+1+1,@SUM(A1),-2\r\n'.encode(),
            f"nul,{addresses[1]},Nu\x00ll,Zero,\r\n".encode(),
            f"latin,{addresses[2]},Ana,".encode() + "Müller".encode("latin-1") + b",\r\n",
            f"utf8,{addresses[3]},Zoë,Ñúñez,\r\n".encode(),
            b"formula,not-an-email,=cmd|' /C calc'!A0,x,\r\n",
            f'"multi\nline",{addresses[4]},"a, ""quoted"" name",x,\r\n'.encode(),
        ]
    )
    job = await _submit(campus, hostile, piece=7)  # tiny pieces: records and characters split across chunks
    done = await stack.wait_job(job.job_id)
    records = {r.row_number: r for r in await stack.row_results(job.job_id)}
    outcomes = {n: (outcome_name(r.outcome), r.reason) for n, r in records.items()}
    assert outcomes == {
        1: ("CREATED", ""),
        2: ("FAILED", "INVALID_ROW"),
        3: ("FAILED", "INVALID_ROW"),
        4: ("CREATED", ""),
        5: ("FAILED", "INVALID_ROW"),
        6: ("FAILED", "INVALID_ROW"),  # a line break in a username is a control character
    }
    assert "first_name" in records[2].message and "last_name" in records[3].message
    assert "email_address" in records[5].message and "username" in records[6].message
    formula = await campus.user(records[1].user_id)
    assert (formula.username, formula.first_name, formula.last_name, formula.auth_identifier) == (
        '=HYPERLINK("http://evil.example")',
        "+1+1",
        "@SUM(A1)",
        "-2",
    )  # kept as data, exactly
    accented = await campus.user(records[4].user_id)
    assert (accented.first_name, accented.last_name) == ("Zoë", "Ñúñez")
    assert done.counts.created == 2

    exported = b"".join(
        [
            c.csv_chunk
            async for c in stack.importer.ExportFailedRows(
                pb.ExportFailedRowsRequest(job_id=job.job_id), metadata=campus.staff_md, timeout=30
            )
        ]
    )
    table = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"), newline="")))
    formula_row = next(row for row in table if row[0] == "formula")
    assert formula_row[2] == "'=cmd|' /C calc'!A0"  # guarded against a spreadsheet running it
    again = await _submit(campus, exported, dry_run=True)  # and re-uploads to the very same values
    await stack.wait_job(again.job_id)
    replayed = {r.row_number: r.row for r in await stack.row_results(again.job_id)}
    assert [replayed[n].first_name for n in sorted(replayed)] == [
        records[n].row.first_name for n in (2, 3, 5, 6)
    ]

    jobs_before = len(await _jobs_of(campus))
    one_mb = "x" * (1024 * 1024)
    first_row_too_big = f"username,email_address\r\nbig,{one_mb}\r\nok,{addresses[5]}\r\n".encode()
    error = await _refused(_submit(campus, first_row_too_big))
    assert "row 1" in error.details()
    later_row_too_big = f"username,email_address\r\nk1,{email('k1')}\r\nk2,{email('k2')}\r\nbig,{one_mb}\r\n"
    error = await _refused(_submit(campus, later_row_too_big.encode()))
    assert "row 3" in error.details()
    binary = random.Random(SEED).randbytes(200_000)
    await _refused(_submit(campus, binary))
    await _refused(_submit(campus, b""))
    oversized_piece = b"username,email_address\r\n" + b"a" * (1024 * 1024 + 1)
    await _refused(_submit(campus, oversized_piece, piece=len(oversized_piece)))
    assert len(await _jobs_of(campus)) == jobs_before  # refused whole: nothing was published
    students = {u.username for u in await campus.users() if u.user_type == res.USER_TYPE_STUDENT}
    assert students == {'=HYPERLINK("http://evil.example")', "utf8"}
    await _still_standing(stack, pids)


async def test_f6_an_upload_stopped_after_its_first_500_rows_imports_all_rows_before_the_problem_or_none(
    fault_stack: ProcessStack,
) -> None:
    """uploads.py: "A problem further down the file ... the rows read before it are ended as a job
    of their own ... and the call fails naming the problem and that job." With 600 good rows and a
    1 MB field in row 601, the job named in the error must hold rows 1-600 (or, all-or-nothing, no
    job may exist at all) - not the first 500 with rows 501-600 silently dropped."""
    stack = fault_stack
    campus = await new_campus(stack)
    good = "".join(f"p{n},{email(f'p{n}')}\r\n" for n in range(1, 601))
    content = f"username,email_address\r\n{good}big,{'x' * (1024 * 1024)}\r\n".encode()
    error = await _refused(_submit(campus, content))
    assert "row 601" in error.details()
    jobs = await _jobs_of(campus)
    if not jobs:
        return  # refused whole: nothing partial
    assert len(jobs) == 1 and jobs[0].job_id in error.details(), error.details()
    ended = await stack.wait_job(jobs[0].job_id)
    assert ended.total_rows == 600, f"{error.details()!r}, but the job holds {ended.total_rows} rows"


async def test_f6_a_nul_character_in_a_connectors_row_fails_that_row_only(fault_stack: ProcessStack) -> None:
    """A connector's protobuf row may carry U+0000 (CSV uploads turn NULs into U+FFFD, connectors do
    not go through that reader). Identity judges it INVALID_ROW; the job must complete with that row
    FAILED and the others applied - it must not stall, nor leave identity's effects unrecorded."""
    stack = fault_stack
    campus = await new_campus(stack)
    job = header(campus.id)
    rows = [student_row(1, "nul\x00name", email("nul")), student_row(2, "fine", email("fine"))]
    async with connector(stack) as sis:
        await sis.send(rows_message(job, rows))
        await sis.send(end_message(job, 2))
    try:
        done = await stack.wait_job(job.job_id, timeout=20, what="the job with a NUL in row 1 completed")
    except AssertionError:
        async with stack.identity_db() as db:
            applied = await db.fetch(
                "SELECT row_number, outcome FROM import_row_outcomes WHERE job_id = $1 ORDER BY 1", job.job_id
            )
        seen = await stack.get_job(job.job_id)
        raise AssertionError(
            f"the job never completes (rows recorded by the import service: "
            f"{seen.rows_received if seen else None}) although identity applied "
            f"{[(a['row_number'], a['outcome']) for a in applied]}"
        ) from None
    records = {r.row_number: r for r in await stack.row_results(job.job_id)}
    assert (outcome_name(records[1].outcome), records[1].reason) == ("FAILED", "INVALID_ROW")
    assert "username" in records[1].message
    assert (outcome_name(records[2].outcome), done.counts.created) == ("CREATED", 1)


# --- fuzzing every RPC ---------------------------------------------------------------------------

_STRINGS = [
    "",
    " ",
    "'; DROP TABLE users; --",
    "%s%n%x",
    "../../etc/passwd",
    "\x00",
    "\u202e\u0000\ufffd",
    "😀" * 50,
    "a" * 300,
    "b" * 70_000,
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    "ann@uni.example",
    "ANN@UNI.EXAMPLE ",
    "@",
    "x@y",
]
_INTS = [0, 1, -1, 2, 7, 500, 501, 1000, 1001, 2**31 - 1, -(2**31)]


class Fuzzer:
    """Random requests built from the request descriptors; ids drawn partly from real ones."""

    def __init__(self, rng: random.Random, real_ids: list[str]) -> None:
        self.rng = rng
        self.real_ids = real_ids

    def string(self, name: str) -> str:
        rng = self.rng
        roll = rng.random()
        if name.endswith("id") and roll < 0.35:
            return rng.choice(self.real_ids)
        if roll < 0.6:
            return rng.choice(_STRINGS)
        if roll < 0.8:
            return str(uuid.uuid4())
        return "".join(
            chr(rng.choice([rng.randint(32, 126), rng.randint(0x80, 0xD7FF)]))
            for _ in range(rng.randint(0, 40))
        )

    def value(self, field: Any, depth: int) -> Any:
        rng = self.rng
        kind = field.type
        if kind == desc.FieldDescriptor.TYPE_STRING:
            return self.string(field.name)
        if kind == desc.FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(rng.choice([0, 1, 100, 5000]))
        if kind == desc.FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if kind == desc.FieldDescriptor.TYPE_ENUM:
            return rng.choice([*(v.number for v in field.enum_type.values), -1, 99])
        if kind in (desc.FieldDescriptor.TYPE_DOUBLE, desc.FieldDescriptor.TYPE_FLOAT):
            return rng.choice([0.0, -1.0, 1e308, float("nan")])
        if kind == desc.FieldDescriptor.TYPE_INT64:
            return rng.choice([*_INTS, 2**63 - 1, -(2**63)])
        return rng.choice(_INTS)

    def fill(self, message: Message, depth: int = 0) -> Message:
        for field in message.DESCRIPTOR.fields:
            if self.rng.random() < 0.3:
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key_field, value_field = (
                    field.message_type.fields_by_name["key"],
                    field.message_type.fields_by_name["value"],
                )
                for _ in range(self.rng.randint(0, 3)):
                    getattr(message, field.name)[self.value(key_field, depth)] = self.value(
                        value_field, depth
                    )
            elif field.is_repeated:
                items = getattr(message, field.name)
                for _ in range(self.rng.choice([0, 1, 2, 3, 30])):
                    if field.message_type is not None:
                        if depth < 3:
                            self.fill(items.add(), depth + 1)
                    else:
                        items.append(self.value(field, depth))
            elif field.message_type is not None:
                if depth < 3:
                    self.fill(getattr(message, field.name), depth + 1)
            else:
                setattr(message, field.name, self.value(field, depth))
        return message

    def metadata(self, stack: ProcessStack, staff_id: str) -> tuple[tuple[str, str], ...]:
        roll = self.rng.random()
        if roll < 0.7:
            return stack.admin_md
        if roll < 0.8:
            actor = self.rng.choice(
                [*self.real_ids, str(uuid.uuid4()), "not-a-uuid", "' OR 1=1 --", "x" * 300]
            )
            return (("authorization", f"Bearer {stack.platform_token}"), ("x-rollcall-actor", actor))
        if roll < 0.88:
            return (("authorization", f"Bearer {stack.platform_token}"), ("x-rollcall-actor", staff_id))
        if roll < 0.94:
            return (("authorization", f"Bearer {stack.importer_token}"),)
        return self.rng.choice(
            [(), (("authorization", "Bearer nope-nope-nope-nope"),), (("authorization", "garbage"),)]
        )


async def _table_counts(stack: ProcessStack) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with stack.identity_db() as db:
        for table in ("schools", "users", "email_changes", "import_row_outcomes"):
            counts[table] = int(await db.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - fixed names
    async with stack.import_db() as db:
        for table in ("jobs", "row_results", "retry_requests"):
            counts[f"import.{table}"] = int(await db.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
    return counts


def _check_error(error: grpc.aio.AioRpcError, method: str, raw: bool) -> str:
    """A clear refusal with ErrorInfo, random bytes (``raw``) included: since issue 7 a request that
    does not decode is INVALID_ARGUMENT, never grpcio's UNKNOWN with the parser's text."""
    code = error.code()
    assert code in CLEAR_CODES, f"{method}: {code.name} {error.details()}"
    assert error.details(), f"{method}: {code.name} without a message"
    info = error_info(error)
    assert info is not None and info.domain == "rollcall" and info.reason, (
        f"{method}: {code.name} without ErrorInfo"
    )
    return f"{code.name}:{info.reason}"


async def test_f6_a_few_hundred_fuzzed_rpcs_get_clear_errors_and_crash_nothing(
    fault_stack: ProcessStack,
) -> None:
    stack = fault_stack
    pids = _pids(stack)
    campus = await new_campus(stack)
    student = await campus.student("fuzzed", email("fuzzed"))
    job = header(campus.id)
    async with connector(stack) as sis:
        await sis.send(rows_message(job, [student_row(1, "", email("x")), student_row(2, "ok", email("ok"))]))
        await sis.send(end_message(job, 2))
    await stack.wait_job(job.job_id)
    fuzzer = Fuzzer(random.Random(SEED), [campus.id, campus.staff.id, student.id, job.job_id])
    services = [
        (
            "rollcall.identity.v1.IdentityService",
            ipb.DESCRIPTOR.services_by_name["IdentityService"],
            stack.identity_channel,
        ),
        (
            "rollcall.importer.v1.ImportService",
            pb.DESCRIPTOR.services_by_name["ImportService"],
            stack.import_channel,
        ),
    ]
    methods = [(name, method, channel) for name, service, channel in services for method in service.methods]
    before = await _table_counts(stack)
    outcomes: Counter[tuple[str, str]] = Counter()

    async def one(n: int) -> None:
        name, method, channel = methods[n % len(methods)]
        path = f"/{name}/{method.name}"
        raw = n % 5 == 4
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        body = (
            fuzzer.rng.randbytes(fuzzer.rng.randint(0, 400))
            if raw
            else fuzzer.fill(request_class()).SerializeToString()
        )
        identity: Callable[[bytes], bytes] = lambda b: b  # noqa: E731 - bodies are sent as they are
        md = fuzzer.metadata(stack, campus.staff.id)
        try:
            if method.client_streaming:
                call = channel.stream_unary(
                    path, request_serializer=identity, response_deserializer=response_class.FromString
                )
                then = fuzzer.rng.randbytes(50)
                second = then if raw else pb.SubmitFileRequest(chunk=then).SerializeToString()
                await call(iter([body, second]), metadata=md, timeout=30)
            elif method.server_streaming:
                call = channel.unary_stream(
                    path, request_serializer=identity, response_deserializer=response_class.FromString
                )
                stream = call(body, metadata=md, timeout=5)
                async for _ in stream:
                    if method.name == "WatchImportJob":
                        break  # a watch of a running job would wait for its end
                stream.cancel()
            else:
                call = channel.unary_unary(
                    path, request_serializer=identity, response_deserializer=response_class.FromString
                )
                await call(body, metadata=md, timeout=30)
            outcomes[(method.name, "OK")] += 1
        except grpc.aio.AioRpcError as error:
            outcomes[(method.name, _check_error(error, path, raw))] += 1

    for start in range(0, 320, 16):  # a few hundred calls, sixteen at a time
        await asyncio.gather(*(one(n) for n in range(start, start + 16)))

    after = await _table_counts(stack)
    ok = Counter({method: n for (method, result), n in outcomes.items() if result == "OK"})
    assert after["schools"] - before["schools"] == ok["CreateSchool"]
    # an undo (UndoStudentRows of the fuzzer's real job) may delete the students that job created
    undone = ok["UndoStudentRows"]
    made = ok["CreateUser"] + ok["SignUpStudent"] - ok["DeletePendingStudent"]
    assert made - 1000 * undone <= after["users"] - before["users"] <= made
    assert (
        after["email_changes"] - before["email_changes"]
        == ok["RequestEmailChange"] + ok["MergePendingStudent"]
    )
    assert after["import.jobs"] - before["import.jobs"] == ok["SubmitFile"] + ok["RetryFailedRows"]
    recorded = after["import_row_outcomes"] - before["import_row_outcomes"]
    # identity records outcomes for ApplyStudentRows, an undo (one a student), and the rows of the
    # jobs a fuzzed SubmitFile or RetryFailedRows started (the import service applies them meanwhile)
    started = ok["SubmitFile"] + ok["RetryFailedRows"]
    assert recorded <= 1000 * (ok["ApplyStudentRows"] + undone) + 100_000 * started
    assert sum(outcomes.values()) == 320
    assert sum(n for (_, result), n in outcomes.items() if result.startswith("INVALID_ARGUMENT")) > 50
    await _still_standing(stack, pids)
    assert await _table_counts(stack) == after
