from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from careinbox.accounts.demo_seed import seed_demo_team
from careinbox.demo import DEMO_LOGINS, seed_demo
from channels_social.models import SocialAccount
from monitoring.reports.demo import seed_demo_week
from tickets.canned import seed_demo_canned
from tickets.demo import seed_demo_teamwork


class Command(BaseCommand):
    help = "Create the demo organisation, its users and its X handle (pointed at the sandbox)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="Printed for users.")

    def handle(self, *args: Any, **options: Any) -> None:
        org, account = seed_demo()
        seed_demo_team(org)
        seed_demo_teamwork(org)
        seed_demo_canned(org.pk)
        # A week of history for the dashboard (once; a later run adds nothing).
        week = seed_demo_week(
            org, list(SocialAccount.objects.filter(organization=org).order_by("pk"))
        )
        if week:
            self.stdout.write(f"Seeded a week of history: {week} tickets.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo organisation '{org.name}' ready; @{account.username} polls "
                f"{account.api_base_url}"
            )
        )
        self.stdout.write(f"\n  Open {options['url']} and sign in as:")
        for login in DEMO_LOGINS:
            self.stdout.write(f"    {login.role:<8} {login.username} / {login.password}")
        self.stdout.write("")
