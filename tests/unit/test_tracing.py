"""shared.tracing: the W3C header helpers for AMQP messages, the batch span's parent and links, the
trace ids on log lines, the OTLP setting, and "off" meaning nothing installed at all."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import structlog
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
    get_current_span,
    set_span_in_context,
)

from shared import tracing
from shared.logging import add_trace_ids
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def remote(trace_id: int = TRACE_ID, span_id: int = SPAN_ID, state: str = "") -> SpanContext:
    return SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState.from_header([state]) if state else TraceState(),
    )


def in_context(span_context: SpanContext) -> Context:
    return set_span_in_context(NonRecordingSpan(span_context), Context())


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install("rollcall-test", exporter, sql=False, batch=False)
    try:
        yield exporter
    finally:
        tracing.uninstall()


# --- inject / extract -----------------------------------------------------------------------------


def test_inject_writes_the_spans_traceparent_and_tracestate_beside_the_other_headers() -> None:
    headers = tracing.inject({"x-rollcall-dead-reason": "JOB_MISMATCH"}, in_context(remote(state="ro=1,v=x")))

    assert headers == {
        "x-rollcall-dead-reason": "JOB_MISMATCH",
        "traceparent": TRACEPARENT,
        "tracestate": "ro=1,v=x",
    }


def test_inject_replaces_a_traceparent_already_there_whatever_its_case() -> None:
    old = {"TraceParent": "00-11111111111111111111111111111111-2222222222222222-01", "tracestate": "a=b"}

    headers = tracing.inject(old, in_context(remote()))

    assert headers == {"traceparent": TRACEPARENT}
    assert old["TraceParent"].startswith("00-1111")  # the caller's mapping is left alone


def test_inject_without_a_current_span_copies_the_headers_unchanged() -> None:
    assert tracing.inject(None) is None
    assert tracing.inject({"a": "1"}) == {"a": "1"}
    assert tracing.inject({"a": "1"}, Context()) == {"a": "1"}


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": TRACEPARENT, "tracestate": "ro=1"},
        {"traceparent": TRACEPARENT.encode(), "tracestate": b"ro=1"},  # long strings left as bytes
        {"Traceparent": TRACEPARENT, "TRACESTATE": "ro=1"},  # a connector's own spelling
    ],
)
def test_extract_reads_a_connectors_traceparent(headers: dict[str, object]) -> None:
    context = get_current_span(tracing.extract(headers)).get_span_context()

    assert (context.trace_id, context.span_id, context.is_remote) == (TRACE_ID, SPAN_ID, True)
    assert context.trace_flags.sampled
    assert context.trace_state.get("ro") == "1"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"x-other": "1"},
        {"traceparent": "garbage"},
        {"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},  # all-zero trace id
        {"traceparent": 42},
    ],
)
def test_extract_of_no_or_a_bad_traceparent_starts_a_new_trace(headers: dict[str, object] | None) -> None:
    assert not get_current_span(tracing.extract(headers)).get_span_context().is_valid


def test_what_inject_writes_extract_reads_back() -> None:
    sent = tracing.inject({}, in_context(remote(state="k=v")))
    received = get_current_span(tracing.extract(sent)).get_span_context()

    assert (received.trace_id, received.span_id, received.trace_state.get("k")) == (TRACE_ID, SPAN_ID, "v")


# --- spans ----------------------------------------------------------------------------------------


def test_a_delivery_is_the_child_of_its_message_and_a_publish_inside_it_carries_its_own_context(
    spans: InMemorySpanExporter,
) -> None:
    with (
        tracing.consumer_span({"traceparent": TRACEPARENT}, "p.import.rows", "rows.s1", "m-1") as delivered,
        tracing.producer_span("p.import.dead", "rows.s1", "m-1"),
    ):
        headers = tracing.inject({})

    assert delivered is not None and delivered.trace_id == TRACE_ID
    receive, publish = sorted(spans.get_finished_spans(), key=lambda s: s.kind is SpanKind.PRODUCER)
    assert (receive.name, receive.kind) == ("receive p.import.rows", SpanKind.CONSUMER)
    assert receive.parent is not None and receive.parent.span_id == SPAN_ID
    assert receive.attributes is not None and receive.attributes["messaging.message.id"] == "m-1"
    assert (publish.name, publish.kind) == ("publish p.import.dead", SpanKind.PRODUCER)
    assert publish.context is not None and publish.parent is not None
    assert publish.parent.span_id == delivered.span_id
    assert headers == {"traceparent": f"00-{TRACE_ID:032x}-{publish.context.span_id:016x}-01"}


class _Delivery:
    def __init__(self, context: SpanContext | None) -> None:
        self.trace_context = context


async def test_a_batch_is_the_child_of_its_first_message_and_links_the_others(
    spans: InMemorySpanExporter,
) -> None:
    first, second, third = _Delivery(remote(span_id=1)), _Delivery(remote(span_id=2)), _Delivery(remote(3, 3))
    untraced = _Delivery(None)

    async def work() -> int:
        return get_current_span().get_span_context().trace_id

    deliveries = [first, first, untraced, second, third, second]  # rows of the same message repeat
    seen = await tracing.batch(work(), "job-1", 6, deliveries)

    [batch] = spans.get_finished_spans()
    assert isinstance(batch, ReadableSpan) and batch.parent is not None
    assert (batch.name, batch.kind, seen) == ("import.batch", SpanKind.CONSUMER, TRACE_ID)
    assert (batch.parent.trace_id, batch.parent.span_id) == (TRACE_ID, 1)
    assert [(link.context.trace_id, link.context.span_id) for link in batch.links] == [(TRACE_ID, 2), (3, 3)]
    assert batch.attributes is not None
    assert (batch.attributes["rollcall.job_id"], batch.attributes["rollcall.rows"]) == ("job-1", 6)
    assert batch.attributes["messaging.batch.message_count"] == 3


async def test_a_batch_of_messages_without_context_is_a_root_span(spans: InMemorySpanExporter) -> None:
    async def work() -> None:
        return None

    await tracing.batch(work(), "job-2", 1, [_Delivery(None)])

    [batch] = spans.get_finished_spans()
    assert batch.parent is None and not batch.links


async def test_with_tracing_off_the_helpers_hand_back_the_work_itself() -> None:
    async def work() -> str:
        return "done"

    coroutine = work()
    assert tracing.batch(coroutine, "job", 1, [_Delivery(remote())]) is coroutine
    assert await coroutine == "done"
    with tracing.consumer_span({"traceparent": TRACEPARENT}, "q", "rows.s", "m") as delivered:
        assert delivered is None
    assert tracing.server_interceptors() == [] and tracing.client_interceptors() is None


# --- logs -----------------------------------------------------------------------------------------


def test_log_lines_carry_the_current_spans_ids_only_while_tracing_is_on(
    spans: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add_trace_ids(None, "info", {"event": "outside"}) == {"event": "outside"}
    with tracing.span("work"):
        current = get_current_span().get_span_context()
        event = add_trace_ids(None, "info", {"event": "inside"})
    assert event == {
        "event": "inside",
        "trace_id": f"{current.trace_id:032x}",
        "span_id": f"{current.span_id:016x}",
    }

    tracing.uninstall()
    with tracing.span("work"):
        assert add_trace_ids(None, "info", {"event": "off"}) == {"event": "off"}


def test_a_logger_with_the_services_processors_writes_the_trace_id(spans: InMemorySpanExporter) -> None:
    lines: list[str] = []
    logger = structlog.wrap_logger(
        _ListLogger(lines), processors=[add_trace_ids, structlog.processors.JSONRenderer()]
    )
    with tracing.span("work"):
        trace_id = f"{get_current_span().get_span_context().trace_id:032x}"
        logger.info("rpc", method="ApplyStudentRows")
    logger.info("after")

    assert json.loads(lines[0])["trace_id"] == trace_id
    assert "trace_id" not in json.loads(lines[1])


class _ListLogger:
    def __init__(self, lines: list[str]) -> None:
        self._lines = lines

    def msg(self, message: str) -> None:
        self._lines.append(message)

    info = msg


# --- settings and "off" -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("http://otel-collector:4317", "http://otel-collector:4317"),
        ("https://collector.example.org:4317/", "https://collector.example.org:4317/"),
        ("http://[::1]:4317", "http://[::1]:4317"),
        ("  ", None),
        ("", None),
    ],
)
def test_the_otlp_endpoint_setting(monkeypatch: pytest.MonkeyPatch, given: str, kept: str | None) -> None:
    monkeypatch.setenv("ROLLCALL_OTLP_ENDPOINT", given)
    assert Settings().otlp_endpoint == kept


@pytest.mark.parametrize(
    "bad", ["collector:4317", "ftp://collector:21", "http://a b:1", "http://x:4317/v1/traces"]
)
def test_an_otlp_endpoint_that_is_no_collector_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("ROLLCALL_OTLP_ENDPOINT", bad)
    with pytest.raises(ValueError, match="http://host:port"):
        Settings()


def test_off_nothing_of_opentelemetry_is_even_imported() -> None:
    """Both services wired and the CLI loaded with ROLLCALL_OTLP_ENDPOINT unset: no module of
    OpenTelemetry in the process, no interceptor, asyncpg untouched."""
    script = """
import sys
import asyncpg
import identity_service.bootstrap, import_service.bootstrap, shared.cli.main
from shared import tracing
from shared.settings import Settings
assert tracing.configure(Settings().otlp_endpoint, tracing.SERVICE_IDENTITY) is False
assert not tracing.enabled() and tracing.server_interceptors() == [] and tracing.client_interceptors() is None
assert not hasattr(asyncpg.connection.Connection.execute, "__wrapped__")
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_install_patches_asyncpg_and_uninstall_restores_it() -> None:
    original = asyncpg.connection.Connection.execute
    tracing.install("rollcall-test", InMemorySpanExporter(), batch=False)
    try:
        assert hasattr(asyncpg.connection.Connection.execute, "__wrapped__")
        assert len(tracing.server_interceptors()) == 1 and len(tracing.client_interceptors() or []) == 4
        with pytest.raises(RuntimeError, match="already on"):
            tracing.install("again", InMemorySpanExporter())
        assert tracing.configure("http://127.0.0.1:1", "again") is True  # on already: unchanged
    finally:
        tracing.uninstall()
    assert asyncpg.connection.Connection.execute is original


def test_deploy_names_the_otlp_setting_off_by_default() -> None:
    """compose and the k8s ConfigMap carry ROLLCALL_OTLP_ENDPOINT, empty (= off) unless set."""
    config = (ROOT / "deploy" / "k8s" / "base" / "config.env").read_text().splitlines()
    assert "ROLLCALL_OTLP_ENDPOINT=" in config
    compose = (ROOT / "deploy" / "compose.yaml").read_text()
    assert "ROLLCALL_OTLP_ENDPOINT: ${ROLLCALL_OTLP_ENDPOINT:-}" in compose
    assert Settings(otlp_endpoint="").otlp_endpoint is None
