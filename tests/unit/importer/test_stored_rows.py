"""Rows as row_results keeps them: protobuf bytes since import migration 0002, jsonb before it."""

from __future__ import annotations

import json

from import_service.adapters.postgres.results_repo import changes_from_json, changes_to_json
from import_service.adapters.postgres.stored_rows import extra_names, stored_row
from import_service.adapters.wire import row_to_bytes
from import_service.domain.jobs import FieldChange
from import_service.domain.rows import MAX_TRANSPORT_FIELD_CHARS, FileRow
from shared.amqp.messages import row_from_proto
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb


def test_a_row_comes_back_from_its_bytes() -> None:
    row = FileRow(7, "ann", "ann@uni.edu", "Ann", "Lée", "sis-7", (("cohort", "2026"),))
    assert stored_row(7, row_to_bytes(row), None) == row
    plain = FileRow(8, "bob", "bob@uni.edu")
    assert stored_row(8, row_to_bytes(plain), None) == plain
    assert extra_names(row_to_bytes(row), None) == ["cohort"]


def test_a_row_recorded_before_the_bytes_comes_back_from_its_json() -> None:
    stored = {
        "username": "ann",
        "email_address": "ann@uni.edu",
        "first_name": "Ann",
        "last_name": "Lee",
        "auth_identifier": "",
        "extra": [["cohort", "2026"], ["house", "red"]],
    }
    expected = FileRow(3, "ann", "ann@uni.edu", "Ann", "Lee", "", (("cohort", "2026"), ("house", "red")))
    assert stored_row(3, None, json.dumps(stored)) == expected
    assert stored_row(3, None, stored) == expected
    assert extra_names(None, stored) == ["cohort", "house"]


def test_received_values_are_capped_to_the_transport_bound() -> None:
    long = "x" * (MAX_TRANSPORT_FIELD_CHARS + 5)
    received = rows_pb.StudentRow(row_number=2, username=long, email_address="a@b.edu", extra={"k": long})
    row = row_from_proto(received)
    assert len(row.username) == MAX_TRANSPORT_FIELD_CHARS and row.email_address == "a@b.edu"
    assert row.extra == (("k", "x" * MAX_TRANSPORT_FIELD_CHARS),)


def test_field_changes_are_stored_as_json_and_text_jsonb_refuses_is_replaced() -> None:
    changes = (FieldChange("first_name", "Ann", "Anne"), FieldChange("status", "PENDING", "ACTIVE"))
    assert changes_from_json(changes_to_json(changes)) == changes
    assert changes_to_json(()) is None and changes_from_json(None) == ()
    bad = (FieldChange("last_name", "\ud800", "Lee\x00"),)
    assert changes_from_json(changes_to_json(bad)) == (FieldChange("last_name", "\ufffd", "Lee\ufffd"),)
