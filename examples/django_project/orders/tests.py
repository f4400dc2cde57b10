"""The shop, specified with Django's test tooling against the real PostgreSQL and Redis:

    python manage.py test orders

(tests/test_django.py runs it with a database, schema and queue of its own: SHOP_TEST_DB_NAME
equal to SHOP_DB_NAME, so that Django's test database is the one the engine and the worker use.)
"""

from __future__ import annotations

import os
import time
import uuid
from io import StringIO
from pathlib import Path
from typing import Any

from celery import Celery
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client, SimpleTestCase, TransactionTestCase
from shop.celery import app, durable
from sqlalchemy import text

from durable_celery import ExecutionNotFound, InvalidInput
from durable_celery.contrib.django import DjangoDurable
from durable_celery.testing.workers import CeleryProcess, worker
from orders.models import Order
from orders.workflows import fulfil_order

PROJECT = Path(__file__).resolve().parent.parent


def tearDownModule() -> None:
    # Django drops its test database next: the engine's pooled connections must be gone by then.
    durable.db.dispose()


def queued() -> int:
    """Messages waiting on the engine's queue (no worker consumes them in these tests)."""
    with app.connection_for_write() as conn:
        return int(conn.default_channel.queue_declare(queue=durable.settings.queue, durable=True,
                                                      auto_delete=False).message_count)


def purge() -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(durable.settings.queue)


def execution_rows_on_djangos_connection(execution_id: str) -> int:
    """What Django's own connection sees of an execution (its transaction's uncommitted rows too)."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{durable.settings.prefix}".workflow_executions WHERE id = %s',
                       [execution_id])
        return int(cursor.fetchone()[0])


class SettingsTest(SimpleTestCase):
    def test_the_engine_is_configured_from_the_durable_settings_and_djangos_database(self) -> None:
        # Given settings.py's DURABLE_* settings and no DURABLE_DATABASE_URL
        # Then the engine takes them, and keeps its tables in Django's default database
        self.assertEqual(durable.settings.prefix, os.environ.get("SHOP_DURABLE_PREFIX", "shop_durable"))
        self.assertEqual(durable.settings.queue, os.environ.get("SHOP_DURABLE_QUEUE", "shop-durable"))
        self.assertEqual(durable.settings.tick_interval, 0.5)
        self.assertTrue(durable.shares_database)
        self.assertEqual(durable.db.url.rsplit("/", 1)[1], connection.settings_dict["NAME"])

    def test_keyword_options_win_over_the_settings(self) -> None:
        other = DjangoDurable(None, prefix="shop_other", autodiscover=False)
        self.assertEqual(other.settings.prefix, "shop_other")
        self.assertEqual(other.settings.queue, durable.settings.queue)

    def test_a_misspelt_durable_setting_is_an_error(self) -> None:
        with self.settings(DURABLE_TICK_INTERVALL=1), self.assertRaisesMessage(InvalidInput, "DURABLE_TICK_INTERVALL"):
            DjangoDurable(None)

    def test_a_database_url_setting_puts_the_engine_elsewhere(self) -> None:
        with self.settings(DURABLE_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/elsewhere"):
            other = DjangoDurable(None, prefix="shop_other")
        self.assertFalse(other.shares_database)


class MigrateCommandTest(SimpleTestCase):
    def test_durable_migrate_creates_the_engine_schema_and_check_then_passes(self) -> None:
        # Given an instance of the project's app whose schema does not exist yet
        prefix = f"{durable.settings.prefix}_cmd"
        DjangoDurable(app, prefix=prefix, auto_migrate=False)
        out = StringIO()
        try:
            # Then --check fails, durable_migrate creates it, and --check passes
            with self.assertRaisesMessage(CommandError, "is behind: run `python manage.py durable_migrate`"):
                call_command("durable_migrate", "--check", "--instance", prefix, stdout=out)
            call_command("durable_migrate", "--instance", prefix, stdout=out)
            call_command("durable_migrate", "--check", "--instance", prefix, stdout=out)
        finally:
            with durable.db.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE'))
        self.assertIn(f"migrated schema '{prefix}' from nothing to", out.getvalue())
        self.assertTrue(out.getvalue().rstrip().endswith("up to date"), out.getvalue())

    def test_with_several_instances_on_the_app_it_asks_which(self) -> None:
        DjangoDurable(app, prefix=f"{durable.settings.prefix}_two")
        with self.assertRaisesMessage(CommandError, "choose one with `--instance PREFIX ...`"):
            call_command("durable_migrate", "--check", stdout=StringIO())


class DiscoveryTest(SimpleTestCase):
    def test_workflows_are_found_in_the_installed_apps_workflows_modules(self) -> None:
        # Given orders/workflows.py, in an installed app, and nothing listed in workflows=
        # Then the engine knows its workflow, by name
        self.assertIn("fulfil_order", durable.registry.names())
        self.assertEqual(durable.registry.machine_for("fulfil_order").workflow, fulfil_order.name)


class StartOnCommitTest(TransactionTestCase):
    """No worker runs here: what a start publishes stays on the queue, where it is counted."""

    def setUp(self) -> None:
        purge()

    def test_a_start_inside_atomic_commits_with_the_order_and_is_published_after_the_commit(self) -> None:
        # Given an atomic block that creates an order and starts its workflow
        # (on the engine's database, through psycopg 3 on SQLAlchemy 2 or psycopg2)
        self.assertTrue(durable.joins_transaction())
        with transaction.atomic():
            order = Order.objects.create(customer="ada", amount=20)
            execution_id = durable.start_on_commit(fulfil_order, {"order_id": order.pk})
            # Then, before the commit, the execution's row is in Django's transaction only
            self.assertEqual(execution_rows_on_djangos_connection(execution_id), 1)
            with self.assertRaises(ExecutionNotFound):
                durable.get_execution(execution_id)  # the engine's own connection: not committed
            # and nothing is published yet
            self.assertEqual(queued(), 0)
        # When it commits, Then both rows are there and the start is published, once
        self.assertEqual(Order.objects.get(pk=order.pk).customer, "ada")
        self.assertEqual(durable.get_execution(execution_id).status, "pending")
        self.assertEqual(queued(), 1)

    def test_a_rollback_leaves_neither_row_and_publishes_nothing(self) -> None:
        # Given an atomic block that starts the workflow, then fails
        execution_id = ""
        with self.assertRaises(RuntimeError), transaction.atomic():
            order = Order.objects.create(customer="bob", amount=30)
            execution_id = durable.start_on_commit(fulfil_order, {"order_id": order.pk})
            raise RuntimeError("payment refused")
        # Then neither the order nor the execution exists, and nothing was published
        self.assertFalse(Order.objects.exists())
        with self.assertRaises(ExecutionNotFound):
            durable.get_execution(execution_id)
        self.assertEqual(queued(), 0)

    def test_a_start_rolled_back_with_a_savepoint_is_gone_and_the_outer_transaction_commits(self) -> None:
        with transaction.atomic():
            Order.objects.create(customer="cy", amount=5)
            with self.assertRaises(RuntimeError), transaction.atomic():
                dropped = durable.start_on_commit(fulfil_order, {"order_id": 0})
                raise RuntimeError("inner block fails")
            kept = durable.start_on_commit(fulfil_order, {"order_id": 1})
        with self.assertRaises(ExecutionNotFound):
            durable.get_execution(dropped)
        self.assertEqual(durable.get_execution(kept).status, "pending")
        self.assertEqual(queued(), 1)

    def test_many_starts_inside_atomic_commit_or_roll_back_together_with_the_orders(self) -> None:
        # Given orders placed in bulk, each with its execution, in one atomic block
        with transaction.atomic():
            orders = Order.objects.bulk_create([Order(customer=f"c{n}", amount=n + 1) for n in range(3)])
            ids = durable.start_many_on_commit(fulfil_order, [{"order_id": o.pk} for o in orders])
            self.assertEqual(queued(), 0)
        # Then, committed, all of them exist and each was published
        self.assertEqual([durable.get_execution(i).input["order_id"] for i in ids], [o.pk for o in orders])
        self.assertEqual(queued(), 3)
        # and rolled back, none does and nothing more is published
        with self.assertRaises(RuntimeError), transaction.atomic():
            more = durable.start_many_on_commit(fulfil_order, [{"order_id": 9}, {"order_id": 10}])
            raise RuntimeError("bulk import failed")
        for execution_id in more:
            with self.assertRaises(ExecutionNotFound):
                durable.get_execution(execution_id)
        self.assertEqual(queued(), 3)

    def test_outside_atomic_it_is_a_plain_start(self) -> None:
        execution_id = durable.start_on_commit(fulfil_order, {"order_id": 7})
        self.assertEqual(durable.get_execution(execution_id).input, {"order_id": 7})
        self.assertEqual(queued(), 1)

    def test_an_idempotency_key_already_used_starts_nothing_and_returns_the_first_id(self) -> None:
        key = f"order-{uuid.uuid4().hex}"
        with transaction.atomic():
            first = durable.start_on_commit(fulfil_order, {"order_id": 8}, idempotency_key=key)
        with transaction.atomic():
            again = durable.start_on_commit(fulfil_order, {"order_id": 8}, idempotency_key=key)
        self.assertEqual(again, first)
        self.assertEqual(queued(), 1)

    def test_bad_input_is_refused_before_anything_is_written(self) -> None:
        with self.assertRaises(InvalidInput), transaction.atomic():
            durable.start_on_commit(fulfil_order, {"when": object()})
        self.assertEqual(queued(), 0)


class StartOnCommitElsewhereTest(TransactionTestCase):
    """An engine whose tables are in another database than Django's (here the same server under
    another host name, which the engine cannot tell apart): its starts cannot share Django's
    transaction, so they are inserted and published when it commits."""

    elsewhere: DjangoDurable

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        django_db = connection.settings_dict
        url = (f"postgresql://{django_db['USER']}:{django_db['PASSWORD']}@localhost:{django_db['PORT']}/"
               f"{django_db['NAME']}")
        cls.elsewhere = DjangoDurable(None, database_url=url, prefix=f"{durable.settings.prefix}_elsewhere",
                                      queue=f"{durable.settings.queue}-elsewhere", autodiscover=False,
                                      workflows=[fulfil_order])
        # not the current app: manage.py durable_migrate finds the project's instance on that
        cls.elsewhere.init_app(Celery("elsewhere", broker=app.conf.broker_url, set_as_current=False))

    @classmethod
    def tearDownClass(cls) -> None:
        with cls.elsewhere.db.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{cls.elsewhere.settings.prefix}" CASCADE'))
        cls.elsewhere.db.dispose()
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(cls.elsewhere.settings.queue)
        super().tearDownClass()

    def test_the_execution_is_created_only_when_djangos_transaction_commits(self) -> None:
        self.assertFalse(self.elsewhere.shares_database)
        self.assertFalse(self.elsewhere.joins_transaction())
        with transaction.atomic():
            execution_id = self.elsewhere.start_on_commit(fulfil_order, {"order_id": 1})
            with self.assertRaises(ExecutionNotFound):
                self.elsewhere.get_execution(execution_id)
        self.assertEqual(self.elsewhere.get_execution(execution_id).status, "pending")

    def test_many_are_created_on_the_commit_a_key_repeated_among_them_once(self) -> None:
        key = f"bulk-{uuid.uuid4().hex}"
        with transaction.atomic():
            ids = self.elsewhere.start_many_on_commit(fulfil_order, [{"order_id": 3}, {"order_id": 4}, {"order_id": 5}],
                                                      idempotency_keys=[key, None, key])
        self.assertEqual(ids[0], ids[2])
        self.assertEqual([self.elsewhere.get_execution(i).input["order_id"] for i in ids], [3, 4, 3])

    def test_a_rollback_creates_nothing(self) -> None:
        execution_id = ""
        with self.assertRaises(RuntimeError), transaction.atomic():
            execution_id = self.elsewhere.start_on_commit(fulfil_order, {"order_id": 2})
            raise RuntimeError("payment refused")
        with self.assertRaises(ExecutionNotFound):
            self.elsewhere.get_execution(execution_id)


class ShopEndToEndTest(TransactionTestCase):
    """The view, through Django's test client, with a real `celery -A shop worker`."""

    worker: CeleryProcess

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        purge()
        cls.worker = worker("shop", [durable.settings.queue], concurrency=1, cwd=str(PROJECT)).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.worker.stop()
        super().tearDownClass()

    def wait_until_final(self, execution_id: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            execution = durable.get_execution(execution_id, include_steps=True)
            if execution.status in ("completed", "failed"):
                return execution
            if time.monotonic() > deadline:
                self.fail(f"{execution_id} still {execution.status}:\n{self.worker.log()[-3000:]}")
            time.sleep(0.1)

    def test_placing_an_order_runs_its_workflow_on_the_worker(self) -> None:
        # Given the shop's view, When an order is posted
        response = Client().post("/orders/", {"customer": "ada", "amount": "20.00"}, content_type="application/json")
        # Then the order and its execution were committed together
        self.assertEqual(response.status_code, 201, response.content)
        placed = response.json()
        # and the worker runs the workflow, whose steps update the order through the ORM
        execution = self.wait_until_final(placed["execution_id"])
        self.assertEqual(execution.status, "completed", self.worker.log()[-3000:])
        self.assertEqual(execution.context, {"order_id": placed["id"], "shipped": True, "customer": "ada"})
        self.assertEqual([step.step_name for step in execution.steps], ["reserve", "ship"])
        detail = Client().get(f"/orders/{placed['id']}/").json()
        self.assertEqual(detail["status"], "shipped")

    def test_a_refused_order_leaves_no_order_and_no_execution(self) -> None:
        before = {e.id for e in durable.list_executions(workflow="fulfil_order", limit=1000)}
        response = Client().post("/orders/", {"customer": "bob", "amount": "0"}, content_type="application/json")
        self.assertEqual(response.status_code, 400)
        self.assertFalse(Order.objects.filter(customer="bob").exists())
        after = {e.id for e in durable.list_executions(workflow="fulfil_order", limit=1000)}
        self.assertEqual(after, before)
