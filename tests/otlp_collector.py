"""A tiny OTLP/gRPC trace collector for tests and benchmarks: it keeps (or only counts) the spans
the services export to it.

In a test: ``async with OtlpCollector(keep=True) as collector:`` then point the services'
``ROLLCALL_OTLP_ENDPOINT`` at ``collector.endpoint`` and read ``collector.spans()``. For a benchmark,
on its own: ``python -m tests.otlp_collector --port 4317`` counts what it receives and prints the
totals on SIGINT/SIGTERM (``--keep`` is not needed there: counting is cheaper).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as pb_grpc

from tests.process_stack import free_port


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, flattened: ids as W3C hex, attributes as plain values."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]  # (trace id, span id) of each link


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def flatten(request: pb.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=service,
                        name=span.name,
                        kind=span.kind,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                    )
                )
    return spans


@dataclass
class _TraceService(pb_grpc.TraceServiceServicer):
    keep: bool
    requests: int = 0
    span_count: int = 0
    received: list[ReceivedSpan] = field(default_factory=list)

    async def Export(self, request: pb.ExportTraceServiceRequest, context: Any) -> Any:
        self.requests += 1
        if self.keep:
            spans = flatten(request)
            self.received.extend(spans)
            self.span_count += len(spans)
        else:
            self.span_count += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        return pb.ExportTraceServiceResponse()


class OtlpCollector:
    """An OTLP/gRPC trace service on 127.0.0.1 (plaintext), in this process's event loop."""

    def __init__(self, port: int = 0, *, keep: bool = True) -> None:
        self.port = port or free_port()
        self._service = _TraceService(keep)
        self._server: grpc.aio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def span_count(self) -> int:
        return self._service.span_count

    @property
    def requests(self) -> int:
        return self._service.requests

    def spans(self) -> list[ReceivedSpan]:
        return list(self._service.received)

    async def __aenter__(self) -> OtlpCollector:
        self._server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        pb_grpc.add_TraceServiceServicer_to_server(self._service, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            await self._server.stop(1)


async def _main(port: int, keep: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with OtlpCollector(port, keep=keep) as collector:
        print(f"otlp collector listening on {collector.endpoint}", flush=True)
        await stop.wait()
        print(
            f"otlp collector received {collector.span_count} spans in {collector.requests} requests",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4317)
    parser.add_argument("--keep", action="store_true", help="decode and keep every span (else count)")
    arguments = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(arguments.port, arguments.keep))
