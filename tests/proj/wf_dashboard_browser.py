"""Workflows for the dashboard's browser tests (tests/test_dashboard_browser*.py): slow enough to
be watched in a page, waiting for a person, or failing."""

from __future__ import annotations

import time

from durable_celery import Workflow, wait

# Four steps of ctx["pause"] seconds each (0.5 by default): long enough to see it running.
steps = Workflow("dash_browser_steps")


def _pause(ctx: dict) -> None:
    time.sleep(ctx.get("pause", 0.5))


@steps.step
def fetch_order(ctx):
    _pause(ctx)
    return {**ctx, "order": ctx.get("order", "A-1")}


@steps.step
def reserve_stock(ctx):
    _pause(ctx)
    return {**ctx, "reserved": True}


@steps.step
def charge_card(ctx):
    _pause(ctx)
    return {**ctx, "charged": True}


@steps.step
def send_receipt(ctx):
    _pause(ctx)
    return {**ctx, "receipt": f"receipt for {ctx['order']}"}


# Fails on its first step, every time.
fails = Workflow("dash_browser_fails")


@fails.step
def check_address(ctx):
    raise ValueError(f"no such street: {ctx.get('street', 'Nowhere Lane')}")


# Waits for a manager's approval, then records the decision.
approval = Workflow("dash_browser_approval")


@approval.step
def prepare_refund(ctx):
    return {**ctx, "amount": ctx.get("amount", 120)}


@approval.step
def ask_manager(ctx):
    decision = wait.wait_for_approval("manager_approval", prompt=f"Refund {ctx['amount']} EUR to {ctx['customer']}?",
                                      metadata={"customer": ctx["customer"], "amount": ctx["amount"]})
    return {**ctx, "decision": decision}


@approval.step
def pay_refund(ctx):
    return {**ctx, "paid": ctx["decision"] == "approved"}


# Waits for an event that only a person sends.
release = Workflow("dash_browser_release")


@release.step
def hold(ctx):
    return {**ctx, "released_with": wait.wait_for_event("release")}
