"""Duplicate candidates for a pending student (product rule 6): who is probably the same person.

The database proposes candidates (students of the same school) with a trigram name similarity; this
module decides which of them count, why, and how strongly. Each reason has a weight; the score is
``1 - Π(1 - weight)``, so more reasons give a higher score that never exceeds 1.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from identity_service.domain.emails import local_part
from identity_service.domain.users import User

SAME_AUTH_IDENTIFIER_WEIGHT = 0.6
SAME_NAME_WEIGHT = 0.5
SIMILAR_NAME_WEIGHT = 0.3  # times the similarity
SAME_EMAIL_LOCAL_PART_WEIGHT = 0.35
SIMILAR_NAME_THRESHOLD = 0.45

_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


class MatchReason(StrEnum):
    SAME_NAME = "SAME_NAME"
    SIMILAR_NAME = "SIMILAR_NAME"
    SAME_EMAIL_LOCAL_PART = "SAME_EMAIL_LOCAL_PART"
    SAME_AUTH_IDENTIFIER = "SAME_AUTH_IDENTIFIER"


@dataclass(frozen=True)
class Candidate:
    """An existing student who is probably the pending one; ``score`` in 0..1, ``reasons`` never empty."""

    user: User
    score: float
    reasons: tuple[MatchReason, ...]


def fold_name(text: str) -> str:
    """Case- and accent-insensitive form: ``José  O'Brien-Smith`` → ``jose o brien smith``."""
    decomposed = unicodedata.normalize("NFKD", text)
    without_marks = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _NOT_LETTER_OR_DIGIT.sub(" ", without_marks.casefold()).strip()


def name_key(user: User) -> str:
    return fold_name(f"{user.first_name} {user.last_name}")


def score_candidate(pending: User, candidate: User, name_similarity: float) -> Candidate | None:
    """Score ``candidate`` against ``pending``; None when nothing matches (or it is the pending user)."""
    if candidate.id == pending.id:
        return None
    weighted = list(_match_reasons(pending, candidate, _clamp(name_similarity)))
    if not weighted:
        return None
    remaining = 1.0
    for _, weight in weighted:
        remaining *= 1.0 - weight
    return Candidate(candidate, round(1.0 - remaining, 6), tuple(reason for reason, _ in weighted))


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Best first; equal scores by folded name (last, first), then id, so the order is stable."""
    return sorted(
        candidates,
        key=lambda c: (-c.score, fold_name(c.user.last_name), fold_name(c.user.first_name), c.user.id),
    )


def _match_reasons(pending: User, candidate: User, similarity: float) -> Iterable[tuple[MatchReason, float]]:
    pending_auth = pending.auth_identifier.strip().casefold()
    if pending_auth and pending_auth == candidate.auth_identifier.strip().casefold():
        yield MatchReason.SAME_AUTH_IDENTIFIER, SAME_AUTH_IDENTIFIER_WEIGHT
    pending_name = name_key(pending)
    if pending_name and pending_name == name_key(candidate):
        yield MatchReason.SAME_NAME, SAME_NAME_WEIGHT
    elif similarity >= SIMILAR_NAME_THRESHOLD:
        yield MatchReason.SIMILAR_NAME, SIMILAR_NAME_WEIGHT * similarity
    pending_local = local_part(pending.email).casefold()
    if pending_local and pending_local == local_part(candidate.email).casefold():
        yield MatchReason.SAME_EMAIL_LOCAL_PART, SAME_EMAIL_LOCAL_PART_WEIGHT


def _clamp(similarity: float) -> float:
    if math.isnan(similarity):
        return 0.0
    return min(1.0, max(0.0, similarity))
