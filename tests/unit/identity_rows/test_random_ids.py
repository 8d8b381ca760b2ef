"""Student ids made in bulk are still distinct version-4 UUIDs, across refills of the random pool."""

from __future__ import annotations

import uuid

from identity_service.domain.student_file import _RandomIds


def test_ids_are_distinct_version_4_uuids_across_refills() -> None:
    make = _RandomIds(per_refill=3)
    ids = [make() for _ in range(100)]
    assert len(set(ids)) == 100
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
