"""The order's workflow, found by DjangoDurable as Celery finds tasks.py. Its steps run in the
Celery worker, where Django is set up (Celery's Django fixup), so they use the ORM."""

from typing import Any

from durable_celery import Workflow
from orders.models import Order

fulfil_order = Workflow("fulfil_order")


@fulfil_order.step
def reserve(ctx: dict[str, Any]) -> dict[str, Any]:
    Order.objects.filter(pk=ctx["order_id"]).update(status="reserved")
    return ctx


@fulfil_order.step
def ship(ctx: dict[str, Any]) -> dict[str, Any]:
    order = Order.objects.get(pk=ctx["order_id"])
    order.status = "shipped"
    order.save(update_fields=["status"])
    return {**ctx, "shipped": True, "customer": order.customer}
