"""The engine's tasks take JSON messages only, even on an app that accepts pickle for its own.

Celery has one ``accept_content`` per worker: a worker of an app that accepts pickle unpickles
any message it gets, and unpickling runs code. Celery has no per-task ``accept``, but a task
chooses how its messages are handled through ``Task.Strategy`` (the handler the worker's
consumer calls with each message of that task, before anything decodes the body: with task
protocol 2 the consumer reads only the headers, and the default strategy is the first to touch
``message.payload``). :func:`check_json`, called first by the engine tasks' strategy (``runtime/poison.py``), refuses a message
whose content type is not JSON by raising kombu's ``ContentDisallowed``, which the consumer
handles as for any disallowed content: it logs the error and rejects the message, unread, and
goes on. The engine also publishes its own messages as JSON, whatever ``task_serializer`` says,
so its tasks get nothing else from it.
"""

from __future__ import annotations

from typing import Any

from kombu.exceptions import ContentDisallowed

#: the content type of the engine's messages
JSON = "application/json"


def check_json(task_name: str, message: Any) -> None:
    """Refuse (kombu's ``ContentDisallowed``) a message to the engine's task ``task_name``
    whose content type is not JSON, before anything decodes its body: the consumer then logs
    it and rejects it, unread. Called first by the engine tasks' strategy (``poison.Strategy``)."""
    if message.content_type != JSON:
        raise ContentDisallowed(f"durable-celery: {task_name} takes JSON messages only, refused one of content "
                                f"type {message.content_type!r} (its body was not read)")
