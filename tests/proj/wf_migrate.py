"""Two versions of the same workflows, for moving in-flight executions onto a new definition
(tests/test_migrate_executions.py). Workers load version ``DT_MIGRATE_V`` (default 2, the
deployed one); the test starts version 1 executions through an engine built on ``build(1)``.

- ``mig_rename``: the waiting step ``wait_v1`` is renamed ``wait_v2``.
- ``mig_added``: version 2 adds the step ``audit`` before the waiting step.
- ``mig_retry``: version 2 changes the waiting step's retry policy (its shape).

Each step records that it ran (``before`` a wait, ``after`` it), so the tests count what ran.
"""

from __future__ import annotations

import os
import time
from typing import Any

from durable_celery import Retry, Workflow, wait
from tests.proj.effects import record


def _prepare(ctx: dict[str, Any]) -> dict[str, Any]:
    record("ran")
    time.sleep(float(ctx.get("slow", 0)))
    return {**ctx, "prepared": True}


def _wait_for_go(ctx: dict[str, Any]) -> dict[str, Any]:
    record("before")
    payload = wait.wait_for_event("go")
    record("after")
    return {**ctx, "go": payload}


def _simple(note: str) -> Any:
    def body(ctx: dict[str, Any]) -> dict[str, Any]:
        record(note)
        return {**ctx, note: True}
    return body


def build(version: int) -> list[Workflow]:
    rename = Workflow("mig_rename")
    rename.step(name="prepare")(_prepare)
    rename.step(name="wait_v1" if version == 1 else "wait_v2")(_wait_for_go)
    with rename.branch(on=lambda ctx: ctx.get("route", "done")) as b:
        with b.default():
            rename.step(name="finish")(_simple("finished"))

    added = Workflow("mig_added")
    added.step(name="prepare")(_prepare)
    if version > 1:
        added.step(name="audit")(_simple("audited"))
    added.step(name="wait_step")(_wait_for_go)
    added.step(name="finish")(_simple("finished"))

    retry = Workflow("mig_retry")
    retry.step(name="prepare")(_prepare)
    retry.step(name="wait_step", retry=Retry(max_attempts=1 if version == 1 else 3))(_wait_for_go)
    retry.step(name="finish")(_simple("finished"))
    return [rename, added, retry]


mig_rename, mig_added, mig_retry = build(int(os.environ.get("DT_MIGRATE_V", "2")))
