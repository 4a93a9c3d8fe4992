"""The SLA policies section in a real browser: an admin finds it from the inbox, adds a
business-hours policy with holidays (a wrong entry refused at its field), and reorders the
list with htmx, without a page load."""

from __future__ import annotations

import re

import pytest

from monitoring.models import SlaPolicy
from monitoring.policies import org_policies
from tests.conftest import Persona
from tests.test_browser import _sign_in, browser, page  # noqa: F401 - fixtures

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_adds_and_reorders_sla_policies_in_the_browser(
    page: Page,  # noqa: F811 - the fixture
    live_server: object,
    org_admin: Persona,
) -> None:
    base = str(live_server)
    org_policies(org_admin.organization.pk)  # the organisation's default catch-all
    _sign_in(page, base, org_admin)
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="SLA policies").click()
    expect(page.get_by_role("heading", name="SLA policies")).to_be_visible()
    page.get_by_role("link", name="Add a policy").click()

    page.get_by_label("Name").fill("Bavaria office")
    page.get_by_label("Priority").select_option(label="High")
    page.get_by_label("First response").fill("45")
    page.get_by_label("Business hours").check()
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_label("Tue").fill("9 to 5")
    page.get_by_label("Public holidays").select_option("DE")
    page.get_by_label("Region").fill("BY")
    page.get_by_role("button", name="Add the policy").click()
    expect(page.locator("#id_hours_tue_error")).to_contain_text("is not an opening interval")
    assert not SlaPolicy.objects.filter(name="Bavaria office").exists()

    page.get_by_label("Tue").fill("09:00-17:00")
    page.get_by_role("button", name="Add the policy").click()
    expect(page.locator(".flash")).to_contain_text("Policy “Bavaria office” added")
    rows = page.locator("#policy-list > li .policy-name")
    expect(rows).to_have_text(["Bavaria office", "Default"])
    expect(page.locator("#policy-list")).to_contain_text("holidays DE-BY")

    page.evaluate("window.__marker = 'still here'")
    page.get_by_role("button", name="Move Bavaria office down").click()
    expect(rows).to_have_text(["Default", "Bavaria office"])
    expect(page.locator("#policy-list")).to_contain_text(re.compile("Never reached"))
    assert page.evaluate("window.__marker") == "still here", "the page was reloaded"
    assert [p.name for p in org_policies(org_admin.organization.pk)] == [
        "Default",
        "Bavaria office",
    ]
