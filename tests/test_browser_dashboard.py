"""The manager dashboard in a real browser: the manager lands on it after signing in, the
charts and tables render with no console error under the strict CSP, a filter and a
click-through work, and the README's screenshot is saved to ``docs/screenshots/dashboard.png``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from monitoring.reports.demo import seed_demo_week
from tests.conftest import Persona
from tests.factories import SocialAccountFactory
from tests.test_browser import _new_context, browser, page  # noqa: F401
from tickets.models import Ticket

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def test_the_manager_lands_on_the_dashboard_and_clicks_through(
    page: Page,  # noqa: F811
    live_server: object,
    manager: Persona,
    agent: Persona,
) -> None:
    org = manager.organization
    accounts = [
        SocialAccountFactory(brand__organization=org, username="AcmeSupport"),
        SocialAccountFactory(brand=org.brands.first(), platform="facebook", username="Acme"),
    ]
    assert seed_demo_week(org, accounts) > 0
    base = str(live_server)
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(manager.user.username)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/monitoring/dashboard/")
    expect(page.get_by_role("heading", name="SLA compliance per target")).to_be_visible()
    expect(page.locator("#report-heatmap svg rect").first).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 2000})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=False)

    page.get_by_label("Today").check()
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"{base}/monitoring/dashboard/?period=today**")
    page.get_by_label("30 days").check()
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**period=30d**")
    link = page.locator("#report-volume_channel tbody a").first
    count = int(link.inner_text())
    link.click()
    page.wait_for_url("**/monitoring/dashboard/tickets/**")
    expect(page.locator("#report-ticket-count")).to_have_text(
        f"{count} ticket{'s' if count != 1 else ''}"
    )
    assert Ticket.objects.filter(organization=org).count() >= count
