"""The inbox's forms (durable_celery/dashboard/forms.py): the controls each declared input gets,
and how a submitted form becomes the data ``provide_input`` takes, with the errors of one that
does not answer its declaration. Every answer read is one the engine's own check accepts."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from durable_celery.dashboard.forms import FormInvalid, build_form, read_form
from durable_celery.models import PendingInput
from durable_celery.runtime.inputs import validate_input


def declared(type: str, *, fields: list[dict[str, Any]] | None = None, choices: list[Any] | None = None) -> PendingInput:
    return PendingInput(workflow_id="e", input_name="n", step_name="s", type=type, prompt=None, metadata=None,
                        fields=fields, choices=choices, status="pending", timeout_at=None, response=None,
                        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))


def accepted(pending: PendingInput, submitted: dict[str, list[str]]) -> Any:
    data = read_form(pending, submitted)
    validate_input({"type": pending.type, "fields": pending.fields, "choices": pending.choices}, data)
    return data


def errors(pending: PendingInput, submitted: dict[str, list[str]]) -> dict[str, str]:
    with pytest.raises(FormInvalid) as refused:
        read_form(pending, submitted)
    return refused.value.errors


APPROVAL = declared("approval")
COLORS = declared("single_choice", choices=["red", {"value": 2, "label": "Two"}, {"value": {"hex": "00f"}}])
TOPPINGS = declared("multi_choice", choices=["ham", "olives", "basil"])
TEXT = declared("free_text")
ANY_OBJECT = declared("form")
PERSON = declared("form", fields=[
    {"name": "name", "type": "string", "label": "Full name", "description": "as on the passport"},
    {"name": "bio", "type": "text", "required": False},
    {"name": "age", "type": "integer", "required": False},
    {"name": "score", "type": "number"},
    {"name": "adult", "type": "boolean"},
    {"name": "plan", "type": "string", "choices": ["free", {"value": "pro", "label": "Pro plan"}]},
    {"name": "born", "type": "string", "format": "date", "required": False},
    {"name": "tags", "type": "list", "required": False},
    {"name": "extra", "type": "dict", "required": False},
    {"name": "note", "required": False},
])
GOOD_PERSON = {"field.name": ["Ada"], "field.score": ["4.5"], "field.plan": ["1"]}


def test_each_type_gets_its_controls() -> None:
    def shape(pending: PendingInput) -> list[tuple[str, str, str, bool]]:
        return [(c.name, c.widget, c.reads, c.required) for c in build_form(pending).controls]

    assert shape(APPROVAL) == [("decision", "decision", "decision", True)]
    assert [o.key for o in build_form(APPROVAL).controls[0].options] == ["approved", "rejected"]
    assert shape(COLORS) == [("choice", "radios", "choice", True)]
    assert [(o.key, o.label) for o in build_form(COLORS).controls[0].options] == [
        ("0", "red"), ("1", "Two"), ("2", '{"hex": "00f"}')]
    assert shape(TOPPINGS) == [("choice", "checkboxes", "choices", False)]
    assert shape(TEXT) == [("text", "textarea", "free_text", False)]
    assert shape(ANY_OBJECT) == [("json", "textarea", "object", True)]
    assert shape(declared("form", fields=[])) == shape(ANY_OBJECT)
    assert shape(declared("a_type_from_a_newer_engine")) == [("json", "textarea", "json", True)]
    assert shape(PERSON) == [
        ("field.name", "text", "text", True), ("field.bio", "textarea", "text", False),
        ("field.age", "number", "integer", False), ("field.score", "number", "number", True),
        ("field.adult", "checkbox", "boolean", False), ("field.plan", "select", "choice", True),
        ("field.born", "date", "date", False), ("field.tags", "textarea", "lines", False),
        ("field.extra", "textarea", "object", False), ("field.note", "textarea", "json_or_text", False)]
    name, _, age, score, *_ = build_form(PERSON).controls
    assert (name.label, name.hint) == ("Full name", "as on the passport")
    assert (age.step, score.step) == ("1", "any")


@pytest.mark.parametrize(("pending", "submitted", "data"), [
    (APPROVAL, {"decision": ["approved"]}, "approved"),
    (APPROVAL, {"decision": ["rejected"]}, "rejected"),
    (COLORS, {"choice": ["1"]}, 2),
    (COLORS, {"choice": ["2"]}, {"hex": "00f"}),
    (TOPPINGS, {"choice": ["0", "2"]}, ["ham", "basil"]),
    (TOPPINGS, {"choice": ["2", "2"]}, ["basil"]),
    (TOPPINGS, {}, []),
    (TEXT, {"text": ["two\r\nlines"]}, "two\nlines"),
    (TEXT, {"text": [""]}, ""),
    (ANY_OBJECT, {"json": ['{"a": [1, 2]}']}, {"a": [1, 2]}),
    (PERSON, GOOD_PERSON, {"name": "Ada", "score": 4.5, "adult": False, "plan": "pro"}),
    (PERSON, {**GOOD_PERSON, "field.score": ["-3"], "field.age": [" 41 "], "field.adult": ["true"]},
     {"name": "Ada", "score": -3, "age": 41, "adult": True, "plan": "pro"}),
    (PERSON, {**GOOD_PERSON, "field.bio": ["a\r\nb"], "field.born": ["2026-02-28"], "field.tags": ["x\r\n\r\n y \r\n"],
              "field.extra": ['{"k": null}'], "field.note": ["plain words"]},
     {"name": "Ada", "score": 4.5, "adult": False, "plan": "pro", "bio": "a\nb", "born": "2026-02-28",
      "tags": ["x", "y"], "extra": {"k": None}, "note": "plain words"}),
    (PERSON, {**GOOD_PERSON, "field.note": ["[1, true]"], "csrf_token": ["ignored"]},
     {"name": "Ada", "score": 4.5, "adult": False, "plan": "pro", "note": [1, True]}),
])
def test_a_submitted_form_becomes_the_data_the_engine_accepts(pending: PendingInput, submitted: dict[str, list[str]],
                                                              data: Any) -> None:
    assert accepted(pending, submitted) == data


@pytest.mark.parametrize(("pending", "submitted", "expected"), [
    (APPROVAL, {}, {"decision": "required"}),
    (APPROVAL, {"decision": ["maybe"]}, {"decision": "choose Approve or Reject"}),
    (COLORS, {}, {"choice": "required"}),
    (COLORS, {"choice": ["3"]}, {"choice": "choose one of the options shown"}),
    (COLORS, {"choice": ["red"]}, {"choice": "choose one of the options shown"}),
    (TOPPINGS, {"choice": ["0", "-1"]}, {"choice": "choose one of the options shown"}),
    (ANY_OBJECT, {"json": ["[1]"]}, {"json": 'must be a JSON object, like {"key": "value"}'}),
    (ANY_OBJECT, {"json": ["{oops"]}, {"json": "not valid JSON"}),
    (ANY_OBJECT, {"json": ["  "]}, {"json": "required"}),
    (PERSON, {}, {"field.name": "required", "field.score": "required", "field.plan": "required"}),
    (PERSON, {**GOOD_PERSON, "field.name": ["   "]}, {"field.name": "required"}),
    (PERSON, {**GOOD_PERSON, "field.age": ["4.5"]}, {"field.age": "'4.5' is not a whole number"}),
    (PERSON, {**GOOD_PERSON, "field.score": ["four"]}, {"field.score": "'four' is not a number"}),
    (PERSON, {**GOOD_PERSON, "field.score": ["inf"]}, {"field.score": "'inf' is not a finite number"}),
    (PERSON, {**GOOD_PERSON, "field.plan": ["2"]}, {"field.plan": "choose one of the options shown"}),
    (PERSON, {**GOOD_PERSON, "field.born": ["31/12/2026"]}, {"field.born": "'31/12/2026' is not a date like 2026-12-31"}),
    (PERSON, {**GOOD_PERSON, "field.extra": ['"text"']}, {"field.extra": 'must be a JSON object, like {"key": "value"}'}),
    (PERSON, {**GOOD_PERSON, "field.extra": ["NaN"]}, {"field.extra": "not valid JSON"}),
])
def test_a_form_that_does_not_answer_its_declaration_is_refused_field_by_field(
        pending: PendingInput, submitted: dict[str, list[str]], expected: dict[str, str]) -> None:
    assert errors(pending, submitted) == expected


def test_a_refused_form_is_shown_again_with_what_was_submitted_and_its_errors() -> None:
    submitted = {"field.name": [""], "field.age": ["4.5"], "field.adult": ["true"], "field.plan": ["1"]}
    form = build_form(PERSON, submitted, {"field.age": "'4.5' is not a whole number", "": "refused by the engine"})
    controls = {c.name: c for c in form.controls}
    assert form.error == "refused by the engine"
    assert (controls["field.age"].value, controls["field.age"].error) == ("4.5", "'4.5' is not a whole number")
    assert (controls["field.name"].value, controls["field.name"].error) == ("", "")
    assert controls["field.adult"].value == "true"
    assert [o.selected for o in controls["field.plan"].options] == [False, True]
    again = build_form(TOPPINGS, {"choice": ["0", "2"]})
    assert [o.selected for o in again.controls[0].options] == [True, False, True]
