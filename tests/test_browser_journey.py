"""The whole journey a new user makes after ``make run``, in a real browser on real components.

A mention posted into the X emulator is polled by a real Celery worker; the agent signs in
through the login form in Chromium, watches the inbox pick the ticket up by itself, and takes
all four care steps through the UI. Each reply is delivered by the worker to the emulator and
the conversation shows it as delivered without a page load.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from channels_social.models import SocialAccount
from channels_social.tasks import poll_account
from monitoring.models import TimerState
from tests.conftest import Persona
from tests.sandbox_fixtures import XSandbox
from tests.test_browser import _sign_in, browser, page  # noqa: F401 - fixtures
from tickets.models import Direction, Status, Ticket

pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

MARKER = "window.__journeyMarker"
# (button and heading label, textarea label prefix, reply text)
STEPS = [
    ("Acknowledge", "Public reply", "Jo, we're sorry your order is late. We're on it now."),
    ("Take offline", "Direct message", "Hi Jo, could you DM us the email on the order?"),
    ("Resolve", "Direct message", "It ships today by express; we refunded the delivery fee."),
    ("Close out", "Public reply", "Glad we got your order moving, Jo. Thanks for your patience!"),
]


def _assert_not_reloaded(tab: Page) -> None:
    assert tab.evaluate(MARKER) == "still here", "the page was reloaded"


def test_new_user_journey_from_mention_to_closed_out_in_the_browser(
    page: Page,  # noqa: F811
    live_server: object,
    celery_worker_process: object,
    x_sandbox_clean: XSandbox,
    make_account: Callable[..., SocialAccount],
    agent: Persona,
) -> None:
    base = str(live_server)
    account = make_account(
        external_id="1000", username="AcmeCare", api_base_url=x_sandbox_clean.url
    )
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    mention = x_sandbox_clean.control.post_mention(
        "AcmeCare",
        "2001",
        "jo_angry",
        48_000,
        "@AcmeCare My order #5521 is two weeks late. This is terrible, I'm furious!",
    )

    # The agent signs in before the mention is polled: the inbox must pick it up by itself.
    _sign_in(page, base, agent)
    page.evaluate(f"{MARKER} = 'still here'")
    poll_account.delay(account.pk)  # what beat does

    customer = page.get_by_role("link", name="@jo_angry")
    expect(customer).to_be_visible(timeout=15_000)
    _assert_not_reloaded(page)
    customer.click()
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/tickets/\d+/$"))
    ticket = Ticket.objects.get(social_account=account)
    assert page.url == f"{base}/tickets/{ticket.pk}/"
    assert ticket.root_message.external_id == mention["id"]  # type: ignore[union-attr]
    page.evaluate(f"{MARKER} = 'still here'")
    polls: list[str] = []  # htmx GETs of this ticket: the conversation refreshing itself
    page.on(
        "request",
        lambda r: (
            polls.append(r.url)
            if r.method == "GET" and r.headers.get("hx-request") and r.url.split("?")[0] == page.url
            else None
        ),
    )

    messages = page.locator("#messages")
    for number, (label, channel, text) in enumerate(STEPS, start=1):
        heading = page.get_by_role("heading", name=re.compile(rf"^Step {number}: {label}\b"))
        expect(heading).to_be_visible(timeout=20_000)
        page.get_by_label(f"{channel} to @jo_angry").fill(text)
        page.get_by_role("button", name=label, exact=True).click()

        reply = messages.locator("li.message.out", has_text=text)
        expect(reply).to_have_count(1)  # the POST's swap shows it, queued
        expect(reply.locator(".delivery")).to_have_text(
            re.compile(r"^delivered, id \d+$"), timeout=20_000
        )
        _assert_not_reloaded(page)

    expect(page.locator("p.done")).to_contain_text("Closed out publicly")
    expect(page.locator("#sla-box")).to_contain_text("Met")
    history = page.locator("#history")
    by = str(agent.user)
    for done in ("Acknowledged", "Taken offline", "Resolved", "Closed out"):
        expect(history).to_contain_text(f"{done} by {by}")
    expect(page.locator("#steps-box li.done")).to_have_count(4)
    _assert_not_reloaded(page)
    assert page.url == f"{base}/tickets/{ticket.pk}/"
    assert polls, "every delivery showed without the conversation polling: nothing proved"

    screenshot = Path(settings.VAR_DIR) / "journey.png"
    page.screenshot(path=str(screenshot), full_page=True)

    # The database and the emulator agree with what the page shows.
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    assert ticket.sla_timers.get().state == TimerState.MET
    public = list(
        ticket.messages.filter(direction=Direction.OUTBOUND, is_public=True).order_by(
            "created_at", "pk"
        )
    )
    assert [m.text for m in public] == [STEPS[0][2], STEPS[3][2]]
    for reply_message in public:
        tweet = x_sandbox_clean.control.get_tweet(reply_message.external_id)
        assert tweet["in_reply_to_tweet_id"] == mention["id"]
        assert tweet["text"] == reply_message.text
    dms = x_sandbox_clean.control.dm_events("2001")
    assert [dm["text"] for dm in dms] == [STEPS[1][2], STEPS[2][2]]
