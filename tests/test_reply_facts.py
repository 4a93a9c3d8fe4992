"""``reply_facts`` read from a loaded conversation (the ticket page) gives exactly what its three
queries give, on a conversation with every case the queries tell apart: private and public
posts, posts without a platform id, private replies sent, failed, on their way and sent on
the platform itself (no outbox item), ties in time, a named post and an excluded reply."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_social.models import Platform, SocialAccount
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.models import Direction, Message, MessageKind, OutboxItem, OutboxState, Ticket
from tickets.services.outbox import reply_facts

pytestmark = pytest.mark.django_db


def _reply(ticket: Ticket, answers: str, state: str | None, at: object) -> Message:
    message = Message.objects.create(
        organization=ticket.organization,
        ticket=ticket,
        platform=ticket.platform,
        kind=MessageKind.PRIVATE_REPLY,
        direction=Direction.OUTBOUND,
        is_public=False,
        in_reply_to_external_id=answers,
        author_username="AcmeCare",
        text=f"About {answers}",
        created_at=at,
    )
    if state is not None:
        OutboxItem.objects.create(organization=ticket.organization, message=message, state=state)
    return message


@pytest.fixture
def ticket(make_account: Callable[..., SocialAccount]) -> Ticket:
    account = make_account(platform=Platform.FACEBOOK, username="AcmeCare")
    ticket = TicketFactory(social_account=account, platform=Platform.FACEBOOK)
    now = timezone.now()
    kinds = dict(ticket=ticket, platform=Platform.FACEBOOK)
    InboundMessageFactory(**kinds, kind=MessageKind.POST, external_id="p1", created_at=now)
    # Two public comments at the same instant: the later id is "their latest post".
    later = now + timedelta(minutes=5)
    InboundMessageFactory(**kinds, kind=MessageKind.COMMENT, external_id="c1", created_at=later)
    InboundMessageFactory(**kinds, kind=MessageKind.COMMENT, external_id="c2", created_at=later)
    # A public post with no platform id (never a reply target) after them.
    InboundMessageFactory(**kinds, external_id="", created_at=now + timedelta(minutes=9))
    # Private messages: the one without a platform id is newest, and does not count.
    InboundMessageFactory(
        **kinds, kind=MessageKind.DM, is_public=False, external_id="d1", created_at=later
    )
    InboundMessageFactory(
        **kinds,
        kind=MessageKind.DM,
        is_public=False,
        external_id="",
        created_at=now + timedelta(minutes=20),
    )
    _reply(ticket, "p1", OutboxState.SENT, later)
    _reply(ticket, "c1", OutboxState.FAILED, later)  # failed: not answered
    _reply(ticket, "c2", OutboxState.QUEUED, later)  # on its way: answered
    _reply(ticket, "d9", None, later)  # sent on the platform itself: answered
    return ticket


def _loaded(ticket: Ticket) -> list[Message]:
    return list(ticket.messages.select_related("sent_by", "outbox").order_by("created_at", "pk"))


@pytest.mark.parametrize(
    "named,excluded",
    [(None, False), ("c1", False), ("p1", True), ("nope", False)],
)
def test_the_loaded_conversation_gives_what_the_queries_give(
    ticket: Ticket, named: str | None, excluded: bool
) -> None:
    exclude = (
        Message.objects.get(ticket=ticket, in_reply_to_external_id="c2").pk if excluded else None
    )
    queried = reply_facts(ticket, reply_to_external_id=named, exclude_message_id=exclude)
    loaded = reply_facts(
        ticket,
        reply_to_external_id=named,
        exclude_message_id=exclude,
        conversation=_loaded(ticket),
    )
    assert loaded.last_private_from_customer_at == queried.last_private_from_customer_at
    assert loaded.reply_to == queried.reply_to
    assert loaded.privately_answered == queried.privately_answered
    assert loaded.customer_name == queried.customer_name


def test_the_facts_are_what_the_conversation_says(ticket: Ticket) -> None:
    facts = reply_facts(ticket, conversation=_loaded(ticket))
    assert facts.reply_to is not None
    latest = Message.objects.get(ticket=ticket, external_id="c2")
    assert (facts.reply_to.external_id, facts.reply_to.kind) == ("c2", MessageKind.COMMENT)
    assert facts.reply_to.created_at == latest.created_at
    assert facts.last_private_from_customer_at == latest.created_at  # d1, not the id-less DM
    assert facts.privately_answered == frozenset({"p1", "c2", "d9"})


def test_no_query_when_the_conversation_is_given(
    ticket: Ticket, django_assert_num_queries: object
) -> None:
    conversation = _loaded(ticket)
    with django_assert_num_queries(0):  # type: ignore[operator]
        reply_facts(ticket, conversation=conversation)
    with django_assert_num_queries(3):  # type: ignore[operator]
        reply_facts(ticket)
