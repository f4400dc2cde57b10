"""The Celery app and its Durable engine, configured from the environment.

``celery -A proj ...`` finds ``app`` here; ``celery -A proj durable ...`` finds ``durable``.
"""

from __future__ import annotations

import os

from celery import Celery

from durable_celery import Durable

BROKER_URL = os.environ["BROKER_URL"]        # redis://redis:6379/0 or amqp://guest:guest@rabbitmq:5672//

app = Celery("proj", broker=BROKER_URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,            # a worker holds one message at a time: priorities apply
)
if BROKER_URL.startswith(("redis://", "rediss://")):
    # kombu's Redis transport rounds priorities to 4 levels unless told otherwise.
    app.conf.broker_transport_options = {"priority_steps": list(range(10))}

durable = Durable(
    app,
    database_url=os.environ["DATABASE_URL"],  # postgresql+psycopg://durable:durable@postgres:5432/durable
    workflows=["proj.workflows"],
    auto_migrate=False,                       # the compose `migrate` service migrates before workers start
)
