"""Stage 1: the same canvas compiled into a workflow (``Workflow.from_canvas``) and started with
``durable.start``, while the old canvas keeps running on the same broker.

    python -m examples.migration.stage1_from_canvas [DAY ...]

Deployment: the engine is attached to the project's app (``Durable(app, ...)``); the old pool
still serves ``reports`` (it now runs this module, but touches no workflow state); a new pool
serves ``durable``; beat runs the engine's tick. The result backend stays: old canvases run.

For each day it sends the old canvas *and* starts the workflow, waits for both, prints both
results and whether they agree, the workflow's steps, and what each pool ran.
"""

from __future__ import annotations

import argparse
import json

from examples.migration import tasks
from examples.migration.project import (
    DURABLE_QUEUE,
    OLD_QUEUE,
    canvas_result,
    make_app,
    make_durable,
    print_execution,
    print_ran,
    processes,
    release_results,
)
from examples.migration.workflow_v1 import report_v1

app = make_app(result_backend=True)      # old canvases are still sent: their chord needs it
durable = make_durable(app, [report_v1])

MODULE = "examples.migration.stage1_from_canvas"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("days", nargs="*", default=["2030-01-01"])
    days = parser.parse_args(argv).days

    print("workflow steps:", ", ".join(node.name for node in report_v1.body))
    with processes(MODULE, {"old": [OLD_QUEUE], "workflows": [DURABLE_QUEUE]}, with_beat=True) as pools:
        old = {day: tasks.daily_report_canvas().apply_async(args=[day]) for day in days}
        new = {day: durable.start(report_v1, {"args": [day]}) for day in days}   # was: apply_async(args=[day])
        old_results = {day: canvas_result(result) for day, result in old.items()}
        release_results(app, old.values())
        executions = {day: durable.wait(execution_id, timeout=60) for day, execution_id in new.items()}

    ok = True
    for day in days:
        execution = executions[day]
        print_execution(execution)
        workflow_result = execution.context["result"] if execution.status == "completed" else None
        same = workflow_result == old_results[day]
        ok = ok and same
        print(f"canvas result {day}: {json.dumps(old_results[day], sort_keys=True)}")
        print(f"workflow result {day}: {json.dumps(workflow_result, sort_keys=True)}")
        print(f"  same result: {'yes' if same else 'NO'}; publish ran {tasks.publish_calls(day)} time(s), "
              f"the channel holds one message: {tasks.published(day) == old_results[day]}")
    print_ran(pools)
    print(f"inspect: celery -A {MODULE} durable show {next(iter(new.values()))}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
