"""Tracing (issue 10) end to end: both services as processes exporting over OTLP to a test collector,
this process as the connector (``rollcall-cli``, spans in memory). One trace joins the CLI's publish,
the import service's delivery and batch spans, its ApplyStudentRows call, identity's server span and
identity's SQL; the log lines of that call and that batch carry the trace id. The same for a staff
upload: the CLI's SubmitFile call → the import service's publishing → its consumer → identity."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import tracing
from shared.cli.clients import Target
from shared.cli.uploading import upload_file, upload_header
from tests.e2e.system.system_support import csv_text, email, new_campus, publish_csv, spec_for
from tests.otlp_collector import OtlpCollector, ReceivedSpan
from tests.process_stack import ADMIN_TOKEN, IDENTITY, IMPORT, ProcessStack, eventually, process_stack

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP's SpanKind numbers
APPLY = "rollcall.identity.v1.IdentityService/ApplyStudentRows"


@pytest.fixture(scope="module")
async def collector() -> AsyncIterator[OtlpCollector]:
    async with OtlpCollector() as running:
        yield running


@pytest.fixture(scope="module")
async def traced_stack(
    pg_server_url: str, amqp_url: str, amqp_prefix: str, collector: OtlpCollector
) -> AsyncIterator[ProcessStack]:
    env = {"ROLLCALL_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    async with process_stack(pg_server_url, amqp_url, f"{amqp_prefix}_trace", extra_env=env) as stack:
        yield stack


@pytest.fixture
def cli_spans() -> Iterator[InMemorySpanExporter]:
    """This process traces as the CLI does (``rollcall-cli``), into memory."""
    exporter = InMemorySpanExporter()
    tracing.install(tracing.SERVICE_CLI, exporter, sql=False, batch=False)
    try:
        yield exporter
    finally:
        tracing.uninstall()


def _hex(number: int, width: int) -> str:
    return f"{number:0{width}x}"


class Trace:
    """The spans the collector received for one trace id, with their ancestry."""

    def __init__(self, spans: list[ReceivedSpan]) -> None:
        self.spans = spans
        self.by_id = {s.span_id: s for s in spans}

    def find(self, service: str, kind: int, name: str = "") -> list[ReceivedSpan]:
        return [s for s in self.spans if s.service == service and s.kind == kind and s.name.endswith(name)]

    def sql(self, service: str) -> list[ReceivedSpan]:
        return [s for s in self.find(service, CLIENT) if s.attributes.get("db.system") == "postgresql"]

    def under(self, span: ReceivedSpan, ancestors: list[ReceivedSpan]) -> bool:
        wanted = {a.span_id for a in ancestors}
        parent = self.by_id.get(span.parent_span_id)
        while parent is not None:
            if parent.span_id in wanted:
                return True
            parent = self.by_id.get(parent.parent_span_id)
        return False


async def _joined(collector: OtlpCollector, trace_id: str, batches: int = 1) -> Trace:
    """Waits until the collector holds identity's SQL under ApplyStudentRows for ``trace_id``."""

    async def ready() -> Trace | None:
        found = Trace([s for s in collector.spans() if s.trace_id == trace_id])
        servers = found.find(tracing.SERVICE_IDENTITY, SERVER, APPLY)
        sql = [s for s in found.sql(tracing.SERVICE_IDENTITY) if found.under(s, servers)]
        done = len(found.find(tracing.SERVICE_IMPORT, CONSUMER, "import.batch")) >= batches
        return found if servers and sql and done else None

    return await eventually(ready, timeout=30, what=f"identity's SQL spans of trace {trace_id}")


def _log_lines(stack: ProcessStack, service: str) -> list[dict[str, object]]:
    text = stack.services[service].log_path.read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _assert_batch_to_sql(trace: Trace, receives: list[ReceivedSpan], rows_messages: int) -> None:
    """Receive → batch (child of its first message's delivery, linked to the others') → the
    ApplyStudentRows client → identity's server span → identity's SQL; the batch's own SQL too.
    Every one of the ``rows_messages`` deliveries with rows is a batch's parent or one of its links
    (the end message takes no batch)."""
    batches = trace.find(tracing.SERVICE_IMPORT, CONSUMER, "import.batch")
    received = {s.span_id for s in receives}
    joined: set[str] = set()
    for batch in batches:
        assert batch.parent_span_id in received
        joined |= {batch.parent_span_id} | {span_id for _, span_id in batch.links}
        assert all(trace_id == batch.trace_id for trace_id, _ in batch.links)
    assert len(joined & received) == rows_messages

    calls = trace.find(tracing.SERVICE_IMPORT, CLIENT, APPLY)
    assert calls and all(c.parent_span_id in {b.span_id for b in batches} for c in calls)
    servers = trace.find(tracing.SERVICE_IDENTITY, SERVER, APPLY)
    assert servers and all(s.parent_span_id in {c.span_id for c in calls} for s in servers)
    identity_sql = [s for s in trace.sql(tracing.SERVICE_IDENTITY) if trace.under(s, servers)]
    assert identity_sql and all("identity" in str(s.attributes.get("db.name")) for s in identity_sql)
    assert any(s.attributes.get("db.statement") for s in identity_sql)  # the SQL text (no parameters)
    assert not any("db.statement.parameters" in s.attributes for s in trace.spans)
    import_sql = [s for s in trace.sql(tracing.SERVICE_IMPORT) if trace.under(s, batches)]
    assert import_sql  # the batch's own statements (dedupe, record outcomes)


async def test_one_trace_from_the_connectors_publish_to_identitys_sql(
    traced_stack: ProcessStack, collector: OtlpCollector, cli_spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    stack = traced_stack
    campus = await new_campus(stack)
    spec = spec_for(campus.id)
    rows = [(f"trace{n}", email(f"trace{n}"), "Ann", f"Lee{n}", f"sis-{n}") for n in range(5)]

    await publish_csv(stack, tmp_path, csv_text(rows), spec, rows_per_message=1)
    job = await stack.wait_job(spec.job_id)
    assert job.counts.created == 5

    mine = cli_spans.get_finished_spans()
    [file_span] = [s for s in mine if s.name == "publish file"]
    assert file_span.context is not None
    trace_id = _hex(file_span.context.trace_id, 32)
    publishes = [s for s in mine if s.kind is SpanKind.PRODUCER]
    assert len(publishes) == 6  # five one-row messages and the end
    assert all(s.parent is not None and s.parent.span_id == file_span.context.span_id for s in publishes)
    assert {_hex(s.context.trace_id, 32) for s in publishes if s.context} == {trace_id}

    trace = await _joined(collector, trace_id)

    receives = [s for s in trace.find(tracing.SERVICE_IMPORT, CONSUMER) if s.name.startswith("receive ")]
    assert sorted(s.parent_span_id for s in receives) == sorted(
        _hex(s.context.span_id, 16) for s in publishes if s.context
    )  # each delivery is the child of its own message's publish
    assert {s.name for s in receives} == {f"receive {stack.rows_queue}"}
    _assert_batch_to_sql(trace, receives, rows_messages=5)

    rpc_lines = [
        line
        for line in _log_lines(stack, IDENTITY)
        if line.get("event") == "rpc" and line.get("method") == "ApplyStudentRows"
    ]
    assert any(line.get("trace_id") == trace_id and line.get("span_id") for line in rpc_lines)
    batch_lines = [line for line in _log_lines(stack, IMPORT) if line.get("event") == "import.batch"]
    assert any(line.get("trace_id") == trace_id for line in batch_lines if line.get("job_id") == spec.job_id)


async def test_one_trace_from_a_staff_upload_through_submitfile_to_identitys_sql(
    traced_stack: ProcessStack, collector: OtlpCollector, cli_spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    stack = traced_stack
    campus = await new_campus(stack)
    roster = tmp_path / "upload.csv"
    roster.write_text(csv_text([(f"up{n}", email(f"up{n}"), "Bo", f"Kim{n}", f"up-{n}") for n in range(3)]))
    target = Target(stack.identity_addr, stack.import_addr, stack.amqp_url, stack.prefix, ADMIN_TOKEN)

    job = await upload_file(target, roster, upload_header(school_id=campus.id, manual=False), lambda _: None)
    await stack.wait_job(job.job_id)

    [call] = [s for s in cli_spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert call.name.endswith("ImportService/SubmitFile") and call.context is not None
    trace = await _joined(collector, _hex(call.context.trace_id, 32))

    [submit] = trace.find(tracing.SERVICE_IMPORT, SERVER, "ImportService/SubmitFile")
    assert submit.parent_span_id == _hex(call.context.span_id, 16)
    publishes = trace.find(tracing.SERVICE_IMPORT, PRODUCER)
    assert publishes and all(trace.under(p, [submit]) for p in publishes)  # rows and the end message
    receives = [s for s in trace.find(tracing.SERVICE_IMPORT, CONSUMER) if s.name.startswith("receive ")]
    assert {s.parent_span_id for s in receives} == {p.span_id for p in publishes}
    _assert_batch_to_sql(trace, receives, rows_messages=len(publishes) - 1)
