"""``goto(step, ctx)``: the value a step returns to jump to another step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from durable_celery.dsl.typed import ModelLike, dump, is_model


@dataclass(frozen=True)
class Goto:
    """Returned by a step or decision: continue at ``target`` with ``ctx``."""

    target: str
    ctx: dict[str, Any]


def goto(step: str, ctx: dict[str, Any] | ModelLike) -> Goto:
    """Jump to the step named ``step`` with ``ctx`` as its input; execution goes on in
    definition order from there. ``ctx`` may be a pydantic model (stored as its JSON form)."""
    if not isinstance(step, str) or not step:
        raise TypeError(f"goto() needs a step name, got {step!r}")
    if is_model(ctx):
        ctx = dump(ctx)
    if not isinstance(ctx, dict):
        raise TypeError(f"goto() needs a dict context, got {type(ctx).__name__}")
    return Goto(step, ctx)
