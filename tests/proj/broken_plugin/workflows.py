"""Imports a module that does not exist: discovery must report this, not skip it."""

import a_module_this_plugin_forgot  # noqa: F401
