"""OpenTelemetry tracing, when ``opentelemetry-api`` is installed (the ``otel`` extra) and the
application configures an SDK; otherwise nothing here costs more than a check.

* **One span per execution**, ``workflow <name>``, made by ``start``: a child of the caller's
  current span (a web request's, a Celery task's, the step that started a child workflow), so
  the trace goes on from where the execution was started. It ends at once; its W3C
  ``traceparent`` is stored in the execution's row (``trace_context``).
* **One span per step attempt**, ``<workflow>.<step>``, a child of the execution's span, made
  by whichever worker runs the attempt, days later if the execution waited: a workflow is one
  trace. A failed attempt's span has an error status and an ``exception`` event. The step runs
  inside its span, so spans the step makes (HTTP calls, queries, child workflows) nest in it,
  and the logs captured from the attempt carry its ``trace_id`` and ``span_id``.
* Branches and iterations share their workflow's execution span.

The tracer is OpenTelemetry's global one (``trace.get_tracer("durable_celery")``): configure a
``TracerProvider`` with exporters in the worker process (``worker_process_init``) as for any
Celery app.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from durable_celery.engine.values import StepOutcome, StepResult

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the otel extra is not installed: no spans
    trace = None  # type: ignore[assignment]

_propagator = TraceContextTextMapPropagator() if trace is not None else None
TRACER = "durable_celery"


def execution_span(workflow: str, execution_id: str, *, kind: str = "workflow") -> str | None:
    """Make the span of a new execution (see the module's docstring) and return its W3C
    ``traceparent`` to store, or None when nothing records spans."""
    if trace is None or _propagator is None or isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        # no provider configured: the span would record nothing (a tenth of a bulk start's time)
        return None
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(f"{kind} {workflow}", kind=trace.SpanKind.PRODUCER,
                                      attributes={"durable.workflow": workflow,
                                                  "durable.execution_id": execution_id}) as span:
        if not span.get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        return carrier.get("traceparent")


@contextlib.contextmanager
def step_span(trace_context: str | None, workflow: str, step: str, attributes: Mapping[str, Any]) -> Iterator[Any]:
    """The span of one step attempt, current while the step runs; yields it (None without
    tracing, or for an execution started without a span)."""
    if trace is None or _propagator is None or trace_context is None:
        yield None
        return
    parent = _propagator.extract({"traceparent": trace_context})
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(f"{workflow}.{step}", context=parent, attributes=dict(attributes),
                                      record_exception=False, set_status_on_exception=False) as span:
        yield span


def traced(trace_context: str | None, workflow: str, step: str, attributes: Mapping[str, Any],
           attempt: Callable[[], StepResult]) -> StepResult:
    """Run one step (or compensation) attempt inside its span: the span fails with the
    attempt, and the attempt's captured logs carry the span's ids."""
    if trace is None or trace_context is None:  # the hot path without tracing: one check
        return attempt()
    with step_span(trace_context, workflow, step, attributes) as span:
        result = attempt()
        if result.outcome is StepOutcome.FAILED:
            failed(span, result.error)
        if result.logs and span is not None:
            stamp = ids(span)
            result = dataclasses.replace(result, logs=tuple({**entry, **stamp} for entry in result.logs))
        return result


def failed(span: Any, error: Mapping[str, Any] | None) -> None:
    """Mark a step attempt's span failed with the attempt's error (type, message, traceback)."""
    if span is None or trace is None:
        return
    error = error or {}
    message = f"{error.get('type')}: {error.get('message')}"
    span.set_status(trace.Status(trace.StatusCode.ERROR, message))
    span.add_event("exception", {"exception.type": str(error.get("type")), "exception.message": str(error.get("message")),
                                 "exception.stacktrace": str(error.get("traceback") or "")})


def ids(span: Any) -> dict[str, str]:
    """The trace and span ids (hex) a captured log entry carries; empty without a recording span."""
    if span is None:
        return {}
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
