"""The error tree: every error derives from DurableError, is importable from the package root,
and survives pickling (Celery's prefork pool pickles exceptions) with its fields."""

from __future__ import annotations

import pickle

import pytest

import durable_celery
from durable_celery import ChildWorkflowError, DurableError, TaskFailed


@pytest.mark.parametrize("error", [
    ChildWorkflowError("c-1", "failed", {"type": "ValueError", "message": "declined", "step": "charge",
                                         "traceback": None}),
    ChildWorkflowError("c-2", "cancelled", None),
    TaskFailed("legacy.render", "t-1", {"type": "KeyError", "message": "'x'", "step": None, "traceback": None}),
    TaskFailed("legacy.render", "t-2", None),
])
def test_orchestration_errors_pickle_with_their_fields(error: DurableError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def test_child_workflow_error_says_how_the_child_ended() -> None:
    error = ChildWorkflowError("c-1", "failed", {"type": "ValueError", "message": "declined"})
    assert (error.child_id, error.status, error.error["message"]) == ("c-1", "failed", "declined")
    assert str(error) == "child workflow c-1 ended failed: ValueError: declined"


def test_every_public_error_is_a_durable_error_exported_from_the_package_root() -> None:
    for name in durable_celery.__all__:
        value = getattr(durable_celery, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, DurableError), name
