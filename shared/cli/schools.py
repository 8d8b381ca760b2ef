"""``rollcall school show|set``: a school's settings through GetSchool / UpdateSchool.

``set`` names in ``update_mask`` exactly the options given, so a setting not on the command line is
never touched (UpdateSchool ignores fields outside the mask). ``--mute KINDS`` is the whole list of
notification kinds switched off (``''``: every kind on), by their lower-case names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import field_mask_pb2, json_format
from rich.console import Console
from rich.table import Table

from shared.cli.clients import Target
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res


@dataclass(frozen=True)
class SchoolChange:
    """The options given to ``school set`` (None: not given)."""

    threshold: int | None = None
    notify: list[str] | None = None
    domains: list[str] | None = None
    sso: bool | None = None
    name: str | None = None
    muted: list[str] | None = None  # notification kind names (``mute_kinds`` checks them)

    def request(self, school_id: str, request_id: str) -> pb.UpdateSchoolRequest:
        school = res.School(id=school_id)
        paths: list[str] = []
        if self.name is not None:
            school.name = self.name
            paths.append("name")
        if self.domains is not None:
            school.email_domains.extend(self.domains)
            paths.append("email_domains")
        if self.sso is not None:
            school.sso_enabled = self.sso
            paths.append("sso_enabled")
        if self.threshold is not None:
            school.change_threshold_percent = self.threshold
            paths.append("change_threshold_percent")
        if self.notify is not None:
            school.notify_emails.extend(self.notify)
            paths.append("notify_emails")
        if self.muted is not None:
            school.muted_notifications.extend(mute_kinds(self.muted))
            paths.append("muted_notifications")
        return pb.UpdateSchoolRequest(
            school=school, update_mask=field_mask_pb2.FieldMask(paths=paths), request_id=request_id
        )


def split_list(text: str | None) -> list[str] | None:
    """``a@x,b@y`` → the items; ``""`` → an empty list (clears the setting); None → not given."""
    if text is None:
        return None
    return [item.strip() for item in text.split(",") if item.strip()]


KIND_PREFIX = "NOTIFICATION_KIND_"
MUTABLE_KINDS = tuple(
    name.removeprefix(KIND_PREFIX).lower()
    for name in res.NotificationKind.keys()  # noqa: SIM118 - a protobuf enum wrapper, not a dict
    if name != f"{KIND_PREFIX}UNSPECIFIED"
)
"""The notification kinds ``--mute`` takes: pending_digest, job_held, job_failed_rows, ..."""


def mute_kinds(names: list[str]) -> list[res.NotificationKind.ValueType]:
    """``pending_digest`` (any case, the ``NOTIFICATION_KIND_`` prefix optional) → the enum's number;
    ValueError naming a kind that is not one."""
    numbers = []
    for raw in names:
        name = raw.strip().upper().removeprefix(KIND_PREFIX)
        if name.lower() not in MUTABLE_KINDS:
            raise ValueError(f"{raw!r} is not a notification kind ({', '.join(MUTABLE_KINDS)})")
        numbers.append(res.NotificationKind.Value(KIND_PREFIX + name))
    return numbers


def kind_names(numbers: Sequence[res.NotificationKind.ValueType]) -> list[str]:
    """The lower-case names of notification kinds (as ``--mute`` takes them)."""
    return [str(res.NotificationKind.Name(n)).removeprefix(KIND_PREFIX).lower() for n in numbers]


async def get_school(target: Target, school_id: str) -> res.School:
    channel, stub = target.identity()
    try:
        return await stub.GetSchool(pb.GetSchoolRequest(id=school_id), metadata=target.metadata(), timeout=30)
    finally:
        await channel.close()


async def update_school(target: Target, request: pb.UpdateSchoolRequest) -> res.School:
    channel, stub = target.identity()
    try:
        return await stub.UpdateSchool(request, metadata=target.metadata(), timeout=30)
    finally:
        await channel.close()


def school_dict(school: res.School) -> dict[str, Any]:
    return json_format.MessageToDict(school, always_print_fields_with_no_presence=True)


def print_school(school: res.School, as_json: bool) -> None:
    if as_json:
        print(json.dumps(school_dict(school), indent=2, ensure_ascii=False))
        return
    table = Table(title=f"school {school.id}", show_header=False)
    table.add_column("setting", style="bold")
    table.add_column("value")
    table.add_row("name", school.name)
    table.add_row("email domains", ", ".join(school.email_domains) or "∅")
    table.add_row("single sign-on", "on" if school.sso_enabled else "off")
    guard = f"{school.change_threshold_percent} %" if school.change_threshold_percent else "off (0)"
    table.add_row("change threshold", guard)
    table.add_row("notify", ", ".join(school.notify_emails) or "∅")
    table.add_row("muted", ", ".join(kind_names(school.muted_notifications)) or "∅ (every mail on)")
    Console().print(table)
