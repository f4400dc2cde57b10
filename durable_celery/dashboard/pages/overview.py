"""``/``: live counts by status, recent failures and executions, queues and workflows."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from durable_celery.dashboard.app import route
from durable_celery.dashboard.http import Request, Response
from durable_celery.dashboard.render import page
from durable_celery.engine.statuses import ACTIVE, TERMINAL, ExecutionStatus

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard


@route("GET", r"/")
def overview(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    durable = dashboard.durable
    return page(request, "overview.html", title="Overview", dashboard=dashboard, live="all",
                counts=_counts(dashboard),
                failures=durable.page_executions(status="failed", limit=5).items,
                recent=durable.page_executions(limit=15).items,
                queues=dashboard.shared.read("queues", durable.list_queues),
                workflows=dashboard.shared.read("workflows", durable.list_workflows))


def _counts(dashboard: Dashboard) -> dict[str, int]:
    """Every status's count, in the statuses' order. Counted apart: the active statuses are a
    few entries of the status index, the final ones most of the table (each is shared between
    pages as long as reading it costs: shared.py)."""
    durable = dashboard.durable
    found = {**dashboard.shared.read("counts-active", lambda: durable.count_by_status(ACTIVE)),
             **dashboard.shared.read("counts-finished", lambda: durable.count_by_status(TERMINAL))}
    return {status.value: found[status.value] for status in ExecutionStatus}
