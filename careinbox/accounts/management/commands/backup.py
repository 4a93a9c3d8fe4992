from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from careinbox.backup import BackupError, dump


class Command(BaseCommand):
    help = "Write a pg_dump (custom format) of the database; restore it with `manage.py restore`."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", type=Path, help="file to write (default: a dated file)")

    def handle(self, *args: Any, **options: Any) -> None:
        target = options["output"] or Path(f"careinbox-{timezone.now():%Y%m%d-%H%M%S}.dump")
        try:
            dump(connection.settings_dict, target)
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Wrote {target} ({target.stat().st_size:,} bytes).")
