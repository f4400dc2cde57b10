"""The second deploy: the wait renamed in ver_renamed, a step added before the wait in
ver_inserted, the wait's retry policy changed in ver_retried."""

from durable_celery import Retry, Workflow, wait
from tests.proj.effects import record

renamed = Workflow("ver_renamed", version=2)
inserted = Workflow("ver_inserted", version=2)
retried = Workflow("ver_retried", version=2)


def step(label):
    def body(ctx):
        record()
        return {**ctx, "path": [*ctx.get("path", []), label]}
    return body


def waiting(label):
    def body(ctx):
        go = wait.wait_for_event("go")
        record()
        return {**ctx, "go": go, "path": [*ctx["path"], label]}
    return body


renamed.step(name="reserve")(step("reserve@2"))
renamed.step(name="await_go")(waiting("await_go@2"))
renamed.step(name="ship")(step("ship@2"))

inserted.step(name="reserve")(step("reserve@2"))
inserted.step(name="fraud_check")(step("fraud_check@2"))
inserted.step(name="wait_go")(waiting("wait_go@2"))
inserted.step(name="ship")(step("ship@2"))

retried.step(name="reserve")(step("reserve@2"))
retried.step(name="wait_go", retry=Retry(max_attempts=3))(waiting("wait_go@2"))
retried.step(name="ship")(step("ship@2"))


fanout = Workflow("ver_fanout", version=2)
fanout.step(name="prepare")(step("prepare@2"))
with fanout.foreach("each", items=lambda ctx: ctx["items"]):
    fanout.step(name="doze")(lambda ctx, item: {**ctx, "path": [*ctx["path"], f"doze{item}@2"]})
fanout.step(name="finish")(step("finish@2"))
