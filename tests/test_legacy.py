"""The migration path from plain Celery tasks, on real workers: a task's body as a step, a
canvas compiled into a workflow, and workflows started from Celery (a plain task calling
``durable.start``, ``durable.signature`` inside a chain of plain tasks)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import chain

from durable_celery.testing.workers import CeleryProcess, worker
from tests.conftest import BROKERS, ROOT, Project
from tests.proj import legacy_tasks
from tests.proj.wf_legacy import CANVASES

ITEMS = [{"price": 10, "qty": 3}, {"price": 5}]


@pytest.fixture(scope="module")
def plain_worker(running_project: Project) -> Iterator[CeleryProcess]:
    """A worker of the project's own tasks beside the workflow worker: it consumes only the
    project's default queue, and never serves workflows."""
    proc = worker("tests.proj.plain_app", [f"{running_project.queue}-default"], env=running_project.env,
                  cwd=str(ROOT))
    running_project.processes.append(proc)
    yield proc.start()


def pushed(key: str, count: int = 1, timeout: float = 30) -> list[str]:
    """The first ``count`` values a task pushed to the Redis list ``key``."""
    r = redis.Redis.from_url(BROKERS["redis"])
    values = []
    for _ in range(count):
        found = r.blpop([key], timeout=timeout)
        assert found is not None, f"nothing pushed to {key} within {timeout}s"
        values.append(found[1].decode())
    return values


# -- a task's body as a step -------------------------------------------------------------------------

def test_a_task_step_fills_arguments_by_name_runs_in_process_and_stores_the_result_under_its_name(
        running_project: Project) -> None:
    p = running_project
    order_id = uuid.uuid4().hex[:8]
    execution = p.wait(p.durable.start("legacy_order", {"order_id": order_id, "items": ITEMS, "discount": 5,
                                                        "lookup_failures": 1}))
    assert execution.status == "completed", execution.error
    # 10*3 + 5 - 5; the lookup failed once and the step's Retry ran it again; the bound task saw
    # its own request, called directly (in-process), not from a message
    assert execution.context == {"order_id": order_id, "total": 30, "stock": 7, "lookup_calls": 2,
                                 "called_directly": True}
    assert [(s.step_name, s.attempt, s.status) for s in execution.steps] == [
        ("price_order", 1, "completed"), ("flaky_lookup", 1, "failed"), ("flaky_lookup", 2, "completed"),
        ("summarize", 1, "completed")]
    assert execution.steps[0].output == {"order_id": order_id, "items": ITEMS, "discount": 5, "lookup_failures": 1,
                                         "price_order": 30}
    assert "inventory service down (call 1)" in execution.steps[1].error["message"]


def test_a_task_step_missing_a_required_argument_fails_naming_the_step_and_the_parameter(
        running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("legacy_order", {"order_id": "no-items"}))
    assert execution.status == "failed"
    assert execution.error["type"] == "TaskArgumentError" and execution.error["step"] == "price_order"
    assert "task 'legacy.price_order' needs argument 'items'" in execution.error["message"]
    assert "its keys: order_id" in execution.error["message"]


def test_the_task_still_runs_the_old_way_on_a_plain_worker(running_project: Project,
                                                           plain_worker: CeleryProcess) -> None:
    key = f"legacy:report:{uuid.uuid4().hex}"
    task = running_project.app.tasks[legacy_tasks.price_order.name]  # the project app's copy of the shared task
    task.delay(ITEMS, discount=1, report_to=key)  # to the app's default queue, as before
    assert pushed(key) == ["34"]
    assert "legacy.price_order" in plain_worker.log()


# -- canvases compiled into workflows --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CANVASES))
def test_a_compiled_canvas_computes_what_celery_computes_for_the_same_canvas(running_project: Project,
                                                                            name: str) -> None:
    p = running_project
    expected = CANVASES[name].apply(args=(4,)).get()  # Celery runs the canvas itself, in this process
    execution = p.wait(p.durable.start(name, {"args": [4]}))
    assert execution.status == "completed", execution.error
    assert execution.context == {"result": expected}


def test_a_compiled_canvas_names_its_steps_after_its_tasks_uniquely_and_runs_each_once(
        running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("canvas_pipeline", {"args": [4]}))
    # chain(add, group(mul, mul, chain(add, mul)), tsum, add): (4+1) -> [10, 15, 30] -> 55 -> 60
    assert execution.context == {"result": 60}
    assert sorted(s.step_name for s in execution.steps) == sorted(
        ["add", "mul", "mul_2", "add_2", "mul_3", "tsum", "add_3"])
    steps = {s.step_name: s for s in execution.steps}
    assert steps["add_2"].output == {"result": 15} and steps["mul_3"].input == {"result": 15}
    assert steps["tsum"].input == {"result": [10, 15, 30]}
    # the group's members ran at the same time as separate branches, after the first step
    assert min(steps[n].started_at for n in ("mul", "mul_2", "add_2")) >= steps["add"].completed_at


def test_a_failing_group_member_fails_the_workflow_naming_it_and_the_compensations_run(
        running_project: Project) -> None:
    p = running_project
    order = {"id": uuid.uuid4().hex[:8], "amount": 30, "fail_ship": True}
    execution = p.wait(p.durable.start("canvas_saga", {"args": [order]}))
    assert execution.status == "compensated"
    assert execution.error["type"] == "ChildFailed" and execution.error["step"] == "ship"
    assert f"no courier for order {order['id']}" in execution.error["message"]
    assert [s.attempt for s in execution.steps if s.step_name == "ship"] == [1, 2]  # its step_options retry
    # charge completed beside it and was refunded (a task), then the reservation released (a function)
    assert [(c["step"], c["compensation"], c["status"]) for c in execution.compensation_results] == [
        ("charge", "undo_charge", "completed"), ("reserve", "undo_reserve", "completed")]
    assert pushed(f"legacy:refunds:{order['id']}") == [f"ch-{order['id']}-30"]
    assert pushed(f"legacy:released:{order['id']}") == [f"rs-{order['id']}"]
    assert "confirm" not in [s.step_name for s in execution.steps]


def test_the_same_saga_completes_when_every_member_succeeds(running_project: Project) -> None:
    p = running_project
    order = {"id": uuid.uuid4().hex[:8], "amount": 12}
    execution = p.wait(p.durable.start("canvas_saga", {"args": [order]}))
    assert execution.status == "completed"
    assert execution.context == {"result": f"confirmed ch-{order['id']}-12 tr-{order['id']}"}
    assert execution.compensation_results == []


# -- starting workflows from Celery ----------------------------------------------------------------

def test_a_plain_task_on_a_plain_worker_starts_a_workflow(running_project: Project,
                                                          plain_worker: CeleryProcess) -> None:
    p = running_project
    key = f"legacy:kickoff:{uuid.uuid4().hex}"
    order_id = uuid.uuid4().hex[:8]
    p.app.send_task("legacy.kickoff", args=(order_id, key), queue=f"{p.queue}-default")
    [execution_id] = pushed(key)
    execution = p.wait(execution_id)
    assert execution.status == "completed" and execution.context["total"] == 8
    assert "legacy.kickoff" in plain_worker.log() and "Traceback" not in plain_worker.log()


def test_a_workflow_signature_in_a_chain_of_plain_tasks_delivered_twice_starts_one_execution(
        running_project: Project, plain_worker: CeleryProcess) -> None:
    p = running_project
    order_id = uuid.uuid4().hex[:8]
    key = f"legacy:chain:{order_id}"
    default = f"{p.queue}-default"
    pipeline = chain(
        p.app.signature("legacy.make_order", args=(order_id,), queue=default),
        p.durable.signature("legacy_order", {"discount": 4, "lookup_failures": 0}),
        p.app.signature("legacy.remember", args=(key,), queue=default),
    )
    pipeline.freeze()  # fixed task ids: sending it again is the same messages delivered again
    pipeline.apply_async()
    pipeline.apply_async()
    first, second = pushed(key, count=2)
    assert first == second  # the start task ran twice and returned one execution's id both times
    execution = p.wait(first)
    # make_order's dict result was merged over the signature's input
    assert execution.input == {"discount": 4, "lookup_failures": 0, "order_id": order_id, "items": ITEMS}
    assert execution.status == "completed" and execution.context["total"] == 31
    ours = [e for e in p.durable.list_executions("legacy_order", limit=200) if e.input.get("order_id") == order_id]
    assert [e.id for e in ours] == [first]
    # the start task ran on the workflow worker (the engine's queue), never on the plain worker
    assert f"{p.durable.start_task_name}[" not in plain_worker.log()
    durable_logs = "".join(proc.log() for proc in p.processes if proc is not plain_worker)
    assert durable_logs.count(f"{p.durable.start_task_name}[") >= 2


def test_a_workflow_signature_rejects_what_start_would_reject_before_anything_is_sent(
        running_project: Project) -> None:
    from durable_celery import InvalidInput, WorkflowNotFound

    p = running_project
    with pytest.raises(WorkflowNotFound):
        p.durable.signature("no_such_workflow")
    with pytest.raises(InvalidInput, match="JSON"):
        p.durable.signature("legacy_order", {"when": {1, 2}})
    with pytest.raises(InvalidInput, match="scheduled_at"):
        p.durable.signature("legacy_order", {}, scheduled_at=None)


