"""The open backlog from its counts (``OpenHourStat``, ``monitoring.reports.backlog``): the
dashboard's backlog by age, and the open load per agent and per team (``Report``), equal the
per-ticket computation (``FactReport``: the open facts counted by age as of the request) on
random tickets over the last five days, at request times whose age edges cut the hours at
different minutes (one exactly on the hour), under the brand, channel and team filters, after
tickets close, reopen, change assignee and team, and after a team and a user are deleted and
their tickets then close, reopen, are answered, reassigned and breached (the deleted ids' rows
re-keyed to none, ``monitoring.reports.rekey``); the counts, daily sums and histograms kept
incrementally equal the ones rebuilt set-based. Runs on PostgreSQL and SQLite."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from careinbox.accounts.models import Organization, Team, User
from careinbox.accounts.services import team_delete
from channels_social.models import SocialAccount
from monitoring.models import (
    OpenHourStat,
    ResponseDayStat,
    RunningDueStat,
    SlaDayStat,
    TicketDayStat,
    TimeDayStat,
)
from monitoring.reports import backlog, rollups
from monitoring.reports.daily import SLA_SUMS, TICKET_SUMS, rebuild_daily
from monitoring.reports.figures import FactReport, Report
from monitoring.reports.filters import parse_filter
from monitoring.reports.histograms import TIME_SUMS
from monitoring.reports.responsiveness import RESPONSE_SUMS
from monitoring.services import sla_sweep_breaches
from tests.factories import InboundMessageFactory, SocialAccountFactory, UserFactory
from tests.test_reports import all_targets_policy, open_ticket, reply
from tickets.models import Step, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now().replace(minute=0, second=0, microsecond=0)  # on the hour
ROLLUP_SUMS: dict[Any, tuple[str, ...]] = {
    TicketDayStat: TICKET_SUMS,
    SlaDayStat: SLA_SUMS,
    TimeDayStat: TIME_SUMS,
    ResponseDayStat: RESPONSE_SUMS,
    OpenHourStat: ("tickets",),
    RunningDueStat: ("timers",),
}


def _build(org: Organization, rng: random.Random, n: int) -> list[Ticket]:
    all_targets_policy(org)
    first = SocialAccountFactory(brand__organization=org, username="open-a")
    accounts = [
        first,
        SocialAccountFactory(brand=first.brand, username="open-b"),
        SocialAccountFactory(brand__organization=org, username="open-c"),
    ]
    teams: list[Team | None] = [
        None,
        Team.objects.create(organization=org, name="Open care"),
        Team.objects.create(organization=org, name="Open social"),
    ]
    agents: list[User | None] = [None, UserFactory(), UserFactory(), UserFactory()]
    tickets = []
    with rollups.deferred():
        for _ in range(n):
            # Some on the hour and on the age edges themselves, some after the request times.
            minutes = rng.choice([rng.randint(-90, 60 * 24 * 5), 60 * rng.choice([1, 4, 24, 72])])
            ticket = open_ticket(
                rng.choice(accounts),
                NOW - timedelta(minutes=minutes),
                agent=rng.choice(agents),
                team=rng.choice(teams),
            )
            tickets.append(ticket)
            if rng.random() < 0.3:
                ticket.close_without_reply(reason=rng.choice(["spam", "dms_closed"]), by=None)
    return tickets


def _requests(org: Organization) -> list[tuple[dict[str, str], datetime]]:
    account = SocialAccount.objects.filter(organization=org).order_by("pk").first()
    team = Team.objects.filter(organization=org).order_by("pk").first()
    assert account is not None and team is not None
    got = []
    for shift in (timedelta(0), timedelta(minutes=17), timedelta(hours=5, minutes=59, seconds=59)):
        now = NOW - shift
        got += [
            ({}, now),
            ({"brand": str(account.brand_id)}, now),
            ({"channel": str(account.pk)}, now),
            ({"team": str(team.pk)}, now),
        ]
    return got


def _assert_same(org: Organization) -> None:
    for query, now in _requests(org):
        filt = parse_filter(query, org, now=now)
        assert not filt.errors, filt.errors
        report, facts = Report(filt), FactReport(filt)
        assert report._backlog_counts() == facts._backlog_counts(), (query, now)
        for field_name in ("agent_id", "team_id"):
            assert report._load(field_name) == facts._load(field_name), (query, now, field_name)
        for key in ("backlog", "agents", "teams"):
            assert report.table(key).rows == facts.table(key).rows, (query, now, key)


def _kept() -> list[tuple[Any, ...]]:
    fields = [f.attname for f in OpenHourStat._meta.concrete_fields if f.attname != "id"]
    return [r for r in OpenHourStat.objects.order_by(*fields).values_list(*fields) if r[-1]]


def _assert_kept_equals_rebuilt() -> None:
    before = _kept()
    assert before
    with connection.cursor() as cursor:
        backlog.rebuild_open_hours(cursor)
    assert _kept() == before


def test_the_backlog_from_open_counts_equals_the_facts(org: Organization) -> None:
    rng = random.Random(20261203)
    tickets = _build(org, rng, 150)
    filt = parse_filter({}, org, now=NOW)
    got = FactReport(filt)._backlog_counts()
    assert all(got[f"b{n}"] for n in range(5)), got  # every age bucket has tickets
    _assert_same(org)
    _assert_kept_equals_rebuilt()

    agents = list(User.objects.filter(pk__in={t.assigned_to_id for t in tickets} - {None}))
    teams = list(Team.objects.filter(organization=org))
    for n, stale in enumerate(tickets[:70]):
        ticket = Ticket.objects.get(pk=stale.pk)
        if n % 4 == 0 and ticket.is_open:
            ticket.close_without_reply(reason="spam", by=None)
        elif n % 4 == 1 and not ticket.is_open:
            message = InboundMessageFactory(ticket=ticket, created_at=timezone.now())
            ticket.reopen(message=message, window_days=7)
        elif n % 4 == 2:
            ticket.assign(rng.choice([None, *agents]), by=None)
        else:
            Ticket.objects.filter(pk=ticket.pk).update(team=rng.choice([None, *teams]))
            rollups.refresh_ticket_rollup(ticket.pk)
    _assert_same(org)
    _assert_kept_equals_rebuilt()
    # Deleted: the facts' team and agent go NULL (no refresh), and the counts, the daily sums
    # and the histograms keyed by the old ids are re-keyed to none in the deleting transaction
    # (``monitoring.reports.rekey``). Then the deleted ones' tickets close, reopen, are
    # answered, reassigned and breached: each refresh subtracts the old fact under none, and
    # the figures still equal the facts (with the old ids kept, the deleted team's row stayed
    # +1 and none's went to -1: a closed ticket in the backlog for ever).
    gone_team, gone_agent = teams[0], agents[0]
    team_id, agent_id = gone_team.pk, gone_agent.pk  # the instance's pk is None once deleted
    hit = list(Ticket.objects.filter(Q(team=gone_team) | Q(assigned_to=gone_agent)).order_by("pk"))
    assert sum(t.is_open for t in hit) >= 8, "the deleted team and user have open tickets"
    team_delete(team=gone_team, actor=None)  # the service (one transaction)
    User.objects.filter(pk=gone_agent.pk).delete()
    assert not OpenHourStat.objects.filter(team_id=team_id).exists()
    assert not OpenHourStat.objects.filter(agent_id=agent_id).exists()
    _assert_same(org)
    _assert_kept_equals_rebuilt()
    _assert_every_rollup_equals_rebuilt()
    later = timezone.now()
    for n, stale in enumerate(hit):
        ticket = Ticket.objects.get(pk=stale.pk)
        if n % 5 == 0 and ticket.is_open:
            ticket.close_without_reply(reason="spam", by=None)
        elif n % 5 == 1 and ticket.is_open:
            reply(ticket, later, step=Step.TAKE_OFFLINE)
        elif n % 5 == 2:
            ticket.assign(
                rng.choice([None, *agents[1:]]), team=rng.choice([None, *teams[1:]]), by=None
            )
        elif n % 5 == 3 and not ticket.is_open:
            message = InboundMessageFactory(ticket=ticket, created_at=later)
            ticket.reopen(message=message, window_days=7)
        elif ticket.is_open:
            ticket.close_without_reply(reason="dms_closed", by=None)
    assert sla_sweep_breaches(now=later + timedelta(days=1)) > 0  # the rest breached
    _assert_same(org)
    _assert_kept_equals_rebuilt()
    _assert_every_rollup_equals_rebuilt()


def _assert_every_rollup_equals_rebuilt() -> None:
    """Every roll-up table's non-zero rows, kept incrementally, equal the rows rebuilt from the
    facts (``rebuild_daily``: the daily sums, the histograms, the open and running counts)."""

    def kept() -> dict[str, list[tuple[Any, ...]]]:
        got = {}
        for model, sums in ROLLUP_SUMS.items():
            fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
            at = [fields.index(name) for name in sums]
            rows = model.objects.order_by(*fields).values_list(*fields)
            got[model.__name__] = [r for r in rows if any(r[n] for n in at)]
        return got

    before = kept()
    assert all(before[name] for name in ("TicketDayStat", "SlaDayStat", "OpenHourStat"))
    rebuild_daily()
    assert kept() == before
