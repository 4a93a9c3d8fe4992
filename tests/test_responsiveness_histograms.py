"""The responsiveness badge's last 7 days from day histograms (``ResponseDayStat``,
``monitoring.reports.responsiveness``): the dashboard's figure (``Report``) equals the
per-ticket computation (``FactReport``: a ``percentile_cont`` p90 per handle over the facts) on
random data in a time zone with a half-hour offset, at several request times (so the partial
first day starts at different hours), under the brand and channel filters, after writes that
move tickets between rows (closed as spam, merged, reopened, answered late, moved to another
handle and brand) and after a team and a user are deleted; the rows kept incrementally equal
the rows rebuilt set-based; a histogram that disagrees with the facts is never shown (the
figure reads the facts). Runs on PostgreSQL and SQLite."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from careinbox.accounts.models import Organization, Team, User
from channels_social.models import SocialAccount
from monitoring.models import ResponseDayStat, TicketFact
from monitoring.reports import responsiveness, rollups
from monitoring.reports.figures import RESPONSIVENESS_DAYS, FactReport, Report
from monitoring.reports.filters import parse_filter
from tests.factories import InboundMessageFactory, SocialAccountFactory, UserFactory
from tests.test_reports import all_targets_policy, open_ticket, reply
from tests.test_time_histograms import _build as build_times
from tickets.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now().replace(microsecond=0)


def _build(org: Organization, rng: random.Random, n: int) -> list[Ticket]:
    org.time_zone = "Asia/Kolkata"  # +05:30: local days start at 18:30 UTC
    org.save(update_fields=["time_zone"])
    all_targets_policy(org)
    first = SocialAccountFactory(brand__organization=org, username="resp-a")
    accounts = [
        first,
        SocialAccountFactory(brand=first.brand, username="resp-b"),
        SocialAccountFactory(brand__organization=org, username="resp-c"),
    ]
    teams: list[Team | None] = [None, Team.objects.create(organization=org, name="Resp care")]
    agents: list[User | None] = [None, UserFactory(), UserFactory()]
    tied = [rng.randint(16, 3000) for _ in range(4)]
    tickets = []
    with rollups.deferred():
        for _ in range(n):
            opened = NOW - timedelta(minutes=rng.randint(10, 60 * 24 * 10))
            ticket = open_ticket(
                rng.choice(accounts), opened, agent=rng.choice(agents), team=rng.choice(teams)
            )
            tickets.append(ticket)
            roll = rng.random()
            if roll < 0.8:
                seconds = (
                    rng.randint(0, 15)
                    if roll < 0.15
                    else rng.choice(tied)
                    if roll < 0.4
                    else int(rng.lognormvariate(7, 1.5))
                )
                reply(ticket, opened + timedelta(seconds=seconds))
            roll = rng.random()
            if roll < 0.1:
                ticket.close_without_reply(reason="spam", by=None)
            elif roll < 0.15:
                ticket.close_without_reply(reason="duplicate", by=None)
            elif roll < 0.2:
                ticket.close_without_reply(reason="dms_closed", by=None)  # still counted
            elif roll < 0.23 and tickets[0].pk != ticket.pk:
                ticket.close_as_merged(tickets[0], by=None, moved=0)
    return tickets


def _filters(org: Organization) -> list[tuple[dict[str, str], datetime]]:
    account = SocialAccount.objects.filter(organization=org).order_by("pk").first()
    assert account is not None
    got = []
    # The window's first day starts before, at and after local midnight, and on other days.
    for shift in (timedelta(0), timedelta(hours=7), timedelta(hours=19, minutes=45), timedelta(2)):
        now = NOW - shift
        got += [
            ({}, now),
            ({"brand": str(account.brand_id)}, now),
            ({"channel": str(account.pk)}, now),
            ({"period": "30d", "team": str(Team.objects.get(organization=org).pk)}, now),
        ]
    return got


def _without_key(counts: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    names = ("total", "answered", "fast_sum", "fast_n")
    return {pk: {name: row[name] for name in names} for pk, row in counts.items()}


def _assert_same(org: Organization) -> None:
    shown = 0
    for query, now in _filters(org):
        filt = parse_filter(query, org, now=now)
        assert not filt.errors, filt.errors
        got = responsiveness.window_counts(filt, RESPONSIVENESS_DAYS)
        assert got is not None, query  # from the histograms, not the facts' fallback
        facts = FactReport(filt)
        assert _without_key(got) == _without_key(facts._responsiveness_counts()), (query, now)
        assert Report(filt).table("responsiveness").rows == facts.table("responsiveness").rows
        shown += sum(row["fast_n"] for row in got.values())
    assert shown > 0  # some handle had a p90 and first responses under it


def _kept() -> list[tuple[Any, ...]]:
    fields = [f.attname for f in ResponseDayStat._meta.concrete_fields if f.attname != "id"]
    rows = ResponseDayStat.objects.order_by(*fields).values_list(*fields)
    return [row for row in rows if row[-2] or row[-1]]


def _assert_kept_equals_rebuilt() -> None:
    before = _kept()
    assert before
    with connection.cursor() as cursor:
        responsiveness.rebuild_response_days(cursor)
    assert _kept() == before


def test_the_badge_from_histograms_equals_the_facts(org: Organization) -> None:
    rng = random.Random(20261203)
    tickets = _build(org, rng, 180)
    counted = TicketFact.objects.filter(organization=org).exclude(
        closed_reason__in=("spam", "duplicate", "merged")
    )
    assert counted.count() < len(tickets)  # some are not owed
    _assert_same(org)
    _assert_kept_equals_rebuilt()

    # Writes that move tickets between rows.
    other = SocialAccount.objects.get(username="resp-c")
    for n, stale in enumerate(tickets[1:61]):
        ticket = Ticket.objects.get(pk=stale.pk)
        if n % 4 == 0 and ticket.is_open:
            ticket.close_without_reply(reason="spam", by=None)
        elif n % 4 == 1 and not ticket.is_open:
            message = InboundMessageFactory(ticket=ticket, created_at=timezone.now())
            ticket.reopen(message=message, window_days=7)
        elif n % 4 == 2 and not TicketFact.objects.get(ticket=ticket).first_response_seconds:
            reply(ticket, ticket.opened_at + timedelta(seconds=rng.randint(20, 900)))
        else:
            Ticket.objects.filter(pk=ticket.pk).update(social_account=other, brand=other.brand)
            rollups.refresh_ticket_rollup(ticket.pk)
    # Deleted: the facts' team and agent go NULL (no refresh); the histograms have neither.
    Team.objects.filter(organization=org).delete()
    User.objects.filter(pk__in={t.assigned_to_id for t in tickets} - {None}).delete()
    Team.objects.create(organization=org, name="Resp later")  # for the team filter
    _assert_same(org)
    _assert_kept_equals_rebuilt()


def test_a_stale_histogram_is_never_shown(org: Organization) -> None:
    rng = random.Random(11)
    _build(org, rng, 80)
    filt = parse_filter({}, org, now=NOW)
    right = FactReport(filt).table("responsiveness").rows
    assert Report(filt).table("responsiveness").rows == right
    # A whole day's row of a bucket that is read (wider than a second), one ticket too many:
    # as if a write had committed between the two reads.
    first_day = (NOW - timedelta(days=RESPONSIVENESS_DAYS)).astimezone(filt.zone).date()
    row = (
        ResponseDayStat.objects.filter(organization=org, day__gt=first_day, bucket__gte=16)
        .order_by("-tickets", "pk")
        .first()
    )
    assert row is not None
    ResponseDayStat.objects.filter(
        organization=org, social_account_id=row.social_account_id, day__gt=first_day
    ).filter(bucket__gte=16).update(tickets=row.tickets + 1)
    assert responsiveness.window_counts(filt, RESPONSIVENESS_DAYS) is None
    assert Report(filt).table("responsiveness").rows == right


def test_a_deleted_team_or_user_is_left_out_of_the_people_tables(org: Organization) -> None:
    """A deleted team's or user's rows in the daily sums and time histograms (plain ids) are
    re-keyed to none as the facts go to no team or assignee (SET_NULL): the agents and teams
    tables have no group for it, as the per-ticket figures have none (no "#id" row)."""
    tickets = build_times(org, random.Random(3), 60)
    Team.objects.filter(organization=org).order_by("pk").first().delete()  # type: ignore[union-attr]
    agent_ids = sorted({t.assigned_to_id for t in tickets} - {None})
    User.objects.filter(pk=agent_ids[0]).delete()
    for query in ({"period": "30d"}, {"period": "7d"}):
        filt = parse_filter(query, org)
        for key in ("agents", "teams", "backlog", "sla_by_target", "response_times"):
            assert Report(filt).table(key).rows == FactReport(filt).table(key).rows, (query, key)
