"""The ``queues=`` engine setting: per-queue flow control, parsed and validated once.

Pure values, no I/O. The shape users write::

    queues={
        "ai": {
            "concurrency": 5,                 # at most 5 steps of queue "ai" at once, cluster-wide
            "rate": "100/m",                  # at most 100 step starts in any 60 s, cluster-wide
            "per_key": {                      # and per value of a context field:
                "key": "tenant",              #   the step's context["tenant"] when it is claimed
                "concurrency": 1,             #   one step per tenant at once
                "rate": "10/s",               #   10 starts per tenant in any second
            },
        },
        "reports": {},                        # no limit, but pausable and counted
    }

A queue listed here is *controlled*: its claims take the controlled path (the queue's row
locked in the claim's transaction). A queue not listed keeps the plain one-statement claim.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from durable_celery.errors import InvalidInput

_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` starts in any window of ``period`` seconds (a sliding window)."""

    limit: int
    period: float
    text: str

    @classmethod
    def parse(cls, value: Any, where: str) -> Rate:
        """``"100/m"``, ``"10/s"``, ``"500/h"`` (``sec``, ``min``, ``hour`` spelled out work too)."""
        match = _RATE.match(value) if isinstance(value, str) else None
        if match is None or match.group(2) not in _PERIODS or int(match.group(1)) < 1:
            raise InvalidInput(f"{where}: rate must look like '100/m', '10/s' or '500/h' (a count >= 1 per "
                               f"second, minute or hour), got {value!r}")
        return cls(int(match.group(1)), _PERIODS[match.group(2)], value.strip())


@dataclass(frozen=True)
class KeyLimits:
    """Limits per value of one context field (``key``)."""

    key: str
    concurrency: int | None = None
    rate: Rate | None = None


@dataclass(frozen=True)
class QueueLimits:
    """What is enforced on one controlled queue."""

    name: str
    concurrency: int | None = None
    rate: Rate | None = None
    per_key: KeyLimits | None = None

    @property
    def limited(self) -> bool:
        """Whether a claim may be turned away for anything but a pause."""
        return self.concurrency is not None or self.rate is not None or self.per_key is not None


def _concurrency(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{where}: concurrency must be an int >= 1 (or left out for no limit), got {value!r}")
    return value


def _check_keys(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise InvalidInput(f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; "
                           f"expected some of {', '.join(sorted(allowed))}")


def parse_queue(name: Any, spec: Any) -> QueueLimits:
    """One entry of ``queues=``; raises ``InvalidInput`` with where and what is wrong."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"queues: a queue name must be a non-empty string, got {name!r}")
    where = f"queues[{name!r}]"
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{where} must be a dict such as {{'concurrency': 5}}, got {spec!r}")
    _check_keys(spec, {"concurrency", "rate", "per_key"}, where)
    per_key = None
    if spec.get("per_key") is not None:
        pk = spec["per_key"]
        pk_where = f"{where}['per_key']"
        if not isinstance(pk, Mapping):
            raise InvalidInput(f"{pk_where} must be a dict such as {{'key': 'tenant', 'concurrency': 1}}, got {pk!r}")
        _check_keys(pk, {"key", "concurrency", "rate"}, pk_where)
        key = pk.get("key")
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"{pk_where}: 'key' must name a context field, got {key!r}")
        per_key = KeyLimits(key, _concurrency(pk.get("concurrency"), pk_where),
                            Rate.parse(pk["rate"], pk_where) if pk.get("rate") is not None else None)
        if per_key.concurrency is None and per_key.rate is None:
            raise InvalidInput(f"{pk_where}: give a 'concurrency' or a 'rate' for each {key!r}")
    return QueueLimits(name, _concurrency(spec.get("concurrency"), where),
                       Rate.parse(spec["rate"], where) if spec.get("rate") is not None else None, per_key)


def parse_queues(queues: Any) -> dict[str, QueueLimits]:
    """The whole ``queues=`` setting (``None``: no controlled queue)."""
    if queues is None:
        return {}
    if not isinstance(queues, Mapping):
        raise InvalidInput(f"queues must be a dict {{name: {{'concurrency': n}}}}, got {queues!r}")
    return {name: parse_queue(name, spec) for name, spec in queues.items()}


def key_value(ctx: Any, field: str) -> str | None:
    """The per-key value of a step's context: ``str(ctx[field])``, ``None`` when the context has
    no such field (or it is null). Values longer than 255 characters are cut to 255."""
    if not isinstance(ctx, Mapping):
        return None
    value = ctx.get(field)
    if value is None:
        return None
    return (value if isinstance(value, str) else str(value))[:255]
