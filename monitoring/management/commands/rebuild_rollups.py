"""Recompute the dashboard's roll-ups from the ticket event log (after a change of an
organisation's time zone, or to check the incremental rows)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from monitoring.management.options import add_org_option, org_ids_option
from monitoring.reports.rollups import rebuild_rollups


class Command(BaseCommand):
    help = "Recompute the dashboard's report rows from the ticket events."

    def add_arguments(self, parser: CommandParser) -> None:
        add_org_option(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        org_ids = org_ids_option(self, options)
        count = rebuild_rollups(organization_ids=org_ids)
        self.stdout.write(f"Rebuilt the report rows of {count} tickets.")
