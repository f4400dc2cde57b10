"""``celery -A proj durable doctor``: what keeps executions from moving, with counts and examples.

The checks, in order: the schema (behind: nothing else is checked), the beat tick (none seen for
several intervals), runnable executions whose queue no live worker consumes, expired leases the
tick has not recovered, waiting executions that nothing can wake, compensations that stopped,
disabled schedules. Each is a :class:`Finding`; ``ok=False`` is something wrong. A schedule an
operator disabled is reported but is not wrong; one disabled by its failures is.

``fix=True`` first runs one tick in this process (what beat runs every ``tick_interval``): it
recovers expired leases, re-dispatches runnable executions whose message was lost, wakes due
waits and times out what is overdue. It changes nothing a running beat would not, so it is safe
with beat running or not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from durable_celery.clock import Clock
from durable_celery.runtime.services import Services
from durable_celery.runtime.tick import tick
from durable_celery.settings import Settings
from durable_celery.state import migrate
from durable_celery.state.db import Database
from durable_celery.state.diagnosis import (
    Found,
    disabled_schedules_txn,
    expired_leases_txn,
    runnable_by_node_txn,
    stalled_compensations_txn,
    unwakeable_txn,
)
from durable_celery.state.heartbeats import BEAT, last_seen_txn

#: a beat not seen for this many tick intervals (and at least BEAT_MIN seconds) is reported
BEAT_INTERVALS = 5
BEAT_MIN = 10.0
EXAMPLES = 5


@dataclass(frozen=True)
class Finding:
    """One check's result: ``ok`` False when something is wrong."""

    check: str
    ok: bool
    message: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DoctorReport:
    findings: list[Finding]
    #: what ``fix=True`` did: the tick's counts (recovered, dispatched, woken, ...)
    fixed: dict[str, int] | None = None

    @property
    def healthy(self) -> bool:
        return all(f.ok for f in self.findings)


@dataclass(frozen=True)
class Probe:
    """What the doctor looks at."""

    db: Database
    settings: Settings
    clock: Clock
    #: (workflow, current_node, execution queue) -> the Celery queue its message goes to
    queue_for: Callable[[str, str | None, str, str | None], str]
    #: queue -> live workers consuming it (raises if the broker cannot be asked)
    consumers: Callable[[], dict[str, list[str]]]


def diagnose(probe: Probe, services: Callable[[], Services] | None = None) -> DoctorReport:
    """Run every check (``services``: run one tick first, the safe fix)."""
    current, head = migrate.current_revision(probe.db), migrate.head_revision()
    if current != head:
        return DoctorReport([Finding("schema", False, f"schema at {current or 'nothing'}, this version needs {head}: "
                                                      "run `durable migrate`")])
    fixed = None
    if services is not None:
        fixed = dataclasses.asdict(tick(services()))
    now = probe.clock.now()
    s = probe.settings
    findings = [Finding("schema", True, f"schema at {head}")]
    with probe.db.connect() as conn:
        findings.append(_beat(last_seen_txn(conn, BEAT), now, s.tick_interval))
        runnable = runnable_by_node_txn(conn, now)
        grace = timedelta(seconds=max(3 * s.tick_interval, 5.0))
        findings.append(_counted("leases", expired_leases_txn(conn, now - grace, EXAMPLES),
                                 "expired leases not recovered (is beat running? `doctor --fix` runs one tick)",
                                 "no expired leases waiting for recovery"))
        findings.append(_counted("waits", unwakeable_txn(conn, EXAMPLES),
                                 "waiting executions that nothing can wake (no pending wait, branch or timer)",
                                 "every waiting execution has something that can wake it"))
        stalled = now - timedelta(seconds=max(s.stale_lock_timeout, 60.0))
        findings.append(_counted("compensations", stalled_compensations_txn(conn, stalled, EXAMPLES),
                                 "compensations that stopped (not leased, not runnable, untouched for "
                                 f"{max(s.stale_lock_timeout, 60.0):g}s)", "no stalled compensations"))
        disabled = disabled_schedules_txn(conn)
    findings.insert(2, _queues(runnable, probe))
    findings.append(_schedules(disabled))
    return DoctorReport(findings, fixed)


def _beat(row: Any, now: datetime, interval: float) -> Finding:
    limit = max(BEAT_INTERVALS * interval, BEAT_MIN)
    if row is None:
        return Finding("beat", False, "no beat tick recorded: is `celery -A proj beat` running?")
    age = (now - row["seen_at"]).total_seconds()
    if age > limit:
        return Finding("beat", False, f"no beat tick for {age:.0f}s (last at {row['seen_at'].isoformat(timespec='seconds')}"
                                      f" by {row['detail']}; expected every {interval:g}s)")
    return Finding("beat", True, f"beat ticked {age:.1f}s ago ({row['detail']})")


def _counted(check: str, found: Found, wrong: str, fine: str) -> Finding:
    if found.count:
        return Finding(check, False, f"{found.count} {wrong}", found.count, found.examples)
    return Finding(check, True, fine)


def _queues(runnable: list[Any], probe: Probe) -> Finding:
    by_queue: dict[str, list[Any]] = {}
    for row in runnable:
        by_queue.setdefault(probe.queue_for(row["workflow"], row["current_node"], row["queue"], row.get("version")), []).append(row)
    if not by_queue:
        return Finding("queues", True, "no runnable executions waiting for a worker")
    try:
        live = probe.consumers()
    except Exception as exc:  # the broker is down or refuses: say so, the other checks still hold
        count = sum(r["count"] for rows in by_queue.values() for r in rows)
        return Finding("queues", False, f"cannot ask the workers which queues they consume: {exc}", count)
    orphaned = {q: rows for q, rows in by_queue.items() if q not in live}
    if not orphaned:
        return Finding("queues", True, f"every queue with runnable executions has a live consumer "
                                       f"({', '.join(sorted(by_queue))})")
    count = sum(r["count"] for rows in orphaned.values() for r in rows)
    names = ", ".join(f"{q} ({sum(r['count'] for r in rows)})" for q, rows in sorted(orphaned.items()))
    examples = sorted({r["example"] for rows in orphaned.values() for r in rows})[:EXAMPLES]
    return Finding("queues", False, f"{count} runnable executions on queues no live worker consumes: {names}",
                   count, examples)


def _schedules(disabled: list[Any]) -> Finding:
    failed = [r for r in disabled if r["auto_disabled_at"] is not None]
    manual = [r["name"] for r in disabled if r["auto_disabled_at"] is None]
    note = f"; {len(manual)} disabled by an operator: {', '.join(manual[:EXAMPLES])}" if manual else ""
    if failed:
        last = failed[0]["last_error"] or "-"
        return Finding("schedules", False, f"{len(failed)} schedules disabled after failing to start (last error of "
                                           f"{failed[0]['name']}: {last}){note}", len(failed),
                       [r["name"] for r in failed[:EXAMPLES]])
    if manual:
        return Finding("schedules", True, f"{len(manual)} schedules disabled by an operator: "
                                          f"{', '.join(manual[:EXAMPLES])}", len(manual), manual[:EXAMPLES])
    return Finding("schedules", True, "no disabled schedules")
