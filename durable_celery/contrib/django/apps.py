"""The Django app of the integration: put ``"durable_celery.contrib.django"`` in
``INSTALLED_APPS`` for the ``durable_migrate`` management command. It has no models."""

from __future__ import annotations

from django.apps import AppConfig


class DurableCeleryConfig(AppConfig):
    name = "durable_celery.contrib.django"
    label = "durable_celery"
    verbose_name = "Durable workflows"
