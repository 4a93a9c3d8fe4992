"""What monitoring's management commands share: the ``--org`` option (one organisation by
its slug, or every one)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from careinbox.accounts.models import Organization


def add_org_option(parser: CommandParser) -> None:
    parser.add_argument("--org", help="Only this organisation (its slug).")


def org_ids_option(command: BaseCommand, options: dict[str, Any]) -> list[int] | None:
    """The ids ``--org`` names (None: every organisation); an unknown slug ends the command
    with status 2 and says so."""
    if not options["org"]:
        return None
    org = Organization.objects.filter(slug=options["org"]).first()
    if org is None:
        command.stderr.write(f"No organisation with the slug {options['org']!r}.")
        raise SystemExit(2)
    return [org.pk]
