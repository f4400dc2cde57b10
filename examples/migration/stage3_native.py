"""Stage 3: the finished workflow (``workflow_v3.py``), and the old path retired.

    python -m examples.migration.stage3_native [DAY ...]

Deployment: one pool serves both queues (``-Q durable,reports``): the workflows, and whatever
old code left in ``reports``, since the task module stays imported (its tasks registered) until
that queue is empty. No result backend: there is no chord any more. ``daily_report_v2`` stays
registered until its executions have finished; ``daily_report_v1`` is gone (stage 2 drained it).

It first starts a ``daily_report_v2`` execution before the workers are up, as the stage-2 deploy
would have left one (its fraud step still sends ``reports.score_fraud`` to the old queue); then
starts ``daily_report_v3`` once per day, twice with the same idempotency key, and checks that
nothing of the old path is left: the old queue is empty and no v1 or v2 execution is active.
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
    queue_depth,
)
from examples.migration.workflow_v2 import report_v2
from examples.migration.workflow_v3 import report_v3

app = make_app(result_backend=False)
durable = make_durable(app, [report_v2, report_v3])

MODULE = "examples.migration.stage3_native"
ACTIVE = ("pending", "running", "waiting", "compensating")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("days", nargs="*", default=["2030-03-01"])
    days = parser.parse_args(argv).days

    left_over = durable.start(report_v2, {"day": "2030-02-27"})
    print(f"in flight from stage 2: daily_report_v2 {left_over}")
    with processes(MODULE, {"workflows+old": [DURABLE_QUEUE, OLD_QUEUE]}, with_beat=True) as pools:
        runs = {}
        for day in days:
            # once per day, however often a caller (a cron, a retried request) asks
            runs[day] = durable.start(report_v3, {"day": day}, idempotency_key=f"daily-report:{day}")
            again = durable.start(report_v3, {"day": day}, idempotency_key=f"daily-report:{day}")
            print(f"started daily_report_v3 for {day}: {runs[day]} (a second start returned "
                  f"{'the same id' if again == runs[day] else 'ANOTHER id'})")
        executions = [durable.wait(execution_id, timeout=60) for execution_id in (left_over, *runs.values())]
        active = {name: sum(len(durable.list_executions(workflow=name, status=status)) for status in ACTIVE)
                  for name in ("daily_report_v1", "daily_report_v2")}
        depth = queue_depth(OLD_QUEUE)

    for execution in executions:
        print_execution(execution)
    for execution in executions[1:]:
        day = execution.context["day"]
        print(f"report {day}: {execution.context['message']['text']}; publish ran {tasks.publish_calls(day)} time(s)")
    print_ran(pools)
    print(f"old queue {OLD_QUEUE!r}: {depth} message(s) waiting; active executions: {active}")
    retire = depth == 0 and not any(active.values())
    print("the old tasks can be unregistered and the old pool retired" if retire else "keep the old tasks registered")
    ok = retire and all(execution.status == "completed" for execution in executions)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
