"""Tracing with OpenTelemetry (issue 10): one trace from a connector's message to identity's SQL.

Off unless ``ROLLCALL_OTLP_ENDPOINT`` is set, and then at no cost: nothing of OpenTelemetry is
imported, no interceptor is added to a server or channel, asyncpg is not patched, the publisher and
the consumer take their plain paths (``enabled()`` is one global read). ``configure(endpoint,
service)`` turns it on for the process, exporting over OTLP/gRPC in a background thread (the SDK's
batch span processor; ``OTEL_BSP_*`` and ``OTEL_TRACES_SAMPLER`` apply as the SDK documents them).

What is traced once on:

- gRPC: a SERVER span per RPC (health and reflection left out) and a CLIENT span per call the
  import service (and the CLI) makes, the context carried in gRPC metadata (``traceparent``) —
  opentelemetry-instrumentation-grpc's aio interceptors, added to our servers and channels;
- PostgreSQL: a CLIENT span per statement (opentelemetry-instrumentation-asyncpg; the SQL text,
  never the parameters), children of whatever span is current (identity's RPC, import's batch);
- RabbitMQ, by hand (the publisher goes straight to aiormq, which no instrumentation sees):
  ``producer_span`` around every publish of ``shared.amqp.publisher`` (rows, ends, dead letters),
  which writes the W3C ``traceparent``/``tracestate`` of the span into the message's headers;
  ``consumer_span`` per delivery, child of the context the headers carry (a connector may send its
  own, or none: the delivery then starts a trace); ``batch`` around each ApplyStudentRows batch of
  the consumer: a batch joins many messages, so it is the child of the first message's delivery span
  and links to the others' (at most the SDK's link limit, 128 by default);
- logs: each structlog line written while a span is current carries ``trace_id`` and ``span_id``.

``install(service, exporter)`` is the same with any exporter (tests use the SDK's in-memory one);
``uninstall()`` undoes it (tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # only for annotations: importing this module imports nothing of OpenTelemetry
    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import Getter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import SpanContext, Tracer

T = TypeVar("T")
SERVICE_IDENTITY = "rollcall-identity"
SERVICE_IMPORT = "rollcall-import"
SERVICE_CLI = "rollcall-cli"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
INSTRUMENTATION = "rollcall"
UNTRACED_SERVICES = ("grpc.health.", "grpc.reflection.")


@dataclass
class _Tracing:
    service: str
    provider: TracerProvider
    tracer: Tracer
    sql: bool


_state: _Tracing | None = None


def enabled() -> bool:
    """Whether this process traces (``configure`` or ``install`` was called)."""
    return _state is not None


def configure(endpoint: str | None, service: str, *, sql: bool = True) -> bool:
    """Trace this process as ``service`` and export over OTLP/gRPC to ``endpoint``
    (``http://collector:4317``; ``https://`` for TLS). None or "": tracing stays off and nothing is
    installed. Once on, later calls change nothing. True when tracing is on."""
    if _state is not None or not endpoint:
        return _state is not None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    install(service, OTLPSpanExporter(endpoint=endpoint), sql=sql)
    return True


def install(service: str, exporter: SpanExporter, *, sql: bool = True, batch: bool = True) -> TracerProvider:
    """Turn tracing on in this process: spans of ``service`` go to ``exporter`` (through a batch
    span processor, or one span at a time when ``batch`` is False); with ``sql``, asyncpg is
    instrumented. The provider is this module's own (not the global one, which is set only once a
    process), so tests can install and uninstall."""
    global _state
    if _state is not None:
        raise RuntimeError(f"tracing is already on for {_state.service}")
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    from shared import logging as rollcall_logging

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    if sql:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().instrument(tracer_provider=provider)
    _state = _Tracing(service, provider, provider.get_tracer(INSTRUMENTATION), sql)
    rollcall_logging.enable_trace_ids()
    return provider


def uninstall() -> None:
    """Tracing off again (tests): spans still buffered are exported, asyncpg unpatched."""
    global _state
    state, _state = _state, None
    if state is None:
        return
    from shared import logging as rollcall_logging

    rollcall_logging.disable_trace_ids()
    if state.sql:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().uninstrument()
    state.provider.shutdown()


def flush(timeout_seconds: float = 10.0) -> bool:
    """Export every span ended so far (a short-lived process before it exits)."""
    return _state is None or _state.provider.force_flush(int(timeout_seconds * 1000))


# --- gRPC ---------------------------------------------------------------------------------------


def _traced_method(details: Any) -> bool:
    method = details.method.decode() if isinstance(details.method, bytes) else str(details.method)
    return not method.lstrip("/").startswith(UNTRACED_SERVICES)


def server_interceptors() -> list[Any]:
    """Interceptors to put first on a grpc.aio server: [] when tracing is off."""
    if _state is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=_state.provider, filter_=_traced_method)]


def client_interceptors() -> list[Any] | None:
    """Interceptors for a grpc.aio channel (``interceptors=``): None when tracing is off."""
    if _state is None:
        return None
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    interceptors: list[Any] = aio_client_interceptors(tracer_provider=_state.provider, filter_=_traced_method)
    return interceptors


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """No span for what runs inside (health probes: a ``SELECT 1`` every two seconds is noise)."""
    if _state is None:
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


# --- AMQP headers -------------------------------------------------------------------------------


def header_value(carrier: Mapping[str, Any], key: str) -> str | None:
    """A W3C header from AMQP headers: a value may arrive as bytes (a long string the client did not
    decode), a key in any case."""
    value = carrier.get(key)
    if value is None:
        value = next((v for k, v in carrier.items() if isinstance(k, str) and k.lower() == key), None)
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii", "replace")
    return value if isinstance(value, str) else None


_GETTER: Getter[Mapping[str, Any]] | None = None


def _getter() -> Getter[Mapping[str, Any]]:
    global _GETTER
    if _GETTER is None:
        from opentelemetry.propagators.textmap import Getter

        class HeaderGetter(Getter[Mapping[str, Any]]):
            def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
                value = header_value(carrier, key)
                return None if value is None else [value]

            def keys(self, carrier: Mapping[str, Any]) -> list[str]:
                return [str(k) for k in carrier]

        _GETTER = HeaderGetter()
    return _GETTER


def inject(headers: Mapping[str, Any] | None, context: Context | None = None) -> dict[str, Any] | None:
    """``headers`` with the ``traceparent`` (and ``tracestate``) of the span current in ``context``
    (default: now), as a new dict; a plain copy when there is no valid span. A ``traceparent``
    already there is replaced: the message is this span's. (OpenTelemetry's API only: callable
    with tracing off, though the publisher calls it only when on.)"""
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not get_current_span(context).get_span_context().is_valid:
        return dict(headers) if headers is not None else None
    carrier: dict[str, Any] = {
        k: v for k, v in (headers or {}).items() if k.lower() not in (TRACEPARENT, TRACESTATE)
    }
    TraceContextTextMapPropagator().inject(carrier, context)
    return carrier


def extract(headers: Mapping[str, Any] | None) -> Context:
    """The context the W3C headers of a message carry (an empty one when they carry none, or an
    invalid one: the message then starts a trace of its own)."""
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not headers:
        return Context()
    return TraceContextTextMapPropagator().extract(headers, Context(), getter=_getter())


# --- spans of our own -------------------------------------------------------------------------


@contextlib.contextmanager
def span(name: str, **attributes: str | int | bool) -> Iterator[None]:
    """An INTERNAL span around a piece of work (the CLI's whole file); nothing when off."""
    if _state is None:
        yield
        return
    with _state.tracer.start_as_current_span(name, attributes=_attributes(attributes)):
        yield


@contextlib.contextmanager
def producer_span(exchange: str, routing_key: str, message_id: str) -> Iterator[None]:
    """A PRODUCER span around one publish (``inject`` inside it writes its context)."""
    if _state is None:
        yield
        return
    from opentelemetry.trace import SpanKind

    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation": "publish",
        "messaging.destination.name": exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.id": message_id,
    }
    kind = SpanKind.PRODUCER
    with _state.tracer.start_as_current_span(f"publish {exchange}", kind=kind, attributes=attributes):
        yield


@contextlib.contextmanager
def consumer_span(
    headers: Mapping[str, Any] | None, queue: str, routing_key: str, message_id: str
) -> Iterator[SpanContext | None]:
    """A CONSUMER span for one delivery, child of the context its headers carry; yields the span's
    context for the batches that take the message's rows (None when off)."""
    if _state is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation": "receive",
        "messaging.destination.name": queue,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.id": message_id,
    }
    with _state.tracer.start_as_current_span(
        f"receive {queue}", context=extract(headers), kind=SpanKind.CONSUMER, attributes=attributes
    ) as current:
        yield current.get_span_context()


def batch(
    work: Coroutine[Any, Any, T], job_id: str, rows: int, deliveries: Iterable[object]
) -> Coroutine[Any, Any, T]:
    """``work`` (a batch of ``rows`` rows taken from ``deliveries``) inside a span that is the child
    of the first delivery's context and links to the others' (``trace_context`` of each delivery,
    set by the consumer). ``work`` itself when tracing is off."""
    if _state is None:
        return work
    contexts: list[SpanContext] = []
    seen: set[int] = set()
    for delivery in deliveries:
        context = getattr(delivery, "trace_context", None)
        if context is not None and id(delivery) not in seen:
            seen.add(id(delivery))
            contexts.append(context)
    return _in_batch_span(_state.tracer, work, job_id, rows, contexts)


async def _in_batch_span(
    tracer: Tracer, work: Coroutine[Any, Any, T], job_id: str, rows: int, contexts: list[SpanContext]
) -> T:
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, NonRecordingSpan, SpanKind, set_span_in_context

    parent = set_span_in_context(NonRecordingSpan(contexts[0]), Context()) if contexts else Context()
    attributes: dict[str, str | int] = {
        "rollcall.job_id": job_id,
        "rollcall.rows": rows,
        "messaging.operation": "process",
        "messaging.batch.message_count": len(contexts),
    }
    links = [Link(c) for c in contexts[1:]]
    with tracer.start_as_current_span(
        "import.batch", context=parent, kind=SpanKind.CONSUMER, links=links, attributes=attributes
    ):
        return await work


def _attributes(values: Mapping[str, str | int | bool]) -> dict[str, str | int | bool]:
    return {f"rollcall.{k}": v for k, v in values.items()}
