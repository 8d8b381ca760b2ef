"""Domain errors → gRPC status with ``google.rpc.ErrorInfo`` (+ ``BadRequest``) details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from shared.errors import Reason, RollcallError

ERROR_DOMAIN = "rollcall"

_STATUS: dict[Reason, grpc.StatusCode] = {
    Reason.EMAIL_TAKEN: grpc.StatusCode.ALREADY_EXISTS,
    Reason.USERNAME_TAKEN: grpc.StatusCode.ALREADY_EXISTS,
    Reason.INVALID_EMAIL: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.EMAIL_CONFUSABLE: grpc.StatusCode.ALREADY_EXISTS,
    Reason.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.USER_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.SCHOOL_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.JOB_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.NOT_PENDING: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NOT_SAME_SCHOOL: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.FILE_UPDATES_MUST_BE_DISABLED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NO_PENDING_EMAIL_CHANGE: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.CODE_INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.CODE_EXPIRED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.CODE_ATTEMPTS_EXCEEDED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.INVALID_CREDENTIALS: grpc.StatusCode.UNAUTHENTICATED,
    Reason.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Reason.NOT_STAFF_OF_SCHOOL: grpc.StatusCode.PERMISSION_DENIED,
    Reason.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Reason.REQUEST_ID_REUSED: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.INTERNAL: grpc.StatusCode.INTERNAL,
    Reason.AUTH_IDENTIFIER_TAKEN: grpc.StatusCode.ALREADY_EXISTS,
    Reason.USER_ARCHIVED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.USER_PENDING: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.USER_DECLINED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.SSO_NOT_ENABLED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.JOB_NOT_UNDOABLE: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.JOB_NOT_HELD: grpc.StatusCode.FAILED_PRECONDITION,
}


def status_code_for(reason: Reason) -> grpc.StatusCode:
    return _STATUS.get(reason, grpc.StatusCode.INTERNAL)


def to_grpc_status(error: RollcallError) -> grpc.Status:
    """The status (code, message, details trailer) for a domain error."""
    code = status_code_for(error.reason)
    info = error_details_pb2.ErrorInfo(
        reason=str(error.reason), domain=ERROR_DOMAIN, metadata=dict(error.metadata)
    )
    details = [_pack(info)]
    if error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
        details.append(_pack(bad))
    proto = status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message, details=details)
    return rpc_status.to_status(proto)


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def error_info(rpc_error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """Client side: the ErrorInfo of a failed call, if it carries one."""
    status = rpc_status.from_call(rpc_error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def field_violations(rpc_error: grpc.aio.AioRpcError | grpc.RpcError) -> list[tuple[str, str]]:
    """Client side: the BadRequest field violations of a failed call."""
    status = rpc_status.from_call(rpc_error)
    found: list[tuple[str, str]] = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.extend((v.field, v.description) for v in bad.field_violations)
    return found
