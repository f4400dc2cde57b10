"""Stage 3's workflow, the finished one: plain step functions.

The tasks' bodies are called as functions (``fetch_orders(day)`` runs in the step, no message),
so their code can later move out of the task module. Fraud scoring runs on the workflow pool
like the other analyses: no ``await_task``, no old pool. No chord, so no result backend.
Publishing keeps its checkpoint and its compensation.
"""

from __future__ import annotations

from typing import Any

from durable_celery import Retry, Workflow, minutes
from durable_celery.context import checkpoint
from examples.migration.project import CHANNEL
from examples.migration.services import ARCHIVE, archive, pin
from examples.migration.tasks import combine, fetch_orders, publish, retract, revenue, score_fraud, top_customers

report_v3 = Workflow("daily_report_v3", timeout=minutes(10))


@report_v3.step(retry=Retry(max_attempts=3, backoff="constant", base=1))
def fetch(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"day": ctx["day"], "archive_to": ctx.get("archive_to", ARCHIVE), "batch": fetch_orders(ctx["day"])}


def report_of(ctx: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    return {"day": ctx["day"], "archive_to": ctx["archive_to"],
            "report": combine([value for _, value in results.values()])}


with report_v3.parallel(into=report_of):
    @report_v3.step(returns="revenue")
    def revenue_section(ctx: dict[str, Any]) -> dict[str, Any]:
        return revenue(ctx["batch"])

    @report_v3.step(returns="top_customers")
    def top_section(ctx: dict[str, Any]) -> dict[str, Any]:
        return top_customers(ctx["batch"])

    @report_v3.step(returns="fraud", retry=Retry(max_attempts=3, backoff="constant", base=1))
    def fraud_section(ctx: dict[str, Any]) -> dict[str, Any]:
        return score_fraud(ctx["batch"])


@report_v3.step(retry=Retry(max_attempts=3, backoff="constant", base=0.5), compensate="retract_report")
def publish_report(ctx: dict[str, Any]) -> dict[str, Any]:
    message = checkpoint("publish", publish, ctx["report"], CHANNEL)
    return {**ctx, "message": message, **pin(message)}


@report_v3.step
def archive_report(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "archived": archive(ctx["report"], ctx["archive_to"])}


@report_v3.compensation
def retract_report(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "retracted": retract(ctx["message"])}
