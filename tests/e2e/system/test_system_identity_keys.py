"""Issue 7 through both running services and the broker: the rows that stalled every school's
imports (a dotted capital I in an existing student's address) and the day-two file whose username
held one; a lookalike address in a file; the key is one definition on every path."""

from __future__ import annotations

import uuid
from pathlib import Path

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from tests.e2e.system.system_support import csv_text, new_campus, outcome_name, publish_csv, spec_for
from tests.process_stack import ProcessStack


async def test_a_dotted_capital_i_sync_row_completes_and_the_day_two_file_is_unchanged(
    stack: ProcessStack, tmp_path: Path
) -> None:
    campus = await new_campus(stack)
    tag = str(uuid.uuid4().int)[:8]  # digits: a Greek local part with Latin letters would mix scripts
    existing = await campus.student(f"inan0-{tag}", f"inan0-{tag}@uni.example", first="Inan", last="Lee")
    file = csv_text(
        [
            (f"İNAN0-{tag}", f"İNAN0-{tag}@uni.example", "Inan", "Lee", ""),
            (f"İlker.T-{tag}@uni.example", f"İlker.T-{tag}@uni.example", "Ilker", "Tan", ""),
            (f"ΝΙΚΟΣ-{tag}", f"ΝΙΚΟΣ-{tag}@uni.example", "Nikos", "Pap", ""),
            (f"ann-{tag}", f"\u0430nn-{tag}@uni.example", "Ann", "Lee", ""),  # Cyrillic a among Latin
        ]
    )
    first = spec_for(campus.id)
    await publish_csv(stack, tmp_path, file, first)
    await stack.wait_job(first.job_id, timeout=60)
    day_one = {r.row_number: r for r in await stack.row_results(first.job_id)}
    assert [outcome_name(r.outcome) for r in day_one.values()] == [
        "UNCHANGED",
        "CREATED",
        "CREATED",
        "FAILED",
    ]
    assert day_one[1].user_id == existing.id
    assert day_one[4].reason == "EMAIL_CONFUSABLE"

    second = spec_for(campus.id)  # the same file, a day later
    await publish_csv(stack, tmp_path, file, second)
    await stack.wait_job(second.job_id, timeout=60)
    day_two = {r.row_number: r for r in await stack.row_results(second.job_id)}
    assert [outcome_name(r.outcome) for r in day_two.values()] == ["UNCHANGED"] * 3 + ["FAILED"]
    assert [r.user_id for r in day_two.values()][:3] == [r.user_id for r in day_one.values()][:3]

    found = await stack.identity.LookupUserByEmail(
        ipb.LookupUserByEmailRequest(email=f"ilker.t-{tag}@UNI.example"), metadata=stack.admin_md, timeout=10
    )
    assert found.id == day_one[2].user_id
    assert day_two[4].outcome == rows_pb.ROW_OUTCOME_FAILED
