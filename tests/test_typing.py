"""Typed user code: a module that defines workflows with every part of the DSL, and every
example, pass ``mypy --strict`` as a user runs it (the package's own modules are followed for
their types, not checked: a user's mypy does not check installed packages). The decorators
keep the types of the functions they register: ``tests/typing/typed_workflows.py`` asserts them
with ``assert_type``, which an ``Any`` fails. Needs the ``test`` extra's ``celery-types``, as a
user's project that types its Celery tasks does."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def strict(*paths: str, exclude: str | None = None) -> tuple[str, int]:
    stdout, stderr, status = api.run([
        "--strict", "--follow-imports=silent", *(["--exclude", exclude] if exclude else []),
        "--config-file", str(ROOT / "tests" / "typing" / "mypy.ini"),
        "--cache-dir", str(ROOT / ".mypy_cache" / "strict-user"), *[str(ROOT / p) for p in paths]])
    return stdout + stderr, status


def test_a_user_module_using_the_whole_dsl_passes_mypy_strict_with_the_decorated_types_kept() -> None:
    output, status = strict("tests/typing/typed_workflows.py")
    assert status == 0, output


def test_every_example_passes_mypy_strict() -> None:
    # but the Django project: Django has no types of its own, a Django project type-checks with
    # django-stubs and its mypy plugin (durable_celery.contrib.django passes the package's strict run)
    output, status = strict("examples", exclude="examples/django_project/")
    assert status == 0, output
