"""Named fault points for crash tests.

A test arms a point through the environment of the worker it starts, e.g.
``DURABLE_FAULTS=after_checkpoint:charge`` kills the worker process with SIGKILL right after the
checkpoint of step ``charge`` commits and before the next message is published. Unarmed, a point
costs one dict lookup.
"""

from __future__ import annotations

import os
import signal


def _armed() -> dict[str, set[str]]:
    armed: dict[str, set[str]] = {}
    for item in filter(None, os.environ.get("DURABLE_FAULTS", "").split(",")):
        point, _, step = item.partition(":")
        armed.setdefault(point.strip(), set()).add(step.strip() or "*")
    return armed


_ARMED = _armed()


def trip(point: str, step: str) -> None:
    """Kill this process if ``point`` is armed for ``step`` (or for every step)."""
    steps = _ARMED.get(point)
    if steps and (step in steps or "*" in steps):
        marker = os.environ.get("DURABLE_FAULT_MARKER")
        if marker:
            with open(marker, "a") as fh:
                fh.write(f"{point}:{step}:{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
