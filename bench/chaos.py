"""The chaos run (issue 16): N workflows of every kind on real workers while a driver kills
workers, restarts the broker and restarts PostgreSQL, then checks that nothing was lost, nothing
committed ran twice and everything ended as its input says it must.

It starts a private PostgreSQL and a private broker (Redis or RabbitMQ, on free ports; the
machine's shared servers are never touched), ``--workers`` ``celery worker`` processes (prefork)
and a beat of ``bench.chaos_app``, and keeps ``--window`` top-level workflows running at a time
until ``--workflows`` have been started and have ended, sending the events the waiting ones
need. Meanwhile (``bench/chaos_faults.py``) a random worker is SIGKILLed (its whole process group)
every few seconds and replaced, the broker is killed and restarted once, and PostgreSQL is
stopped (immediate shutdown), kept down a few seconds and started once. Then it checks
(``bench/chaos_checks.py``) and prints the recovery time of every fault.

Run from the repository root::

    python -m bench.chaos [--workflows 2000] [--broker redis|amqp] [--duration-limit S] [--seed N] [--json]

Exit status 1 if a check failed. The JSON report goes to ``bench/results/chaos-<run id>.json``
(``--json`` also prints it instead of the text summary).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also runnable as `python bench/chaos.py`
    sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.chaos_app import KINDS, SETTINGS, Expected, env_for, event_payloads, expect, make, workflow_input  # noqa: E402
from bench.chaos_checks import FINAL, Check, check  # noqa: E402
from bench.chaos_faults import Cluster, Faults, Plan, Recovery, read_in_flight  # noqa: E402
from bench.chaos_faults import __doc__ as RECOVERY_DOC  # noqa: E402
from bench.chaos_report import build, print_report  # noqa: E402
from durable_celery.errors import ExecutionNotFound, InvalidState  # noqa: E402

APP = "bench.chaos_app"
SCHEMA = "chaos"
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Config:
    workflows: int = 2000
    broker: str = "redis"  # or amqp
    duration_limit: float = 1800.0  # the whole run, start-up and checks included
    seed: int = 1
    workers: int = 3
    concurrency: int = 2
    window: int = 60  # top-level workflows running at a time
    plan: Plan = field(default_factory=Plan)
    recovery_limit: float = 60.0  # a fault must recover within this many seconds
    stall: float = 120.0  # give up when no workflow ended for this long
    poll_interval: float = 0.25
    json_output: bool = False
    quiet: bool = False


@dataclass
class Started:
    kind: str
    input: dict[str, Any]
    expected: Expected
    sent: int = 0  # events sent (chaos_wait)
    sent_at_seq: int = -1


class Load:
    """Starts the workflows, ``window`` at a time, and answers the waits with events."""

    def __init__(self, cfg: Config, durable: Any, run_id: str) -> None:
        self.cfg, self.durable, self.run_id = cfg, durable, run_id
        rng = random.Random(cfg.seed)
        self.todo: list[tuple[int, str, dict[str, Any]]] = []
        for n in range(cfg.workflows):
            kind = KINDS[n % len(KINDS)]
            self.todo.append((n, kind, workflow_input(kind, n, rng.choice)))
        rng.shuffle(self.todo)
        self.started: dict[str, Started] = {}
        self.active: set[str] = set()
        self.errors: dict[str, int] = {}

    @property
    def finished(self) -> int:
        return len(self.started) - len(self.active)

    def progress(self) -> float:
        return self.finished / max(1, self.cfg.workflows)

    def step(self, rows: dict[str, tuple[int, str]]) -> None:
        """One round: ``rows`` maps every execution not yet ended to (seq, status)."""
        self.active = {i for i in self.active if i in rows}
        for execution_id in list(self.active):
            item = self.started[execution_id]
            seq, status = rows[execution_id]
            if item.kind == "wait" and status == "waiting" and seq != item.sent_at_seq \
                    and item.sent < item.input["events"]:
                self._send(execution_id, item, seq)
        while self.todo and len(self.active) < self.cfg.window:
            n, kind, given = self.todo[-1]
            try:
                execution_id = self.durable.start(f"chaos_{kind}", given, idempotency_key=f"chaos-{self.run_id}-{n}")
            except Exception as exc:  # noqa: BLE001 - an outage: try again next round
                self._error("start", exc)
                return
            self.todo.pop()
            self.started[execution_id] = Started(kind, given, expect(kind, given))
            self.active.add(execution_id)

    def _send(self, execution_id: str, item: Started, seq: int) -> None:
        name, payload = event_payloads(item.input["n"], item.input["events"])[item.sent]
        try:
            self.durable.send_event(execution_id, name, payload)
        except (InvalidState, ExecutionNotFound) as exc:
            self._error("send_event (refused)", exc)
            return
        except Exception as exc:  # noqa: BLE001 - an outage: try again next round
            self._error("send_event", exc)
            return
        item.sent += 1
        item.sent_at_seq = seq

    def _error(self, what: str, exc: Exception) -> None:
        key = f"{what}: {type(exc).__name__}"
        self.errors[key] = self.errors.get(key, 0) + 1


def poll(durable: Any) -> dict[str, tuple[int, str]] | None:
    """Every execution not yet ended: id -> (seq, status); None while the database is down."""
    final = ", ".join(f"'{s}'" for s in sorted(FINAL))
    try:
        with durable.db.connect() as conn:
            rows = conn.execute(text(f'SELECT id, seq, status FROM "{SCHEMA}".workflow_executions '
                                     f"WHERE status NOT IN ({final})"))
            return {str(r[0]): (int(r[1]), str(r[2])) for r in rows}
    except Exception:  # noqa: BLE001
        return None


def run(cfg: Config) -> dict[str, Any]:
    """One chaos run; returns the report (``report["ok"]``: every check passed)."""
    run_id = uuid.uuid4().hex[:8]
    began = time.monotonic()
    deadline = began + cfg.duration_limit
    effects = Path(tempfile.mkdtemp(prefix="durable-chaos-effects-"))
    os.chmod(effects, 0o777)
    cluster = Cluster(cfg.broker, cfg.workers, cfg.concurrency)

    def say(line: str) -> None:
        if not (cfg.quiet or cfg.json_output):
            print(line, flush=True)

    faults: Faults | None = None
    durable: Any = None
    passed = False
    try:
        cluster.start_servers()
        queue = f"chaos-{run_id}"
        _app, durable = make(cluster.broker.url, cluster.postgres.url, SCHEMA, queue)
        durable.ensure_schema()
        say(f"chaos run {run_id}: {cfg.workflows} workflows on {cfg.broker}, {cfg.workers} workers x "
            f"{cfg.concurrency} (prefork), window {cfg.window}, seed {cfg.seed}, settings {SETTINGS}")
        cluster.start_processes(APP, env_for(cluster.broker.url, cluster.postgres.url, SCHEMA, queue, str(effects)),
                                queue, str(ROOT))
        load, recovery = Load(cfg, durable, run_id), Recovery()
        faults = Faults(cluster, cfg.plan, recovery, APP, cfg.seed, lambda: read_in_flight(durable.db, SCHEMA),
                        load.progress)
        origin, origin_wall = time.monotonic(), time.time()
        faults.start()
        last_print, timed_out, stalled = 0.0, False, False
        moved, last_finished = time.monotonic(), -1
        while True:
            now = time.monotonic()
            if load.finished != last_finished:
                moved, last_finished = now, load.finished
            if now > deadline or now - moved > cfg.stall:
                timed_out, stalled = now > deadline, now - moved > cfg.stall
                break
            rows = poll(durable)
            if rows is not None:
                recovery.poll({i: seq for i, (seq, _) in rows.items()}, now)
                load.step(rows)
                if not load.todo and not load.active:
                    break
            if now - last_print >= 10:
                last_print = now
                say(f"[{now - origin:6.1f} s] started {len(load.started)}, finished {load.finished}, "
                    f"active {len(load.active)}; faults: {faults.kills} kills, broker "
                    f"{'done' if faults.broker_done else 'pending'}, postgres "
                    f"{'done' if faults.postgres_done else 'pending'}")
            time.sleep(cfg.poll_interval)
        wall = time.monotonic() - origin
        faults.finish()
        cluster.stop_processes()
        findings = check(durable.db, SCHEMA, {i: (s.kind, s.expected) for i, s in load.started.items()}, effects)
        extra = [_planned(faults, load, timed_out, stalled and cfg.stall), _recovered(recovery, cfg.recovery_limit), _stayed_up(cluster)]
        findings.checks.extend(extra)
        with durable.db.connect() as conn:
            completions = [float(r[0]) for r in conn.execute(text(
                f'SELECT extract(epoch FROM completed_at) FROM "{SCHEMA}".step_executions '
                "WHERE status = 'completed' ORDER BY 1"))]
        definition = " ".join(RECOVERY_DOC.split("**Recovery time**, as measured here:")[1].split())
        report = build(run_id=run_id, config={**asdict(cfg), "engine_settings": SETTINGS}, wall=wall,
                       workflows=len(load.started), faults=recovery.faults, completions=completions,
                       origin=origin, origin_wall=origin_wall, definition=definition, findings=findings.to_dict(),
                       extra={"driver_errors": load.errors, "fault_thread_errors": faults.errors[:20],
                              "process_logs": [] if findings.ok else cluster.logs()})
        passed = findings.ok
        return report
    finally:
        if faults is not None and faults.is_alive():
            faults.finish()
        if durable is not None:
            durable.db.dispose()
        cluster.close(keep_logs=not passed)
        shutil.rmtree(effects, ignore_errors=True)


def _planned(faults: Faults, load: Load, timed_out: bool, stalled: float) -> Check:
    planned = Check("every planned fault was injected, and every workflow started and ended within the time limit")
    if not faults.planned_done():
        planned.fail(f"faults injected: {faults.kills} kills, broker {faults.broker_done}, "
                     f"postgres {faults.postgres_done}")
    if timed_out or stalled:
        why = "time limit reached" if timed_out else f"no workflow ended for {stalled:g} s"
        planned.fail(f"{why}: {len(load.todo)} not started, {len(load.active)} not ended")
    return planned


def _recovered(recovery: Recovery, limit: float) -> Check:
    recovered = Check(f"every fault recovered within {limit:g} s")
    for fault in recovery.faults:
        if fault.kind == "control":
            continue
        if fault.recovery_s is None:
            recovered.fail(f"{fault.kind} ({fault.detail}): {len(fault.remaining)} of {len(fault.in_flight)} "
                           f"executions in flight never moved on, e.g. {sorted(fault.remaining)[:3]}")
        elif fault.recovery_s > limit:
            recovered.fail(f"{fault.kind} ({fault.detail}): {fault.recovery_s:.1f} s")
    return recovered


def _stayed_up(cluster: Cluster) -> Check:
    up = Check("no worker or beat exited unless the driver killed it")
    for incident in cluster.incidents:
        up.fail(incident)
    return up


def parse_args(argv: Sequence[str] | None = None) -> Config:
    d, p0 = Config(), Plan()
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--workflows", type=int, default=d.workflows)
    p.add_argument("--broker", choices=("redis", "amqp"), default=d.broker)
    p.add_argument("--duration-limit", type=float, default=d.duration_limit, help="seconds, for the whole run")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--concurrency", type=int, default=d.concurrency)
    p.add_argument("--window", type=int, default=d.window, help="top-level workflows running at a time")
    p.add_argument("--kill-every", type=float, default=p0.kill_every, help="mean seconds between worker kills")
    p.add_argument("--kills", type=int, default=None, help="at most this many worker kills")
    p.add_argument("--broker-down", type=float, default=p0.broker_down)
    p.add_argument("--postgres-down", type=float, default=p0.postgres_down)
    p.add_argument("--recovery-limit", type=float, default=d.recovery_limit, help="seconds a fault may take")
    p.add_argument("--stall", type=float, default=d.stall, help="give up when no workflow ended for this long")
    a = p.parse_args(argv)
    plan = replace(p0, kill_every=a.kill_every, kills=a.kills, broker_down=a.broker_down,
                   postgres_down=a.postgres_down)
    return replace(d, workflows=a.workflows, broker=a.broker, duration_limit=a.duration_limit, seed=a.seed,
                   json_output=a.json, recovery_limit=a.recovery_limit, stall=a.stall, workers=a.workers, concurrency=a.concurrency, window=a.window, plan=plan)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    # The driver's own engine logs every publish or query the faults make fail: to a file, not the summary
    logging.basicConfig(filename=str(RESULTS / "chaos-driver.log"), filemode="w", level=logging.WARNING)
    report = run(cfg)
    path = RESULTS / f"chaos-{report['run_id']}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if cfg.json_output:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report, path)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
