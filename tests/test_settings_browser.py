"""In Chromium: an admin invites an agent and makes a team with htmx (no page loads), and the
invited agent's link sets a password and signs them in."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from careinbox.accounts.models import AuditEntry, Membership, Team
from tests.conftest import Persona
from tests.test_browser import _sign_in, browser, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_invites_an_agent_and_creates_a_team(
    page: Page,  # noqa: F811
    live_server: object,
    org_admin: Persona,
) -> None:
    base = str(live_server)
    _sign_in(page, base, org_admin)
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name=re.compile("^Users and roles")).first.click()
    page.wait_for_url(f"{base}/settings/members/")

    page.evaluate("window.__marker = 'still here'")
    page.get_by_label("Name").fill("Nina Newcomer")
    page.get_by_label("E-mail").fill("nina@example.com")
    page.get_by_label("Role", exact=True).select_option("agent")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation sent to nina@example.com")
    expect(page.locator("table.members")).to_contain_text("invitation pending")
    assert page.evaluate("window.__marker") == "still here", "the page was reloaded"

    page.get_by_role("link", name="Teams", exact=True).click()
    page.get_by_label("New team").fill("Billing")
    page.evaluate("window.__marker = 'still here'")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("status")).to_contain_text("Team Billing created.")
    assert page.evaluate("window.__marker") == "still here"
    page.get_by_role("link", name="Billing").click()
    page.get_by_label("Add a member").select_option(label="Nina Newcomer")
    page.get_by_role("button", name="Add to team").click()
    expect(page.locator(".team-members")).to_contain_text("Nina Newcomer")

    nina = Membership.objects.get(user__email="nina@example.com")
    assert list(Team.objects.get(name="Billing").members.all()) == [nina]
    actions = list(AuditEntry.objects.order_by("pk").values_list("action", "object_type"))
    assert actions == [("invited", "member"), ("created", "team"), ("updated", "team")]

    # Nina's side: the link from the e-mail, a password, and she is in the inbox.
    [message] = mail.outbox
    link = re.search(r"http://\S+/invitation/\S+/", str(message.body))
    assert link
    page.context.clear_cookies()
    page.goto(link.group(0))
    page.get_by_label("New password").fill("violet-harbour-42")
    page.get_by_label("The same password again").fill("violet-harbour-42")
    page.get_by_role("button", name="Set password and sign in").click()
    page.wait_for_url(f"{base}/")
    expect(page.locator(".who")).to_contain_text("Nina Newcomer · Agent at Acme")
