"""The CLI's pure parts: per-chunk request ids, the update_mask ``school set`` builds, and the
one-line error text (code, ErrorInfo reason, message)."""

from __future__ import annotations

from typer.testing import CliRunner

from shared.cli.main import app
from shared.cli.schools import SchoolChange, split_list
from shared.cli.students import REQUEST_ID_MAX, check_request_id, chunk_request_ids


def test_chunk_request_ids_are_derived_and_stable() -> None:
    assert chunk_request_ids("term-start", 3) == ["term-start-0", "term-start-1", "term-start-2"]
    fresh = chunk_request_ids("", 2)
    assert fresh[0].endswith("-0") and fresh[0][:-2] == fresh[1][:-2]


def test_request_id_leaves_room_for_the_chunk_suffix() -> None:
    assert check_request_id("x" * 120) is None
    assert check_request_id("x" * 121) is not None
    assert len(chunk_request_ids("x" * 120, 9_999)[-1]) <= REQUEST_ID_MAX


def test_school_set_masks_only_the_given_settings() -> None:
    request = SchoolChange(threshold=0, notify=split_list("")).request("school-1", "r-1")
    assert list(request.update_mask.paths) == ["change_threshold_percent", "notify_emails"]
    assert request.school.id == "school-1" and list(request.school.notify_emails) == []
    both = SchoolChange(domains=split_list(" a.edu, b.edu ,"), sso=False).request("s", "r")
    assert list(both.update_mask.paths) == ["email_domains", "sso_enabled"]
    assert list(both.school.email_domains) == ["a.edu", "b.edu"] and both.request_id == "r"
    assert split_list(None) is None


def test_too_long_request_id_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        app, ["students", "approve", "--school", "s", "--request-id", "x" * 121, "id"]
    )
    assert result.exit_code == 2 and "--request-id" in result.output
