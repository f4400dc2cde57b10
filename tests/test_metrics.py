"""``list_workflows`` and ``get_metrics`` checked against runs whose outcome is known: on a real
worker over Postgres, and on the embedded default (SQLite, Celery's eager mode); and the log
capture limits on a real worker running a chatty step."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import text

from durable_celery import Durable, Execution, InvalidInput, Metrics, Workflow
from tests.conftest import Project

Factory = Callable[..., Project]


def _percentile(values: list[float], p: float) -> float:
    """``percentile_cont``: linear interpolation between the two nearest ranks."""
    ordered = sorted(values)
    rank = p * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _check_figures(metrics: Metrics, runs: list[Execution]) -> None:
    """The metrics of ``runs`` (all finished, one step each) as computed here from each run."""
    durations = [(e.completed_at - e.started_at).total_seconds() * 1000 for e in runs  # type: ignore[operator]
                 if e.started_at is not None and e.completed_at is not None]
    assert metrics.avg_duration_ms == pytest.approx(statistics.mean(durations), abs=0.01)
    assert metrics.p50_duration_ms == pytest.approx(_percentile(durations, 0.5), abs=0.01)
    assert metrics.p95_duration_ms == pytest.approx(_percentile(durations, 0.95), abs=0.01)
    attempts = [s for e in runs for s in e.steps]
    [step] = metrics.steps
    step_ms = [float(s.duration_ms) for s in attempts if s.duration_ms is not None]
    assert (step.step_name, step.attempts, step.failures) == (
        attempts[0].step_name, len(attempts), sum(s.status == "failed" for s in attempts))
    assert step.avg_duration_ms == pytest.approx(statistics.mean(step_ms))
    assert step.p50_duration_ms == pytest.approx(_percentile(step_ms, 0.5))
    assert step.p95_duration_ms == pytest.approx(_percentile(step_ms, 0.95))


def test_metrics_and_workflow_summaries_match_runs_on_a_real_worker(project_factory: Factory) -> None:
    p = project_factory()
    p.worker(concurrency=2)
    # Given 20 runs of a workflow of which one in four fails, and 3 of another left pending
    ids = [p.durable.start("capture_flood", {"lines": i % 7, "fail": i % 4 == 0}) for i in range(20)]
    runs = [p.wait(execution_id) for execution_id in ids]
    assert [e.status for e in runs].count("failed") == 5
    p.durable.start_many("pipeline", [{}, {}, {}], scheduled_at=datetime.now(timezone.utc) + timedelta(days=1))
    # When the metrics of the first workflow are read
    metrics = p.durable.get_metrics("capture_flood")
    # Then the counts, success rate and durations are those of the runs
    assert metrics.counts["completed"] == 15 and metrics.counts["failed"] == 5 and metrics.total == 20
    assert metrics.finished == 20 and metrics.success_rate == 0.75
    _check_figures(metrics, runs)
    # And over every workflow the pending ones count, but have no duration
    everything = p.durable.get_metrics()
    assert everything.total == 23 and everything.counts["pending"] == 3 and everything.success_rate == 0.75
    assert everything.p50_duration_ms == metrics.p50_duration_ms
    # And since a moment after the runs, nothing of them counts
    later = p.durable.get_metrics("capture_flood", since=datetime.now(timezone.utc) + timedelta(seconds=1))
    assert (later.total, later.success_rate, later.avg_duration_ms, later.steps) == (0, None, None, [])
    assert p.durable.get_metrics("capture_flood", since=timedelta(hours=1)).total == 20
    # And list_workflows sums them up per workflow, registered ones with no run included
    summaries = {s.name: s for s in p.durable.list_workflows()}
    flood = summaries["capture_flood"]
    newest = max(runs, key=lambda e: (e.created_at, e.id))
    assert (flood.total_runs, flood.failed, flood.running, flood.waiting, flood.registered) == (20, 5, 0, 0, True)
    assert flood.last_run_at == newest.created_at and flood.last_status == newest.status
    assert (summaries["pipeline"].total_runs, summaries["pipeline"].pending) == (3, 3)
    assert summaries["chatty"].total_runs == 0 and summaries["chatty"].last_status is None
    assert set(summaries) >= set(p.durable.registry.names())


def test_a_workflow_no_longer_registered_is_still_summed_up(project_factory: Factory) -> None:
    p = project_factory()
    p.durable.start_many("noop", [{}, {}])
    with p.durable.db.begin() as conn:  # as if a deploy removed the workflow from the code
        conn.execute(text(f'UPDATE "{p.prefix}".workflow_executions SET workflow = \'retired_flow\''))
    [retired] = [s for s in p.durable.list_workflows() if s.name == "retired_flow"]
    assert (retired.registered, retired.total_runs, retired.pending) == (False, 2, 2)


@pytest.mark.parametrize("since", [datetime(2024, 1, 1), -5, "1h", True])
def test_a_bad_since_or_workflow_is_refused(project_factory: Factory, since: object) -> None:
    p = project_factory()
    with pytest.raises(InvalidInput, match="since"):
        p.durable.get_metrics(since=since)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="workflow"):
        p.durable.get_metrics(workflow=7)  # type: ignore[arg-type]


# -- the embedded default --------------------------------------------------------------------------

sqlite_flow = Workflow("embedded_metrics")


@sqlite_flow.step
def settle(ctx):
    import time

    time.sleep(ctx["pause"])
    if ctx["fail"]:
        raise ValueError("declined")
    return ctx


def test_metrics_and_pages_on_the_embedded_default(tmp_path: Path) -> None:
    app = Celery("embedded-metrics")
    app.conf.task_always_eager = True
    durable = Durable(app, workflows=[sqlite_flow], data_dir=tmp_path)
    assert durable.settings.embedded
    try:
        # Given 12 runs on SQLite, one in three failing, with different durations
        ids = [durable.start(sqlite_flow, {"pause": 0.002 * (i % 5), "fail": i % 3 == 0}) for i in range(12)]
        runs = [durable.get_execution(i, include_steps=True) for i in ids]
        # Then the metrics, computed by SQLite, are those of the runs (the same percentiles as Postgres)
        metrics = durable.get_metrics(sqlite_flow)
        assert (metrics.total, metrics.counts["failed"], metrics.success_rate) == (12, 4, 8 / 12)
        _check_figures(metrics, runs)
        [summary] = durable.list_workflows()
        assert (summary.name, summary.total_runs, summary.failed, summary.last_status) == (
            "embedded_metrics", 12, 4, runs[-1].status)
        # And pages cover them once each, newest first
        page = durable.page_executions(limit=5)
        seen = [e.id for e in page.items]
        while page.next_cursor:
            page = durable.page_executions(limit=5, cursor=page.next_cursor)
            seen += [e.id for e in page.items]
        assert seen == [e.id for e in durable.list_executions(limit=100)] and sorted(seen) == sorted(ids)
        first = min(e.created_at for e in runs)
        assert len(durable.list_executions(created_after=first, limit=100)) == 12
        assert durable.list_executions(created_before=first) == []
    finally:
        durable.db.dispose()


# -- log capture limits ----------------------------------------------------------------------------

def test_a_chatty_step_keeps_its_first_entries_and_says_what_was_dropped_on_a_real_worker(
        project_factory: Factory) -> None:
    p = project_factory(log_capture_max_entries=20, log_capture_max_chars=50)
    p.worker(concurrency=1)
    # Given a step that logs a 120-character message then prints 30 lines; once it fails after
    done = p.wait(p.durable.start("capture_flood", {"lines": 30, "long": 120}))
    failed = p.wait(p.durable.start("capture_flood", {"lines": 30, "long": 120, "fail": True}))
    for execution in (done, failed):
        [attempt] = execution.steps
        logs = attempt.logs or []
        # Then it keeps 20 entries, the long one cut at 50 characters and marked
        assert len(logs) == 21
        assert logs[0]["message"] == "x" * 50 + " ... [70 more characters truncated]"
        assert [e["message"] for e in logs[1:20]] == [f"line {i}" for i in range(19)]
        # And one last entry says how many more were dropped
        assert (logs[-1]["level"], logs[-1]["logger"]) == ("WARNING", "durable_celery.capture")
        assert logs[-1]["message"] == "... 11 more entries dropped (log_capture_max_entries=20)"
    assert (done.status, failed.status) == ("completed", "failed")


@pytest.mark.parametrize("setting", [{"log_capture_max_entries": 0}, {"log_capture_max_chars": "4000"},
                                     {"log_capture_max_entries": True}])
def test_bad_log_capture_limits_are_refused(tmp_path: Path, setting: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match=next(iter(setting))):
        Durable(Celery("bad"), data_dir=tmp_path, **setting)  # type: ignore[arg-type]
