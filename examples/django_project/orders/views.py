"""Placing an order writes the order and starts its workflow in one transaction: both commit,
or neither does, and the workflow's message is published only after the commit."""

import json
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from shop.celery import durable

from orders.models import Order
from orders.workflows import fulfil_order


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body or b"{}")
    try:
        amount = Decimal(str(body["amount"]))
    except (KeyError, InvalidOperation):
        return JsonResponse({"error": "amount is required"}, status=400)
    with transaction.atomic():
        order = Order.objects.create(customer=body.get("customer", ""), amount=amount)
        order.execution_id = durable.start_on_commit(fulfil_order, {"order_id": order.pk})
        order.save(update_fields=["execution_id"])
        if amount <= 0:  # refused after the start: the rollback takes the execution with it
            transaction.set_rollback(True)
            return JsonResponse({"error": "amount must be positive"}, status=400)
    return JsonResponse({"id": order.pk, "execution_id": order.execution_id}, status=201)


@require_GET
def order_detail(request: HttpRequest, pk: int) -> JsonResponse:
    order = get_object_or_404(Order, pk=pk)
    return JsonResponse({"id": order.pk, "customer": order.customer, "status": order.status,
                         "execution_id": order.execution_id})
