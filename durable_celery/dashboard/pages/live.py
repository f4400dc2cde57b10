"""``/events``: server-sent events fed by ``Durable.subscribe``, which the pages' script turns
into a refresh of what they show. A browser that reconnects sends ``Last-Event-ID`` and misses
nothing the engine still keeps (10 minutes)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from durable_celery.dashboard.app import route
from durable_celery.dashboard.http import HTTPError, Request, Response
from durable_celery.identifiers import is_execution_id

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard
    from durable_celery.durable import Durable

#: seconds without an event before a keep-alive comment, which also finds a browser gone
KEEPALIVE = 10.0


@route("GET", r"/events")
def events(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    execution_id = request.arg("execution") or None
    if execution_id is not None and not is_execution_id(execution_id):
        raise HTTPError(400, f"{execution_id!r} is not an execution id")
    last = request.headers.get("last-event-id", "")
    after = int(last) if last.isdigit() and len(last) < 19 else None
    return Response(_stream(dashboard.durable, execution_id, after), content_type="text/event-stream",
                    headers=[("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")])


def _stream(durable: Durable, execution_id: str | None, after: int | None) -> Iterator[bytes]:
    # the browser retries after 1 s when the connection drops
    yield b"retry: 1000\n: connected\n\n"
    while True:
        subscription = durable.subscribe(execution_id=execution_id, after=after, timeout=KEEPALIVE)
        try:
            for event in subscription:
                after = event.id
                data = json.dumps({"kind": event.kind, "execution_id": event.execution_id,
                                   "workflow": event.workflow, "step": event.step}, default=str)
                yield f"id: {event.id}\ndata: {data}\n\n".encode()
        finally:
            subscription.close()
        yield b": keep-alive\n\n"
