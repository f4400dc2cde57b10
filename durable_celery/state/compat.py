"""What differs between SQLAlchemy 1.4 and 2.x, in one place. Everything else is written in the
2.0 style that 1.4 also runs (``select(...)``, ``Result.mappings()``, ``sqlalchemy.engine``
imports). Remove this module with SQLAlchemy 1.4 support."""

from __future__ import annotations

from typing import Any

import sqlalchemy

SQLALCHEMY_2 = int(sqlalchemy.__version__.split(".")[0]) >= 2

#: create_engine options: on 1.4, ``future=True`` gives the 2.0 Connection (autobegin, commit()).
ENGINE_OPTIONS: dict[str, Any] = {} if SQLALCHEMY_2 else {"future": True}

#: The driver for ``postgresql://`` URLs: psycopg 3 on SQLAlchemy 2; 1.4 has no dialect for it.
POSTGRES_DRIVER = "postgresql+psycopg" if SQLALCHEMY_2 else "postgresql+psycopg2"
