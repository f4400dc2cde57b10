"""Stage 2: the workflow rewritten as native steps (``workflow_v2.py``) around the unchanged
tasks; callers now start ``daily_report_v2`` with ``{"day": day}``.

    python -m examples.migration.stage2_steps [DAY ...]

Deployment: as in stage 1 (old pool on ``reports``, a pool on ``durable``, beat). The old pool
now runs only ``score_fraud``, which the workflow awaits there, and drains what old code sent.
``daily_report_v1`` stays registered so its executions in flight finish; the result backend
stays until no old canvas is in flight.

It first starts a ``daily_report_v1`` execution *before* the workers are up, as the stage-1
deploy would have left one; then one ``daily_report_v2`` run per day, and one more for the first
day pointed at a read-only archive, which fails late and is compensated (the post is retracted).
"""

from __future__ import annotations

import argparse

from examples.migration import tasks
from examples.migration.project import (
    DURABLE_QUEUE,
    OLD_QUEUE,
    make_app,
    make_durable,
    print_execution,
    print_ran,
    processes,
)
from examples.migration.workflow_v1 import report_v1
from examples.migration.workflow_v2 import report_v2

app = make_app(result_backend=True)                # canvases sent before this deploy may still run
durable = make_durable(app, [report_v1, report_v2])  # v1 until its executions have finished

MODULE = "examples.migration.stage2_steps"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("days", nargs="*", default=["2030-02-01"])
    days = parser.parse_args(argv).days

    left_over = durable.start(report_v1, {"args": ["2030-01-31"]})  # in the queue before this deploy's workers
    print(f"in flight from stage 1: daily_report_v1 {left_over}")
    with processes(MODULE, {"old": [OLD_QUEUE], "workflows": [DURABLE_QUEUE]}, with_beat=True) as pools:
        runs = {day: durable.start(report_v2, {"day": day}) for day in days}
        frozen = durable.start(report_v2, {"day": "2030-02-28", "archive_to": "s3://frozen-bucket"})
        executions = [durable.wait(execution_id, timeout=60) for execution_id in (left_over, *runs.values(), frozen)]

    for execution in executions:
        print_execution(execution)
    finished, *normal, failed = executions
    for execution in normal:
        day = execution.context["day"]
        print(f"report {day}: {execution.context['message']['text']}; archived at {execution.context['archived']}")
        print(f"  publish ran {tasks.publish_calls(day)} time(s) for "
              f"{sum(s.step_name == 'publish_report' for s in execution.steps)} attempts of publish_report")
    print(f"read-only archive: {failed.status.value} after {failed.error['message'] if failed.error else None!r}; "
          f"compensations: {[(c['compensation'], c['status']) for c in failed.compensation_results]}; "
          f"still posted: {tasks.published('2030-02-28') is not None}")
    print_ran(pools)
    ok = (finished.status == "completed" and all(e.status == "completed" for e in normal)
          and failed.status == "compensated" and tasks.published("2030-02-28") is None)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
