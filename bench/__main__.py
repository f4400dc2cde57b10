"""Every benchmark of issue 11, one after the other, and one table of its goals.

Each benchmark runs as its own process (as ``python -m bench.<name>`` would) and writes its JSON
into ``--out``; this reads them back and prints every goal as the ratio the benchmark measured
against its anchor in the same run (a plain Celery chain, chord, group or ``apply_async``):

* ``bench.bench`` on Redis and on RabbitMQ: steps/s of ``per_step`` and ``continuation`` (goals
  1 and 2), commits per step, p50 latency one workflow at a time (goal 6);
* ``bench.fanout``: a foreach of 10,000 items and 20 parallel blocks of 50 branches (goal 3);
* ``bench.starts``: one ``start`` against ``apply_async``, ``start_many`` per second (goal 4);
* ``bench.scale``: the tick and steps/s with 1,000,000 finished and 100,000 waiting executions
  in the tables (goal 5).

Run from the repository root (about 25 minutes; ``--quick`` about 8, with smaller sizes and one
round)::

    python -m bench [--quick] [--only bench,fanout,starts,scale] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BROKERS = {"redis": "redis://127.0.0.1:6379/9", "amqp": "amqp://guest:guest@127.0.0.1:5672//"}


@dataclass(frozen=True)
class Goal:
    """One line of the table: where its figure is in a benchmark's JSON, and its threshold."""

    text: str
    run: str
    read: Callable[[dict[str, Any]], float | None]
    threshold: float
    higher_is_better: bool = True

    def verdict(self, value: float | None) -> str:
        if value is None:
            return "not measured"
        met = value >= self.threshold if self.higher_is_better else value <= self.threshold
        return "met" if met else "NOT met"


def _ratio(name: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda payload: payload.get("ratios", {}).get(name)


def _commits(payload: dict[str, Any]) -> float | None:
    return next((r["commits_per_step"] for r in payload.get("results", []) if r["scenario"] == "continuation"), None)


def _tick(payload: dict[str, Any]) -> float | None:
    sweep = payload.get("sweeps_ms", {}).get("tick (whole sweep)")
    return None if sweep is None else sweep["median"]


def _all_on_index(payload: dict[str, Any]) -> float | None:
    plans = payload.get("plans")
    if plans is None:
        return None
    return float(all(p["on_index"] for ps in plans.values() for p in ps))


def goals() -> list[Goal]:
    found = []
    for broker in BROKERS:
        run = f"bench-{broker}"
        found += [
            Goal(f"[{broker}] 1. per_step steps/s vs chain", run, _ratio("per_step_vs_chain"), 0.9),
            Goal(f"[{broker}] 2. continuation steps/s vs chain", run, _ratio("continuation_vs_chain"), 3.0),
            Goal(f"[{broker}] 2. continuation commits per step", run, _commits, 1.05, False),
            Goal(f"[{broker}] 6. per_step p50 latency vs chain", run, _ratio("per_step_latency_vs_chain"), 1.2, False),
            Goal(f"[{broker}] 6. continuation p50 latency vs chain", run,
                 _ratio("continuation_latency_vs_chain"), 0.999, False),
        ]
    return found + [
        Goal("3. foreach of 10,000 items/s vs a chord", "fanout", _ratio("foreach"), 1.0),
        Goal("3. 20 parallel blocks of 50 vs 20 chords", "fanout", _ratio("parallel"), 1.0),
        Goal("4. one start vs a chain's apply_async (median)", "starts",
             lambda p: p.get("results", {}).get("start_vs_chain"), 1.2, False),
        Goal("4. start_many starts/s", "starts", lambda p: p.get("results", {}).get("start_many_per_s"), 5000),
        Goal("5. one tick sweep, ms (median)", "scale", _tick, 50, False),
        Goal("5. every hot query on an index (1 = yes)", "scale", _all_on_index, 1.0),
        Goal("5. per_step steps/s, big tables vs empty", "scale", _ratio("per_step"), 0.9),
        Goal("5. continuation steps/s, big tables vs empty", "scale", _ratio("continuation"), 0.9),
    ]


def commands(quick: bool, out: Path) -> dict[str, list[str]]:
    """The benchmark runs, by name, each writing ``out/<name>.json``."""
    rounds = ["--repeat", "1"] if quick else ["--repeat", "3"]
    runs = {f"bench-{broker}": ["bench.bench", "--broker", url, *rounds] for broker, url in BROKERS.items()}
    runs["fanout"] = ["bench.fanout"] + (["--items", "2000"] if quick else [])
    runs["starts"] = ["bench.starts"] + (["--rounds", "100", "--many", "2000", "--loop", "300"] if quick else [])
    runs["scale"] = ["bench.scale"] + (["--finished", "100000", "--waiting", "10000"] if quick else [])
    return {name: [sys.executable, "-m", *args, "--json", str(out / f"{name}.json")] for name, args in runs.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one round each")
    parser.add_argument("--only", default="", help="comma-separated: bench, fanout, starts, scale (default: all)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for each run's JSON")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    runs = {name: cmd for name, cmd in commands(args.quick, out).items()
            if not wanted or name.split("-")[0] in wanted}
    failed = []
    for name, cmd in runs.items():
        print(f"\n=== {name}: {' '.join(cmd[2:])}", flush=True)
        began = time.monotonic()
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.monotonic() - began:.0f} s", flush=True)
    print("\nIssue 11's goals, each a figure of one run against its anchor in that run:")
    for goal in goals():
        if goal.run not in runs:
            continue
        path = out / f"{goal.run}.json"
        value = goal.read(json.loads(path.read_text())) if path.exists() and goal.run not in failed else None
        shown = "n/a" if value is None else f"{value:.2f}"
        op = ">=" if goal.higher_is_better else "<="
        print(f"  {goal.text:<48} {shown:>9}  ({op} {goal.threshold:g})  {goal.verdict(value)}")
    if failed:
        print(f"\nfailed runs: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
