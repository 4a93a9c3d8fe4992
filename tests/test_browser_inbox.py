"""The agent inbox in a real browser: the whole journey by keyboard alone, live arrivals, focus
kept across live updates, two agents on one ticket, search, and the phone layout.

They share the run's one Chromium and live server (``tests.test_browser``) and save the
screenshots the README shows to ``docs/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from channels_social.models import SocialAccount
from channels_social.tasks import poll_account
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tests.sandbox_fixtures import XSandbox
from tests.test_browser import _new_context, _sign_in, browser, page  # noqa: F401
from tickets.models import Direction, Status, Ticket

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
MARKER = "window.__inboxMarker"


def _ticket(persona: Persona, **kwargs: object) -> Ticket:
    """An open ticket as intake makes it: its first post is its root, its SLA running."""
    from monitoring.services import sla_start

    ticket = TicketFactory(social_account__brand__organization=persona.organization, **kwargs)
    post = InboundMessageFactory(
        ticket=ticket, text=f"@BrandCare where is my parcel? It is a week late. ({ticket.pk})"
    )
    Ticket.objects.filter(pk=ticket.pk).update(root_message=post)
    sla_start(ticket=ticket)
    ticket.refresh_from_db()
    return ticket


def _shot(tab: Page, name: str, *, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def _focused_id(tab: Page) -> str:
    return str(tab.evaluate("document.activeElement && document.activeElement.id"))


@pytest.mark.worker
def test_an_agent_works_a_mention_to_close_out_with_the_keyboard_alone(
    page: Page,  # noqa: F811
    live_server: object,
    celery_worker_process: object,
    x_sandbox_clean: XSandbox,
    make_account: Callable[..., SocialAccount],
    agent: Persona,
) -> None:
    base = str(live_server)
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    account = make_account(
        external_id="1000", username="AcmeCare", api_base_url=x_sandbox_clean.url
    )
    x_sandbox_clean.control.post_mention(
        "AcmeCare", "2001", "jo_angry", 48_000, "@AcmeCare My order #5521 is two weeks late!"
    )
    _sign_in(page, base, agent)
    poll_account.delay(account.pk)
    expect(page.get_by_role("link", name="@jo_angry")).to_be_visible(timeout=15_000)
    ticket = Ticket.objects.get(social_account=account)

    page.keyboard.press("j")  # the first row
    assert _focused_id(page) == f"open-{ticket.pk}"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/tickets/{ticket.pk}/")
    page.keyboard.press("m")  # assign to me
    expect(page.locator(".flash")).to_contain_text("Assigned to you.")
    expect(page.locator("#assign-me")).to_be_focused()  # after the reload, not the page body
    steps = [
        ("a", 1, "Acknowledge", "Jo, we're sorry your order is late. We're on it now."),
        ("o", 2, "Take offline", "Hi Jo, could you DM us the email on the order?"),
        ("r", 3, "Resolve", "It ships today by express; we refunded the delivery fee."),
        ("c", 4, "Close out", "Glad we got your order moving, Jo. Thanks for waiting!"),
    ]
    for key, number, label, text in steps:
        heading = page.get_by_role("heading", name=re.compile(rf"^Step {number}: {label}\b"))
        expect(heading).to_be_visible(timeout=20_000)
        expect(page.locator("#step-submit")).to_be_enabled(timeout=20_000)
        page.keyboard.press(key)
        assert _focused_id(page) == "step-text"
        page.keyboard.type(text)
        page.keyboard.press("Control+Enter")
        expect(page.locator("#step-heading")).to_be_focused()  # never the page body
        reply = page.locator("#messages li.message.out", has_text=text)
        expect(reply.locator(".delivery")).to_have_text(re.compile(r"^delivered"), timeout=20_000)
        if number == 2:
            _shot(page, "ticket.png", full_page=True)
    expect(page.locator("p.done")).to_contain_text("Closed out publicly")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("u")
    page.wait_for_url(f"{base}/")
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED and ticket.assigned_to == agent.user
    sent = ticket.messages.filter(direction=Direction.OUTBOUND).order_by("pk")
    assert [(m.step, m.text) for m in sent] == [
        ("acknowledge", steps[0][3]),
        ("take_offline", steps[1][3]),
        ("resolve", steps[2][3]),
        ("close_out", steps[3][3]),
    ]


def test_new_tickets_arrive_highlighted_and_the_focus_stays_put(
    page: Page,  # noqa: F811
    live_server: object,
    agent: Persona,
    manager: Persona,
) -> None:
    base = str(live_server)
    first = _ticket(agent, customer_username="first_in_line")
    second = _ticket(agent, customer_username="second_in_line")
    _sign_in(page, base, agent)
    page.evaluate(f"{MARKER} = 'still here'")
    expect(page).to_have_title(re.compile(r"^\(2\) All open"))
    page.keyboard.press("j")
    page.keyboard.press("j")
    focused = _focused_id(page)
    assert focused in {f"open-{first.pk}", f"open-{second.pk}"}
    row_pk = int(focused.split("-")[1])

    # A new ticket arrives and the focused row itself changes (a colleague takes it).
    newcomer = _ticket(agent, customer_username="brand_new_customer")
    Ticket.objects.get(pk=row_pk).assign(manager.user, by=manager.user)

    arrived = page.locator(f"#row-{newcomer.pk}")
    expect(arrived).to_be_visible(timeout=10_000)
    expect(arrived).to_have_class(re.compile(r"\bis-new\b"))
    expect(page.locator(f"#row-{row_pk} td.assignee")).to_have_text("mark", timeout=10_000)
    expect(page).to_have_title(re.compile(r"^\(3\) All open"))
    expect(page.locator("#open-count")).to_have_text("3")
    assert _focused_id(page) == focused, "the live update moved the focus"
    assert page.evaluate(MARKER) == "still here", "the page was reloaded"
    page.keyboard.press("j")  # and the keyboard goes on from where it was
    now_on = _focused_id(page)
    assert now_on != focused
    _shot(page, "inbox.png")

    # m takes the ticket in focus (a bulk action on one row); the focus comes back to it.
    page.keyboard.press("m")
    expect(page.locator(".flash")).to_contain_text("Assign to me: 1 ticket changed.")
    assert _focused_id(page) == now_on
    taken = Ticket.objects.get(pk=int(now_on.split("-")[1]))
    assert taken.assigned_to == agent.user


def test_a_follow_up_arrives_on_an_open_ticket_while_the_agent_types(
    page: Page,  # noqa: F811
    live_server: object,
    agent: Persona,
) -> None:
    base = str(live_server)
    ticket = _ticket(agent, customer_username="follow_up_fran")
    _sign_in(page, base, agent, next_path=f"/tickets/{ticket.pk}/")
    page.evaluate(f"{MARKER} = 'still here'")
    box = page.get_by_label("Public reply to @follow_up_fran")
    box.click()
    page.keyboard.type("So sorry Fran, ")

    InboundMessageFactory(ticket=ticket, text="Also, the tracking link is broken!")

    expect(page.locator("#messages")).to_contain_text("tracking link is broken", timeout=10_000)
    assert _focused_id(page) == "step-text"
    page.keyboard.type("we're on it.")
    expect(box).to_have_value("So sorry Fran, we're on it.")
    expect(page.locator("#sla-box time[data-countdown]").first).to_have_text(
        re.compile(r"^due in \d+")
    )
    assert page.evaluate(MARKER) == "still here"


def test_two_agents_on_one_ticket_see_each_other_and_the_second_is_warned(
    page: Page,  # noqa: F811
    browser: Browser,  # noqa: F811
    live_server: object,
    agent: Persona,
    manager: Persona,
) -> None:
    base = str(live_server)
    ticket = _ticket(agent, customer_username="two_agents_tom")
    url = f"/tickets/{ticket.pk}/"
    _sign_in(page, base, agent, next_path=url)
    alice_box = page.get_by_label("Public reply to @two_agents_tom")
    alice_box.fill("Tom, so sorry about this!")
    with _new_context(browser, allow_errors=r"status of 422") as context:
        mark = context.new_page()
        _sign_in(mark, base, manager, next_path=url)
        # Alice has typed into her box: she is replying, not only viewing.
        expect(mark.locator("#presence")).to_have_text("alice is replying", timeout=10_000)
        mark.get_by_label("Public reply to @two_agents_tom").click()
        mark.keyboard.type("Hi Tom, looking into it now.")
        expect(page.locator("#presence")).to_have_text("mark is replying", timeout=10_000)
        mark.keyboard.press("Control+Enter")
        expect(mark.get_by_role("heading", name=re.compile(r"^Step 2"))).to_be_visible()

        page.get_by_role("button", name="Acknowledge", exact=True).click()
        expect(page.locator("#step-error")).to_contain_text(
            "mark replied meanwhile: “Hi Tom, looking into it now.”"
        )
        expect(page.locator(".unsent")).to_contain_text("Tom, so sorry about this!")
        _shot(page, "collision.png")
    assert [m.text for m in ticket.messages.filter(direction=Direction.OUTBOUND)] == [
        "Hi Tom, looking into it now."
    ]


def test_search_from_anywhere_with_slash(
    page: Page,  # noqa: F811
    live_server: object,
    agent: Persona,
) -> None:
    base = str(live_server)
    refund = _ticket(agent, customer_username="refund_rita")
    InboundMessageFactory(ticket=refund, text="I was promised a REFUND last week")
    other = _ticket(agent, customer_username="parcel_paul")
    _sign_in(page, base, agent, next_path=f"/tickets/{other.pk}/")
    page.keyboard.press("/")  # from a ticket: back to the inbox's search box
    page.wait_for_url(re.compile(r"/\?focus=search$"))
    assert _focused_id(page) == "inbox-search"
    page.keyboard.type("refu")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=refu"))
    expect(page.locator("#rows tr.row")).to_have_count(1)
    expect(page.get_by_role("link", name="@refund_rita")).to_be_visible()
    _shot(page, "search.png")


def test_the_inbox_is_cards_on_a_390px_phone(
    page: Page,  # noqa: F811
    live_server: object,
    agent: Persona,
) -> None:
    base = str(live_server)
    for name in ("phone_fay", "phone_gus", "phone_hal"):
        _ticket(agent, customer_username=name)
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, base, agent)
    expect(page.locator("#rows tr.row")).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#rows tr.row").first.evaluate("r => getComputedStyle(r).display") == (
        "block"
    )
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/tickets/\d+/$"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.get_by_label(re.compile(r"^Public reply to @phone_"))).to_be_visible()
    page.go_back()
    _shot(page, "phone.png", full_page=True)


def test_a_colleagues_note_and_promise_appear_while_the_agent_writes_one(
    page: Page,  # noqa: F811
    browser: Browser,  # noqa: F811
    live_server: object,
    agent: Persona,
    manager: Persona,
) -> None:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    base = str(live_server)
    ticket = _ticket(agent, customer_username="side_panel_sam")
    url = f"/tickets/{ticket.pk}/"
    _sign_in(page, base, agent, next_path=url)
    page.evaluate(f"{MARKER} = 'still here'")
    page.get_by_label("Public reply to @side_panel_sam").fill("Sam, so sorry!")
    page.locator("#note-body").click()
    page.keyboard.type("I will ring the courier")

    due = timezone.localtime(
        timezone.now() + timedelta(days=1), ZoneInfo(agent.organization.time_zone)
    ).strftime("%Y-%m-%dT%H:%M")
    with _new_context(browser) as context:
        mark = context.new_page()
        _sign_in(mark, base, manager, next_path=url)
        mark.locator("#note-body").fill("Sam is a journalist: be careful")
        mark.get_by_role("button", name="Add note").click()
        expect(mark.locator("#notes-list")).to_contain_text("be careful")
        mark.locator("#promise-text").fill("Call Sam back with the tracking number")
        mark.locator("#promise-due").fill(due)
        mark.get_by_role("button", name="Record promise").click()
        expect(mark.locator("#promises-list")).to_contain_text("tracking number")

    # Alice sees both arrive by themselves, still in her note with her words, her reply kept.
    expect(page.locator("#notes-list")).to_contain_text(
        "Sam is a journalist: be careful", timeout=10_000
    )
    expect(page.locator("#promises-list")).to_contain_text(
        "Call Sam back with the tracking number", timeout=10_000
    )
    assert _focused_id(page) == "note-body"
    page.keyboard.type(" today.")
    expect(page.locator("#note-body")).to_have_value("I will ring the courier today.")
    expect(page.get_by_label("Public reply to @side_panel_sam")).to_have_value("Sam, so sorry!")
    assert page.evaluate(MARKER) == "still here", "the page was reloaded"
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#notes-list li.note")).to_have_count(2)
    assert _focused_id(page) == "note-submit", "adding a note moved the focus out of the panel"
    # Keeping the promise takes its button away: the focus stays in the panel, on its heading.
    page.get_by_role("button", name="Kept: Call Sam back with the tracking number").click()
    expect(page.locator("#promises-list")).to_contain_text("Kept")
    expect(page.locator("#promises-box h2")).to_be_focused()
    assert list(ticket.notes.order_by("pk").values_list("body", flat=True)) == [
        "Sam is a journalist: be careful",
        "I will ring the courier today.",
    ]
    assert ticket.promises.get().text == "Call Sam back with the tracking number"
