"""Identity's ids are version-7 UUIDs (RFC 9562) that sort in the order they were made — also within
one millisecond, across refills of the random pool, past the 12-bit counter and when the clock
steps back — and carry the clock's milliseconds."""

from __future__ import annotations

import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

from identity_service.domain.ids import TimeOrderedIds, new_id

MS = 1_000_000  # ns


def _ms_of(text: str) -> int:
    return uuid.UUID(text).int >> 80


def test_ids_are_version_7_rfc_uuids_in_canonical_text() -> None:
    for text in (new_id() for _ in range(50)):
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, text)


def test_ids_made_in_one_millisecond_increase_across_refills_and_past_the_counter() -> None:
    make = TimeOrderedIds(per_refill=3, clock_ns=lambda: 1_764_600_000_000 * MS)
    ids = [make() for _ in range(5_000)]  # more than the counter's 4,096 values in one millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert _ms_of(ids[0]) == 1_764_600_000_000 and _ms_of(ids[-1]) == 1_764_600_000_001


def test_a_clock_stepping_back_never_makes_a_smaller_id() -> None:
    ticks = iter([5_000 * MS, 5_000 * MS, 4_000 * MS, 6_000 * MS])
    make = TimeOrderedIds(clock_ns=lambda: next(ticks))
    ids = [make() for _ in range(4)]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert [_ms_of(i) for i in ids] == [5_000, 5_000, 5_000, 6_000]


@given(st.lists(st.integers(min_value=0, max_value=2**47), min_size=1, max_size=200))
def test_any_clock_readings_give_increasing_distinct_ids(readings: list[int]) -> None:
    ticks = iter(readings)
    make = TimeOrderedIds(per_refill=7, clock_ns=lambda: next(ticks) * MS)
    ids = [make() for _ in readings]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_an_id_carries_the_millisecond_it_was_made_in() -> None:
    make = TimeOrderedIds()
    before = time.time_ns() // MS
    made = make()
    assert before <= _ms_of(made) <= time.time_ns() // MS
