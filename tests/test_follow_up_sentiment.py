"""A customer's follow-up re-reads the ticket's sentiment and re-scores its priority: a negative
follow-up on a neutral ticket turns it negative (``sentiment_changed``) and raises the level
(``priority_changed``), through the real ingest and the event seam."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone

from channels_social.base import Author, InboundPost
from channels_social.models import SocialAccount
from tests.conftest import Persona
from tickets.models import EventKind, Priority, Sentiment, Ticket
from tickets.priority import on_customer_message
from tickets.services import ingest_posts

CUSTOMER = Author(external_id="77", username="dana", followers_count=40)


def _post(external_id: str, text: str, minutes_ago: float, **kwargs: object) -> InboundPost:
    return InboundPost(
        external_id=external_id,
        text=text,
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
        author=CUSTOMER,
        kind=str(kwargs.pop("kind", "post")),
        conversation_id="9001",
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_negative_follow_up_on_a_neutral_ticket_turns_it_negative_and_raises_it(
    make_account: Callable[..., SocialAccount],
    django_capture_on_commit_callbacks: Callable[..., object],
) -> None:
    account = make_account()
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        ingest_posts(account, [_post("9001", "@brand what time does the Leeds shop open?", 30)])
    ticket = Ticket.objects.get()
    assert (ticket.sentiment, ticket.priority) == (Sentiment.NEUTRAL, Priority.NORMAL)
    assert not ticket.events.filter(kind=EventKind.SENTIMENT_CHANGED).exists()  # its own post

    follow_up = _post(
        "9002",
        "@brand still no answer, this is ridiculous. Worst service ever, I'm furious",
        5,
        kind="reply",
        in_reply_to_external_id="9001",
    )
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        ingest_posts(account, [follow_up])
    ticket.refresh_from_db()
    assert ticket.messages.count() == 2  # the follow-up joined the ticket
    assert ticket.sentiment == Sentiment.NEGATIVE and ticket.sentiment_score < 0
    changed = ticket.events.get(kind=EventKind.SENTIMENT_CHANGED)
    assert (changed.data["before"], changed.data["after"]) == ("neutral", "negative")
    assert changed.message_id == ticket.messages.get(external_id="9002").pk
    assert ticket.priority == Priority.HIGH
    raised = ticket.events.get(kind=EventKind.PRIORITY_CHANGED)
    assert raised.actor is None and raised.data["reason"].startswith(
        "Rescored: reads as a complaint"
    )
    assert any(f["factor"] == "sentiment" for f in ticket.priority_factors)

    # Delivered again (at least once): nothing new is recorded.
    on_customer_message(ticket.events.get(kind=EventKind.MESSAGE_RECEIVED, message=changed.message))
    assert ticket.events.filter(kind=EventKind.SENTIMENT_CHANGED).count() == 1
    assert ticket.events.filter(kind=EventKind.PRIORITY_CHANGED).count() == 1


def test_a_thankful_follow_up_reads_positive_but_never_lowers_the_priority_by_itself(
    make_account: Callable[..., SocialAccount],
    django_capture_on_commit_callbacks: Callable[..., object],
) -> None:
    account = make_account()
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        ingest_posts(
            account, [_post("9101", "@brand my parcel never arrived and nobody replies", 30)]
        )
    ticket = Ticket.objects.get()
    assert ticket.sentiment == Sentiment.NEGATIVE
    level = ticket.priority
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        ingest_posts(
            account,
            [
                _post(
                    "9102",
                    "@brand it just came, thank you so much, lovely service!",
                    2,
                    kind="reply",
                    in_reply_to_external_id="9101",
                )
            ],
        )
    ticket.refresh_from_db()
    assert ticket.sentiment == Sentiment.POSITIVE
    changed = ticket.events.get(kind=EventKind.SENTIMENT_CHANGED)
    assert (changed.data["before"], changed.data["after"]) == ("negative", "positive")
    assert ticket.priority == level  # rescoring raises a level, never lowers it
    assert not ticket.events.filter(kind=EventKind.PRIORITY_CHANGED).exists()


def test_the_timeline_shows_the_change(
    agent: Persona,
    make_account: Callable[..., SocialAccount],
    django_capture_on_commit_callbacks: Callable[..., object],
) -> None:
    from django.urls import reverse

    account = make_account(brand__organization=agent.organization)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        ingest_posts(account, [_post("9201", "@brand do you ship to Norway?", 30)])
        ingest_posts(
            account,
            [
                _post(
                    "9202",
                    "@brand hello?? two days and no reply. Useless.",
                    1,
                    kind="reply",
                    in_reply_to_external_id="9201",
                )
            ],
        )
    ticket = Ticket.objects.get()
    page = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "Sentiment changed" in page and "Neutral → Negative" in page
