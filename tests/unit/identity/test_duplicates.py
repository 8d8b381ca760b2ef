"""Duplicate candidates for a pending student (product rule 6)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from identity_service.domain.duplicates import (
    Candidate,
    MatchReason,
    fold_name,
    rank,
    score_candidate,
)
from identity_service.domain.users import User, UserOrigin, UserStatus, UserType

NOW = datetime(2025, 1, 2, tzinfo=UTC)

PENDING = User(
    id="p-1",
    user_type=UserType.STUDENT,
    status=UserStatus.PENDING,
    school_id="s-1",
    username="jose.garcia@gmail.com",
    email="jose.garcia@gmail.com",
    first_name="José",
    last_name="García",
    auth_identifier="",
    origin=UserOrigin.SELF_SIGNUP,
    file_updates_disabled=False,
    email_verified=False,
    create_time=NOW,
    update_time=NOW,
    version=1,
)
STRANGER = replace(
    PENDING,
    id="c-1",
    status=UserStatus.ACTIVE,
    username="xyz9",
    email="xyz9@uni.edu",
    first_name="Maria",
    last_name="Okafor",
    auth_identifier="S-9",
    origin=UserOrigin.STUDENT_FILE,
)


def _candidate(**overrides: object) -> User:
    return replace(STRANGER, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("José", "jose"),
        ("  JOSÉ  García ", "jose garcia"),
        ("O'Brien-Smith", "o brien smith"),
        ("Straße", "strasse"),
    ],
)
def test_names_fold_case_and_accents(raw: str, folded: str) -> None:
    assert fold_name(raw) == folded


def test_nothing_in_common_is_no_candidate() -> None:
    assert score_candidate(PENDING, STRANGER, 0.1) is None


def test_the_pending_user_is_never_its_own_candidate() -> None:
    assert score_candidate(PENDING, PENDING, 1.0) is None


def test_same_name_ignores_case_and_accents() -> None:
    found = score_candidate(PENDING, _candidate(first_name="JOSE", last_name="garcia"), 1.0)
    assert found is not None
    assert found.reasons == (MatchReason.SAME_NAME,)  # not also SIMILAR_NAME
    assert found.score == pytest.approx(0.5)


def test_similar_name_counts_from_the_threshold_and_scales_with_similarity() -> None:
    below = score_candidate(PENDING, _candidate(first_name="Josef"), 0.44)
    at = score_candidate(PENDING, _candidate(first_name="Josef"), 0.45)
    high = score_candidate(PENDING, _candidate(first_name="Josef"), 0.9)
    assert below is None
    assert at is not None and at.reasons == (MatchReason.SIMILAR_NAME,)
    assert at.score == pytest.approx(0.3 * 0.45)
    assert high is not None and high.score == pytest.approx(0.27)


def test_same_email_local_part_at_another_domain() -> None:
    found = score_candidate(PENDING, _candidate(email="Jose.Garcia@uni.edu"), 0.0)
    assert found is not None
    assert found.reasons == (MatchReason.SAME_EMAIL_LOCAL_PART,)
    assert found.score == pytest.approx(0.35)


def test_same_auth_identifier() -> None:
    pending = replace(PENDING, auth_identifier=" s-9 ")
    found = score_candidate(pending, STRANGER, 0.0)
    assert found is not None
    assert found.reasons == (MatchReason.SAME_AUTH_IDENTIFIER,)
    assert found.score == pytest.approx(0.6)


def test_blank_auth_identifiers_never_match() -> None:
    assert score_candidate(PENDING, _candidate(auth_identifier=""), 0.0) is None
    assert (
        score_candidate(replace(PENDING, auth_identifier="  "), _candidate(auth_identifier=" "), 0.0) is None
    )


def test_blank_names_never_match_as_same_name() -> None:
    pending = replace(PENDING, first_name="", last_name="")
    assert score_candidate(pending, _candidate(first_name="", last_name=""), 0.0) is None


def test_reasons_combine_and_the_score_stays_at_most_one() -> None:
    everything = _candidate(
        first_name="Jose", last_name="Garcia", email="jose.garcia@uni.edu", auth_identifier="S-1"
    )
    found = score_candidate(replace(PENDING, auth_identifier="S-1"), everything, 1.0)
    assert found is not None
    assert set(found.reasons) == {
        MatchReason.SAME_AUTH_IDENTIFIER,
        MatchReason.SAME_NAME,
        MatchReason.SAME_EMAIL_LOCAL_PART,
    }
    assert found.score == pytest.approx(1 - 0.4 * 0.5 * 0.65)
    assert 0 < found.score <= 1


@pytest.mark.parametrize("similarity", [float("nan"), -3.0, 7.0])
def test_out_of_range_similarity_is_clamped(similarity: float) -> None:
    found = score_candidate(PENDING, _candidate(first_name="Josef"), similarity)
    assert found is None or 0 <= found.score <= 0.3


def test_more_reasons_score_higher() -> None:
    name_only = score_candidate(PENDING, _candidate(first_name="Jose", last_name="Garcia"), 1.0)
    name_and_mail = score_candidate(
        PENDING, _candidate(first_name="Jose", last_name="Garcia", email="jose.garcia@uni.edu"), 1.0
    )
    assert name_only is not None and name_and_mail is not None
    assert name_and_mail.score > name_only.score


def test_rank_puts_the_best_first_and_breaks_ties_by_name_then_id() -> None:
    def cand(user_id: str, first: str, last: str, score: float) -> Candidate:
        user = _candidate(id=user_id, first_name=first, last_name=last)
        return Candidate(user, score, (MatchReason.SIMILAR_NAME,))

    ranked = rank(
        [
            cand("c-4", "Zed", "Adams", 0.5),
            cand("c-2", "Ann", "Brown", 0.5),
            cand("c-1", "Ann", "Adams", 0.9),
            cand("c-3", "Émile", "Adams", 0.5),
            cand("c-0", "Emile", "Adams", 0.5),
        ]
    )
    assert [c.user.id for c in ranked] == ["c-1", "c-0", "c-3", "c-4", "c-2"]
    assert rank([]) == []
