"""A database URL picks the PostgreSQL driver that the installed SQLAlchemy has a dialect for:
psycopg 3 on SQLAlchemy 2, psycopg2 on 1.4 (which has no psycopg 3 dialect)."""

from __future__ import annotations

import pytest
import sqlalchemy

from durable_celery.state.db import normalise_url

DRIVER = "postgresql+psycopg" if int(sqlalchemy.__version__.split(".")[0]) >= 2 else "postgresql+psycopg2"


@pytest.mark.parametrize("url", ["postgresql://u:p@h:5433/db", "postgres://u:p@h:5433/db",
                                 "postgresql+psycopg://u:p@h:5433/db"])
def test_a_postgres_url_uses_the_psycopg_driver_of_the_installed_sqlalchemy(url: str) -> None:
    assert normalise_url(url) == f"{DRIVER}://u:p@h:5433/db"


@pytest.mark.parametrize("url", ["postgresql+psycopg2://u:p@h/db", "sqlite:////tmp/durable/state.db"])
def test_a_url_that_names_another_driver_or_database_is_kept(url: str) -> None:
    assert normalise_url(url) == url
