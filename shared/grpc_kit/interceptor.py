"""One interceptor for every RPC: authenticate, check the role table, map errors, log, measure.

Servicers stay thin: they read ``current_caller()`` and raise ``RollcallError``; this module turns
the error into a status with ErrorInfo. Health checks and reflection pass without a token.

A request that does not decode (a string field that is not UTF-8, bytes that are no message) is
INVALID_ARGUMENT naming the field where it can (``wire.py``), never grpc's UNKNOWN with the parser's
text. Anything else unexpected is the last resort: logged with its traceback, answered INTERNAL
with a generic message (never the exception's text). Bad input is meant never to get that far.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError

from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller, TokenAuthenticator, bind_caller, require_role, unbind_caller
from shared.grpc_kit.errors import to_grpc_status
from shared.grpc_kit.metrics import RPC_LATENCY, RPCS
from shared.grpc_kit.wire import undecodable_request
from shared.logging import get_logger
from shared.pg import is_unreachable
from shared.settings import Role

log = get_logger("rpc")
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
AccessRules = Mapping[str, frozenset[Role]]
INTERNAL_MESSAGE = "internal error; it has been logged"
Deserializer = Callable[[bytes], Any]


@dataclass(frozen=True)
class Undecodable:
    """What the deserializer hands on instead of raising: the refusal to answer."""

    error: RollcallError


def tolerant(deserializer: Deserializer | None) -> Deserializer | None:
    """``deserializer`` that returns ``Undecodable`` instead of raising, so the RPC can refuse the
    request with INVALID_ARGUMENT (grpc itself would answer UNKNOWN with the parser's message)."""
    if deserializer is None:
        return None
    message_class = getattr(deserializer, "__self__", None)
    descriptor: Descriptor | None = getattr(message_class, "DESCRIPTOR", None)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, UnicodeDecodeError, ValueError):
            return Undecodable(undecodable_request(descriptor, data))

    return deserialize


def _decoded(request: Any) -> Any:
    if isinstance(request, Undecodable):
        raise request.error
    return request


async def _decoded_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield _decoded(request)


class _Meter:
    """One method's metrics children and log name, looked up once (``labels()`` takes a lock and
    checks its arguments on every call)."""

    def __init__(self, method: str) -> None:
        self.name = method.rsplit("/", 1)[-1]
        self.latency = RPC_LATENCY.labels(self.name)
        self._counts: dict[grpc.StatusCode, Any] = {}

    def count(self, code: grpc.StatusCode) -> Any:
        child = self._counts.get(code)
        if child is None:
            child = self._counts[code] = RPCS.labels(self.name, code.name)
        return child


class RollcallInterceptor(grpc.aio.ServerInterceptor):
    """``rules`` maps a full method name (``/pkg.Service/Method``) to the roles allowed to call it.

    A method's wrapped handler is built on its first call and kept (the servicers' handlers do not
    change while the server runs: a handler other than the one wrapped is wrapped afresh)."""

    def __init__(self, authenticator: TokenAuthenticator, rules: AccessRules) -> None:
        self._auth = authenticator
        self._rules = rules
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None:
            return handler
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = handler if method.startswith(OPEN_SERVICES) else self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        deserialize = tolerant(handler.request_deserializer)
        meter = _Meter(method)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, meter, handler.unary_unary, streamed=False),
                deserialize,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, meter, handler.stream_unary, streamed=True),
                deserialize,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, meter, handler.unary_stream, streamed=False),
                deserialize,
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(method, meter, handler.stream_stream, streamed=True),
            deserialize,
            handler.response_serializer,
        )

    def _admit(self, method: str, context: grpc.aio.ServicerContext) -> Caller:
        caller = self._auth.authenticate(context.invocation_metadata() or ())
        allowed = self._rules.get(method)
        if allowed is None:
            raise RollcallError(Reason.PERMISSION_DENIED, f"{method} is not open to any role")
        require_role(caller, allowed, method.rsplit("/", 1)[-1])
        return caller

    def _unary(
        self, method: str, meter: _Meter, behavior: Callable[..., Any], *, streamed: bool
    ) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            caller: Caller | None = None
            code = grpc.StatusCode.OK
            try:
                caller = self._admit(method, context)
                token = bind_caller(caller)
                try:
                    incoming = _decoded_stream(request) if streamed else _decoded(request)
                    return await behavior(incoming, context)
                finally:
                    unbind_caller(token)
            except Exception as exc:
                refusal = _refusal(exc, context)
                if refusal is None:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                code = refusal.code
                await context.abort(refusal.code, refusal.details, refusal.trailing_metadata)
            finally:
                _record(meter, code, started, caller, request)

        return wrapper

    def _streaming(
        self, method: str, meter: _Meter, behavior: Callable[..., Any], *, streamed: bool
    ) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            caller: Caller | None = None
            code = grpc.StatusCode.OK
            try:
                caller = self._admit(method, context)
                token = bind_caller(caller)
                try:
                    incoming = _decoded_stream(request) if streamed else _decoded(request)
                    async for item in behavior(incoming, context):
                        yield item
                finally:
                    unbind_caller(token)
            except Exception as exc:
                refusal = _refusal(exc, context)
                if refusal is None:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                code = refusal.code
                await context.abort(refusal.code, refusal.details, refusal.trailing_metadata)
            finally:
                _record(meter, code, started, caller, request)

        return wrapper


def _refusal(exc: Exception, context: grpc.aio.ServicerContext) -> grpc.Status | None:
    """The status to answer: a domain error's; UNAVAILABLE when the database could not be reached
    (so callers wait and retry instead of treating it as a bug); None when the servicer already
    aborted; else INTERNAL with a generic message, the exception logged with its traceback."""
    if isinstance(exc, RollcallError):
        return to_grpc_status(exc)
    if isinstance(exc, grpc.aio.AbortError):
        return None
    if is_unreachable(exc):
        log.warning("rpc.database_unreachable", error=type(exc).__name__)
        # metadata "outage": callers (the import service) wait this out rather than split a batch
        unreachable = RollcallError(
            Reason.UNAVAILABLE, "the database is unreachable; try again", metadata={"outage": "database"}
        )
        return to_grpc_status(unreachable)
    if context.done():
        return None
    log.exception("rpc.crashed", error=type(exc).__name__)
    return to_grpc_status(RollcallError(Reason.INTERNAL, INTERNAL_MESSAGE))


def _record(
    meter: _Meter, code: grpc.StatusCode, started: float, caller: Caller | None, request: Any
) -> None:
    elapsed = time.perf_counter() - started
    meter.count(code).inc()
    meter.latency.observe(elapsed)
    log.info(
        "rpc",
        method=meter.name,
        status=code.name,
        ms=round(elapsed * 1000, 2),
        client=caller.client if caller else None,
        actor=caller.actor_id if caller else None,
        request_id=getattr(request, "request_id", None) or None,
    )
