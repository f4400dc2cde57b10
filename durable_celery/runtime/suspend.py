"""Control-flow signals raised inside a step. They derive from BaseException so a user's
``except Exception`` cannot swallow them."""

from __future__ import annotations


class Suspend(BaseException):
    """The step reached a wait that is not satisfied yet: stop here, checkpoint the execution
    as waiting, and re-run the step from its top when the wait can be satisfied."""


class LeaseLost(BaseException):
    """This worker no longer holds the execution (its lease expired and another took over, or
    it was cancelled): abandon the step without recording anything."""
