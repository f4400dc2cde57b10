"""``/``: live counts by status, recent failures and executions, queues and workflows."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from durable_celery.dashboard.app import route
from durable_celery.dashboard.http import Request, Response
from durable_celery.dashboard.render import page

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard


#: how long (seconds) the counts by status and the workflow summaries are shared between pages
COUNTS_TTL = 0.5
WORKFLOWS_TTL = 5.0


@route("GET", r"/")
def overview(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    durable = dashboard.durable
    # the counts and the summaries read the whole table: shared by every open page for a moment
    return page(request, "overview.html", title="Overview", dashboard=dashboard, live="all",
                counts=dashboard.cached("counts", COUNTS_TTL, durable.count_by_status),
                failures=durable.page_executions(status="failed", limit=5).items,
                recent=durable.page_executions(limit=15).items,
                queues=durable.list_queues(),
                workflows=dashboard.cached("workflows", WORKFLOWS_TTL, durable.list_workflows))
