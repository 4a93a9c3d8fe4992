"""Make the dashboard's daily sums (``TicketDayStat``, ``SlaDayStat``) again from the report
facts, set-based (``monitoring.reports.daily.rebuild_daily``): after the facts were filled by
something other than the roll-up handler (``bench/scale_data.py``), or to check the
incremental sums."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from careinbox.accounts.models import Organization
from monitoring.reports.daily import rebuild_daily


class Command(BaseCommand):
    help = "Make the dashboard's daily sums again from the report facts."

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
        with transaction.atomic():
            counts = rebuild_daily(organization_ids=org_ids)
        self.stdout.write(
            "Rebuilt the daily sums: "
            + ", ".join(f"{table} {rows} rows" for table, rows in counts.items())
            + "."
        )
