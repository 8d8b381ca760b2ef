"""Connector messages: a job's header is serialized once and followed by each message's body."""

from __future__ import annotations

from import_service.adapters.amqp.codec import decode
from import_service.domain.jobs import ImportMode, JobSpec
from import_service.domain.messages import EndMessage, RowsMessage
from import_service.domain.rows import FileRow
from shared.amqp.messages import PROTOBUF, encode_end, encode_rows


def test_rows_and_end_messages_round_trip() -> None:
    spec = JobSpec("job-1", "school-1", ImportMode.MANUAL_FILE, True, False, "roster.csv", "job-0")
    rows = (FileRow(1, "ann", "ann@uni.edu", "Ann"), FileRow(2, "bob", "bob@uni.edu", extra=(("k", "v"),)))
    for _ in range(2):  # the second time from the cached header
        decoded = decode(encode_rows(spec, rows), PROTOBUF, "rows.school-1")
        assert decoded == RowsMessage(spec, rows)
    assert decode(encode_end(spec, 2), PROTOBUF, "rows.school-1") == EndMessage(spec, 2)
    other = JobSpec("job-2", "school-1", ImportMode.ONGOING_SYNC)
    assert decode(encode_rows(other, rows[:1]), PROTOBUF, "rows.school-1") == RowsMessage(other, rows[:1])
