"""The project's existing Celery tasks, and the canvas it sends for each day's report:

    fetch_orders -> chord([revenue, top_customers, score_fraud], combine) -> publish

Every stage imports this module unchanged, so the old workers and the workflows run the same
code. They are shared tasks: they belong to whichever app the process builds.
"""

from __future__ import annotations

import json
import random
from typing import Any

from celery import chain, chord, shared_task

from examples.migration.project import CHANNEL, key, store

CUSTOMERS = ["ada", "bob", "cy", "dee", "eve", "fay"]


@shared_task(name="reports.fetch_orders")
def fetch_orders(day: str) -> dict[str, Any]:
    """A day's orders (a database query in a real project; here made up from the day)."""
    rng = random.Random(day)
    orders = [{"id": f"{day}-{n}", "customer": rng.choice(CUSTOMERS), "amount": rng.randint(5, 400)}
              for n in range(rng.randint(6, 12))]
    return {"day": day, "orders": orders}


@shared_task(name="reports.revenue")
def revenue(batch: dict[str, Any]) -> dict[str, Any]:
    return {"day": batch["day"], "revenue": sum(o["amount"] for o in batch["orders"])}


@shared_task(name="reports.top_customers")
def top_customers(batch: dict[str, Any], n: int = 3) -> dict[str, Any]:
    spent: dict[str, int] = {}
    for order in batch["orders"]:
        spent[order["customer"]] = spent.get(order["customer"], 0) + order["amount"]
    ranked = sorted(spent.items(), key=lambda item: (-item[1], item[0]))[:n]
    return {"day": batch["day"], "top_customers": [name for name, _ in ranked]}


@shared_task(name="reports.score_fraud")
def score_fraud(batch: dict[str, Any]) -> dict[str, Any]:
    """Orders the fraud model flags (in a real project: a model only the old pool's machines load)."""
    return {"day": batch["day"], "suspicious": [o["id"] for o in batch["orders"] if o["amount"] > 350]}


@shared_task(name="reports.combine")
def combine(sections: list[dict[str, Any]]) -> dict[str, Any]:
    """The chord's body: one report from the analyses, which must all be of the same day."""
    days = {section["day"] for section in sections}
    if len(days) != 1:
        raise ValueError(f"sections of different days: {sorted(days)}")
    report: dict[str, Any] = {}
    for section in sections:
        report.update(section)
    return report


@shared_task(name="reports.publish")
def publish(report: dict[str, Any], channel: str) -> dict[str, Any]:
    """Post the report to a chat channel. Idempotent per day and channel: a second call for the
    same day returns the message the first one posted (so the canvas and the workflow can both
    run for one day during the move without posting twice). Every call is counted."""
    r = store()
    r.incr(key("publish_calls", report["day"]))
    text = (f"{report['day']}: revenue {report['revenue']}, top {', '.join(report['top_customers'])}, "
            f"{len(report['suspicious'])} suspicious")
    message = {"channel": channel, "day": report["day"], "message_id": f"msg-{report['day']}", "text": text}
    r.hsetnx(key("channel", channel), report["day"], json.dumps(message))
    stored: dict[str, Any] = json.loads(r.hget(key("channel", channel), report["day"]) or "{}")
    return stored


@shared_task(name="reports.retract")
def retract(message: dict[str, Any]) -> str:
    """Take a published report back (an admin action the project already had)."""
    store().hdel(key("channel", message["channel"]), message["day"])
    return f"retracted {message['message_id']}"


def daily_report_canvas() -> Any:
    """The canvas the project sends: ``daily_report_canvas().apply_async(args=[day])``."""
    return chain(
        fetch_orders.s(),
        chord([revenue.s(), top_customers.s(), score_fraud.s()], combine.s()),
        publish.s(channel=CHANNEL),
    )


def published(day: str, channel: str = CHANNEL) -> dict[str, Any] | None:
    """The message posted for ``day``, if any."""
    raw = store().hget(key("channel", channel), day)
    return json.loads(raw) if raw else None


def publish_calls(day: str) -> int:
    return int(store().get(key("publish_calls", day)) or 0)
