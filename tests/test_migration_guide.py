"""The migration guide's stages (docs/migrating-from-celery.md) run as a user runs them:
``python -m examples.migration.stageN`` in a subprocess, each starting and stopping its own
worker processes, on the real Redis and PostgreSQL; and the old canvas and its workflow side by
side on one broker. Every test gets its own queues, Redis keys and Postgres schema (through the
``MIGRATION_*`` variables the stages read), deleted afterwards."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import redis
from kombu import Connection

from tests.conftest import BROKERS, POSTGRES, ROOT


@dataclass
class Run:
    """One stage's output and when its process started and ended."""

    out: str
    started: float
    ended: float

    def results(self, kind: str) -> dict[str, dict[str, str]]:
        """``{day: result}`` from the lines ``<kind> result <day>: <json>``."""
        return {day: json.loads(value) for day, value in re.findall(rf"^{kind} result (\S+): (.*)$", self.out, re.M)}


@dataclass
class Namespace:
    """The isolated names of one test: queues, schema and Redis keys."""

    name: str

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "MIGRATION_BROKER": BROKERS["redis"],
                "MIGRATION_RESULT_BACKEND": BROKERS["redis"], "MIGRATION_REDIS": BROKERS["redis"],
                "MIGRATION_DATABASE_URL": POSTGRES, "MIGRATION_QUEUE": self.old_queue,
                "MIGRATION_DURABLE_QUEUE": f"{self.name}-durable", "MIGRATION_PREFIX": self.name}

    @property
    def old_queue(self) -> str:
        return f"{self.name}-reports"

    def start(self, stage: str, *days: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", f"examples.migration.{stage}", *days], cwd=ROOT,
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def finish(self, proc: subprocess.Popen[str], started: float) -> Run:
        try:
            out, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
        ended = time.monotonic()
        assert proc.returncode == 0, out
        assert "Traceback" not in out, out
        return Run(out, started, ended)

    def run(self, stage: str, *days: str) -> Run:
        started = time.monotonic()
        return self.finish(self.start(stage, *days), started)

    def executions(self) -> list[tuple[str, str, str]]:
        """(workflow, status, day or canvas args) of every execution, oldest first."""
        with psycopg.connect(POSTGRES.replace("+psycopg", "")) as conn:
            rows = conn.execute(f'SELECT workflow, status, input FROM "{self.name}".workflow_executions '
                                "WHERE kind = 'workflow' ORDER BY created_at").fetchall()
        return [(workflow, status, input.get("day") or input["args"][0]) for workflow, status, input in rows]

    def channel(self) -> dict[str, dict[str, str]]:
        """What was posted to the reports channel, by day."""
        raw = redis.Redis.from_url(BROKERS["redis"], decode_responses=True).hgetall(
            f"{self.old_queue}:channel:#daily-reports")
        return {day: json.loads(message) for day, message in raw.items()}

    def publish_calls(self, day: str) -> int:
        return int(redis.Redis.from_url(BROKERS["redis"]).get(f"{self.old_queue}:publish_calls:{day}") or 0)

    def drop(self) -> None:
        with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
        r = redis.Redis.from_url(BROKERS["redis"])
        for pattern in (f"{self.old_queue}:*", f"_kombu.binding*.{self.name}-*"):  # the tasks' keys, the bindings
            for key in r.scan_iter(pattern):
                r.delete(key)
        with Connection(BROKERS["redis"]) as conn:
            channel = conn.channel()
            for queue in (self.old_queue, f"{self.name}-durable"):
                channel.queue_delete(queue)


@pytest.fixture
def ns() -> Iterator[Namespace]:
    namespace = Namespace(f"mg_{uuid.uuid4().hex[:10]}")
    yield namespace
    namespace.drop()


def ran(out: str, pool: str) -> dict[str, int]:
    """``{task: count}`` from a stage's line ``<pool> pool ran: task xN, ...``."""
    line = re.search(rf"^  {re.escape(pool)} pool ran: (.*)$", out, re.M)
    assert line is not None, out
    return {task: int(n) for task, n in re.findall(r"(\S+) x(\d+)", line.group(1))}


REPORT_TASKS = ["reports.combine", "reports.fetch_orders", "reports.publish", "reports.revenue",
                "reports.score_fraud", "reports.top_customers"]


def test_stage0_runs_the_canvas_with_its_chord_on_a_plain_worker_pool(ns: Namespace) -> None:
    run = ns.run("stage0_celery", "2030-01-01", "2030-01-02")
    results = run.results("canvas")
    assert list(results) == ["2030-01-01", "2030-01-02"]
    assert results["2030-01-01"] == {"channel": "#daily-reports", "day": "2030-01-01", "message_id": "msg-2030-01-01",
                                     "text": "2030-01-01: revenue 1553, top fay, dee, bob, 2 suspicious"}
    assert ns.channel() == results
    assert ran(run.out, "old") == {task: 2 for task in REPORT_TASKS}  # every task of both canvases, on the old pool


def test_stage1_runs_the_compiled_canvas_as_a_workflow_beside_the_old_canvas_with_the_same_result(
        ns: Namespace) -> None:
    run = ns.run("stage1_from_canvas", "2030-01-01", "2030-01-02")
    assert "workflow steps: fetch_orders, chord, combine, publish" in run.out
    assert run.results("workflow") == run.results("canvas") == ns.channel()
    assert run.out.count("same result: yes") == 2
    assert "publish ran 2 time(s)" in run.out  # both ways ran for each day; the task is idempotent: one post
    # The canvases ran on the old pool; the workflow's steps ran the same task bodies in the workflow pool
    assert ran(run.out, "old") == {task: 2 for task in REPORT_TASKS}
    # (each step task is logged under its shadow name, workflow.step)
    assert {task.split(".")[0] for task in ran(run.out, "workflows")} == {"daily_report_v1"}
    assert ns.executions() == [("daily_report_v1", "completed", "2030-01-01"),
                               ("daily_report_v1", "completed", "2030-01-02")]


def test_stage2_runs_native_steps_awaits_the_old_pool_checkpoints_the_post_and_compensates(ns: Namespace) -> None:
    run = ns.run("stage2_steps", "2030-02-01")
    assert ns.executions() == [("daily_report_v1", "completed", "2030-01-31"),  # left in flight by stage 1
                               ("daily_report_v2", "completed", "2030-02-01"),
                               ("daily_report_v2", "compensated", "2030-02-28")]
    # pinning failed once, the step ran twice; the post inside it ran once (checkpoint)
    assert "publish_report   attempt 1  failed    error: chat API: 429 Too Many Requests" in run.out
    assert "publish ran 1 time(s) for 2 attempts of publish_report" in run.out
    assert ns.publish_calls("2030-02-01") == 1
    assert "archive_report   attempt 1  failed    error: s3://frozen-bucket is read-only" in run.out
    assert "retract_report   attempt 1  completed ok (compensates publish_report)" in run.out
    assert set(ns.channel()) == {"2030-01-31", "2030-02-01"}  # the compensated run's post was retracted
    # the old pool ran only the awaited fraud scoring (one per v2 run); its results came back as callbacks
    assert ran(run.out, "old") == {"reports.score_fraud": 2}
    assert ran(run.out, "workflows")[f"durable.{ns.name}.task_done"] == 2


def test_stage3_runs_the_finished_workflow_once_per_day_and_drains_the_old_queue(ns: Namespace) -> None:
    run = ns.run("stage3_native", "2030-03-01", "2030-03-02")
    assert run.out.count("(a second start returned the same id)") == 2
    assert ns.executions() == [("daily_report_v2", "completed", "2030-02-27"),  # left in flight by stage 2
                               ("daily_report_v3", "completed", "2030-03-01"),
                               ("daily_report_v3", "completed", "2030-03-02")]
    assert set(ns.channel()) == {"2030-02-27", "2030-03-01", "2030-03-02"}
    assert all(ns.publish_calls(day) == 1 for day in ns.channel())
    # The one pool served both queues: the v2 leftover's awaited task drained from the old queue
    tasks = ran(run.out, "workflows+old")
    assert (tasks.pop(f"durable.{ns.name}.task_done"), tasks.pop("reports.score_fraud")) == (1, 1)
    assert {task.split(".")[0] for task in tasks} == {"daily_report_v2", "daily_report_v3"}
    assert f"old queue '{ns.old_queue}': 0 message(s) waiting; active executions: " \
           "{'daily_report_v1': 0, 'daily_report_v2': 0}" in run.out
    assert "the old tasks can be unregistered and the old pool retired" in run.out


def test_the_old_canvas_and_the_workflow_run_at_the_same_time_on_one_broker_with_the_same_result(
        ns: Namespace) -> None:
    days = ("2030-04-01", "2030-04-02")
    started = time.monotonic()
    old, new = ns.start("stage0_celery", *days), ns.start("stage1_from_canvas", *days)
    runs: dict[str, Run] = {}
    threads = [threading.Thread(target=lambda name, proc: runs.__setitem__(name, ns.finish(proc, started)),
                                args=(name, proc)) for name, proc in (("old", old), ("new", new))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(runs) == {"old", "new"}, "a stage failed: see the output above"
    stage0, stage1 = runs["old"], runs["new"]
    # Stage 0's canvases (plain app, no engine) and stage 1's canvases and workflows, same days, same result
    assert stage0.results("canvas") == stage1.results("canvas") == stage1.results("workflow") == ns.channel()
    assert set(ns.channel()) == set(days)
    assert min(stage0.ended, stage1.ended) - started > 3  # both were up, with their pools, for seconds
    assert all(ns.publish_calls(day) == 3 for day in days)  # three runs a day, one post a day
    assert [status for _, status, _ in ns.executions()] == ["completed", "completed"]
    # Two old pools shared the old queue: between them they ran both stages' canvases
    old_tasks = [ran(run.out, "old") for run in (stage0, stage1)]
    assert {task: sum(counts.get(task, 0) for counts in old_tasks) for task in REPORT_TASKS} == \
           {task: 4 for task in REPORT_TASKS}
