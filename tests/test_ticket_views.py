"""Inbox and ticket views: order, htmx partials, plain forms, and isolation between tenants."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring.services import sla_start
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.models import Message, OutboxItem, Priority, Status, Ticket


def _ticket(persona: Persona, **kwargs: object) -> Ticket:
    ticket = TicketFactory(social_account__brand__organization=persona.organization, **kwargs)
    InboundMessageFactory(ticket=ticket, text=f"Help please, ticket of {ticket.customer_username}")
    sla_start(ticket=ticket)
    return ticket


def test_anonymous_is_sent_to_login(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get(reverse("tickets:inbox"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_inbox_orders_by_priority_then_due_time(agent: Persona) -> None:
    now = timezone.now()
    normal_soon = _ticket(agent, priority=Priority.NORMAL, opened_at=now - timedelta(minutes=50))
    urgent_later = _ticket(agent, priority=Priority.URGENT, opened_at=now)
    urgent_sooner = _ticket(agent, priority=Priority.URGENT, opened_at=now - timedelta(minutes=30))
    _ticket(agent, status=Status.CLOSED)  # closed: not in the inbox

    response = agent.client().get(reverse("tickets:inbox"))
    assert response.status_code == 200
    order = [t.pk for t in response.context["tickets"]]
    assert order == [urgent_sooner.pk, urgent_later.pk, normal_soon.pk]


def test_inbox_query_count_does_not_grow_with_tickets(
    agent: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    client = agent.client()
    client.get(reverse("tickets:inbox"))  # the organisation's counts token is made
    # Committed (the counts' token changes after commit): both pages count afresh.
    with django_capture_on_commit_callbacks(execute=True):
        _ticket(agent)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("tickets:inbox"))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            _ticket(agent)
    with CaptureQueriesContext(connection) as many:
        response = client.get(reverse("tickets:inbox"))
    assert len(response.context["tickets"]) == 11
    assert len(many) == len(few)


def test_inbox_live_poll_is_a_partial(agent: Persona) -> None:
    _ticket(agent)
    client = agent.client()
    response = client.get(reverse("tickets:inbox"), {"live": "1"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200  # no token: the page's state is unknown, all rows
    assert b"<html" not in response.content and b'id="rows"' in response.content
    assert "HX-Request" in response["Vary"]


def test_outsider_sees_none_of_another_orgs_tickets(agent: Persona, outsider: Persona) -> None:
    ticket = _ticket(agent)
    client = outsider.client()
    inbox = client.get(reverse("tickets:inbox"))
    assert list(inbox.context["tickets"]) == []
    assert client.get(reverse("tickets:detail", args=[ticket.pk])).status_code == 404
    response = client.post(
        reverse("tickets:step", args=[ticket.pk, "acknowledge"]), {"text": "Hi from Globex"}
    )
    assert response.status_code == 404
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    assert not OutboxItem.objects.exists()


def test_ticket_page_shows_conversation_step_form_sla_and_history(agent: Persona) -> None:
    ticket = _ticket(agent)
    response = agent.client().get(reverse("tickets:detail", args=[ticket.pk]))
    body = response.content.decode()
    assert "Help please" in body
    assert "Step 1: Acknowledge" in body
    assert f'hx-post="/tickets/{ticket.pk}/steps/acknowledge/"' in body
    assert f'action="/tickets/{ticket.pk}/steps/acknowledge/"' in body  # works without JS
    assert "First response SLA" in body and "Running" in body


def test_plain_form_post_takes_the_step_and_redirects(agent: Persona) -> None:
    ticket = _ticket(agent)
    response = agent.client().post(
        reverse("tickets:step", args=[ticket.pk, "acknowledge"]),
        {"text": "We're so sorry — looking into it now."},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("tickets:detail", args=[ticket.pk])
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED
    assert OutboxItem.objects.get().message.text == "We're so sorry — looking into it now."


def test_htmx_post_returns_the_workspace_partial(agent: Persona) -> None:
    ticket = _ticket(agent)
    response = agent.client().post(
        reverse("tickets:step", args=[ticket.pk, "acknowledge"]),
        {"text": "On it!"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert b'id="workspace"' in response.content and b"<html" not in response.content
    assert b"Step 2: Take offline" in response.content
    assert response["HX-Trigger"] == "ticketChanged"


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize(
    ("step", "text", "error"),
    [
        ("acknowledge", "", "A reply cannot be empty."),
        ("acknowledge", "z" * 300, "the limit is 280"),
        ("resolve", "Fixed it", "the next step is Acknowledge, not Resolve"),
    ],
)
def test_bad_step_input_gets_a_clear_message_and_keeps_the_draft(
    agent: Persona, htmx: bool, step: str, text: str, error: str
) -> None:
    ticket = _ticket(agent)
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = agent.client().post(
        reverse("tickets:step", args=[ticket.pk, step]), {"text": text}, **headers
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert error in body
    if text:
        assert text in body  # the agent's draft is not lost
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    assert Message.objects.filter(ticket=ticket).count() == 1
    assert not OutboxItem.objects.exists()


def test_unknown_ticket_id_is_404(agent: Persona) -> None:
    assert agent.client().get(reverse("tickets:detail", args=[999999])).status_code == 404


def test_user_without_membership_gets_404(django_user_model) -> None:  # type: ignore[no-untyped-def]
    from django.test import Client

    user = django_user_model.objects.create_user("drifter", password="pw")
    client = Client()
    client.force_login(user)
    assert client.get(reverse("tickets:inbox")).status_code == 404


def test_get_on_step_url_is_not_allowed(agent: Persona) -> None:
    ticket = _ticket(agent)
    response = agent.client().get(reverse("tickets:step", args=[ticket.pk, "acknowledge"]))
    assert response.status_code == 405


def test_ticket_page_refreshes_itself_in_every_state(agent: Persona) -> None:
    ticket = _ticket(agent)
    url = reverse("tickets:detail", args=[ticket.pk])
    client = agent.client()
    page = client.get(url).content.decode()
    assert 'id="ticket-live"' in page and 'hx-trigger="every 3s"' in page  # New, too
    client.post(reverse("tickets:step", args=[ticket.pk, "acknowledge"]), {"text": "On it!"})
    assert 'id="ticket-live"' in client.get(url).content.decode()
    ticket.refresh_from_db()
    ticket.status = Status.CLOSED
    ticket.save()
    assert 'id="ticket-live"' in client.get(url).content.decode()  # closed: still live


def test_ticket_page_query_count_does_not_grow_with_messages(agent: Persona) -> None:
    from tickets.services import ticket_take_step

    ticket = _ticket(agent)
    client = agent.client()
    url = reverse("tickets:detail", args=[ticket.pk])
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    ticket_take_step(ticket=ticket, step="acknowledge", by=agent.user, text="Sorry!")
    for n in range(8):
        InboundMessageFactory(ticket=ticket, text=f"follow-up {n}")
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert len(response.context["conversation"]) == 10
    assert len(many) == len(few)


def test_htmx_refresh_after_the_session_ended_reloads_to_login(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get(
        reverse("tickets:inbox"),
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/tickets/7/",
    )
    assert response.status_code == 204
    # Back to the page the agent was on once they have signed in again.
    assert response["HX-Redirect"] == reverse("login") + "?next=/tickets/7/"


def test_a_refused_reply_shows_the_platforms_reason_above_the_reopened_step(
    agent: Persona,
) -> None:
    from tickets.services import ticket_take_step

    ticket = _ticket(agent)
    message = ticket_take_step(ticket=ticket, step="acknowledge", by=agent.user, text="Hi!")
    OutboxItem.objects.update(state="failed")
    ticket.refresh_from_db()
    ticket.reopen_step(
        "acknowledge",
        message=message,
        reason="You are not allowed to create a Tweet with duplicate content.",
        cause="reply_refused",
    )
    body = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "refused the last reply: You are not allowed to create a Tweet with duplicate" in body
    assert "Step 1: Acknowledge" in body
    assert _composer(body) == "Hi!"  # the refused text, back in the box to edit


def _composer(body: str) -> str:
    """What the step's text box holds."""
    match = re.search(r'<textarea id="step-text"[^>]*>(.*?)</textarea>', body, re.S)
    assert match, "no step form"
    return html.unescape(match.group(1))


def test_plain_form_error_is_shown_once(agent: Persona) -> None:
    ticket = _ticket(agent)
    response = agent.client().post(
        reverse("tickets:step", args=[ticket.pk, "acknowledge"]), {"text": ""}
    )
    assert response.content.decode().count("A reply cannot be empty.") == 1


def test_live_refresh_swaps_the_whole_workspace_when_the_step_changed(agent: Persona) -> None:
    ticket = _ticket(agent)
    url = reverse("tickets:detail", args=[ticket.pk])
    client = agent.client()
    live = {"live": "1", "h": ""}
    same = client.get(url, {**live, "shown_step": "acknowledge"}, HTTP_HX_REQUEST="true")
    assert "HX-Retarget" not in same
    changed = client.get(url, {**live, "shown_step": "take_offline"}, HTTP_HX_REQUEST="true")
    assert changed["HX-Retarget"] == "#workspace" and changed["HX-Reselect"] == "#workspace"
    # Out-of-band parts would be taken out of the workspace before it is swapped in.
    assert 'hx-swap-oob="true"' in same.content.decode()
    assert "hx-swap-oob" not in changed.content.decode()
    assert "hx-swap-oob" not in client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-swap-oob" not in client.get(url).content.decode()


def test_a_draft_for_a_step_the_ticket_moved_past_stays_out_of_the_box(agent: Persona) -> None:
    from tickets.services import ticket_take_step

    ticket = _ticket(agent)
    ticket_take_step(ticket=ticket, step="acknowledge", by=agent.user, text="On it!")
    # A second tab still showing step 1 sends its public reply.
    response = agent.client().post(
        reverse("tickets:step", args=[ticket.pk, "acknowledge"]),
        {"text": "Sorry, Jo, looking into it"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "the next step is Take offline, not Acknowledge" in body
    assert 'Direct message to <span dir="auto">@' in body and _composer(body) == ""
    assert "Not sent, written for Acknowledge" in body and "Sorry, Jo, looking into it" in body


def _uncertain_reply(agent: Persona) -> tuple[Ticket, Message]:
    from tickets.services import ticket_take_step

    ticket = _ticket(agent)
    message = ticket_take_step(ticket=ticket, step="acknowledge", by=agent.user, text="On it!")
    OutboxItem.objects.update(
        state="uncertain", last_error="X did not answer (ReadTimeout).", claimed_at=timezone.now()
    )
    return ticket, message


@pytest.mark.django_db(transaction=True)
def test_an_uncertain_reply_confirmed_as_posted_counts_as_delivered(agent: Persona) -> None:
    from monitoring.models import TimerState

    ticket, message = _uncertain_reply(agent)
    handle = ticket.social_account.username
    client = agent.client()
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "It was posted" in page and "It was not posted" in page
    response = client.post(
        reverse("tickets:settle", args=[ticket.pk, message.pk]),
        {"outcome": "posted", "post": f"https://x.com/{handle}/status/1861234567890123456?s=20"},
    )
    assert response.status_code == 302
    message.refresh_from_db()
    assert message.external_id == "1861234567890123456"
    assert message.outbox.state == "sent"
    assert ticket.sla_timers.get().state == TimerState.MET
    event = ticket.events.get(kind="reply_sent")
    assert event.actor == agent.user and event.data["confirmed_by_agent"] is True


def test_an_uncertain_reply_not_posted_reopens_its_step(agent: Persona) -> None:
    ticket, message = _uncertain_reply(agent)
    response = agent.client().post(
        reverse("tickets:settle", args=[ticket.pk, message.pk]),
        {"outcome": "not_posted"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert b"Step 1: Acknowledge" in response.content
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    message.refresh_from_db()
    assert message.outbox.state == "failed"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"post": "https://x.com/{handle}/status/123"}, "Say what you found on the platform"),
        ({"outcome": "maybe"}, "Say what you found on the platform"),
        ({"outcome": "posted", "post": "it's there"}, "That is not a link to a post on X"),
        ({"outcome": "posted", "post": ""}, "Paste the post&#x27;s link"),
        (
            {"outcome": "posted", "post": "https://x.com/someone_else/status/1861234567890123456"},
            "That link is a post by @someone_else, not by @{handle}",
        ),
        (
            # 25 digits: never silently cut to the last 20.
            {
                "outcome": "posted",
                "post": "https://x.com/{handle}/status/1234567890123456789012345",
            },
            "is not a whole X post id",
        ),
        ({"outcome": "posted", "post": "1234567890123456789012345"}, "too long for an X post id"),
        (
            {"outcome": "posted", "post": "https://evil.example/{handle}/status/123"},
            "That is not a link to a post on X",
        ),
    ],
)
def test_settling_needs_an_explicit_answer_and_the_brands_own_post(
    agent: Persona, form: dict[str, str], error: str
) -> None:
    ticket, message = _uncertain_reply(agent)
    handle = ticket.social_account.username
    url = reverse("tickets:settle", args=[ticket.pk, message.pk])
    sent = {key: value.format(handle=handle) for key, value in form.items()}
    bad = agent.client().post(url, sent)
    assert bad.status_code == 422
    assert error.format(handle=handle) in bad.content.decode()
    message.refresh_from_db()
    assert message.outbox.state == "uncertain" and message.external_id == ""
    assert not ticket.events.filter(kind__in=["reply_sent", "settled_not_posted"]).exists()


def test_settling_belongs_to_the_org(agent: Persona, outsider: Persona) -> None:
    ticket, message = _uncertain_reply(agent)
    url = reverse("tickets:settle", args=[ticket.pk, message.pk])
    assert outsider.client().post(url, {"outcome": "not_posted"}).status_code == 404
    message.refresh_from_db()
    assert message.outbox.state == "uncertain"
