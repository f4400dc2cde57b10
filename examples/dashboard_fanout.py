"""A dashboard built from a fan-out: user, orders and recommendations are fetched in parallel
(as separate Celery tasks), then widgets are rendered for each section with a foreach, two at a
time. Runs on the embedded default:

    python -m examples.dashboard_fanout
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from celery import Celery

from durable_celery import Durable, Workflow
from durable_celery.helpers import parallel_ok, parallel_result

dashboard = Workflow("dashboard")

with dashboard.parallel(on_error="complete_all"):
    @dashboard.step(returns="user")
    def fetch_user(ctx: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.5)
        return {"name": f"user {ctx['user_id']}"}

    @dashboard.step(returns="orders")
    def fetch_orders(ctx: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.5)
        return {"count": 3}

    @dashboard.step(returns="recommendations")
    def fetch_recommendations(ctx: dict[str, Any]) -> dict[str, Any]:
        raise TimeoutError("recommendation service timed out")


@dashboard.step
def assemble(ctx: dict[str, Any]) -> dict[str, Any]:
    sections = [name for name in ("user", "orders", "recommendations") if parallel_ok(ctx, name)]
    return {"user_id": ctx["user_id"], "sections": sections,
            "user": branch_value(ctx, "user"), "orders": branch_value(ctx, "orders")}


def branch_value(ctx: dict[str, Any], name: str) -> Any:
    """A branch's result, or its error's reason (None if it did not run)."""
    result = parallel_result(ctx, name)
    return result[1] if result is not None else None


with dashboard.foreach("render_widgets", items=lambda ctx: ctx["sections"], concurrency=2):
    @dashboard.step
    def render(ctx: dict[str, Any], section: str) -> dict[str, Any]:
        return {"widget": f"<{section}>"}


@dashboard.step
def publish(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"widgets": [result[1]["widget"] for result in ctx["__results__"]]}


os.environ.setdefault("DURABLE_DATA_DIR", tempfile.mkdtemp(prefix="durable-dashboard-"))
app = Celery("dashboard")
durable = Durable(app, workflows=[dashboard])


def main() -> int:
    from durable_celery.testing.workers import worker

    root = str(Path(__file__).resolve().parent.parent)
    with worker("examples.dashboard_fanout", [durable.settings.queue], concurrency=2, cwd=root):
        execution = durable.wait(durable.start(dashboard, {"user_id": 7}), timeout=60)
    print(f"dashboard: {execution.status.value}")
    for step in execution.steps:
        print(f"  {step.step_name:<22} {step.status:<9} {step.error['message'] if step.error else ''}")
    print(f"widgets: {execution.context.get('widgets')}")
    return 0 if execution.context.get("widgets") == ["<user>", "<orders>"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
