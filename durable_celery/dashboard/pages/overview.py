"""``/``: live counts by status, recent failures and executions, queues and workflows."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from durable_celery.dashboard.app import route
from durable_celery.dashboard.http import Request, Response
from durable_celery.dashboard.render import page
from durable_celery.engine.statuses import TERMINAL, ExecutionStatus

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard


#: how long (seconds) counts and summaries are shared between pages: the active statuses are
#: few rows of an index, read live; the finished ones and the summaries read the whole table
ACTIVE_TTL = 0.5
FINISHED_TTL = 10.0
WORKFLOWS_TTL = 15.0
ACTIVE = [status.value for status in ExecutionStatus if status not in TERMINAL]
FINISHED = [status.value for status in ExecutionStatus if status in TERMINAL]


@route("GET", r"/")
def overview(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    durable = dashboard.durable
    # the counts and the summaries read the whole table: shared by every open page for a moment
    return page(request, "overview.html", title="Overview", dashboard=dashboard, live="all",
                counts=_counts(dashboard),
                failures=durable.page_executions(status="failed", limit=5).items,
                recent=durable.page_executions(limit=15).items,
                queues=durable.list_queues(),
                workflows=dashboard.cached("workflows", WORKFLOWS_TTL, durable.list_workflows))


def _counts(dashboard: Dashboard) -> dict[str, int]:
    """Every status's count, in the statuses' order."""
    durable = dashboard.durable
    found = {**dashboard.cached("counts-active", ACTIVE_TTL, lambda: durable.count_by_status(ACTIVE)),
             **dashboard.cached("counts-finished", FINISHED_TTL, lambda: durable.count_by_status(FINISHED))}
    return {status.value: found[status.value] for status in ExecutionStatus}
