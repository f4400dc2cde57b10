"""What ``DjangoDurable`` reads from Django's settings.

As Celery reads ``CELERY_*`` settings (``app.config_from_object("django.conf:settings",
namespace="CELERY")``), the engine reads ``DURABLE_*`` ones: ``DURABLE_<OPTION>`` is the keyword
argument ``<option>`` of ``Durable(...)`` (``DURABLE_PREFIX``, ``DURABLE_QUEUE``,
``DURABLE_STALE_LOCK_TIMEOUT``, ...). Two more: ``DURABLE_DATABASE``, the alias in ``DATABASES``
whose database the engine shares (``"default"``), and ``DURABLE_AUTODISCOVER``, whether the
installed apps' ``workflows`` modules are searched (``True``). Without ``DURABLE_DATABASE_URL``
the engine's URL is built from that alias when it is PostgreSQL; on any other database (SQLite in
development) the engine keeps its state in the embedded default, as ``Durable`` without a URL does.
A ``DURABLE_*`` setting that names no option is an error, so a typo does not go unnoticed.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import URL, make_url

from durable_celery.errors import InvalidInput

#: Durable's keyword options that are not settings of their own
_NOT_SETTINGS = {"self", "app"}
#: settings of the integration itself, beside Durable's options
EXTRA = ("database", "autodiscover")
#: libpq parameters that may sit in a Django database's OPTIONS and mean the same in a URL
_LIBPQ = {"sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "sslcrl", "options", "connect_timeout",
          "application_name", "target_session_attrs", "service", "passfile", "gssencmode", "channel_binding",
          "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"}
_POSTGRES_ENGINES = ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis")


def durable_options() -> list[str]:
    """The keyword arguments of ``Durable(...)``, which ``DURABLE_<NAME>`` settings set."""
    from durable_celery.durable import Durable

    return [name for name in inspect.signature(Durable.__init__).parameters if name not in _NOT_SETTINGS]


def read_settings(django_settings: Any, namespace: str) -> dict[str, Any]:
    """Every ``<namespace>_<OPTION>`` setting, as ``{option: value}``.

    Raises:
        InvalidInput: a setting in the namespace that names no option.
    """
    known = {name.upper(): name for name in [*durable_options(), *EXTRA]}
    found: dict[str, Any] = {}
    start = f"{namespace}_"
    for name in dir(django_settings):
        if not name.startswith(start) or not name.isupper():
            continue
        option = known.get(name[len(start):])
        if option is None:
            raise InvalidInput(f"settings.{name} is not a setting of durable-celery; the {namespace}_* settings "
                               f"are {', '.join(sorted(start + k for k in known))}")
        found[option] = getattr(django_settings, name)
    return found


def is_postgres(database: Mapping[str, Any]) -> bool:
    return str(database.get("ENGINE", "")) in _POSTGRES_ENGINES


def url_of(database: Mapping[str, Any]) -> str:
    """A SQLAlchemy URL for one of Django's PostgreSQL ``DATABASES`` entries (psycopg 3 on
    SQLAlchemy 2, as every URL the engine is given): NAME, USER, PASSWORD, HOST, PORT, and the
    libpq parameters among its OPTIONS (sslmode, options, ...)."""
    options = database.get("OPTIONS") or {}
    query = {k: str(v) for k, v in options.items() if k in _LIBPQ and v is not None}
    port = database.get("PORT")
    url = URL.create("postgresql", username=database.get("USER") or None, password=database.get("PASSWORD") or None,
                     host=database.get("HOST") or None, port=int(port) if port else None,
                     database=database.get("NAME") or None, query=query)
    return url.render_as_string(hide_password=False)


def same_database(url: str, database: Mapping[str, Any]) -> bool:
    """Whether the engine's ``url`` names the server and database of a Django ``DATABASES``
    entry (the user may differ: one database, two roles). ``localhost`` and an empty host both
    mean the local server; 127.0.0.1 is told apart, as libpq does (a socket is not TCP)."""
    if not is_postgres(database):
        return False
    ours, theirs = make_url(url), make_url(url_of(database))
    if ours.get_backend_name() != "postgresql":
        return False
    return ((ours.host or "localhost", ours.port or 5432, ours.database)
            == (theirs.host or "localhost", theirs.port or 5432, theirs.database))
