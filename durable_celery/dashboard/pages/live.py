"""``/events``: server-sent events from the dashboard's :class:`~durable_celery.dashboard.hub.EventHub`,
which the pages' script turns into a refresh of what they show (and into one refresh on each
reconnect, for whatever changed while the stream was down)."""

from __future__ import annotations

import json
import queue
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from durable_celery.dashboard.app import route
from durable_celery.dashboard.http import HTTPError, Request, Response
from durable_celery.identifiers import is_execution_id

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard
    from durable_celery.dashboard.hub import EventHub

#: seconds without an event before a keep-alive comment: also how soon a closed page is noticed
KEEPALIVE = 5.0


@route("GET", r"/events")
def events(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    execution_id = request.arg("execution") or None
    if execution_id is not None and not is_execution_id(execution_id):
        raise HTTPError(400, f"{execution_id!r} is not an execution id")
    return Response(_stream(dashboard.hub, execution_id), content_type="text/event-stream",
                    headers=[("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")])


def _stream(hub: EventHub, execution_id: str | None) -> Iterator[bytes]:
    watcher = hub.join(execution_id)
    try:
        # the browser retries after 1 s when the connection drops
        yield b"retry: 1000\n: connected\n\n"
        while True:
            try:
                event = watcher.events.get(timeout=KEEPALIVE)
            except queue.Empty:
                yield b": keep-alive\n\n"
                continue
            if event is None:  # a nudge: something the page shows may have changed
                yield b'data: {"kind": "refresh", "execution_id": null, "workflow": null, "step": null}\n\n'
                continue
            data = json.dumps({"kind": event.kind, "execution_id": event.execution_id, "workflow": event.workflow,
                               "step": event.step}, default=str)
            yield f"id: {event.id}\ndata: {data}\n\n".encode()
    finally:
        hub.leave(watcher)
