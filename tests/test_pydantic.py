"""Pydantic models as a workflow's input and as its steps' context and result, on a real worker:
the input is validated at start (nothing written when it does not match), each step gets the
model its annotation names, rebuilt from the stored JSON, and what it returns is stored as JSON."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import pytest

from durable_celery import InvalidInput
from tests.conftest import Project
from tests.proj.wf_pydantic import Line, Order


@pytest.fixture(scope="module")
def project(running_project: Project) -> Project:
    return running_project


def test_a_model_given_at_start_runs_through_steps_that_take_and_return_models(project: Project) -> None:
    # Given a small order, started as a model instance
    order = Order(order_id="o-1", placed_on=date(2026, 12, 6), lines=[Line(sku="pen", quantity=3, price=Decimal("2.5"))])
    execution_id = project.durable.start("typed_order", order)
    # When it runs: priced, sent on by the decision's goto (a model), shipped, confirmed
    done = project.wait(execution_id)
    # Then every step got its model and stored its result as JSON
    assert done.status == "completed", done.error
    assert done.context == {"confirmed": "o-1 by dhl"}
    assert project.effects(execution_id) == {"price": 1, "ship": 1}
    assert done.input["placed_on"] == "2026-12-06" and done.input["lines"][0]["price"] == "2.5"
    shipped = [s for s in done.steps if s.step_name == "ship"][0]
    assert shipped.output == {"order_id": "o-1", "total": "7.5", "carrier": "dhl"}


def test_a_model_context_survives_a_wait_and_the_input_given_there(project: Project) -> None:
    # Given a big order, started as a plain dict (validated against the first step's model)
    execution_id = project.durable.start("typed_order", {
        "order_id": "o-2", "placed_on": "2026-12-06", "lines": [{"sku": "desk", "quantity": 1, "price": "450"}]})
    deadline = time.monotonic() + 30
    while project.durable.get_execution(execution_id).status != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # When the manager approves it
    project.durable.provide_input(execution_id, "manager", True)
    # Then the step after the wait gets its model back and the workflow completes
    done = project.wait(execution_id)
    assert done.status == "completed", done.error
    assert done.context == {"confirmed": "o-2 by dhl"}


def test_an_input_that_does_not_match_the_first_steps_model_is_refused_and_nothing_is_written(
        project: Project) -> None:
    before = project.sql("SELECT count(*) FROM {schema}.workflow_executions")[0][0]
    bad = {"order_id": "o-3", "placed_on": "not a date", "lines": [{"sku": "pen", "quantity": 0, "price": "1"}]}
    with pytest.raises(InvalidInput) as refused:
        project.durable.start("typed_order", bad)
    # the error names each field that is wrong
    assert "placed_on:" in str(refused.value) and "lines.0.quantity:" in str(refused.value)
    with pytest.raises(InvalidInput, match=r"inputs\[1\]: input does not match Order"):
        project.durable.start_many("typed_order", [{**bad, "placed_on": "2026-12-06", "lines": []}, bad])
    assert project.sql("SELECT count(*) FROM {schema}.workflow_executions")[0][0] == before
