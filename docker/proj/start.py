"""Start one order and print how it ran:

    docker compose exec worker python -m proj.start [PRICE]
"""

from __future__ import annotations

import sys
import time

from proj.celery import durable
from proj.workflows import order


def main() -> int:
    price = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    execution_id = durable.start(order, {"order_id": int(time.time()), "items": [{"sku": "book", "price": price}]})
    print(f"started {execution_id}")
    execution = durable.wait(execution_id, timeout=120)
    print(f"{execution.workflow}: {execution.status}")
    for step in execution.steps:
        error = f"  {step.error['type']}: {step.error['message']}" if step.error else ""
        print(f"  {step.step_name:<14} attempt {step.attempt}  {step.status:<9}{error}")
    print(f"context: {execution.context}")
    return 0 if execution.status == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
