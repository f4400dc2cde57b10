#!/usr/bin/env python
"""Django's command-line utility for the example shop: ``python manage.py migrate``,
``durable_migrate``, ``runserver``, ``test orders``; its worker: ``celery -A shop worker``."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
