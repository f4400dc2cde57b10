"""Context is JSON in storage; datetime, date, Decimal and UUID round-trip unchanged."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from durable_celery import codec


def test_rich_scalars_round_trip_unchanged() -> None:
    value = {"at": datetime(2026, 11, 22, 9, 30, tzinfo=UTC), "day": date(2026, 1, 2),
             "amount": Decimal("10.25"), "id": UUID(int=5), "nested": [{"d": Decimal("1")}, (1, 2)], "n": None}
    decoded = codec.decode(codec.encode(value))
    assert decoded == {**value, "nested": [{"d": Decimal("1")}, [1, 2]]}
    assert type(decoded["at"]) is datetime and type(decoded["day"]) is date


@pytest.mark.parametrize("value, path", [
    ({"a": {"b": object()}}, "a.b"),
    ({"items": [1, {1, 2}]}, "items[1]"),
    ({"x": float("nan")}, "x"),
    ({1: "int key"}, "1"),
])
def test_unencodable_values_are_reported_with_their_key_path(value: object, path: str) -> None:
    with pytest.raises(codec.Unencodable) as err:
        codec.encode(value)
    assert err.value.path == path
