"""Which slots of a due schedule to start now, and its next due time: pure, with the time and
the policy as arguments.

A slot is one time the cron expression fires. When the tick finds a schedule due (its
``next_run_at`` has passed), the slots from ``next_run_at`` up to now split in two:

- *on time*: due within the last ``grace`` seconds. Each starts, however the policy reads: a
  tick that runs a little late (or a per-second schedule with a one-second tick) loses nothing.
- *missed*: due longer ago than that, which means no beat ran the tick for a while. The
  policy decides: ``"one"`` (the default) starts one run for all of them together (the first
  missed slot's), ``"all"`` starts one run per missed slot, ``"none"`` starts none.

The next due time is the first slot after now; ``"all"`` stops after ``limit`` slots and
takes the rest on the next tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from durable_celery.scheduling.cron import CronSpec, first_at_or_after, next_fire

CatchUp = Literal["one", "all", "none"]
CATCH_UP_POLICIES = ("one", "all", "none")


@dataclass(frozen=True)
class Plan:
    #: the slots to start a run for, oldest first (each run's idempotency key names its slot)
    slots: list[datetime]
    next_run_at: datetime


def plan(spec: CronSpec, next_run_at: datetime, now: datetime, *, catch_up: CatchUp, grace: float,
         limit: int = 100) -> Plan:
    """The runs to start for a schedule due at ``next_run_at`` (``<= now``), and what is due next."""
    on_time_from = now - timedelta(seconds=grace)
    slots: list[datetime] = []
    slot = next_run_at
    if slot < on_time_from:  # missed slots
        if catch_up == "all":
            while slot < on_time_from and len(slots) < limit:
                slots.append(slot)
                slot = next_fire(spec, slot)
        else:
            if catch_up == "one":
                slots.append(slot)
            slot = max(first_at_or_after(spec, on_time_from), next_fire(spec, slot))
    while slot <= now and len(slots) < limit:
        slots.append(slot)
        slot = next_fire(spec, slot)
    return Plan(slots, slot)


def first_run(spec: CronSpec, now: datetime) -> datetime:
    """When a new (or re-enabled, or re-timed) schedule is first due: its first slot after now."""
    return next_fire(spec, now)
