"""Erase what identifies one customer (a data subject's erasure request); counts are kept."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tickets.management.commands.export_customer import add_customer_arguments, find_customer
from tickets.services.privacy import ErasureError, customer_erase


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        add_customer_arguments(parser)
        parser.add_argument("--yes", action="store_true", help="confirm: it cannot be undone")

    def handle(self, *args: Any, **options: Any) -> None:
        customer, actor = find_customer(options)
        if not options["yes"]:
            raise CommandError("Erasure cannot be undone: add --yes to confirm.")
        try:
            figures = customer_erase(customer=customer, by=actor)
        except ErasureError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Erased customer {customer.pk}: "
            + ", ".join(f"{name} {count}" for name, count in figures.items())
        )
