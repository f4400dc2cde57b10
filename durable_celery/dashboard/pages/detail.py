"""``/executions/<id>``: one execution: its summary, its workflow's graph with the path taken,
the timeline of its step attempts (their logs, values and errors), its input, context and
error; and the actions on it, each a POST that redirects back: cancel (with or without
compensation), retry (to the new execution's page), send an event."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from durable_celery.dashboard.app import route
from durable_celery.dashboard.graph_svg import render_svg
from durable_celery.dashboard.http import HTTPError, Request, Response, redirect
from durable_celery.dashboard.render import page
from durable_celery.engine.statuses import RETRYABLE, TERMINAL, ExecutionStatus
from durable_celery.errors import WorkflowNotFound

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard
    from durable_celery.durable import Durable
    from durable_celery.models import Execution

EXECUTION = r"/executions/(?P<id>[^/]+)"
#: what a checkbox may send
CHECKED = {"": False, "0": False, "off": False, "false": False, "1": True, "on": True, "true": True}


@route("GET", EXECUTION)
def execution(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    durable = dashboard.durable
    execution_id = _execution_id(match)
    found = durable.get_execution(execution_id, include_steps=True, include_logs=True)
    finished = found.status in TERMINAL
    # why() asks the workers when a message waits for one (up to a second): only for a waiting one
    why = durable.why(execution_id) if found.status == ExecutionStatus.WAITING else None
    return page(request, "execution.html", title=f"Execution {execution_id[:8]}", dashboard=dashboard,
                live=f"execution:{execution_id}", execution=found, finished=finished,
                retryable=found.status in RETRYABLE, why=why, graph=_graph(durable, found),
                children=durable.list_children(execution_id) if found.children else [],
                kept_events=[] if finished else durable.list_pending_events(execution_id),
                inputs=(durable.list_pending_inputs(status="pending", execution_id=execution_id, expiring_first=True)
                        if found.status == ExecutionStatus.WAITING else []),
                attempts=[step for step in found.steps if step.migration is None],
                migrations=[step for step in found.steps if step.migration is not None])


def _graph(durable: Durable, execution: Execution) -> Markup | None:
    """The workflow's graph with this execution's states, or None when this process does not
    know the workflow (no longer deployed, or not among the dashboard's workflow modules)."""
    try:
        graph = durable.graph(execution.workflow, execution.id)
    except WorkflowNotFound:
        return None
    # render_svg escapes every label and id it writes
    return Markup(render_svg(graph, completed=execution.status == ExecutionStatus.COMPLETED,
                             prefix="execution-graph"))


@route("POST", EXECUTION + "/cancel")
def cancel(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    execution_id = _execution_id(match)
    form = request.form
    compensate = CHECKED.get(form.get("compensate", "").strip().lower())
    if compensate is None:
        raise HTTPError(400, f"compensate is a checkbox: on or off, got {form['compensate']!r}")
    reason = form.get("reason", "").strip() or None
    dashboard.durable.cancel(execution_id, reason=reason, compensate=compensate)
    return redirect(request.url(f"/executions/{execution_id}?flash=cancelled"))


@route("POST", EXECUTION + "/retry")
def retry(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    new_id = dashboard.durable.retry(_execution_id(match))
    return redirect(request.url(f"/executions/{new_id}?flash=retried"))


@route("POST", EXECUTION + "/events")
def send_event(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    execution_id = _execution_id(match)
    name = request.form.get("name", "").strip()
    if not name:
        raise HTTPError(400, "an event needs a name: the one the workflow waits for")
    dashboard.durable.send_event(execution_id, name, _json(request.form.get("payload", "")))
    return redirect(request.url(f"/executions/{execution_id}?flash=event-sent"))


def _execution_id(match: re.Match[str]) -> str:
    """The id in the path, in its canonical form; a 400 when it is no execution id."""
    try:
        return str(uuid.UUID(match["id"]))
    except ValueError:
        raise HTTPError(400, f"{match['id']!r} is not an execution id (a UUID)") from None


def _json(text: str) -> Any:
    """The JSON value of a payload field (empty: null); a 400 that says where it is wrong."""
    if not text.strip():
        return None

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as error:
        raise HTTPError(400, f"the payload is not JSON: {error.msg} at line {error.lineno}, column {error.colno} "
                             "(leave it empty to send null)") from None
    except ValueError as error:
        raise HTTPError(400, f"the payload is not JSON: {error}") from None
