"""In Chromium: an admin connects a channel through Settings → Brands and channels, and its
health section updates itself (htmx) when the channel starts failing, with no console error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from channels_social import views
from channels_social.models import SocialAccount
from tests.conftest import Persona
from tests.factories import BrandFactory
from tests.test_browser import _sign_in, browser, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_connects_a_handle_and_sees_its_health_change_live(
    page: Page,  # noqa: F811
    live_server: object,
    org_admin: Persona,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(views, "HEALTH_REFRESH_SECONDS", 1)
    BrandFactory(organization=org_admin.organization, name="Acme")
    base = str(live_server)
    # The page fixture fails the test on any console error (htmx reports its errors there).
    _sign_in(page, base, org_admin, next_path="/settings/")
    page.get_by_role("link", name="Brands and channels").first.click()
    page.get_by_role("link", name="Connect X (Twitter)").click()
    page.get_by_label("Handle or page name").fill("AcmeCare")
    page.get_by_label("Platform id").fill("1000")
    page.get_by_label("The sandbox emulator (for trying out)").check()
    for label, value in [
        ("Consumer key", "ck"),
        ("Consumer secret", "cs-secret"),
        ("Access token", "1000-token"),
        ("Access token secret", "ts-secret"),
    ]:
        page.get_by_label(f"{label}:", exact=True).fill(value)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{base}/settings/channels/")
    expect(page.get_by_role("status")).to_contain_text("@AcmeCare (X (Twitter)) connected")

    account = SocialAccount.objects.get(username="AcmeCare")
    assert account.credentials["consumer_secret"] == "cs-secret"
    now = timezone.now()
    SocialAccount.objects.filter(pk=account.pk).update(
        last_polled_at=now, next_poll_at=now + timedelta(minutes=5)
    )
    row = page.locator(f'tr[data-channel="{account.pk}"]')
    expect(row.locator(".state")).to_have_text("Working")
    page.evaluate("window.__marker = 'still here'")

    SocialAccount.objects.filter(pk=account.pk).update(
        last_poll_error="Could not reach X (ConnectionError).", last_poll_error_at=now
    )
    expect(row.locator(".state")).to_have_text("Failing")
    expect(row).to_contain_text("Could not reach X (ConnectionError).")
    assert page.evaluate("window.__marker") == "still here", "the page was reloaded"
    assert "cs-secret" not in page.content()
