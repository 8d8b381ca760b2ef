"""The courier issues codes at send time: SMTP outages, retries with fresh codes, nothing stored."""

from __future__ import annotations

import grpc
from structlog.testing import capture_logs

from identity_service.bootstrap import IdentityApp, build_courier
from identity_service.service.courier import Courier
from shared.settings import Settings
from tests.integration.identity.identity_support import Campus, IdentityClient, refused
from tests.integration.identity_email.email_support import (
    CODE_SECRETS,
    COURIER_CONFIG,
    change_row,
    code_forms,
    code_in,
    confirm,
    database_text,
    deliver,
    mails_to,
    personal,
    request_change,
)
from tests.integration.identity_mail.mail_helpers import SmtpServer


async def _make_due(identity: IdentityClient) -> None:
    """Drive retries without sleeping: every waiting message becomes due now."""
    await identity.db.execute("UPDATE outbox_messages SET next_attempt_at = now() WHERE status = 'PENDING'")


async def test_smtp_down_then_back_sends_each_code_once_with_a_fresh_code(
    identity: IdentityClient,
    campus: Campus,
    courier: Courier,
    email_app: IdentityApp,
    email_settings: Settings,
) -> None:
    await deliver(courier)  # nothing of other tests left for the courier below
    down = SmtpServer()  # nothing listens on its port yet
    outage = build_courier(
        email_app.pool, email_settings.model_copy(update={"smtp_port": down.port}), COURIER_CONFIG
    )
    students = [await identity.new_student(campus) for _ in range(3)]
    addresses = [personal(f"s{n}-") for n in range(3)]
    changes = [await request_change(identity, campus, s, a) for s, a in zip(students, addresses, strict=True)]

    hashes = []
    with capture_logs() as logs:
        for failures in (1, 2):
            await _make_due(identity)
            await outage.run_once()
            rows = [await change_row(identity.db, c.id) for c in changes]
            hashes.append([r["code_hash"] for r in rows])
            statuses = await identity.db.fetch(
                "SELECT status, attempts FROM outbox_messages WHERE email_change_id = ANY($1::uuid[])",
                [c.id for c in changes],
            )
            assert {(s["status"], s["attempts"]) for s in statuses} == {("PENDING", failures)}
        assert all(h is not None for h in hashes[0])
        assert all(a != b for a, b in zip(hashes[0], hashes[1], strict=True))  # each retry: a fresh code

        down.start()
        try:
            await _make_due(identity)
            await outage.run_once()
            await _make_due(identity)
            assert await outage.run_once() == 0  # all sent: nothing left to send again
            mails = [mails_to(down, a) for a in addresses]
            assert [len(m) for m in mails] == [1, 1, 1]
            assert set(down.collector.count_by_message_id().values()) == {1}
            codes = [code_in(m[0]) for m in mails]
        finally:
            down.stop()

    for change, student, code in zip(changes, students, codes, strict=True):
        row = await change_row(identity.db, change.id)
        assert row["attempts"] == 0 and row["code_hash"] not in hashes[1]
        assert (await confirm(identity, student.id, code)).email.lower() == row["new_email"].lower()
    stored = await database_text(identity.db)
    for code in codes:
        for form in code_forms(code):
            assert form not in stored and form not in repr(logs)
    failures = [e for e in logs if e["event"] == "email.failed"]
    assert len(failures) == 6 and all("@" not in e["error"] for e in failures)


async def test_code_mail_in_the_outbox_holds_no_code(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.new_student(campus)
    address = personal()
    change = await request_change(identity, campus, student, address)
    row = await identity.db.fetchrow(
        """SELECT kind, to_address, subject, body, user_id::text
           FROM outbox_messages WHERE email_change_id = $1""",
        change.id,
    )
    assert (row["kind"], row["to_address"], row["user_id"]) == ("email_change.code", address, student.id)
    assert "\x1a{code}\x1a" in row["body"] and campus.school.name in row["subject"]
    assert (await change_row(identity.db, change.id))["code_hash"] is None
    await deliver(courier)
    [mail] = mails_to(mail_server, address)
    assert "{code}" not in mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    after = await identity.db.fetchrow(
        "SELECT status, body FROM outbox_messages WHERE email_change_id = $1", change.id
    )
    assert (after["status"], after["body"]) == ("SENT", "")


async def test_a_code_mailed_under_the_previous_key_still_confirms(
    identity: IdentityClient,
    campus: Campus,
    mail_server: SmtpServer,
    email_app: IdentityApp,
    email_settings: Settings,
) -> None:
    """Key rotation: a courier still configured with the old key first issued the code; the service,
    whose list holds both keys, verifies it."""
    student = await identity.new_student(campus)
    address = personal()
    await request_change(identity, campus, student, address)
    rotated = email_settings.model_copy(update={"code_secret": list(reversed(CODE_SECRETS))})
    await deliver(build_courier(email_app.pool, rotated, COURIER_CONFIG))
    [mail] = mails_to(mail_server, address)
    assert (await confirm(identity, student.id, code_in(mail))).email == address
    await refused(
        confirm(identity, student.id, code_in(mail)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_PENDING_EMAIL_CHANGE",
    )
