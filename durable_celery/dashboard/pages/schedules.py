"""``/schedules``: the cron schedules, their last and next runs, enable / disable / trigger now;
``/queues``: what each queue is doing, pause / resume."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from durable_celery.dashboard.app import route
from durable_celery.dashboard.http import HTTPError, Request, Response, redirect
from durable_celery.dashboard.render import page
from durable_celery.errors import QueueNotFound, ScheduleNotFound
from durable_celery.identifiers import is_execution_id

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard

PAGE_SIZE = 200
#: the flash (render.FLASHES) each action returns with
DONE = {"enable": "enabled", "disable": "disabled", "pause": "paused", "resume": "resumed"}


@route("GET", r"/schedules")
def schedules(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    offset = request.arg("offset", "0")
    if not offset.isdigit() or len(offset) > 9:
        raise HTTPError(400, f"offset must be a whole number, got {offset!r}")
    found = dashboard.durable.list_schedules(limit=PAGE_SIZE + 1, offset=int(offset))
    started = request.arg("execution")
    next_link = (request.url("/schedules") + "?" + urlencode({"offset": int(offset) + PAGE_SIZE})
                 if len(found) > PAGE_SIZE else None)
    return page(request, "schedules.html", title="Schedules", dashboard=dashboard, live="all",
                schedules=found[:PAGE_SIZE], next_link=next_link,
                first_page_link=request.url("/schedules") if int(offset) else None,
                started=started if is_execution_id(started) else None)


@route("POST", r"/schedules/(?P<name>.+)/(?P<action>enable|disable|trigger)")
def schedule_action(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    durable, name, action = dashboard.durable, match["name"], match["action"]
    try:
        if action == "trigger":
            execution_id = durable.trigger_schedule(name)
            return redirect(request.url("/schedules") + "?" + urlencode({"flash": "triggered", "execution": execution_id}))
        if action == "enable":
            durable.enable_schedule(name)
        else:
            durable.disable_schedule(name)
    except ScheduleNotFound:
        raise HTTPError(404, f"no schedule named {name!r}") from None
    return redirect(request.url("/schedules") + "?flash=" + DONE[action])


@route("GET", r"/queues")
def queues(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    return page(request, "queues.html", title="Queues", dashboard=dashboard, live="all",
                queues=dashboard.durable.list_queues())


@route("POST", r"/queues/(?P<name>.+)/(?P<action>pause|resume)")
def queue_action(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    durable, name, action = dashboard.durable, match["name"], match["action"]
    try:
        if action == "pause":
            durable.pause_queue(name)
        else:
            durable.resume_queue(name)
    except QueueNotFound:
        # only the queues listed in queues= can be paused: say whether this one exists at all
        queues = durable.engine_queues()
        if name in queues:
            raise HTTPError(400, f"queue {name!r} cannot be paused: only the queues listed in the engine's "
                                 "queues= setting can") from None
        known = sorted(queues | set(durable.settings.queue_limits))
        raise HTTPError(404, f"no queue named {name!r}: the queues are {', '.join(known) or 'none'}") from None
    return redirect(request.url("/queues") + "?flash=" + DONE[action])
