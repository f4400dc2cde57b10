"""Stopping an execution whose step is in flight, and steps that kill their worker: nothing is
cut off uncompensated, and nothing is re-run forever."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.conftest import Project

Factory = Callable[..., Project]


def notes_in_order(p: Project, execution_id: str) -> list[str]:
    rows = p.sql("SELECT note FROM {schema}.test_effects WHERE execution_id = :id ORDER BY id", id=execution_id)
    return [note for (note,) in rows]


def wait_for_note(p: Project, execution_id: str, note: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while note not in notes_in_order(p, execution_id):
        assert time.monotonic() < deadline, f"{note!r} never recorded"
        time.sleep(0.05)


def test_cancelling_with_compensation_lets_the_running_step_finish_then_compensates_it_too(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    p.beat()
    execution_id = p.durable.start("slow_saga", {"charge_seconds": 2})
    wait_for_note(p, execution_id, "charge-start")
    # When it is cancelled with compensation while `charge_slowly` runs
    p.durable.cancel(execution_id, compensate=True)
    execution = p.wait(execution_id, timeout=30)
    # Then the charge finished, was recorded, and was refunded before the booking was undone
    assert execution.status == "compensated"
    assert notes_in_order(p, execution_id) == ["book", "charge-start", "charge-done", "refund:charged", "unbook"]
    assert [r["step"] for r in execution.compensation_results] == ["charge_slowly", "book"]
    assert execution.error is not None and execution.error["type"] == "Cancelled"


def test_a_workflow_timeout_that_falls_during_a_step_compensates_that_step_after_it_ends(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    p.beat()
    execution = p.wait(p.durable.start("deadline_saga", {}), timeout=30)
    assert execution.status == "compensated"
    assert execution.error is not None and execution.error["type"] == "WorkflowTimeout"
    assert notes_in_order(p, execution.id) == ["book", "charge-start", "charge-done", "refund:charged", "unbook"]


def test_a_step_whose_worker_dies_while_its_execution_stops_is_compensated_as_it_may_have_run(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    doomed = p.worker()
    p.beat()
    execution_id = p.durable.start("slow_saga", {"charge_seconds": 30})
    wait_for_note(p, execution_id, "charge-start")
    p.durable.cancel(execution_id, compensate=True)
    # When the worker running the step dies before the step ends
    doomed.kill()
    p.worker()
    execution = p.wait(execution_id, timeout=40)
    # Then its outcome is unknown, so it is compensated (with the context it was given)
    assert execution.status == "compensated"
    assert notes_in_order(p, execution_id) == ["book", "charge-start", "refund:unknown", "unbook"]
    charge = [s for s in execution.steps if s.step_name == "charge_slowly"]
    assert [(s.status, (s.error or {}).get("type")) for s in charge] == [("failed", "OutcomeUnknown")]


def test_a_fail_fast_parallel_block_compensates_a_sibling_branch_that_was_still_running(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    p.beat()
    execution = p.wait(p.durable.start("fast_failure", {}), timeout=30)
    # The failing branch stopped the block while `slow_side` ran; it finished, and was undone
    assert execution.status == "compensated"
    assert notes_in_order(p, execution.id) == ["slow-start", "slow-done", "undo-slow"]


def test_a_step_that_kills_its_worker_fails_after_a_bounded_number_of_lost_leases(project_factory: Factory) -> None:
    p = project_factory("redis", max_lost_leases=2)
    p.worker()
    p.beat()
    execution = p.wait(p.durable.start("crasher", {}), timeout=60)
    # Then the attempt failed with WorkerLost (not re-run forever), after two lost workers that
    # claimed it and at most one more: a crash within a step's first second on the lease handed
    # over with its message looks like a lost message, and is not counted (docs/reliability.md)
    assert execution.status == "failed" and execution.error is not None
    assert execution.error["type"] == "WorkerLost"
    assert p.effects(execution.id)["crash"] in (2, 3)
    assert [(s.step_name, s.attempt, s.status) for s in execution.steps] == [("crash", 1, "failed")]


def test_the_tick_releases_a_compensation_left_parked_once_nothing_of_its_tree_is_in_flight(
        project_factory: Factory) -> None:
    from durable_celery.runtime.tick import tick

    p = project_factory("redis")
    execution_id = p.durable.start("slow_saga", {})
    # Given a compensating execution parked for a step in flight whose end did not release it
    p.sql("UPDATE {schema}.workflow_executions SET status = 'compensating', ready_at = NULL, dispatched_at = NULL, "
          "lease_owner = NULL, lease_expires_at = NULL, stop_status = 'cancelled', seq = seq + 1 WHERE id = :id "
          "RETURNING id", id=execution_id)
    # When the tick runs, the compensation is released and runs (nothing completed: it ends cancelled)
    assert tick(p.durable.services).woken == 1
    p.worker()
    assert p.wait(execution_id, timeout=20).status == "cancelled"
