"""The dashboard's daily sums (``TicketDayStat``, ``SlaDayStat``, monitoring.reports.daily):
every figure the dashboard shows from them (``Report``) equals the same figure computed from
the per-ticket facts (``FactReport``), over varied tickets written through the real event seam
(time zones, tickets either side of a period's first local midnight, reopened, closed with and
without a public close-out, reassigned, re-prioritised, promises, timers met, breached by the
sweep and running past due), under every filter; and the sums kept incrementally equal the
sums rebuilt set-based from the facts. Runs on PostgreSQL and SQLite."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from careinbox.accounts.models import Organization, Team, User
from channels_social.models import SocialAccount
from monitoring.models import SlaDayStat, TicketDayStat
from monitoring.reports.daily import rebuild_daily
from monitoring.reports.figures import FactReport, Report, Table
from monitoring.reports.filters import parse_filter
from monitoring.reports.rollups import refresh_ticket_rollups
from monitoring.services import sla_sweep_breaches
from tests.factories import InboundMessageFactory, SocialAccountFactory, UserFactory
from tests.test_reports import all_targets_policy, open_ticket, reply
from tickets.models import Step, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def cells(table: Table) -> Any:
    return (
        table.headers,
        [[(c.value, str(c), c.href) for c in row] for row in table.rows],
        [(label, c.value, str(c), c.href) for label, c in table.summary],
    )


def stored(model: type[TicketDayStat] | type[SlaDayStat]) -> list[tuple[Any, ...]]:
    """Every daily row with a non-zero sum (a row whose sums went back to zero counts as
    none), in key order."""
    sums = (
        ["tickets", "answered", "resolved", "promises_kept", "promises_broken", "closed_publicly"]
        if model is TicketDayStat
        else ["total", "met", "breached"]
    )
    fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
    rows = model.objects.order_by(*fields).values_list(*fields)
    at = [fields.index(name) for name in sums]
    return [tuple(row) for row in rows if any(row[n] for n in at)]


def local_midnight(org: Organization, now: datetime, days_back: int) -> datetime:
    zone = ZoneInfo(org.time_zone or "UTC")
    day = now.astimezone(zone).date() - timedelta(days=days_back)
    return datetime.combine(day, time.min, tzinfo=zone)


def build(org: Organization, rng: random.Random, now: datetime) -> list[Ticket]:
    all_targets_policy(org)
    first = SocialAccountFactory(brand__organization=org, username=f"{org.slug}-x")
    second = SocialAccountFactory(brand=first.brand, username=f"{org.slug}-help")
    other_brand = SocialAccountFactory(brand__organization=org, username=f"{org.slug}-b")
    accounts: list[SocialAccount] = [first, second, other_brand]
    teams: list[Team | None] = [
        None,
        Team.objects.create(organization=org, name=f"{org.slug} care"),
        Team.objects.create(organization=org, name=f"{org.slug} social"),
    ]
    agents: list[User | None] = [None, *(UserFactory() for _ in range(3))]
    mark = UserFactory()
    openings = [now - timedelta(minutes=rng.randint(20, 9 * 24 * 60)) for _ in range(36)]
    # Due between the sweep (at ``now``) and the later request: first response (30 min),
    # resolution (240 min) and close-out (600 min) timers running past due by then.
    openings += [now - timedelta(minutes=m) for m in (25, 28, 220, 230, 590)]
    # Either side of the first local midnight of the 7-day and the 1-day periods.
    for days_back in (6, 0):
        midnight = local_midnight(org, now, days_back)
        openings += [midnight - timedelta(seconds=1), midnight, midnight + timedelta(seconds=1)]
    tickets = []
    for n, opened in enumerate(sorted(openings)):
        opened = min(opened, now - timedelta(minutes=5))
        ticket = open_ticket(
            rng.choice(accounts),
            opened,
            agent=rng.choice(agents),
            team=rng.choice(teams),
            priority=rng.choice([1, 2, 3, 4]),
            sentiment=rng.choice(["negative", "neutral", "positive"]),
        )
        tickets.append(ticket)
        roll = rng.random()
        answered_at = min(opened + timedelta(minutes=rng.randint(1, 90)), now)
        if roll < 0.65:
            reply(ticket, answered_at)
        if roll < 0.25:
            reply(ticket, answered_at, step=Step.RESOLVE)
        if n % 5 == 0:
            ticket = Ticket.objects.get(pk=ticket.pk)
            ticket.close_without_reply(reason=rng.choice(["spam", "duplicate"]), by=mark)
        elif n % 7 == 0:
            ticket = Ticket.objects.get(pk=ticket.pk)
            for step in (Step.ACKNOWLEDGE, Step.TAKE_OFFLINE, Step.RESOLVE, Step.CLOSE_OUT):
                ticket.take_step(step, by=mark, message=None)
        if n % 4 == 0:
            ticket = Ticket.objects.get(pk=ticket.pk)
            ticket.record("promise_kept" if n % 8 else "promise_broken", at=now)
    return tickets


def change(tickets: list[Ticket], rng: random.Random, now: datetime) -> None:
    """Writes that move tickets between rows: reassigned, re-prioritised, reopened."""
    agents = list(
        User.objects.filter(pk__in=[t.assigned_to_id for t in tickets if t.assigned_to_id])
    )
    for n, stale in enumerate(tickets):
        ticket = Ticket.objects.get(pk=stale.pk)
        if n % 3 == 0 and ticket.is_open:
            ticket.assign(rng.choice([None, *agents]), by=None)
        if n % 4 == 1:
            ticket.change_priority(1 if ticket.priority != 1 else 4, by=None, reason="test")
        if not ticket.is_open and n % 2 == 0:
            message = InboundMessageFactory(ticket=ticket, created_at=now - timedelta(minutes=1))
            ticket.reopen(message=message, window_days=7)


FILTERS: list[dict[str, str]] = [
    {},
    {"period": "today"},
    {"period": "30d"},
]


def filters_of(org: Organization, now: datetime) -> list[dict[str, str]]:
    zone = ZoneInfo(org.time_zone or "UTC")
    today = now.astimezone(zone).date()
    account = SocialAccount.objects.filter(organization=org).order_by("pk").first()
    team = Team.objects.filter(organization=org).order_by("pk").first()
    assert account is not None and team is not None
    return [
        *FILTERS,
        {
            "period": "custom",
            "from": (today - timedelta(days=8)).isoformat(),
            "to": (today - timedelta(days=2)).isoformat(),
        },
        {"period": "30d", "brand": str(account.brand_id)},
        {"period": "30d", "channel": str(account.pk)},
        {"period": "7d", "team": str(team.pk)},
        {"period": "30d", "brand": str(account.brand_id), "team": str(team.pk)},
    ]


def assert_every_figure_equal(org: Organization, now: datetime) -> None:
    for query in filters_of(org, now):
        # A request somewhat later than the writes: some timers are running past their due
        # time without the sweep having marked them (breached as of the request).
        for at in (now, now + timedelta(minutes=45)):
            filt = parse_filter(query, org, now=at)
            assert not filt.errors, filt.errors
            daily, facts = Report(filt).all(), FactReport(filt).all()
            for key in Report.TABLES:
                assert cells(daily[key]) == cells(facts[key]), (key, query, at)


def assert_incremental_equals_rebuild() -> None:
    kept = stored(TicketDayStat), stored(SlaDayStat)
    rebuild_daily()
    assert (stored(TicketDayStat), stored(SlaDayStat)) == kept


def test_every_figure_from_the_daily_sums_equals_the_facts(
    org: Organization, other_org: Organization
) -> None:
    rng = random.Random(20261202)
    now = timezone.now().replace(microsecond=0)
    org.time_zone = "America/Los_Angeles"
    org.save(update_fields=["time_zone"])
    other_org.time_zone = "Asia/Kolkata"
    other_org.save(update_fields=["time_zone"])
    mine = build(org, rng, now)
    theirs = build(other_org, rng, now)
    sla_sweep_breaches(now=now)  # some breached by the sweep; later ones run past due
    for each in (org, other_org):
        assert_every_figure_equal(each, now)
    assert_incremental_equals_rebuild()
    # Each organisation's rows are its own: the sums per organisation are its facts' counts.
    for each, tickets in ((org, mine), (other_org, theirs)):
        opened = TicketDayStat.objects.filter(organization=each, dimension="opened")
        assert sum(opened.values_list("tickets", flat=True)) == len(tickets)

    change(mine, rng, now)
    change(theirs, rng, now)
    for each in (org, other_org):
        assert_every_figure_equal(each, now)
    assert_incremental_equals_rebuild()

    # Another time zone: the facts refreshed (by the handler's batch path) move every day.
    org.time_zone = "Pacific/Kiritimati"
    org.save(update_fields=["time_zone"])
    refresh_ticket_rollups(t.pk for t in mine)
    assert_every_figure_equal(org, now)
    assert_incremental_equals_rebuild()


def test_a_write_moves_the_figure_at_once(org: Organization) -> None:
    """No stale figure after a write: the sums change in the write's own transaction."""
    all_targets_policy(org)
    account = SocialAccountFactory(brand__organization=org)
    now = timezone.now().replace(microsecond=0)
    ticket = open_ticket(account, now - timedelta(minutes=10))

    def figure() -> tuple[int, int]:
        filt = parse_filter({"period": "7d"}, org, now=now)
        counts = Report(filt).response_times()
        closed = Report(filt).closed_without_close_out()
        return counts.rows[0][3].value, sum(row[1].value for row in closed.rows)

    assert figure() == (0, 0)
    reply(ticket, now - timedelta(minutes=5))
    assert figure() == (1, 0)
    Ticket.objects.get(pk=ticket.pk).close_without_reply(reason="spam", by=None)
    assert figure() == (1, 1)
    closed = Ticket.objects.get(pk=ticket.pk)
    closed.reopen(
        message=InboundMessageFactory(ticket=closed, created_at=now - timedelta(minutes=1)),
        window_days=7,
    )
    assert figure() == (1, 0)


def test_the_rebuild_command_for_one_organisation_and_an_unknown_slug(org: Organization) -> None:
    """``manage.py rebuild_report_days --org SLUG`` rebuilds that organisation's sums (equal
    to the incremental ones); an unknown slug stops with status 2 and says so."""
    import io

    from django.core.management import call_command

    all_targets_policy(org)
    account = SocialAccountFactory(brand__organization=org)
    now = timezone.now().replace(microsecond=0)
    reply(open_ticket(account, now - timedelta(minutes=10)), now - timedelta(minutes=5))

    def sums() -> list[tuple[Any, ...]]:
        return sorted(TicketDayStat.objects.values_list("dimension", "day", "tickets", "answered"))

    kept = sums()
    assert kept
    TicketDayStat.objects.all().delete()
    out = io.StringIO()
    call_command("rebuild_report_days", "--org", org.slug, stdout=out)
    assert "Rebuilt the daily sums" in out.getvalue()
    assert sums() == kept
    err = io.StringIO()
    with pytest.raises(SystemExit) as stopped:
        call_command("rebuild_report_days", "--org", "no-such-org", stderr=err)
    assert stopped.value.code == 2
    assert "No organisation with the slug 'no-such-org'" in err.getvalue()
    assert (
        sorted(TicketDayStat.objects.values_list("dimension", "day", "tickets", "answered")) == kept
    )
