"""OpenTelemetry: one span per execution, made where it was started (a child of the caller's
span), and one span per step attempt, a child of it, made by whichever process runs the
attempt: a workflow with a retry and a wait is one trace. The SDK's in-memory exporter in this
process; a JSON-lines exporter in the worker's processes (tests/proj/tracing.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import Project
from tests.proj.tracing import as_dict

Factory = Callable[..., Project]


@pytest.fixture(scope="module")
def exported() -> Iterator[InMemorySpanExporter]:
    """This process's spans (the global provider can be set once per process)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.clear()


def spans_in(path: Path, count: int, p: Project) -> list[dict[str, Any]]:
    """The spans the worker exported once ``count`` of them are there (they are written as they end)."""
    import time
    deadline = time.monotonic() + 15
    while True:
        spans = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def test_a_workflow_with_a_retry_and_a_wait_is_one_trace_under_the_span_that_started_it(
        project_factory: Factory, exported: InMemorySpanExporter, tmp_path: Path) -> None:
    p = project_factory("redis")
    worker_spans = tmp_path / "spans.jsonl"
    p.worker(env={"DT_SPANS": str(worker_spans)})
    # Given a request span in this process that starts a workflow
    with trace.get_tracer("test").start_as_current_span("POST /orders"):
        execution_id = p.durable.start("traced", {"order": "o-1"})
    # When its first step fails once, then it waits for an event sent later, then it ships
    p.wait(execution_id, statuses={"waiting"})
    p.durable.send_event(execution_id, "approved", {"by": "ada"})
    execution = p.wait(execution_id)
    assert execution.status == "completed", execution.error
    here = [as_dict(s) for s in exported.get_finished_spans()]
    request = next(s for s in here if s["name"] == "POST /orders")
    [started] = [s for s in here if s["name"] == "workflow traced"]
    steps = spans_in(worker_spans, 5, p)
    # Then the execution's span is a child of the request's, in its trace
    assert started["parent_id"] == request["span_id"] and started["trace_id"] == request["trace_id"]
    assert started["attributes"]["durable.execution_id"] == execution_id
    # And every step attempt, in the worker, is a child of the execution's span in that trace
    assert [(s["name"], s["status"], s["attributes"]["durable.attempt"]) for s in steps] == [
        ("traced.charge", "ERROR", 1), ("traced.charge", "UNSET", 2),
        ("traced.approve", "UNSET", 1),  # it waited (the attempt suspended)
        ("traced.approve", "UNSET", 1),  # resumed by the event
        ("traced.ship", "UNSET", 1)]
    assert {(s["trace_id"], s["parent_id"]) for s in steps} == {(request["trace_id"], started["span_id"])}
    assert steps[0]["events"] == ["exception"]
    # And the logs captured from an attempt carry its trace and span ids
    [shipped] = [s for s in execution.steps if s.step_name == "ship"]
    [entry] = [e for e in shipped.logs if e["logger"] == "traced"]
    assert (entry["trace_id"], entry["span_id"]) == (steps[-1]["trace_id"], steps[-1]["span_id"])


def test_without_a_span_at_start_the_execution_span_starts_a_trace_of_its_own(
        project_factory: Factory, exported: InMemorySpanExporter) -> None:
    p = project_factory("redis")
    exported.clear()
    execution_id = p.durable.start("pipeline", {})
    [started] = [as_dict(s) for s in exported.get_finished_spans()]
    assert started["name"] == "workflow pipeline" and started["parent_id"] is None
    [(stored,)] = p.sql("SELECT trace_context FROM {schema}.workflow_executions WHERE id = :id", id=execution_id)
    assert stored.startswith(f"00-{started['trace_id']}-{started['span_id']}-")  # then the trace flags
