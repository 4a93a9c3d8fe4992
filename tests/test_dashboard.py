"""Today's summary (the API's metrics): open tickets, first-response compliance and median;
the dashboard's own figures are tested in test_reports.py."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.models import Organization
from monitoring.dashboard import today_summary
from monitoring.services import sla_fulfil_first_response, sla_start, sla_sweep_breaches
from tests.conftest import Persona
from tests.factories import TicketFactory
from tickets.models import Status


def _ticket(org: Organization, minutes_ago: float, **kwargs: object):  # type: ignore[no-untyped-def]
    ticket = TicketFactory(
        social_account__brand__organization=org,
        opened_at=timezone.now() - timedelta(minutes=minutes_ago),
        **kwargs,
    )
    sla_start(ticket=ticket)
    return ticket


def test_figures_for_today(org: Organization, other_org: Organization) -> None:
    now = timezone.now()
    # Keep every timestamp inside today whatever the time the test runs at.
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    span = max((now - midnight).total_seconds() / 60 - 1, 0)
    if span < 100:  # too close to midnight for 90-minute-old tickets: pretend it is noon
        now = midnight + timedelta(hours=12)
    fast = _ticket(org, 0)
    fast.opened_at = now - timedelta(minutes=10)
    fast.save()
    fast.sla_timers.update(
        started_at=now - timedelta(minutes=10), due_at=now + timedelta(minutes=50)
    )
    sla_fulfil_first_response(ticket=fast, at=now - timedelta(minutes=6))  # 4 minutes: met
    slow = _ticket(org, 0)
    slow.sla_timers.update(
        started_at=now - timedelta(minutes=90), due_at=now - timedelta(minutes=30)
    )
    sla_fulfil_first_response(ticket=slow, at=now - timedelta(minutes=10))  # 80 minutes: breached
    waiting = _ticket(org, 0)
    waiting.sla_timers.update(
        started_at=now - timedelta(minutes=5), due_at=now + timedelta(minutes=55)
    )
    closed = _ticket(org, 0, status=Status.CLOSED)
    closed.sla_timers.update(
        started_at=now - timedelta(minutes=3), due_at=now + timedelta(minutes=57)
    )
    sla_fulfil_first_response(ticket=closed, at=now - timedelta(minutes=1))  # 2 minutes: met
    _ticket(other_org, 5)  # another tenant: never counted

    summary = today_summary(org, now=now)
    assert summary.open_tickets == 3
    assert summary.met == 2 and summary.breached == 1
    assert summary.compliance_percent == 66.7
    assert summary.median_first_response == timedelta(minutes=4)
    assert summary.first_responses == 3
    assert summary.unanswered == 1


def test_overdue_unanswered_counts_as_breached_before_the_sweep(org: Organization) -> None:
    _ticket(org, 61)
    summary = today_summary(org)
    assert (summary.met, summary.breached, summary.compliance_percent) == (0, 1, 0.0)
    assert summary.overdue_now == 1
    sla_sweep_breaches()
    assert today_summary(org).breached == 1  # counted once, before and after the sweep


def test_empty_day_shows_no_percentage(org: Organization) -> None:
    summary = today_summary(org)
    assert summary.compliance_percent is None and summary.median_first_response is None


def test_dashboard_page_for_managers_only(manager: Persona, agent: Persona) -> None:
    _ticket(manager.organization, 2)
    response = manager.client().get(reverse("monitoring:dashboard"))
    assert response.status_code == 200
    assert b'id="report-backlog"' in response.content
    partial = manager.client().get(reverse("monitoring:dashboard"), HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content
    assert agent.client().get(reverse("monitoring:dashboard")).status_code == 404


def test_other_targets_leave_the_first_response_figures_alone(org: Organization) -> None:
    from monitoring.models import Metric, SlaPolicy
    from monitoring.services import sla_fulfil

    SlaPolicy.objects.create(
        organization=org,
        name="All targets",
        first_response_minutes=60,
        next_response_minutes=10,
        resolution_minutes=30,
        close_out_minutes=45,
    )
    answered = _ticket(org, 20)
    sla_fulfil(ticket=answered, metrics=[Metric.FIRST_RESPONSE], at=timezone.now())
    late = _ticket(org, 50)  # its resolution (30 min) is overdue, its first response is not
    sla_sweep_breaches()
    assert late.sla_timers.filter(metric=Metric.RESOLUTION, state="breached").exists()
    summary = today_summary(org)
    assert (summary.met, summary.breached, summary.unanswered, summary.overdue_now) == (1, 0, 1, 0)
    assert summary.first_responses == 1
    assert summary.median_first_response is not None
    assert abs(summary.median_first_response - timedelta(minutes=20)) < timedelta(seconds=5)


def test_closes_without_a_public_close_out_are_counted_by_reason(
    manager: Persona,
    agent: Persona,
    other_org: Organization,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from tickets.inbox import tickets_bulk_apply
    from tickets.services.teamwork import ticket_close_without_close_out

    org = manager.organization
    spam = [_ticket(org, 5) for _ in range(2)]
    dms_closed, kept_open = _ticket(org, 5), _ticket(org, 5)
    # The inbox's bulk close and the ticket's own form are one path: one kind, by reason.
    # Events are published after commit: run those callbacks, as a real request would.
    with django_capture_on_commit_callbacks(execute=True):
        tickets_bulk_apply(
            organization=org,
            by=agent.user,
            ticket_ids=[t.pk for t in spam],
            action="spam",
            reason="bots",
        )
    with django_capture_on_commit_callbacks(execute=True):
        ticket_close_without_close_out(ticket=dms_closed, by=agent.user, reason="dms_closed")
    with django_capture_on_commit_callbacks(execute=True):
        _ticket(other_org, 5).close_without_reply(reason="spam", by=None)  # not ours
    summary = today_summary(org)
    assert summary.closed_without_reply == {
        "Spam": 2,
        "The customer's DMs are closed": 1,
    }
    assert summary.closed_without_reply_total == 3
    # The dashboard shows the same closes by reason (from the roll-ups), each linking to them.
    page = manager.client().get(reverse("monitoring:dashboard")).content.decode()
    table = page.split('id="report-closed_without_close_out"', 1)[1].split("</article>", 1)[0]
    rows = re.findall(r'<th scope="row">([^<]+)</th><td><a href="([^"]+)">(\d+)</a>', table)
    assert [(label, int(n)) for label, _href, n in rows] == [
        ("Spam", 2),
        ("The customer&#x27;s DMs are closed", 1),
    ]
    drilled = manager.client().get(html.unescape(rows[0][1])).content.decode()
    for ticket in spam:
        assert reverse("tickets:detail", args=[ticket.pk]) in drilled
    assert reverse("tickets:detail", args=[dms_closed.pk]) not in drilled
    kept_open.refresh_from_db()
    assert kept_open.status != Status.CLOSED


def test_the_median_is_the_databases_to_the_microsecond(org: Organization) -> None:
    """Two first responses today (an even count: the mean of the middle two, as
    statistics.median gave before the database took it), with microseconds in both times."""
    now = timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    if (now - midnight) < timedelta(minutes=30):
        now = midnight + timedelta(hours=12)
    for took in (timedelta(seconds=60, microseconds=2), timedelta(seconds=120, microseconds=4)):
        ticket = _ticket(org, 0)
        started = now - timedelta(minutes=10, microseconds=123457)
        ticket.sla_timers.update(started_at=started, due_at=started + timedelta(hours=1))
        sla_fulfil_first_response(ticket=ticket, at=started + took)
    summary = today_summary(org, now=now)
    assert summary.first_responses == 2
    assert summary.median_first_response == timedelta(seconds=90, microseconds=3)
