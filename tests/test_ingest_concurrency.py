"""Two handles of one organisation ingesting the same posts at the same moment (a post that
names both is fetched by both polls): each post is stored once, each customer gets one ticket,
and nothing is set aside. Without the organisation's ingest lock (``careinbox.locks``) the two
transactions inserted the same customers in opposite orders and PostgreSQL failed one of them
as a deadlock (``bench/ingest_storm.py`` found it: 22 of 2,000 posts set aside)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections

from channels_social.base import Author, InboundPost
from channels_social.intake import StoreResult
from channels_social.models import SocialAccount
from tests.factories import next_platform_id
from tickets.models import Customer, Message, MessageKind, Ticket, TicketEvent
from tickets.services import ingest_posts

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _posts(count: int) -> list[InboundPost]:
    posts = []
    for n in range(count):
        external_id = next_platform_id()
        posts.append(
            InboundPost(
                external_id=external_id,
                text=f"@AcmeShop @AcmeHelp order {n} never arrived",
                created_at=START + timedelta(seconds=n),
                author=Author(str(3000 + n), f"fan{n}", f"Fan {n}", 10, False),
                kind=MessageKind.POST,
                conversation_id=external_id,
                addressed_account_ids=("1000", "1001"),
            )
        )
    return posts


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serialises writers")
def test_two_handles_ingesting_the_same_posts_at_once_store_each_once(
    make_account: Callable[..., SocialAccount],
) -> None:
    shop = make_account(external_id="1000", username="AcmeShop")
    help_ = make_account(external_id="1001", username="AcmeHelp", brand=shop.brand)
    posts = _posts(40)
    # Opposite orders: each transaction reaches the other's first customers last.
    batches = {shop.pk: posts, help_.pk: list(reversed(posts))}
    start = threading.Barrier(2)
    results: dict[int, StoreResult] = {}
    errors: list[BaseException] = []

    def ingest(account: SocialAccount) -> None:
        try:
            start.wait(timeout=10)
            results[account.pk] = ingest_posts(account, batches[account.pk])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ingest, args=(a,)) for a in (shop, help_)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert [r.failed for r in results.values()] == [[], []]
    assert sum(r.stored for r in results.values()) == 40
    assert sum(r.duplicates for r in results.values()) == 40
    assert Message.objects.count() == 40
    assert Customer.objects.count() == 40
    assert Ticket.objects.count() == 40
    assert TicketEvent.objects.filter(kind="opened").count() == 40


# --- Lock order: the ticket before its search document ----------------------------------------

LOCK_ORDER_CASES = ["customer reply (set-based)", "brand reply from X", "one post at a time"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no row locks")
@pytest.mark.parametrize("case", LOCK_ORDER_CASES)
def test_ingest_locks_the_ticket_before_its_search_document(
    make_account: Callable[..., SocialAccount], case: str
) -> None:
    """Found in review: set-based ingest inserted a batch's messages (their insert trigger
    locks each ticket's search document) and only then locked the tickets it joined
    (``refresh_whose_turn``), while an agent closing a ticket locks it, then its document
    (migration 0026's status trigger): each held what the other wanted, and PostgreSQL
    aborted one of them as a deadlock. Here connection A holds the ticket as the close does;
    the real ingest of a new message on it must wait for the ticket with the document still
    free, so A can take the document too (NOWAIT), commit, and the ingest go on."""
    import psycopg2.errors

    from tests.backends import close_and_wait_gone, other_backend
    from tests.test_threading import post
    from tickets.services.ingest import _store_one_by_one

    account = make_account(external_id="1000", username="AcmeShop")
    root = post("my parcel is late", author="9001", username="c9001")
    ingest_posts(account, [root])
    ticket = Ticket.objects.get()
    if case == "brand reply from X":
        new = post(
            "@c9001 sorry, we are on it",
            author="1000",
            username="AcmeShop",
            conversation=root.conversation_id,
            reply_to=root.external_id,
        )
    else:
        new = post(
            "still no zebrafish parcel",
            author="9001",
            username="c9001",
            conversation=root.conversation_id,
            reply_to=root.external_id,
        )
    other, pid = other_backend()
    with other.cursor() as cursor:  # A: the ticket, as an agent's close holds it
        cursor.execute("SELECT id FROM tickets_ticket WHERE id = %s FOR UPDATE", [ticket.pk])
    errors: list[BaseException] = []
    results: list[StoreResult] = []

    def ingest() -> None:
        try:
            if case == "one post at a time":
                from django.db import transaction

                with transaction.atomic():
                    results.append(_store_one_by_one(account, [new], {"1000": account}))
            else:
                results.append(ingest_posts(account, [new]))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    ingesting = threading.Thread(target=ingest)
    ingesting.start()
    try:
        with connection.cursor() as cursor:  # the ingest waits for a lock A holds
            for _ in range(400):
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND %s = ANY(pg_blocking_pids(pid))",
                    [pid],
                )
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the ingest never waited for the ticket A holds")
        with other.cursor() as cursor:
            try:
                cursor.execute(
                    "SELECT ticket_id FROM tickets_ticketsearch WHERE ticket_id = %s "
                    "FOR UPDATE NOWAIT",
                    [ticket.pk],
                )
            except psycopg2.errors.LockNotAvailable:
                raise AssertionError(
                    "the ingest took the ticket's search document before the ticket"
                ) from None
            assert cursor.fetchone() == (ticket.pk,)
        other.commit()
    finally:
        other.rollback()  # a no-op after the commit; frees the ingest when the test failed
        ingesting.join(timeout=60)
        close_and_wait_gone(other, pid)
    assert not ingesting.is_alive()
    assert errors == []
    assert [r.stored for r in results] == [1]
    stored = Message.objects.get(external_id=new.external_id)
    assert stored.ticket_id == ticket.pk
    ticket.refresh_from_db()
    expected = "out" if case == "brand reply from X" else "in"
    assert ticket.last_message_direction == expected
