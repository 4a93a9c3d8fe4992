"""Set-based ingest (``tickets.services.ingest``): a poll's batch is threaded in memory and
written in a few statements for the whole batch, with the same outcome as one post at a time:
copies inside a batch are stored once, posts of one batch thread into the tickets earlier posts
of the same batch opened (replies, near-duplicates, a reopening), a post the database refuses
is set aside while the rest land, and every created ticket and message is published once,
after commit, to the handlers other apps registered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_social.base import Author, InboundPost
from channels_social.models import SocialAccount
from monitoring.models import Metric, SlaTimer
from monitoring.reports.rollups import refresh_ticket_rollup
from tests.factories import next_platform_id
from tickets import events
from tickets.models import (
    Customer,
    CustomerIdentity,
    EventKind,
    Message,
    MessageKind,
    Status,
    Ticket,
    TicketEvent,
)
from tickets.services import ingest_posts

pytestmark = pytest.mark.django_db(transaction=True)  # events reach handlers after commit

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _post(
    text: str,
    *,
    author: str,
    at: datetime = START,
    reply_to: InboundPost | None = None,
    followers: int = 120,
    external_id: str | None = None,
) -> InboundPost:
    external_id = external_id or next_platform_id()
    return InboundPost(
        external_id=external_id,
        text=text,
        created_at=at,
        author=Author(author, f"fan{author}", f"Fan {author}", followers, False),
        kind=MessageKind.REPLY if reply_to else MessageKind.POST,
        conversation_id=reply_to.conversation_id if reply_to else external_id,
        in_reply_to_external_id=reply_to.external_id if reply_to else "",
        addressed_account_ids=("1000",),
    )


@pytest.fixture
def account(make_account: Callable[..., SocialAccount]) -> SocialAccount:
    return make_account(external_id="1000", username="AcmeCare")


@pytest.fixture
def seen() -> Iterator[list[tuple[str, int, int | None]]]:
    """Every OPENED and MESSAGE_RECEIVED event a handler of another app is handed."""
    calls: list[tuple[str, int, int | None]] = []

    def remember_ingest(event: TicketEvent) -> None:
        calls.append((event.kind, event.ticket_id, event.message_id))

    events.subscribe(remember_ingest, kinds=[EventKind.OPENED, EventKind.MESSAGE_RECEIVED])
    yield calls
    events._subscriptions[:] = [
        s for s in events._subscriptions if s.handler is not remember_ingest
    ]


def test_copies_inside_a_batch_are_stored_once_and_published_once(
    account: SocialAccount, seen: list[tuple[str, int, int | None]]
) -> None:
    earlier = _post("order 7 never came", author="3001")
    assert ingest_posts(account, [earlier]).stored == 1
    seen.clear()
    first = _post("my parcel 12 is lost", author="3002", at=START + timedelta(minutes=1))
    reply = _post("hello? 12", author="3002", at=START + timedelta(minutes=2), reply_to=first)
    # The same post fetched twice in one batch (it names two handles), and one stored before.
    result = ingest_posts(account, [earlier, first, first, reply, reply])

    assert (result.stored, result.tickets_opened, result.duplicates) == (2, 1, 3)
    assert result.failed == []
    assert Message.objects.filter(external_id=first.external_id).count() == 1
    ticket = Ticket.objects.get(customer_external_id="3002")
    assert list(ticket.messages.values_list("external_id", flat=True)) == [
        first.external_id,
        reply.external_id,
    ]
    assert ticket.root_message_id == Message.objects.get(external_id=first.external_id).pk
    root, follow_up = ticket.messages.order_by("created_at")
    # Handed to the other apps' handlers once each, after commit.
    assert sorted(seen) == sorted(
        [
            (EventKind.OPENED, ticket.pk, None),
            (EventKind.MESSAGE_RECEIVED, ticket.pk, root.pk),
            (EventKind.MESSAGE_RECEIVED, ticket.pk, follow_up.pk),
        ]
    )
    assert not TicketEvent.objects.filter(dispatched_at__isnull=True).exists()
    # Monitoring's handler started the timers; the report row was written by the batch form.
    assert SlaTimer.objects.filter(ticket=ticket, metric=Metric.FIRST_RESPONSE).count() == 1
    assert ticket.report_fact.is_open and ticket.sla_facts.count() >= 1
    assert Customer.objects.count() == 2 and CustomerIdentity.objects.count() == 2


def test_a_post_the_database_refuses_is_set_aside_and_the_rest_land(
    account: SocialAccount, seen: list[tuple[str, int, int | None]]
) -> None:
    good = [_post(f"order {n} is late", author=str(4000 + n)) for n in range(3)]
    # A negative follower count: the database's CHECK (>= 0) refuses it, on PostgreSQL and
    # SQLite alike, so the set-based write fails and the batch is stored post by post.
    bad = _post("order 99 is late", author="4999", followers=-1)
    result = ingest_posts(account, [good[0], bad, good[1], good[2]])

    assert (result.stored, result.tickets_opened, result.duplicates) == (3, 3, 0)
    assert [post.external_id for post, _ in result.failed] == [bad.external_id]
    assert "CHECK" in result.failed[0][1] or "check constraint" in result.failed[0][1]
    assert set(Message.objects.values_list("external_id", flat=True)) == {
        p.external_id for p in good
    }
    assert not Customer.objects.filter(identities__external_id="4999").exists()
    tickets = list(Ticket.objects.order_by("pk"))
    assert len(tickets) == 3
    # Nothing of the rolled-back attempt reached a handler; each stored post did, once.
    assert (
        sorted(kind for kind, _, _ in seen)
        == [EventKind.MESSAGE_RECEIVED] * 3 + [EventKind.OPENED] * 3
    )
    assert {ticket for _, ticket, _ in seen} == {t.pk for t in tickets}
    assert (
        TicketEvent.objects.filter(kind__in=[EventKind.OPENED, EventKind.MESSAGE_RECEIVED]).count()
        == 6
    )
    assert SlaTimer.objects.filter(metric=Metric.FIRST_RESPONSE).count() == 3


def test_a_batch_threads_into_what_it_opened_and_reopens_once(
    account: SocialAccount,
) -> None:
    """One batch: a customer's ticket closed yesterday is reopened by their reply and joined
    by their reply to that reply; another customer's new ticket is joined by their reply and by the
    same complaint said again."""
    old = _post("the app crashes on login", author="5001", at=START - timedelta(days=1))
    ingest_posts(account, [old])
    closed = Ticket.objects.get()
    Ticket.objects.filter(pk=closed.pk).update(status=Status.CLOSED, closed_at=START)
    later = START + timedelta(hours=2)
    again = _post("still crashing", author="5001", at=later, reply_to=old)
    more = _post(
        "and now it logs me out", author="5001", at=later + timedelta(seconds=5), reply_to=again
    )
    new = _post("refund for order 31 please, charged twice", author="5002", at=later)
    reply = _post("any news on 31?", author="5002", at=later + timedelta(seconds=9), reply_to=new)
    repeat = _post(
        "refund for order 31 please, I was charged twice",
        author="5002",
        at=later + timedelta(minutes=1),
    )
    result = ingest_posts(account, [again, new, more, reply, repeat])

    assert (result.stored, result.tickets_opened, result.failed) == (5, 1, [])
    closed.refresh_from_db()
    assert closed.status == Status.NEW and closed.closed_at is None
    assert closed.messages.count() == 3
    assert closed.events.filter(kind=EventKind.REOPENED).count() == 1
    opened = Ticket.objects.get(customer_external_id="5002")
    assert opened.messages.count() == 3
    near = opened.events.get(
        kind=EventKind.MESSAGE_RECEIVED, message__external_id=repeat.external_id
    )
    assert near.data["near_duplicate"] >= 80
    assert Ticket.objects.count() == 2
    assert CustomerIdentity.objects.count() == 2


# The statements a batch costs: a fixed number for the whole batch, whatever its size. Absolute
# figures, so a new statement per batch is caught at once (and one per post fails both sizes):
# two savepoints and their releases, the duplicate check, the handles, the threading settings,
# identities, tickets, the repeat counts, the priority rules; an INSERT each of customers,
# identities, tickets, messages and events, the root messages' UPDATE and whose turn it is
# (one UPDATE). PostgreSQL adds the organisation's ingest lock; SQLite splits the 40 tickets'
# INSERT in two (its 999 variables). PostgreSQL locks the tickets a batch joins before their
# messages go in (``_write``): none here, every ticket is new and the batch's own (20 before,
# when whose-turn locked every ticket of the batch, new ones too, after the messages).
BATCH_STATEMENTS = {("postgresql", 4): 19, ("postgresql", 40): 19, ("sqlite", 4): 18}
BATCH_STATEMENTS[("sqlite", 40)] = 19


@pytest.mark.parametrize("size", [4, 40])
def test_a_batch_of_new_customers_costs_a_fixed_number_of_statements(
    account: SocialAccount, size: int
) -> None:
    ingest_posts(account, [_post("warm-up: the policy and settings rows", author="6999")])
    posts = [
        _post(f"order {n} is late", author=str(6000 + n), at=START + timedelta(seconds=n))
        for n in range(size)
    ]
    # The outer block commits after the count ends: the handlers' statements are not counted.
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        result = ingest_posts(account, posts)
    assert (result.stored, result.tickets_opened) == (size, size)
    expected = BATCH_STATEMENTS[(connection.vendor, size)]
    assert len(queries.captured_queries) == expected, "\n".join(
        q["sql"][:150] for q in queries.captured_queries
    )
    refresh_ticket_rollup(Ticket.objects.order_by("pk").first().pk)  # the batch form's wrapper


def test_the_delivery_of_a_batch_costs_the_same_statements_for_4_or_40_new_tickets(
    account: SocialAccount,
) -> None:
    """After commit, a poll's events go to the handlers in rounds, each handler once per round
    (its many form: the timers of every new ticket in one INSERT, routing and the brand-replied
    check read once): the delivery's statements do not grow with the batch."""
    now = timezone.now()  # the real clock: no timer is past due, no breach to deliver
    ingest_posts(account, [_post("warm-up: the policy and settings rows", author="7999", at=now)])
    counts = []
    for size, base in ((4, 7000), (40, 7100)):
        posts = [
            _post(f"order {n} is late", author=str(base + n), at=now + timedelta(seconds=n))
            for n in range(size)
        ]
        with (
            CaptureQueriesContext(connection) as everything,
            transaction.atomic(),
            CaptureQueriesContext(connection) as ingest,
        ):
            assert ingest_posts(account, posts).tickets_opened == size
        counts.append(len(everything.captured_queries) - len(ingest.captured_queries))
        assert not TicketEvent.objects.filter(dispatched_at__isnull=True).exists()
    # SQLite splits one INSERT of 40 rows in two (its limit on variables), as ingest's own.
    assert counts[1] - counts[0] <= (1 if connection.vendor == "sqlite" else 0), counts
    # 56 on PostgreSQL; it grew with every ticket before. Of them, the daily sums' 4 (the old
    # facts read, one upsert per table), the dashboard's counts' 3 (one upsert each of the
    # responsiveness histograms, the open hours and the running timers' due days) and the
    # inbox counts token replaced after each of the two commits (3 each: its own short
    # transaction).
    assert counts[1] <= 56, counts
    assert SlaTimer.objects.filter(metric=Metric.FIRST_RESPONSE).count() == 45


def _repost(original: InboundPost, *, author: str, followers: int, at: datetime) -> InboundPost:
    external_id = next_platform_id()
    return InboundPost(
        external_id=external_id,
        text=f"RT {original.text}",
        created_at=at,
        author=Author(author, f"fan{author}", f"Fan {author}", followers, False),
        kind=MessageKind.POST,
        conversation_id=external_id,
        reposted_external_id=original.external_id,
    )


@pytest.mark.parametrize("size", [2, 8])
def test_a_batchs_reposts_widen_their_tickets_in_a_fixed_number_of_statements(
    account: SocialAccount, size: int
) -> None:
    """Reposts store no message: each widens the open ticket of the post it reposts, once,
    by the reposter's followers; one by a handle, of a closed ticket or of a post never stored
    changes nothing. A batch's reposts are recorded at once: the same statements for 2 or 8
    (one by one, each cost a savepoint, four statements and a release)."""
    loud = _post("my blender broke", author="8001")
    quiet = _post("my toaster broke", author="8002")
    closed = _post("my kettle broke", author="8003")
    ingest_posts(account, [loud, quiet, closed])
    Ticket.objects.filter(customer_external_id="8003").update(status=Status.CLOSED)
    at = START + timedelta(minutes=5)
    reposts = [
        _repost(loud if n % 2 == 0 else quiet, author=str(8100 + n), followers=10 * n + 1, at=at)
        for n in range(size)
    ]
    ignored = [
        _repost(closed, author="8200", followers=5000, at=at),
        _repost(loud, author="1000", followers=5000, at=at),  # the brand's own handle
        _repost(_post("never stored", author="8300"), author="8201", followers=5000, at=at),
    ]
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        result = ingest_posts(account, [*reposts, *ignored])
    assert (result.stored, result.tickets_opened, result.failed) == (0, 0, [])
    # The duplicate check, the handles, the threading settings, two savepoints and their
    # releases; the originals with their tickets, the reposts recorded already, one UPDATE of
    # the reach, one INSERT of the events; PostgreSQL adds the organisation's ingest lock.
    expected = 12 if connection.vendor == "postgresql" else 11
    assert len(queries.captured_queries) == expected, "\n".join(
        q["sql"][:150] for q in queries.captured_queries
    )
    for original, author in ((loud, "8001"), (quiet, "8002")):
        ticket = Ticket.objects.get(customer_external_id=author)
        theirs = [r for r in reposts if r.reposted_external_id == original.external_id]
        assert (ticket.reposts, ticket.repost_reach) == (
            len(theirs),
            sum(r.author.followers_count for r in theirs),
        )
        recorded = ticket.events.filter(kind=EventKind.REPOSTED).order_by("pk")
        assert [(e.data, e.at, e.message_id) for e in recorded] == [
            (
                {
                    "repost_id": r.external_id,
                    "by": r.author.username,
                    "followers": r.author.followers_count,
                },
                at,
                ticket.root_message_id,
            )
            for r in theirs
        ]
    kettle = Ticket.objects.get(customer_external_id="8003")
    assert (kettle.reposts, kettle.repost_reach) == (0, 0)
    assert TicketEvent.objects.filter(kind=EventKind.REPOSTED).count() == size
    # Delivered again: counted once.
    ingest_posts(account, [*reposts, *ignored])
    assert TicketEvent.objects.filter(kind=EventKind.REPOSTED).count() == size
    assert sum(Ticket.objects.values_list("reposts", flat=True)) == size
