"""Export everything held about one customer as JSON (a data subject's access request)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from careinbox.accounts.models import Organization, User
from tickets.customer_models import Customer
from tickets.services.privacy import customer_export


def find_customer(options: dict[str, Any]) -> tuple[Customer, User | None]:
    organization = Organization.objects.filter(slug=options["org"]).first()
    if organization is None:
        raise CommandError(f"No organisation with the slug {options['org']!r}.")
    customer = Customer.objects.for_org(organization).filter(pk=options["customer"]).first()
    if customer is None:
        raise CommandError(f"{organization.name} has no customer {options['customer']}.")
    actor = None
    if options.get("by"):
        actor = User.objects.filter(username=options["by"]).first()
        if actor is None:
            raise CommandError(f"No user {options['by']!r}.")
    return customer, actor


def add_customer_arguments(parser: CommandParser) -> None:
    parser.add_argument("--org", required=True, help="the organisation's slug")
    parser.add_argument("customer", type=int, help="the customer's id (on their profile page)")
    parser.add_argument("--by", help="the username recorded in the audit trail as the actor")


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        add_customer_arguments(parser)
        parser.add_argument("--output", type=Path, help="write here instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        customer, actor = find_customer(options)
        text = json.dumps(
            customer_export(customer=customer, by=actor), indent=2, ensure_ascii=False
        )
        if options["output"]:
            options["output"].write_text(text + "\n", encoding="utf-8")
            self.stderr.write(f"wrote {options['output']}")
        else:
            self.stdout.write(text)
