"""Real-browser checks: Chromium driven by Playwright against the live test server.

They prove what the Django test client cannot: the login form works in a browser, htmx swaps
the workspace without a page load, the inbox refreshes itself, a validation error reaches the
page, everything still works with JavaScript off, and the step form is reachable by keyboard.
Every page they open must end without a console error (htmx logs its error events there).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from bench.screenshot import CHROMIUM as CHROMIUM_PATH
from bench.screenshot import CHROMIUM_ARGS
from monitoring.services import sla_fulfil_first_response, sla_start
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.models import Direction, Message, OutboxItem, OutboxState, Status, Ticket

CHROMIUM = Path(CHROMIUM_PATH)
ACK_TEXT = "So sorry about the wait! We're looking into your order right now."

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)",
        allow_module_level=True,
    )

from playwright.sync_api import (  # noqa: E402
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


# The one Chromium of this run. Other modules import these fixtures, and pytest then registers
# ``browser`` once per module; Playwright's sync API cannot start twice on one thread, so a
# second registration shares the running browser instead of launching its own.
_running: list[Browser] = []


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if _running:
        yield _running[0]
        return
    # Playwright's sync API keeps an asyncio loop on this thread; Django would then refuse
    # ORM calls from the test body unless told that this is deliberate.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    _running.append(browser)
    yield browser
    _running.clear()
    browser.close()
    playwright.stop()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# Chromium logs every 4xx answer to the console; a 422 is the app's deliberate "refused, here is
# the form with the reason" (htmx swaps it, base.html), so it is not an error of the page.
EXPECTED_CONSOLE_ERRORS = re.compile(r"the server responded with a status of 422\b")


@contextmanager
def _new_context(
    browser: Browser, *, javascript: bool = True, allow_errors: str | None = None
) -> Iterator[BrowserContext]:
    """A fresh browser profile whose pages must end without a console error.

    htmx reports each of its error events (``htmx:oobErrorNoTarget``, ``htmx:targetError``,
    ``htmx:swapError``, ``htmx:responseError``...) with ``console.error``; uncaught exceptions
    are page errors. Either fails the test once it has run, unless ``allow_errors`` (a regex)
    says the test expects it.
    """
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, java_script_enabled=javascript
    )
    context.set_default_timeout(10_000)
    errors: list[str] = []
    allowed = re.compile(allow_errors) if allow_errors else None

    def on_console(message: ConsoleMessage) -> None:
        text = message.text
        expected = EXPECTED_CONSOLE_ERRORS.search(text) or (allowed and allowed.search(text))
        if message.type == "error" and not expected:
            errors.append(f"console error on {message.page and message.page.url}: {text}")

    def watch(page: Page) -> None:
        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(f"page error on {page.url}: {exc}"))

    context.on("page", watch)
    try:
        yield context
    finally:
        context.close()
    assert not errors, "the browser reported errors:\n" + "\n".join(errors)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with _new_context(browser) as context:
        yield context.new_page()


@pytest.fixture
def nojs_page(browser: Browser) -> Iterator[Page]:
    with _new_context(browser, javascript=False) as context:
        yield context.new_page()


def _ticket(persona: Persona, **kwargs: object) -> Ticket:
    ticket = TicketFactory(social_account__brand__organization=persona.organization, **kwargs)
    InboundMessageFactory(
        ticket=ticket, text=f"@BrandCare where is my parcel? ({ticket.customer_username})"
    )
    sla_start(ticket=ticket)
    return ticket


def _sign_in(page: Page, base_url: str, persona: Persona, *, next_path: str = "/") -> None:
    page.goto(f"{base_url}/login/?next={next_path}")
    page.get_by_label("Username").fill(persona.user.username)
    page.get_by_label("Password").fill("pw")  # UserFactory's password
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}{next_path}")


def _outbound(ticket: Ticket) -> list[Message]:
    return list(ticket.messages.filter(direction=Direction.OUTBOUND))


def test_agent_signs_in_and_acknowledges_without_a_page_load(
    page: Page, live_server: object, agent: Persona
) -> None:
    ticket = _ticket(agent, customer_username="jo_angry")
    base = str(live_server)

    _sign_in(page, base, agent)
    expect(page.locator("#open-count")).to_have_text("1")
    page.get_by_role("link", name="@jo_angry").click()
    page.wait_for_url(f"{base}/tickets/{ticket.pk}/")
    expect(page.get_by_role("heading", name=re.compile("Step 1: Acknowledge"))).to_be_visible()

    page.evaluate("window.__marker = 'still here'")
    page.get_by_label("Public reply to @jo_angry").fill(ACK_TEXT)
    page.get_by_role("button", name="Acknowledge", exact=True).click()

    expect(page.get_by_role("heading", name=re.compile("Step 2: Take offline"))).to_be_visible()
    expect(page.locator(".messages")).to_contain_text(ACK_TEXT)
    assert page.evaluate("window.__marker") == "still here", "the page was reloaded"
    assert page.url == f"{base}/tickets/{ticket.pk}/"

    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED
    [reply] = _outbound(ticket)
    assert reply.text == ACK_TEXT and reply.is_public and reply.sent_by == agent.user
    assert OutboxItem.objects.get().state == OutboxState.QUEUED


def test_empty_reply_shows_the_error_and_changes_nothing(
    page: Page, live_server: object, agent: Persona
) -> None:
    ticket = _ticket(agent)
    base = str(live_server)
    _sign_in(page, base, agent, next_path=f"/tickets/{ticket.pk}/")

    textarea = page.locator("#step-text")
    expect(textarea).to_have_attribute("required", "")
    textarea.evaluate("el => el.removeAttribute('required')")
    page.evaluate("window.__marker = 'still here'")
    page.get_by_role("button", name="Acknowledge", exact=True).click()

    expect(page.get_by_role("alert")).to_have_text("A reply cannot be empty.")
    expect(page.locator("#step-text")).to_have_attribute("aria-describedby", "step-error")
    expect(page.get_by_role("heading", name=re.compile("Step 1: Acknowledge"))).to_be_visible()
    assert page.evaluate("window.__marker") == "still here"

    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    assert _outbound(ticket) == []
    assert not OutboxItem.objects.exists()


def test_acknowledge_works_without_javascript(
    nojs_page: Page, live_server: object, agent: Persona
) -> None:
    page = nojs_page
    ticket = _ticket(agent, customer_username="no_js_nick")
    base = str(live_server)
    _sign_in(page, base, agent)
    page.get_by_role("link", name="@no_js_nick").click()

    page.get_by_label("Public reply to @no_js_nick").fill(ACK_TEXT)
    with page.expect_navigation():
        page.get_by_role("button", name="Acknowledge", exact=True).click()

    assert page.url == f"{base}/tickets/{ticket.pk}/"  # POST, then redirect back (PRG)
    # No worker runs in this module: the reply waits, and the page says so beside the button.
    expect(page.locator("#reply-sent-note")).to_have_text("Acknowledge: queued to send.")
    expect(page.get_by_role("heading", name=re.compile("Step 2: Take offline"))).to_be_visible()
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED
    assert [m.text for m in _outbound(ticket)] == [ACK_TEXT]
    assert OutboxItem.objects.count() == 1


def test_inbox_refreshes_itself(page: Page, live_server: object, agent: Persona) -> None:
    _ticket(agent, customer_username="first_in_line")
    base = str(live_server)
    _sign_in(page, base, agent)
    expect(page.get_by_role("link", name="@first_in_line")).to_be_visible()
    page.evaluate("window.__marker = 'still here'")

    _ticket(agent, customer_username="brand_new_customer")

    expect(page.get_by_role("link", name="@brand_new_customer")).to_be_visible(timeout=8_000)
    expect(page.locator("#open-count")).to_have_text("2")
    assert page.evaluate("window.__marker") == "still here", "the page was reloaded"


def test_manager_sees_dashboard_and_agent_gets_404(
    page: Page, browser: Browser, live_server: object, agent: Persona, manager: Persona
) -> None:
    answered = _ticket(manager)
    _ticket(manager)
    with transaction.atomic():  # as in outbox_send: the timer row is locked
        sla_fulfil_first_response(ticket=answered, at=timezone.now())
    # These tickets were made without their events; the report rows are rebuilt from the store.
    from monitoring.reports.rollups import rebuild_rollups

    rebuild_rollups()
    base = str(live_server)

    _sign_in(page, base, manager)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    page.wait_for_url(f"{base}/monitoring/dashboard/")
    expect(page.locator("#report-backlog tbody tr").last).to_contain_text("2")
    expect(page.locator("#report-sla_by_target tbody tr").first).to_contain_text("100%")
    # (No first-response time: it is read from reply events, and these tickets have none.)

    with _new_context(browser, allow_errors=r"status of 404 \(Not Found\)") as context:
        agent_page = context.new_page()
        _sign_in(agent_page, base, agent)
        expect(agent_page.get_by_role("link", name="Dashboard")).to_have_count(0)
        response = agent_page.goto(f"{base}/monitoring/dashboard/")
        assert response is not None and response.status == 404


def test_step_form_is_reachable_by_keyboard(
    page: Page, live_server: object, agent: Persona
) -> None:
    ticket = _ticket(agent, customer_username="keyboard_kim")
    base = str(live_server)
    _sign_in(page, base, agent, next_path=f"/tickets/{ticket.pk}/")

    reached: list[str] = []
    for _ in range(30):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id || document.activeElement.tagName")
        reached.append(focused)
        if focused == "step-text":
            break
    assert "step-text" in reached, f"Tab never reached the textarea: {reached}"
    expect(page.get_by_label("Public reply to @keyboard_kim")).to_be_focused()
    page.keyboard.type(ACK_TEXT)

    page.keyboard.press("Tab")
    button = page.get_by_role("button", name="Acknowledge", exact=True)
    expect(button).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name=re.compile("Step 2: Take offline"))).to_be_visible()
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED
