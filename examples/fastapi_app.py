"""A FastAPI service in front of a durable workflow whose steps take pydantic models: POST
/orders starts an order (the body is validated by FastAPI, and by the workflow's first step),
POST /orders/{id}/approval answers the manager's approval it waits for, GET /orders/{id} reads
it. Run on the embedded default (no server needed):

    python -m examples.fastapi_app        # a worker, then the API driven with FastAPI's TestClient

In production the API runs under uvicorn and the workflows on Celery workers, against Postgres
and a broker:

    uvicorn examples.fastapi_app:api
    celery -A examples.fastapi_app worker -Q durable -B
"""

from __future__ import annotations

import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

from celery import Celery
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from durable_celery import Durable, DurableError, ExecutionNotFound, InvalidInput, InvalidState, Workflow, hours
from durable_celery.wait import wait_for_approval


class OrderIn(BaseModel):
    """What a client posts: the workflow's input."""

    customer: str = Field(min_length=1)
    amount: Decimal = Field(gt=0)


class Order(OrderIn):
    """The order as the workflow carries it from step to step."""

    # pydantic evaluates these annotations: Optional keeps them readable on Python 3.9
    approved: Optional[bool] = None  # noqa: UP045
    reference: Optional[str] = None  # noqa: UP045


class Approval(BaseModel):
    approved: bool


class OrderView(BaseModel):
    id: str
    status: str
    order: Optional[dict[str, Any]]  # noqa: UP045
    waiting_for: list[str]


order_flow = Workflow("fastapi_order")


@order_flow.step
def receive(order: OrderIn) -> Order:
    return Order(**order.model_dump())


@order_flow.step
def review(order: Order) -> Order:
    if order.amount < 100:
        return order.model_copy(update={"approved": True})
    approved = wait_for_approval("manager", prompt=f"Approve {order.customer}'s order of {order.amount}?",
                                 timeout=hours(24), timeout_value=False)
    return order.model_copy(update={"approved": approved == "approved"})


@order_flow.step
def fulfil(order: Order) -> Order:
    return order.model_copy(update={"reference": f"{order.customer}-{order.amount}" if order.approved else None})


os.environ.setdefault("DURABLE_DATA_DIR", tempfile.mkdtemp(prefix="durable-fastapi-"))
app = Celery("fastapi_orders")
durable = Durable(app, workflows=[order_flow], tick_interval=0.5)
api = FastAPI(title="orders")


@api.post("/orders", status_code=202)
def create_order(order: OrderIn) -> dict[str, str]:
    # a plain `def`: FastAPI runs it in its thread pool, where the engine's blocking calls belong
    return {"id": durable.start(order_flow, order)}


@api.post("/orders/{execution_id}/approval", status_code=204)
def approve_order(execution_id: str, approval: Approval) -> None:
    try:
        durable.provide_input(execution_id, "manager", "approved" if approval.approved else "rejected")
    except (ExecutionNotFound, InvalidInput) as exc:  # a malformed id is not found either
        raise HTTPException(404, str(exc)) from None
    except InvalidState as exc:  # finished, or already answered
        raise HTTPException(409, str(exc)) from None


@api.get("/orders/{execution_id}")
def read_order(execution_id: str) -> OrderView:
    try:
        execution = durable.get_execution(execution_id)
    except (ExecutionNotFound, InvalidInput) as exc:
        raise HTTPException(404, str(exc)) from None
    waiting = [p.input_name for p in durable.list_pending_inputs(status="pending")
               if p.workflow_id == execution_id]
    return OrderView(id=execution.id, status=execution.status.value, order=execution.context, waiting_for=waiting)


def main() -> int:
    from fastapi.testclient import TestClient

    from durable_celery.testing.workers import worker

    data = Path(os.environ["DURABLE_DATA_DIR"])
    root = str(Path(__file__).resolve().parent.parent)
    client = TestClient(api)

    def until(execution_id: str, status: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            view: dict[str, Any] = client.get(f"/orders/{execution_id}").json()
            if view["status"] == status:
                return view
            if time.monotonic() > deadline:
                raise DurableError(f"order {execution_id} still {view['status']}, not {status}")
            time.sleep(0.1)

    refused = client.post("/orders", json={"customer": "eve", "amount": -5})
    print(f"a negative amount: HTTP {refused.status_code}")
    with worker("examples.fastapi_app", [durable.settings.queue], concurrency=1, pool="solo", cwd=root,
                extra=["-B", "-s", str(data / "beat-schedule")]):
        small = client.post("/orders", json={"customer": "ada", "amount": "20"}).json()["id"]
        big = client.post("/orders", json={"customer": "bob", "amount": "450"}).json()["id"]
        print(f"ada: {until(small, 'completed')['order']}")
        waiting = until(big, "waiting")
        print(f"bob: waiting for {waiting['waiting_for']}")
        answered = client.post(f"/orders/{big}/approval", json={"approved": True})
        again = client.post(f"/orders/{big}/approval", json={"approved": False})
        print(f"approval: HTTP {answered.status_code}, answered again: HTTP {again.status_code}")
        done = until(big, "completed")
    print(f"bob: {done['order']}")
    print(f"an unknown order: HTTP {client.get('/orders/00000000-0000-0000-0000-000000000000').status_code}")
    return 0 if done["order"]["reference"] == "bob-450" and refused.status_code == 422 else 1


if __name__ == "__main__":
    raise SystemExit(main())
