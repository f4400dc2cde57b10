"""Throughput of durable-celery against a plain Celery chain, in one run on one machine.

Scenarios (``--modes``, all three by default):

* ``per_step``: the engine with ``dispatch_mode="per_step"`` (one Celery task per step);
* ``continuation``: the engine with ``dispatch_mode="continuation"`` (a task goes on with the
  next step after each checkpoint, for up to ``--continuation-budget`` seconds);
* ``chain``: ``W`` plain ``celery.chain``\\ s of ``N`` no-op tasks with a Redis result backend.

The engine runs ``W`` executions of the ``bench_noop`` workflow (``N`` no-op steps, see
``bench/app.py``). Every scenario gets a fresh ``celery worker`` subprocess (prefork,
concurrency 2, default prefetch) on the same broker and its own queue; its start-up and a few
warm-up workflows are not timed. The clock runs from just before the first start (all ``W`` are
started as fast as the bench process can) to the last completion: ``max(completed_at)`` of the
executions for the engine, the return of the last chain's ``get()`` for plain Celery.

Reported per scenario: wall time, workflows/s, steps/s, per-step overhead (milliseconds of
worker-process time per step: ``concurrency * wall / (W * N)``), CPU time per step (of the worker
process tree, and of the whole machine: worker, bench, Postgres, broker; Linux only), and for the
engine Postgres commits per step: the ``xact_commit`` delta of the dedicated ``durable_bench``
database (tables in a schema ``bench_<run id>r<round>``, re-created per scenario) from just
before the first start until every connection of the run has closed, minus the bench's own
completion polls, divided by ``W * N``. It includes the start transactions and the lease
heartbeats. Postgres flushes an idle backend's statistics up to 10 s late, so the baseline is
read after ``--stats-settle`` seconds of quiet, and the final figure after the worker has stopped
and the bench has closed its connections (a closing backend flushes at once). Stats are read over
a connection to the admin database, so those reads do not count; an advisory lock there lets only
one bench run at a time.

Run from the repository root::

    python -m bench.bench [--workflows 200] [--steps 10] [--broker URL] [--modes per_step,continuation,chain]
                          [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also runnable as `python bench/bench.py`
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from celery import chain  # noqa: E402
from celery.result import AsyncResult  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.app import WORKFLOW, chain_env, engine_env, make_chain, make_engine  # noqa: E402
from bench.common import (  # noqa: E402
    DATABASE,
    SCHEMA_PREFIX,
    Postgres,
    delete_queues,
    drop_schemas,
    ensure_database,
    exclusive_run,
    start_worker,
)
from bench.common import fmt as _fmt  # noqa: E402
from durable_celery import Durable  # noqa: E402
from durable_celery.testing.workers import CeleryProcess  # noqa: E402

MODES = ("per_step", "continuation", "chain")
ENGINE_MODES = ("per_step", "continuation")
FINISHED = ("completed", "failed")
GOALS = (  # (description, metric, threshold, higher is better): issue 11's, at W=200, N=10
    ("per_step steps/s >= 0.9x chain", "per_step_vs_chain", 0.9, True),
    ("continuation steps/s >= 3x chain", "continuation_vs_chain", 3.0, True),
    ("continuation commits/step <= 1.05", "continuation_commits_per_step", 1.05, False),
    ("per_step p50 latency <= 1.2x chain", "per_step_latency_vs_chain", 1.2, False),
    ("continuation p50 latency < 1x chain", "continuation_latency_vs_chain", 0.999, False),
)


@dataclass(frozen=True)
class Config:
    """What to run, and where."""

    workflows: int = 200
    steps: int = 10
    broker: str = "redis://127.0.0.1:6379/9"
    result_backend: str = "redis://127.0.0.1:6379/10"
    postgres: str = "postgresql://postgres@127.0.0.1:5432"
    admin_database: str = "test"
    modes: tuple[str, ...] = MODES
    concurrency: int = 2
    warmup: int = 10
    continuation_budget: float = 1.0
    poll_interval: float = 0.2
    stats_settle: float = 11.0
    stall: float = 60.0
    repeat: int = 1
    #: workflows (or chains) run one at a time, for the end-to-end latency under light load
    latency: int = 20
    json_path: str | None = None

    @property
    def pg(self) -> Postgres:
        return Postgres(self.postgres, self.admin_database)

    def dsn(self, database: str) -> str:
        """A libpq URL of ``database`` on the benchmark's server."""
        return self.pg.dsn(database)

    @property
    def database_url(self) -> str:
        """The engine's SQLAlchemy URL (psycopg 3)."""
        return self.pg.database_url


@dataclass
class Result:
    """The figures of one scenario."""

    scenario: str
    workflows: int
    steps: int
    concurrency: int
    wall_s: float
    failed: int = 0
    commits: int | None = None
    own_queries: int | None = None
    commits_raw: int | None = None
    #: bytes of write-ahead log the whole cluster wrote over the measured window (engine only)
    wal_bytes: int | None = None
    cpu_worker_s: float | None = None
    cpu_machine_s: float | None = None
    #: end-to-end seconds of single workflows run one at a time (W=1), sorted
    latencies: tuple[float, ...] = ()

    @property
    def total_steps(self) -> int:
        return self.workflows * self.steps

    @property
    def workflows_per_s(self) -> float:
        return self.workflows / self.wall_s

    @property
    def steps_per_s(self) -> float:
        return self.total_steps / self.wall_s

    @property
    def overhead_ms(self) -> float:
        """Milliseconds of worker-process time per step."""
        return self.concurrency * self.wall_s / self.total_steps * 1000

    @property
    def commits_per_step(self) -> float | None:
        return None if self.commits is None else self.commits / self.total_steps

    @property
    def wal_bytes_per_step(self) -> float | None:
        return None if self.wal_bytes is None else self.wal_bytes / self.total_steps

    def cpu_ms_per_step(self, seconds: float | None) -> float | None:
        return None if seconds is None else seconds / self.total_steps * 1000

    def latency_ms(self, quantile: float) -> float | None:
        """A quantile of the W=1 latencies, in milliseconds (nearest rank)."""
        if not self.latencies:
            return None
        return self.latencies[min(len(self.latencies) - 1, int(quantile * len(self.latencies)))] * 1000

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "workflows_per_s": self.workflows_per_s, "steps_per_s": self.steps_per_s,
                "overhead_ms_per_step_per_process": self.overhead_ms, "commits_per_step": self.commits_per_step,
                "wal_bytes_per_step": self.wal_bytes_per_step,
                "cpu_worker_ms_per_step": self.cpu_ms_per_step(self.cpu_worker_s),
                "cpu_machine_ms_per_step": self.cpu_ms_per_step(self.cpu_machine_s),
                "latency_p50_ms": self.latency_ms(0.5), "latency_p95_ms": self.latency_ms(0.95)}


# -- CPU time (Linux /proc; None elsewhere) ------------------------------------------------------------------


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_cpu() -> float | None:
    """Seconds of CPU the whole machine has spent busy (not idle, not waiting on I/O) since boot."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / _ticks()


def _children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return [int(c) for task in tasks for c in (task / "children").read_text().split()]
    except OSError:
        return []


def tree_cpu(pid: int) -> float | None:
    """Seconds of CPU used so far by process ``pid`` and its live descendants (user + system)."""
    total = 0
    try:
        for proc in [pid, *_children(pid)]:
            stat = Path(f"/proc/{proc}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, ValueError, IndexError):
        return None
    return total / _ticks()


class CpuMeter:
    """CPU used by a worker's process tree and by the whole machine between ``start`` and ``stop``."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._worker = tree_cpu(pid)
        self._machine = machine_cpu()
        self.worker: float | None = None
        self.machine: float | None = None

    def stop(self) -> None:
        """Read the deltas (before the worker stops: its pool processes must still be alive)."""
        worker, machine = tree_cpu(self._pid), machine_cpu()
        if worker is not None and self._worker is not None:
            self.worker = worker - self._worker
        if machine is not None and self._machine is not None:
            self.machine = machine - self._machine


# -- Postgres ------------------------------------------------------------------------------------------


class Stats:
    """Reads ``pg_stat_database`` over a connection to the admin database (so not counted)."""

    def __init__(self, cfg: Config) -> None:
        self._dsn = cfg.dsn(cfg.admin_database)

    def commits(self) -> int:
        """``xact_commit`` of the benchmark database, as last flushed by its backends."""
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (DATABASE,)).fetchone()
        assert row is not None, f"no statistics for database {DATABASE}"
        return int(row[0])

    def wal_lsn(self) -> str:
        """Where the cluster's write-ahead log stands (``pg_current_wal_lsn``)."""
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        return str(row[0])

    def wal_since(self, lsn: str) -> int:
        """Bytes of write-ahead log written since ``lsn``."""
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint", (lsn,)).fetchone()
        assert row is not None
        return int(row[0])

    def wait_disconnected(self, timeout: float = 30.0) -> None:
        """Until no client is connected to the benchmark database (a closing backend flushes its
        statistics as it exits), plus a moment for the last flush."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                   "AND backend_type = 'client backend'", (DATABASE,)).fetchone()
                if row is not None and row[0] == 0:
                    time.sleep(0.3)
                    return
                time.sleep(0.1)
        raise RuntimeError(f"clients still connected to {DATABASE} after {timeout}s")


class Poller:
    """Watches the executions table over one autocommit connection, counting its own queries
    (each is one committed transaction that must not be charged to the engine)."""

    def __init__(self, cfg: Config, schema: str) -> None:
        self._conn = psycopg.connect(cfg.dsn(DATABASE), autocommit=True)
        self._table = sql.Identifier(schema, "workflow_executions")
        self._interval = cfg.poll_interval
        self.queries = 0

    def _one(self, query: sql.Composed) -> tuple[Any, ...]:
        self.queries += 1
        row = self._conn.execute(query).fetchone()
        assert row is not None
        return tuple(row)

    def finished(self) -> int:
        query = sql.SQL("SELECT count(*) FROM {} WHERE status IN ({})").format(
            self._table, sql.SQL(", ").join(sql.Literal(s) for s in FINISHED))
        return int(self._one(query)[0])

    def wait_finished(self, count: int, stall: float, proc: CeleryProcess) -> None:
        """Poll every ``poll_interval`` until ``count`` executions are completed or failed; give up
        when none has finished for ``stall`` seconds, or the worker died."""
        done, last_progress = 0, time.monotonic()
        while (now_done := self.finished()) < count:
            if now_done != done:
                done, last_progress = now_done, time.monotonic()
            if time.monotonic() - last_progress > stall or not proc.alive():
                raise RuntimeError(f"{done}/{count} executions finished, no progress for {stall:g}s; "
                                   f"worker log:\n{proc.log()[-4000:]}")
            time.sleep(self._interval)

    def completed_at(self, execution_id: str, timeout: float) -> datetime:
        """When ``execution_id`` completed, polling every millisecond or so (latency runs)."""
        query = sql.SQL("SELECT completed_at FROM {} WHERE id = {} AND status = 'completed'").format(
            self._table, sql.Literal(execution_id))
        deadline = time.monotonic() + timeout
        while True:
            self.queries += 1
            row = self._conn.execute(query).fetchone()
            if row is not None:
                return row[0]
            if time.monotonic() > deadline:
                raise RuntimeError(f"execution {execution_id} did not complete within {timeout:g}s")
            time.sleep(0.001)

    def outcome(self) -> tuple[int, datetime]:
        """(failed executions, latest completion time)."""
        query = sql.SQL("SELECT count(*) FILTER (WHERE status = 'failed'), max(completed_at) FROM {}").format(
            self._table)
        failed, last = self._one(query)
        return int(failed), last

    def close(self) -> None:
        self._conn.close()


# -- the scenarios ----------------------------------------------------------------------------------


def start_executions(durable: Durable, count: int) -> list[str]:
    """Start ``count`` executions of ``bench_noop`` back to back."""
    return [durable.start(WORKFLOW) for _ in range(count)]


def run_engine(cfg: Config, mode: str, queue: str, schema: str) -> Result:
    """W workflows of N no-op steps on the engine in ``mode``, its tables in a fresh ``schema``;
    see the module docstring."""
    drop_schemas(cfg.pg, schema)
    app, durable = make_engine(cfg.broker, cfg.database_url, schema, queue, cfg.steps, mode, cfg.continuation_budget)
    durable.prepare()  # migrate before the worker boots, outside any measurement
    env = engine_env(cfg.broker, cfg.database_url, schema, queue, cfg.steps, mode, cfg.continuation_budget)
    stats = Stats(cfg)
    try:
        with start_worker([queue], env, cfg.concurrency) as proc:
            poller = Poller(cfg, schema)
            start_executions(durable, cfg.warmup)
            poller.wait_finished(cfg.warmup, cfg.stall, proc)
            latencies = engine_latencies(durable, poller, cfg)
            time.sleep(cfg.stats_settle)  # let idle backends flush the warm-up's statistics
            before = stats.commits()
            wal_from = stats.wal_lsn()
            poller.queries = 0
            cpu = CpuMeter(proc.pid)
            began = time.time()
            start_executions(durable, cfg.workflows)
            poller.wait_finished(cfg.warmup + cfg.latency + cfg.workflows, cfg.stall, proc)
            cpu.stop()
            failed, last = poller.outcome()
        durable.db.dispose()
        poller.close()
        stats.wait_disconnected()
        raw = stats.commits() - before
        wal = stats.wal_since(wal_from)
    finally:
        delete_queues(app, queue, f"{queue}-default")
    wall = last.timestamp() - began
    return Result(mode, cfg.workflows, cfg.steps, cfg.concurrency, wall, failed=failed,
                  commits=raw - poller.queries, own_queries=poller.queries, commits_raw=raw, wal_bytes=wal,
                  cpu_worker_s=cpu.worker, cpu_machine_s=cpu.machine, latencies=latencies)


def engine_latencies(durable: Durable, poller: Poller, cfg: Config) -> tuple[float, ...]:
    """End to end, one workflow at a time: from just before ``start`` to its ``completed_at``
    (the worker's clock; same machine). Before the commit baseline, so not counted there."""
    latencies = []
    for _ in range(cfg.latency):
        began = time.time()
        execution_id = durable.start(WORKFLOW)
        latencies.append(poller.completed_at(execution_id, cfg.stall).timestamp() - began)
    return tuple(sorted(latencies))


def start_chains(task: Any, count: int, steps: int) -> list[AsyncResult]:
    """Send ``count`` chains of ``steps`` no-op tasks back to back; their last results."""
    return [chain(task.s(i), *(task.s() for _ in range(steps - 1))).apply_async() for i in range(count)]


def wait_chains(results: list[AsyncResult], timeout: float) -> int:
    """Wait for every chain (at most ``timeout`` seconds for each); returns how many failed."""
    failed = 0
    for result in results:
        try:
            result.get(timeout=timeout)
        except Exception:
            failed += 1
    return failed


def run_chain(cfg: Config, queue: str) -> Result:
    """W plain Celery chains of N no-op tasks, results in Redis; see the module docstring."""
    app, task = make_chain(cfg.broker, cfg.result_backend, queue)
    try:
        with start_worker([queue], chain_env(cfg.broker, cfg.result_backend, queue), cfg.concurrency) as proc:
            wait_chains(start_chains(task, cfg.warmup, cfg.steps), cfg.stall)
            latencies = chain_latencies(task, cfg)
            cpu = CpuMeter(proc.pid)
            began = time.perf_counter()
            failed = wait_chains(start_chains(task, cfg.workflows, cfg.steps), cfg.stall)
            wall = time.perf_counter() - began
            cpu.stop()
    finally:
        delete_queues(app, queue)
    return Result("chain", cfg.workflows, cfg.steps, cfg.concurrency, wall, failed=failed,
                  cpu_worker_s=cpu.worker, cpu_machine_s=cpu.machine, latencies=latencies)


def chain_latencies(task: Any, cfg: Config) -> tuple[float, ...]:
    """End to end, one chain at a time: from just before ``apply_async`` to the return of ``get``."""
    latencies = []
    for _ in range(cfg.latency):
        began = time.time()
        start_chains(task, 1, cfg.steps)[0].get(timeout=cfg.stall)
        latencies.append(time.time() - began)
    return tuple(sorted(latencies))


def run_scenario(cfg: Config, mode: str, tag: str) -> Result:
    """One scenario on its own queue (``tag`` is unique to the run and round)."""
    queue = f"bench-{tag}-{mode}"
    return run_chain(cfg, queue) if mode == "chain" else run_engine(cfg, mode, queue, f"{SCHEMA_PREFIX}{tag}")


# -- reporting ------------------------------------------------------------------------------------------


def print_result(result: Result) -> None:
    """The figures of one scenario, as soon as it has run."""
    lines = [
        f"[{result.scenario}] {result.workflows} workflows x {result.steps} steps",
        f"  wall time        {result.wall_s:.3f} s",
        f"  workflows/s      {result.workflows_per_s:.1f}",
        f"  steps/s          {result.steps_per_s:.1f}",
        f"  overhead         {result.overhead_ms:.2f} ms per step per worker process",
        f"  CPU per step     {_fmt(result.cpu_ms_per_step(result.cpu_worker_s), '.2f')} ms worker processes, "
        f"{_fmt(result.cpu_ms_per_step(result.cpu_machine_s), '.2f')} ms whole machine",
    ]
    if result.commits is not None:
        lines.append(f"  commits/step     {_fmt(result.commits_per_step, '.3f')}  (engine {result.commits} = "
                     f"xact_commit delta {result.commits_raw} - {result.own_queries} bench polls)")
    if result.wal_bytes is not None:
        lines.append(f"  WAL/step         {_fmt(result.wal_bytes_per_step, '.0f')} bytes  (the whole cluster's "
                     "write-ahead log over the run: checkpoints, attempts, their indexes, and anything else)")
    if result.failed:
        lines.append(f"  FAILED           {result.failed} workflows failed")
    print("\n".join(lines), flush=True)


def ratios(results: dict[str, Result]) -> dict[str, float]:
    """Engine steps/s over the plain chain's, and the engine's p50 latency over the chain's, per
    engine mode that ran."""
    base = results.get("chain")
    if base is None:
        return {}
    vs = {f"{mode}_vs_chain": results[mode].steps_per_s / base.steps_per_s for mode in ENGINE_MODES
          if mode in results}
    base_p50 = base.latency_ms(0.5)
    for mode in ENGINE_MODES:
        p50 = results[mode].latency_ms(0.5) if mode in results else None
        if p50 is not None and base_p50:
            vs[f"{mode}_latency_vs_chain"] = p50 / base_p50
    return vs


def goals(results: dict[str, Result]) -> list[dict[str, Any]]:
    """The team's targets, each with its measured value and whether it is met."""
    metrics: dict[str, float | None] = dict(ratios(results))
    if "continuation" in results:
        metrics["continuation_commits_per_step"] = results["continuation"].commits_per_step
    checked = []
    for description, metric, threshold, higher in GOALS:
        value = metrics.get(metric)
        met = None if value is None else (value >= threshold if higher else value <= threshold)
        checked.append({"goal": description, "metric": metric, "value": value, "threshold": threshold, "met": met})
    return checked


def median(rounds: list[Result]) -> Result:
    """The round with the median wall time (the lower middle one for an even count)."""
    return sorted(rounds, key=lambda r: r.wall_s)[(len(rounds) - 1) // 2]


def medians(rounds: dict[str, list[Result]]) -> dict[str, Result]:
    return {name: median(runs) for name, runs in rounds.items()}


def print_summary(cfg: Config, rounds: dict[str, list[Result]]) -> None:
    """The final table (the median round of each scenario), the engine/chain ratios and the goals."""
    results = medians(rounds)
    vs = ratios(results)
    print(f"\nSummary: W={cfg.workflows} N={cfg.steps} broker={cfg.broker} concurrency={cfg.concurrency} (prefork)"
          + (f", median of {cfg.repeat} rounds" if cfg.repeat > 1 else ""))
    print(f"{'scenario':<14}{'wall s':>9}{'wf/s':>9}{'steps/s':>10}{'ms/step/proc':>14}{'cpu ms/step':>13}"
          f"{'commits/step':>14}{'WAL B/step':>12}{'vs chain':>10}" + (f"{'steps/s range':>18}" if cfg.repeat > 1 else ""))
    for name, r in results.items():
        ratio = 1.0 if name == "chain" else vs.get(f"{name}_vs_chain")
        cpu = f"{_fmt(r.cpu_ms_per_step(r.cpu_worker_s), '.2f')}/{_fmt(r.cpu_ms_per_step(r.cpu_machine_s), '.2f')}"
        spread = [run.steps_per_s for run in rounds[name]]
        print(f"{name:<14}{r.wall_s:>9.3f}{r.workflows_per_s:>9.1f}{r.steps_per_s:>10.1f}{r.overhead_ms:>14.2f}"
              f"{cpu:>13}{_fmt(r.commits_per_step, '.3f'):>14}{_fmt(r.wal_bytes_per_step, '.0f'):>12}"
              f"{_fmt(ratio, '.2f') + ('x' if ratio is not None else ''):>10}"
              + (f"{f'{min(spread):.0f}-{max(spread):.0f}':>18}" if cfg.repeat > 1 else ""))
    print("(cpu ms/step: worker process tree / whole machine)")
    if any(r.latencies for r in results.values()):
        print(f"\nLatency, one workflow at a time ({cfg.latency} each):")
        for name, r in results.items():
            ratio = 1.0 if name == "chain" else vs.get(f"{name}_latency_vs_chain")
            print(f"  {name:<14} p50 {_fmt(r.latency_ms(0.5), '.1f'):>7} ms   p95 {_fmt(r.latency_ms(0.95), '.1f'):>7} ms"
                  f"   {_fmt(ratio, '.2f')}x chain")
    print("\nGoals:")
    for goal in goals(results):
        verdict = {True: "met", False: "NOT met", None: "not measured"}[goal["met"]]
        print(f"  {goal['goal']:<40} {_fmt(goal['value'], '.3f'):>8}  {verdict}")


def write_json(cfg: Config, rounds: dict[str, list[Result]], path: str) -> None:
    """Config, every round, and the medians' ratios and goals."""
    results = medians(rounds)
    payload = {"config": asdict(cfg), "results": [r.to_dict() for r in results.values()],
               "rounds": {name: [r.to_dict() for r in runs] for name, runs in rounds.items()},
               "ratios": ratios(results), "goals": goals(results)}
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


# -- command line ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Config:
    defaults = Config()
    parser = argparse.ArgumentParser(prog="python -m bench.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=defaults.workflows, help="W, workflows (or chains) per scenario")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="N, no-op steps per workflow")
    parser.add_argument("--broker", default=defaults.broker, help="Celery broker URL (redis:// or amqp://)")
    parser.add_argument("--result-backend", default=defaults.result_backend, help="result backend of the chains")
    parser.add_argument("--postgres", default=defaults.postgres, help="server URL, without a database")
    parser.add_argument("--admin-database", default=defaults.admin_database,
                        help="an existing database to create durable_bench from and read statistics over")
    parser.add_argument("--modes", default=",".join(defaults.modes), help="comma-separated subset of " + ",".join(MODES))
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="worker processes (prefork)")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed workflows before each scenario")
    parser.add_argument("--continuation-budget", type=float, default=defaults.continuation_budget)
    parser.add_argument("--stats-settle", type=float, default=defaults.stats_settle,
                        help="seconds of quiet before the commit baseline (Postgres flushes idle backends' stats <= 10 s late)")
    parser.add_argument("--stall", type=float, default=defaults.stall,
                        help="give up when nothing has finished for this many seconds")
    parser.add_argument("--repeat", type=int, default=defaults.repeat,
                        help="rounds of every scenario (interleaved); the summary shows each one's median")
    parser.add_argument("--latency", type=int, default=defaults.latency,
                        help="workflows run one at a time per scenario, for the p50/p95 latency (0: none)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        parser.error(f"--modes takes a comma-separated subset of {','.join(MODES)}")
    if min(args.workflows, args.steps, args.warmup, args.repeat, args.concurrency) < 1:
        parser.error("--workflows, --steps, --warmup, --repeat and --concurrency must be at least 1")
    if args.latency < 0:
        parser.error("--latency must be 0 or more")
    return Config(workflows=args.workflows, steps=args.steps, broker=args.broker, result_backend=args.result_backend,
                  postgres=args.postgres, admin_database=args.admin_database, modes=modes,
                  concurrency=args.concurrency, warmup=args.warmup, continuation_budget=args.continuation_budget,
                  stats_settle=args.stats_settle, stall=args.stall, repeat=args.repeat, latency=args.latency,
                  json_path=args.json_path)


def run(cfg: Config) -> dict[str, list[Result]]:
    """Every requested scenario, in order, ``--repeat`` rounds (so drift hits all scenarios alike),
    each printed as it finishes; one bench run at a time."""
    run_id = uuid.uuid4().hex[:8]
    ensure_database(cfg.pg)
    with exclusive_run(cfg.pg):
        drop_schemas(cfg.pg)  # whatever an interrupted run left behind
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"bench run {run_id}: W={cfg.workflows} N={cfg.steps} broker={cfg.broker} modes={','.join(cfg.modes)} "
              f"cpus={os.cpu_count()} load(1m)={load:.2f}", flush=True)
        rounds: dict[str, list[Result]] = {mode: [] for mode in cfg.modes}
        try:
            for n in range(cfg.repeat):
                for mode in cfg.modes:
                    rounds[mode].append(run_scenario(cfg, mode, f"{run_id}r{n + 1}"))
                    print_result(rounds[mode][-1])
        finally:
            drop_schemas(cfg.pg)  # this run's schemas (the lock keeps other runs out)
    return rounds


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    rounds = run(cfg)
    print_summary(cfg, rounds)
    if cfg.json_path:
        write_json(cfg, rounds, cfg.json_path)
        print(f"\nresults written to {cfg.json_path}")
    return 1 if any(r.failed for runs in rounds.values() for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
