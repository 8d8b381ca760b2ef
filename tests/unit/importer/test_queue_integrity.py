"""Issue 7, import side, the pure parts: who may publish for which school, text PostgreSQL refuses,
canonical school ids, the distinct-rows total, and how identity's answers are classified."""

from __future__ import annotations

import uuid

import grpc
import pytest
from pydantic import ValidationError

from import_service.adapters.amqp.codec import decode
from import_service.adapters.identity.client import _translate
from import_service.domain.connectors import ConnectorPolicy, is_canonical_school_id, parse_connectors
from import_service.domain.jobs import IDENTITY_REFUSED, Outcome, end_mismatch, refused_row, split_at_total
from import_service.domain.messages import ContractViolation, DeadReason, RowsMessage
from import_service.domain.rows import FileRow
from import_service.service.ports import BatchRefused, IdentityUnavailable
from shared.amqp.messages import PROTOBUF
from shared.errors import Reason, RollcallError
from shared.grpc_kit.errors import to_grpc_status
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.settings import Settings

SCHOOL_A, SCHOOL_B = str(uuid.uuid4()), str(uuid.uuid4())


# --- ROLLCALL_CONNECTORS ----------------------------------------------------------------------------


def test_connector_entries_grant_schools_or_every_school() -> None:
    grants = parse_connectors(f"sis-a:{SCHOOL_A}, sis-a:{SCHOOL_B}\nsis-all:*,# a comment")
    assert grants == {"sis-a": frozenset({SCHOOL_A, SCHOOL_B}), "sis-all": frozenset({"*"})}
    policy = ConnectorPolicy("rollcall-import", grants)
    assert policy.allows("sis-a", SCHOOL_A) and policy.allows("sis-a", SCHOOL_B)
    assert not policy.allows("sis-a", str(uuid.uuid4()))
    assert policy.allows("sis-all", "anything")
    assert policy.allows("rollcall-import", SCHOOL_A)  # the service's own SubmitFile / RetryFailedRows
    assert not policy.allows("sis-b", SCHOOL_A)
    assert not policy.allows(None, SCHOOL_A) and not policy.allows("", SCHOOL_A)
    assert "no user_id" in (policy.refusal(None, SCHOOL_A) or "")
    assert "sis-b" in (policy.refusal("sis-b", SCHOOL_A) or "")


def test_unset_connectors_allow_only_the_service_itself() -> None:
    policy = ConnectorPolicy("guest", parse_connectors(""))
    assert policy.allows("guest", SCHOOL_A)
    assert not policy.allows("sis-a", SCHOOL_A)


@pytest.mark.parametrize(
    "spec",
    [
        "sis-a",  # no school
        f":{SCHOOL_A}",  # no user
        "sis-a:",
        f"sis-a:{SCHOOL_A.upper()}",  # not canonical
        "sis-a:school-1",  # not a UUID
        f"sis a:{SCHOOL_A}",  # a space in the user
    ],
)
def test_bad_connector_entries_stop_start_up_naming_the_entry(spec: str) -> None:
    with pytest.raises(ValueError, match="entry"):
        parse_connectors(spec)
    with pytest.raises(ValidationError, match="connectors"):
        Settings(connectors=spec)


def test_school_ids_are_canonical_lower_case_uuids() -> None:
    assert is_canonical_school_id(SCHOOL_A)
    for spelling in (SCHOOL_A.upper(), SCHOOL_A.replace("-", ""), "{" + SCHOOL_A + "}", "school-1", ""):
        assert not is_canonical_school_id(spelling)


# --- the codec: refused on the first delivery --------------------------------------------------------


def _message(school: str = SCHOOL_A, **fields: object) -> pb.ImportMessage:
    message = pb.ImportMessage(job_id="job-1", school_id=school, mode=rows_pb.IMPORT_MODE_ONGOING_SYNC)
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def _refusal(message: pb.ImportMessage, routing_school: str | None = None) -> ContractViolation:
    with pytest.raises(ContractViolation) as caught:
        decode(message.SerializeToString(), PROTOBUF, f"rows.{routing_school or message.school_id}")
    return caught.value


def test_nul_in_the_source_name_is_refused_naming_the_field() -> None:
    message = _message(source_name="students\x00.csv")
    message.end.total_rows = 1
    violation = _refusal(message)
    assert (violation.reason, violation.job_id) == (DeadReason.INVALID_TEXT, "job-1")
    assert violation.detail.startswith("source_name")


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ({"username": "a\x00b"}, "rows[1].username"),
        ({"email_address": "a@b\x00"}, "rows[1].email_address"),
        ({"extra": {"coh\x00rt": "2026"}}, "rows[1].extra key"),
        ({"extra": {"cohort": "20\x0026"}}, "rows[1].extra['cohort']"),
    ],
)
def test_nul_in_a_row_value_or_extra_key_is_left_to_identity_for_that_row_alone(
    field: dict[str, object], named: str
) -> None:
    """Decision-table row 1 (control characters → FAILED INVALID_ROW) is identity's: the message is
    not refused, so the other rows of a 1000-row chunk are not lost with it (F6 checks the outcome)."""
    message = _message()
    message.rows.rows.add(row_number=1, username="ok", email_address="ok@uni.example")
    bad = message.rows.rows.add(row_number=2, username="ok2", email_address="ok2@uni.example")
    for name, value in field.items():
        if name == "extra":
            bad.extra.update(value)  # type: ignore[call-overload]
        else:
            setattr(bad, name, value)
    decoded = decode(message.SerializeToString(), PROTOBUF, f"rows.{message.school_id}")
    assert isinstance(decoded, RowsMessage) and [r.row_number for r in decoded.rows] == [1, 2]
    assert named.startswith("rows[1].")


def test_nul_in_the_job_id_is_refused() -> None:
    message = _message()
    message.job_id = "job\x00"
    message.end.total_rows = 0
    assert _refusal(message).reason is DeadReason.INVALID_JOB_ID


def test_an_upper_case_school_id_is_refused_not_filed_elsewhere() -> None:
    message = _message(SCHOOL_A.upper())
    message.end.total_rows = 0
    assert _refusal(message).reason is DeadReason.INVALID_SCHOOL_ID
    message = _message(SCHOOL_A.replace("-", ""))
    message.end.total_rows = 0
    assert _refusal(message).reason is DeadReason.INVALID_SCHOOL_ID
    lower = _message(SCHOOL_A)
    lower.end.total_rows = 0
    assert _refusal(lower, routing_school=SCHOOL_A.upper()).reason is DeadReason.SCHOOL_MISMATCH


# --- total_rows: distinct row numbers -----------------------------------------------------------


def test_an_end_contradicting_the_job_is_a_mismatch_the_same_end_again_is_not() -> None:
    assert end_mismatch(False, None, 0, 10) is None
    assert end_mismatch(True, 10, 10, 10) is None  # a duplicate end
    assert "already said total_rows 10" in (end_mismatch(True, 10, 3, 11) or "")
    assert "12 distinct rows" in (end_mismatch(False, None, 12, 10) or "")


def test_rows_past_the_total_are_the_highest_new_numbers() -> None:
    rows = [FileRow(n, f"u{n}", f"u{n}@x") for n in (9, 3, 7, 20)]
    assert split_at_total(rows, None, 100) == (rows, [])
    fit, over = split_at_total(rows, 10, 8)
    assert [r.row_number for r in fit] == [3, 7] and [r.row_number for r in over] == [9, 20]
    assert split_at_total(rows, 5, 5)[0] == []


def test_a_lone_refused_row_fails_with_the_status_and_no_internal_text() -> None:
    result = refused_row(FileRow(4, "poison", "p@x"), "INTERNAL")
    assert (result.row_number, result.outcome, result.reason) == (4, Outcome.FAILED, IDENTITY_REFUSED)
    assert result.message == "identity refused this row (INTERNAL)"
    assert refused_row(FileRow(4, "p", "p@x"), "INVALID_ARGUMENT", "INVALID_EMAIL").message.endswith(
        "(INVALID_ARGUMENT, INVALID_EMAIL)"
    )


# --- identity's answers: outage or refusal ------------------------------------------------------


def _rpc_error(
    code: grpc.StatusCode, details: str, error: RollcallError | None = None
) -> grpc.aio.AioRpcError:
    """What the client sees: with ``error``, identity's own answer (its ErrorInfo and message)."""
    trailing = grpc.aio.Metadata()
    if error is not None:
        status = to_grpc_status(error)
        trailing = grpc.aio.Metadata(*status.trailing_metadata)
        details = status.details
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details)


@pytest.mark.parametrize(
    "error",
    [
        _rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; connection refused"),
        _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        _rpc_error(
            grpc.StatusCode.UNAVAILABLE,
            "the database is unreachable; try again",
            RollcallError(Reason.UNAVAILABLE, "db", metadata={"outage": "database"}),
        ),
        _rpc_error(grpc.StatusCode.UNAUTHENTICATED, "unknown token"),
    ],
)
def test_outages_are_waited_out(error: grpc.aio.AioRpcError) -> None:
    assert isinstance(_translate(error), IdentityUnavailable)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (_rpc_error(grpc.StatusCode.INTERNAL, "relation users: trigger said no"), "INTERNAL"),
        (_rpc_error(grpc.StatusCode.ABORTED, "deadlock detected"), "ABORTED"),
        (_rpc_error(grpc.StatusCode.UNKNOWN, "Exception calling application"), "UNKNOWN"),
        (_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "message larger than max"), "RESOURCE_EXHAUSTED"),
        (
            _rpc_error(
                grpc.StatusCode.INVALID_ARGUMENT, "rows[3]", RollcallError(Reason.INVALID_ARGUMENT, "x")
            ),
            "INVALID_ARGUMENT",
        ),
        (  # identity reachable, answering UNAVAILABLE on purpose (rows kept conflicting)
            _rpc_error(
                grpc.StatusCode.UNAVAILABLE, "kept conflicting", RollcallError(Reason.UNAVAILABLE, "retry")
            ),
            "UNAVAILABLE",
        ),
    ],
)
def test_other_refusals_are_split_and_carry_no_internal_text(error: grpc.aio.AioRpcError, code: str) -> None:
    refused = _translate(error)
    assert isinstance(refused, BatchRefused) and not refused.whole_batch
    assert refused.code == code
    assert error.details() not in refused.message


def test_an_unknown_school_fails_the_whole_batch_with_its_reason() -> None:
    error = _rpc_error(
        grpc.StatusCode.NOT_FOUND, "school not found", RollcallError(Reason.SCHOOL_NOT_FOUND, "no school")
    )
    refused = _translate(error)
    assert isinstance(refused, BatchRefused) and refused.whole_batch
    assert refused.reason == "SCHOOL_NOT_FOUND"
