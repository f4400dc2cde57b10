"""OpenTelemetry in the test project's worker processes, when ``DT_SPANS`` names a file: every
finished span is appended to it as one JSON line (what an exporter would ship to a collector)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from celery import signals
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a") as out:
            for span in spans:
                out.write(json.dumps(as_dict(span)) + "\n")
        return SpanExportResult.SUCCESS


def as_dict(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    return {"name": span.name, "trace_id": format(span.context.trace_id, "032x"),
            "span_id": format(span.context.span_id, "016x"),
            "parent_id": format(span.parent.span_id, "016x") if span.parent is not None else None,
            "status": span.status.status_code.name, "attributes": dict(span.attributes or {}),
            "events": [event.name for event in span.events]}


@signals.worker_process_init.connect(weak=False)
def configure(**_: Any) -> None:
    """Each pool process sets up its own provider, as an application's Celery config would."""
    path = os.environ.get("DT_SPANS")
    if path:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
        trace.set_tracer_provider(provider)
