"""``manage.py demo_banner``: once the web app answers, print where to sign in, then stay.

It stays (until Ctrl-C) because honcho stops the whole stack when any process exits; it runs
under ``careinbox.respawn`` in ``Procfile.dev`` all the same, so that should it fail the rest
of ``make run`` is not taken down with it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand

from careinbox.demo import DEMO_LOGINS

# The web app is local: never ask a proxy from the environment for it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=2) as response:
            return bool(200 <= response.status < 400)
    except (urllib.error.URLError, OSError):
        return False


class Command(BaseCommand):
    help = "Wait until the web server answers, print where to sign in, then stay (for honcho)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/")
        parser.add_argument(
            "--remind-every",
            type=float,
            default=30.0,
            help="While the web app does not answer, say so every N seconds.",
        )
        parser.add_argument("--once", action="store_true", help="Exit after printing.")

    def handle(self, *args: Any, **options: Any) -> None:
        url: str = options["url"]
        started = reminded = time.monotonic()
        # A banner that says "running" must be true: wait for the login page, however long.
        while not answers(url + "login/"):
            if time.monotonic() - reminded >= options["remind_every"]:
                reminded = time.monotonic()
                self.stderr.write(
                    f"Still waiting for the web app at {url} "
                    f"({reminded - started:.0f} s so far; is the web process up?)"
                )
            time.sleep(0.5)
        lines = ["", "=" * 64, f"  CareInbox is running: {url}", "  Sign in as:"]
        lines += [
            f"    {login.role:<8} {login.username:<8} / {login.password}" for login in DEMO_LOGINS
        ]
        lines += [
            "  Mentions of @AcmeSupport arrive from the X sandbox every few seconds.",
            "  Press Ctrl-C to stop everything.",
            "=" * 64,
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()
        if options["once"]:
            return
        while True:  # honcho stops every process when one exits: stay until Ctrl-C
            time.sleep(3600)
