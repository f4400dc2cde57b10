"""Legacy Celery tasks awaited from a step: the task runs on a plain worker of another app (no
engine in that process) and its own queue; the step suspends (no worker held) until the task's
result comes back by a link callback; a result delivered twice counts once, a failure raises,
and a task that never answers hits the timeout."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from celery import group, signature

from durable_celery import InvalidInput
from durable_celery.orchestration import await_task
from durable_celery.runtime.awaited import callback_names
from tests.conftest import Project

Factory = Callable[..., Project]


def legacy_runs(p: Project, note: str = "multiply") -> int:
    return p.notes("legacy").get(note, 0)


def task_wait(p: Project, execution_id: str) -> tuple[str, int, int, str, str]:
    (ref, entered_seq, idx, status, sent_at), = p.sql(
        "SELECT ref, entered_seq, idx, status, sent_at FROM {schema}.waits WHERE execution_id = :id AND kind = 'task'",
        id=execution_id)
    assert sent_at is not None
    return ref, entered_seq, idx, status, sent_at


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_a_legacy_task_on_a_plain_worker_is_awaited_durably(project_factory: Factory, broker: str) -> None:
    p = project_factory(broker)
    p.worker()
    p.beat()
    legacy = p.legacy_worker()
    execution_id = p.durable.start("awaiter", {"x": 6, "y": 7, "seconds": 1.5})
    p.wait(execution_id, statuses={"waiting"}, timeout=20)
    # No worker is held while the task runs elsewhere
    assert p.sql("SELECT lease_owner FROM {schema}.workflow_executions WHERE id = :id", id=execution_id)[0][0] is None
    execution = p.wait(execution_id)
    assert execution.status == "completed" and execution.context["product"] == 42
    assert legacy_runs(p) == 1
    assert p.effects(execution_id) == {"multiply_remotely": 2}  # sent once, then resumed with the result
    assert task_wait(p, execution_id)[3] == "resolved"
    assert "durable" not in legacy.log().lower().replace("durable-worker", "")  # no engine in that process


def test_a_result_delivered_twice_counts_once(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    p.beat()
    execution_id = p.durable.start("awaiter", {"x": 2, "y": 2})
    p.wait(execution_id, statuses={"waiting"}, timeout=20)  # no legacy worker yet: the task waits in its queue
    ref, entered_seq, idx, _, _ = task_wait(p, execution_id)
    where = {"execution_id": execution_id, "entered_seq": entered_seq, "idx": idx, "task_id": ref}
    # Two deliveries of the callback, then the task's own result: only the first counts
    for value in (5, 6):
        p.app.send_task(callback_names(p.prefix)[0], args=(value,), kwargs=where, queue=p.queue)
    execution = p.wait(execution_id)
    assert execution.context["product"] == 5
    p.legacy_worker()
    deadline = time.monotonic() + 20
    while legacy_runs(p) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1)
    assert p.durable.get_execution(execution_id).context["product"] == 5
    assert p.effects(execution_id) == {"multiply_remotely": 2}


def test_the_legacy_worker_killed_mid_task_and_restarted_yields_one_result(project_factory: Factory) -> None:
    p = project_factory("amqp")  # RabbitMQ hands a dead consumer's unacked message to the next one at once
    p.worker()
    p.beat()
    doomed = p.legacy_worker()
    execution_id = p.durable.start("awaiter", {"x": 3, "y": 5, "seconds": 3})
    deadline = time.monotonic() + 20
    while legacy_runs(p) < 1:
        assert time.monotonic() < deadline, "the legacy task never started"
        time.sleep(0.05)
    doomed.kill()  # acks_late: the message comes back to the next worker
    p.legacy_worker()
    execution = p.wait(execution_id, timeout=60)
    assert execution.status == "completed" and execution.context["product"] == 15
    assert legacy_runs(p) == 2  # the task itself ran again (at least once, as Celery delivers)...
    assert p.effects(execution_id) == {"multiply_remotely": 2}  # ...but the step took one result


def test_a_failing_legacy_task_raises_task_failed_in_the_step(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    p.beat()
    p.legacy_worker()
    execution = p.wait(p.durable.start("exploder", {}))
    assert execution.status == "failed"
    assert execution.error is not None and execution.error["type"] == "TaskFailed"
    assert "legacy.explode" in execution.error["message"]


def test_a_task_that_never_answers_hits_the_timeout(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    p.beat()  # no legacy worker at all
    execution = p.wait(p.durable.start("awaiter", {"x": 1, "y": 1, "timeout": 1}))
    assert execution.status == "completed" and execution.context["product"] == "too slow"


def test_await_task_refuses_what_it_cannot_await() -> None:
    with pytest.raises(InvalidInput):
        await_task(group(signature("a"), signature("b")))
    with pytest.raises(InvalidInput):
        await_task("legacy.multiply")  # type: ignore[arg-type]
