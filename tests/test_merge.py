"""Merge and split, through the services and the web views: messages move, both tickets record
it, a merged ticket's SLA timers stop (monitoring's handler, after commit), another
organisation's ids are a 404."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from channels_social.models import Platform, SocialAccount
from monitoring.models import SlaEventKind, SlaPolicy, SlaTimer, TimerState
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, SocialAccountFactory, TicketFactory
from tests.test_threading import post
from tickets.models import (
    Direction,
    EventKind,
    Message,
    MessageKind,
    OutboxItem,
    Status,
    StepError,
    Ticket,
)
from tickets.services import ingest_posts
from tickets.services.merge import merge_offers, ticket_merge, ticket_split

pytestmark = pytest.mark.django_db

OnCommit = Callable[..., Any]


@pytest.fixture
def account(make_account: Callable[..., SocialAccount]) -> SocialAccount:
    return make_account(external_id="1000", username="AcmeCare")


def _ticket(account: SocialAccount, *texts: str, customer: str = "2001") -> Ticket:
    ticket = TicketFactory(social_account=account, customer_external_id=customer)
    for n, text in enumerate(texts):
        message = InboundMessageFactory(
            ticket=ticket, text=text, created_at=timezone.now() + timedelta(minutes=n)
        )
        if n == 0:
            ticket.root_message = message
            ticket.save(update_fields=["root_message"])
    return ticket


def test_merge_moves_the_messages_closes_the_source_and_stops_its_timers(
    account: SocialAccount, agent: Persona, django_capture_on_commit_callbacks: OnCommit
) -> None:
    SlaPolicy.objects.create(organization=account.organization, first_response_minutes=30)
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        ingest_posts(account, [post("my parcel is a week late, where is it?", at=now)])
        ingest_posts(account, [post("the app crashes when I pay", at=now)])
    a, b = Ticket.objects.order_by("pk")
    assert SlaTimer.objects.filter(ticket=b, state=TimerState.RUNNING).exists()
    moved = list(b.messages.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        ticket_merge(target=a, source=b, by=agent.user)
    a.refresh_from_db()
    b.refresh_from_db()
    assert set(moved) <= set(a.messages.values_list("pk", flat=True))
    assert not b.messages.exists()
    assert (b.status, b.merged_into_id) == (Status.CLOSED, a.pk)
    merged = a.events.get(kind=EventKind.MERGED)
    assert (merged.actor, merged.data["source"], merged.data["moved"]) == (agent.user, b.pk, 1)
    assert b.events.get(kind=EventKind.MERGED_INTO).data["into"] == a.pk
    assert not SlaTimer.objects.filter(ticket=b, state=TimerState.RUNNING).exists()
    stopped = b.events.filter(kind=SlaEventKind.SLA_STOPPED)
    assert stopped.exists()
    assert {event.data["cause"] for event in stopped} == {EventKind.MERGED_INTO}
    assert SlaTimer.objects.filter(ticket=a, state=TimerState.RUNNING).exists()


def test_a_follow_up_in_the_merged_tickets_thread_goes_to_the_ticket_it_went_into(
    account: SocialAccount, agent: Persona
) -> None:
    first = post("my parcel is a week late, where is it?")
    second = post("the app crashes when I pay")
    ingest_posts(account, [first, second])
    a, b = Ticket.objects.order_by("pk")
    ticket_merge(target=a, source=b, by=agent.user)
    in_b_thread = post(
        "any news?", kind=MessageKind.REPLY, conversation=b.conversation_id, reply_to=""
    )
    assert ingest_posts(account, [in_b_thread]).tickets_opened == 0
    assert a.messages.filter(external_id=in_b_thread.external_id).exists()


@pytest.mark.parametrize(
    "case", ["itself", "closed target", "merged already", "other platform", "reply in flight"]
)
def test_a_merge_that_cannot_be_made_changes_nothing(
    account: SocialAccount, agent: Persona, case: str
) -> None:
    a = _ticket(account, "parcel late")
    b = _ticket(account, "still late")
    if case == "itself":
        b = a
    elif case == "closed target":
        Ticket.objects.filter(pk=a.pk).update(status=Status.CLOSED)
    elif case == "merged already":
        c = _ticket(account, "third")
        ticket_merge(target=c, source=b, by=agent.user)
    elif case == "other platform":
        page = SocialAccountFactory(
            brand=account.brand, platform=Platform.FACEBOOK, external_id="500"
        )
        b = _ticket(page, "on facebook")
        Ticket.objects.filter(pk=b.pk).update(platform=Platform.FACEBOOK)
    elif case == "reply in flight":
        reply = Message.objects.create(
            organization=b.organization, ticket=b, platform=b.platform, kind=MessageKind.REPLY,
            direction=Direction.OUTBOUND, text="On it!", created_at=timezone.now(),
        )  # fmt: skip
        OutboxItem.objects.create(organization=b.organization, message=reply)
    before = {t.pk: (t.status, t.messages.count()) for t in Ticket.objects.all()}
    with pytest.raises(StepError):
        ticket_merge(target=a, source=b, by=agent.user)
    after = {t.pk: (t.status, t.messages.count()) for t in Ticket.objects.all()}
    assert after == before


def test_split_moves_the_chosen_messages_into_a_new_ticket(
    account: SocialAccount, agent: Persona, django_capture_on_commit_callbacks: OnCommit
) -> None:
    SlaPolicy.objects.create(organization=account.organization, first_response_minutes=30)
    ticket = _ticket(account, "parcel late", "and also: the app crashes at checkout", "hello?")
    root, crash, hello = ticket.messages.order_by("created_at")
    with django_capture_on_commit_callbacks(execute=True):
        new = ticket_split(ticket=ticket, message_ids=[crash.pk], by=agent.user)
    assert list(new.messages.all()) == [crash]
    assert set(ticket.messages.all()) == {root, hello}
    new.refresh_from_db()
    assert (new.root_message_id, new.opened_at, new.status) == (crash.pk, crash.created_at, "new")
    assert (new.customer_id, new.social_account_id) == (ticket.customer_id, account.pk)
    assert ticket.events.get(kind=EventKind.SPLIT).data == {"into": new.pk, "messages": [crash.pk]}
    assert new.events.get(kind=EventKind.SPLIT_FROM).data["source"] == ticket.pk
    # Opened like any ticket: monitoring started its first-response timer.
    assert SlaTimer.objects.filter(ticket=new, state=TimerState.RUNNING).exists()


def test_split_refuses_the_first_post_the_brands_messages_and_other_tickets(
    account: SocialAccount, agent: Persona
) -> None:
    ticket = _ticket(account, "parcel late", "second")
    other = _ticket(account, "someone else's")
    reply = Message.objects.create(
        organization=ticket.organization, ticket=ticket, platform=ticket.platform,
        kind=MessageKind.REPLY, direction=Direction.OUTBOUND, text="On it!",
        created_at=timezone.now(),
    )  # fmt: skip
    for chosen in ([], [ticket.root_message_id], [reply.pk], [other.root_message_id]):
        with pytest.raises(StepError):
            ticket_split(ticket=ticket, message_ids=chosen, by=agent.user)  # type: ignore[arg-type]
    assert Ticket.objects.count() == 2


# The web views ----------------------------------------------------------------------------------


def test_the_agent_merges_from_the_offer_on_the_ticket_page(
    account: SocialAccount, agent: Persona
) -> None:
    ingest_posts(account, [post("my parcel is a week late, where is it?")])
    ingest_posts(account, [post("my parcel is now two weeks late")])
    a, b = Ticket.objects.order_by("pk")
    client = agent.client()
    page = client.get(reverse("tickets:detail", args=[b.pk]))
    assert f"Merge this ticket into #{a.pk}" in page.content.decode()
    response = client.post(reverse("tickets:merge", args=[b.pk]), {"target": a.pk})
    assert response.status_code == 302 and response["Location"] == f"/tickets/{a.pk}/"
    b.refresh_from_db()
    assert b.merged_into_id == a.pk
    # htmx: the browser goes to the ticket it was merged into.
    c = _ticket(account, "third one")
    htmx = client.post(
        reverse("tickets:merge", args=[c.pk]), {"target": a.pk}, headers={"HX-Request": "true"}
    )
    assert htmx.status_code == 204 and htmx["HX-Location"] == f"/tickets/{a.pk}/"


def test_a_refused_merge_says_why_in_the_sidebar(account: SocialAccount, agent: Persona) -> None:
    a = _ticket(account, "parcel late")
    response = agent.client().post(
        reverse("tickets:merge", args=[a.pk]), {"target": a.pk}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 422
    assert "cannot be merged into itself" in response.content.decode()


def test_the_agent_dismisses_an_offer(account: SocialAccount, agent: Persona) -> None:
    ingest_posts(account, [post("my parcel is a week late, where is it?")])
    ingest_posts(account, [post("my parcel is now two weeks late")])
    a, b = Ticket.objects.order_by("pk")
    response = agent.client().post(
        reverse("tickets:merge-offer-dismiss", args=[b.pk, a.pk]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "Merge this ticket into" not in response.content.decode().split("<details")[0]
    assert b.events.get(kind=EventKind.MERGE_OFFER_DISMISSED).actor == agent.user
    assert merge_offers(b) == []


def test_the_agent_splits_from_the_ticket_page(account: SocialAccount, agent: Persona) -> None:
    ticket = _ticket(account, "parcel late", "and the app crashes")
    crash = ticket.messages.order_by("created_at").last()
    assert crash is not None
    client = agent.client()
    assert "Split into a new ticket" in client.get(f"/tickets/{ticket.pk}/").content.decode()
    response = client.post(reverse("tickets:split", args=[ticket.pk]), {"message": [crash.pk]})
    new = Ticket.objects.exclude(pk=ticket.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/tickets/{new.pk}/"
    assert list(new.messages.all()) == [crash]


def test_another_organisations_tickets_are_a_404(
    account: SocialAccount, agent: Persona, outsider: Persona
) -> None:
    ours = _ticket(account, "parcel late", "second")
    theirs_account = SocialAccountFactory(brand__organization=outsider.organization)
    theirs = _ticket(theirs_account, "their ticket")
    second = ours.messages.order_by("created_at").last()
    assert second is not None
    attempts = [
        (outsider, reverse("tickets:merge", args=[ours.pk]), {"target": theirs.pk}),
        (agent, reverse("tickets:merge", args=[ours.pk]), {"target": theirs.pk}),
        (outsider, reverse("tickets:split", args=[ours.pk]), {"message": [second.pk]}),
        (outsider, reverse("tickets:merge-offer-dismiss", args=[ours.pk, theirs.pk]), {}),
    ]
    for persona, url, data in attempts:
        assert persona.client().post(url, data).status_code == 404
    assert (
        outsider.client().get(reverse("tickets:customer-sidebar", args=[ours.pk])).status_code
        == 404
    )
    assert Ticket.objects.filter(merged_into__isnull=False).count() == 0
    assert ours.messages.count() == 2
