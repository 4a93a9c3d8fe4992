"""Make the dashboard's daily sums (``TicketDayStat``, ``SlaDayStat``) and time histograms
(``TimeDayStat``) again from the report facts, set-based
(``monitoring.reports.daily.rebuild_daily``): after the facts were filled by something other
than the roll-up handler (``bench/scale_data.py``), or to check the incremental sums."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from monitoring.management.options import add_org_option, org_ids_option
from monitoring.reports.daily import rebuild_daily


class Command(BaseCommand):
    help = "Make the dashboard's daily sums and time histograms again from the report facts."

    def add_arguments(self, parser: CommandParser) -> None:
        add_org_option(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        org_ids = org_ids_option(self, options)
        with transaction.atomic():
            counts = rebuild_daily(organization_ids=org_ids)
        self.stdout.write(
            "Rebuilt the daily sums: "
            + ", ".join(f"{table} {rows} rows" for table, rows in counts.items())
            + "."
        )
