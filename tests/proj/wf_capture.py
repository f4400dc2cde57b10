"""Output capture: a step that prints and logs its own execution id, slowly, so that steps running
side by side on a threads pool interleave."""

from __future__ import annotations

import logging
import time

from durable_celery import Workflow, context

chatter = Workflow("capture_chatter")
log = logging.getLogger("proj.capture")


@chatter.step
def chatter_away(ctx):
    me = context.workflow_id()
    for i in range(ctx.get("rounds", 5)):
        print(f"print {i} from {me}")
        log.warning("log %d from %s", i, me)
        time.sleep(ctx.get("pause", 0.05))
    print(f"last word from {me}", end="")  # no newline: still one entry
    return {"rounds": ctx.get("rounds", 5)}


flood = Workflow("capture_flood")


@flood.step
def flood_out(ctx):
    """Logs one message ``long`` characters long, prints ``lines`` numbered lines, then fails if asked."""
    log.warning("x" * ctx.get("long", 1))
    for i in range(ctx["lines"]):
        print(f"line {i}")
    if ctx.get("fail"):
        raise RuntimeError("flooded")
    return ctx
