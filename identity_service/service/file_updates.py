"""The file-updates switch (product rule 7): staff turn student-file updates off or on for a student."""

from __future__ import annotations

from identity_service.domain.fields import Violations
from identity_service.domain.users import User, ensure_student
from identity_service.service import access, replay
from identity_service.service.audit_trail import changed, record
from identity_service.service.idempotency import once, request_key
from identity_service.service.inputs import required_id
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.grpc_kit.auth import Caller


async def set_file_updates(
    new_uow: UnitOfWorkFactory, caller: Caller, user_id: str, enabled: bool, request_id: str
) -> User:
    """``enabled`` false: no student file changes this student any more. No change, no audit event."""
    found = Violations()
    target = required_id(user_id, "user_id", found)
    key = request_key(caller, "SetFileUpdates", request_id, found, user_id=user_id, enabled=enabled)
    found.raise_if_any()

    async def change(uow: UnitOfWork) -> User:
        user = await access.user_for_staff(uow, caller, target, for_update=True)
        ensure_student(user)
        if user.file_updates_disabled == (not enabled):
            return user
        updated = await uow.users.set_file_updates_disabled(user.id, not enabled)
        action = "user.file_updates_enabled" if enabled else "user.file_updates_disabled"
        await record(uow, caller, action, updated, changed(user, updated))
        return updated

    return await once(new_uow, key, replay.USER, change)
