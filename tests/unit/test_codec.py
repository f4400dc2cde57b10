"""Context is JSON in storage; datetime, date, Decimal and UUID round-trip unchanged."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from durable_celery import codec


def test_rich_scalars_round_trip_unchanged() -> None:
    value = {"at": datetime(2026, 11, 22, 9, 30, tzinfo=timezone.utc), "day": date(2026, 1, 2),
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


def _stored(value: object) -> object:
    """encode, then through JSON storage, then decode."""
    return codec.decode(json.loads(json.dumps(codec.encode(value))))


def _same(a: object, b: object) -> bool:
    """Equal and of the same types all the way down (``1 == 1.0 == True`` is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("value", [
    # MongoDB extended JSON: the keys look like tags, some of them like ours.
    {"$date": "2026-01-01"},
    {"$date": {"$numberLong": "1767225600000"}},
    {"$oid": "507f1f77bcf86cd799439011"},
    {"$numberDecimal": "10.25"},
    {"_id": {"$oid": "507f1f77bcf86cd799439011"}, "at": {"$date": "2026-01-01T00:00:00Z"}},
    # A tag with text that parses, or does not, or is not text at all.
    {"$datetime": "2026-11-22T10:00:00+00:00"},
    {"$datetime": "not a date"},
    {"$uuid": "not-a-uuid"},
    {"$uuid": 5},
    {"$decimal": "x"},
    {"$decimal": None},
    {"$": 1},
    # Nested, and next to rich values.
    {"a": [{"$date": "2026-01-01"}, {"b": {"$uuid": str(UUID(int=1))}}]},
    [{"$decimal": "1.5"}, {"$decimal": "1.5", "other": 1}],
    {"$when": datetime(2026, 1, 1, tzinfo=timezone.utc)},
    {"$date": {"$date": date(2026, 1, 1)}},
    # What the escape itself looks like.
    {"$object": {"$date": "2026-01-01"}},
    {"$object": {"a": 1}},
    {"$object": 1},
    {"$object": {"$object": {"$object": {}}}},
    {"$object": {"$date": "2026-01-01", "b": 2}},
    # Keys that only look near a tag.
    {"date": "2026-01-01"}, {"": {"$uuid": ""}}, {"$date": "2026-01-01", "$uuid": str(UUID(int=1))},
])
def test_user_values_with_tag_like_keys_round_trip_unchanged(value: object) -> None:
    assert _same(_stored(value), value)


def test_a_one_key_dollar_object_is_stored_escaped_and_anything_else_as_it_is() -> None:
    assert codec.encode({"$date": "2026-01-01"}) == {"$object": {"$date": "2026-01-01"}}
    assert codec.encode({"$object": {"a": 1}}) == {"$object": {"$object": {"a": 1}}}
    assert codec.encode({"a": {"$oid": "x"}}) == {"a": {"$object": {"$oid": "x"}}}
    assert codec.encode({"a": 1, "$b": 2}) == {"a": 1, "$b": 2}
    assert codec.encode({"date": date(2026, 1, 2)}) == {"date": {"$date": "2026-01-02"}}


@pytest.mark.parametrize("stored, decoded", [
    # Data stored before the escape existed still decodes as it did.
    ({"$datetime": "2026-11-22T10:00:00+00:00"}, datetime(2026, 11, 22, 10, tzinfo=timezone.utc)),
    ({"$date": "2026-01-02"}, date(2026, 1, 2)),
    ({"$decimal": "10.25"}, Decimal("10.25")),
    ({"$uuid": str(UUID(int=5))}, UUID(int=5)),
    ({"a": {"b": [1, "x", None]}}, {"a": {"b": [1, "x", None]}}),
    ({"$oid": "507f1f77bcf86cd799439011"}, {"$oid": "507f1f77bcf86cd799439011"}),
    ({"$object": {"a": 1}}, {"$object": {"a": 1}}),
    ({"$object": {"$a": 1, "b": 2}}, {"$object": {"$a": 1, "b": 2}}),
    # A malformed tag is kept as it is rather than fail the execution.
    ({"$datetime": "not a date"}, {"$datetime": "not a date"}),
    ({"$date": "2026-13-01"}, {"$date": "2026-13-01"}),
    ({"$decimal": "x"}, {"$decimal": "x"}),
    ({"$uuid": "not-a-uuid"}, {"$uuid": "not-a-uuid"}),
    ({"$uuid": 5}, {"$uuid": 5}),
    ({"$object": 1}, {"$object": 1}),
    ({"k": [{"$decimal": "1.5"}, {"$date": "bad"}]}, {"k": [Decimal("1.5"), {"$date": "bad"}]}),
])
def test_previously_stored_data_decodes_as_before_and_never_raises(stored: object, decoded: object) -> None:
    assert _same(codec.decode(stored), decoded)


_KEYS = ["a", "b", "", "$", "$date", "$datetime", "$decimal", "$uuid", "$object", "$oid", "$numberDecimal"]
_TEXTS = ["", "x", "not a date", "2026-01-01", "2026-11-22T10:00:00+00:00", "10.25", "NaN", str(UUID(int=7)), "$object"]


def _random_value(rng: random.Random, depth: int) -> object:
    """A nested value of JSON types and rich scalars, biased towards tag-like one-key dicts."""
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 2**63, rng.randrange(-1000, 1000), rng.uniform(-1e6, 1e6), -0.0])
    if kind in (2, 3):
        return rng.choice(_TEXTS)
    if kind == 4:
        return rng.choice([datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc), datetime(1999, 12, 31), date(2026, 1, 2),
                           Decimal("10.25"), Decimal("-0"), Decimal("1E+3"), UUID(int=rng.getrandbits(128))])
    if kind == 5:
        return {}
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    size = 1 if kind in (7, 8) else rng.randrange(2, 4)
    return {rng.choice(_KEYS): _random_value(rng, depth + 1) for _ in range(size)}


def _plain(value: object) -> object:
    """What a round trip gives back: tuples come back as lists, everything else unchanged."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("seed", range(5))
def test_random_nested_values_round_trip_unchanged(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        value = _random_value(rng, 0)
        assert _same(_stored(value), _plain(value)), value


@pytest.mark.parametrize("depth, ok", [(codec.MAX_DEPTH, True), (codec.MAX_DEPTH + 1, False), (10_000, False)])
def test_structures_nested_deeper_than_max_depth_are_refused_where_the_limit_is_reached(depth: int, ok: bool) -> None:
    value: Any = 1
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    if ok:
        assert codec.decode(codec.encode(value)) == value
        return
    with pytest.raises(codec.Unencodable, match=f"nested deeper than {codec.MAX_DEPTH} levels") as caught:
        codec.encode(value)
    assert caught.value.path.count("a") + caught.value.path.count("[0]") == codec.MAX_DEPTH
