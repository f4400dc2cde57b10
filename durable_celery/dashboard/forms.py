"""Human-input forms: the controls the inbox shows for a pending input's declaration, and the
reading of a submitted form back into the ``data`` that ``provide_input`` takes.

Pure: a declaration (``type``, ``fields``, ``choices``, as ``list_pending_inputs`` returns it)
and the submitted fields in, controls or data out. Reading checks what the declaration says
(required fields, numbers, choices) so that a bad answer is shown next to its form; the engine
checks the data again when it is provided.

* ``approval``: two buttons named ``decision``, ``approved`` and ``rejected``: that word.
* ``single_choice``: radios named ``choice`` whose value is the choice's position: its value.
* ``multi_choice``: checkboxes named ``choice``: the list of the values checked.
* ``free_text``: a textarea named ``text``: the text (an empty one too).
* ``form``: one control ``field.<name>`` per declared field: a dict of the fields given; without
  fields, a textarea ``json`` that takes a JSON object.

A form field is shown by its ``type``: ``string`` a text input (a date input with
``"format": "date"``), ``text`` a textarea, ``number``/``integer`` a number input, ``boolean``
a checkbox, ``list`` a textarea of one item per line, ``dict`` a JSON textarea, ``any`` a
textarea read as JSON or else as text. A field with ``choices`` is a select. ``label`` and
``description`` are shown when the field has them; ``required`` (default True) is marked.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Protocol

#: the names of the submitted fields (a form field's is ``FIELD_PREFIX + its name``)
DECISION, CHOICE, TEXT, JSON_FIELD, FIELD_PREFIX = "decision", "choice", "text", "json", "field."
DECISIONS = ("approved", "rejected")
_INTEGER = re.compile(r"[+-]?[0-9]+")

#: what a browser submits: each field name with its values, in order (checkboxes repeat a name)
Submitted = Mapping[str, Sequence[str]]


class Declaration(Protocol):
    """What ``PendingInput`` declares about its form."""

    @property
    def type(self) -> str: ...

    @property
    def fields(self) -> list[dict[str, Any]] | None: ...

    @property
    def choices(self) -> list[Any] | None: ...


@dataclass(frozen=True)
class Option:
    """One choice of a radio group, checkbox group or select: ``key`` (its position) is what
    the browser submits, ``value`` what the answer holds."""

    key: str
    label: str
    value: Any = None
    selected: bool = False


@dataclass(frozen=True)
class Control:
    """One control of a form: ``widget`` says how it is shown (``decision``, ``radios``,
    ``checkboxes``, ``text``, ``date``, ``textarea``, ``number``, ``checkbox``, ``select``),
    ``reads`` how its submitted text becomes data."""

    name: str
    label: str
    widget: str
    reads: str
    required: bool = False
    options: tuple[Option, ...] = ()
    #: the number input's step: "1" for an integer, "any" for a number
    step: str | None = None
    hint: str = ""
    #: what was submitted, shown again after an error (a checkbox: its value when checked)
    value: str = ""
    error: str = ""


@dataclass(frozen=True)
class InputForm:
    """The controls of one pending input, and an error about the whole answer."""

    type: str
    controls: tuple[Control, ...]
    error: str = ""


class FormInvalid(Exception):
    """A submitted form that does not answer its declaration: ``errors`` by control name
    (``""``: about the whole answer)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def build_form(declared: Declaration, submitted: Submitted | None = None,
               errors: Mapping[str, str] | None = None) -> InputForm:
    """The controls for ``declared``, filled with what was ``submitted`` and its ``errors``."""
    errors = errors or {}
    controls = tuple(_refill(control, submitted, errors.get(control.name, ""))
                     for control in _controls(declared))
    return InputForm(declared.type, controls, errors.get("", ""))


def read_form(declared: Declaration, submitted: Submitted) -> Any:
    """The data a submitted form answers ``declared`` with; raises ``FormInvalid``."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {}
    controls = _controls(declared)
    for control in controls:
        try:
            data[control.name] = _read(control, [v for v in submitted.get(control.name, ()) if isinstance(v, str)])
        except _Missing:
            if control.required:
                errors[control.name] = "required"
        except ValueError as error:
            errors[control.name] = str(error)
    if errors:
        raise FormInvalid(errors)
    if not _is_field(controls[0].name):
        return data[controls[0].name]
    return {control.name[len(FIELD_PREFIX):]: data[control.name] for control in controls if control.name in data}


# --- the controls of a declaration ---------------------------------------------------------

def _controls(declared: Declaration) -> tuple[Control, ...]:
    kind, choices = declared.type, list(declared.choices or [])
    if kind == "approval":
        return (Control(DECISION, "Decision", "decision", "decision", required=True,
                        options=(Option("approved", "Approve", "approved"), Option("rejected", "Reject", "rejected"))),)
    if kind == "single_choice":
        return (Control(CHOICE, "Choose one", "radios", "choice", required=True, options=_options(choices)),)
    if kind == "multi_choice":
        return (Control(CHOICE, "Choose any", "checkboxes", "choices", options=_options(choices)),)
    if kind == "free_text":
        return (Control(TEXT, "Answer", "textarea", "free_text"),)
    fields = [spec for spec in declared.fields or [] if isinstance(spec, dict) and isinstance(spec.get("name"), str)]
    if kind == "form" and fields:
        return tuple(_field_control(spec) for spec in fields)
    # a form without fields takes any object; a type this dashboard does not know, any JSON
    reads, hint = ("object", "a JSON object") if kind == "form" else ("json", "JSON")
    return (Control(JSON_FIELD, "Answer", "textarea", reads, required=True, hint=hint),)


#: a field's type: how it is shown, how it is read, the hint shown beside it
_FIELD_TYPES = {
    "string": ("text", "text", ""), "text": ("textarea", "text", ""), "number": ("number", "number", ""),
    "integer": ("number", "integer", ""), "boolean": ("checkbox", "boolean", ""),
    "list": ("textarea", "lines", "one item per line"), "dict": ("textarea", "object", "a JSON object"),
    "any": ("textarea", "json_or_text", "JSON, or else plain text"),
}


def _field_control(spec: dict[str, Any]) -> Control:
    widget, reads, hint = _FIELD_TYPES.get(spec.get("type", "any"), _FIELD_TYPES["any"])
    label = spec["label"] if isinstance(spec.get("label"), str) and spec["label"] else spec["name"]
    if isinstance(spec.get("description"), str) and spec["description"]:
        hint = spec["description"]
    control = Control(FIELD_PREFIX + spec["name"], label, widget, reads, hint=hint,
                      # a checkbox always answers (checked or not): it is never missing
                      required=bool(spec.get("required", True)) and reads != "boolean",
                      step={"number": "any", "integer": "1"}.get(reads))
    choices = spec.get("choices")
    if isinstance(choices, list) and choices:
        return replace(control, widget="select", reads="choice", options=_options(choices), step=None)
    if reads == "text" and widget == "text" and spec.get("format") == "date":
        return replace(control, widget="date", reads="date")
    return control


def _options(choices: list[Any]) -> tuple[Option, ...]:
    return tuple(Option(str(index), _choice_label(choice), _choice_value(choice))
                 for index, choice in enumerate(choices))


def _choice_value(choice: Any) -> Any:
    return choice["value"] if isinstance(choice, dict) and "value" in choice else choice


def _choice_label(choice: Any) -> str:
    if isinstance(choice, dict) and "value" in choice:
        label = choice.get("label")
        return str(label) if label not in (None, "") else _choice_label(choice["value"])
    return choice if isinstance(choice, str) else json.dumps(choice, default=str, ensure_ascii=False)


def _is_field(name: str) -> bool:
    return name.startswith(FIELD_PREFIX)


def _refill(control: Control, submitted: Submitted | None, error: str) -> Control:
    if submitted is None:
        return replace(control, error=error)
    values = list(submitted.get(control.name, ()))
    if control.options:
        options = tuple(replace(option, selected=option.key in values) for option in control.options)
        return replace(control, options=options, error=error)
    return replace(control, value=values[0] if values else "", error=error)


# --- reading a submitted control -----------------------------------------------------------

class _Missing(Exception):
    """Nothing was submitted for a control (an empty text counts as nothing)."""


def _read(control: Control, values: list[str]) -> Any:
    if control.reads == "choices":
        return [_choice(control, key) for key in dict.fromkeys(values)]
    if control.reads == "boolean":
        return bool(values) and values[0] not in ("", "off", "false")
    text = values[0].replace("\r\n", "\n") if values else ""
    if control.reads == "free_text":
        return text  # an empty answer is an answer
    if not text.strip():
        raise _Missing
    if control.reads == "decision":
        if text not in DECISIONS:
            raise ValueError("choose Approve or Reject")
        return text
    if control.reads == "choice":
        return _choice(control, text)
    if control.reads in ("number", "integer"):
        return _number(text.strip(), whole=control.reads == "integer")
    if control.reads == "date":
        return _date(text.strip())
    if control.reads == "lines":
        return [line.strip() for line in text.split("\n") if line.strip()]
    if control.reads in ("json", "object", "json_or_text"):
        return _json(text, control.reads)
    return text


def _choice(control: Control, key: str) -> Any:
    if not _INTEGER.fullmatch(key) or not 0 <= int(key) < len(control.options):
        raise ValueError("choose one of the options shown")
    return control.options[int(key)].value


def _number(text: str, *, whole: bool) -> int | float:
    if _INTEGER.fullmatch(text):
        return int(text)
    if whole:
        raise ValueError(f"{text!r} is not a whole number")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2026-12-31") from None


def _json(text: str, reads: str) -> Any:
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError:
        if reads == "json_or_text":
            return text
        raise ValueError("not valid JSON") from None
    if reads == "object" and not isinstance(value, dict):
        raise ValueError('must be a JSON object, like {"key": "value"}')
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
