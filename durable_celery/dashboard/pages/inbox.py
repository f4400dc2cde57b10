"""``/inbox``: the human inputs that waiting steps asked for, those expiring soonest first, each
as the form its declaration describes (``forms.py``); a form is answered through
``provide_input``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from durable_celery.dashboard.app import route
from durable_celery.dashboard.forms import FormInvalid, InputForm, Submitted, build_form, read_form
from durable_celery.dashboard.http import HTTPError, Request, Response, redirect
from durable_celery.dashboard.render import page
from durable_celery.errors import InvalidInput
from durable_celery.identifiers import is_execution_id

if TYPE_CHECKING:
    from durable_celery.dashboard.app import Dashboard
    from durable_celery.durable import Durable
    from durable_celery.models import PendingInput

#: pending inputs read, soonest to expire first, and how many of them the inbox shows
READ, SHOWN = 200, 50
#: an input that times out sooner than this is marked as expiring
SOON = 3600.0
ANSWER_PATH = r"/inbox/(?P<execution>[^/]+)/(?P<name>.+)"


@dataclass(frozen=True)
class Card:
    """One pending input as the inbox shows it."""

    input: PendingInput
    form: InputForm
    #: seconds until it times out (None: never; negative: due, the tick has not fired it yet)
    expires_in: float | None

    @property
    def key(self) -> str:
        return _key(self.input)

    @property
    def expiring(self) -> bool:
        return self.expires_in is not None and self.expires_in < SOON


@dataclass(frozen=True)
class Refusal:
    """An answer refused: shown again (status 400) with what was submitted and why."""

    input: PendingInput
    submitted: Submitted
    errors: dict[str, str]

    @property
    def key(self) -> str:
        return _key(self.input)


@route("GET", r"/inbox")
def inbox(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    return _inbox_page(dashboard, request)


@route("GET", ANSWER_PATH)
def answer_page(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    # the URL a refused answer was shown at: its live refresh and a reload show the inbox
    return redirect(request.url("/inbox"))


@route("POST", ANSWER_PATH)
def answer(dashboard: Dashboard, request: Request, match: re.Match[str]) -> Response:
    durable = dashboard.durable
    execution_id, name = match["execution"], match["name"]
    if not is_execution_id(execution_id):
        raise HTTPError(404, f"{execution_id!r} is not an execution id")
    pending = _pending(durable, execution_id, name)
    if pending is None:
        durable.get_execution(execution_id)  # an unknown execution: 404
        raise HTTPError(409, f"input {name!r} of execution {execution_id} is no longer pending: it was answered, "
                             "it timed out or its execution ended meanwhile")
    submitted: Submitted = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    try:
        durable.provide_input(execution_id, name, read_form(pending, submitted))
    except FormInvalid as invalid:
        return _inbox_page(dashboard, request, Refusal(pending, submitted, invalid.errors))
    except InvalidInput as error:  # the engine's own check of the data
        return _inbox_page(dashboard, request, Refusal(pending, submitted, {"": str(error)}))
    return redirect(request.url("/inbox") + "?flash=input-provided")


def _inbox_page(dashboard: Dashboard, request: Request, refusal: Refusal | None = None) -> Response:
    durable = dashboard.durable
    listed = durable.list_pending_inputs(status="pending", limit=READ, expiring_first=True)
    pending = _one_per_name(listed)
    if refusal is not None:  # the refused form comes first, where the page opens, with its errors
        pending = [refusal.input, *(item for item in pending if item != refusal.input)]
    now = durable.clock.now()
    cards = []
    for item in pending[:SHOWN]:
        if refusal is not None and item == refusal.input:
            form = build_form(item, refusal.submitted, refusal.errors)
        else:
            form = build_form(item)
        expires_in = (item.timeout_at - now).total_seconds() if item.timeout_at is not None else None
        cards.append(Card(item, form, expires_in))
    return page(request, "inbox.html", status=400 if refusal else 200, title="Inbox", dashboard=dashboard,
                live="all", cards=cards, hidden=max(0, len(pending) - SHOWN), more=len(listed) >= READ,
                refused_key=refusal.key if refusal else None)


def _one_per_name(pending: list[PendingInput]) -> list[PendingInput]:
    """The first of each execution and name, in the order given (expiring first, as listed):
    branches that ask for the same name take one answer."""
    seen: set[str] = set()
    ordered = []
    for item in pending:
        if _key(item) not in seen:
            seen.add(_key(item))
            ordered.append(item)
    return ordered


def _pending(durable: Durable, execution_id: str, name: str) -> PendingInput | None:
    """The pending input ``name`` of the execution (the one expiring first, if branches ask twice)."""
    matching = [item for item in durable.list_pending_inputs(status="pending", execution_id=execution_id,
                                                              limit=1000, expiring_first=True)
                if item.input_name == name]
    return matching[0] if matching else None


def _key(item: PendingInput) -> str:
    """What names a pending input's form on the page (``data-form-key``)."""
    return f"{item.workflow_id}/{item.input_name}"
