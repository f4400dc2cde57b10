"""The tick runs inside the beat process, not as a task: with every worker slot busy on a long
step, timers still fire, workflow timeouts still fail their executions and a dead worker's lease
is still recovered; no tick message ever reaches a worker; and a beat whose database is down
keeps running and resumes ticking when the database is back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from durable_celery.testing.workers import beat
from tests.conftest import POSTGRES, ROOT, Project, _delete_queues

Factory = Callable[..., Project]


def wait_for_effect(p: Project, execution_id: str, step: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while step not in p.effects(execution_id):
        assert time.monotonic() < deadline, f"step {step} never started"
        time.sleep(0.05)


def row(p: Project, execution_id: str) -> Any:
    return p.sql("SELECT status, seq, lease_owner, ready_at FROM {schema}.workflow_executions WHERE id = :id",
                 id=execution_id)[0]


def holds_the_slot(p: Project, execution_id: str) -> bool:
    status, _seq, lease_owner, _ready = row(p, execution_id)
    return status == "running" and lease_owner is not None


def poll(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_timers_and_timeouts_fire_while_the_only_worker_slot_is_busy(project_factory: Factory, broker: str) -> None:
    p = project_factory(broker)
    worker = p.worker(concurrency=1)
    beats = p.beat()
    # Given an execution asleep for 3 s
    sleeper = p.durable.start("tick_sleeper", {"seconds": 3})
    p.wait(sleeper, statuses={"waiting"}, timeout=20)
    _, asleep_seq, _, _ = row(p, sleeper)
    # And the only worker slot then held by an 8 s step
    hog = p.durable.start("tick_hog", {"seconds": 8})
    wait_for_effect(p, hog, "hog_the_slot")
    # And an execution with a 2 s workflow timeout that cannot get a slot
    late = p.durable.start("tick_deadline", {})

    # Then the timeout fails it on time, while the slot is still held
    poll(lambda: row(p, late)[0] == "failed", 10, "the workflow timeout never fired")
    assert holds_the_slot(p, hog)
    execution = p.durable.get_execution(late)
    assert execution.status == "failed" and execution.error["type"] == "WorkflowTimeout"
    assert p.effects(late) == {}  # it never ran

    # And the sleeper is woken when its timer falls due: runnable again, waiting for the slot
    poll(lambda: row(p, sleeper)[0] != "waiting", 10, "the sleep never fired")
    assert holds_the_slot(p, hog)
    status, seq, lease_owner, ready_at = row(p, sleeper)
    assert (status, seq, lease_owner) == ("running", asleep_seq + 1, None)
    timeout_at = p.sql("SELECT timeout_at FROM {schema}.waits WHERE execution_id = :id", id=sleeper)[0][0]
    assert 0 <= (ready_at - timeout_at).total_seconds() < 1.5  # within a tick (0.5 s) and slack

    # And once the slot frees up, both finish
    assert p.wait(hog).status == "completed"
    woken = p.wait(sleeper)
    assert woken.status == "completed" and woken.context["woke"] is True
    assert p.effects(sleeper) == {"doze": 2}

    # And no tick went through the broker: beat ran it itself, without errors
    assert p.durable.tick_task_name not in (p.app.conf.beat_schedule or {})
    assert f"{p.durable.tick_task_name}[" not in worker.log()  # no "Task durable...tick[id] received"
    assert "Task tick_sleeper.doze[" in worker.log()  # step tasks, logged under their shadow name workflow.step
    beat_log = beats.log()
    assert "Sending due task" not in beat_log
    assert "tick failed" not in beat_log and "Traceback" not in beat_log


def test_a_dead_workers_lease_is_recovered_while_the_only_engine_worker_is_busy(project_factory: Factory) -> None:
    p = project_factory("redis")
    side = f"{p.queue}-side"
    try:
        p.beat()
        p.worker(concurrency=1)  # the only worker on the engine queue
        doomed = p.worker(concurrency=1, queues=[side], env={"DT_HANG_SECONDS": "60"})
        # Given a step hanging on a worker of another queue
        stuck = p.durable.start("tick_stuck", {}, queue=side)
        wait_for_effect(p, stuck, "hang_here")
        # And the engine worker's only slot held by a 12 s step
        hog = p.durable.start("tick_hog", {"seconds": 12})
        wait_for_effect(p, hog, "hog_the_slot")
        # When the hanging worker is killed
        doomed.kill()
        killed_at = time.monotonic()
        # Then its lease is released once it expires (3 s), while the engine worker is still busy
        poll(lambda: row(p, stuck)[2] is None, 10, "the dead worker's lease was never recovered")
        assert time.monotonic() - killed_at < 3 + 0.5 + 1.5
        assert holds_the_slot(p, hog)
        # And the step runs again on a new worker of its queue
        p.worker(concurrency=1, queues=[side])
        execution = p.wait(stuck, timeout=20)
        assert execution.status == "completed" and execution.context["done"] is True
        assert p.effects(stuck) == {"hang_here": 2}
    finally:
        for proc in p.processes:
            proc.stop()
        _delete_queues(p.broker, [side])


def test_a_beat_whose_database_is_down_keeps_running_and_ticks_again_once_it_is_back(project_factory: Factory) -> None:
    p = project_factory("redis")
    name = f"{p.prefix}_db"
    admin = POSTGRES.replace("+psycopg", "")
    url = POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    # Given a beat whose database does not exist yet
    down = beat("tests.proj.app", env={**p.env, "DT_DB": url}, cwd=str(ROOT))
    p.processes.append(down)
    down.start()
    try:
        time.sleep(3)  # six intervals
        # Then it is still running, and said so once, with the cause
        assert down.alive()
        assert down.log().count("durable: tick failed") == 1
        assert f'database "{name}" does not exist' in down.log()
        # When the database appears
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        # Then the next tick works: it migrated the schema and says it is back
        poll(lambda: "tick works again" in down.log(), 10, f"the tick never recovered:\n{down.log()[-3000:]}")
        assert down.alive()
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                                  (p.prefix,)).fetchone()
        assert tables is not None and tables[0] > 0
    finally:
        down.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
