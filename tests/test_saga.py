"""Compensations: when a workflow fails for good, the compensations of its completed steps run
newest first, each recorded as a step attempt; a failing one does not stop the others."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Project

Factory = Callable[..., Project]


def waiting(p: Project, execution_id: str) -> None:
    p.wait(execution_id, statuses={"waiting"}, timeout=20)


def test_a_saga_whose_third_step_fails_runs_the_two_compensations_in_reverse(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("trip", {"car": "fails"}))
    assert execution.status == "compensated"
    assert execution.error["type"] == "RuntimeError" and execution.error["message"] == "no cars left"
    assert execution.compensation_results == [
        {"step": "book_hotel", "compensation": "cancel_hotel", "status": "completed", "error": None},
        {"step": "book_flight", "compensation": "cancel_flight", "status": "completed", "error": None},
    ]
    compensations = [s for s in execution.steps if s.is_compensation]
    assert [(s.step_name, s.compensation_for, s.status) for s in compensations] == [
        ("cancel_hotel", "book_hotel", "completed"), ("cancel_flight", "book_flight", "completed")]
    # each compensation got the output of the step it undoes
    assert compensations[0].input["hotel"] == "H-2" and compensations[1].input["flight"] == "F-1"
    assert p.notes(execution.id) == {"": 2, "H-2": 1, "F-1": 1}


def test_a_failing_compensation_does_not_stop_the_others(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("trip", {"car": "fails", "flight_cancel": "fails"}))
    assert execution.status == "compensation_failed"
    assert [(r["compensation"], r["status"]) for r in execution.compensation_results] == [
        ("cancel_hotel", "completed"), ("cancel_flight", "failed")]
    assert execution.compensation_results[1]["error"]["message"] == "airline unreachable"


def test_a_compensation_retries_with_its_own_policy(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("trip", {"car": "fails", "hotel_cancel": "flaky"}))
    assert execution.status == "compensated"
    hotel = [(s.attempt, s.status) for s in execution.steps if s.step_name == "cancel_hotel"]
    assert hotel == [(1, "failed"), (2, "completed")]


def test_a_successful_saga_runs_no_compensation(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("trip", {}))
    assert execution.status == "completed" and execution.compensation_results == []
    assert not any(s.is_compensation for s in execution.steps)


def test_a_workflow_timeout_runs_the_compensations(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("trip_deadline", {}), timeout=20)
    assert execution.status == "compensated"
    assert execution.error["type"] == "WorkflowTimeout"
    assert [r["compensation"] for r in execution.compensation_results] == ["release_seat"]


def test_cancel_with_compensate_undoes_the_completed_steps(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("trip", {"car": "waits"})
    waiting(p, execution_id)
    p.durable.cancel(execution_id, reason="trip called off", compensate=True)
    execution = p.wait(execution_id)
    assert execution.status == "compensated"
    assert execution.error["message"] == "trip called off"
    assert [r["compensation"] for r in execution.compensation_results] == ["cancel_hotel", "cancel_flight"]


def test_cancel_without_compensate_leaves_completed_steps_alone(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("trip", {"car": "waits"})
    waiting(p, execution_id)
    p.durable.cancel(execution_id)
    execution = p.wait(execution_id)
    assert execution.status == "cancelled" and execution.compensation_results == []
    assert p.notes(execution_id) == {"": 2}
