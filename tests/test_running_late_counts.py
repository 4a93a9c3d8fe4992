"""The timers still running past their due time from their counts (``RunningDueStat``,
``monitoring.reports.running``): ``Report._running_late`` equals the straightforward count
over the timer facts (running, due before the request), and every compliance figure that adds
them equals the per-ticket ``FactReport``, on tickets whose three timers fall due over the last
days, today before and after the request, at request times just after UTC midnight, now and a
day back, under the filters, after a sweep breaches some, replies meet some, assignees and teams
change, and after a team and a user are deleted and their tickets then are answered,
reassigned, closed and breached (the deleted ids' rows re-keyed to none,
``monitoring.reports.rekey``); the counts kept incrementally equal the counts rebuilt
set-based. Runs on PostgreSQL and SQLite."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from careinbox.accounts.models import Organization, Team, User
from careinbox.accounts.services import team_delete
from channels_social.models import SocialAccount
from monitoring.models import RunningDueStat, SlaFact, SlaOutcome
from monitoring.reports import rollups, running
from monitoring.reports.figures import FactReport, Report
from monitoring.reports.filters import parse_filter
from monitoring.services import sla_sweep_breaches
from tests.factories import SocialAccountFactory, UserFactory
from tests.test_reports import all_targets_policy, open_ticket, reply
from tickets.models import Direction, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now().replace(microsecond=0)
# The next UTC midnight, and the one after: the tickets open after NOW (in the future), so no
# timer is due before the real time and none is breached on creation; the requests are later.
MIDNIGHT = datetime.combine(NOW.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
NEXT = MIDNIGHT + timedelta(days=1)
AFTER = NEXT + timedelta(days=1)
FIGURES = ("sla_by_target", "sla_by_priority", "sla_over_time", "agents", "teams")


def _build(org: Organization, rng: random.Random, n: int) -> list[Ticket]:
    all_targets_policy(org)
    first = SocialAccountFactory(brand__organization=org, username="late-a")
    accounts = [first, SocialAccountFactory(brand__organization=org, username="late-b")]
    teams: list[Team | None] = [None, Team.objects.create(organization=org, name="Late care")]
    agents: list[User | None] = [None, UserFactory(), UserFactory()]
    tickets = []
    with rollups.deferred():
        for _ in range(n):
            opened = NOW + timedelta(minutes=rng.randint(1, 60 * 24 * 3))
            ticket = open_ticket(
                rng.choice(accounts), opened, agent=rng.choice(agents), team=rng.choice(teams)
            )
            tickets.append(ticket)
            if rng.random() < 0.3:
                reply(ticket, opened + timedelta(minutes=rng.randint(1, 90)))
        # First responses due on either side of the second midnight, still running.
        for opened in (AFTER - timedelta(hours=2), AFTER + timedelta(hours=1)):
            tickets.append(open_ticket(accounts[0], opened, agent=agents[1], team=teams[1]))
    return tickets


def _requests(org: Organization) -> list[tuple[dict[str, str], datetime]]:
    account = SocialAccount.objects.filter(organization=org).order_by("pk").first()
    team = Team.objects.filter(organization=org).order_by("pk").first()
    assert account is not None and team is not None
    got = []
    for now in (AFTER + timedelta(hours=5), AFTER + timedelta(days=1, minutes=7), NOW):
        got += [
            ({}, now),
            ({"period": "30d"}, now),
            ({"brand": str(account.brand_id)}, now),
            ({"channel": str(account.pk), "period": "30d"}, now),
            ({"team": str(team.pk)}, now),
        ]
    return got


def _straightforward(report: Report) -> list[tuple[Any, ...]]:
    rows = (
        report.timers_in_period()
        .filter(outcome=SlaOutcome.RUNNING, due_at__lt=report.now)
        .values_list(*running.GROUP)
        .annotate(n=Count("pk"))
        .order_by()
    )
    return sorted(rows, key=str)


def _assert_same(org: Organization) -> int:
    late = 0
    for query, now in _requests(org):
        filt = parse_filter(query, org, now=now)
        assert not filt.errors, filt.errors
        report = Report(filt)
        got = sorted(
            (tuple(r[k] for k in (*running.GROUP, "n")) for r in report._running_late()), key=str
        )
        assert got == _straightforward(report), (query, now)
        late += sum(row[-1] for row in got)
        facts = FactReport(filt)
        for key in FIGURES:
            assert report.table(key).rows == facts.table(key).rows, (query, now, key)
    return late


def _kept() -> list[tuple[Any, ...]]:
    fields = [f.attname for f in RunningDueStat._meta.concrete_fields if f.attname != "id"]
    return [r for r in RunningDueStat.objects.order_by(*fields).values_list(*fields) if r[-1]]


def _assert_kept_equals_rebuilt() -> None:
    before = _kept()
    assert before
    with connection.cursor() as cursor:
        running.rebuild_running_days(cursor)
    assert _kept() == before


def test_running_past_due_from_counts_equals_the_facts(org: Organization) -> None:
    rng = random.Random(20261203)
    tickets = _build(org, rng, 120)
    sla_sweep_breaches(now=NOW + timedelta(hours=12))  # some breached, most still running
    facts = SlaFact.objects.filter(organization=org)
    assert facts.filter(outcome=SlaOutcome.BREACHED).exists()
    late = facts.filter(outcome=SlaOutcome.RUNNING)
    request = AFTER + timedelta(hours=5)
    assert late.filter(due_at__lt=AFTER).exists()  # from the counts
    assert late.filter(due_at__gte=AFTER, due_at__lt=request).exists()  # from the facts
    assert late.filter(due_at__gte=request).exists()  # not late yet
    assert _assert_same(org) > 0
    _assert_kept_equals_rebuilt()

    agents = list(User.objects.filter(pk__in={t.assigned_to_id for t in tickets} - {None}))
    team = Team.objects.get(organization=org)
    for n, stale in enumerate(tickets[:60]):
        ticket = Ticket.objects.get(pk=stale.pk)
        if n % 3 == 0 and not ticket.messages.filter(direction=Direction.OUTBOUND).exists():
            reply(ticket, ticket.opened_at + timedelta(hours=2))
        elif n % 3 == 1:
            ticket.assign(rng.choice([None, *agents]), by=None)
        else:
            Ticket.objects.filter(pk=ticket.pk).update(team=rng.choice([None, team]))
            rollups.refresh_ticket_rollup(ticket.pk)
    _assert_same(org)
    _assert_kept_equals_rebuilt()
    # Deleted: the facts' team and agent go NULL (no refresh), and the counts keyed by the old
    # ids are re-keyed to none in the deleting transaction (``monitoring.reports.rekey``). Then
    # the deleted ones' tickets are answered, reassigned, closed and breached: each refresh
    # subtracts the old fact under none, and the groups and figures still equal the facts
    # (with the old ids kept, the deleted team's row stayed +1 and none's went to -1: timers
    # that no longer run counted as running past due for ever).
    gone_agent = agents[0]
    team_id, agent_id = team.pk, gone_agent.pk  # the instance's pk is None once deleted
    hit = list(Ticket.objects.filter(Q(team=team) | Q(assigned_to=gone_agent)).order_by("pk"))
    running_hit = facts.filter(outcome=SlaOutcome.RUNNING, ticket__in=hit)
    assert running_hit.count() >= 8, "the deleted team and user have running timers"
    team_delete(team=team, actor=None)
    User.objects.filter(pk=gone_agent.pk).delete()
    assert not RunningDueStat.objects.filter(team_id=team_id).exists()
    assert not RunningDueStat.objects.filter(agent_id=agent_id).exists()
    Team.objects.create(organization=org, name="Late later")  # for the team filter
    _assert_same(org)
    _assert_kept_equals_rebuilt()
    others = [a for a in agents if a.pk != gone_agent.pk]
    for n, stale in enumerate(hit[:40]):
        ticket = Ticket.objects.get(pk=stale.pk)
        if n % 4 == 0 and not ticket.messages.filter(direction=Direction.OUTBOUND).exists():
            reply(ticket, ticket.opened_at + timedelta(minutes=20))
        elif n % 4 == 1:
            ticket.assign(rng.choice([None, *others]), by=None)
        elif n % 4 == 2 and ticket.is_open:
            ticket.close_without_reply(reason="spam", by=None)
    assert sla_sweep_breaches(now=AFTER) > 0  # most of the rest breached
    _assert_same(org)
    _assert_kept_equals_rebuilt()
