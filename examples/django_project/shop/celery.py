"""The Celery app, as Celery's "First steps with Django" writes it, and the Durable engine on it:
settings from ``DURABLE_*`` (here the database is Django's own), workflows from every installed
app's ``workflows.py``."""

import os

from celery import Celery

from durable_celery.contrib.django import DjangoDurable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

durable = DjangoDurable(app)
