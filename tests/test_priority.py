"""Priority a manager can read: a score from named factors, stored and shown with the ticket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from careinbox.accounts.models import Organization
from tests.factories import InboundMessageFactory, OrganizationFactory, TicketFactory, UserFactory
from tickets.models import (
    EventKind,
    Priority,
    PriorityRules,
    Sentiment,
    Status,
    Ticket,
    TicketEvent,
)
from tickets.priority import (
    Signals,
    assess,
    assess_signals,
    on_reposted,
    on_reposted_many,
    rescore_ticket,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "followers", "level", "reason"),
    [
        ("Your app is down again #thissucks", 85_000, Priority.URGENT, "uses #thissucks"),
        ("My charger caught fire!", 50, Priority.URGENT, "legal or safety"),
        ("Charged me twice and nobody answers", 40_000, Priority.URGENT, "40,000 followers"),
        ("My order never arrived", 300, Priority.HIGH, "reads as a complaint"),
        ("What time do you open on Sunday?", 25_000, Priority.HIGH, "25,000 followers"),
        ("Does the blender come with a UK plug?", 120, Priority.NORMAL, "a question or comment"),
        ("Loving the new blender, best purchase this year.", 900, Priority.LOW, "praise"),
        ("The refund was super quick. Appreciated.", 2_668, Priority.LOW, "praise"),
        ("Thanks for nothing so far...", 335_100, Priority.URGENT, "complaint"),
    ],
)
def test_assess_text_and_reach(text: str, followers: int, level: int, reason: str) -> None:
    got_level, reasons = assess(text=text, followers=followers)
    assert got_level == level, reasons
    assert any(reason in r for r in reasons), reasons


def test_each_factor_has_points_and_a_reason_largest_first() -> None:
    now = timezone.now()
    result = assess_signals(
        Signals(
            text="Where is my refund? Day 9 #AcmeFail",
            followers=3_000,
            author_handle="Dana",
            metrics={"retweet_count": 30, "quote_count": 5, "like_count": 90},
            posted_at=now - timedelta(minutes=30),
            now=now,
            earlier_tickets=2,
            keywords=("refund",),
            hashtags=("acmefail",),
            vip_handles=frozenset({"dana"}),
        )
    )
    kinds = {f.factor for f in result.factors}
    assert kinds == {"reach", "virality", "hashtag", "keyword", "sentiment", "repeat", "vip"}
    points = [abs(f.points) for f in result.factors]
    assert points == sorted(points, reverse=True)
    assert result.score == sum(f.points for f in result.factors)
    assert result.level == Priority.URGENT
    assert result.factors[0].factor == "vip" and "@Dana is on the VIP list" in result.reasons[0]
    virality = next(f for f in result.factors if f.factor == "virality")
    assert "35 reposts and quotes, 90 likes in 30 min" in virality.reason
    assert any("complained 2 times before" in r for r in result.reasons)


def test_slow_engagement_is_no_virality() -> None:
    now = timezone.now()
    signals = Signals(
        text="Nice update",
        followers=10,
        metrics={"retweet_count": 2, "like_count": 5},
        posted_at=now - timedelta(hours=20),
        now=now,
    )
    assert "virality" not in {f.factor for f in assess_signals(signals).factors}


@pytest.fixture
def ticket(org) -> Ticket:  # type: ignore[no-untyped-def]
    ticket = TicketFactory(
        social_account__brand__organization=org, customer_username="dana", customer_followers=500
    )
    root = InboundMessageFactory(ticket=ticket, text="Is the shop open late today?")
    Ticket.objects.filter(pk=ticket.pk).update(root_message=root)
    ticket.refresh_from_db()
    return ticket


def test_rescoring_after_reposts_raises_the_level_and_records_it(ticket: Ticket) -> None:
    Ticket.objects.filter(pk=ticket.pk).update(reposts=40, repost_reach=250_000)
    ticket.refresh_from_db()
    assert rescore_ticket(ticket)
    ticket.refresh_from_db()
    assert ticket.priority == Priority.URGENT
    assert ticket.main_priority_reason.startswith("500 followers, 250,000 more through reposts")
    assert {f["factor"] for f in ticket.priority_factors} >= {"reach", "virality"}
    change = ticket.events.get(kind=EventKind.PRIORITY_CHANGED)
    assert change.actor is None and change.data["reason"].startswith("Rescored:")
    assert not rescore_ticket(ticket)  # nothing new: nothing changes


def test_rescoring_never_overrides_an_agents_choice(ticket: Ticket, agent) -> None:  # type: ignore[no-untyped-def]
    ticket.change_priority(Priority.LOW, by=agent.user, reason="A regular, just chatting")
    Ticket.objects.filter(pk=ticket.pk).update(reposts=40, repost_reach=250_000)
    ticket.refresh_from_db()
    rescore_ticket(ticket)
    ticket.refresh_from_db()
    assert ticket.priority == Priority.LOW  # the factors are fresh, the level is the agent's
    assert ticket.priority_score >= 50


def test_organisation_rules_are_read_at_ingest(org, make_account) -> None:  # type: ignore[no-untyped-def]
    from channels_social.base import Author, InboundPost
    from tickets.services import ingest_posts

    account = make_account()
    PriorityRules.objects.create(organization=org, keywords=["recall"], vip_handles=["bigco"])
    post = InboundPost(
        external_id="9001",
        text="@brand is the kettle part of the recall?",
        created_at=timezone.now(),
        author=Author(external_id="77", username="BigCo", followers_count=10),
        kind="post",
    )
    ingest_posts(account, [post])
    opened = Ticket.objects.get(customer_username="BigCo")
    assert opened.priority == Priority.URGENT
    assert opened.priority_reasons[:2] == ["@BigCo is on the VIP list", 'mentions "recall"']
    assert opened.sentiment == Sentiment.NEUTRAL
    assert opened.events.get(kind=EventKind.OPENED).data["priority"] == Priority.URGENT


def _reposted_world(org: Organization) -> list[int]:
    """Tickets of one organisation, each just reposted (its REPOSTED event's id): a small one,
    a viral one, one an agent set the priority of, a closed one, and a customer's second
    ticket (the repeat count)."""
    brand = TicketFactory(social_account__brand__organization=org).social_account
    made = []
    for n, status in enumerate([Status.NEW, Status.NEW, Status.NEW, Status.CLOSED]):
        ticket = TicketFactory(
            social_account=brand,
            organization=org,
            brand=brand.brand,
            customer_external_id=f"77{n}",
            customer_followers=500,
            opened_at=NOW - timedelta(minutes=30),
            status=status,
        )
        made.append(ticket)
    again = TicketFactory(
        social_account=brand,
        organization=org,
        brand=brand.brand,
        customer_external_id="770",
        customer_followers=500,
        opened_at=NOW - timedelta(minutes=10),
    )
    made.append(again)
    ids = []
    for n, (ticket, reach) in enumerate(
        zip(made, [10, 250_000, 90_000, 90_000, 30_000], strict=True)
    ):
        root = InboundMessageFactory(
            ticket=ticket, text="My order never arrived", created_at=ticket.opened_at
        )
        Ticket.objects.filter(pk=ticket.pk).update(root_message=root, reposts=3, repost_reach=reach)
        ticket.refresh_from_db()
        if reach == 90_000 and ticket.is_open:
            agent = UserFactory(username=f"setter-{org.pk}")
            ticket.change_priority(Priority.LOW, by=agent, reason="A regular")
        ids.append(ticket.record(EventKind.REPOSTED, repost_id=f"r{n}", by="fan").pk)
    return ids


def _scores(org: Organization) -> list[object]:
    return [
        (
            ticket.priority,
            ticket.priority_score,
            ticket.priority_factors,
            ticket.priority_reasons,
            sorted(
                (event.kind, bool(event.actor_id), repr(sorted(event.data.items())))
                for event in ticket.events.all()
            ),
        )
        for ticket in Ticket.objects.filter(organization=org).order_by("pk")
    ]


@pytest.mark.django_db
def test_reposts_rescored_together_end_as_one_at_a_time() -> None:
    one_by_one, together = OrganizationFactory(), OrganizationFactory()
    with time_machine.travel(NOW, tick=False):
        alone, batch = _reposted_world(one_by_one), _reposted_world(together)
        assert _scores(one_by_one) == _scores(together)
        for event in TicketEvent.objects.filter(pk__in=alone).order_by("pk"):
            on_reposted(event)
        on_reposted_many(list(TicketEvent.objects.filter(pk__in=batch).order_by("pk")))
    assert _scores(together) == _scores(one_by_one)
    assert TicketEvent.objects.filter(
        ticket__organization=together, kind=EventKind.PRIORITY_CHANGED, actor__isnull=True
    ).exists()  # a rescoring raised a level


@pytest.mark.django_db
def test_a_deliverys_reposts_cost_the_same_statements_for_two_or_six_tickets() -> None:
    """Their tickets, rules, repeat counts and agent overrides read once (one by one: four
    statements a ticket); a ticket whose score did not move writes nothing."""
    counts = []
    for size in (2, 6):
        org = OrganizationFactory()
        brand = TicketFactory(social_account__brand__organization=org).social_account
        ids = []
        with time_machine.travel(NOW, tick=False):
            for n in range(size):
                ticket = TicketFactory(
                    social_account=brand, organization=org, brand=brand.brand, opened_at=NOW
                )
                root = InboundMessageFactory(ticket=ticket, text="Still waiting", created_at=NOW)
                Ticket.objects.filter(pk=ticket.pk).update(root_message=root, reposts=1)
                ticket.refresh_from_db()
                rescore_ticket(ticket)  # scored already: the repost's rescoring only reads
                ids.append(ticket.record(EventKind.REPOSTED, repost_id=f"s{n}", by="fan").pk)
            with CaptureQueriesContext(connection) as queries:
                on_reposted_many(list(TicketEvent.objects.filter(pk__in=ids).order_by("pk")))
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
