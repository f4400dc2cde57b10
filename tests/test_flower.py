"""What a Flower user sees: a real Flower process fed by a real worker's task events, read
through Flower's HTTP API. Each step is a task named after its workflow and step; a step
attempt that failed is a retried task when a retry follows, a failed one when it was the last."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from durable_celery.testing.services import free_port
from durable_celery.testing.workers import CeleryProcess, worker
from tests.conftest import ROOT, Project

Factory = Callable[..., Project]


def flower(p: Project, port: int) -> CeleryProcess:
    """Flower 2 on the project's broker; its API open without auth, as on a developer's machine."""
    proc = CeleryProcess("tests.proj.app", "flower", [f"--port={port}", "--address=127.0.0.1"],
                         env={**p.env, "FLOWER_UNAUTHENTICATED_API": "true"}, ready_marker="Visit me at",
                         cwd=str(ROOT))
    p.processes.append(proc)
    return proc.start()


def tasks_of(port: int, execution_id: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The tasks Flower knows for one execution (its id is the first argument), oldest first,
    once ``count`` of them are in a final state."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks?limit=1000", timeout=5) as response:
            known = json.load(response).values()
        mine = sorted((t for t in known if execution_id in (t.get("args") or "")), key=lambda t: t["received"] or 0)
        if sum(t["state"] in ("SUCCESS", "FAILURE", "RETRY") for t in mine) >= count:
            return mine
        if time.monotonic() > deadline:
            raise AssertionError(f"Flower knows {[(t['name'], t['state']) for t in mine]} of {execution_id}")
        time.sleep(0.2)


def test_flower_shows_each_step_by_name_and_failed_attempts_as_retried_or_failed_tasks(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    # Given a worker that sends task events (-E) and Flower listening to them
    events = worker("tests.proj.app", [p.queue], env=p.env, extra=["-E"], cwd=str(ROOT))
    p.processes.append(events)
    events.start()
    port = free_port()
    flower(p, port)
    time.sleep(1)  # Flower's event consumer connects after it says it is ready
    # When a workflow of three steps runs, one whose step fails once, and one whose step fails for good
    clean = p.wait(p.durable.start("pipeline", {}))
    once = p.wait(p.durable.start("flaky", {"succeed_on": 2}))
    never = p.wait(p.durable.start("flaky", {"succeed_on": 9}))
    assert (clean.status, once.status, never.status) == ("completed", "completed", "failed")
    # Then each step is a task named workflow.step, with the workflow and step in its arguments
    steps = tasks_of(port, clean.id, 3)
    assert [(t["name"], t["state"]) for t in steps] == [
        ("pipeline.first", "SUCCESS"), ("pipeline.second", "SUCCESS"), ("pipeline.third", "SUCCESS")]
    assert "'workflow': 'pipeline'" in steps[0]["kwargs"] and "'step': 'first'" in steps[0]["kwargs"]
    # A failed attempt followed by a retry is a retried task, with the step's error
    retried = tasks_of(port, once.id, 2)
    assert [(t["name"], t["state"]) for t in retried] == [("flaky.sometimes", "RETRY"), ("flaky.sometimes", "SUCCESS")]
    assert "attempt 1 failed: RuntimeError: attempt 1 fails" in retried[0]["exception"]
    # And the last attempt of a step that fails for good is a failed task
    failed = tasks_of(port, never.id, 3)
    assert [t["state"] for t in failed] == ["RETRY", "RETRY", "FAILURE"]
    assert "StepAttemptFailed" in failed[-1]["exception"]
    assert "flaky.sometimes attempt 3 failed: RuntimeError: attempt 3 fails" in failed[-1]["exception"]
    # The engine's own record is unchanged by what Celery was told
    assert [(s.attempt, s.status) for s in never.steps] == [(1, "failed"), (2, "failed"), (3, "failed")]
