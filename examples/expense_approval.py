"""Expense approval with a timeout: a manager approves or rejects an expense; if nobody answers
in time, it is rejected automatically. Runs on the embedded default (no servers):

    python -m examples.expense_approval

A real worker (with beat inside it, for the timeout) runs two expenses: one the manager
approves through ``provide_input``, one nobody answers, which times out.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from celery import Celery

from durable_celery import Durable, Workflow, seconds
from durable_celery.wait import wait_for_approval

expense = Workflow("expense_approval")


@expense.step
def submit(ctx: dict[str, Any]) -> dict[str, Any]:
    if ctx["amount"] <= 0:
        raise ValueError("an expense needs a positive amount")
    return {**ctx, "status": "submitted"}


@expense.step
def manager_review(ctx: dict[str, Any]) -> dict[str, Any]:
    decision = wait_for_approval(
        "manager", prompt=f"Approve {ctx['employee']}'s expense of {ctx['amount']}?",
        metadata={"amount": ctx["amount"]}, timeout=seconds(ctx.get("review_seconds", 3)),
        timeout_value="auto_rejected",
    )
    return {**ctx, "decision": decision}


@expense.step
def settle(ctx: dict[str, Any]) -> dict[str, Any]:
    paid = ctx["decision"] == "approved"
    return {**ctx, "status": "paid" if paid else "rejected"}


os.environ.setdefault("DURABLE_DATA_DIR", tempfile.mkdtemp(prefix="durable-expenses-"))
app = Celery("expenses")
durable = Durable(app, workflows=[expense], tick_interval=0.5)


def main() -> int:
    from durable_celery.testing.workers import worker

    data = Path(os.environ["DURABLE_DATA_DIR"])
    root = str(Path(__file__).resolve().parent.parent)
    with worker("examples.expense_approval", [durable.settings.queue], concurrency=1, pool="solo", cwd=root,
                extra=["-B", "-s", str(data / "beat-schedule")]):
        approved = durable.start(expense, {"employee": "ada", "amount": 120})
        ignored = durable.start(expense, {"employee": "bob", "amount": 75, "review_seconds": 2})
        while len(durable.list_pending_inputs(status="pending")) < 2:
            time.sleep(0.1)
        for request in durable.list_pending_inputs(status="pending"):
            print(f"pending: {request.prompt} (times out at {request.timeout_at:%H:%M:%S})")
        durable.provide_input(approved, "manager", "approved")
        results = [durable.wait(approved, timeout=60), durable.wait(ignored, timeout=60)]
    for execution in results:
        print(f"{execution.context['employee']}: {execution.context['decision']} -> {execution.context['status']}")
    ok = [e.context["status"] for e in results] == ["paid", "rejected"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
