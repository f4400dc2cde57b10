"""The Django integration (durable_celery.contrib.django) and its example project.

The example's own tests (examples/django_project/orders/tests.py) are Django tests: this module
runs them with Django's test runner, ``manage.py test``, in a process of their own (Django's
settings are process-wide, and other test modules may share this process), on a database,
schema and queue of their own, against the real PostgreSQL and Redis and a real worker. Each
Django test is then one test here. The helpers that need no Django settings are tested in process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from durable_celery import InvalidInput
from durable_celery.contrib.django.config import read_settings, same_database, url_of
from tests.conftest import BROKERS, POSTGRES

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "examples" / "django_project"
POSTGRES_DB = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "app", "PASSWORD": "s3cret",
               "HOST": "db.internal", "PORT": "6432", "OPTIONS": {"sslmode": "require", "server_side_binding": True}}

#: Every test of the example project, as `manage.py test -v 2` names it
DJANGO_TESTS = [
    "test_the_engine_is_configured_from_the_durable_settings_and_djangos_database (orders.tests.SettingsTest",
    "test_keyword_options_win_over_the_settings (orders.tests.SettingsTest",
    "test_a_misspelt_durable_setting_is_an_error (orders.tests.SettingsTest",
    "test_a_database_url_setting_puts_the_engine_elsewhere (orders.tests.SettingsTest",
    "test_durable_migrate_creates_the_engine_schema_and_check_then_passes (orders.tests.MigrateCommandTest",
    "test_with_several_instances_on_the_app_it_asks_which (orders.tests.MigrateCommandTest",
    "test_workflows_are_found_in_the_installed_apps_workflows_modules (orders.tests.DiscoveryTest",
    "test_a_start_inside_atomic_commits_with_the_order_and_is_published_after_the_commit "
    "(orders.tests.StartOnCommitTest",
    "test_a_rollback_leaves_neither_row_and_publishes_nothing (orders.tests.StartOnCommitTest",
    "test_a_start_rolled_back_with_a_savepoint_is_gone_and_the_outer_transaction_commits "
    "(orders.tests.StartOnCommitTest",
    "test_many_starts_inside_atomic_commit_or_roll_back_together_with_the_orders (orders.tests.StartOnCommitTest",
    "test_outside_atomic_it_is_a_plain_start (orders.tests.StartOnCommitTest",
    "test_an_idempotency_key_already_used_starts_nothing_and_returns_the_first_id (orders.tests.StartOnCommitTest",
    "test_bad_input_is_refused_before_anything_is_written (orders.tests.StartOnCommitTest",
    "test_the_execution_is_created_only_when_djangos_transaction_commits (orders.tests.StartOnCommitElsewhereTest",
    "test_many_are_created_on_the_commit_a_key_repeated_among_them_once (orders.tests.StartOnCommitElsewhereTest",
    "test_a_rollback_creates_nothing (orders.tests.StartOnCommitElsewhereTest",
    "test_placing_an_order_runs_its_workflow_on_the_worker (orders.tests.ShopEndToEndTest",
    "test_a_refused_order_leaves_no_order_and_no_execution (orders.tests.ShopEndToEndTest",
]


@pytest.fixture(scope="module")
def django_run() -> Iterator[str]:
    """`manage.py test orders -v 2`, once for the module, on a database of its own that Django's
    test runner creates and drops (its test database is the database the worker is told of)."""
    name = f"shop_{uuid.uuid4().hex[:10]}"
    url = make_url(POSTGRES)
    broker = BROKERS["redis"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PROJECT)]),
           "DJANGO_SETTINGS_MODULE": "shop.settings", "SHOP_DB_NAME": name, "SHOP_TEST_DB_NAME": name,
           "SHOP_DB_HOST": url.host or "127.0.0.1", "SHOP_DB_PORT": str(url.port or 5432),
           "SHOP_DB_USER": url.username or "postgres", "SHOP_DB_PASSWORD": url.password or "",
           "SHOP_BROKER_URL": broker, "SHOP_DURABLE_PREFIX": name, "SHOP_DURABLE_QUEUE": f"dq-{name}"}
    try:
        result = subprocess.run([sys.executable, "manage.py", "test", "orders", "-v", "2", "--noinput"], cwd=PROJECT,
                                env=env, capture_output=True, text=True, timeout=300)
        yield result.stdout + result.stderr
    finally:
        with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # only if the run broke off
        client = redis.Redis.from_url(broker, socket_timeout=3)
        client.delete(*[key for key in client.scan_iter(f"dq-{name}*")], f"durable:{name}:broker-run")


@pytest.mark.timeout(330)
@pytest.mark.parametrize("test", DJANGO_TESTS, ids=lambda name: name.split(" ")[0])
def test_the_example_django_project(django_run: str, test: str) -> None:
    outcome = re.search(re.escape(test) + r"[^)]*\)\s*(?:\n[^\n]*?)*? \.\.\. (\w+)", django_run)
    assert outcome is not None, f"{test} did not run:\n{django_run[-6000:]}"
    assert outcome.group(1) == "ok", django_run[-6000:]


@pytest.mark.timeout(330)
def test_every_test_of_the_example_project_is_listed_here_and_all_pass_without_warnings(django_run: str) -> None:
    ran = re.findall(r"^(test_\w+ \(orders\.tests\.\w+)", django_run, re.MULTILINE)
    assert sorted(ran) == sorted(DJANGO_TESTS), django_run[-6000:]
    assert re.search(r"^OK\b", django_run, re.MULTILINE), django_run[-6000:]
    assert "Warning" not in django_run, django_run[-6000:]


# -- what needs no Django settings ----------------------------------------------------------------

def test_a_django_postgresql_database_becomes_a_sqlalchemy_url_with_its_libpq_options() -> None:
    url = make_url(url_of(POSTGRES_DB))
    assert (url.username, url.password, url.host, url.port, url.database) == ("app", "s3cret", "db.internal", 6432,
                                                                                "shop")
    assert dict(url.query) == {"sslmode": "require"}  # Django's own options (server_side_binding) are not libpq's


def test_the_engine_shares_djangos_database_when_the_server_and_database_are_the_same() -> None:
    assert same_database("postgresql+psycopg://other:pw@db.internal:6432/shop", POSTGRES_DB)
    assert not same_database("postgresql+psycopg://app@db.internal:6432/another", POSTGRES_DB)
    assert not same_database("postgresql+psycopg://app@db.internal:5432/shop", POSTGRES_DB)
    assert not same_database("sqlite:///state.db", POSTGRES_DB)
    assert not same_database("postgresql://app@db.internal:6432/shop", {"ENGINE": "django.db.backends.sqlite3"})
    assert same_database("postgresql://app@localhost/shop", {**POSTGRES_DB, "HOST": "", "PORT": ""})


def test_durable_settings_are_read_from_their_namespace_and_a_typo_is_named() -> None:
    settings = SimpleNamespace(DURABLE_PREFIX="shop", DURABLE_STALE_LOCK_TIMEOUT=30, DURABLE_DATABASE="orders",
                               CELERY_BROKER_URL="redis://", DEBUG=True)
    assert read_settings(settings, "DURABLE") == {"prefix": "shop", "stale_lock_timeout": 30, "database": "orders"}
    with pytest.raises(InvalidInput, match="DURABLE_PREFIXX is not a setting"):
        read_settings(SimpleNamespace(DURABLE_PREFIXX="shop"), "DURABLE")
