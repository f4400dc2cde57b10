"""Trip booking as a saga: book a flight, a hotel and a car; when the car cannot be booked, the
hotel and the flight are cancelled again, newest first. Runs on the embedded default:

    python -m examples.trip_booking
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from celery import Celery

from durable_celery import Durable, Retry, Workflow

trip = Workflow("trip_booking")


@trip.step(compensate="cancel_flight")
def book_flight(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "flight": f"FL-{ctx['traveller']}"}


@trip.step(compensate="cancel_hotel")
def book_hotel(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "hotel": f"HT-{ctx['traveller']}"}


@trip.step(retry=Retry(max_attempts=2, backoff="constant", base=0.2))
def book_car(ctx: dict[str, Any]) -> dict[str, Any]:
    if not ctx.get("cars_available", True):
        raise RuntimeError("no cars available")
    return {**ctx, "car": f"CR-{ctx['traveller']}"}


@trip.compensation(retry=Retry(max_attempts=3))
def cancel_hotel(ctx: dict[str, Any]) -> dict[str, Any]:
    # Compensations get the output of the step they undo, and should be idempotent.
    return {"cancelled": ctx["hotel"]}


@trip.compensation(retry=Retry(max_attempts=3))
def cancel_flight(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"cancelled": ctx["flight"]}


os.environ.setdefault("DURABLE_DATA_DIR", tempfile.mkdtemp(prefix="durable-trips-"))
app = Celery("trips")
durable = Durable(app, workflows=[trip], tick_interval=0.5)


def main() -> int:
    from durable_celery.testing.workers import worker

    root = str(Path(__file__).resolve().parent.parent)
    with worker("examples.trip_booking", [durable.settings.queue], concurrency=1, pool="solo", cwd=root,
                extra=["-B", "-s", str(Path(os.environ["DURABLE_DATA_DIR"]) / "beat-schedule")]):
        ok_id = durable.start(trip, {"traveller": "ada"})
        bad_id = durable.start(trip, {"traveller": "bob", "cars_available": False})
        booked, rolled_back = durable.wait(ok_id, timeout=60), durable.wait(bad_id, timeout=60)
    print(f"ada: {booked.status.value} {booked.context}")
    print(f"bob: {rolled_back.status.value} after {(rolled_back.error or {}).get('message')!r}")
    for result in rolled_back.compensation_results:
        print(f"  {result['compensation']} (for {result['step']}): {result['status']}")
    return 0 if (booked.status, rolled_back.status) == ("completed", "compensated") else 1


if __name__ == "__main__":
    raise SystemExit(main())
