"""Whether a new job is guarded (product.md "Guarded jobs"): it may change sensitive fields or
archive students (``JobSpec.guardable``) and its school's ``change_threshold_percent`` is above 0
when the job is created. Decided once, by whoever creates the job (the consumer on a connector's
first message, SubmitFile, RetryFailedRows), and stored with it; the threshold that decides whether
the job is HELD is read again when its preview is complete.

Identity is asked only for guardable jobs (an ordinary sync never waits for this). The consumer
waits an outage out; an RPC (``wait=False``) answers UNAVAILABLE instead of hanging. A school
identity does not know is guarded (its rows fail SCHOOL_NOT_FOUND anyway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from import_service.domain.jobs import JobSpec
from import_service.service.ports import BatchRefused, IdentityUnavailable, JobsIdentity
from import_service.service.retrying import Backoff, until_answered
from shared.errors import Reason, RollcallError


class JobGuard:
    def __init__(self, identity: JobsIdentity, backoff: Backoff) -> None:
        self._identity = identity
        self._backoff = backoff

    async def guarded(self, spec: JobSpec, *, wait: bool = True) -> bool:
        if not spec.guardable:
            return False
        try:
            if wait:
                threshold, _ = await self.figures(spec.school_id)
            else:
                threshold, _ = await self._identity.import_guard(spec.school_id)
        except BatchRefused:
            return True
        except IdentityUnavailable:
            raise RollcallError(Reason.UNAVAILABLE, "identity service unavailable; try again") from None
        return threshold > 0

    async def figures(self, school_id: str) -> tuple[int, int]:
        """(threshold percent, school students), waiting out identity outages."""
        call: Callable[[], Awaitable[tuple[int, int]]] = lambda: self._identity.import_guard(school_id)  # noqa: E731
        return await until_answered(call, (IdentityUnavailable,), self._backoff, "identity guard")
