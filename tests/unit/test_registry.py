"""Where a Durable instance finds its workflows: module names, modules, Workflow objects,
callables returning those, and ``<package>.workflows`` modules found by discovery. All of it
loaded lazily, on first use."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from durable_celery import InvalidInput, Workflow, WorkflowNotFound
from durable_celery.registry import Registry, find_related


def one_step(name: str) -> Workflow:
    workflow = Workflow(name)
    workflow.step(name=f"{name}_only")(lambda ctx: ctx)
    return workflow


def test_a_callable_in_workflows_is_called_on_first_use_not_when_built() -> None:
    calls: list[str] = []

    def plugins() -> list[Workflow]:
        calls.append("called")
        return [one_step("from_plugin")]

    registry = Registry([plugins])
    assert calls == []
    assert registry.get("from_plugin") is not None
    registry.names()
    assert calls == ["called"]  # once: what it returned took its place


def test_workflows_may_be_one_callable_returning_modules() -> None:
    module = ModuleType("loaded_from_a_file")
    module.shipping = one_step("shipping")  # type: ignore[attr-defined]
    registry = Registry(lambda: [module])
    assert registry.names() == ["shipping"]


def test_a_module_object_is_read_like_an_imported_module_name() -> None:
    module = importlib.import_module("tests.proj.plugin_pkg.workflows")
    assert Registry([module]).names() == Registry(["tests.proj.plugin_pkg.workflows"]).names() == ["plugin_greeting"]


def test_sources_that_are_not_workflows_are_refused() -> None:
    with pytest.raises(InvalidInput, match="workflows="):
        Registry([42])  # type: ignore[list-item]
    registry = Registry([lambda: [42]])
    with pytest.raises(InvalidInput, match="returned 42"):
        registry.names()


def test_discovery_imports_the_related_module_of_each_package_on_first_use() -> None:
    asked: list[str] = []

    def packages() -> list[str]:
        asked.append("asked")
        return ["tests.proj.plugin_pkg", "tests.unit"]  # tests.unit has no workflows module

    registry = Registry([])
    registry.discover(packages, "workflows")
    assert asked == []
    assert registry.machine_for("plugin_greeting").workflow == "plugin_greeting"
    assert asked == ["asked"]
    assert registry.names() == ["plugin_greeting"]


def test_discovery_takes_a_list_and_a_related_name() -> None:
    registry = Registry([])
    registry.discover(["tests.proj"], "workflows")
    assert "pipeline" in registry.names()  # tests/proj/workflows.py
    with pytest.raises(InvalidInput, match="packages"):
        registry.discover("tests.proj", "workflows")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="related_name"):
        registry.discover(["tests.proj"], "")


def test_a_missing_related_module_is_skipped_but_an_error_inside_one_is_raised() -> None:
    assert find_related("tests.unit", "workflows") is None
    assert find_related("tests.proj.effects", "workflows") is None  # a plain module, not a package
    with pytest.raises(ModuleNotFoundError):
        find_related("tests.no_such_package", "workflows")
    registry = Registry([])
    registry.discover(["tests.proj.broken_plugin"], "workflows")
    # its workflows module exists and imports a module that does not: that is reported...
    with pytest.raises(ModuleNotFoundError, match="a_module_this_plugin_forgot"):
        registry.get("anything")
    # ...and kept pending, so the next use reports it again instead of forgetting the plugin
    with pytest.raises(ModuleNotFoundError):
        registry.get("anything")


def test_an_unknown_name_is_not_found_after_every_source_is_loaded() -> None:
    registry = Registry([lambda: []])
    with pytest.raises(WorkflowNotFound):
        registry.machine_for("nowhere")
