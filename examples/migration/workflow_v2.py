"""Stage 2's workflow: the pipeline rewritten as native steps around the unchanged tasks.

- ``task_step`` runs a task's body as a step, its parameters filled from the context by name;
- ``score_fraud`` still runs on the old worker pool (its model lives there): the step sends it
  there with ``await_task`` and suspends until its result comes back, holding no worker;
- publishing is a side effect in a step that can run twice (pinning is rate-limited and
  retried), so it is wrapped in ``checkpoint``: one post per visit of the step;
- ``retract_report`` compensates the post when a later step (the archive) fails for good.

A new name (``daily_report_v2``), so executions of ``daily_report_v1`` still in flight finish
on their own definition.
"""

from __future__ import annotations

from typing import Any

from durable_celery import Retry, Workflow, minutes
from durable_celery.context import checkpoint
from durable_celery.orchestration import await_task
from examples.migration.project import CHANNEL, OLD_QUEUE
from examples.migration.services import ARCHIVE, archive, pin
from examples.migration.tasks import combine, fetch_orders, publish, retract, revenue, score_fraud, top_customers

report_v2 = Workflow("daily_report_v2", timeout=minutes(10))

# fetch_orders(day): ``day`` comes from the input; the result goes under "batch"
report_v2.task_step(fetch_orders, into="batch", retry=Retry(max_attempts=3, backoff="constant", base=1))


def section(ctx: dict[str, Any], value: Any) -> dict[str, Any]:
    """A branch ends with its section only (not a copy of the whole context)."""
    return {"section": value}


def gather(ctx: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """After the branches: the input and the sections, for ``combine`` (which merges them)."""
    return {"day": ctx["day"], "archive_to": ctx.get("archive_to", ARCHIVE),
            "sections": [value["section"] for _, value in results.values()]}


with report_v2.parallel(into=gather):
    report_v2.task_step(revenue, into=section)        # revenue(batch)
    report_v2.task_step(top_customers, into=section)  # top_customers(batch), n keeps its default

    @report_v2.step
    def fraud(ctx: dict[str, Any]) -> dict[str, Any]:
        scored = await_task(score_fraud.s(ctx["batch"]).set(queue=OLD_QUEUE), timeout=minutes(5))
        return {"section": scored}


report_v2.task_step(combine, into="report")  # combine(sections)


@report_v2.step(retry=Retry(max_attempts=3, backoff="constant", base=0.5), compensate="retract_report")
def publish_report(ctx: dict[str, Any]) -> dict[str, Any]:
    # The step runs again when pin() fails; the post happens once per visit.
    message = checkpoint("publish", publish, ctx["report"], CHANNEL)
    pinned = pin(message)
    return {"day": ctx["day"], "archive_to": ctx["archive_to"], "report": ctx["report"], "message": message,
            **pinned}


@report_v2.step
def archive_report(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "archived": archive(ctx["report"], ctx["archive_to"])}


@report_v2.compensation
def retract_report(ctx: dict[str, Any]) -> dict[str, Any]:
    """Gets what publish_report returned; ``retract``'s body runs in-process."""
    return {**ctx, "retracted": retract(ctx["message"])}
