"""The composer in a real browser: a canned response inserted in place, the live count by X's
weights, a guard flag while typing, and Ctrl+Enter sending without a page load."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Persona
from tests.test_browser import _sign_in, _ticket, browser, page  # noqa: F401 - fixtures
from tickets.models import CannedResponse, Status

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_canned_insert_live_count_guard_and_ctrl_enter(
    page: Page,  # noqa: F811 - the fixture
    live_server: object,
    agent: Persona,
) -> None:
    ticket = _ticket(agent, customer_username="dana_k", customer_display_name="Dana K")
    CannedResponse.objects.create(
        organization=agent.organization,
        title="Sorry, on it",
        variants=["So sorry, {name}! We're on it 🙏", "Sorry {name}, looking into it now."],
    )
    base = str(live_server)
    _sign_in(page, base, agent, next_path=f"/tickets/{ticket.pk}/")
    page.evaluate("window.__marker = 'still here'")

    page.get_by_role("button", name="Insert").click()
    box = page.locator("#step-text")
    expect(box).to_have_value("So sorry, Dana! We're on it 🙏")
    box.focus()
    box.press("End")
    box.type(" x")  # typing fires the live check: the count is X's (the emoji weighs 2)
    expect(page.locator("#reply-counter")).to_have_text(
        re.compile(r"^32 / 280 weighted characters")
    )

    box.fill("Sorry! Please delete this tweet and DM us.")
    box.type(" ")
    expect(page.locator("#guard")).to_contain_text("Asks the customer to delete their post")

    box.fill("So sorry, Dana! We're on it.")
    box.press("Control+Enter")
    expect(page.get_by_role("heading", name=re.compile("Step 2: Take offline"))).to_be_visible()
    assert page.evaluate("window.__marker") == "still here", "the page was reloaded"
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED
