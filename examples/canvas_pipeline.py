"""A Celery canvas made durable: a chain with a chord of plain Celery tasks, compiled into a
workflow with ``Workflow.from_canvas``, run on the embedded default (no server needed).

    python -m examples.canvas_pipeline

The tasks are ordinary ``@app.task`` functions and keep working the old way (``.delay``). The
workflow runs the same canvas with Celery's semantics, but every task is a checkpointed step:
a crash resumes after the last finished task, and a failing task is retried by its step.
"""

from __future__ import annotations

import os
import tempfile

from celery import Celery, chain, chord

from durable_celery import Durable, Retry, Workflow

# The embedded default keeps its files in $DURABLE_DATA_DIR (here: a fresh temporary folder).
os.environ.setdefault("DURABLE_DATA_DIR", tempfile.mkdtemp(prefix="durable-canvas-"))
app = Celery("canvas_pipeline")


# -- the project's existing tasks -------------------------------------------------------------------

@app.task(name="reports.extract")
def extract(day: str) -> list[int]:
    """Order amounts of one day (a database query in a real project)."""
    return [120, 80, 45, 300, 15] if day.endswith("01") else [10, 20]


@app.task(name="reports.total")
def total(amounts: list[int]) -> int:
    return sum(amounts)


_calls = {"largest": 0}


@app.task(name="reports.largest")
def largest(amounts: list[int]) -> int:
    # A flaky data source: the first call in a worker process fails, the step's retry succeeds.
    _calls["largest"] += 1
    if _calls["largest"] == 1:
        raise ConnectionError("warehouse connection reset")
    return max(amounts)


@app.task(name="reports.count")
def count(amounts: list[int]) -> int:
    return len(amounts)


@app.task(name="reports.summarize")
def summarize(stats: list[int], currency: str = "EUR") -> str:
    spent, top, n = stats
    return f"{n} orders, {spent} {currency} in all, the largest {top} {currency}"


@app.task(name="reports.publish")
def publish(summary: str, channel: str) -> dict[str, str]:
    return {"channel": channel, "text": summary}


# -- the canvas the project used to send, and the workflow made from it -----------------------------------

daily_report_canvas = chain(
    extract.s(),
    chord([total.s(), largest.s(), count.s()], summarize.s(currency="EUR")),
    publish.s(channel="#reports"),
)
daily_report = Workflow.from_canvas(
    "daily_report", daily_report_canvas,
    step_options={"largest": {"retry": Retry(max_attempts=3, backoff="constant", base=0.2)}},
)
durable = Durable(app, workflows=[daily_report])


def main() -> int:
    from durable_celery.testing.workers import worker

    print(f"state and broker files in {os.environ['DURABLE_DATA_DIR']}")
    print("steps:", ", ".join(n.name for n in daily_report.body))
    with worker("examples.canvas_pipeline", [durable.settings.queue], concurrency=1, pool="solo",
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))):
        # canvas.apply_async(args=["2030-01-01"]) becomes:
        execution_id = durable.start(daily_report, {"args": ["2030-01-01"]})
        execution = durable.wait(execution_id, timeout=60)
    print(f"\nworkflow {execution.workflow}: {execution.status.value}")
    for step in execution.steps:
        outcome = f"error: {step.error['message']}" if step.error else f"output: {step.output}"
        print(f"  {step.step_name:<10} attempt {step.attempt}  {step.status:<9} {outcome}")
    print(f"workflow result: {execution.context['result']}")
    return 0 if execution.status == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
