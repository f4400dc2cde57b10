"""The orchestration benchmark (``python -m bench.orchestration``) runs end to end with tiny
sizes: every scenario completes its round trips, the JSON has its figures, and the run leaves
no schema, queue or worker behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import BROKERS, POSTGRES, ROOT

SCENARIOS = ("call_workflow", "call_chain", "await_task", "await_chain")


@pytest.mark.timeout(300)
def test_the_orchestration_bench_runs_every_scenario_with_tiny_sizes(tmp_path: Path) -> None:
    server, admin = POSTGRES.replace("+psycopg", "").rsplit("/", 1)
    out = tmp_path / "orchestration.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.orchestration", "--sequential", "2", "--concurrent", "4", "--warmup", "1",
         "--broker", BROKERS["redis"], "--postgres", server, "--admin-database", admin, "--stall", "30",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stdout + run.stderr
    payload = json.loads(out.read_text())
    assert payload["failed"] == 0
    results = {r["scenario"]: r for r in payload["results"]}
    assert sorted(results) == sorted(SCENARIOS)
    for result in results.values():
        assert result["failed"] == 0 and result["latency_samples"] == 2
        assert 0 < result["latency_median_ms"] <= result["latency_p95_ms"]
        assert result["round_trips_per_s"] > 0
    for engine in ("call_workflow", "await_task"):
        assert set(payload["ratios"][engine]) == {"latency_median", "latency_p95", "throughput"}
        assert all(value > 0 for value in payload["ratios"][engine].values())
    for runs in payload["rounds"].values():
        assert len(runs) == 1 and runs[0]["concurrent"] == 4 and runs[0]["wall_s"] > 0
    # Nothing left behind: the run's schemas are dropped (the workers were stopped before that)
    with psycopg.connect(f"{server}/durable_bench", autocommit=True) as conn:
        left = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                            (f"bench_{payload['run_id']}",)).fetchall()
    assert left == []
