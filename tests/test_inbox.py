"""The agent inbox: views and their counts, filters, saved views, search, bulk actions, the
live update that sends only what changed, presence, and its fixed query count."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring.services import sla_start
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.inbox import presence_touch
from tickets.models import (
    ApprovalRequest,
    Direction,
    EventKind,
    Message,
    MessageKind,
    OutboxItem,
    OutboxState,
    Priority,
    SavedView,
    Status,
    Step,
    StepError,
    Ticket,
    TicketEvent,
)
from tickets.services import ticket_take_step
from tickets.services.approval import Decision, approval_decide

INBOX = reverse("tickets:inbox")


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # Presence and live state live in the cache; an in-process cache outlives a test's rows.
    if "locmem" in type(cache).__module__:
        cache.clear()
    yield


def _ticket(persona: Persona, text: str = "", **kwargs: object) -> Ticket:
    ticket = TicketFactory(social_account__brand__organization=persona.organization, **kwargs)
    message = InboundMessageFactory(
        ticket=ticket, text=text or f"Help please, ticket of {ticket.customer_username}"
    )
    Ticket.objects.filter(pk=ticket.pk).update(root_message=message)
    sla_start(ticket=ticket)
    ticket.refresh_from_db()
    return ticket


def _outbound(ticket: Ticket, text: str, **kwargs: object) -> Message:
    """A brand reply sent on the platform itself (intake stores it already delivered)."""
    message = Message.objects.create(
        organization=ticket.organization,
        ticket=ticket,
        platform=ticket.platform,
        kind=MessageKind.REPLY,
        direction=Direction.OUTBOUND,
        text=text,
        created_at=timezone.now(),
        external_id=f"native-{text[:8]}",
        **kwargs,
    )
    OutboxItem.objects.create(
        organization=ticket.organization, message=message, state=OutboxState.SENT
    )
    ticket.refresh_last_message_direction()  # as intake does for the brand's own post
    return message


def _rows(response: object) -> list[int]:
    return [t.pk for t in response.context["tickets"]]  # type: ignore[attr-defined]


def _hold(ticket: Ticket, agent: Persona) -> ApprovalRequest:
    """The agent's acknowledgement, held for a manager (the ticket needs approval)."""
    held = ticket_take_step(
        ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Sorry, we are on it."
    )
    assert isinstance(held, ApprovalRequest)
    return held


def _live(client: object, token: str, **params: str) -> object:
    return client.get(  # type: ignore[attr-defined]
        INBOX, {**params, "live": "1", "token": token}, HTTP_HX_REQUEST="true"
    )


def _token(response: object) -> str:
    match = re.search(r'id="live-token" name="token" value="([^"]+)"', response.content.decode())  # type: ignore[attr-defined]
    assert match, "no live token on the page"
    return match.group(1)


def test_each_view_holds_its_tickets_and_counts_them(agent: Persona, manager: Persona) -> None:
    now = timezone.now()
    mine = _ticket(agent)
    mine.assign(agent.user, by=agent.user)
    theirs = _ticket(agent)
    theirs.assign(manager.user, by=manager.user)
    unassigned = _ticket(agent)
    breaching = _ticket(agent)
    breaching.set_sla_due(now + timedelta(minutes=10))
    waiting = _ticket(agent, status=Status.OFFLINE)
    _outbound(waiting, "Could you DM us your order number?", is_public=False)
    # Awaiting approval: a reply held for a manager. A ticket merely flagged (its replies will
    # need one, none written yet) or whose held reply was sent back has nothing to approve.
    approval = _ticket(agent)
    approval.require_approval("VIP customer", by=manager.user)
    _hold(approval, agent)
    flagged = _ticket(agent)
    flagged.require_approval("VIP customer", by=manager.user)
    sent_back = _ticket(agent)
    sent_back.require_approval("VIP customer", by=manager.user)
    approval_decide(
        approval=_hold(sent_back, agent),
        by=manager.user,
        decision=Decision.REJECT,
        comment="Say sorry first",
    )
    closed = _ticket(agent, status=Status.CLOSED, closed_at=now)
    for t in (mine, theirs, unassigned, waiting, approval, flagged, sent_back):
        t.set_sla_due(now + timedelta(hours=5))  # not breaching soon

    client = agent.client()
    expected = {
        "mine": {mine.pk},
        "unassigned": {unassigned.pk, breaching.pk, waiting.pk, approval.pk, flagged.pk}
        | {sent_back.pk},
        "open": {mine.pk, theirs.pk, unassigned.pk, breaching.pk, waiting.pk, approval.pk}
        | {flagged.pk, sent_back.pk},
        "breaching": {breaching.pk},
        "waiting": {waiting.pk},
        "approval": {approval.pk},
        "closed": {closed.pk},
    }
    for view, pks in expected.items():
        response = client.get(INBOX, {"view": view})
        assert set(_rows(response)) == pks, view
        assert response.context["counts"][view] == len(pks), view
        assert response.context["total"] == len(pks)
    page = client.get(INBOX, {"view": "mine"})
    assert page.content.decode().count('aria-current="page"') == 2  # top nav and the view
    assert "<title>(1) Mine · Inbox · CareInbox</title>" in page.content.decode()


def test_the_inbox_renders_in_a_fixed_number_of_queries(
    agent: Persona, django_assert_max_num_queries: object, django_capture_on_commit_callbacks: Any
) -> None:
    # Session, user, membership; the view's count; the rows (with their root post, brand and
    # assignee); their tags; the counts' token; every view's count in one, Closed's and the
    # due times about to enter "Breaching soon" (none of the three when the counts are cached
    # under the token); saved views; the filters' members, brands and tags. Presence is one
    # cache round trip, not a query. An absolute baseline: one new query fails at once.
    baseline = 13
    client = agent.client()
    with django_assert_max_num_queries(baseline + 2):  # type: ignore[operator]
        client.get(INBOX)  # the organisation's first page makes its token (written, read back)
    with django_capture_on_commit_callbacks(execute=True):  # committed: a new token
        for n in range(5):
            t = _ticket(agent)
            t.add_tag(f"tag{n}", by=None)
            t.assign(agent.user, by=None)
    with django_assert_max_num_queries(baseline):  # type: ignore[operator]
        few = client.get(INBOX)
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(45):
            t = _ticket(agent)
            t.add_tag(f"tag{n % 7}", by=None)
    with django_assert_max_num_queries(baseline):  # type: ignore[operator]
        many = client.get(INBOX)
    assert len(_rows(few)) == 5 and len(_rows(many)) == 50
    assert many.context["counts"]["open"] == 50  # type: ignore[attr-defined]
    with django_assert_max_num_queries(baseline - 3):  # type: ignore[operator]
        client.get(INBOX)  # nothing changed: the counts from the cache
    with django_assert_max_num_queries(baseline - 5):  # type: ignore[operator]
        assert _live(client, "").status_code == 200  # the live update: no filter choices


def test_filters_narrow_and_sorts_order(agent: Persona) -> None:
    big = _ticket(agent, customer_followers=90_000, priority=Priority.HIGH)
    small = _ticket(agent, customer_followers=10)
    small.add_tag("outage", by=None)
    client = agent.client()
    assert _rows(client.get(INBOX, {"followers": "1000"})) == [big.pk]
    assert _rows(client.get(INBOX, {"tag": small.tags.get().pk})) == [small.pk]
    assert _rows(client.get(INBOX, {"priority": "2"})) == [big.pk]
    assert _rows(client.get(INBOX, {"step": "new", "sort": "reach"})) == [big.pk, small.pk]
    assert _rows(client.get(INBOX, {"assignee": "none", "sort": "newest"})) == [small.pk, big.pk]
    assert _rows(client.get(INBOX, {"platform": "facebook"})) == []


def test_a_bad_filter_says_so_and_shows_the_view_unfiltered(agent: Persona) -> None:
    _ticket(agent)
    response = agent.client().get(INBOX, {"followers": "lots", "priority": "9"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'role="alert"' in body and "Enter a whole number." in body
    assert len(_rows(response)) == 1


def test_an_agent_saves_a_view_and_opens_it_again(agent: Persona, outsider: Persona) -> None:
    big = _ticket(agent, customer_followers=50_000)
    _ticket(agent, customer_followers=5)
    client = agent.client()
    page = client.get(INBOX, {"followers": "1000", "sort": "reach"}).content.decode()
    save_form = re.search(r'<form class="save-view".*?</form>', page, re.S)
    assert save_form and 'name="followers" value="1000"' in save_form.group(0)
    assert 'name="sort"' in save_form.group(0)
    response = client.post(
        reverse("tickets:saved_view_create"),
        {"name": "  Big  reach ", "view": "open", "followers": "1000", "sort": "reach"},
    )
    saved = SavedView.objects.get()
    assert (saved.name, saved.filters, saved.sort) == (
        "Big reach",
        {"followers": 1000, "view": "open"},
        "reach",
    )
    assert response["Location"] == f"{INBOX}?saved={saved.pk}"
    page = client.get(INBOX, {"saved": saved.pk})
    assert _rows(page) == [big.pk]
    assert "Big reach" in page.content.decode()
    # Nameless: refused, nothing saved. Another organisation's agent: a 404.
    client.post(reverse("tickets:saved_view_create"), {"name": " ", "followers": "1"})
    assert SavedView.objects.count() == 1
    assert outsider.client().get(INBOX, {"saved": saved.pk}).status_code == 404
    deleted = outsider.client().post(reverse("tickets:saved_view_delete", args=[saved.pk]))
    assert deleted.status_code == 404 and SavedView.objects.count() == 1
    client.post(reverse("tickets:saved_view_delete", args=[saved.pk]))
    assert not SavedView.objects.exists()


def test_search_finds_words_in_messages_and_customers_open_and_closed(agent: Persona) -> None:
    refund = _ticket(agent, "Still waiting for my REFUND after three weeks")
    InboundMessageFactory(ticket=refund, text="Order 5521, paid by card")
    _ticket(agent, "My parcel is late", customer_username="parcel_pete")
    archived = _ticket(agent, "refunded twice?!", status=Status.CLOSED, closed_at=timezone.now())
    client = agent.client()
    assert _rows(client.get(INBOX, {"q": "refund"})) == [refund.pk]  # a word's start
    assert _rows(client.get(INBOX, {"q": "5521 card"})) == [refund.pk]  # a follow-up, all words
    assert _rows(client.get(INBOX, {"q": "pete"})) != []  # the customer's handle
    assert _rows(client.get(INBOX, {"q": "refund", "view": "closed"})) == [archived.pk]
    assert _rows(client.get(INBOX, {"q": "refund card nowhere"})) == []
    # tsquery syntax in a search is only words: no error, no injection.
    response = client.get(INBOX, {"q": "refund & | ! :* ('"})
    assert response.status_code == 200 and _rows(response) == [refund.pk]
    empty = client.get(INBOX, {"q": "zebra"})
    assert 'Nothing in All open matches “<span dir="auto">zebra</span>”.' in empty.content.decode()


@pytest.mark.skipif(
    "postgresql" not in __import__("django.conf").conf.settings.DATABASES["default"]["ENGINE"],
    reason="the GIN index is PostgreSQL's",
)
def test_postgres_search_uses_the_gin_index(agent: Persona) -> None:
    from tickets.inbox import search

    _ticket(agent, "refund please")
    # A rare search reads the matching tickets' ids first (``search_plan``: "union").
    with CaptureQueriesContext(connection) as captured:
        search(Ticket.objects.all(), "refund")
    [ids] = [q["sql"] for q in captured.captured_queries if "UNION" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {ids}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "message_text_fts_idx" in plan, plan


def test_live_update_sends_only_what_changed(
    agent: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    first = _ticket(agent, customer_username="first_one")
    second = _ticket(agent, customer_username="second_one")
    client = agent.client()
    page = client.get(INBOX)
    token = _token(page)

    unchanged = _live(client, token)
    assert unchanged.status_code == 204 and unchanged.content == b""  # type: ignore[attr-defined]

    # Committed (the test's transaction never commits): the counts' token changes after commit.
    with django_capture_on_commit_callbacks(execute=True):
        newcomer = _ticket(agent, customer_username="brand_new")
    arrival = _live(client, token)
    body = arrival.content.decode()  # type: ignore[attr-defined]
    assert "@brand_new" in body and "@first_one" not in body and "@second_one" not in body
    assert 'hx-swap-oob="beforeend:#rows"' in body
    assert re.search(r'id="open-count" hx-swap-oob="innerHTML">3<', body)  # the counts came along
    order = json.loads(arrival["HX-Trigger-After-Settle"])["inbox:order"]  # type: ignore[index]
    assert order["added"] == [newcomer.pk]
    assert set(order["order"]) == {first.pk, second.pk, newcomer.pk}

    token = _token(arrival)
    first.assign(agent.user, by=agent.user)
    changed = _live(client, token).content.decode()  # type: ignore[attr-defined]
    assert f'<tr hx-swap-oob="true" id="row-{first.pk}"' in changed
    assert "@second_one" not in changed and "@brand_new" not in changed

    token = _token_from(changed)
    first.close_without_reply(reason="spam", note="bot account", by=agent.user)
    gone = _live(client, token)
    left = json.loads(gone["HX-Trigger-After-Settle"])["inbox:order"]["order"]  # type: ignore[index]
    assert first.pk not in left and set(left) == {second.pk, newcomer.pk}


def test_the_awaiting_approval_count_is_live(
    agent: Persona, manager: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    ticket = _ticket(agent, customer_username="vip_val")
    ticket.require_approval("VIP customer", by=manager.user)
    client = agent.client()
    page = client.get(INBOX, {"view": "approval"})
    assert _rows(page) == [] and page.context["counts"]["approval"] == 0  # type: ignore[attr-defined]
    token = _token(page)
    assert _live(client, token, view="approval").status_code == 204  # flagged: nothing to do

    with django_capture_on_commit_callbacks(execute=True):
        held = _hold(ticket, agent)
    arrived = _live(client, token, view="approval")
    body = arrived.content.decode()  # type: ignore[attr-defined]
    assert re.search(r'id="count-approval" hx-swap-oob="innerHTML">1<', body)
    assert "@vip_val" in body and 'hx-swap-oob="beforeend:#rows"' in body

    with django_capture_on_commit_callbacks(execute=True):
        approval_decide(
            approval=held, by=manager.user, decision=Decision.REJECT, comment="Say sorry first"
        )
    gone = _live(client, _token(arrived), view="approval")
    body = gone.content.decode()  # type: ignore[attr-defined]
    assert re.search(r'id="count-approval" hx-swap-oob="innerHTML">0<', body)
    assert json.loads(gone["HX-Trigger-After-Settle"])["inbox:order"]["order"] == []  # type: ignore[index]


def test_the_sentiment_filter_and_a_saved_view_of_it(agent: Persona) -> None:
    angry = _ticket(agent, sentiment="negative", sentiment_score=-0.8)
    calm = _ticket(agent, sentiment="neutral")
    happy = _ticket(agent, sentiment="positive", sentiment_score=0.7)
    client = agent.client()
    assert _rows(client.get(INBOX, {"sentiment": "negative"})) == [angry.pk]
    assert _rows(client.get(INBOX, {"sentiment": "neutral"})) == [calm.pk]
    assert _rows(client.get(INBOX, {"sentiment": "positive"})) == [happy.pk]
    assert set(_rows(client.get(INBOX, {"sentiment": ""}))) == {angry.pk, calm.pk, happy.pk}
    page = client.get(INBOX, {"sentiment": "furious"})  # not a choice: said, and unfiltered
    assert "Select a valid choice" in page.content.decode() and len(_rows(page)) == 3
    assert '<option value="negative">Negative</option>' in page.content.decode()

    client.post(
        reverse("tickets:saved_view_create"),
        {"name": "Angry", "view": "open", "sentiment": "negative"},
    )
    saved = SavedView.objects.get()
    assert saved.filters == {"sentiment": "negative", "view": "open"}
    assert _rows(client.get(INBOX, {"saved": saved.pk})) == [angry.pk]


def _token_from(body: str) -> str:
    match = re.search(r'id="live-token" name="token" value="([^"]+)"', body)
    assert match
    return match.group(1)


def test_a_lost_live_state_gets_every_row_again(agent: Persona) -> None:
    _ticket(agent, customer_username="only_one")
    response = _live(agent.client(), "not-a-token-we-gave")
    body = response.content.decode()  # type: ignore[attr-defined]
    assert '<tbody id="rows" hx-swap-oob="true">' in body and "@only_one" in body


def test_bulk_actions_assign_tag_and_close_with_a_reason(
    agent: Persona, manager: Persona, outsider: Persona
) -> None:
    tickets = [_ticket(agent) for _ in range(3)]
    ids = [str(t.pk) for t in tickets]
    client = agent.client()
    bulk = reverse("tickets:bulk")

    # An agent claims tickets; handing them out is a manager's (the ticket page's rule).
    refused = client.post(
        bulk, {"action": "assign", "assignee": manager.user.pk, "ticket": ids[:2]}, follow=True
    )
    assert "a manager assigns it" in refused.content.decode()
    assert not Ticket.objects.filter(assigned_to__isnull=False).exists()
    manager.client().post(
        bulk, {"action": "assign", "assignee": manager.user.pk, "ticket": ids[:2]}
    )
    client.post(bulk, {"action": "tag", "tag": "#Outage", "ticket": ids})
    # Closing without a reason is refused, and changes nothing.
    refused = client.post(bulk, {"action": "spam", "ticket": ids}, follow=True)
    assert "Say why they are closed" in refused.content.decode()
    assert Ticket.objects.filter(status=Status.CLOSED).count() == 0
    done = client.post(
        bulk, {"action": "duplicate", "reason": "same outage as #1", "ticket": ids[1:]}, follow=True
    )
    assert "Close as duplicate: 2 tickets changed." in done.content.decode()

    for t in tickets:
        t.refresh_from_db()
    assert [t.assigned_to_id for t in tickets] == [manager.user.pk, manager.user.pk, None]
    assert all(list(t.tags.values_list("name", flat=True)) == ["outage"] for t in tickets)
    assert [t.status for t in tickets] == [Status.NEW, Status.CLOSED, Status.CLOSED]
    assert tickets[1].closed_as == "duplicate"
    # One kind for every close without a reply, the reason and the typed note in it.
    event = tickets[1].events.get(kind=EventKind.CLOSED_WITHOUT_CLOSE_OUT)
    assert event.actor == agent.user and event.data["reason"] == "duplicate"
    assert event.data["note"] == "same outage as #1"
    assert not TicketEvent.objects.filter(
        kind__in=[EventKind.CLOSED_AS_SPAM, EventKind.CLOSED_AS_DUPLICATE]
    ).exists()
    # Another organisation's agent cannot touch them, even with their ids.
    outsider.client().post(bulk, {"action": "assign_me", "ticket": ids})
    tickets[0].refresh_from_db()
    assert tickets[0].assigned_to_id == manager.user.pk


def test_closing_without_a_reply_needs_a_known_reason(agent: Persona) -> None:
    ticket = _ticket(agent)
    with pytest.raises(StepError, match="Choose a reason"):
        ticket.close_without_reply(reason="boring", by=agent.user)
    with pytest.raises(StepError, match="when the reason is"):
        ticket.close_without_reply(reason="other", note="   ", by=agent.user)
    assert ticket.close_without_reply(reason="spam", note="bot", by=agent.user) is not None
    assert ticket.close_without_reply(reason="spam", by=agent.user) is None  # closed already
    ticket.refresh_from_db()
    assert (ticket.status, ticket.closed_as) == (Status.CLOSED, "spam")
    assert ticket.closed_without_reply_label == "Spam"


def test_bulk_close_is_refused_whole_while_a_promise_is_open(agent: Persona) -> None:
    from tickets.services.promises import promise_make

    held, free = _ticket(agent), _ticket(agent)
    promise_make(
        ticket=held,
        by=agent.user,
        text="Call back",
        due_at=timezone.now() + timedelta(hours=3),
        remind_before=timedelta(minutes=30),
    )
    response = agent.client().post(
        reverse("tickets:bulk"),
        {"action": "spam", "reason": "bots", "ticket": [str(held.pk), str(free.pk)]},
        follow=True,
    )
    assert f"Ticket #{held.pk}: A promise is still open" in response.content.decode()
    assert Ticket.objects.filter(status=Status.CLOSED).count() == 0


def test_rows_show_who_else_is_on_a_ticket_until_it_expires(
    agent: Persona, manager: Persona
) -> None:
    ticket = _ticket(agent)
    presence_touch(ticket.pk, manager.user, replying=True)
    body = agent.client().get(INBOX).content.decode()
    assert "mark is replying" in body
    # One's own presence is never shown to oneself.
    assert "mark is" not in manager.client().get(INBOX).content.decode()
    with time_machine.travel(timezone.now() + timedelta(seconds=20)):
        assert "mark is" not in agent.client().get(INBOX).content.decode()


def test_rows_carry_what_an_agent_needs_and_customer_text_is_isolated(agent: Persona) -> None:
    ticket = _ticket(
        agent,
        "\u202eevil override text",
        customer_display_name="\u202eEvil",
        customer_followers=48_000,
        priority=Priority.URGENT,
        priority_reasons=["Wide reach: 48,000 followers", "Angry words"],
    )
    ticket.assign(agent.user, by=agent.user)
    body = agent.client().get(INBOX).content.decode()
    row = re.search(rf'<tr id="row-{ticket.pk}".*?</tr>', body, re.S)
    assert row
    html = row.group(0)
    assert 'class="badge channel channel-x"' in html and "48,000 followers" in html
    assert "Urgent" in html and "Wide reach: 48,000 followers" in html  # the main reason
    assert "data-countdown" in html and "Acknowledge" not in html and "New" in html
    assert ">alice<" in html
    assert html.count('dir="auto"') == 3  # the handle, the name and the post


def test_customer_text_beside_a_ticket_and_on_the_profile_is_isolated(agent: Persona) -> None:
    """A right-to-left override in a name, a post or a note cannot flip the text around it."""
    from tickets.models import Customer
    from tickets.services.teamwork import note_add

    customer = Customer.objects.create(organization=agent.organization, display_name="\u202eEvil")
    ticket = _ticket(agent, "\u202eevil override text", customer=customer)
    _ticket(agent, "\u202eanother post", customer=customer)
    note_add(ticket=ticket, by=agent.user, body="\u202equoted")
    client = agent.client()
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert '<strong dir="auto">\u202eEvil</strong>' in page
    assert '<p class="text" dir="auto">\u202equoted</p>' in page
    profile = client.get(reverse("tickets:customer", args=[customer.pk])).content.decode()
    assert '<h1><span dir="auto">\u202eEvil</span>' in profile
    assert '<span dir="auto">\u202eanother post</span>' in profile


def test_the_ticket_page_sends_only_changed_sections_and_warns_of_a_colleague(
    agent: Persona, manager: Persona
) -> None:
    ticket = _ticket(agent, customer_username="jo")
    url = reverse("tickets:detail", args=[ticket.pk])
    alice, mark = agent.client(), manager.client()
    page = alice.get(url).content.decode()
    hashes = re.search(r'"h": "([^"]+)"', page)
    assert hashes
    live = {"live": "1", "shown_step": "acknowledge", "h": hashes.group(1)}
    assert alice.get(url, live, HTTP_HX_REQUEST="true").status_code == 204

    # Mark opens the ticket and types: Alice's page gets the presence line, nothing else.
    mark.get(url, {**live, "replying": "1"}, HTTP_HX_REQUEST="true")
    update = alice.get(url, live, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="presence"' in update and "mark is replying" in update
    assert 'id="messages"' not in update and 'id="step-text"' not in update

    # The brand answers on X itself while Alice writes: warned, nothing sent, draft kept.
    seen = re.search(r'name="seen" value="(\d+)"', page)
    assert seen
    _outbound(ticket, "We're on it, Jo (sent from the X app)")
    response = alice.post(
        reverse("tickets:step", args=[ticket.pk, "acknowledge"]),
        {"text": "Sorry Jo!", "seen": seen.group(1)},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "replied meanwhile" in body and "sent from the X app" in body
    assert ">Sorry Jo!</textarea>" in body and "Send anyway" in body
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    anyway = alice.post(
        reverse("tickets:step", args=[ticket.pk, "acknowledge"]),
        {"text": "Sorry Jo!", "seen": seen.group(1), "confirm": "1"},
    )
    assert anyway.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED


def _sections_sent(body: str) -> set[str]:
    """The ids of the sections a live update of the ticket page swaps (out of band)."""
    tags = re.findall(r'<\w+ hx-swap-oob="true"[^>]*>', body)
    ids = {m.group(1) for tag in tags if (m := re.search(r' id="([\w-]+)"', tag))}
    return ids - {"ticket-live"}


def test_the_side_panels_are_live_sections_and_never_their_forms(
    agent: Persona, manager: Persona
) -> None:
    from tickets.models import Customer
    from tickets.services.customers import customer_update_contact
    from tickets.services.promises import promise_make
    from tickets.services.teamwork import note_add

    customer = Customer.objects.create(organization=agent.organization, display_name="Jo")
    ticket = _ticket(agent, customer_username="jo", customer=customer)
    url = reverse("tickets:detail", args=[ticket.pk])
    alice = agent.client()

    def poll(page: str) -> tuple[int, str]:
        hashes = re.search(r'"h": "([^"]+)"', page)
        assert hashes
        live = {"live": "1", "shown_step": "acknowledge", "h": hashes.group(1)}
        response = alice.get(url, live, HTTP_HX_REQUEST="true")
        return response.status_code, response.content.decode()

    page = alice.get(url).content.decode()
    assert poll(page) == (204, "")

    # Mark writes a note: the notes list (and the history) come, never the note box.
    note_add(ticket=ticket, by=manager.user, body="Courier says Friday")
    status, body = poll(page)
    assert status == 200 and _sections_sent(body) == {"notes-list", "history"}
    assert "Courier says Friday" in body and 'id="note-body"' not in body

    page = alice.get(url).content.decode()
    promise_make(
        ticket=ticket,
        by=manager.user,
        text="Call back by five",
        due_at=timezone.now() + timedelta(hours=2),
    )
    status, body = poll(page)
    assert _sections_sent(body) == {"promises-list", "history"}
    assert "Call back by five" in body and 'id="promise-text"' not in body

    page = alice.get(url).content.decode()
    ticket.add_tag("refund", by=manager.user)
    ticket.assign(manager.user, by=manager.user)
    status, body = poll(page)
    assert _sections_sent(body) == {"tags-list", "assigned-now", "ticket-badges", "history"}
    assert 'id="tag-name"' not in body and 'id="assignee"' not in body

    page = alice.get(url).content.decode()
    customer_update_contact(customer=customer, by=manager.user, email="jo@example.com")
    status, body = poll(page)
    assert _sections_sent(body) == {"customer-info"}
    assert "jo@example.com" in body and 'id="merge-target"' not in body


def test_a_step_a_colleague_took_names_them(agent: Persona, manager: Persona) -> None:
    from tickets.services import ticket_take_step

    ticket = _ticket(agent)
    page = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    seen = re.search(r'name="seen" value="(\d+)"', page)
    assert seen
    ticket_take_step(ticket=ticket, step="acknowledge", by=manager.user, text="On it!")
    response = agent.client().post(
        reverse("tickets:step", args=[ticket.pk, "acknowledge"]),
        {"text": "Sorry!", "seen": seen.group(1)},
    )
    body = response.content.decode()
    assert "mark replied meanwhile: “On it!”" in body
    assert "the next step is Take offline" in body


def test_reply_ways_show_what_is_open_and_why_the_rest_is_closed(agent: Persona) -> None:
    dm_ticket = _ticket(agent, is_public=False)
    body = agent.client().get(reverse("tickets:detail", args=[dm_ticket.pk])).content.decode()
    ways = re.search(r'<section aria-label="Ways to answer".*?</section>', body, re.S)
    assert ways
    assert "Public reply" in ways.group(0) and "no public post" in ways.group(0)
    assert 'Direct message</strong>\n          <span class="ok">open' in ways.group(0)


def test_assign_to_me_is_recorded(agent: Persona) -> None:
    ticket = _ticket(agent)
    response = agent.client().post(reverse("tickets:assign_me", args=[ticket.pk]))
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.assigned_to == agent.user
    assert ticket.events.filter(kind=EventKind.ASSIGNED, actor=agent.user).count() == 1


def test_assign_to_me_is_offered_only_where_it_can_succeed(
    agent: Persona, manager: Persona
) -> None:
    """Found walking the demo: round-robin gives the manager tickets, and the agent's ticket
    page still offered "Assign to me" (and the ``m`` key) on them, which always answered 422
    ("This ticket is a colleague's"). The page now says who has it instead; a manager, who may
    take anyone's, keeps the button; a closed ticket offers nothing to take."""
    colleagues = _ticket(agent, assigned_to=manager.user)
    body = agent.client().get(reverse("tickets:detail", args=[colleagues.pk])).content.decode()
    assert 'id="assign-me-form"' not in body
    assert re.search(r'id="assign-me"[^>]*>mark has it<', body)

    agents = _ticket(manager, assigned_to=agent.user)
    body = manager.client().get(reverse("tickets:detail", args=[agents.pk])).content.decode()
    assert 'id="assign-me-form"' in body
    response = manager.client().post(reverse("tickets:assign_me", args=[agents.pk]))
    assert response.status_code == 302
    agents.refresh_from_db()
    assert agents.assigned_to == manager.user

    nobodys = _ticket(agent)
    body = agent.client().get(reverse("tickets:detail", args=[nobodys.pk])).content.decode()
    assert 'id="assign-me-form"' in body and "Assign to me" in body

    nobodys.close_without_reply(reason="spam", note="a bot", by=agent.user)
    body = agent.client().get(reverse("tickets:detail", args=[nobodys.pk])).content.decode()
    assert 'id="assign-me-form"' not in body


def test_closing_as_spam_stops_the_sla_timers_it_owed(
    agent: Persona, django_capture_on_commit_callbacks: object
) -> None:
    from monitoring.models import TimerState
    from monitoring.services import sla_sweep

    ticket = _ticket(agent)
    assert ticket.sla_timers.filter(state=TimerState.RUNNING).exists()
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        ticket.close_without_reply(reason="spam", note="a bot", by=agent.user)
    assert set(ticket.sla_timers.values_list("state", flat=True)) == {TimerState.STOPPED}
    stopped = ticket.events.filter(kind="sla_stopped")
    assert stopped.count() == ticket.sla_timers.count()
    assert {e.data["cause"] for e in stopped} == {"closed without a public close-out: spam"}
    # Long after every due time, the sweep breaches nothing on it.
    sla_sweep(now=timezone.now() + timedelta(days=30))
    assert not ticket.sla_timers.exclude(state=TimerState.STOPPED).exists()


def test_a_closed_way_disables_the_send_button_with_the_reason_and_the_alternative(
    agent: Persona,
) -> None:
    from channels_social.models import Platform

    ticket = _ticket(
        agent,
        platform=Platform.FACEBOOK,
        social_account__platform=Platform.FACEBOOK,
        status=Status.ACKNOWLEDGED,
    )
    # Their comment is 8 days old and they never wrote on Messenger: no private way is open.
    Message.objects.filter(ticket=ticket).update(
        kind=MessageKind.COMMENT,
        platform=Platform.FACEBOOK,
        created_at=timezone.now() - timedelta(days=8),
    )
    body = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    ways = re.search(r'<section aria-label="Ways to answer".*?</section>', body, re.S)
    assert ways
    assert "Comment reply</strong>" in ways.group(0)
    assert "within 7 days of the comment" in ways.group(0)  # the private reply, why closed
    assert "Instead: Reply publicly on their comment or post instead." in ways.group(0)
    button = re.search(r'<button id="step-submit"[^>]*>', body)
    assert button and " disabled" in button.group(0)
    assert 'id="step-window"' in body and "is closed:" in body


def test_every_change_a_row_shows_reaches_the_page(agent: Persona, manager: Persona) -> None:
    """The poll finds changed rows by a fingerprint of their data: each kind of change a row
    shows must change it (else the page would keep a stale row)."""
    ticket = _ticket(agent, customer_username="watched")
    client = agent.client()
    token = _token(client.get(INBOX))
    changes = [
        lambda: ticket.add_tag("refund", by=None),
        lambda: ticket.set_sla_due(timezone.now() + timedelta(minutes=3)),
        lambda: ticket.change_priority(Priority.URGENT, by=None, reason="VIP"),
        lambda: presence_touch(ticket.pk, manager.user, replying=False),
        lambda: Ticket.objects.filter(pk=ticket.pk).update(repost_reach=5000),
    ]
    for change in changes:
        change()
        response = _live(client, token)
        body = response.content.decode()  # type: ignore[attr-defined]
        assert f'<tr hx-swap-oob="true" id="row-{ticket.pk}"' in body, change
        token = _token_from(body)
    with time_machine.travel(timezone.now() + timedelta(minutes=4)):  # now breached
        body = _live(client, token).content.decode()  # type: ignore[attr-defined]
        assert "breached, was due" in body


def test_the_step_tracker_counts_down_each_open_steps_target(agent: Persona) -> None:
    ticket = _ticket(agent)
    body = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    tracker = re.search(r'<section aria-label="Care steps".*?</section>', body, re.S)
    assert tracker
    timer = ticket.sla_timers.get(metric="first_response")
    current = re.search(r'<li class="current">Acknowledge(.*?)</li>', tracker.group(0), re.S)
    assert current and f'datetime="{timer.due_at.isoformat()}"' in current.group(1)
    assert "data-countdown" in current.group(1)


def test_rows_are_rendered_again_only_when_what_they_show_changed(
    agent: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tickets import views

    tickets = [_ticket(agent) for _ in range(3)]
    rendered: list[int] = []
    real = views._row_html

    def counting(ticket: Ticket, *args: object) -> str:
        rendered.append(ticket.pk)
        return real(ticket, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(views, "_row_html", counting)
    client = agent.client()
    first = client.get(INBOX).content.decode()
    assert sorted(rendered) == sorted(t.pk for t in tickets)
    rendered.clear()
    again = client.get(INBOX).content.decode()
    assert rendered == []  # every row from the cache, the page the same
    assert f'id="row-{tickets[0].pk}"' in again and again.count('class="row ') == 3
    tickets[1].assign(agent.user, by=agent.user)
    changed = client.get(INBOX).content.decode()
    assert rendered == [tickets[1].pk]
    row = re.search(rf'<tr id="row-{tickets[1].pk}".*?</tr>', changed, re.S)
    assert row and str(agent.user) in row.group(0) and "Unassigned" not in row.group(0)
    assert first.count("Unassigned</span>") == 3 and changed.count("Unassigned</span>") == 2


def test_the_filter_selects_render_as_djangos_own(agent: Persona) -> None:
    """``QuickSelect`` writes the same element, options and selection as Django's ``Select``."""
    from django import forms

    from tickets.inbox import QuickSelect, ViewFilterForm

    ticket = _ticket(agent)
    ticket.add_tag("late & <lost>", by=None)
    tag = ticket.tags.get()
    data = {"brand": str(ticket.brand_id), "tag": str(tag.pk), "assignee": "me", "sort": "reach"}
    for bound in (data, {}):
        form = ViewFilterForm(bound, organization=agent.organization)
        form.is_valid()
        selects = [field for field in form if isinstance(field.field.widget, QuickSelect)]
        assert len(selects) == 8
        for field in selects:
            quick = field.as_widget()
            plain = field.as_widget(widget=forms.Select(choices=field.field.widget.choices))
            assert re.sub(r">\s+<", "><", quick) == re.sub(r">\s+<", "><", plain), field.name
    assert "late &amp; &lt;lost&gt;" in str(form["tag"])


def test_rows_show_their_tags_read_in_one_plain_query(
    agent: Persona, django_assert_num_queries: Any
) -> None:
    """A row's tags come from ``row_tags`` (ticket id and name pairs, in name order), not a
    prefetch; a ticket with none shows none."""
    from tickets.inbox import row_tags

    tagged, plain = _ticket(agent), _ticket(agent)
    tagged.add_tag("zeta", by=None)
    tagged.add_tag("alpha", by=None)
    with django_assert_num_queries(1):
        assert row_tags([tagged.pk, plain.pk]) == {tagged.pk: ("alpha", "zeta")}
    with django_assert_num_queries(0):
        assert row_tags([]) == {}
    body = agent.client().get(INBOX).content.decode()
    row = re.search(rf'<tr id="row-{tagged.pk}".*?</tr>', body, re.S)
    other = re.search(rf'<tr id="row-{plain.pk}".*?</tr>', body, re.S)
    assert row and other
    assert re.findall(r'<span class="tag">#(\w+)</span>', row.group(0)) == ["alpha", "zeta"]
    assert 'class="tag"' not in other.group(0)


def test_awaiting_approval_shows_its_own_organisations_held_replies_in_inbox_order(
    agent: Persona, manager: Persona, outsider: Persona
) -> None:
    """The view's page is chosen by id first (a subquery over the organisation's pending
    requests) and then read with its root posts: the same rows in the same order as the open
    view shows them, with a sort too, and none of another organisation's."""
    now = timezone.now()
    held = []
    for minutes in (50, 10, 30):
        ticket = _ticket(agent)
        ticket.set_sla_due(now + timedelta(minutes=minutes))
        ticket.require_approval("VIP customer", by=manager.user)
        _hold(ticket, agent)
        held.append(ticket)
    _ticket(agent).set_sla_due(now + timedelta(minutes=5))  # open, nothing held
    elsewhere = _ticket(outsider)
    elsewhere.require_approval("VIP customer", by=None)
    _hold(elsewhere, outsider)
    client = agent.client()
    rows = _rows(client.get(INBOX, {"view": "approval"}))
    assert rows == [held[1].pk, held[2].pk, held[0].pk]  # most at risk first
    in_open = [pk for pk in _rows(client.get(INBOX, {"view": "open"})) if pk in rows]
    assert rows == in_open
    newest = _rows(client.get(INBOX, {"view": "approval", "sort": "newest"}))
    assert newest == [held[2].pk, held[1].pk, held[0].pk]
    assert elsewhere.pk not in rows
    assert _rows(outsider.client().get(INBOX, {"view": "approval"})) == [elsewhere.pk]
