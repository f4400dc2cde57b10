"""Pydantic models as a step's context and result (dsl/typed.py), and as a workflow's input
(runtime/starts.py): rebuilt from JSON on the way in, stored as JSON on the way out."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel, Field

from durable_celery import InvalidInput, Workflow, goto
from durable_celery.compiler import compile_workflow
from durable_celery.dsl.typed import TypedStep, ctx_model, typed
from durable_celery.runtime.starts import encode_input, input_model


class Item(BaseModel):
    sku: str
    quantity: int = Field(gt=0)


class Basket(BaseModel):
    owner: str
    since: date
    items: list[Item] = []


def add_one(basket: Basket) -> Basket:
    return basket.model_copy(update={"items": [*basket.items, Item(sku="gift", quantity=1)]})


def plain(ctx: dict[str, Any]) -> dict[str, Any]:
    return ctx


def test_a_step_taking_a_model_gets_it_rebuilt_from_json_and_its_model_result_is_stored_as_json() -> None:
    step = typed(add_one, 1)
    assert isinstance(step, TypedStep) and ctx_model(step) is Basket
    result = step({"owner": "ada", "since": "2026-12-01", "items": []})
    assert result == {"owner": "ada", "since": "2026-12-01", "items": [{"sku": "gift", "quantity": 1}]}


def test_a_step_without_models_is_registered_as_it_is() -> None:
    assert typed(plain, 1) is plain
    assert ctx_model(plain) is None


def test_a_foreach_step_gets_its_item_rebuilt_too() -> None:
    def count(basket: Basket, item: Item) -> dict[str, int]:
        return {"n": item.quantity * 2}

    step = typed(count, 2)
    assert step({"owner": "ada", "since": "2026-12-01"}, {"sku": "x", "quantity": 3}) == {"n": 6}


def test_an_annotation_that_does_not_resolve_leaves_the_others_working() -> None:
    def odd(basket: Basket, item: NotDefinedAnywhere) -> dict[str, Any]:  # type: ignore[name-defined]  # noqa: F821
        return {"owner": basket.owner}

    step = typed(odd, 2)
    assert step({"owner": "bo", "since": "2026-12-01"}, {"whatever": 1}) == {"owner": "bo"}


def test_goto_takes_a_model_and_keeps_its_json_form() -> None:
    jump = goto("ship", Basket(owner="ada", since=date(2026, 12, 1)))
    assert jump.ctx == {"owner": "ada", "since": "2026-12-01", "items": []}


def test_a_workflow_whose_first_step_takes_a_model_validates_its_input_and_names_the_bad_field() -> None:
    wf = Workflow("typed_basket")
    wf.step(add_one)
    machine = compile_workflow(wf)
    assert input_model(machine) is Basket
    # a valid dict is stored as the model made of it (defaults filled in)
    assert encode_input({"owner": "ada", "since": "2026-12-01"}, model=Basket) == {
        "owner": "ada", "since": "2026-12-01", "items": []}
    # a model instance is stored as its JSON form
    assert encode_input(Basket(owner="bo", since=date(2026, 1, 2)), model=Basket)["since"] == "2026-01-02"
    with pytest.raises(InvalidInput, match=r"items\.0\.quantity: Input should be greater than 0"):
        encode_input({"owner": "ada", "since": "2026-12-01", "items": [{"sku": "x", "quantity": 0}]}, model=Basket)
    with pytest.raises(InvalidInput, match=r"does not match Basket: since: Field required"):
        encode_input({"owner": "ada"}, model=Basket)


def test_the_decorator_returns_the_users_function_itself() -> None:
    wf = Workflow("typed_identity")
    assert wf.step(add_one) is add_one
