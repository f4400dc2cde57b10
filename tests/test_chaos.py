"""The chaos run (``python -m bench.chaos``) in its short version: 150 workflows of every kind
on two real workers while one worker is killed, the broker is restarted and PostgreSQL is
restarted, all on private servers; every workflow must end as its input says, every step must
be checkpointed once and no committed step may run again (see docs/reliability.md, "A chaos run")."""

from __future__ import annotations

import pytest

from bench.chaos import Config, run
from bench.chaos_faults import Plan


@pytest.mark.timeout(300)
def test_a_short_chaos_run_loses_nothing_and_runs_no_committed_step_twice() -> None:
    # Given 150 workflows (retries, branches, waits answered by events, parallel, foreach,
    # sagas failing on purpose, child workflows), 30 at a time, on two prefork workers
    cfg = Config(workflows=150, workers=2, window=30, plan=Plan(kills=1), duration_limit=180, stall=60,
                 quiet=True)
    # When a worker is SIGKILLed, the broker killed and restarted, and PostgreSQL stopped
    # (immediate shutdown) and started during the run
    report = run(cfg)
    # Then every check holds: outcomes, final statuses, one checkpoint per step, no committed
    # step ran again, every fault injected and recovered, no process died by itself
    failed = [f"{c['name']} ({c['failed']}): {c['examples']}" for c in report["checks"] if not c["ok"]]
    faults = [(f["kind"], f["recovery_s"]) for f in report["faults"]]
    assert not failed, "\n".join(failed) + f"\nfaults: {faults}"
    assert {f["kind"] for f in report["faults"]} == {"worker-kill", "broker-restart", "postgres-restart"}
