"""Issue 7, the pure parts: naming the non-UTF-8 field of an undecodable request, and strict page
tokens in both services (a token that was tampered with is refused, one we issued still pages)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from identity_service.domain.fields import Violations
from identity_service.service import paging as identity_paging
from import_service.service import paging as import_paging
from shared.errors import RollcallError
from shared.grpc_kit.wire import non_utf8_field, undecodable_request
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

BAD = b"\xed\xa0\x80"  # a lone surrogate as it arrives on the wire


def _with_bad_bytes(message: Any, placeholder: str) -> bytes:
    wire = message.SerializeToString()
    assert len(placeholder.encode()) == len(BAD) and wire.count(placeholder.encode()) == 1
    return bytes(wire.replace(placeholder.encode(), BAD))


def test_names_a_nested_string_field() -> None:
    request = pb.SubmitFileRequest(header=pb.FileHeader(school_id="s", source_name="QQQ"))
    data = _with_bad_bytes(request, "QQQ")
    assert non_utf8_field(pb.SubmitFileRequest.DESCRIPTOR, data) == "header.source_name"
    error = undecodable_request(pb.SubmitFileRequest.DESCRIPTOR, data)
    assert [v.field for v in error.violations] == ["header.source_name"]


def test_names_the_element_of_a_repeated_field_and_a_map() -> None:
    rows = [
        rows_pb.StudentRow(row_number=1, username="ann"),
        rows_pb.StudentRow(row_number=2, email_address="QQQ"),
    ]
    request = ipb.ApplyStudentRowsRequest(job_id="j", rows=rows)
    assert non_utf8_field(request.DESCRIPTOR, _with_bad_bytes(request, "QQQ")) == "rows[1].email_address"
    keyed = ipb.ApplyStudentRowsRequest(rows=[rows_pb.StudentRow(extra={"QQQ": "v"})])
    assert non_utf8_field(keyed.DESCRIPTOR, _with_bad_bytes(keyed, "QQQ")) == "rows[0].extra key"
    valued = ipb.ApplyStudentRowsRequest(rows=[rows_pb.StudentRow(extra={"k": "QQQ"})])
    assert non_utf8_field(valued.DESCRIPTOR, _with_bad_bytes(valued, "QQQ")) == "rows[0].extra"
    domains = ipb.CreateSchoolRequest(email_domains=["a.edu", "QQQ"])
    assert non_utf8_field(domains.DESCRIPTOR, _with_bad_bytes(domains, "QQQ")) == "email_domains[1]"


def test_bytes_that_are_no_message_name_no_field() -> None:
    error = undecodable_request(ipb.GetUserRequest.DESCRIPTOR, b"\x0a\xff\xff\xff")
    assert error.violations == () and "GetUserRequest" in error.message


def _token(kind: str, value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": kind, "v": value}).encode()).decode().rstrip("=")


IDENTITY_TAMPERED = [
    _token("audit", [2**63]),
    _token("audit", [True]),
    _token("audit", ["1"]),
    _token("search", ["Ann\x00", "Lee", "00000000-0000-0000-0000-000000000000"]),
    _token("search", ["\ud800", "Lee", "00000000-0000-0000-0000-000000000000"]),
    _token("pending", ["0001-01-01T00:00:00+14:00", "00000000-0000-0000-0000-000000000000"]),
    _token("pending", ["2026-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"]),
    _token("audit", [1]) + "!",
    "é" + _token("audit", [1]),
]


@pytest.mark.parametrize("token", IDENTITY_TAMPERED)
def test_identity_refuses_tampered_tokens(token: str) -> None:
    kind = json.loads(base64.urlsafe_b64decode(token.lstrip("é").rstrip("!") + "==="))["k"]
    shape = {
        "audit": (identity_paging.integer,),
        "search": (identity_paging.text, identity_paging.text, identity_paging.uuid_text),
        "pending": (identity_paging.timestamp, identity_paging.uuid_text),
    }[kind]
    found = Violations()
    identity_paging.page_request(kind, shape, 0, token, found)
    assert [v.field for v in found.violations] == ["page_token"]


def test_identity_tokens_it_issued_still_decode() -> None:
    found = Violations()
    token = identity_paging.encode_token("audit", (41,))
    assert identity_paging.page_request("audit", (identity_paging.integer,), 0, token, found).after == (41,)
    assert not found


IMPORT_TAMPERED = [
    ("jobs", _token("jobs", ["2026-01-01T00:00:00+00:00", "job\x00"])),
    ("jobs", _token("jobs", ["0001-01-01T00:00:00+14:00", "job"])),
    ("jobs", _token("jobs", ["2026-01-01T00:00:00", "job"])),
    ("jobs", _token("jobs", ["2026-01-01T00:00:00+00:00", "x" * 129])),
    ("jobs", _token("jobs", [1, "job"])),
    ("rows", _token("rows", 2**63)),
    ("rows", _token("rows", -1)),
    ("rows", _token("rows", True)),
    ("rows", _token("jobs", 1)),
    ("rows", _token("rows", 1) + "*"),
]


@pytest.mark.parametrize(("kind", "token"), IMPORT_TAMPERED)
def test_import_refuses_tampered_tokens(kind: str, token: str) -> None:
    decode = import_paging.job_cursor if kind == "jobs" else import_paging.row_cursor
    with pytest.raises(RollcallError) as caught:
        decode(token)
    assert [v.field for v in caught.value.violations] == ["page_token"]


def test_import_tokens_it_issued_still_decode() -> None:
    moment = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert import_paging.job_cursor(import_paging.job_cursor_token(moment, "job-1")) == (moment, "job-1")
    assert import_paging.row_cursor(import_paging.row_cursor_token(7)) == 7
