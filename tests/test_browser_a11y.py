"""An accessibility audit by a tool: axe-core (the ``axe-playwright-python`` package bundles it)
run in Chromium over every screen an agent, a manager or an admin works in, on a laptop and on
a 390 px phone. A serious or critical violation fails the test, listed with the elements it
was found on and axe's help link; moderate and minor ones are not counted (axe's own triage).

The screens hold real content (a ticket made by ingest with its customer, a note, a promise,
a tag), so the rules check what an agent actually sees, not empty pages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page

from careinbox.accounts.models import Membership
from careinbox.settings_area import sections_for
from channels_social.models import SocialAccount
from tests.conftest import Persona
from tests.test_browser import _new_context, _sign_in, browser  # noqa: F401
from tests.test_threading import post
from tickets.models import Ticket
from tickets.services import ingest_posts
from tickets.services.promises import promise_make
from tickets.services.teamwork import note_add

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BLOCKING = ("serious", "critical")
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


def _violations(tab: Page, axe: Axe) -> list[str]:
    """axe's serious and critical findings on the page as it is now, one line per element."""
    results = axe.run(tab)
    found = []
    for violation in results.response["violations"]:
        if violation["impact"] not in BLOCKING:
            continue
        for node in violation["nodes"]:
            found.append(
                f"{tab.url} [{violation['impact']}] {violation['id']}: {violation['help']} "
                f"at {' '.join(node['target'])} ({violation['helpUrl']})"
            )
    return found


def test_the_audit_finds_what_it_looks_for(browser: Browser) -> None:  # noqa: F811
    """The audit can fail: a page with a nameless field, an image without alt text and grey on
    white text gets each reported (so a clean result below means clean, not "not run")."""
    with _new_context(browser) as context:
        tab = context.new_page()
        tab.set_content(
            '<html lang="en"><head><title>t</title></head><body><main><h1>t</h1>'
            '<img src="data:,"><input type="text">'
            '<p style="color:#bbb;background:#fff">faint</p></main></body></html>'
        )
        found = " ".join(_violations(tab, Axe()))
    for rule in ("image-alt", "label", "color-contrast"):
        assert f"] {rule}:" in found, rule


@pytest.fixture
def worked_ticket(
    make_account: Callable[..., SocialAccount], org_admin: Persona, agent: Persona
) -> Ticket:
    account = make_account(external_id="1000", username="AcmeCare")
    ingest_posts(
        account,
        [
            post(
                "@AcmeCare my order #5521 is two weeks late and nobody answers",
                at=timezone.now(),
                followers=1200,
            )
        ],
    )
    ticket = Ticket.objects.get()
    ticket.add_tag("late-delivery", by=agent.user)
    note_add(ticket=ticket, by=agent.user, body="Courier says Friday. @ada can you check?")
    promise_make(
        ticket=ticket,
        by=agent.user,
        text="Call back with the tracking number",
        due_at=timezone.now() + timedelta(hours=3),
        remind_before=timedelta(minutes=30),
    )
    return ticket


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_no_serious_or_critical_accessibility_violation_on_any_screen(
    browser: Browser,  # noqa: F811
    live_server: object,
    org_admin: Persona,
    worked_ticket: Ticket,
    viewport: str,
) -> None:
    base = str(live_server)
    admin_membership = Membership.objects.get(user=org_admin.user)
    axe = Axe()
    width, height = VIEWPORTS[viewport]
    assert worked_ticket.customer_id is not None
    settings_pages = [reverse(section.url_name) for section in sections_for(admin_membership)]
    screens = [
        "/",
        "/?view=closed",
        "/?followers=lots",  # a filter error, the filters open
        f"/tickets/{worked_ticket.pk}/",
        f"/customers/{worked_ticket.customer_id}/",
        reverse("tickets:approvals"),
        reverse("monitoring:dashboard"),
        reverse("notifications:list"),
        reverse("api:tokens"),
        reverse("accounts:settings"),
        *settings_pages,
    ]
    found: list[str] = []
    with _new_context(browser) as context:
        tab = context.new_page()
        tab.set_viewport_size({"width": width, "height": height})
        tab.goto(f"{base}/login/")
        found += _violations(tab, axe)
        _sign_in(tab, base, org_admin)
        for path in screens:
            tab.goto(f"{base}{path}")
            tab.wait_for_load_state("networkidle")
            found += _violations(tab, axe)
        # The filters open, and the shortcuts overlay open over the inbox.
        tab.goto(f"{base}/")
        tab.locator("details.filters > summary").click()
        found += _violations(tab, axe)
        tab.keyboard.press("?")
        found += _violations(tab, axe)
        # The ticket page's forms opened (merge, skip), then the ticket closed.
        tab.goto(f"{base}/tickets/{worked_ticket.pk}/")
        for summary in tab.locator("#workspace details > summary").all():
            summary.click()
        found += _violations(tab, axe)
    assert not found, f"{len(found)} serious or critical violations:\n" + "\n".join(found)
