"""Stage 1's workflow: the project's canvas compiled as it is (``Workflow.from_canvas``).

Each task becomes a step that runs the task's body in the workflow worker; the chord's header
becomes a ``parallel`` block. Start it with what ``apply_async`` got: ``{"args": [day]}``; its
final context is ``{"result": <what the canvas returns>}``.
"""

from __future__ import annotations

from durable_celery import Retry, Workflow, minutes
from examples.migration.tasks import daily_report_canvas, retract

report_v1 = Workflow.from_canvas(
    "daily_report_v1",
    daily_report_canvas(),
    # what the canvas did with autoretry_for / on_error, said the workflow's way
    step_options={"fetch_orders": {"retry": Retry(max_attempts=3, backoff="constant", base=1)}},
    compensations={"publish": retract},  # if a later step ever fails, the post is taken back
    timeout=minutes(10),
)
