from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from careinbox.accounts.models import Membership
from careinbox.api.models import ApiToken


class Command(BaseCommand):
    help = "Make an API token for a member of an organisation and print it (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--organization", help="the organisation's slug (needed if several)")
        parser.add_argument("--name", default="API token")

    def handle(self, *args: Any, **options: Any) -> None:
        memberships = Membership.objects.filter(
            user__username=options["username"], is_active=True
        ).select_related("organization")
        if options["organization"]:
            memberships = memberships.filter(organization__slug=options["organization"])
        found = list(memberships[:2])
        if not found:
            raise CommandError("No active membership for that user (and organisation).")
        if len(found) > 1:
            raise CommandError(
                "That user is in several organisations: name one with --organization."
            )
        token, secret = ApiToken.issue(found[0], options["name"])
        self.stderr.write(f"Token {token.name!r} for {found[0]} (shown once):")
        self.stdout.write(secret)
