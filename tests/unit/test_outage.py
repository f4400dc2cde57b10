"""Telling an unreachable database from a failed statement, and riding it out: the error the
caller sees, the checkpoint's back-off, the countdown of a message handed back to the broker."""

from __future__ import annotations

import pickle

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from durable_celery import DatabaseUnavailable, DurableError
from durable_celery.runtime.outage import MAX_COUNTDOWN, MAX_PAUSE, claim_countdown, patiently
from durable_celery.state.db import Database, unreachable


def driver_error(cls: type[Exception], sqlstate: str | None) -> Exception:
    error = cls("boom")
    if sqlstate is not None:
        error.sqlstate = sqlstate  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize("sqlstate, expected", [
    (None, True),       # psycopg's own "connection failed", "consuming input failed"
    ("08006", True),    # connection_failure
    ("57P01", True),    # admin_shutdown
    ("57P03", True),    # cannot_connect_now: starting up, in recovery
    ("40001", False),   # serialization_failure
    ("40P01", False),   # deadlock_detected
    ("57014", False),   # query_canceled (statement_timeout)
])
def test_only_errors_that_say_the_server_is_gone_count_as_unreachable(sqlstate: str | None, expected: bool) -> None:
    error = OperationalError("SELECT 1", {}, driver_error(psycopg.OperationalError, sqlstate))
    assert unreachable(error) is expected


def test_a_disconnect_sqlalchemy_recognised_is_unreachable_and_a_constraint_violation_is_not() -> None:
    assert unreachable(OperationalError("SELECT 1", {}, psycopg.OperationalError("x"), connection_invalidated=True))
    assert not unreachable(IntegrityError("INSERT", {}, driver_error(psycopg.IntegrityError, "23505")))
    assert not unreachable(ValueError("not a database error"))


def test_database_unavailable_names_the_database_without_its_password_and_chains_the_driver_error() -> None:
    db = Database("postgresql://app:s3cret@db.example:5432/orders", "durable")
    cause = OperationalError("SELECT 1", {}, psycopg.OperationalError("connection failed: Connection refused\nmore"))
    with pytest.raises(DatabaseUnavailable) as caught:
        db.raise_if_unreachable(cause)
    error = caught.value
    assert isinstance(error, DurableError) and error.__cause__ is cause
    assert "s3cret" not in str(error) and "app:***@db.example:5432/orders" in str(error)
    assert str(error).endswith("cannot be reached: connection failed: Connection refused")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.url, copy.detail) == (DatabaseUnavailable, str(error), error.url, error.detail)


def test_a_checkpoint_is_tried_again_on_a_doubling_pause_until_the_database_answers() -> None:
    pauses: list[float] = []
    tries: list[bool] = []

    def write(retried: bool) -> str:
        tries.append(retried)
        if len(tries) < 6:
            raise DatabaseUnavailable("postgresql://db/x", "connection refused")
        return "written"

    assert patiently(write, "a checkpoint", patience=60, sleep=pauses.append) == "written"
    assert tries == [False, True, True, True, True, True]
    assert pauses == [0.05, 0.1, 0.2, 0.4, MAX_PAUSE]


def test_a_checkpoint_gives_up_after_its_patience_and_other_errors_are_not_retried() -> None:
    def unavailable(_: bool) -> None:
        raise DatabaseUnavailable("postgresql://db/x", "connection refused")

    with pytest.raises(DatabaseUnavailable):
        patiently(unavailable, "a checkpoint", patience=0)

    calls: list[bool] = []

    def broken(retried: bool) -> None:
        calls.append(retried)
        raise IntegrityError("INSERT", {}, psycopg.IntegrityError("duplicate"))

    with pytest.raises(IntegrityError):
        patiently(broken, "a checkpoint", patience=60, sleep=lambda _: None)
    assert calls == [False]


def test_an_unclaimed_message_comes_back_soon_and_never_later_than_the_longest_countdown() -> None:
    assert [claim_countdown(n) for n in range(6)] == [0.25, 0.5, 1.0, MAX_COUNTDOWN, MAX_COUNTDOWN, MAX_COUNTDOWN]
    assert claim_countdown(10_000) == MAX_COUNTDOWN
