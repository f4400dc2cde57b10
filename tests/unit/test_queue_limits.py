"""The ``queues=`` setting: what it accepts, what it refuses (clearly), and the per-key value."""

from __future__ import annotations

from typing import Any

import pytest

from durable_celery.errors import InvalidInput
from durable_celery.queue_limits import KeyLimits, QueueLimits, Rate, key_value, parse_queues


@pytest.mark.parametrize(("text", "limit", "period"), [
    ("100/m", 100, 60.0), ("10/s", 10, 1.0), ("500/h", 500, 3600.0), (" 3 / min ", 3, 60.0), ("1/hour", 1, 3600.0),
])
def test_rates_are_a_count_per_second_minute_or_hour(text: str, limit: int, period: float) -> None:
    rate = Rate.parse(text, "q")
    assert (rate.limit, rate.period) == (limit, period)


@pytest.mark.parametrize("bad", ["0/s", "10", "10/d", "ten/s", 10, "-1/s"])
def test_a_bad_rate_is_refused_naming_where(bad: Any) -> None:
    with pytest.raises(InvalidInput, match=r"queues\['ai'\]: rate must look like"):
        parse_queues({"ai": {"rate": bad}})


def test_the_full_shape_parses_into_frozen_limits() -> None:
    parsed = parse_queues({"ai": {"concurrency": 5, "rate": "100/m",
                                  "per_key": {"key": "tenant", "concurrency": 1, "rate": "10/s"}},
                           "reports": {}})
    assert parsed["ai"] == QueueLimits("ai", 5, Rate(100, 60.0, "100/m"), KeyLimits("tenant", 1, Rate(10, 1.0, "10/s")))
    assert parsed["ai"].limited and not parsed["reports"].limited
    assert parse_queues(None) == {}


@pytest.mark.parametrize(("queues", "message"), [
    ({"ai": {"concurrency": 0}}, "concurrency must be an int >= 1"),
    ({"ai": {"concurrency": True}}, "concurrency must be an int >= 1"),
    ({"ai": {"concurency": 3}}, "unknown option"),
    ({"ai": 3}, "must be a dict"),
    ({"": {}}, "non-empty string"),
    ({"ai": {"per_key": {"concurrency": 1}}}, "'key' must name a context field"),
    ({"ai": {"per_key": {"key": "tenant"}}}, "give a 'concurrency' or a 'rate'"),
    ({"ai": {"per_key": {"key": "tenant", "limit": 1}}}, "unknown option"),
    (["ai"], "queues must be a dict"),
])
def test_bad_settings_are_refused_when_the_engine_is_built(queues: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_queues(queues)


@pytest.mark.parametrize(("ctx", "value"), [
    ({"tenant": "acme"}, "acme"), ({"tenant": 42}, "42"), ({"tenant": None}, None), ({}, None), (None, None),
    ({"tenant": "x" * 300}, "x" * 255),
])
def test_the_key_is_the_context_field_as_a_string(ctx: Any, value: str | None) -> None:
    assert key_value(ctx, "tenant") == value
