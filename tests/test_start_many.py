"""``start_many``: many executions started at once, as that many ``start`` calls would, with
the same guarantees. Rows are inserted in one statement and committed before any message is
published; a lost publish is recovered by the tick; bad input writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from kombu import Connection as KombuConnection
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from durable_celery import Durable, DurableError, InvalidInput, WorkflowNotFound
from durable_celery.engine.values import Message
from durable_celery.runtime.tick import tick
from durable_celery.testing.workers import worker
from tests.conftest import FINAL, ROOT, Project
from tests.test_eager import counter, eager_durable

Factory = Callable[..., Project]


def rows(p: Project) -> list[Any]:
    return p.sql("SELECT id, status, dispatched_at, input FROM {schema}.workflow_executions ORDER BY created_at")


def wait_all(p: Project, ids: list[str], timeout: float = 60) -> dict[str, str]:
    """Every execution's final status, once all have one."""
    deadline = time.monotonic() + timeout
    while True:
        found = dict(p.sql("SELECT id, status FROM {schema}.workflow_executions WHERE id = ANY(:ids)", ids=ids))
        if len(found) == len(set(ids)) and set(found.values()) <= FINAL:
            return found
        assert time.monotonic() < deadline, f"not all finished after {timeout}s: {sorted(found.values())}"
        time.sleep(0.1)


def test_start_many_runs_every_execution_to_completion_on_a_worker_and_returns_ids_in_input_order(
        project_factory: Factory) -> None:
    p = project_factory()
    p.worker()
    # When 200 executions are started at once
    ids = p.durable.start_many("pipeline", [{"n": i} for i in range(200)])
    # Then each id is that of its input, in order
    assert len(ids) == len(set(ids)) == 200
    for i in (0, 57, 199):
        assert p.durable.get_execution(ids[i]).input == {"n": i}
    # And every one runs to completion, each step once
    assert set(wait_all(p, ids).values()) == {"completed"}
    assert p.durable.get_execution(ids[123]).context == {"n": 123, "trail": ["first", "second", "third"]}
    assert p.effects(ids[5]) == {"first": 1, "second": 1, "third": 1}


def test_idempotency_keys_dedupe_within_the_batch_and_against_stored_executions(project_factory: Factory) -> None:
    p = project_factory()
    earlier = p.durable.start("pipeline", {"n": "earlier"}, idempotency_key="order-1")
    ids = p.durable.start_many("pipeline", [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}],
                               idempotency_keys=["order-1", "order-2", "order-2", None, "order-3"])
    # A key already stored returns its execution; a key repeated in the batch returns its first use
    assert ids[0] == earlier
    assert ids[1] == ids[2] and len({ids[0], ids[1], ids[3], ids[4]}) == 4
    assert len(rows(p)) == 4
    assert p.durable.get_execution(ids[0]).input == {"n": "earlier"}
    assert p.durable.get_execution(ids[2]).input == {"n": 1}
    # And the same batch again starts nothing new
    assert p.durable.start_many("pipeline", [{}] * 3, idempotency_keys=["order-3", "order-2", "order-1"]) == \
        [ids[4], ids[1], earlier]
    assert len(rows(p)) == 4


@pytest.mark.parametrize("call, error, names", [
    (lambda d: d.start_many("pipeline", [{}, {}, {"when": object()}, {}]), InvalidInput, "inputs[2]"),
    (lambda d: d.start_many("pipeline", [{}, ["not", "a", "dict"]]), InvalidInput, "inputs[1]"),
    (lambda d: d.start_many("pipeline", [{}, {}], idempotency_keys=["a", ""]), InvalidInput, "idempotency_keys[1]"),
    (lambda d: d.start_many("pipeline", [{}, {}], idempotency_keys=["a"]), InvalidInput, "1 keys for 2 inputs"),
    (lambda d: d.start_many("pipeline", {"n": 1}), InvalidInput, "list of input dicts"),
    (lambda d: d.start_many("pipeline", [{}], priority=11), InvalidInput, "priority"),
    (lambda d: d.start_many("pipeline", [{}], connection="nope"), InvalidInput, "connection"),
    (lambda d: d.start_many("no_such_workflow", [{}]), WorkflowNotFound, "no_such_workflow"),
])
def test_bad_input_at_any_index_writes_nothing_and_names_the_index(project_factory: Factory, call: Any,
                                                                    error: type, names: str) -> None:
    p = project_factory()
    with pytest.raises(error) as err:
        call(p.durable)
    assert isinstance(err.value, DurableError) and names in str(err.value)
    assert rows(p) == []


def test_no_inputs_start_nothing(project_factory: Factory) -> None:
    p = project_factory()
    assert p.durable.start_many("pipeline", []) == []
    assert rows(p) == []


def test_a_process_killed_between_the_commit_and_the_publish_loses_nothing(project_factory: Factory,
                                                                          tmp_path: Path) -> None:
    p = project_factory()
    marker = tmp_path / "fault.log"
    # Given a process that dies (SIGKILL) right after start_many's rows commit, before any publish
    script = "from tests.proj.factory import from_env; _, d = from_env(); d.start_many('pipeline', [{'n': i} for i in range(50)])"
    env = {**os.environ, **p.env, "DURABLE_FAULTS": "after_start_commit:pipeline", "DURABLE_FAULT_MARKER": str(marker)}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == -9, result.stderr
    assert marker.read_text().startswith("after_start_commit:pipeline:")
    # Then every row is committed, marked dispatched as start marks it (its message is on the way)
    stored = rows(p)
    assert len(stored) == 50 and all(r.status == "pending" and r.dispatched_at is not None for r in stored)
    # And once the tick finds them unclaimed, it publishes them again and they all complete, each step once
    p.worker()
    p.beat()
    ids = [r.id for r in stored]
    assert set(wait_all(p, ids).values()) == {"completed"}
    assert all(p.effects(i) == {"first": 1, "second": 1, "third": 1} for i in ids[:5])


def test_with_a_callers_connection_the_starts_exist_and_run_only_if_it_commits(project_factory: Factory) -> None:
    p = project_factory()
    p.worker()
    engine = create_engine(p.durable.db.url)
    try:
        # Given a caller's transaction that rolls back: nothing is written, nothing published
        with engine.connect() as conn:
            with conn.begin() as tx:
                rolled_back = p.durable.start_many("pipeline", [{"n": 1}, {"n": 2}], connection=conn)
                tx.rollback()
        assert len(rolled_back) == 2 and rows(p) == []
        # Given one that commits: the tick publishes them once they are visible
        with engine.begin() as conn:
            committed = p.durable.start_many("pipeline", [{"n": 3}, {"n": 4}, {"n": 5}], connection=conn)
        assert tick(p.durable).dispatched == 3
        assert set(wait_all(p, committed).values()) == {"completed"}
        # And a Session: nothing before it commits, published when it does
        with Session(engine) as session:
            in_session = p.durable.start_many("pipeline", [{"n": 6}, {"n": 7}], connection=session)
            time.sleep(0.5)
            assert len(rows(p)) == 3
            session.commit()
        assert set(wait_all(p, in_session).values()) == {"completed"}
        # A session rolled back publishes nothing
        with Session(engine) as session:
            p.durable.start_many("pipeline", [{"n": 8}], connection=session)
            session.rollback()
        assert len(rows(p)) == 5
    finally:
        engine.dispose()


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_start_and_start_many_publish_the_same_message(project_factory: Factory, broker: str) -> None:
    p = project_factory(broker)  # no worker: the messages stay on the broker
    dispatcher = p.durable.dispatcher
    dispatcher.send("exec-1", 0, workflow="pipeline", step="first", queue=p.queue, priority=3)
    dispatcher.send_many([Message("exec-1", 0, "pipeline", "first", p.queue, 3)])
    with KombuConnection(p.broker) as conn:
        channel = conn.default_channel
        raw = [channel.basic_get(p.queue, no_ack=True) for _ in range(2)]
        assert all(m is not None for m in raw)
        # kombu's message, from the Redis transport's own or from RabbitMQ's
        got = [m if hasattr(m, "decode") else channel.message_to_python(m) for m in raw]
    by_send, by_send_many = ({k: v for k, v in m.headers.items() if k not in ("id", "root_id")} for m in got)
    assert by_send == by_send_many and by_send["task"] == p.durable.step_task_name
    assert got[0].decode() == got[1].decode()
    assert got[0].properties["priority"] == got[1].properties["priority"]


def test_in_eager_mode_start_many_runs_every_execution_before_it_returns() -> None:
    with eager_durable([counter]) as durable:
        ids = durable.start_many(counter, [{"n": 0, "to": 3}, {"n": 5, "to": 7}])
        assert [durable.get_execution(i).status for i in ids] == ["completed", "completed"]
        assert [durable.get_execution(i).context["n"] for i in ids] == [3, 7]


def test_on_the_embedded_default_start_many_runs_on_a_worker_through_the_file_broker(tmp_path: Path,
                                                                                     monkeypatch: Any) -> None:
    monkeypatch.setenv("DURABLE_DATA_DIR", str(tmp_path))
    durable = Durable(Celery(f"embedded-{uuid.uuid4().hex[:8]}"), workflows=["tests.proj.embedded_app"])
    assert durable.settings.database_url.startswith("sqlite")
    try:
        with worker("tests.proj.embedded_app", [durable.settings.queue], concurrency=1, pool="solo",
                    env={"DURABLE_DATA_DIR": str(tmp_path)}, cwd=str(ROOT)):
            ids = durable.start_many("embedded_doubled", [{"n": i} for i in range(20)],
                                     idempotency_keys=[f"k{i % 10}" for i in range(20)])
            assert ids[:10] == ids[10:] and len(set(ids)) == 10
            done = [durable.wait(i, timeout=60) for i in ids[:10]]
        assert [e.context["n"] for e in done] == [2 * i for i in range(10)]
    finally:
        durable.db.dispose()
