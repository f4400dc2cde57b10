"""Attaching the engine changes nothing for the workers and tasks a project already has."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import redis

from durable_celery.runtime.awaited import callback_names
from tests.conftest import BROKERS, Project

Factory = Callable[..., Project]
#: Nothing listens there: the workflow database is down.
DATABASE_DOWN = {"DT_DB": "postgresql+psycopg://postgres@127.0.0.1:1/test"}


def add_up(p: Project, x: int, y: int, timeout: float = 20) -> int:
    """Send the project's own plain task and wait for what it recorded."""
    key = f"sum-{uuid.uuid4().hex}"
    r = redis.Redis.from_url(BROKERS["redis"])
    p.app.send_task("proj.add_up", args=(key, x, y), queue=f"{p.queue}-default")
    found = r.blpop([key], timeout=timeout)
    assert found is not None, "the plain task never ran"
    r.delete(key)
    return int(found[1])


def consumes(log: str, queue: str) -> bool:
    """Whether the worker's banner lists ``queue`` among those it consumes."""
    return re.search(rf"\.> {re.escape(queue)}\s", log) is not None


def test_a_worker_started_without_Q_consumes_what_it_did_before_the_engine_was_attached(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    w = p.worker(queues=[])
    assert consumes(w.log(), f"{p.queue}-default") and not consumes(w.log(), p.queue)
    execution_id = p.durable.start("pipeline", {})
    assert add_up(p, 2, 3) == 5
    time.sleep(1)
    assert p.durable.get_execution(execution_id).status == "pending"


def test_a_worker_for_the_projects_own_queues_serves_them_with_the_workflow_database_down(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    w = p.worker(queues=[f"{p.queue}-default"], env=DATABASE_DOWN)
    assert add_up(p, 20, 22) == 42
    assert "cannot start" not in w.log() and "Traceback" not in w.log() and "durable:" not in w.log()


def test_a_worker_serving_workflows_starts_with_the_database_down_and_keeps_serving_its_other_queues(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    w = p.worker(queues=[p.queue, f"{p.queue}-default"], env=DATABASE_DOWN)
    assert w.alive() and "cannot be reached" in w.log()
    assert add_up(p, 1, 1) == 2


def test_the_engines_tasks_are_told_apart_by_an_attribute_and_a_name_prefix(project_factory: Factory) -> None:
    p = project_factory("redis")
    engine = [t for t in p.app.tasks.values() if getattr(t, "durable_engine", False)]
    callbacks = callback_names(p.durable.settings.prefix)  # of await_task
    assert sorted(t.name for t in engine) == sorted([p.durable.step_task_name, p.durable.tick_task_name,
                                                     p.durable.start_task_name, *callbacks])
    assert all(t.name.startswith("durable.") for t in engine)
    assert not getattr(p.app.tasks["proj.add_up"], "durable_engine", False)
