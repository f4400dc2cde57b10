"""Crash tests with real worker processes killed by SIGKILL: every completed step is
checkpointed exactly once, no step whose checkpoint committed runs again, and the workflow
completes on another worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from durable_celery import Execution
from tests.conftest import Project

Factory = Callable[..., Project]


def completed_rows(p: Project, execution_id: str) -> dict[str, int]:
    rows = p.sql("SELECT step_name, count(*) FROM {schema}.step_executions "
                 "WHERE execution_id = :id AND status = 'completed' GROUP BY step_name", id=execution_id)
    return {name: n for name, n in rows}


def lease_waited(execution: Execution, before: str, after: str) -> float:
    """Seconds from the checkpoint of step ``before`` to the start of the attempt of ``after``
    that completed, as the engine recorded them. A worker that dies holding the lease on the
    execution (it took ``after``, or continued past the checkpoint) makes this at least
    ``stale_lock_timeout`` from the lease's last renewal: nobody may claim the execution before
    that lease expires."""
    done = {s.step_name: s for s in execution.steps if s.status == "completed"}
    return (done[after].started_at - done[before].completed_at).total_seconds()


def wait_for_effect(p: Project, execution_id: str, step: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while step not in p.effects(execution_id):
        assert time.monotonic() < deadline, f"step {step} never started"
        time.sleep(0.05)


@pytest.mark.parametrize("broker, mode", [("redis", "per_step"), ("amqp", "per_step"), ("redis", "continuation")])
def test_a_worker_killed_mid_step_is_replaced_and_the_workflow_completes(project_factory: Factory, broker: str,
                                                                        mode: str) -> None:
    p = project_factory(broker, dispatch_mode=mode)
    p.beat()
    doomed = p.worker()
    # Given an execution whose second step is running on the doomed worker
    execution_id = p.durable.start("pipeline", {"second_sleep": 3})
    wait_for_effect(p, execution_id, "second")
    # When that worker is killed with SIGKILL, main process and pool alike, mid-step
    doomed.kill()
    # And another worker is running
    p.worker()
    execution = p.wait(execution_id, timeout=40)
    # Then the workflow completed, once the dead worker's lease had expired
    assert execution.status == "completed"
    assert execution.context["trail"] == ["first", "second", "third"]
    assert lease_waited(execution, "first", "second") >= p.settings["stale_lock_timeout"]
    # Every step is checkpointed exactly once; only the step that never committed ran again
    assert completed_rows(p, execution_id) == {"first": 1, "second": 1, "third": 1}
    assert p.effects(execution_id) == {"first": 1, "second": 2, "third": 1}
    assert [s.status for s in execution.steps] == ["completed"] * 3


def run_killed_after_first_checkpoint(p: Project, tmp_path: Path) -> tuple[str, Execution]:
    """Run `pipeline` on a worker whose process is killed right after the checkpoint of `first`
    commits (fault point `after_checkpoint`), and wait for it; asserts the fault really fired."""
    marker = tmp_path / "fault.log"
    p.worker(env={"DURABLE_FAULTS": "after_checkpoint:first", "DURABLE_FAULT_MARKER": str(marker)})
    p.beat()
    execution_id = p.durable.start("pipeline", {})
    execution = p.wait(execution_id, timeout=40)
    assert marker.read_text().startswith("after_checkpoint:first:")
    return execution_id, execution


# continuation_budget=0: a continuing task hands over at every checkpoint (releases its lease and
# publishes the next step), as per_step does, instead of going on with the next step itself.
@pytest.mark.parametrize("mode, settings", [("per_step", {}), ("continuation", {"continuation_budget": 0})])
def test_a_worker_killed_between_checkpoint_commit_and_publish_loses_nothing(
        project_factory: Factory, tmp_path: Path, mode: str, settings: dict[str, float]) -> None:
    # Leases outlive the test's wait, so only the outbox re-dispatch (after 1 s) can recover it
    p = project_factory("redis", dispatch_mode=mode, stale_lock_timeout=60, redispatch_after=1, **settings)
    # Given a worker whose process dies right after the checkpoint of `first` commits, before it publishes
    execution_id, execution = run_killed_after_first_checkpoint(p, tmp_path)
    # Then the tick re-dispatched the lost transition from the checkpoint's outbox columns, long
    # before a lease could have expired
    assert execution.status == "completed"
    assert lease_waited(execution, "first", "second") < p.settings["stale_lock_timeout"]
    # And no step ran twice
    assert p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}
    assert completed_rows(p, execution_id) == {"first": 1, "second": 1, "third": 1}


def test_a_continuing_worker_killed_after_a_checkpoint_is_recovered_through_its_lease(
        project_factory: Factory, tmp_path: Path) -> None:
    # In continuation mode the task keeps its lease across the checkpoint of `first` and would run
    # `second` itself: nothing is published, so recovery comes from the lease expiring (3 s)
    p = project_factory("redis", dispatch_mode="continuation", continuation_budget=60)
    execution_id, execution = run_killed_after_first_checkpoint(p, tmp_path)
    assert execution.status == "completed"
    # A continuation checkpoint leaves the lease's expiry to the heartbeat: it runs from the last
    # beat, at most one heartbeat interval before the checkpoint
    waited = p.settings["stale_lock_timeout"] - p.settings["heartbeat_interval"]
    assert lease_waited(execution, "first", "second") >= waited
    assert p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}
    assert completed_rows(p, execution_id) == {"first": 1, "second": 1, "third": 1}


def test_the_same_transition_message_delivered_twice_has_no_double_effect(project_factory: Factory) -> None:
    p = project_factory("redis")
    # Given an execution whose first message is published three times before any worker runs
    execution_id = p.durable.start("pipeline", {})
    for _ in range(2):
        p.durable.dispatcher.send(execution_id, 0, workflow="pipeline", step="first", queue=p.queue, priority=0)
    # When two workers consume them concurrently
    p.worker()
    p.worker()
    execution = p.wait(execution_id)
    assert execution.status == "completed"
    assert p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}
    # And late duplicates of every transition arrive after completion
    for seq in range(4):
        p.durable.dispatcher.send(execution_id, seq, workflow="pipeline", step=None, queue=p.queue, priority=0)
    time.sleep(2)
    # Then nothing ran again and nothing advanced twice
    assert p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}
    again = p.durable.get_execution(execution_id, include_steps=True)
    assert again.status == "completed" and len(again.steps) == 3
    assert p.sql("SELECT seq FROM {schema}.workflow_executions WHERE id = :id", id=execution_id)[0][0] == 3


def test_a_changed_node_stops_an_in_flight_execution_with_definition_changed(project_factory: Factory) -> None:
    p = project_factory("redis")
    # Given executions started under definition 1, sitting at their first step
    first = p.durable.start("evolving", {})
    # When a worker deployed with definition 2 (the current step's retry changed) picks them up
    p.worker(env={"DT_VARIANT": "2"})
    execution = p.wait(first)
    # Then it stops clearly instead of running a node whose shape changed
    assert execution.status == "failed"
    assert execution.error["type"] == "DefinitionChanged" and "'begin'" in execution.error["message"]
    assert execution.steps == []


def test_a_change_elsewhere_in_the_definition_lets_an_in_flight_execution_go_on(project_factory: Factory) -> None:
    p = project_factory("redis")
    execution_id = p.durable.start("evolving", {})
    # A deploy that changed only a later step (definition 3) runs it to the end
    p.worker(env={"DT_VARIANT": "3"})
    execution = p.wait(execution_id)
    assert execution.status == "completed"
    assert execution.context == {"begun_by": "3", "ended_by": "3"}


def test_a_worker_killed_in_the_middle_of_a_big_foreach_loses_no_item_and_runs_none_twice(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    p.beat()
    doomed = p.worker()
    # Given a foreach of 600 items, 20 at a time, each recording a side effect, running on a
    # worker whose tasks go from one item to the next without a broker round trip
    execution_id = p.durable.start("tally", {"n": 600})
    deadline = time.monotonic() + 60
    while len(p.notes(execution_id)) < 150:
        assert time.monotonic() < deadline, "the foreach made no progress"
        time.sleep(0.05)
    # When that worker is killed with SIGKILL, in the middle of a run of items
    doomed.kill()
    committed = {str(row[0]) for row in p.sql(
        "SELECT item FROM {schema}.workflow_executions WHERE parent_id = :id AND status = 'completed'",
        id=execution_id)}
    in_flight = p.sql("SELECT count(*) FROM {schema}.workflow_executions WHERE parent_id = :id "
                      "AND lease_owner IS NOT NULL", id=execution_id)[0][0]
    # And another worker takes over (the dead one's leases expire)
    p.worker()
    execution = p.wait(execution_id, timeout=120)
    # Then the foreach completed with every result, in item order
    assert execution.status == "completed"
    assert execution.context == {"statuses": ["ok"], "items": list(range(600))}
    # Every item was checkpointed exactly once
    attempts = dict(p.sql("SELECT e.item::text, count(*) FROM {schema}.step_executions s JOIN "
                          "{schema}.workflow_executions e ON e.id = s.execution_id WHERE e.parent_id = :id "
                          "AND s.status = 'completed' GROUP BY e.item", id=execution_id))
    assert len(attempts) == 600 and set(attempts.values()) == {1}
    # An item whose checkpoint had committed never ran again; one cut off by the kill ran again
    notes = p.notes(execution_id)
    assert set(notes) == {str(i) for i in range(600)}
    assert 100 <= len(committed) < 600
    assert all(notes[item] == 1 for item in committed)
    assert in_flight <= 20
    assert sum(notes.values()) - 600 <= in_flight


def test_a_worker_killed_between_an_iteration_end_and_settling_its_block_leaves_the_join_to_the_tick(
        project_factory: Factory, tmp_path: Path) -> None:
    p = project_factory("redis")
    marker = tmp_path / "fault.log"
    # Given a worker whose process dies after the last iteration of a foreach commits its end
    # (under a shared lock of the parent), before the transaction that settles the block (wakes
    # the parent) runs
    p.worker(env={"DURABLE_FAULTS": "before_settle:tag", "DURABLE_FAULT_MARKER": str(marker)})
    p.beat()
    execution_id = p.durable.start("squares", {"items": [4]})
    # Then the tick settles it once its grace has passed: the workflow completes, each step once
    execution = p.wait(execution_id, timeout=40)
    assert marker.read_text().startswith("before_settle:tag:")
    assert execution.status == "completed", execution.error
    assert execution.context["__results__"] == [["ok", {"square": 16, "item": 4}]]
    assert [s.step_name for s in execution.steps if s.status == "completed"].count("square") == 1
    assert p.sql("SELECT count(*) FROM {schema}.workflow_executions WHERE ready_at IS NOT NULL "
                 "AND status = 'completed'")[0][0] == 0  # no mark left


def test_the_last_branch_of_a_parallel_block_wakes_its_parent_in_the_transaction_that_ends_it(
        project_factory: Factory, tmp_path: Path) -> None:
    p = project_factory("redis")
    marker = tmp_path / "fault.log"
    # Given a worker armed to die before settling a block in a second transaction
    p.worker(env={"DURABLE_FAULTS": "before_settle:fetch_orders", "DURABLE_FAULT_MARKER": str(marker)})
    execution_id = p.durable.start("fanout", {"id": 7, "orders_sleep": 0.5})
    # Then no branch needs one (it locks its parent for update and decides as it ends): the
    # workflow completes without a tick, each branch once, and nothing is left marked
    execution = p.wait(execution_id, timeout=20)
    assert not marker.exists()
    assert execution.status == "completed", execution.error
    assert execution.context["results"]["fetch_orders"] == ["ok", {"orders": [1, 2]}]
    assert p.effects(execution_id) == {"fetch_user": 1, "fetch_orders": 1}
    assert p.sql("SELECT count(*) FROM {schema}.workflow_executions WHERE ready_at IS NOT NULL "
                 "AND status = 'completed'")[0][0] == 0
