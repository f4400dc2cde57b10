"""``/executions``: the list, filtered by workflow, status, queue, time and id from the URL's
parameters (so a filtered view is a link to share), paged by keyset cursor."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from durable_celery.dashboard.app import route
from durable_celery.dashboard.http import HTTPError, Request, Response, redirect
from durable_celery.dashboard.render import page
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.identifiers import is_execution_id

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard

PAGE_SIZE = 50
#: the "created in" choices: URL value, label, how far back
RANGES = [("", "any time", None), ("15m", "the last 15 minutes", timedelta(minutes=15)),
          ("1h", "the last hour", timedelta(hours=1)), ("24h", "the last 24 hours", timedelta(hours=24)),
          ("7d", "the last 7 days", timedelta(days=7)), ("30d", "the last 30 days", timedelta(days=30))]
FILTERS = ("workflow", "status", "queue", "range", "from", "to", "id")


@route("GET", r"/executions")
def executions(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    durable = dashboard.durable
    filters = {name: request.arg(name) for name in FILTERS}
    wanted = filters["id"] = filters["id"].lower()
    if wanted and is_execution_id(wanted):
        return redirect(request.url(f"/executions/{wanted}"))
    after, before = _created_range(filters, durable.clock.now())
    cursor = request.arg("cursor") or None
    found = durable.page_executions(workflow=filters["workflow"] or None, status=filters["status"] or None,
                                    queue=filters["queue"] or None, created_after=after, created_before=before,
                                    id_prefix=wanted or None, limit=PAGE_SIZE, cursor=cursor)
    shared = {name: value for name, value in filters.items() if value}
    next_link = (request.url("/executions") + "?" + urlencode({**shared, "cursor": found.next_cursor})
                 if found.next_cursor else None)
    first_link = request.url("/executions") + ("?" + urlencode(shared) if shared else "") if cursor else None
    return page(request, "executions.html", title="Executions", dashboard=dashboard, live="all",
                executions=found.items, filters=filters, next_link=next_link, first_page_link=first_link,
                statuses=[s.value for s in ExecutionStatus], ranges=[(v, label) for v, label, _ in RANGES],
                workflow_names=_workflow_names(dashboard, filters["workflow"]))


def _workflow_names(dashboard: Dashboard, chosen: str) -> list[str]:
    """The filter's choices: registered workflows and those seen among the executions (read
    once a minute: it groups the whole table), and the one in the URL."""
    seen = dashboard.shared.read("workflow-names", lambda: [w.name for w in dashboard.durable.list_workflows()],
                                 floor=60.0, nudge=False)
    return sorted(set(seen) | set(dashboard.durable.registry.names()) | ({chosen} - {""}))


def _created_range(filters: dict[str, str], now: datetime) -> tuple[datetime | None, datetime | None]:
    """``created_after``/``created_before`` from a preset range or explicit from/to (UTC)."""
    after = before = None
    if filters["range"]:
        spans = {value: span for value, _, span in RANGES}
        if filters["range"] not in spans:
            raise HTTPError(400, f"unknown range {filters['range']!r}: one of {', '.join(v for v in spans if v)}")
        span = spans[filters["range"]]
        after = now - span if span is not None else None
    for name in ("from", "to"):
        if filters[name]:
            try:
                value = datetime.fromisoformat(filters[name])
            except ValueError:
                raise HTTPError(400, f"{name} must be a date and time like 2026-12-07T09:30, "
                                     f"got {filters[name]!r}") from None
            value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
            if name == "from":
                after = max(after, value) if after is not None else value
            else:
                before = value
    return after, before
