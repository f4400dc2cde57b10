"""When a task trusts the lease its message carries, and when it claims instead."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.engine.values import Snapshot
from durable_celery.runtime.handoff import clock_tolerance, confirm_after, take_handoff
from durable_celery.settings import Settings

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
TTL = 15.0


def handed(age: float, **changes: Any) -> dict[str, Any]:
    """The handoff of a message published ``age`` seconds ago, for execution e1 at seq 5."""
    snap = Snapshot(id="e1", workflow="orders", version="v", kind="workflow", status=ExecutionStatus.RUNNING,
                    queue="durable", priority=0, seq=5, entered_seq=5, attempt=1, current_node="charge",
                    node_shape="s", context={"n": 1}, input={}, lease_owner="h1")
    payload = {"token": "h1", "until": (NOW + timedelta(seconds=TTL - age)).timestamp(), "snapshot": snap.to_wire()}
    payload.update(changes)
    return payload


def test_a_fresh_handoff_is_run_at_once_its_step_started_now() -> None:
    taken = take_handoff(handed(age=1), "e1", 5, NOW, TTL, redelivered=False)
    assert isinstance(taken, Snapshot)
    assert taken.lease_owner == "h1" and taken.seq == 5 and taken.step_started_at == NOW and taken.context == {"n": 1}


@pytest.mark.parametrize("age, redelivered, seq", [(TTL / 2 + 0.1, False, 5), (1, True, 5), (1, False, 6)])
def test_a_late_redelivered_or_foreign_handoff_is_claimed_with_its_token(age: float, redelivered: bool,
                                                                         seq: int) -> None:
    assert take_handoff(handed(age=age), "e1", seq, NOW, TTL, redelivered) == "h1"


@pytest.mark.parametrize("payload", [{"token": "h1"}, {"token": "h1", "until": "soon"},
                                     handed(age=1, snapshot={"id": "e1"})])
def test_a_malformed_handoff_is_ignored_and_the_message_claims(payload: dict[str, Any]) -> None:
    assert take_handoff(payload, "e1", 5, NOW, TTL, redelivered=False) is None


def test_no_handoff_in_eager_mode_or_without_one() -> None:
    assert take_handoff(None, "e1", 5, NOW, TTL, redelivered=False) is None
    assert take_handoff(handed(age=1), "e1", 5, NOW, None, redelivered=False) == "h1"


@pytest.mark.parametrize("redispatch_after, stale_lock_timeout, ttl", [(15, 60, 15), (1, 60, 10), (2, 3, 3),
                                                                        (30, 20, 20)])
def test_the_handed_lease_lasts_redispatch_after_within_bounds(redispatch_after: float, stale_lock_timeout: float,
                                                               ttl: float) -> None:
    settings = Settings(database_url="sqlite://", embedded=True, redispatch_after=redispatch_after,
                        stale_lock_timeout=stale_lock_timeout)
    assert settings.handoff_ttl == ttl
    # A trusted lease is confirmed (renewed, marked started) with time to spare before the tick may take it back
    assert confirm_after(ttl) * 1.5 < ttl / 2 and clock_tolerance(ttl) > 0


def test_the_defaults_tolerate_six_seconds_of_clock_skew() -> None:
    assert clock_tolerance(Settings(database_url="sqlite://", embedded=True).handoff_ttl) == 6.0
