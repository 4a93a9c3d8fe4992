"""Two handles of one organisation ingesting the same posts at the same moment (a post that
names both is fetched by both polls): each post is stored once, each customer gets one ticket,
and nothing is set aside. Without the organisation's ingest lock (``careinbox.locks``) the two
transactions inserted the same customers in opposite orders and PostgreSQL failed one of them
as a deadlock (``bench/ingest_storm.py`` found it: 22 of 2,000 posts set aside)."""

from __future__ import annotations

import threading
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
