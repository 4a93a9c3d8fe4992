"""Team work in a real browser: an agent claims a ticket, writes a note that @mentions the
manager, records a promise, finds the close-out held by it, keeps it and closes out with the
reply still in its box: all swapped in by htmx, without a page load or a console error."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from careinbox.notifications.models import Notification
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tests.test_browser import _sign_in, browser, page  # noqa: F401 - fixtures
from tickets.models import EventKind, Promise, Status

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_claim_note_promise_without_a_page_load(
    page: Page,  # noqa: F811
    live_server: object,
    agent: Persona,
    manager: Persona,
) -> None:
    ticket = TicketFactory(
        social_account__brand__organization=agent.organization,
        customer_username="jo_angry",
        status=Status.RESOLVED,
    )
    InboundMessageFactory(ticket=ticket, text="@BrandCare my refund never came")
    base = str(live_server)
    _sign_in(page, base, agent, next_path=f"/tickets/{ticket.pk}/")
    page.evaluate("window.__marker = 'still here'")

    page.get_by_role("button", name="Claim it").click()
    expect(page.locator("#assign-box")).to_contain_text("alice (you)")

    page.get_by_label("Add a note").fill("@mark can we add a goodwill voucher? <b>not bold</b>")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#notes-box .note")).to_contain_text("<b>not bold</b>")  # escaped

    due = timezone.localtime(timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("We promised").fill("Refund within 3 days")
    page.get_by_label(re.compile(r"^Due")).fill(due)
    page.get_by_role("button", name="Record promise").click()
    expect(page.locator("#promises-box")).to_contain_text("Refund within 3 days")

    # The close-out is held by the open promise: the reason is shown, the draft is kept.
    page.get_by_label(re.compile("Public reply to @jo_angry")).fill("All sorted, thank you!")
    page.get_by_role("button", name="Close out", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("A promise is still open")
    page.get_by_role("button", name="Kept").click()
    expect(page.locator("#promises-box")).to_contain_text("Kept")
    expect(page.locator("#history")).to_contain_text("Promise kept")
    # The reply being typed survived the side panel's swap, and now the close-out goes.
    expect(page.locator("#step-text")).to_have_value("All sorted, thank you!")
    page.get_by_role("button", name="Close out", exact=True).click()
    expect(page.locator("p.done")).to_contain_text("Closed out publicly")
    page.screenshot(path=str(settings.VAR_DIR / "teamwork-ticket.png"), full_page=True)
    assert page.evaluate("window.__marker") == "still here", "the page was reloaded"

    assert Notification.objects.get(kind="mention").recipient == manager.user
    assert Promise.objects.get().kept_by == agent.user
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    kinds = set(ticket.events.values_list("kind", flat=True))
    assert {EventKind.ASSIGNED, EventKind.NOTE_ADDED, EventKind.PROMISE_MADE} <= kinds
