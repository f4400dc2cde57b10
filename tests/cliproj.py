"""The Celery project the CLI tests drive: ``celery -A tests.cliproj durable ...``.

Built from the environment the test passes: CLI_BROKER, CLI_DB, CLI_PREFIX, CLI_QUEUE; with
CLI_SECOND_PREFIX a second Durable instance shares the app; with CLI_NO_DURABLE none is built.
Workflows: greet (two steps that log and print), broken (fails), order (waits for a manager's
approval, then for a "shipped" event), family (calls greet twice as child workflows).
"""

from __future__ import annotations

import logging
import os

from celery import Celery

from durable_celery import Durable, Workflow
from durable_celery.orchestration import call_workflow
from durable_celery.wait import wait_for_approval, wait_for_event

log = logging.getLogger("cliproj")

app = Celery("cliproj", broker=os.environ["CLI_BROKER"])
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
                worker_enable_remote_control=False,
                task_default_queue=f"{os.environ['CLI_QUEUE']}-default")

greet = Workflow("greet")


@greet.step
def hello(ctx):
    log.info("saying hello to %s", ctx["name"])
    return {**ctx, "greeting": f"hello {ctx['name']}"}


@greet.step
def shout(ctx):
    print(ctx["greeting"].upper())
    return {**ctx, "shouted": True}


broken = Workflow("broken")


@broken.step
def explode(ctx):
    raise RuntimeError("boom")


order = Workflow("order")


@order.step
def fulfil(ctx):
    decision = wait_for_approval("manager", prompt=f"ship order {ctx['order']}?")
    return {**ctx, "decision": decision, "shipment": wait_for_event("shipped")}


family = Workflow("family")


@family.step
def greet_twice(ctx):
    first = call_workflow(greet, {"name": ctx["name"]}, ref="first")
    second = call_workflow(greet, {"name": f"{ctx['name']} junior"}, ref="second")
    return {"greetings": [first["greeting"], second["greeting"]]}


if not os.environ.get("CLI_NO_DURABLE"):
    durable = Durable(app, database_url=os.environ["CLI_DB"], workflows=[greet, broken, order, family],
                      prefix=os.environ["CLI_PREFIX"], queue=os.environ["CLI_QUEUE"], auto_migrate=False,
                      queues={f"{os.environ['CLI_QUEUE']}-ai": {"concurrency": 2, "rate": "100/m",
                                                                "per_key": {"key": "tenant", "concurrency": 1}}})
if os.environ.get("CLI_SECOND_PREFIX"):
    other = Durable(app, database_url=os.environ["CLI_DB"], workflows=[greet],
                    prefix=os.environ["CLI_SECOND_PREFIX"], queue=os.environ["CLI_QUEUE"], auto_migrate=False)
