"""``/``: live counts by status, recent failures and executions, queues and workflows."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from durable_celery.dashboard.app import route
from durable_celery.dashboard.http import Request, Response
from durable_celery.dashboard.render import page

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard


@route("GET", r"/")
def overview(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    durable = dashboard.durable
    return page(request, "overview.html", title="Overview", dashboard=dashboard, live="all",
                counts=durable.count_by_status(),
                failures=durable.page_executions(status="failed", limit=5).items,
                recent=durable.page_executions(limit=15).items,
                queues=durable.list_queues(),
                workflows=durable.list_workflows())
