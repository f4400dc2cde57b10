"""Pages as HTML: Jinja2 templates shipped in the package, autoescaped, so nothing a workflow,
a step or a user supplied reaches the page unescaped. Filters format times, durations and
values the way every page shows them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from durable_celery.dashboard.http import Request, Response

try:
    import jinja2
except ImportError as error:  # pragma: no cover - the extra is missing
    raise ImportError("the dashboard needs Jinja2: pip install 'durable-celery[dashboard]'") from error


def _when(value: datetime | None) -> str:
    if value is None:
        return "–"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: datetime | None) -> str:
    if value is None:
        return "–"
    seconds = (datetime.now(timezone.utc) - value).total_seconds()
    later = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= size or size == 1:
            amount = f"{int(seconds // size)}{unit}"
            return f"in {amount}" if later else f"{amount} ago"
    return ""  # pragma: no cover


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "–"
    if end is None:
        end = datetime.now(timezone.utc)
    return milliseconds((end - start).total_seconds() * 1000)


def milliseconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1000:
        return f"{value:.0f} ms"
    seconds = value / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _pretty(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _short(value: str | None, size: int = 8) -> str:
    return (value or "")[:size]


_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("durable_celery.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(when=_when, ago=_ago, pretty=_pretty, short=_short, ms=milliseconds)
_environment.globals.update(duration=_duration)


#: what an action says on the page it returns to (``?flash=<key>``: a fixed text, never the URL's)
FLASHES = {
    "cancelled": "Cancellation requested.",
    "event-sent": "Event sent.",
    "input-provided": "Answer recorded: the workflow resumes.",
    "enabled": "Schedule enabled.",
    "disabled": "Schedule disabled.",
    "triggered": "Schedule triggered: a run started.",
    "paused": "Queue paused.",
    "resumed": "Queue resumed.",
    "retried": "A new execution was started from this one.",
}


def page(request: Request, template: str, *, status: int = 200, title: str, **values: Any) -> Response:
    """Render ``template`` as a whole page (``base.html`` around it) or, for the live refresh
    (header ``X-Durable-Fragment``), only its ``<main>``."""
    fragment = request.headers.get("x-durable-fragment") == "1"
    html = _environment.get_template(template).render(
        request=request, root=request.root, title=title, fragment=fragment,
        csrf=request.csrf, flash=FLASHES.get(request.arg("flash")), **values)
    return Response(html.encode(), status, [("Cache-Control", "no-store")])
