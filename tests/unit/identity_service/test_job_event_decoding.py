"""The courier's consumer decodes an import-job event (protobuf or JSON, as the relay publishes it)
into a ``JobNotice``, and refuses — to log and acknowledge, never to redeliver — anything else."""

from __future__ import annotations

import pytest

from identity_service.adapters.amqp.job_events import (
    BINDINGS,
    UndecodableEvent,
    decode_job_event,
    notifications_queue,
    queue_arguments,
)
from shared.amqp.topology import Topology
from shared.events.publisher import JSON, PROTOBUF, encode
from shared.proto.rollcall.events.v1 import events_pb2 as events_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as import_pb


def job_event(event_type: str = "import_job.held", **job_values: object) -> events_pb.Event:
    event = events_pb.Event(id="4f6c0d2e-0000-4000-8000-000000000001", type=event_type, subject="sis-1")
    job = import_pb.ImportJob(
        job_id="sis-1",
        school_id="8b0f3c1e-0000-4000-8000-000000000002",
        source_name="students.csv",
        total_rows=10,
        **({"state": import_pb.IMPORT_JOB_STATE_HELD} | job_values),  # type: ignore[arg-type]
    )
    job.counts.updated = 3
    job.counts.failed = 1
    job.hold.sensitive_changes = 3
    job.hold.school_students = 10
    job.hold.threshold_percent = 10
    event.job.job.CopyFrom(job)
    return event


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON, f"{JSON}; charset=utf-8"])
def test_both_body_formats_decode_to_the_same_notice(content_type: str) -> None:
    body = encode(job_event(), content_type.split(";")[0])
    notice = decode_job_event(body, content_type, "", "import_job.held")
    assert (notice.event_id, notice.event_type, notice.job_id) == (
        "4f6c0d2e-0000-4000-8000-000000000001",
        "import_job.held",
        "sis-1",
    )
    assert notice.held and not notice.completed and notice.source_name == "students.csv"
    assert (notice.counts.updated, notice.counts.failed, notice.total_rows) == (3, 1, 10)
    assert notice.hold is not None and (notice.hold.sensitive_changes, notice.hold.school_students) == (3, 10)


def test_the_message_id_and_routing_key_stand_in_for_missing_fields() -> None:
    event = job_event()
    event.id, event.type = "", ""
    notice = decode_job_event(encode(event, PROTOBUF), PROTOBUF, "msg-7", "import_job.completed")
    assert (notice.event_id, notice.event_type) == ("msg-7", "import_job.completed")


def test_a_completed_job_without_hold_figures_has_none() -> None:
    event = job_event("import_job.completed", state=import_pb.IMPORT_JOB_STATE_COMPLETED)
    event.job.job.ClearField("hold")
    notice = decode_job_event(encode(event, JSON), JSON, "", "")
    assert notice.completed and notice.hold is None


def _no_school() -> events_pb.Event:
    event = job_event()
    event.job.job.school_id = ""
    return event


def _no_job() -> events_pb.Event:
    event = job_event()
    event.school.school.id = "x"  # another payload of the oneof
    return event


@pytest.mark.parametrize(
    ("body", "content_type", "message_id", "why"),
    [
        (b"\xff\xfe not protobuf", PROTOBUF, "m", "not a rollcall.events.v1.Event"),
        (b"{not json", JSON, "m", "not a rollcall.events.v1.Event"),
        (b"\xff", JSON, "m", "not a rollcall.events.v1.Event"),
        (encode(job_event(), JSON), "text/plain", "m", "content type"),
        (encode(job_event(), JSON), "", "m", "content type"),
        (encode(job_event("user.updated"), JSON), JSON, "m", "not an import job event"),
        (encode(_no_job(), PROTOBUF), PROTOBUF, "m", "carries no job"),
        (encode(_no_school(), PROTOBUF), PROTOBUF, "m", "names no school"),
    ],
)
def test_what_is_no_job_event_is_refused_with_a_reason(
    body: bytes, content_type: str, message_id: str, why: str
) -> None:
    with pytest.raises(UndecodableEvent) as caught:
        decode_job_event(body, content_type, message_id, "import_job.held")
    assert why in str(caught.value)


def test_an_event_without_any_id_is_refused() -> None:
    event = job_event()
    event.id = ""
    with pytest.raises(UndecodableEvent):
        decode_job_event(encode(event, PROTOBUF), PROTOBUF, "", "import_job.held")


def test_the_queue_is_a_durable_quorum_queue_bound_to_the_two_job_events() -> None:
    assert notifications_queue(Topology("rollcall")) == "rollcall.identity.notifications"
    assert queue_arguments()["x-queue-type"] == "quorum"
    assert BINDINGS == ("import_job.held", "import_job.completed")
