"""One interceptor for every RPC: authenticate, check the role table, map errors, log, measure.

Servicers stay thin: they read ``current_caller()`` and raise ``RollcallError``; this module turns
the error into a status with ErrorInfo. Health checks and reflection pass without a token.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller, TokenAuthenticator, bind_caller, require_role, unbind_caller
from shared.grpc_kit.errors import to_grpc_status
from shared.grpc_kit.metrics import RPC_LATENCY, RPCS
from shared.logging import get_logger
from shared.pg import is_unreachable
from shared.settings import Role

log = get_logger("rpc")
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
AccessRules = Mapping[str, frozenset[Role]]


class RollcallInterceptor(grpc.aio.ServerInterceptor):
    """``rules`` maps a full method name (``/pkg.Service/Method``) to the roles allowed to call it."""

    def __init__(self, authenticator: TokenAuthenticator, rules: AccessRules) -> None:
        self._auth = authenticator
        self._rules = rules

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(method, handler.stream_stream),
            handler.request_deserializer,
            handler.response_serializer,
        )

    def _admit(self, method: str, context: grpc.aio.ServicerContext) -> Caller:
        caller = self._auth.authenticate(tuple(context.invocation_metadata() or ()))
        allowed = self._rules.get(method)
        if allowed is None:
            raise RollcallError(Reason.PERMISSION_DENIED, f"{method} is not open to any role")
        require_role(caller, allowed, method.rsplit("/", 1)[-1])
        return caller

    def _unary(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            caller: Caller | None = None
            code = grpc.StatusCode.OK
            try:
                caller = self._admit(method, context)
                token = bind_caller(caller)
                try:
                    return await behavior(request, context)
                finally:
                    unbind_caller(token)
            except Exception as exc:
                refusal = _refusal(exc)
                if refusal is None:
                    code = _code_of(exc, context)
                    raise
                code = refusal.code
                await context.abort(refusal.code, refusal.details, refusal.trailing_metadata)
            finally:
                _record(method, code, started, caller, request)

        return wrapper

    def _streaming(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            caller: Caller | None = None
            code = grpc.StatusCode.OK
            try:
                caller = self._admit(method, context)
                token = bind_caller(caller)
                try:
                    async for item in behavior(request, context):
                        yield item
                finally:
                    unbind_caller(token)
            except Exception as exc:
                refusal = _refusal(exc)
                if refusal is None:
                    code = _code_of(exc, context)
                    raise
                code = refusal.code
                await context.abort(refusal.code, refusal.details, refusal.trailing_metadata)
            finally:
                _record(method, code, started, caller, request)

        return wrapper


def _refusal(exc: Exception) -> grpc.Status | None:
    """The status to answer for a domain error, or UNAVAILABLE when the database could not be
    reached (so callers wait and retry instead of treating it as a bug); None for anything else."""
    if isinstance(exc, RollcallError):
        return to_grpc_status(exc)
    if is_unreachable(exc):
        log.warning("rpc.database_unreachable", error=type(exc).__name__)
        # metadata "outage": callers (the import service) wait this out rather than split a batch
        unreachable = RollcallError(
            Reason.UNAVAILABLE, "the database is unreachable; try again", metadata={"outage": "database"}
        )
        return to_grpc_status(unreachable)
    return None


def _code_of(exc: Exception, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    if isinstance(exc, grpc.aio.AbortError):
        return context.code() or grpc.StatusCode.UNKNOWN
    log.exception("rpc.crashed")
    return grpc.StatusCode.UNKNOWN


def _record(method: str, code: grpc.StatusCode, started: float, caller: Caller | None, request: Any) -> None:
    elapsed = time.perf_counter() - started
    name = method.rsplit("/", 1)[-1]
    RPCS.labels(name, code.name).inc()
    RPC_LATENCY.labels(name).observe(elapsed)
    log.info(
        "rpc",
        method=name,
        status=code.name,
        ms=round(elapsed * 1000, 2),
        client=caller.client if caller else None,
        actor=caller.actor_id if caller else None,
        request_id=getattr(request, "request_id", None) or None,
    )
