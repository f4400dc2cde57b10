"""A plugin loaded from its file (its folder's name is not a Python identifier, so no import
by name reaches it): ``workflows=`` gets the module object from a callable."""

from __future__ import annotations

from durable_celery import Workflow

stamp = Workflow("stamp")


@stamp.step
def put_stamp(ctx):
    return {**ctx, "stamped": True}
