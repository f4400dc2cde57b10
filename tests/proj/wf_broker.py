"""The broker going away: a relay of five short steps, each recording that it ran."""

from __future__ import annotations

import time

from durable_celery import Workflow
from tests.proj.effects import record

relay = Workflow("relay")


def _leg(ctx):
    record()
    time.sleep(ctx.get("pause", 0))
    return {**ctx, "legs": ctx.get("legs", 0) + 1}


for _i in range(5):
    relay.step(name=f"leg_{_i}")(_leg)
