"""Waiting inside a step: sleeps, events and human input, suspended durably.

A wait suspends the execution (status ``waiting``, no worker held, nothing kept in the broker).
When it can go on — its event or input arrived, or its timer or timeout fired — the step runs
again from its top and every wait it already passed returns its recorded value, in order. A step
may wait several times. Code before a wait therefore runs again on resume: keep it idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from durable_celery.clock import as_utc
from durable_celery.context import current
from durable_celery.durations import Duration, optional_seconds, to_seconds
from durable_celery.errors import InvalidInput
from durable_celery.runtime.inputs import check_declaration
from durable_celery.runtime.waiting import WaitSpec
from durable_celery.wait.calendar import end_of_day, next_business_day, next_weekday

__all__ = [
    "sleep", "schedule_at", "wait_for_event", "wait_for_any", "wait_for_all", "wait_for_input",
    "wait_for_approval", "wait_for_choice", "wait_for_text", "wait_for_form",
    "next_business_day", "next_weekday", "end_of_day",
]


def _wait(spec: WaitSpec) -> Any:
    handle = current().waits
    if handle is None:
        raise InvalidInput("waits are not available here: a compensation cannot wait")
    return handle.wait(spec)


def _names(names: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str) or not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidInput(f"{what} needs a non-empty list of event names, got {names!r}")
    return tuple(names)


def sleep(duration: Duration) -> None:
    """Suspend the execution for ``duration`` (a timedelta or seconds); no worker is held."""
    _wait(WaitSpec("sleep", timeout=to_seconds(duration, "sleep duration")))


def schedule_at(when: datetime) -> None:
    """Suspend the execution until ``when`` (timezone-aware); returns at once if it has passed."""
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise InvalidInput(f"schedule_at needs a timezone-aware datetime, got {when!r}")
    _wait(WaitSpec("sleep", until=as_utc(when)))  # stored as UTC: SQLite drops the zone


def wait_for_event(name: str, *, timeout: Duration | None = None, timeout_value: Any = None,
                   filter: Callable[[Any], bool] | None = None) -> Any:
    """Wait for ``send_event(id, name, payload)`` and return the payload (``timeout_value`` on
    timeout). Events sent before the wait is reached are kept and consumed here, oldest first;
    with ``filter``, payloads it rejects are skipped (and kept)."""
    if filter is not None and not callable(filter):
        raise InvalidInput(f"filter must be callable, got {filter!r}")
    return _wait(WaitSpec("event", _names([name], "wait_for_event"), optional_seconds(timeout, "timeout"),
                          timeout_value=timeout_value, filter=filter))


def wait_for_any(names: Sequence[str], *, timeout: Duration | None = None,
                 timeout_value: Any = None) -> Any:
    """Wait for the first of several events; returns ``(name, payload)``."""
    return _wait(WaitSpec("any", _names(names, "wait_for_any"), optional_seconds(timeout, "timeout"),
                          timeout_value=timeout_value))


def wait_for_all(names: Sequence[str], *, timeout: Duration | None = None,
                 timeout_value: Any = None) -> Any:
    """Wait until every event has arrived; returns ``{name: payload}``. On timeout returns
    ``timeout_value`` (the partial arrivals stay recorded on the wait)."""
    return _wait(WaitSpec("all", _names(names, "wait_for_all"), optional_seconds(timeout, "timeout"),
                          timeout_value=timeout_value))


def wait_for_input(name: str, *, type: str = "form", prompt: str | None = None,
                   metadata: dict[str, Any] | None = None, fields: list[dict[str, Any]] | None = None,
                   choices: list[Any] | None = None, timeout: Duration | None = None,
                   timeout_value: Any = None) -> Any:
    """Wait for a person to ``provide_input(id, name, data)``; listed by ``list_pending_inputs``.
    The data is validated against ``type``, ``fields`` and ``choices`` when it is provided."""
    check_declaration(type, fields, choices)
    declared = {"type": type, "prompt": prompt, "metadata": metadata, "fields": fields, "choices": choices}
    return _wait(WaitSpec("input", _names([name], "wait_for_input"), optional_seconds(timeout, "timeout"),
                          timeout_value=timeout_value, input=declared))


def wait_for_approval(name: str, *, prompt: str | None = None, metadata: dict[str, Any] | None = None,
                      timeout: Duration | None = None, timeout_value: Any = None) -> Any:
    """An approval: returns ``"approved"`` or ``"rejected"``."""
    return wait_for_input(name, type="approval", prompt=prompt, metadata=metadata, timeout=timeout,
                          timeout_value=timeout_value)


def wait_for_choice(name: str, choices: list[Any], *, multiple: bool = False, prompt: str | None = None,
                    metadata: dict[str, Any] | None = None, timeout: Duration | None = None,
                    timeout_value: Any = None) -> Any:
    """One of ``choices`` (a list of them with ``multiple=True``)."""
    return wait_for_input(name, type="multi_choice" if multiple else "single_choice", prompt=prompt,
                          metadata=metadata, choices=choices, timeout=timeout, timeout_value=timeout_value)


def wait_for_text(name: str, *, prompt: str | None = None, metadata: dict[str, Any] | None = None,
                  timeout: Duration | None = None, timeout_value: Any = None) -> Any:
    """Free text."""
    return wait_for_input(name, type="free_text", prompt=prompt, metadata=metadata, timeout=timeout,
                          timeout_value=timeout_value)


def wait_for_form(name: str, fields: list[dict[str, Any]], *, prompt: str | None = None,
                  metadata: dict[str, Any] | None = None, timeout: Duration | None = None,
                  timeout_value: Any = None) -> Any:
    """A form: a dict checked against ``fields``."""
    return wait_for_input(name, type="form", prompt=prompt, metadata=metadata, fields=fields, timeout=timeout,
                          timeout_value=timeout_value)
