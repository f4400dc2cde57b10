"""The checks that tell a poison message from a step message, without a broker: what each
malformed message is dropped for."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from kombu.exceptions import DecodeError

from durable_celery.runtime.poison import MAX_SEQ, PoisonMessage, malformed, message_id_of, step_message

EXECUTION = str(uuid.uuid4())


@pytest.mark.parametrize("args, kwargs, reason", [
    ((), {}, "bad arguments: missing a required argument: 'execution_id'"),
    ((EXECUTION,), {}, "bad arguments: missing a required argument: 'seq'"),
    ((EXECUTION, 1), {"colour": "red"}, "bad arguments: got an unexpected keyword argument 'colour'"),
    ((EXECUTION, 1, "w", "s", None, "extra"), {}, "bad arguments: too many positional arguments"),
    ((42, 1), {}, "bad execution_id: an execution id is a string, got int"),
    (("x", 1), {}, "bad execution_id: 'x' is not an execution id (a UUID)"),
    ((EXECUTION, "1"), {}, "bad seq: an int from 0"),
    ((EXECUTION, True), {}, "bad seq: an int from 0"),
    ((EXECUTION, -1), {}, "bad seq: an int from 0"),
    ((EXECUTION, MAX_SEQ + 1), {}, "bad seq: an int from 0"),
    ((EXECUTION, 1), {"workflow": 3}, "bad workflow: a string or null, got int"),
    ((EXECUTION, 1), {"handoff": [1]}, "bad handoff: an object or null, got list"),
])
def test_a_step_message_with_bad_arguments_is_poison(args: tuple[Any, ...], kwargs: dict[str, Any],
                                                     reason: str) -> None:
    with pytest.raises(PoisonMessage) as caught:
        step_message(args, kwargs)
    assert caught.value.reason.startswith(reason) and not caught.value.missing


def test_a_well_formed_step_message_passes() -> None:
    message = step_message((EXECUTION, 7), {"workflow": "w", "step": None, "handoff": {"token": "t"}})
    assert (message.execution_id, message.seq, message.handoff) == (EXECUTION, 7, {"token": "t"})


@dataclass
class FakeMessage:
    body: Any
    headers: dict[str, Any] = field(default_factory=lambda: {"task": "durable.step", "id": "m1"})
    properties: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"

    @property
    def payload(self) -> Any:
        if isinstance(self.body, DecodeError):
            raise self.body
        return self.body


GOOD = [[EXECUTION, 1], {}, {"callbacks": None}]


@pytest.mark.parametrize("message, problem", [
    (FakeMessage(GOOD), None),
    (FakeMessage(DecodeError("Expecting value")), "the body cannot be decoded (application/json): Expecting value"),
    (FakeMessage("just a string"), "the body is not [args, kwargs, embed] but a str of 13"),
    (FakeMessage([[], {}]), "the body is not [args, kwargs, embed] but a list of 2"),
    (FakeMessage([{}, {}, {}]), "args, kwargs or embed of the wrong type: a dict of 0, a dict of 0, a dict of 0"),
    (FakeMessage(GOOD, headers={"task": "durable.step"}), "the message has no id"),
    (FakeMessage(GOOD, headers={"task": "durable.step", "id": "m1", "timelimit": "soon"}),
     "a malformed timelimit header: 'soon'"),
    (FakeMessage({"task": "durable.step", "id": "m1", "args": [EXECUTION, 1], "kwargs": {}}, headers={}), None),
    (FakeMessage(["a", "b"], headers={}), "the body is not a task message but a list of 2"),
])
def test_a_message_celery_cannot_build_a_request_from_is_malformed(message: FakeMessage, problem: str | None) -> None:
    assert malformed(message) == problem


def test_a_message_without_an_id_header_is_named_by_its_correlation_id() -> None:
    assert message_id_of(FakeMessage(GOOD, headers={"task": "t"}, properties={"correlation_id": "c1"})) == "c1"
    assert message_id_of(FakeMessage(DecodeError("x"), headers={"task": "t"})) is None
