"""Screenshots of a running CareInbox for the README, taken with Debian's Chromium.

Signs in as the demo agent and saves a full-page PNG of the inbox and, with --ticket-out, of
the first ticket in it (1280x800 viewport)::

    .venv/bin/python bench/screenshot.py --url http://127.0.0.1:8000/ --out docs/inbox.png \\
        --ticket-out docs/ticket.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urljoin

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def sign_in(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(urljoin(base_url, "login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")
    if "/login/" in page.url:
        raise SystemExit(f"Sign-in as {username!r} failed at {page.url}")


def shoot(page: Page, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out} ({page.url})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/", help="the running app")
    parser.add_argument("--out", type=Path, default=Path("docs/inbox.png"), help="inbox PNG")
    parser.add_argument("--ticket-out", type=Path, help="also the first ticket's page, here")
    parser.add_argument("--username", default="agent")
    parser.add_argument("--password", default="agent-demo-pass")
    parser.add_argument("--chromium", default=CHROMIUM, help="browser executable")
    args = parser.parse_args(argv)
    base_url = args.url if args.url.endswith("/") else args.url + "/"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            sign_in(page, base_url, args.username, args.password)
            page.goto(base_url)
            page.wait_for_selector("#inbox")
            shoot(page, args.out)
            if args.ticket_out:
                first = page.locator("#inbox table.inbox tbody tr td a").first
                if first.count() == 0:
                    print("The inbox is empty: no ticket to screenshot.", file=sys.stderr)
                    return 1
                first.click()
                page.wait_for_selector("#workspace")
                page.wait_for_load_state("networkidle")
                shoot(page, args.ticket_out)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
