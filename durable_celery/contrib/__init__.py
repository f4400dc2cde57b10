"""Integrations with other frameworks, each importing its framework: ``durable_celery.contrib.django``."""
