"""The pytest plugin of durable-celery: fixtures that give a test an in-process engine on a fake
clock (``durable_celery.testing.runner.TestEnvironment``). See docs/testing.md.

pytest loads it through the ``pytest11`` entry point ``durable_celery_pytest`` (disable it
with ``-p no:durable_celery_pytest``; the entry point has the module's name, so a conftest's
``pytest_plugins = ["durable_celery_pytest"]`` or ``-p durable_celery_pytest`` does not load it
twice). It lives outside the ``durable_celery`` package so that loading it
costs nothing: importing ``durable_celery`` imports Celery and SQLAlchemy, so that happens in a
fixture, the first time a test asks for one, never at pytest's start.

Fixtures:

- ``durable_env``: a ``TestEnvironment`` for the test, closed after it. It is built from the
  test's ``@pytest.mark.durable(...)`` marker (the closest one: the test's, its class's or the
  module's ``pytestmark``), whose arguments are ``TestEnvironment``'s, else from the
  ``durable_workflows`` fixture.
- ``durable_env_factory``: ``factory(workflows, **options) -> TestEnvironment``, for a test that
  needs several environments or builds one from its own arguments; each is closed after it.
- ``durable_workflows``: the workflows ``durable_env`` runs when no marker names them; ``()``
  unless a conftest overrides it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from durable_celery.testing.runner import TestEnvironment

MARKER = "durable"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(workflows=(), *, start=None, **options): how the durable_env fixture builds its "
                   "TestEnvironment (durable_celery.testing.runner)")


@pytest.fixture
def durable_workflows() -> Any:
    """The workflows ``durable_env`` runs when no ``durable`` marker names them: none.
    Override it in a conftest (return ``Workflow`` objects, modules or module names)."""
    return ()


@pytest.fixture
def durable_env_factory() -> Iterator[Callable[..., TestEnvironment]]:
    """Builds ``TestEnvironment(workflows, **options)``s and closes them after the test (which
    removes each one's temporary directory and SQLite file, unless ``directory=`` named one)."""
    from durable_celery.testing.runner import TestEnvironment

    made: list[TestEnvironment] = []

    def make(workflows: Any = (), **options: Any) -> TestEnvironment:
        env = TestEnvironment(workflows, **options)
        made.append(env)
        return env

    yield make
    for env in reversed(made):
        env.close()


@pytest.fixture
def durable_env(request: pytest.FixtureRequest, durable_env_factory: Callable[..., TestEnvironment],
                durable_workflows: Any) -> TestEnvironment:
    """A ``TestEnvironment`` for this test, as its ``durable`` marker says (``workflows``
    positionally or by name, and ``TestEnvironment``'s options), else on
    ``durable_workflows``."""
    marker = request.node.get_closest_marker(MARKER)
    args: tuple[Any, ...] = marker.args if marker is not None else ()
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if len(args) > 1:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes the workflows as its one positional argument")
    if args and "workflows" in options:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} got the workflows twice")
    workflows = args[0] if args else options.pop("workflows", durable_workflows)
    return durable_env_factory(workflows, **options)
