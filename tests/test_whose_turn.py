"""Whose turn it is (``Ticket.last_message_direction``): written by every way a ticket's
messages change (ingest of a customer's post and of the brand's own, a reply sent, a
moderation, merge and split), backfilled by migration 0019, and the inbox's "Waiting on
customer" view and count read from it agree with the old definition (the latest message's
direction, looked up per ticket)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.core.cache import cache
from django.db import connection
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone

from channels_social.models import SocialAccount
from tests.conftest import Persona
from tests.test_threading import post
from tickets.inbox import OPEN_STATUSES, view_counts
from tickets.models import Direction, Message, Status, Step, Ticket
from tickets.services import ingest_posts, ticket_take_step
from tickets.services.merge import ticket_merge, ticket_split
from tickets.services.teamwork import moderation_hide

pytestmark = pytest.mark.django_db

INBOX = reverse("tickets:inbox")
BRAND = "1000"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    if "locmem" in type(cache).__module__:
        cache.clear()
    yield


@pytest.fixture
def account(make_account: Callable[..., SocialAccount]) -> SocialAccount:
    return make_account(external_id=BRAND, username="AcmeCare")


def _stored(ticket: Ticket) -> str:
    """The column as the database holds it (never the instance's own copy)."""
    return Ticket.objects.values_list("last_message_direction", flat=True).get(pk=ticket.pk)


def _latest_direction(ticket: Ticket) -> str:
    """The old definition: the direction of the latest message, by time then id."""
    latest = ticket.messages.order_by("-created_at", "-pk").first()
    return latest.direction if latest is not None else ""


def _open(account: SocialAccount, text: str, *, author: str = "2001", minutes: int = 0) -> Ticket:
    at = timezone.now() - timedelta(hours=2) + timedelta(minutes=minutes)
    ingest_posts(account, [post(text, at=at, author=author, username=f"c{author}")])
    return Ticket.objects.filter(customer_external_id=author).latest("pk")


def _acknowledge(ticket: Ticket, agent: Persona, text: str = "Sorry! Looking now.") -> Message:
    sent = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text=text)
    assert isinstance(sent, Message)
    return sent


def _follow_up(account: SocialAccount, ticket: Ticket, text: str, *, at: object = None) -> None:
    root = ticket.root_message
    assert root is not None
    ingest_posts(
        account,
        [
            post(
                text,
                at=at or timezone.now() + timedelta(seconds=5),  # type: ignore[arg-type]
                author=ticket.customer_external_id,
                username=ticket.customer_username,
                conversation=root.conversation_id,
                reply_to=root.external_id,
            )
        ],
    )


def test_ingest_of_a_customer_post_is_their_message_last(account: SocialAccount) -> None:
    ticket = _open(account, "my parcel is a week late, where is it?")
    assert _stored(ticket) == Direction.INBOUND == _latest_direction(ticket)


def test_a_reply_sent_makes_it_the_customers_turn_and_a_follow_up_gives_it_back(
    account: SocialAccount, agent: Persona
) -> None:
    ticket = _open(account, "my parcel is a week late, where is it?")
    _acknowledge(ticket, agent)
    assert _stored(ticket) == Direction.OUTBOUND == _latest_direction(ticket)
    _follow_up(account, ticket, "still nothing, it is now eight days")
    assert ticket.messages.count() == 3
    assert _stored(ticket) == Direction.INBOUND == _latest_direction(ticket)


def test_a_late_delivered_older_post_does_not_take_the_turn(
    account: SocialAccount, agent: Persona
) -> None:
    """The latest message is the latest by the platform's time, not the last stored."""
    ticket = _open(account, "my parcel is a week late, where is it?")
    _acknowledge(ticket, agent)
    _follow_up(account, ticket, "and the app crashed too", at=timezone.now() - timedelta(hours=1))
    assert ticket.messages.count() == 3
    assert _stored(ticket) == Direction.OUTBOUND == _latest_direction(ticket)


def test_the_brands_own_post_from_the_platform_is_the_brands_turn(
    account: SocialAccount,
) -> None:
    ticket = _open(account, "my parcel is a week late, where is it?")
    root = ticket.root_message
    assert root is not None
    ingest_posts(
        account,
        [
            post(
                "@c2001 so sorry, DM us your order number",
                at=timezone.now(),
                author=BRAND,
                username="AcmeCare",
                conversation=root.conversation_id,
                reply_to=root.external_id,
            )
        ],
    )
    assert ticket.messages.filter(direction=Direction.OUTBOUND, sent_by=None).exists()
    assert _stored(ticket) == Direction.OUTBOUND == _latest_direction(ticket)


def test_a_moderation_is_the_brands_message_last(account: SocialAccount, agent: Persona) -> None:
    ticket = _open(account, "you are all idiots")
    target = ticket.messages.get()
    hide = moderation_hide(ticket=ticket, message_id=target.pk, by=agent.user, reason="harassing")
    assert hide.direction == Direction.OUTBOUND
    assert _stored(ticket) == Direction.OUTBOUND == _latest_direction(ticket)


def test_merge_recomputes_both_tickets(account: SocialAccount, agent: Persona) -> None:
    answered = _open(account, "my parcel is a week late, where is it?")
    _acknowledge(answered, agent)
    assert _stored(answered) == Direction.OUTBOUND
    later = _open(account, "the app crashes when I pay", minutes=90)
    later.refresh_from_db()
    later.messages.update(created_at=timezone.now() + timedelta(minutes=1))  # after the reply
    ticket_merge(target=answered, source=later, by=agent.user)
    # The source's post, now the target's latest: the customer's turn again; the source is empty.
    assert _stored(answered) == Direction.INBOUND == _latest_direction(answered)
    assert _stored(later) == "" == _latest_direction(later)


def test_split_recomputes_both_tickets(account: SocialAccount, agent: Persona) -> None:
    ticket = _open(account, "my parcel is a week late, where is it?")
    _acknowledge(ticket, agent)
    _follow_up(account, ticket, "also my card was charged twice for it")
    assert _stored(ticket) == Direction.INBOUND
    follow_up = ticket.messages.get(text__startswith="also my card")
    new = ticket_split(ticket=ticket, message_ids=[follow_up.pk], by=agent.user)
    # What is left ends with the brand's reply; the new ticket is the customer's message.
    assert _stored(ticket) == Direction.OUTBOUND == _latest_direction(ticket)
    assert _stored(new) == Direction.INBOUND == _latest_direction(new)


def _old_waiting(org_id: int) -> set[int]:
    """ "Waiting on customer" as it was computed before the column: a subquery per ticket."""
    latest = Subquery(
        Message.objects.filter(ticket=OuterRef("pk"))
        .order_by("-created_at", "-pk")
        .values("direction")[:1]
    )
    return set(
        Ticket.objects.filter(organization_id=org_id, status__in=OPEN_STATUSES)
        .exclude(status=Status.NEW)
        .annotate(latest=latest)
        .filter(latest=Direction.OUTBOUND)
        .values_list("pk", flat=True)
    )


def _mixed_set(account: SocialAccount, agent: Persona) -> dict[str, Ticket]:
    tickets = {}
    tickets["new"] = _open(account, "where is my refund", author="3001")
    tickets["answered"] = _open(account, "my router is down again", author="3002")
    _acknowledge(tickets["answered"], agent)
    tickets["followed_up"] = _open(account, "the driver never came", author="3003")
    _acknowledge(tickets["followed_up"], agent)
    _follow_up(account, tickets["followed_up"], "still waiting at home, nobody came")
    tickets["late_older_post"] = _open(account, "my invoice is wrong", author="3004")
    _acknowledge(tickets["late_older_post"], agent)
    _follow_up(
        account,
        tickets["late_older_post"],
        "and the discount code failed",
        at=timezone.now() - timedelta(minutes=30),
    )
    tickets["hidden_new"] = _open(account, "you are all useless idiots", author="3005")
    hidden = tickets["hidden_new"].messages.get()
    moderation_hide(
        ticket=tickets["hidden_new"], message_id=hidden.pk, by=agent.user, reason="harassing"
    )
    tickets["closed"] = _open(account, "thanks, all sorted now", author="3006")
    _acknowledge(tickets["closed"], agent)
    Ticket.objects.filter(pk=tickets["closed"].pk).update(
        status=Status.CLOSED, closed_at=timezone.now()
    )
    return tickets


def test_the_waiting_view_and_count_match_the_latest_message_definition(
    account: SocialAccount, agent: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    tickets = _mixed_set(account, agent)
    for ticket in tickets.values():
        assert _stored(ticket) == _latest_direction(ticket), ticket
    expected = _old_waiting(account.organization_id)
    assert expected == {tickets["answered"].pk, tickets["late_older_post"].pk}
    counts = view_counts(account.organization, user=agent.user, now=timezone.now())
    assert counts["waiting"] == len(expected)
    response = agent.client().get(INBOX, {"view": "waiting"})
    assert {t.pk for t in response.context["tickets"]} == expected
    assert response.context["counts"]["waiting"] == len(expected)
    # An answer from the customer takes the ticket out of the view and its count at once.
    with django_capture_on_commit_callbacks(execute=True):  # as it commits
        _follow_up(account, tickets["answered"], "I tried that, it is still down")
    response = agent.client().get(INBOX, {"view": "waiting"})
    assert {t.pk for t in response.context["tickets"]} == {tickets["late_older_post"].pk}
    assert response.context["counts"]["waiting"] == 1 == len(_old_waiting(account.organization_id))


def test_the_migration_backfills_from_the_latest_message(
    account: SocialAccount, agent: Persona
) -> None:
    """Migration 0019's backfill (the PostgreSQL UPDATE, or the ORM's on SQLite) on a set
    whose column was lost: every ticket gets its latest message's direction back."""
    import importlib

    migration = importlib.import_module("tickets.migrations.0019_ticket_last_message_direction")
    tickets = _mixed_set(account, agent)
    empty = Ticket.objects.create(
        organization=account.organization,
        brand=account.brand,
        social_account=account,
        platform=account.platform,
        customer_external_id="3999",
        customer_username="nobody",
    )
    truth = {t.pk: _latest_direction(t) for t in [*tickets.values(), empty]}
    assert set(truth.values()) == {"in", "out", ""}
    Ticket.objects.update(last_message_direction="")
    # Not entered: SQLite's editor refuses to open inside the test's transaction, and the
    # backfill only runs SQL through it (or reads its connection's vendor).
    editor = connection.schema_editor(atomic=False)
    migration.backfill_last_message_direction(django_apps, editor)
    stored = dict(Ticket.objects.values_list("pk", "last_message_direction"))
    assert {pk: stored[pk] for pk in truth} == truth
