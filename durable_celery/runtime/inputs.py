"""Human input: the declared form of a wait_for_input, and validation of what people provide.

Types: ``approval`` ("approved"/"rejected", or True/False), ``single_choice`` (one of
``choices``), ``multi_choice`` (a list of them), ``free_text`` (a string), ``form`` (a dict
checked against ``fields``: ``[{"name": ..., "type": "string|number|integer|boolean|list|dict|any",
"required": True}]``; unknown keys are refused).
"""

from __future__ import annotations

from typing import Any

from durable_celery.errors import InvalidInput

INPUT_TYPES = ("approval", "form", "single_choice", "multi_choice", "free_text")
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "text": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
    "list": (list,), "dict": (dict,), "any": (object,),
}


def check_declaration(input_type: str, fields: Any, choices: Any) -> None:
    """Validate a wait_for_input declaration (raises InvalidInput)."""
    if input_type not in INPUT_TYPES:
        raise InvalidInput(f"input type must be one of {', '.join(INPUT_TYPES)}, got {input_type!r}")
    if input_type in ("single_choice", "multi_choice"):
        if not isinstance(choices, (list, tuple)) or not choices:
            raise InvalidInput(f"a {input_type} input needs a non-empty list of choices")
    if fields is not None:
        if not isinstance(fields, (list, tuple)):
            raise InvalidInput("fields must be a list of {'name': ..., 'type': ..., 'required': ...}")
        for spec in fields:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise InvalidInput(f"each field needs a string 'name', got {spec!r}")
            if spec.get("type", "any") not in _FIELD_TYPES:
                raise InvalidInput(f"field {spec['name']!r}: type must be one of {', '.join(_FIELD_TYPES)}")


def _choice_values(choices: list[Any]) -> list[Any]:
    return [c["value"] if isinstance(c, dict) and "value" in c else c for c in choices]


def validate_input(declared: dict[str, Any], data: Any) -> Any:
    """Check ``data`` against a declared input; returns it normalised or raises InvalidInput."""
    input_type = declared.get("type") or "form"
    if input_type == "approval":
        normal = {True: "approved", False: "rejected", "approved": "approved", "rejected": "rejected"}
        if not isinstance(data, (bool, str)) or data not in normal:
            raise InvalidInput(f"an approval takes 'approved' or 'rejected' (or True/False), got {data!r}")
        return normal[data]
    if input_type == "free_text":
        if not isinstance(data, str):
            raise InvalidInput(f"a free_text input takes a string, got {type(data).__name__}")
        return data
    if input_type in ("single_choice", "multi_choice"):
        values = _choice_values(list(declared.get("choices") or []))
        picked = data if input_type == "multi_choice" else [data]
        if input_type == "multi_choice" and not isinstance(data, list):
            raise InvalidInput(f"a multi_choice input takes a list of choices, got {data!r}")
        bad = [p for p in picked if p not in values]
        if bad:
            raise InvalidInput(f"{bad[0]!r} is not one of the choices {values}")
        return data
    return _validate_form(declared.get("fields"), data)


def _validate_form(fields: Any, data: Any) -> Any:
    if not isinstance(data, dict):
        raise InvalidInput(f"a form input takes a dict, got {type(data).__name__}")
    if not fields:
        return data
    known = {f["name"]: f for f in fields}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InvalidInput(f"unknown form field(s): {', '.join(unknown)}")
    for name, spec in known.items():
        if name not in data:
            if spec.get("required", True):
                raise InvalidInput(f"form field {name!r} is required")
            continue
        types = _FIELD_TYPES[spec.get("type", "any")]
        value = data[name]
        if isinstance(value, bool) and bool not in types and object not in types:
            raise InvalidInput(f"form field {name!r} must be {spec.get('type')}, got a boolean")
        if not isinstance(value, types):
            raise InvalidInput(f"form field {name!r} must be {spec.get('type')}, got {type(value).__name__}")
    return data
