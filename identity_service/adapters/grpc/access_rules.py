"""The role table (api.md, "who"): which client roles may call each RPC.

The interceptor refuses any other role with PERMISSION_DENIED before a servicer runs; the finer
staff-of-school rule (the actor) is checked by the use cases (``service/access.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.proto.rollcall.identity.v1 import identity_service_pb2
from shared.settings import Role

SERVICE_NAME = "rollcall.identity.v1.IdentityService"

_ADMIN = frozenset({Role.ADMIN})
_PLATFORM = frozenset({Role.ADMIN, Role.PLATFORM})
_IMPORTER = frozenset({Role.ADMIN, Role.IMPORTER})
_ANY = frozenset(Role)

ROLES_BY_METHOD: Mapping[str, frozenset[Role]] = {
    "CreateSchool": _ADMIN,
    "GetSchool": _ANY,
    "UpdateSchool": _PLATFORM,
    "CreateUser": _PLATFORM,
    "SignUpStudent": _PLATFORM,
    "ResolveSignIn": _PLATFORM,
    "Authenticate": _PLATFORM,
    "GetUser": _ANY,
    "LookupUserByEmail": _ANY,
    "SearchUsers": _PLATFORM,
    "ListPendingStudents": _PLATFORM,
    "FindDuplicateCandidates": _PLATFORM,
    "ApproveStudent": _PLATFORM,
    "DeclineStudent": _PLATFORM,
    "BatchApproveStudents": _PLATFORM,
    "BatchDeclineStudents": _PLATFORM,
    "DeletePendingStudent": _PLATFORM,
    "MergePendingStudent": _PLATFORM,
    "RequestEmailChange": _PLATFORM,
    "ConfirmEmailChange": _PLATFORM,
    "CancelEmailChange": _PLATFORM,
    "SetFileUpdates": _PLATFORM,
    "ApplyStudentRows": _IMPORTER,
    "ListAuditEvents": _PLATFORM,
    "ResolveSsoSignIn": _PLATFORM,
    "ArchiveStudentsNotInJob": _IMPORTER,
    "UndoStudentRows": _IMPORTER,
    "GetImportGuard": _IMPORTER,
}

ACCESS_RULES: Mapping[str, frozenset[Role]] = {
    f"/{SERVICE_NAME}/{method}": roles for method, roles in ROLES_BY_METHOD.items()
}


def _check_every_rpc_has_a_rule() -> None:
    service = identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"]
    declared = {method.name for method in service.methods}
    if declared != set(ROLES_BY_METHOD):
        raise RuntimeError(f"role table and IdentityService differ: {declared ^ set(ROLES_BY_METHOD)}")


_check_every_rpc_has_a_rule()
