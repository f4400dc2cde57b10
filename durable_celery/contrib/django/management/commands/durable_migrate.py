"""``python manage.py durable_migrate [--check]``: ``celery -A proj durable migrate`` for a
Django project, on the Durable instance attached to the project's Celery app."""

from __future__ import annotations

from typing import Any, cast

from celery import current_app
from django.core.management.base import BaseCommand, CommandError, CommandParser

from durable_celery.attachment import instances_on
from durable_celery.cli.errors import InputError
from durable_celery.cli.instance import find_durable
from durable_celery.state import migrate as schema


class Command(BaseCommand):
    help = "Create or upgrade the tables of durable-celery to this version's head revision."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true",
                            help="only compare the database with this version; exit 1 when it is behind")
        parser.add_argument("--instance", metavar="PREFIX", help="the Durable instance, when the app has several")

    def handle(self, *args: Any, **options: Any) -> None:
        # The project's Celery app is the current one: its package imports proj/celery.py when
        # Django loads the settings (Celery's Django recipe), and that builds the instance.
        app = cast(Any, current_app)._get_current_object()
        try:
            durable = find_durable(app, options.get("instance"), None)
        except InputError as exc:
            hint = ("" if instances_on(app) else " (build DjangoDurable(app) in proj/celery.py, imported by "
                    "proj/__init__.py as in Celery's Django recipe)")
            raise CommandError(exc.message.replace("`durable --instance", "`--instance") + hint) from None
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
