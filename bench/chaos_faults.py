"""The chaos run's processes and faults: the private servers and the worker and beat processes
it starts (:class:`Cluster`), the thread that injects faults (:class:`Faults`) and how each
fault's recovery is timed (:class:`Recovery`).

**Recovery time**, as measured here: just before a fault the driver reads the executions that
are *in flight*: active (``pending``, ``running`` or ``compensating``) and either holding a lease
or runnable now (``ready_at <= now``); parked foreach items, retries waiting for their backoff
and executions waiting for an event are not. The fault recovers when every one of them has
moved on: its ``seq`` changed (a checkpoint, a suspend or a stop committed) or it ended. Its
recovery time is from the fault until then (for a server, also from the moment it answered
again), to within the driver's poll interval. A *control* probe takes the same measurement at
a moment with no fault and no recovery open (and counts only if no fault came before it
recovered): that is what the measure gives with no fault (a backlog of queued steps takes that
long to drain).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import text

from durable_celery.testing.services import PrivatePostgres, PrivateRabbitMQ, PrivateRedis, PrivateServer
from durable_celery.testing.workers import CeleryProcess, beat, worker

IN_FLIGHT = ("SELECT id, seq FROM {schema}.workflow_executions WHERE status IN ('pending', 'running', 'compensating') "
             "AND (lease_owner IS NOT NULL OR ready_at <= now())")


@dataclass
class Fault:
    """One injected fault (or a control probe) and its recovery."""

    kind: str  # worker-kill, broker-restart, postgres-restart, control
    at: float  # time.monotonic() when it was injected
    wall: float  # time.time() of the same moment
    in_flight: dict[str, int]  # execution id -> seq, read just before
    back: float | None = None  # a server: when it answered clients again
    recovered_at: float | None = None
    detail: str = ""
    remaining: set[str] = field(default_factory=set)

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered_at is None else self.recovered_at - self.at

    @property
    def after_back_s(self) -> float | None:
        if self.recovered_at is None or self.back is None:
            return None
        return max(0.0, self.recovered_at - self.back)

    def to_dict(self, origin: float) -> dict[str, Any]:
        at_utc = datetime.fromtimestamp(self.wall, timezone.utc).isoformat()
        return {"kind": self.kind, "at_s": round(self.at - origin, 2), "at_utc": at_utc, "in_flight": len(self.in_flight),
                "down_s": None if self.back is None else round(self.back - self.at, 2),
                "recovery_s": self.recovery_s, "recovery_after_back_s": self.after_back_s,
                "not_recovered": len(self.remaining) if self.recovered_at is None else 0, "detail": self.detail}


class Recovery:
    """Follows the in-flight set of every open fault through the driver's polls."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        fault.remaining = set(fault.in_flight)
        with self._lock:
            self.faults.append(fault)

    def open(self) -> bool:
        with self._lock:
            return any(f.recovered_at is None for f in self.faults)

    def poll(self, active: dict[str, int], at: float) -> None:
        """``active``: execution id -> seq of every execution not yet ended, read at ``at``."""
        with self._lock:
            for fault in self.faults:
                if fault.recovered_at is not None or at < fault.at:
                    continue
                if fault.back is None and fault.kind != "worker-kill" and fault.kind != "control":
                    continue  # the server is still down
                fault.remaining = {i for i in fault.remaining if active.get(i) == fault.in_flight[i]}
                if not fault.remaining:
                    fault.recovered_at = at


def last_error(log: str) -> str:
    """The last exception line of a process's log (its whole tail if there is none)."""
    lines = [line for line in log.splitlines() if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line)]
    return lines[-1][:300] if lines else log[-300:]


def make_broker(kind: str) -> PrivateServer:
    return PrivateRabbitMQ() if kind == "amqp" else PrivateRedis()


class Cluster:
    """The run's private servers and its worker and beat processes (all stopped by PID)."""

    def __init__(self, broker: str, workers: int, concurrency: int) -> None:
        self.broker_kind = broker
        self.size = workers
        self.concurrency = concurrency
        self.postgres = PrivatePostgres()
        self.broker = make_broker(broker)
        self.env: dict[str, str] = {}
        self.queue = ""
        self.cwd = ""
        self.workers: list[CeleryProcess] = []
        self.beat: CeleryProcess | None = None
        self.retired: list[CeleryProcess] = []  # killed by the driver (kept for their logs)
        self.incidents: list[str] = []  # processes that exited without being killed
        self._lock = threading.Lock()

    def start_servers(self) -> None:
        self.postgres.start()
        self.broker.start()

    def start_processes(self, app: str, env: dict[str, str], queue: str, cwd: str) -> None:
        self.env, self.queue, self.cwd = env, queue, cwd
        self.beat = beat(app, env=env, cwd=cwd).start()
        for _ in range(self.size):
            self.add_worker(app)

    def add_worker(self, app: str) -> CeleryProcess:
        proc = worker(app, [self.queue], concurrency=self.concurrency, pool="prefork", env=self.env, cwd=self.cwd)
        try:
            proc.start(timeout=60)
        finally:  # listed once ready (a kill picks only those), or retired for its log
            with self._lock:
                (self.workers if proc.alive() else self.retired).append(proc)
        return proc

    def kill_worker(self, rng: random.Random) -> str:
        """SIGKILL a random worker's whole process group; returns its PID."""
        with self._lock:
            ready = [w for w in self.workers if w.alive()]
            doomed = rng.choice(ready) if ready else None
            if doomed is not None:
                self.workers.remove(doomed)
                self.retired.append(doomed)
        if doomed is None:
            return "none alive"
        pid = doomed.pid
        doomed.kill()
        return str(pid)

    def check(self, app: str) -> None:
        """Restart a worker or beat that exited by itself, and record it as an incident."""
        with self._lock:
            dead = [w for w in self.workers if w.proc is not None and not w.alive()]
            for proc in dead:
                self.workers.remove(proc)
                self.retired.append(proc)
        for proc in dead:
            self.incidents.append(f"worker {proc.pid} exited by itself ({proc.proc and proc.proc.returncode}): "
                                  f"{last_error(proc.log())}")
        while len(self.workers) < self.size:
            self.add_worker(app)
        if self.beat is not None and not self.beat.alive():
            self.incidents.append(f"beat {self.beat.pid} exited by itself: {last_error(self.beat.log())}")
            self.retired.append(self.beat)
            self.beat = beat(app, env=self.env, cwd=self.cwd)
            self.beat.start()

    def stop_processes(self) -> None:
        with self._lock:
            procs = [*self.workers, *([self.beat] if self.beat else [])]
        for proc in procs:
            proc.stop(timeout=10)

    def logs(self) -> list[str]:
        """The log files of every worker and beat the run started."""
        return [str(p.log_path) for p in [*self.workers, *self.retired, *([self.beat] if self.beat else [])]]

    def close(self, keep_logs: bool) -> None:
        """Stop every process and server the run started (also after an error); remove their
        logs unless ``keep_logs``."""
        for proc in [*self.workers, *self.retired, *([self.beat] if self.beat else [])]:
            try:
                proc.stop(timeout=5)
            except Exception:  # noqa: BLE001 - keep stopping the rest
                pass
            if not keep_logs:
                proc.log_path.unlink(missing_ok=True)
        for server in (self.broker, self.postgres):
            try:
                server.close()
            except Exception:  # noqa: BLE001
                pass


@dataclass(frozen=True)
class Plan:
    """When faults happen: worker kills every ``kill_every`` s (uniformly 0.5x to 1.5x) from
    ``kills_from`` of the run's progress (finished / started workflows) to 90 %, at most
    ``kills`` of them (None: no limit); the broker restart at ``broker_at``, Postgres at
    ``postgres_at`` of the progress; each server stays down ``broker_down`` / ``postgres_down`` s."""

    kill_every: float = 6.0
    kills: int | None = None
    kills_from: float = 0.05
    broker_at: float | None = 0.35
    postgres_at: float | None = 0.65
    broker_down: float = 2.0
    postgres_down: float = 4.0
    control_every: float = 4.0


class Faults(threading.Thread):
    """Injects the planned faults while the driver runs the load (a daemon thread)."""

    def __init__(self, cluster: Cluster, plan: Plan, recovery: Recovery, app: str, seed: int,
                 in_flight: Callable[[], dict[str, int]], progress: Callable[[], float]) -> None:
        super().__init__(name="chaos-faults", daemon=True)
        self.cluster, self.plan, self.recovery, self.app = cluster, plan, recovery, app
        self.rng = random.Random(seed)
        self.in_flight, self.progress = in_flight, progress
        self.stopping = threading.Event()
        self.kills = 0
        self.broker_done = plan.broker_at is None
        self.postgres_done = plan.postgres_at is None
        self.errors: list[str] = []

    def run(self) -> None:
        next_kill: float | None = None
        next_control = time.monotonic() + self.plan.control_every
        while not self.stopping.wait(0.1):
            try:
                self.cluster.check(self.app)
                done = self.progress()
                now = time.monotonic()
                if not self.broker_done and done >= (self.plan.broker_at or 0):
                    self._restart("broker-restart", self.cluster.broker, self.plan.broker_down)
                    self.broker_done = True
                elif not self.postgres_done and done >= (self.plan.postgres_at or 0):
                    self._restart("postgres-restart", self.cluster.postgres, self.plan.postgres_down)
                    self.postgres_done = True
                elif self._may_kill(done):
                    next_kill = next_kill or now + self._interval()
                    if now >= next_kill:  # the next one counts from this one, not from its replacement
                        next_kill = now + self._interval()
                        self._kill()
                if time.monotonic() >= next_control and not self.recovery.open():
                    self.recovery.add(Fault("control", time.monotonic(), time.time(), self.in_flight()))
                    next_control = time.monotonic() + self.plan.control_every
            except Exception as exc:  # noqa: BLE001 - a probe during an outage; keep going
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def planned_done(self) -> bool:
        kills_ok = self.plan.kills is None or self.kills >= self.plan.kills
        return self.broker_done and self.postgres_done and kills_ok

    def _may_kill(self, done: float) -> bool:
        return (self.plan.kills is None or self.kills < self.plan.kills) and self.plan.kills_from <= done < 0.9

    def _interval(self) -> float:
        return self.plan.kill_every * self.rng.uniform(0.5, 1.5)

    def _kill(self) -> None:
        fault = Fault("worker-kill", time.monotonic(), time.time(), self.in_flight())
        fault.detail = f"pid {self.cluster.kill_worker(self.rng)}, progress {self.progress():.0%}"
        self.recovery.add(fault)
        self.kills += 1
        self.cluster.check(self.app)  # its replacement

    def _restart(self, kind: str, server: PrivateServer, down: float) -> None:
        fault = Fault(kind, time.monotonic(), time.time(), self.in_flight())
        self.recovery.add(fault)
        server.stop(hard=True)
        time.sleep(down)
        server.start()
        fault.back = time.monotonic()
        fault.detail = f"down {fault.back - fault.at:.1f} s, progress {self.progress():.0%}"

    def finish(self) -> None:
        """Stop injecting; a fault in progress ends first (its server is back)."""
        self.stopping.set()
        self.join(timeout=120)


def read_in_flight(db: Any, schema: str) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute(text(IN_FLIGHT.replace("{schema}", f'"{schema}"')))
        return {str(row[0]): int(row[1]) for row in rows}
