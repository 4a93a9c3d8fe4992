from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand

from careinbox.demo import DEMO_LOGINS


class Command(BaseCommand):
    help = "Wait until the web server answers, print where to sign in, then stay (for honcho)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/")
        parser.add_argument("--timeout", type=float, default=120.0)
        parser.add_argument("--once", action="store_true", help="Exit after printing.")

    def handle(self, *args: Any, **options: Any) -> None:
        url: str = options["url"]
        deadline = time.monotonic() + options["timeout"]
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "login/", timeout=2)  # noqa: S310 - our own URL
                break
            except (urllib.error.URLError, OSError):
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
