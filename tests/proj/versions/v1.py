"""The first deploy: three workflows that wait for an event "go" in their second step."""

from durable_celery import Workflow, wait
from tests.proj.effects import record

renamed = Workflow("ver_renamed", version=1)
inserted = Workflow("ver_inserted", version=1)
retried = Workflow("ver_retried", version=1)


def reserve(ctx):
    record()
    return {**ctx, "path": [*ctx.get("path", []), "reserve@1"]}


def wait_go(ctx):
    go = wait.wait_for_event("go")
    record()  # past the wait: once per execution, however often the body replays
    return {**ctx, "go": go, "path": [*ctx["path"], "wait_go@1"]}


def ship(ctx):
    record()
    return {**ctx, "path": [*ctx["path"], "ship@1"]}


for workflow in (renamed, inserted, retried):
    workflow.step(name="reserve")(reserve)
    workflow.step(name="wait_go")(wait_go)
    workflow.step(name="ship")(ship)


# a foreach whose iterations sleep: its iteration rows carry the version too
fanout = Workflow("ver_fanout", version=1)


@fanout.step(name="prepare")
def prepare(ctx):
    return {**ctx, "path": ["prepare@1"]}


with fanout.foreach("each", items=lambda ctx: ctx["items"]):
    @fanout.step(name="nap")
    def nap(ctx, item):
        wait.sleep(ctx["nap"])
        record(str(item))
        return {**ctx, "path": [*ctx["path"], f"nap{item}@1"]}


@fanout.step(name="finish")
def finish(ctx):
    return {**ctx, "path": [*ctx["path"], "finish@1"]}
