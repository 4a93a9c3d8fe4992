from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from careinbox.backup import BackupError, restore


class Command(BaseCommand):
    help = (
        "Restore a `manage.py backup` file into the database (replacing what the dump holds). "
        "Stop web, worker and beat first; credentials need the same CREDENTIALS_KEYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dump", type=Path)
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args: Any, **options: Any) -> None:
        name = connection.settings_dict["NAME"]
        if not options["yes"]:
            answer = input(f"Replace the contents of database {name!r}? Type its name: ")
            if answer.strip() != name:
                raise CommandError("Not confirmed; nothing changed.")
        connection.close()
        try:
            restore(connection.settings_dict, options["dump"])
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Restored {options['dump']} into {name}.")
