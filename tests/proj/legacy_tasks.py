"""Plain Celery tasks of the test project, as written before it adopted workflows. Shared tasks,
so every app of the test process and of its workers registers them; they record what they did in
Redis (the project has no result backend)."""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import shared_task

REDIS = os.environ.get("DURABLE_TEST_REDIS", "redis://127.0.0.1:6379/5")


def _redis() -> redis.Redis:
    return redis.Redis.from_url(REDIS)


@shared_task(name="legacy.add")
def add(x: int, y: int) -> int:
    return x + y


@shared_task(name="legacy.mul")
def mul(x: int, y: int) -> int:
    return x * y


@shared_task(name="legacy.tsum")
def tsum(values: list[int], start: int = 0) -> int:
    return start + sum(values)


@shared_task(name="legacy.price_order")
def price_order(items: list[dict[str, Any]], discount: int = 0, report_to: str | None = None) -> int:
    """Total of an order's items less a discount; ``report_to`` pushes it to a Redis list too."""
    total = sum(i["price"] * i.get("qty", 1) for i in items) - discount
    if report_to:
        _redis().rpush(report_to, total)
    return total


@shared_task(name="legacy.flaky_lookup", bind=True)
def flaky_lookup(self: Any, sku: str, fail_times: int = 0) -> dict[str, Any]:
    """Fails its first ``fail_times`` calls for a sku (counted in Redis), then answers; a bound
    task, to show that ``self.request`` works when its body runs as a step."""
    calls = _redis().incr(f"legacy:lookups:{sku}")
    if calls <= fail_times:
        raise ConnectionError(f"inventory service down (call {calls})")
    return {"sku": sku, "stock": 7, "calls": calls, "called_directly": bool(self.request.called_directly)}


# -- a saga: reserve, then charge and ship at once, then confirm -------------------------------------

@shared_task(name="legacy.reserve")
def reserve(order: dict[str, Any]) -> dict[str, Any]:
    return {**order, "reservation": f"rs-{order['id']}"}


@shared_task(name="legacy.charge")
def charge(order: dict[str, Any]) -> dict[str, Any]:
    return {"order": order["id"], "charge_id": f"ch-{order['id']}-{order['amount']}"}


@shared_task(name="legacy.ship")
def ship(order: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.5)  # charge, beside it in the group, has finished by then
    if order.get("fail_ship"):
        raise RuntimeError(f"no courier for order {order['id']}")
    return {"order": order["id"], "tracking": f"tr-{order['id']}"}


@shared_task(name="legacy.confirm")
def confirm(results: list[dict[str, Any]]) -> str:
    return f"confirmed {results[0]['charge_id']} {results[1]['tracking']}"


@shared_task(name="legacy.refund")
def refund(charged: dict[str, Any]) -> str:
    """The compensation of ``charge``: gets what charge returned."""
    _redis().rpush(f"legacy:refunds:{charged['order']}", charged["charge_id"])
    return f"refunded {charged['charge_id']}"


def release(reserved: dict[str, Any]) -> str:
    """The compensation of ``reserve``, a plain function: gets what reserve returned."""
    _redis().rpush(f"legacy:released:{reserved['id']}", reserved["reservation"])
    return f"released {reserved['reservation']}"


# -- starting workflows from plain tasks ------------------------------------------------------------

@shared_task(name="legacy.make_order")
def make_order(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "items": [{"price": 10, "qty": 3}, {"price": 5}]}


@shared_task(name="legacy.remember")
def remember(value: Any, key: str) -> None:
    """Push what it got (in a chain: the previous task's result) to a Redis list."""
    _redis().rpush(key, str(value))


@shared_task(name="legacy.kickoff")
def kickoff(order_id: str, key: str) -> str:
    """A plain task that starts a workflow, the way a project's existing task would."""
    from tests.proj.app import durable

    execution_id = durable.start("legacy_order", {"order_id": order_id, "items": [{"price": 4, "qty": 2}]},
                                 idempotency_key=f"kickoff:{order_id}")
    _redis().rpush(key, execution_id)
    return execution_id
