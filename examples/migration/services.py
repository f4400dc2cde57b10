"""Plain functions (no Celery) that the workflows call from stage 2 on: what the report pipeline
gained during the move. The chat API rate-limits the first pin of a message, so the step that
pins runs twice; the archive refuses a read-only bucket, so a run can be made to fail late."""

from __future__ import annotations

import json
from typing import Any

from examples.migration.project import key, store

ARCHIVE = "s3://reports-archive"


def pin(message: dict[str, Any]) -> dict[str, Any]:
    """Pin a posted message (the chat API answers 429 to the first try for each message)."""
    if store().incr(key("pins", message["message_id"])) == 1:
        raise ConnectionError("chat API: 429 Too Many Requests")
    return {"pinned": message["message_id"]}


def archive(report: dict[str, Any], location: str) -> str:
    """Store the report in the archive bucket ``location``; a frozen bucket refuses writes."""
    if "frozen" in location:
        raise PermissionError(f"{location} is read-only")
    store().set(key("archive", report["day"]), json.dumps(report))
    return f"{location}/{report['day']}.json"
