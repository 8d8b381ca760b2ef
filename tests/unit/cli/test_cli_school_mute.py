"""``rollcall school set --mute KINDS``: the whole list of notification kinds switched off, checked
before any call, sent as ``muted_notifications`` in the mask (and shown by ``school show``)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shared.cli.main import app
from shared.cli.schools import MUTABLE_KINDS, SchoolChange, kind_names, mute_kinds, split_list
from shared.proto.rollcall.identity.v1 import resources_pb2 as res


def test_mute_names_every_kind_but_unspecified() -> None:
    assert MUTABLE_KINDS == (
        "pending_digest",
        "job_held",
        "job_failed_rows",
        "student_waiting",
        "student_decided",
    )


def test_mute_sends_the_kinds_given_and_only_that_path() -> None:
    request = SchoolChange(
        muted=split_list("pending_digest, JOB_HELD,notification_kind_student_waiting")
    ).request("school-1", "r-1")
    assert list(request.update_mask.paths) == ["muted_notifications"]
    assert list(request.school.muted_notifications) == [
        res.NOTIFICATION_KIND_PENDING_DIGEST,
        res.NOTIFICATION_KIND_JOB_HELD,
        res.NOTIFICATION_KIND_STUDENT_WAITING,
    ]
    assert kind_names(request.school.muted_notifications) == ["pending_digest", "job_held", "student_waiting"]
    cleared = SchoolChange(muted=split_list("")).request("school-1", "r-2")
    assert list(cleared.update_mask.paths) == ["muted_notifications"]
    assert list(cleared.school.muted_notifications) == []


def test_an_unknown_kind_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="job_held"):
        mute_kinds(["digest"])
    with pytest.raises(ValueError):
        mute_kinds(["unspecified"])


def test_an_unknown_kind_is_a_usage_error_before_any_call() -> None:
    result = CliRunner().invoke(app, ["school", "set", "school-1", "--mute", "pending_digest,nope"])
    assert result.exit_code == 2 and "--mute" in result.output
