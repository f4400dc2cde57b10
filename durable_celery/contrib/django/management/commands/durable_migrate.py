"""``python manage.py durable_migrate [--check]``: ``celery -A proj durable migrate`` for a
Django project, on the Durable instance attached to the project's Celery app."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from durable_celery.contrib.django.project import project_durable
from durable_celery.state import migrate as schema


class Command(BaseCommand):
    help = "Create or upgrade the tables of durable-celery to this version's head revision."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true",
                            help="only compare the database with this version; exit 1 when it is behind")
        parser.add_argument("--instance", metavar="PREFIX", help="the Durable instance, when the app has several")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            durable = project_durable(options.get("instance"))
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        where = f"schema {durable.db.schema!r}" if durable.db.schema else f"database {durable.db.safe_url}"
        current, head = schema.current_revision(durable.db), schema.head_revision()
        try:
            if options["check"]:
                self.stdout.write(f"{where}: current {current or 'none (not created)'}, head {head}")
                if current != head:
                    raise CommandError(f"{where} is behind: run `python manage.py durable_migrate`", returncode=1)
                self.stdout.write("up to date")
            elif current == head:
                self.stdout.write(f"{where} is already at {head}")
            else:
                schema.upgrade(durable.db)
                self.stdout.write(f"migrated {where} from {current or 'nothing'} to {head}")
        finally:
            durable.db.dispose()
