"""Hypothesis strategies of hostile input, shared by the client and CLI tests (issue 16): what a
caller may pass by mistake or on purpose, and a snapshot of every table's row count to prove
that a refused call wrote nothing."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import text

from durable_celery.limits import DEFAULT_MAX_PAYLOAD_BYTES

#: few examples each: the calls run against the real database, and the suite shares 2 cores
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])

CONTROLS = st.sampled_from(["\x00", "\n", "\r", "\t", "\x1b[31m", "\x7f", "\x85", "\x08"])
SURROGATES = st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
#: text Postgres cannot store, or that is not a name: empty, control characters, lone
#: surrogates, too long
HOSTILE_TEXT = st.one_of(
    st.just(""),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=8), CONTROLS, st.text(max_size=8)),
    st.builds(lambda a, s: a + s, st.text(max_size=8), SURROGATES),
    st.integers(min_value=256, max_value=5000).map(lambda n: "é" * n),
)
NOT_TEXT = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                     st.binary(max_size=4), st.lists(st.integers(), max_size=2),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.builds(object))
#: never a usable name (nor None)
BAD_NAME = st.one_of(HOSTILE_TEXT, NOT_TEXT)
#: never an execution id: not a UUID string
BAD_ID = st.one_of(st.text(max_size=40).filter(lambda s: not _is_uuid(s)), NOT_TEXT, st.none())
UNKNOWN_ID = st.uuids().map(str)
#: never a count: negative, not an int, too large for a bigint
BAD_COUNT = st.one_of(st.integers(max_value=-1), st.integers(min_value=2**63), st.floats(allow_nan=True),
                      st.booleans(), st.text(max_size=4), st.none())
#: never a duration
BAD_DURATION = st.one_of(st.floats(max_value=-1e-3), st.integers(max_value=-1), st.just(math.nan),
                         st.just(math.inf), st.integers(min_value=10**11), st.floats(min_value=1e11),
                         st.text(max_size=4), st.booleans(), st.lists(st.integers(), max_size=1))
NAIVE_OR_NOT_DATETIME = st.one_of(st.datetimes(), st.text(max_size=10), st.integers(), st.floats())


def _is_uuid(value: str) -> bool:
    import uuid
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


#: one value no payload may hold
BAD_LEAF = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.builds(object), st.sets(st.integers(), min_size=1, max_size=2), st.binary(min_size=1, max_size=4),
    st.complex_numbers(min_magnitude=1, allow_nan=False, allow_infinity=False),
    st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=4), st.text(max_size=4)),
    SURROGATES,
    st.just(10**5000),  # more digits than Python writes as text
)
#: a payload with something in it that cannot be stored, somewhere inside
BAD_PAYLOAD = st.one_of(
    BAD_LEAF,
    st.builds(lambda k, v: {k: v}, st.text(min_size=1, max_size=5), BAD_LEAF),
    st.builds(lambda v: {"a": [1, {"b": v}]}, BAD_LEAF),
    st.builds(lambda k: {k: 1}, st.one_of(st.integers(), st.tuples(st.integers()), st.none(), st.floats())),
    st.builds(lambda k: {k: 1}, st.builds(lambda a: f"{a}\x00", st.text(max_size=3))),
    st.integers(min_value=101, max_value=300).map(_nested),
    st.just({"blob": "x" * (DEFAULT_MAX_PAYLOAD_BYTES + 1)}),
    st.just({"blob": "é" * (DEFAULT_MAX_PAYLOAD_BYTES // 2 + 1)}),  # under the limit in characters, over in bytes
)
#: a workflow input (a dict) that cannot be stored, or not a dict at all
BAD_INPUT = st.one_of(
    BAD_PAYLOAD.map(lambda v: {"value": v}),
    st.lists(st.integers(), max_size=2), st.text(max_size=4), st.integers(), st.tuples(st.integers()),
)


def row_counts(db: Any, schema: str) -> dict[str, int]:
    """Rows of every table in ``schema``: a refused call changes none of them."""
    with db.connect() as conn:
        tables = [row[0] for row in conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s ORDER BY 1"), {"s": schema})]
        query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM \"{schema}\".\"{t}\"" for t in tables)
        return {name: n for name, n in conn.execute(text(query))}
