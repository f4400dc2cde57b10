"""Round trips of ``call_workflow`` and ``await_task`` against the plain Celery chains that do
the same hops, in one run on one machine.

Scenarios (``--scenarios``, all four by default):

* ``call_workflow``: the engine starts ``bench_call``, whose one step calls ``bench_child`` (one
  no-op step) with ``call_workflow`` and returns once the child has ended: the parent's step
  runs, the child's step runs and wakes its caller, the parent's step runs again;
* ``call_chain``: ``celery.chain`` of 3 no-op tasks (parent step, child step, parent step again)
  on one worker, with a Redis result backend;
* ``await_task``: the engine starts ``bench_await``, whose one step awaits a plain Celery no-op
  task with ``await_task``; that task is served by a second, plain worker (no engine in its app)
  on its own queue, and its result comes back by a link callback to the engine's queue;
* ``await_chain``: ``celery.chain`` of the same hops (step body on the first worker, the no-op
  task on the plain worker's queue, step body again), every app with a Redis result backend.

Each scenario gets fresh worker subprocesses (prefork, ``--concurrency`` each, default prefetch)
on its own queues (deleted afterwards), an untimed warm-up, then:

* **latency**: ``K`` round trips one after the other; a round trip runs from just before
  ``durable.start`` to the parent's ``completed_at`` (engine), or from just before
  ``apply_async`` to the return of the chain's ``get()`` (chain); median and p95 in ms;
* **throughput**: ``W`` round trips started back to back at once; round trips/s = ``W`` over the
  time from just before the first start to the last ``completed_at`` (engine) or the return of
  the last ``get()`` (chain).

The engine runs with its default settings (``per_step`` dispatch unless ``--dispatch-mode``) and
no beat: a child wakes its caller, and an awaited task's callback wakes its step, directly.
Its tables live in a fresh schema of the dedicated ``durable_bench`` database, dropped at the
end. Ratios are engine over chain: > 1 means the engine takes longer (latency) or, for
throughput, completes more round trips per second.

Run from the repository root::

    python -m bench.orchestration [--sequential 30] [--concurrent 100] [--broker URL] [--repeat R]
                                  [--scenarios call_workflow,call_chain,await_task,await_chain] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also runnable as `python bench/orchestration.py`
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from celery import chain  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.app import (  # noqa: E402
    AWAITER,
    CALLER,
    PLAIN_TASK,
    chain_env,
    make_chain,
    make_orchestration,
    orchestration_env,
    plain_env,
)
from bench.common import (  # noqa: E402
    DATABASE,
    SCHEMA_PREFIX,
    Postgres,
    delete_queues,
    drop_schemas,
    ensure_database,
    exclusive_run,
    fmt,
    start_worker,
)
from durable_celery import Durable  # noqa: E402
from durable_celery.testing.workers import CeleryProcess  # noqa: E402

SCENARIOS = ("call_workflow", "call_chain", "await_task", "await_chain")
PAIRS = (("call_workflow", "call_chain"), ("await_task", "await_chain"))  # (engine, its chain)
FINISHED = ("completed", "failed", "cancelled")
LATENCY_POLL = 0.005  # seconds between polls of one execution (sequential phase; not part of the figure)


@dataclass(frozen=True)
class Config:
    """What to run, and where."""

    sequential: int = 30
    concurrent: int = 100
    broker: str = "redis://127.0.0.1:6379/9"
    result_backend: str = "redis://127.0.0.1:6379/10"
    postgres: str = "postgresql://postgres@127.0.0.1:5432"
    admin_database: str = "test"
    scenarios: tuple[str, ...] = SCENARIOS
    concurrency: int = 2
    dispatch_mode: str = "per_step"
    warmup: int = 5
    poll_interval: float = 0.1
    stall: float = 60.0
    repeat: int = 1
    json_path: str | None = None

    @property
    def pg(self) -> Postgres:
        return Postgres(self.postgres, self.admin_database)


@dataclass
class Result:
    """The figures of one scenario in one round (times in seconds)."""

    scenario: str
    latencies_s: list[float] = field(default_factory=list)
    concurrent: int = 0
    wall_s: float = 0.0
    failed: int = 0

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_s) * 1000

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_s, 95) * 1000

    @property
    def per_s(self) -> float:
        return self.concurrent / self.wall_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "latency_median_ms": self.median_ms, "latency_p95_ms": self.p95_ms,
                "round_trips_per_s": self.per_s}


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``pct`` % of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# -- watching executions ----------------------------------------------------------------------------------


class Watcher:
    """Reads the parents' rows over one autocommit connection to ``durable_bench``."""

    def __init__(self, cfg: Config, schema: str, procs: Sequence[CeleryProcess]) -> None:
        self._conn = psycopg.connect(cfg.pg.dsn(DATABASE), autocommit=True)
        self._table = sql.Identifier(schema, "workflow_executions")
        self._cfg = cfg
        self._procs = procs

    def _check(self, what: str, since: float) -> None:
        dead = [p for p in self._procs if not p.alive()]
        if dead or time.monotonic() - since > self._cfg.stall:
            logs = "\n".join(p.log()[-3000:] for p in self._procs)
            raise RuntimeError(f"{what}: no progress for {self._cfg.stall:g}s or a worker died; worker logs:\n{logs}")

    def wait_one(self, execution_id: str) -> tuple[str, float]:
        """Poll one execution until it has ended: (status, ``completed_at`` as a Unix time)."""
        query = sql.SQL("SELECT status, completed_at FROM {} WHERE id = %s").format(self._table)
        since = time.monotonic()
        while True:
            row = self._conn.execute(query, (execution_id,)).fetchone()
            if row is not None and row[0] in FINISHED:
                return str(row[0]), (row[1].timestamp() if row[1] is not None else time.time())
            self._check(f"execution {execution_id}", since)
            time.sleep(LATENCY_POLL)

    def wait_all(self, ids: list[str]) -> tuple[int, float]:
        """Poll until every execution of ``ids`` has ended: (how many did not complete, the
        latest ``completed_at`` as a Unix time)."""
        if not ids:
            return 0, time.time()
        query = sql.SQL("SELECT count(*), count(*) FILTER (WHERE status <> 'completed'), max(completed_at) "
                        "FROM {} WHERE id = ANY(%s) AND status IN ({})").format(
            self._table, sql.SQL(", ").join(sql.Literal(s) for s in FINISHED))
        done, since = -1, time.monotonic()
        while True:
            row = self._conn.execute(query, (ids,)).fetchone()
            assert row is not None
            if row[0] == len(ids):
                return int(row[1]), row[2].timestamp()
            if row[0] != done:
                done, since = row[0], time.monotonic()
            self._check(f"{row[0]}/{len(ids)} executions ended", since)
            time.sleep(self._cfg.poll_interval)

    def close(self) -> None:
        self._conn.close()


# -- the scenarios ----------------------------------------------------------------------------------------


@contextmanager
def workers(cfg: Config, *specs: tuple[list[str], dict[str, str]]) -> Iterator[list[CeleryProcess]]:
    """Fresh workers, one per (queues, env), stopped by PID on the way out (even on failure)."""
    with ExitStack() as stack:
        yield [stack.enter_context(start_worker(queues, env, cfg.concurrency)) for queues, env in specs]


def run_engine(cfg: Config, scenario: str, queue: str, schema: str) -> Result:
    """``call_workflow`` or ``await_task`` on the engine, its tables in a fresh ``schema``."""
    plain_queue = f"{queue}-plain"
    workflow = CALLER if scenario == "call_workflow" else AWAITER
    drop_schemas(cfg.pg, schema)
    app, durable = make_orchestration(cfg.broker, cfg.pg.database_url, schema, queue, plain_queue, cfg.dispatch_mode)
    durable.prepare()  # migrate before the worker boots, outside any measurement
    specs = [([queue], orchestration_env(cfg.broker, cfg.pg.database_url, schema, queue, plain_queue,
                                         cfg.dispatch_mode))]
    if scenario == "await_task":  # the plain worker: no engine, no result backend (none is needed)
        specs.append(([plain_queue], plain_env(cfg.broker, plain_queue, None)))
    try:
        with workers(cfg, *specs) as procs:
            watcher = Watcher(cfg, schema, procs)
            try:
                result = _measure_engine(cfg, scenario, durable, workflow, watcher)
            finally:
                watcher.close()
    finally:
        durable.db.dispose()
        delete_queues(app, queue, f"{queue}-default", plain_queue)
        drop_schemas(cfg.pg, schema)
    return result


def _measure_engine(cfg: Config, scenario: str, durable: Durable, workflow: str, watcher: Watcher) -> Result:
    warm, _ = watcher.wait_all([durable.start(workflow) for _ in range(cfg.warmup)])
    result = Result(scenario, failed=warm)
    for _ in range(cfg.sequential):
        began = time.time()
        status, completed = watcher.wait_one(durable.start(workflow))
        result.latencies_s.append(completed - began)
        result.failed += status != "completed"
    began = time.time()
    ids = [durable.start(workflow) for _ in range(cfg.concurrent)]
    failed, last = watcher.wait_all(ids)
    result.concurrent, result.wall_s, result.failed = cfg.concurrent, last - began, result.failed + failed
    return result


def run_chain(cfg: Config, scenario: str, queue: str) -> Result:
    """``call_chain`` (3 no-op tasks on one worker) or ``await_chain`` (the middle one on the plain
    worker's queue), every result in the Redis result backend."""
    app, task = make_chain(cfg.broker, cfg.result_backend, queue)
    plain_queue = f"{queue}-plain"
    specs = [([queue], chain_env(cfg.broker, cfg.result_backend, queue))]
    if scenario == "await_chain":
        specs.append(([plain_queue], plain_env(cfg.broker, plain_queue, cfg.result_backend)))
        middle = app.signature(PLAIN_TASK, queue=plain_queue)
    else:
        middle = task.s().set(queue=queue)

    def send(i: int) -> Any:  # every hop names its queue: the plain worker sends the third one
        return chain(task.s(i).set(queue=queue), middle.clone(), task.s().set(queue=queue)).apply_async()

    try:
        with workers(cfg, *specs):
            result = _measure_chain(cfg, scenario, send)
    finally:
        delete_queues(app, queue, plain_queue)
    return result


def _measure_chain(cfg: Config, scenario: str, send: Callable[[int], Any]) -> Result:
    result = Result(scenario, failed=_get_all(cfg, [send(i) for i in range(cfg.warmup)]))
    for i in range(cfg.sequential):
        began = time.perf_counter()
        result.failed += _get_all(cfg, [send(i)])
        result.latencies_s.append(time.perf_counter() - began)
    began = time.perf_counter()
    failed = _get_all(cfg, [send(i) for i in range(cfg.concurrent)])
    result.concurrent, result.wall_s, result.failed = cfg.concurrent, time.perf_counter() - began, result.failed + failed
    return result


def _get_all(cfg: Config, results: list[Any]) -> int:
    """Wait for every chain's last result (at most ``--stall`` seconds each); how many failed."""
    failed = 0
    for res in results:
        try:
            res.get(timeout=cfg.stall)
        except Exception:
            failed += 1
    return failed


def run_scenario(cfg: Config, scenario: str, tag: str) -> Result:
    """One scenario on its own queues (``tag`` is unique to the run and round)."""
    queue = f"bench-{tag}-{scenario}"
    if scenario.endswith("_chain"):
        return run_chain(cfg, scenario, queue)
    return run_engine(cfg, scenario, queue, f"{SCHEMA_PREFIX}{tag}{scenario.split('_')[0]}")


# -- reporting --------------------------------------------------------------------------------------------


@dataclass
class Summary:
    """A scenario over every round: latencies pooled, throughput of the median round."""

    scenario: str
    rounds: list[Result]

    @property
    def latencies_s(self) -> list[float]:
        return [v for r in self.rounds for v in r.latencies_s]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_s) * 1000

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_s, 95) * 1000

    @property
    def per_s(self) -> float:
        """Round trips/s of the median round (the lower middle one for an even count)."""
        return sorted(r.per_s for r in self.rounds)[(len(self.rounds) - 1) // 2]

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        rates = [r.per_s for r in self.rounds]
        return {"scenario": self.scenario, "latency_samples": len(self.latencies_s),
                "latency_median_ms": self.median_ms, "latency_p95_ms": self.p95_ms,
                "round_trips_per_s": self.per_s, "round_trips_per_s_range": [min(rates), max(rates)],
                "failed": self.failed}


def ratios(summaries: dict[str, Summary]) -> dict[str, dict[str, float]]:
    """Engine over chain, per pair that ran: latency (> 1: the engine is slower) and throughput
    (< 1: the engine completes fewer round trips per second)."""
    out = {}
    for engine, base in PAIRS:
        if engine in summaries and base in summaries:
            e, c = summaries[engine], summaries[base]
            out[engine] = {"latency_median": e.median_ms / c.median_ms, "latency_p95": e.p95_ms / c.p95_ms,
                           "throughput": e.per_s / c.per_s}
    return out


def print_result(cfg: Config, r: Result) -> None:
    print(f"[{r.scenario}] latency median {r.median_ms:.1f} ms, p95 {r.p95_ms:.1f} ms (K={len(r.latencies_s)}); "
          f"{r.concurrent} at once in {r.wall_s:.3f} s = {r.per_s:.1f} round trips/s"
          + (f"; FAILED {r.failed}" if r.failed else ""), flush=True)


def print_summary(cfg: Config, summaries: dict[str, Summary]) -> None:
    vs = ratios(summaries)
    print(f"\nSummary: K={cfg.sequential} sequential, W={cfg.concurrent} at once, broker={cfg.broker}, "
          f"concurrency={cfg.concurrency} (prefork) per worker, dispatch={cfg.dispatch_mode}"
          + (f", {cfg.repeat} rounds (latencies pooled, throughput of the median round)" if cfg.repeat > 1 else ""))
    print(f"{'scenario':<15}{'median ms':>10}{'p95 ms':>9}{'trips/s':>9}{'trips/s range':>15}"
          f"{'x median':>10}{'x p95':>8}{'x trips/s':>11}")
    for name, s in summaries.items():
        rates = [r.per_s for r in s.rounds]
        v = vs.get(name, {})
        print(f"{name:<15}{s.median_ms:>10.1f}{s.p95_ms:>9.1f}{s.per_s:>9.1f}"
              f"{f'{min(rates):.0f}-{max(rates):.0f}':>15}"
              f"{fmt(v.get('latency_median'), '.2f'):>10}{fmt(v.get('latency_p95'), '.2f'):>8}"
              f"{fmt(v.get('throughput'), '.2f'):>11}")
    print("(x: engine / its chain; latency > 1 = slower, trips/s < 1 = fewer per second)")


def write_json(cfg: Config, run_id: str, summaries: dict[str, Summary], path: str) -> None:
    payload = {"run_id": run_id, "config": asdict(cfg), "results": [s.to_dict() for s in summaries.values()],
               "rounds": {name: [r.to_dict() for r in s.rounds] for name, s in summaries.items()},
               "ratios": ratios(summaries), "failed": sum(s.failed for s in summaries.values())}
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")


# -- command line -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Config:
    d = Config()
    parser = argparse.ArgumentParser(prog="python -m bench.orchestration", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=d.sequential, help="K, round trips one after the other")
    parser.add_argument("--concurrent", type=int, default=d.concurrent, help="W, round trips started at once")
    parser.add_argument("--broker", default=d.broker, help="Celery broker URL (redis:// or amqp://)")
    parser.add_argument("--result-backend", default=d.result_backend, help="result backend of the chains")
    parser.add_argument("--postgres", default=d.postgres, help="server URL, without a database")
    parser.add_argument("--admin-database", default=d.admin_database,
                        help="an existing database to create durable_bench from and take the bench lock on")
    parser.add_argument("--scenarios", default=",".join(d.scenarios), help="comma-separated subset of "
                        + ",".join(SCENARIOS))
    parser.add_argument("--concurrency", type=int, default=d.concurrency, help="processes per worker (prefork)")
    parser.add_argument("--dispatch-mode", default=d.dispatch_mode, choices=("per_step", "continuation"))
    parser.add_argument("--warmup", type=int, default=d.warmup, help="untimed round trips before each scenario")
    parser.add_argument("--stall", type=float, default=d.stall,
                        help="give up when nothing has finished for this many seconds")
    parser.add_argument("--repeat", type=int, default=d.repeat, help="rounds of every scenario (interleaved)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    scenarios = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    if not scenarios or set(scenarios) - set(SCENARIOS):
        parser.error(f"--scenarios takes a comma-separated subset of {','.join(SCENARIOS)}")
    if min(args.sequential, args.concurrent, args.repeat, args.concurrency) < 1 or args.warmup < 0:
        parser.error("--sequential, --concurrent, --repeat and --concurrency must be at least 1, --warmup at least 0")
    return Config(sequential=args.sequential, concurrent=args.concurrent, broker=args.broker,
                  result_backend=args.result_backend, postgres=args.postgres, admin_database=args.admin_database,
                  scenarios=scenarios, concurrency=args.concurrency, dispatch_mode=args.dispatch_mode,
                  warmup=args.warmup, stall=args.stall, repeat=args.repeat, json_path=args.json_path)


def run(cfg: Config, run_id: str) -> dict[str, Summary]:
    """Every requested scenario, ``--repeat`` interleaved rounds, each printed as it finishes;
    one bench run at a time (the lock is shared with ``bench.bench``). Its schemas are named
    ``bench_<run_id>...``."""
    ensure_database(cfg.pg)
    with exclusive_run(cfg.pg):
        drop_schemas(cfg.pg)  # whatever an interrupted run left behind
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"orchestration bench {run_id}: K={cfg.sequential} W={cfg.concurrent} broker={cfg.broker} "
              f"scenarios={','.join(cfg.scenarios)} cpus={os.cpu_count()} load(1m)={load:.2f}", flush=True)
        rounds: dict[str, list[Result]] = {s: [] for s in cfg.scenarios}
        try:
            for n in range(cfg.repeat):
                for scenario in cfg.scenarios:
                    rounds[scenario].append(run_scenario(cfg, scenario, f"{run_id}r{n + 1}"))
                    print_result(cfg, rounds[scenario][-1])
        finally:
            drop_schemas(cfg.pg)
    return {name: Summary(name, runs) for name, runs in rounds.items()}


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    run_id = uuid.uuid4().hex[:8]
    summaries = run(cfg, run_id)
    print_summary(cfg, summaries)
    if cfg.json_path:
        write_json(cfg, run_id, summaries, cfg.json_path)
        print(f"\nresults written to {cfg.json_path}")
    return 1 if any(s.failed for s in summaries.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
