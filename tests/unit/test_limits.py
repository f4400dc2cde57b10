"""What a caller may send (durable_celery/limits.py, codec.py, durations.py): pure checks, no
database. Payloads that JSON and Postgres can hold round-trip; everything else is refused with
InvalidInput (PayloadTooLarge over the limit), naming where."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_celery import InvalidInput, PayloadTooLarge, codec
from durable_celery.durations import to_seconds
from durable_celery.limits import check_count, check_name, check_prefix, encode_payload

TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)
JSONABLE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(value=JSONABLE)
def test_any_json_value_postgres_can_hold_round_trips(value: Any) -> None:
    assert codec.decode(encode_payload(value, "the payload", 1024 * 1024)) == value


@pytest.mark.parametrize("value, where", [
    ({"a": "x\x00y"}, "a holds a string with a NUL character"),
    ({"a\x00": 1}, "'a\\x00' holds a key with a NUL character"),
    ({"a": [1, {"b": math.nan}]}, "a[1].b"),
    ({"a": {1: "x"}}, "a.1"),
    ({"a": {1, 2}}, "a"),
    ({"a": b"bytes"}, "a"),
])
def test_what_json_or_postgres_cannot_hold_is_refused_naming_where(value: Any, where: str) -> None:
    with pytest.raises(InvalidInput, match=f"at {re.escape(where)}"):
        encode_payload(value, "the payload", None)


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_is_allowed_to_100_levels_and_refused_beyond() -> None:
    assert encode_payload(nested(codec.MAX_DEPTH), "the payload", None) == nested(codec.MAX_DEPTH)
    with pytest.raises(InvalidInput, match="nested deeper than 100 levels"):
        encode_payload(nested(codec.MAX_DEPTH + 1), "the payload", None)
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(InvalidInput):
        encode_payload(looped, "the payload", None)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "\ud800", 10**5000],
                         ids=["nan", "inf", "-inf", "surrogate", "5000 digits"])
def test_values_json_text_cannot_carry_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput):
        encode_payload({"v": value}, "the payload", None)


def test_the_size_limit_counts_utf8_bytes_of_compact_json() -> None:
    # {"k":"éé...é"} is 8 bytes of syntax and 2 bytes per é
    assert encode_payload({"k": "é" * 46}, "the payload", 100) == {"k": "é" * 46}
    with pytest.raises(PayloadTooLarge) as raised:
        encode_payload({"k": "é" * 47}, "the payload", 100)
    assert (raised.value.size, raised.value.limit) == (102, 100)
    assert isinstance(raised.value, InvalidInput)


@pytest.mark.parametrize("name", ["", "a\x00", "a\nb", "\x1b[31m", "a\x85", "\udc80", "x" * 256, 3, None, b"a"])
def test_a_name_that_is_empty_too_long_or_holds_control_characters_is_refused(name: Any) -> None:
    with pytest.raises(InvalidInput):
        check_name(name, "event name")


@pytest.mark.parametrize("name", ["'; DROP TABLE x; --", 'a"b', "名前 🙂", "%s :p $1", "x" * 255])
def test_names_that_look_like_sql_are_names(name: str) -> None:
    assert check_name(name, "event name") == name


@pytest.mark.parametrize("prefix", ["durable", "t_1", "_x", "a" * 48])
def test_a_plain_lower_case_identifier_is_a_prefix(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["", "Durable", "1st", "pg_x", "a" * 49, "a-b", 'a"b', "a;b", "ñ", "a\n", None])
def test_anything_else_is_refused_as_a_prefix(prefix: Any) -> None:
    with pytest.raises(InvalidInput, match="prefix must be"):
        check_prefix(prefix)


@pytest.mark.parametrize("count", [-1, 2**31, 1.0, True, "1", None])
def test_a_count_is_an_int_within_a_postgres_integer(count: Any) -> None:
    with pytest.raises(InvalidInput):
        check_count(count, "limit")


@pytest.mark.parametrize("duration", [math.nan, math.inf, -1, 10**400, 1e12],
                         ids=["nan", "inf", "negative", "400 digits", "31,000 years"])
def test_a_duration_is_finite_not_negative_and_at_most_1000_years(duration: Any) -> None:
    with pytest.raises(InvalidInput):
        to_seconds(duration, "timeout")
