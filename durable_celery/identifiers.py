"""Checking the ids callers pass in, before anything is read or written."""

from __future__ import annotations

import uuid
from typing import Any

from durable_celery.errors import InvalidInput


def check_execution_id(execution_id: Any) -> None:
    """Raise ``InvalidInput`` unless ``execution_id`` is an execution id (a UUID string)."""
    if not isinstance(execution_id, str):
        raise InvalidInput(f"an execution id is a string, got {type(execution_id).__name__}")
    try:
        uuid.UUID(execution_id)
    except ValueError:
        raise InvalidInput(f"{execution_id!r} is not an execution id (a UUID)") from None


def is_execution_id(value: Any) -> bool:
    """Is ``value`` an execution id (a UUID string)?"""
    try:
        check_execution_id(value)
    except InvalidInput:
        return False
    return True
