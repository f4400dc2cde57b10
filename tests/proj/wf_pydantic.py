"""Workflows whose steps take and return pydantic models (dsl/typed.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Optional, Union

from pydantic import BaseModel, Field

from durable_celery import Goto, Workflow, goto
from durable_celery.wait import wait_for_input
from tests.proj.effects import record


class Line(BaseModel):
    sku: str
    quantity: int = Field(gt=0)
    price: Decimal


class Order(BaseModel):
    order_id: str
    placed_on: date
    lines: list[Line]
    total: Decimal = Decimal(0)
    approved: Optional[bool] = None  # noqa: UP045 - pydantic evaluates it, on Python 3.9 too


class Shipment(BaseModel):
    order_id: str
    total: Decimal
    carrier: str


typed_order = Workflow("typed_order")


@typed_order.step
def price(order: Order) -> Order:
    record()
    assert isinstance(order.placed_on, date)  # rebuilt from its stored JSON form
    return order.model_copy(update={"total": sum((line.price * line.quantity for line in order.lines), Decimal(0))})


@typed_order.decision
def needs_approval(order: Order) -> Union[Goto, Order]:  # noqa: UP007 - read on Python 3.9
    return order if order.total >= 100 else goto("ship", order.model_copy(update={"approved": True}))


@typed_order.step
def approve(order: Order) -> Order:
    answer = wait_for_input("manager", type="approval", prompt=f"approve {order.order_id}?")
    return order.model_copy(update={"approved": bool(answer)})


@typed_order.step
def ship(order: Order) -> Shipment:
    record()
    return Shipment(order_id=order.order_id, total=order.total, carrier="dhl" if order.approved else "none")


@typed_order.step
def confirm(shipment: Shipment) -> dict[str, str]:
    # a step may take a model and return a plain dict, or the other way round
    return {"confirmed": f"{shipment.order_id} by {shipment.carrier}"}
