"""One identity key and the lookalike rule over gRPC (issue 7): every path that takes an address —
sign-up, CreateUser, email change, student-file rows, look-ups and the sign-in lockout — compares
by the key identity computes, and refuses lookalikes and encoded words."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from identity_service.domain.identity_keys import email_key
from shared.grpc_kit.errors import error_info
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows
from tests.integration.identity.identity_support import Campus, IdentityClient, refused, unique
from tests.unit.identity.test_identity_keys import TROUBLEMAKERS

NOW = timestamp_pb2.Timestamp(seconds=1_800_000_000)
LATER = timestamp_pb2.Timestamp(seconds=1_800_086_400)


async def _apply(
    identity: IdentityClient, campus: Campus, batch: list[rows.StudentRow], when: timestamp_pb2.Timestamp
) -> dict[int, rows.RowResult]:
    request = pb.ApplyStudentRowsRequest(
        school_id=campus.school.id,
        job_id=unique("job-"),
        mode=rows.IMPORT_MODE_ONGOING_SYNC,
        rows=batch,
        job_create_time=when,
    )
    reply = await identity.stub.ApplyStudentRows(request, metadata=identity.md("importer"), timeout=60)
    return {r.row_number: r for r in reply.results}


async def test_every_case_troublemaker_names_one_student_through_rows_lookups_and_sign_up(
    identity: IdentityClient, campus: Campus
) -> None:
    def row(n: int, char: str) -> rows.StudentRow:
        return rows.StudentRow(
            row_number=n, username=f"{char}{n}", email_address=f"{char}{n}@{campus.domain}", first_name="F"
        )

    first = await _apply(identity, campus, [row(n, c) for n, c in enumerate(TROUBLEMAKERS, 1)], NOW)
    created = {n: r for n, r in first.items() if r.outcome == rows.ROW_OUTCOME_CREATED}
    assert len(created) > 0.7 * len(TROUBLEMAKERS), "most troublemakers make valid addresses"
    assert {r.reason for n, r in first.items() if n not in created} <= {"INVALID_ROW", "EMAIL_CONFUSABLE"}

    # day two: the same file spelt with the other lower-casing of each character
    def variant(n: int) -> rows.StudentRow:
        """The row spelt with another casing of its character that has the same key (the dotless i's
        upper case is I, whose key is i: a lookalike of it, not it)."""
        char = TROUBLEMAKERS[n - 1]
        same = [c for c in (char.upper(), char.lower(), char.casefold(), char.title()) if c != char]
        key = email_key(f"{char}{n}@x.edu")
        return row(n, next((c for c in same if email_key(f"{c}{n}@x.edu") == key), char))

    second = await _apply(identity, campus, [variant(n) for n in created], LATER)
    for n, result in second.items():
        assert (result.outcome, result.user_id) == (rows.ROW_OUTCOME_UNCHANGED, created[n].user_id), (
            f"U+{ord(TROUBLEMAKERS[n - 1]):04X}: {result.outcome} {result.reason} {result.message}"
        )

    for n in list(created)[:60]:
        char = TROUBLEMAKERS[n - 1]
        spelt = f"{char.casefold()}{n}@{campus.domain.upper()}"
        found = await identity.stub.LookupUserByEmail(
            pb.LookupUserByEmailRequest(email=spelt), metadata=identity.admin
        )
        assert found.id == created[n].user_id
        await refused(identity.sign_up(campus, email=spelt), grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN")


async def test_the_dotted_capital_i_row_is_applied_not_retried_for_ever(
    identity: IdentityClient, campus: Campus
) -> None:
    student = await identity.new_student(campus, email=f"inan0@{campus.domain}", username="inan0")
    results = await _apply(
        identity,
        campus,
        [
            rows.StudentRow(
                row_number=1, username="İNAN0", email_address=f"İNAN0@{campus.domain}", first_name="I"
            )
        ],
        NOW,
    )
    assert (results[1].outcome, results[1].user_id) == (rows.ROW_OUTCOME_UPDATED, student.id)
    assert await identity.users_with_email(student.email) == 1


async def test_greek_capitals_match_their_student_unchanged(identity: IdentityClient, campus: Campus) -> None:
    student = await identity.new_student(campus, email=f"νικος@{campus.domain}", username="νικος")
    results = await _apply(
        identity,
        campus,
        [rows.StudentRow(row_number=1, username="ΝΙΚΟΣ", email_address=f"ΝΙΚΟΣ@{campus.domain}")],
        NOW,
    )
    assert (results[1].outcome, results[1].user_id) == (rows.ROW_OUTCOME_UNCHANGED, student.id)


async def test_the_sign_in_lockout_counts_every_spelling_of_one_address(
    identity: IdentityClient, campus: Campus
) -> None:
    local = unique("inan")
    await identity.new_student(campus, email=f"{local}@{campus.domain}")
    platform = identity.md("platform")
    spellings = [f"{local}@{campus.domain}", f"{local.upper().replace('I', 'İ')}@{campus.domain}"]
    for attempt in range(10):
        request = pb.AuthenticateRequest(email=spellings[attempt % 2], password="wrong password!")
        await refused(
            identity.stub.Authenticate(request, metadata=platform),
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_CREDENTIALS",
        )
    for spelt in spellings:
        request = pb.AuthenticateRequest(email=spelt, password="wrong password!")
        await refused(
            identity.stub.Authenticate(request, metadata=platform),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "RATE_LIMITED",
        )


def _lookalikes(domain: str) -> dict[str, str]:
    """Spellings of ``ann.lee@`` and ``office@`` and the reason each must be refused with."""
    return {
        f"\uff41nn.lee@{domain}": "EMAIL_TAKEN",  # fullwidth a: NFKC makes it the same address
        f"o\ufb03ce@{domain}": "EMAIL_TAKEN",  # ffi ligature: likewise
        f"\u0430nn.lee@{domain}": "EMAIL_CONFUSABLE",  # Cyrillic a among Latin letters
        f"\u0251nn.lee@{domain}": "EMAIL_CONFUSABLE",  # Latin alpha: one script, the skeleton of ann.lee
        f"\u043e\u0066\u0066ice@{domain}": "EMAIL_CONFUSABLE",  # Cyrillic o + Latin
    }


async def _refused_with(call: Awaitable[Any], code: grpc.StatusCode, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    info = error_info(caught.value)
    assert (caught.value.code(), info and info.reason) == (code, reason), caught.value.details()


async def test_lookalikes_are_refused_on_sign_up_create_user_and_email_change(
    identity: IdentityClient, campus: Campus
) -> None:
    await identity.new_student(campus, email=f"ann.lee@{campus.domain}")
    await identity.new_student(campus, email=f"office@{campus.domain}")
    other = await identity.new_student(campus, email=campus.email())
    for address, reason in _lookalikes(campus.domain).items():
        await _refused_with(identity.sign_up(campus, email=address), grpc.StatusCode.ALREADY_EXISTS, reason)
        await _refused_with(
            identity.new_user(res.USER_TYPE_STUDENT, campus.school.id, email=address),
            grpc.StatusCode.ALREADY_EXISTS,
            reason,
        )
        change = pb.RequestEmailChangeRequest(user_id=other.id, new_email=address, disable_file_updates=True)
        await _refused_with(
            identity.stub.RequestEmailChange(change, metadata=campus.staff_md),
            grpc.StatusCode.ALREADY_EXISTS,
            reason,
        )
    assert await identity.count("SELECT count(*) FROM email_changes WHERE user_id = $1", other.id) == 0


async def test_lookalikes_fail_as_student_file_rows(identity: IdentityClient, campus: Campus) -> None:
    await identity.new_student(campus, email=f"ann.lee@{campus.domain}", username="ann.lee")
    await identity.new_student(campus, email=f"office@{campus.domain}", username="office")
    batch = [
        rows.StudentRow(row_number=n, username=f"fresh{n}", email_address=address)
        for n, address in enumerate(_lookalikes(campus.domain), 1)
    ]
    results = await _apply(identity, campus, batch, NOW)
    assert [r.outcome for r in results.values()] == [rows.ROW_OUTCOME_FAILED] * len(batch)
    # the same address with another username is the stored student (a sensitive change), never a second one
    expected = [
        r if r == "EMAIL_CONFUSABLE" else "SENSITIVE_FIELDS_REQUIRED" for r in _lookalikes("").values()
    ]
    assert [r.reason for r in results.values()] == expected
    assert (
        await identity.count(
            "SELECT count(*) FROM users WHERE username LIKE 'fresh%' AND school_id = $1", campus.school.id
        )
        == 0
    )


async def test_a_plain_address_cannot_join_its_one_script_lookalike_even_at_once(
    identity: IdentityClient, campus: Campus
) -> None:
    alpha = f"\u0251nn@{campus.domain}"  # first comes the non-ASCII one
    await identity.new_student(campus, email=alpha)
    plain_ann = identity.new_student(campus, email=f"ann@{campus.domain}")
    await _refused_with(plain_ann, grpc.StatusCode.ALREADY_EXISTS, "EMAIL_CONFUSABLE")
    # and racing: of a plain address and its lookalike created at once, exactly one is kept
    plain, other = f"alex@{campus.domain}", f"\u0251lex@{campus.domain}"
    attempts = [identity.new_student(campus, email=a) for a in [plain, other] * 10]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    kept = {o.email for o in outcomes if isinstance(o, res.User)}
    assert len(kept) == 1
    keys = [email_key(plain), email_key(other)]
    assert await identity.count("SELECT count(*) FROM users WHERE email_key = ANY($1::text[])", keys) == 1


async def test_an_email_change_to_an_encoded_word_is_refused_and_no_mail_is_queued(
    identity: IdentityClient, campus: Campus
) -> None:
    await identity.new_student(campus, email=f"staff.b@{campus.domain}")
    student = await identity.new_student(campus, email=campus.email())
    queued = await identity.count("SELECT count(*) FROM outbox_messages")
    for address in (f"=?utf-8?q?staff.b?=@{campus.domain}", f"=?utf-8?b?c3RhZmYuYg==?=@{campus.domain}"):
        change = pb.RequestEmailChangeRequest(
            user_id=student.id, new_email=address, disable_file_updates=True
        )
        await refused(
            identity.stub.RequestEmailChange(change, metadata=campus.staff_md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_EMAIL",
            ["new_email"],
        )
    assert await identity.count("SELECT count(*) FROM email_changes WHERE user_id = $1", student.id) == 0
    assert await identity.count("SELECT count(*) FROM outbox_messages") == queued


async def test_a_student_may_change_to_a_lookalike_of_their_own_address_only(
    identity: IdentityClient, campus: Campus
) -> None:
    student = await identity.new_student(campus, email=f"\u0251nn@{campus.domain}")
    other = await identity.new_student(campus, email=campus.email())
    own = pb.RequestEmailChangeRequest(
        user_id=student.id, new_email=f"ann@{campus.domain}", disable_file_updates=True
    )
    change = await identity.stub.RequestEmailChange(own, metadata=campus.staff_md)
    assert change.new_email == f"ann@{campus.domain}"
    theirs = pb.RequestEmailChangeRequest(
        user_id=other.id, new_email=f"ann@{campus.domain}", disable_file_updates=True
    )
    await _refused_with(
        identity.stub.RequestEmailChange(theirs, metadata=campus.staff_md),
        grpc.StatusCode.ALREADY_EXISTS,
        "EMAIL_CONFUSABLE",
    )
