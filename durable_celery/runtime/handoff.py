"""A lease handed over with the message: in per-step mode the checkpoint of one step leases the
execution to the message of the next (``engine.decide.move_on``), and publishes the execution
as it left it. The task that receives that message in time runs the step at once, with no
claim: one commit a step. The timing rules that keep this safe are all here.

* The handed lease lasts ``ttl`` seconds (``Settings.handoff_ttl``); the tick takes an expired
  one back and re-dispatches, without counting a lost worker unless the lease was marked started.
* A task trusts the lease only while at least half of ``ttl`` is left (by its own clock), and
  renews it, marking it started, after ``confirm_after(ttl)`` seconds of step (the heartbeat
  thread wakes every half of that). Between the two lie the workers' clock tolerance.
* Otherwise (late, redelivered by the broker, malformed) the task claims, taking the handed
  lease over if it is still there.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from durable_celery.engine.values import Snapshot

log = logging.getLogger(__name__)

#: at most this long (seconds) before a lease taken from a message is renewed and marked started
CONFIRM_AFTER = 1.0


def confirm_after(ttl: float) -> float:
    """When a lease taken from a message is renewed (and marked started): well before it expires."""
    return min(CONFIRM_AFTER, ttl / 8)


def clock_tolerance(ttl: float) -> float:
    """How far beat's clock may run ahead of the receiving worker's without a handed lease being
    trusted after the tick could take it back: what is left of the lease's trusted half once it
    is confirmed. (The sending worker's clock drops out: the receiver's trust and the tick's
    take-back both compare their own clock with the expiry it wrote.)"""
    return ttl / 2 - 1.5 * confirm_after(ttl)


def take_handoff(handoff: Mapping[str, Any] | None, execution_id: str, seq: int, now: datetime,
                 ttl: float | None, redelivered: bool) -> Snapshot | str | None:
    """What a message's handed lease gives its task: the execution to run at once (its step
    started ``now``) while the lease is the message's own with half of ``ttl`` left; else the
    lease's token, for a claim that takes it over (or finds it gone); None when the message
    carries no lease, or a malformed one (logged)."""
    if handoff is None:
        return None
    try:
        token = str(handoff["token"])
        until = float(handoff["until"])
        if redelivered or ttl is None or until - now.timestamp() < ttl / 2:
            return token
        snap = Snapshot.from_wire(handoff["snapshot"])
    except (KeyError, TypeError, ValueError):
        log.warning("durable: a malformed handoff for execution %s seq %s; claiming instead", execution_id, seq)
        return None
    if snap.id != execution_id or snap.seq != seq or snap.lease_owner != token:
        log.warning("durable: the handoff in the message of execution %s seq %s is another's; claiming instead",
                    execution_id, seq)
        return token
    return dataclasses.replace(snap, step_started_at=now)
