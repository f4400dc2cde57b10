"""The engine's tasks take JSON messages only, even on an app that accepts pickle for its own.

Celery has one ``accept_content`` per worker: a worker of an app that accepts pickle unpickles
any message it gets, and unpickling runs code. Celery has no per-task ``accept``, but a task
chooses how its messages are handled through ``Task.Strategy`` (the handler the worker's
consumer calls with each message of that task, before anything decodes the body: with task
protocol 2 the consumer reads only the headers, and the default strategy is the first to touch
``message.payload``). :func:`json_only` wraps Celery's default strategy and refuses a message
whose content type is not JSON by raising kombu's ``ContentDisallowed``, which the consumer
handles as for any disallowed content: it logs the error and rejects the message, unread, and
goes on. The engine also publishes its own messages as JSON, whatever ``task_serializer`` says,
so its tasks get nothing else from it.
"""

from __future__ import annotations

from typing import Any

from celery.worker.strategy import default
from kombu.exceptions import ContentDisallowed

#: the content type of the engine's messages
JSON = "application/json"


def json_only(task: Any, app: Any, consumer: Any, **options: Any) -> Any:
    """Celery's default strategy for ``task``, refusing any message that is not JSON."""
    handle = default(task, app, consumer, **options)

    def task_message_handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kwargs: Any) -> Any:
        if message.content_type != JSON:
            raise ContentDisallowed(f"durable-celery: {task.name} takes JSON messages only, refused one of content "
                                    f"type {message.content_type!r} (its body was not read)")
        return handle(message, body, ack, reject, callbacks, **kwargs)

    return task_message_handler


#: the task options that make an engine task JSON only: its messages are sent as JSON and
#: refused otherwise. A staticmethod: Celery makes the options class attributes, and a plain
#: function there would be bound to the task.
ENGINE_TASK_OPTIONS: dict[str, Any] = {"serializer": "json", "Strategy": staticmethod(json_only)}
