"""Stage 0: where the project starts. The report canvas on plain Celery: one worker pool on the
``reports`` queue, and a result backend, which a chord needs on plain Celery.

    python -m examples.migration.stage0_celery [DAY ...]

It starts the old worker pool, sends the canvas for each day (``apply_async(args=[day])``),
waits for each result through the backend, prints it and what the pool ran, and stops the pool.
"""

from __future__ import annotations

import argparse
import json

from examples.migration import tasks
from examples.migration.project import OLD_QUEUE, canvas_result, make_app, print_ran, processes, release_results

app = make_app(result_backend=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("days", nargs="*", default=["2030-01-01"])
    days = parser.parse_args(argv).days

    with processes("examples.migration.stage0_celery", {"old": [OLD_QUEUE]}, with_beat=False) as pools:
        sent = {day: tasks.daily_report_canvas().apply_async(args=[day]) for day in days}
        results = {day: canvas_result(result) for day, result in sent.items()}
        release_results(app, sent.values())
    for day, value in results.items():
        print(f"canvas result {day}: {json.dumps(value, sort_keys=True)}")
        print(f"  publish ran {tasks.publish_calls(day)} time(s); the channel holds: {tasks.published(day)}")
    print_ran(pools)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
