"""Issue 9, school settings over gRPC: CreateSchool's change_threshold_percent (10 unless given; 0 told
from "not given") and notify_emails; UpdateSchool with a field mask — admin changes any field, staff of
the school only its import settings —, audited, idempotent; ResolveSignIn's hint follows the domains."""

from __future__ import annotations

import json
import uuid

import grpc
from google.protobuf import field_mask_pb2

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.integration.identity.identity_support import IdentityClient, invalid, not_found, refused, unique


def _update(school: res.School, *paths: str, request_id: str = "") -> pb.UpdateSchoolRequest:
    return pb.UpdateSchoolRequest(
        school=school, update_mask=field_mask_pb2.FieldMask(paths=list(paths)), request_id=request_id
    )


async def _updates(identity: IdentityClient, school_id: str) -> list[dict[str, list[object]]]:
    rows = await identity.db.fetch(
        "SELECT details FROM audit_events WHERE school_id = $1 AND action = 'school.updated' ORDER BY id",
        school_id,
    )
    return [json.loads(r["details"]) if isinstance(r["details"], str) else dict(r["details"]) for r in rows]


async def test_create_school_defaults_the_threshold_and_keeps_a_zero(identity: IdentityClient) -> None:
    plain = await identity.new_school()
    assert (plain.change_threshold_percent, list(plain.notify_emails)) == (10, [])
    off = await identity.stub.CreateSchool(
        pb.CreateSchoolRequest(
            name=unique("School "),
            email_domains=[f"{unique('d')}.edu"],
            change_threshold_percent=0,
            notify_emails=["Careers@Example.COM"],
        ),
        metadata=identity.admin,
    )
    assert off.change_threshold_percent == 0 and list(off.notify_emails) == ["Careers@example.com"]
    assert await identity.stub.GetSchool(pb.GetSchoolRequest(id=off.id), metadata=identity.admin) == off
    await invalid(
        identity.stub.CreateSchool(
            pb.CreateSchoolRequest(name="X", change_threshold_percent=101, notify_emails=["nope"]),
            metadata=identity.admin,
        ),
        "change_threshold_percent",
        "notify_emails[0]",
    )


async def test_admin_changes_the_domains_and_resolve_sign_in_follows(identity: IdentityClient) -> None:
    campus = await identity.new_campus()
    old = list(campus.school.email_domains)
    alias = f"{unique('alias')}.edu"
    hint = pb.ResolveSignInRequest(email="ann@gmail.com", school_id=campus.school.id)
    before = await identity.stub.ResolveSignIn(hint, metadata=identity.md("platform"))
    assert list(before.school_email_domains) == old and not before.sso_enabled

    wanted = res.School(id=campus.school.id, email_domains=[*old, alias.upper()], sso_enabled=True, name="x")
    updated = await identity.stub.UpdateSchool(
        _update(wanted, "email_domains", "sso_enabled"), metadata=identity.admin
    )
    assert list(updated.email_domains) == [*old, alias] and updated.sso_enabled
    assert updated.name == campus.school.name  # not in the mask: untouched

    after = await identity.stub.ResolveSignIn(hint, metadata=identity.md("platform"))
    assert list(after.school_email_domains) == [*old, alias] and after.sso_enabled
    assert after.outcome == pb.SIGN_IN_OUTCOME_TRY_SCHOOL_EMAIL
    assert await _updates(identity, campus.school.id) == [
        {"email_domains": [old, [*old, alias]], "sso_enabled": [False, True]}
    ]


async def test_staff_change_only_the_import_settings(identity: IdentityClient) -> None:
    campus = await identity.new_campus()
    school_id = campus.school.id
    settings = res.School(id=school_id, change_threshold_percent=0, notify_emails=["careers@uni.example"])
    updated = await identity.stub.UpdateSchool(
        _update(settings, "change_threshold_percent", "notify_emails"), metadata=campus.staff_md
    )
    assert (updated.change_threshold_percent, list(updated.notify_emails)) == (0, ["careers@uni.example"])
    actor = await identity.db.fetchval(
        "SELECT actor_id FROM audit_events WHERE school_id = $1 AND action = 'school.updated'", school_id
    )
    assert str(actor) == campus.staff.id

    events = await identity.audit_count(school_id=school_id)
    renamed = res.School(id=school_id, name="Renamed", notify_emails=[])
    error = await refused(
        identity.stub.UpdateSchool(_update(renamed, "name", "notify_emails"), metadata=campus.staff_md),
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
    assert "name" in (error.details() or "")
    other = await identity.new_campus()
    await refused(
        identity.stub.UpdateSchool(_update(settings, "notify_emails"), metadata=other.staff_md),
        grpc.StatusCode.PERMISSION_DENIED,
        "NOT_STAFF_OF_SCHOOL",
    )
    got = await identity.stub.GetSchool(pb.GetSchoolRequest(id=school_id), metadata=identity.admin)
    assert got == updated and await identity.audit_count(school_id=school_id) == events


async def test_a_bad_mask_or_field_names_it_and_changes_nothing(identity: IdentityClient) -> None:
    school = await identity.new_school()
    update = identity.stub.UpdateSchool
    await invalid(update(_update(school), metadata=identity.admin), "update_mask")
    await invalid(update(_update(school, "name", "id"), metadata=identity.admin), "update_mask")
    await invalid(
        update(
            pb.UpdateSchoolRequest(
                school=res.School(name="North"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
            ),
            metadata=identity.admin,
        ),
        "school.id",
    )
    bad = res.School(
        id=school.id,
        name=" ",
        email_domains=["not a domain!"],
        change_threshold_percent=-5,
        notify_emails=[f"n{i}@uni.example" for i in range(21)],
    )
    await invalid(
        update(
            _update(bad, "name", "email_domains", "change_threshold_percent", "notify_emails"),
            metadata=identity.admin,
        ),
        "school.name",
        "school.email_domains[0]",
        "school.change_threshold_percent",
        "school.notify_emails",
    )
    await not_found(
        update(_update(res.School(id=str(uuid.uuid4()), name="X"), "name"), metadata=identity.admin),
        "SCHOOL_NOT_FOUND",
    )
    await refused(
        update(_update(school, "name"), metadata=identity.md("importer")),
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
    assert await identity.stub.GetSchool(pb.GetSchoolRequest(id=school.id), metadata=identity.admin) == school
    assert await _updates(identity, school.id) == []


async def test_update_school_request_id_replays_and_refuses_other_content(identity: IdentityClient) -> None:
    school = await identity.new_school()
    key = unique("req-")
    first = await identity.stub.UpdateSchool(
        _update(res.School(id=school.id, name="North"), "name", request_id=key), metadata=identity.admin
    )
    again = await identity.stub.UpdateSchool(
        _update(res.School(id=school.id, name="North"), "name", request_id=key), metadata=identity.admin
    )
    assert first == again and first.name == "North"
    await invalid(
        identity.stub.UpdateSchool(
            _update(res.School(id=school.id, name="South"), "name", request_id=key), metadata=identity.admin
        ),
        reason="REQUEST_ID_REUSED",
    )
    assert len(await _updates(identity, school.id)) == 1
