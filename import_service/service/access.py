"""Who may see and act on a school's jobs (api.md: staff actors see only their school's jobs).

The role table (which role may call which RPC) is the interceptor's; this is the per-school rule:
admin and importer clients pass; a platform call needs an actor who is ACTIVE STAFF of the school.
"""

from __future__ import annotations

from import_service.service.ports import IdentityUnavailable, StaffDirectory
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller
from shared.settings import Role


class SchoolAccess:
    def __init__(self, staff: StaffDirectory) -> None:
        self._staff = staff

    async def require(self, caller: Caller, school_id: str) -> None:
        """Raises NOT_STAFF_OF_SCHOOL unless ``caller`` may work with ``school_id``'s jobs."""
        if caller.role in (Role.ADMIN, Role.IMPORTER):
            return
        if caller.actor_id is None:
            raise RollcallError(Reason.NOT_STAFF_OF_SCHOOL, "a staff actor (x-rollcall-actor) is required")
        try:
            school = await self._staff.active_staff_school(caller.actor_id)
        except IdentityUnavailable:
            raise RollcallError(Reason.UNAVAILABLE, "identity service unavailable; try again") from None
        if school != school_id:
            raise RollcallError(Reason.NOT_STAFF_OF_SCHOOL, "the actor is not active staff of this school")
