"""Reading the results a parallel block (or a concurrent foreach) left in the context.

After a parallel block without ``into=``, the next step's context has ``__results__``:
``{key: ["ok", value] | ["error", reason]}`` (2-sequences, usable with ``match``).
"""

from __future__ import annotations

from typing import Any

RESULTS = "__results__"


def parallel_results(ctx: dict[str, Any]) -> dict[str, Any]:
    """All results of the parallel block that just ran (empty if none)."""
    results = ctx.get(RESULTS)
    return dict(results) if isinstance(results, dict) else {}


def parallel_result(ctx: dict[str, Any], name: str) -> tuple[str, Any] | None:
    """``("ok", value)`` or ``("error", reason)`` for one branch, or None if it has no result."""
    result = parallel_results(ctx).get(name)
    return (result[0], result[1]) if result is not None else None


def parallel_ok(ctx: dict[str, Any], name: str) -> bool:
    """Whether that branch succeeded."""
    result = parallel_result(ctx, name)
    return result is not None and result[0] == "ok"
