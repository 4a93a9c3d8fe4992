"""Recompute the dashboard's roll-ups from the ticket event log (after a change of an
organisation's time zone, or to check the incremental rows)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from careinbox.accounts.models import Organization
from monitoring.reports.rollups import rebuild_rollups


class Command(BaseCommand):
    help = "Recompute the dashboard's report rows from the ticket events."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", help="Only this organisation (its slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        org_ids = None
        if options["org"]:
            org = Organization.objects.filter(slug=options["org"]).first()
            if org is None:
                self.stderr.write(f"No organisation with the slug {options['org']!r}.")
                raise SystemExit(2)
            org_ids = [org.pk]
        count = rebuild_rollups(organization_ids=org_ids)
        self.stdout.write(f"Rebuilt the report rows of {count} tickets.")
