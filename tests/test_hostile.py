"""Hostile steps, each on a real worker: a step that kills its own process, one that hangs
past its timeout (in each pool), one that returns a huge context, and one that returns a
structure nested far too deep. Each ends in a clear, recorded outcome, and the worker lives on
(or, for a pool child that killed itself, is replaced by Celery as designed)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from durable_celery import codec
from tests.conftest import Project

Factory = Callable[..., Project]


def attempts(p: Project, execution_id: str) -> list[tuple[str, int, str, str | None]]:
    """(step, attempt, status, error type) of each recorded attempt, in order."""
    rows = p.sql("SELECT step_name, attempt, status, error->>'type' FROM {schema}.step_executions "
                 "WHERE execution_id = :id ORDER BY seq", id=execution_id)
    return [tuple(r) for r in rows]


def test_a_step_that_kills_its_process_fails_with_worker_lost_after_max_lost_leases(project_factory: Factory) -> None:
    p = project_factory("redis", max_lost_leases=2)
    p.beat()
    worker = p.worker(concurrency=1)
    # Given a step that calls os._exit(1) in its prefork pool child, with two attempts
    execution_id = p.durable.start("hostile_exit", {})
    execution = p.wait(execution_id, timeout=90)
    # Then each attempt ends, after max_lost_leases lost workers, as a failed attempt with
    # WorkerLost; the retry policy applied, and the execution failed: no endless loop
    assert execution.status == "failed"
    assert execution.error["type"] == "WorkerLost"
    assert attempts(p, execution_id) == [("exit_process", 1, "failed", "WorkerLost"),
                                         ("exit_process", 2, "failed", "WorkerLost")]
    # The body ran max_lost_leases times per attempt (one more for the first: a lease handed with
    # the start's message and lost within its first second is not counted)
    runs = p.effects(execution_id)["exit_process"]
    assert 4 <= runs <= 5, runs
    # And the worker's main process lived on: Celery replaced each pool child
    assert worker.alive()
    assert "WorkerLostError" in worker.log() or "exited with 'exitcode 1'" in worker.log()


@pytest.mark.parametrize("pool, how", [("prefork", "sleep"), ("prefork", "spin"), ("solo", "sleep"),
                                       ("solo", "spin"), ("threads", "sleep"), ("threads", "spin")])
def test_a_step_that_hangs_past_its_timeout_fails_with_step_timeout_in_every_pool(
        project_factory: Factory, pool: str, how: str) -> None:
    p = project_factory("redis")
    worker = p.worker(concurrency=1, pool=pool)  # one slot: a hung step must not keep it
    # Given a step with a 1 s timeout and two attempts that hangs (time.sleep(3600), or a loop)
    hung = p.durable.start("hostile_hang", {"how": how})
    execution = p.wait(hung, timeout=30)
    # Then each attempt is recorded as a StepTimeout about its timeout after it started, and the
    # retry policy applied: the execution failed after two attempts
    assert execution.status == "failed" and execution.error["type"] == "StepTimeout"
    assert [(s.attempt, s.error["type"]) for s in execution.steps] == [(1, "StepTimeout"), (2, "StepTimeout")]
    assert all(900 <= s.duration_ms < 2500 for s in execution.steps), [s.duration_ms for s in execution.steps]
    # And what each attempt printed before it was cut off is kept on it
    assert all(f"hanging by {how}" in [entry["message"] for entry in s.logs or []] for s in execution.steps)
    # And the worker is not wedged: its only slot runs another workflow to its end, in the same
    # process (in the threads pool, while the abandoned thread of a blocking call still sleeps)
    after = p.wait(p.durable.start("pipeline", {}), timeout=30)
    assert after.status == "completed"
    assert worker.alive()


def test_a_step_returning_a_context_over_max_context_bytes_fails_clearly(project_factory: Factory) -> None:
    p = project_factory("redis")
    worker = p.worker(concurrency=1)
    # Given a step that returns a context of 20 MB (the default limit is 8 MiB)
    execution_id = p.durable.start("hostile_big", {"size": 20_000_000})
    execution = p.wait(execution_id, timeout=60)
    # Then its attempt failed with ContextNotSerializable naming the size and the limit, and
    # nothing of it was stored
    assert execution.status == "failed"
    assert execution.error["type"] == "ContextNotSerializable"
    assert "max_context_bytes" in execution.error["message"]
    assert attempts(p, execution_id) == [("grow", 1, "failed", "ContextNotSerializable")]
    assert p.effects(execution_id) == {"grow": 1}
    size = p.sql("SELECT octet_length(context::text) FROM {schema}.workflow_executions WHERE id = :id",
                 id=execution_id)[0][0]
    assert size < 1000
    # And the worker goes on
    assert p.wait(p.durable.start("pipeline", {}), timeout=30).status == "completed"
    assert worker.alive()


def test_a_context_under_max_context_bytes_is_stored_and_carried_on(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker(concurrency=1)
    started = time.monotonic()
    execution = p.wait(p.durable.start("hostile_big", {"size": 5_000_000}), timeout=60)
    assert execution.status == "completed" and execution.context == {"size": 5_000_000}
    assert time.monotonic() - started < 30


def test_a_step_returning_a_structure_nested_10000_levels_fails_clearly(project_factory: Factory) -> None:
    p = project_factory("redis")
    worker = p.worker(concurrency=1)
    # Given a step that returns {"deep": {"a": {"a": ...}}} 10,000 levels deep
    execution_id = p.durable.start("hostile_deep", {"levels": 10_000})
    execution = p.wait(execution_id, timeout=30)
    # Then the attempt failed with ContextNotSerializable saying how deep is allowed, once
    # (retrying would return the same), and the worker process is the same one
    assert execution.status == "failed"
    assert execution.error["type"] == "ContextNotSerializable"
    assert f"nested deeper than {codec.MAX_DEPTH} levels" in execution.error["message"]
    assert attempts(p, execution_id) == [("nest", 1, "failed", "ContextNotSerializable")]
    assert p.wait(p.durable.start("pipeline", {}), timeout=30).status == "completed"
    assert worker.alive()
    assert "RecursionError" not in worker.log()
