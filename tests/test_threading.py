"""Threading through the post sink (``ingest_posts``) on the real database: a customer's
follow-ups join their open ticket (thread, DMs, comments on the same Facebook post, Messenger),
the same thing said again joins or is offered for merge, and a message on a recently closed
ticket reopens it (the SLA restarting through monitoring's ``reopened`` handler)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels_social.base import Author, InboundPost
from channels_social.models import Platform, SocialAccount
from monitoring.models import Metric, SlaPolicy, SlaTimer, TimerState
from tests.factories import next_platform_id
from tickets.models import (
    Customer,
    CustomerIdentity,
    EventKind,
    MessageKind,
    Status,
    ThreadingSettings,
    Ticket,
)
from tickets.services import ingest_posts
from tickets.services.customers import similarity

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DANA = "2001"


def post(
    text: str,
    *,
    at: datetime = START,
    author: str = DANA,
    username: str = "dana",
    kind: str = MessageKind.POST,
    public: bool = True,
    conversation: str = "",
    reply_to: str = "",
    followers: int = 1500,
    verified: bool = False,
    external_id: str | None = None,
) -> InboundPost:
    external_id = external_id or next_platform_id()
    return InboundPost(
        external_id=external_id,
        text=text,
        created_at=at,
        author=Author(author, username, username.title(), followers, verified),
        kind=kind,
        is_public=public,
        conversation_id=conversation or (external_id if public else f"dm-{author}"),
        in_reply_to_external_id=reply_to,
    )


@pytest.fixture
def account(make_account: Callable[..., SocialAccount]) -> SocialAccount:
    return make_account(external_id="1000", username="AcmeCare")


def _close(ticket: Ticket, at: datetime) -> None:
    Ticket.objects.filter(pk=ticket.pk).update(status=Status.CLOSED, closed_at=at)


def _kinds(ticket: Ticket) -> list[str]:
    return list(ticket.events.order_by("at", "pk").values_list("kind", flat=True))


# The same thread, DMs, Facebook ------------------------------------------------------------------


def test_a_reply_in_the_thread_and_a_dm_join_the_open_ticket(account: SocialAccount) -> None:
    first = post("My parcel is a week late @AcmeCare")
    ingest_posts(account, [first])
    reply = post(
        "still nothing", at=START + timedelta(hours=1), kind=MessageKind.REPLY,
        conversation=first.conversation_id, reply_to=first.external_id,
    )  # fmt: skip
    dm = post("order 1234", at=START + timedelta(hours=2), kind=MessageKind.DM, public=False)
    ingest_posts(account, [reply, dm])
    ticket = Ticket.objects.get()
    assert ticket.messages.count() == 3
    assert ticket.customer is not None
    assert ticket.customer.identities.get().external_id == DANA


def test_facebook_comments_on_the_same_post_and_messenger_join_one_ticket(
    make_account: Callable[..., SocialAccount],
) -> None:
    page = make_account(platform=Platform.FACEBOOK, external_id="500", username="Acme")
    page_post = "500_77"
    comment = post(
        "The blender broke after a day", kind=MessageKind.COMMENT,
        conversation=page_post, reply_to=page_post, external_id="77_1",
    )  # fmt: skip
    again = post(
        "Hello?? anyone", at=START + timedelta(hours=3), kind=MessageKind.COMMENT,
        conversation=page_post, reply_to=page_post, external_id="77_2",
    )  # fmt: skip
    messenger = post(
        "here is my order number", at=START + timedelta(hours=4), kind=MessageKind.MESSENGER,
        public=False, conversation=f"messenger-{DANA}",
    )  # fmt: skip
    ingest_posts(page, [comment])
    ingest_posts(page, [again, messenger])
    ticket = Ticket.objects.get()
    assert list(ticket.messages.values_list("kind", flat=True)) == [
        "comment",
        "comment",
        "messenger",
    ]
    # A comment by someone else on the same post is their own ticket.
    ingest_posts(
        page,
        [post("Mine too!", author="3003", kind=MessageKind.COMMENT, conversation=page_post,
              reply_to=page_post, at=START + timedelta(hours=5))],
    )  # fmt: skip
    assert Ticket.objects.count() == 2


def test_one_customer_per_identity_kept_up_to_date(account: SocialAccount) -> None:
    ingest_posts(account, [post("My parcel is a week late", followers=100)])
    ingest_posts(
        account,
        [post("And the app is down too", username="dana_b", followers=250, verified=True,
              at=START + timedelta(days=3))],
    )  # fmt: skip
    assert Customer.objects.count() == 1
    identity = CustomerIdentity.objects.get()
    assert (identity.username, identity.followers, identity.verified) == ("dana_b", 250, True)
    assert set(Ticket.objects.values_list("customer", flat=True)) == {identity.customer_id}


# The same thing again ----------------------------------------------------------------------------


def test_the_same_complaint_posted_again_joins_the_open_ticket(account: SocialAccount) -> None:
    ingest_posts(account, [post("@AcmeCare my parcel is a week late, where is it?")])
    again = post("@AcmeCare My parcel is a week late! Where is it", at=START + timedelta(hours=5))
    result = ingest_posts(account, [again])
    assert result.tickets_opened == 0
    ticket = Ticket.objects.get()
    event = ticket.events.get(
        kind=EventKind.MESSAGE_RECEIVED, message__external_id=again.external_id
    )
    assert event.data["near_duplicate"] >= 90


def test_the_same_text_after_the_window_opens_a_new_ticket(account: SocialAccount) -> None:
    ingest_posts(account, [post("my parcel is a week late, where is it?")])
    ingest_posts(
        account, [post("my parcel is a week late, where is it?", at=START + timedelta(days=3))]
    )
    assert Ticket.objects.count() == 2
    assert not Ticket.objects.filter(events__kind=EventKind.MERGE_OFFERED).exists()


def test_a_looser_match_opens_a_ticket_offered_for_merge(account: SocialAccount) -> None:
    ingest_posts(account, [post("my parcel is a week late, where is it?")])
    older = Ticket.objects.get()
    ingest_posts(account, [post("my parcel is now two weeks late", at=START + timedelta(hours=2))])
    newer = Ticket.objects.exclude(pk=older.pk).get()
    offer = newer.events.get(kind=EventKind.MERGE_OFFERED)
    assert offer.data["candidate"] == older.pk
    assert 60 <= offer.data["similarity"] < 90


def test_a_short_identical_post_is_only_offered(account: SocialAccount) -> None:
    ingest_posts(account, [post("still waiting")])
    ingest_posts(account, [post("Still waiting!", at=START + timedelta(hours=1))])
    assert Ticket.objects.count() == 2
    assert Ticket.objects.filter(events__kind=EventKind.MERGE_OFFERED).count() == 1


def test_the_same_words_about_another_order_number_are_only_offered(
    account: SocialAccount,
) -> None:
    ingest_posts(account, [post("my order #1234 is two weeks late, still waiting")])
    ingest_posts(
        account,
        [post("my order #5678 is two weeks late, still waiting", at=START + timedelta(hours=1))],
    )
    assert Ticket.objects.count() == 2
    assert Ticket.objects.filter(events__kind=EventKind.MERGE_OFFERED).count() == 1


def test_another_customer_saying_the_same_gets_their_own_ticket(account: SocialAccount) -> None:
    text = "my parcel is a week late, where is it?"
    ingest_posts(account, [post(text), post(text, author="3003", username="sam")])
    assert Ticket.objects.count() == 2
    assert not Ticket.objects.filter(events__kind=EventKind.MERGE_OFFERED).exists()


def test_the_thresholds_are_the_organisations(account: SocialAccount) -> None:
    ThreadingSettings.objects.create(
        organization=account.organization, join_similarity=50, offer_similarity=40
    )
    ingest_posts(account, [post("my parcel is a week late, where is it?")])
    ingest_posts(account, [post("my parcel is now two weeks late", at=START + timedelta(hours=2))])
    assert Ticket.objects.count() == 1


def test_text_threading_can_be_switched_off(account: SocialAccount) -> None:
    ThreadingSettings.objects.create(organization=account.organization, duplicate_window_hours=0)
    text = "my parcel is a week late, where is it?"
    ingest_posts(account, [post(text), post(text)])  # the same instant, the same batch
    ingest_posts(account, [post(text)])
    assert Ticket.objects.count() == 3
    assert not Ticket.objects.filter(events__kind=EventKind.MERGE_OFFERED).exists()


def test_similarity_ignores_mentions_case_punctuation_and_order() -> None:
    assert similarity("@Acme My PARCEL is late!!", "late is my parcel") == 100
    assert similarity("the app is down", "refund my order please") < 50
    assert similarity("", "anything") == 0


# Reopening ---------------------------------------------------------------------------------------


def _reopen_policy(account: SocialAccount) -> SlaPolicy:
    return SlaPolicy.objects.create(
        organization=account.organization,
        first_response_minutes=30,
        resolution_minutes=480,
        close_out_minutes=1440,
    )


def test_a_reply_on_a_recently_closed_ticket_reopens_it_and_restarts_the_sla(
    account: SocialAccount, django_capture_on_commit_callbacks: Callable[..., object]
) -> None:
    _reopen_policy(account)
    first = post("My parcel is a week late @AcmeCare")
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        ingest_posts(account, [first])
    ticket = Ticket.objects.get()
    _close(ticket, START + timedelta(days=1))
    SlaTimer.objects.filter(ticket=ticket).update(state=TimerState.MET)
    later = START + timedelta(days=4)
    reply = post("it broke again", at=later, kind=MessageKind.REPLY,
                 conversation=first.conversation_id, reply_to=first.external_id)  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        result = ingest_posts(account, [reply])
    assert result.tickets_opened == 0
    ticket.refresh_from_db()
    assert (ticket.status, ticket.closed_at) == (Status.NEW, None)
    reopened = ticket.events.get(kind=EventKind.REOPENED)
    assert reopened.at == later and reopened.data["window_days"] == 7
    restarted = SlaTimer.objects.filter(ticket=ticket, started_at=later)
    assert set(restarted.values_list("metric", flat=True)) == {
        Metric.RESOLUTION,
        Metric.CLOSE_OUT,
    }


def test_a_reply_after_the_window_opens_a_new_ticket(account: SocialAccount) -> None:
    first = post("My parcel is a week late @AcmeCare")
    ingest_posts(account, [first])
    ticket = Ticket.objects.get()
    _close(ticket, START + timedelta(days=1))
    reply = post("it broke again", at=START + timedelta(days=9), kind=MessageKind.REPLY,
                 conversation=first.conversation_id, reply_to=first.external_id)  # fmt: skip
    assert ingest_posts(account, [reply]).tickets_opened == 1
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    assert EventKind.REOPENED not in _kinds(ticket)


def test_a_dm_after_close_reopens_at_the_private_steps(account: SocialAccount) -> None:
    ingest_posts(account, [post("My parcel is a week late @AcmeCare")])
    ticket = Ticket.objects.get()
    _close(ticket, START + timedelta(days=1))
    ingest_posts(account, [post("the replacement is broken too", kind=MessageKind.DM,
                                public=False, at=START + timedelta(days=2))])  # fmt: skip
    ticket.refresh_from_db()
    assert ticket.status == Status.OFFLINE
    assert Ticket.objects.count() == 1


def test_reopening_can_be_switched_off(account: SocialAccount) -> None:
    ThreadingSettings.objects.create(organization=account.organization, reopen_window_days=0)
    first = post("My parcel is a week late @AcmeCare")
    ingest_posts(account, [first])
    _close(Ticket.objects.get(), START + timedelta(hours=1))
    reply = post("again", at=START + timedelta(hours=2), kind=MessageKind.REPLY,
                 conversation=first.conversation_id, reply_to=first.external_id)  # fmt: skip
    assert ingest_posts(account, [reply]).tickets_opened == 1


# Set-based ---------------------------------------------------------------------------------------


def _ticket_reads(account: SocialAccount, posts: list[InboundPost]) -> int:
    with CaptureQueriesContext(connection) as queries:
        ingest_posts(account, posts)
    # A ticket's row locked to write whose turn it is (``refresh_last_message_direction``,
    # one per stored post) is a write, not a threading read.
    return sum(
        1
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT")
        and 'FROM "tickets_ticket"' in q["sql"]
        and "FOR UPDATE" not in q["sql"]
    )


@pytest.mark.parametrize("customers", [3, 12])
def test_threading_reads_tickets_once_per_batch(account: SocialAccount, customers: int) -> None:
    """Follow-ups of many customers, each joining their ticket by thread, by DM or by text:
    the tickets are read in one query for the whole batch, however many posts it has."""
    firsts = [
        post(f"order {n} is late and nobody answers", author=str(4000 + n), username=f"c{n}")
        for n in range(customers)
    ]
    ingest_posts(account, firsts)
    later = START + timedelta(hours=1)
    follow_ups = []
    for n, first in enumerate(firsts):
        author = str(4000 + n)
        follow_ups += [
            post("any news?", author=author, at=later, kind=MessageKind.REPLY,
                 conversation=first.conversation_id, reply_to=first.external_id),
            post("my details", author=author, at=later, kind=MessageKind.DM, public=False),
            post(f"order {n} is late and nobody answers!", author=author, at=later),
        ]  # fmt: skip
    assert _ticket_reads(account, follow_ups) == 1
    assert Ticket.objects.count() == customers


def test_a_post_that_fails_rolls_back_alone_and_threading_goes_on(account: SocialAccount) -> None:
    """PostgreSQL refuses a NUL character: that post (and what it changed) rolls back, and the
    author's next post in the same batch still finds their ticket and updates their identity."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite stores a NUL character: only PostgreSQL refuses this post")
    first = post("My parcel is a week late @AcmeCare")
    # Dana gained followers since: the broken post's update of her identity rolls back too.
    broken = post("the app is down \x00 too", at=START + timedelta(minutes=1), followers=1800)
    reply = post("any news?", at=START + timedelta(minutes=2), kind=MessageKind.REPLY,
                 conversation=first.conversation_id, reply_to=first.external_id,
                 followers=1800)  # fmt: skip
    result = ingest_posts(account, [first, broken, reply])
    assert (result.stored, result.tickets_opened) == (2, 1)
    assert [post for post, _ in result.failed] == [broken]
    ticket = Ticket.objects.get()
    assert set(ticket.messages.values_list("external_id", flat=True)) == {
        first.external_id,
        reply.external_id,
    }
    assert CustomerIdentity.objects.get().followers == 1800
