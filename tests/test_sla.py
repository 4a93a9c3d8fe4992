"""First-response SLA timers: started on open, met or breached from the events, swept once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from careinbox.accounts.models import Organization
from monitoring.models import SlaEventKind, SlaPolicy, SlaTimer, TimerState
from monitoring.services import sla_fulfil_first_response, sla_start, sla_sweep_breaches
from tests.factories import TicketFactory
from tickets.models import Ticket


def _ticket(org: Organization, *, minutes_ago: float = 0) -> Ticket:
    ticket = TicketFactory(
        social_account__brand__organization=org,
        opened_at=timezone.now() - timedelta(minutes=minutes_ago),
    )
    sla_start(ticket=ticket)
    return ticket


def test_timer_due_time_follows_the_org_policy(org: Organization) -> None:
    policy = SlaPolicy.for_org(org)
    assert policy.first_response_minutes == 60  # the default
    policy.first_response_minutes = 15
    policy.save()
    ticket = _ticket(org)
    timer = ticket.sla_timers.get()
    assert timer.due_at - timer.started_at == timedelta(minutes=15)
    assert ticket.sla_due_at == timer.due_at
    assert timer.state == TimerState.ACTIVE


def test_reply_before_due_is_met_and_recorded(org: Organization) -> None:
    ticket = _ticket(org, minutes_ago=10)
    timer = sla_fulfil_first_response(ticket=ticket, at=timezone.now())
    assert timer is not None and timer.state == TimerState.MET
    assert timer.elapsed is not None and timedelta(minutes=9) < timer.elapsed < timedelta(
        minutes=11
    )
    event = ticket.events.get(kind=SlaEventKind.SLA_MET)
    assert event.data["metric"] == "first_response"
    ticket.refresh_from_db()
    assert ticket.sla_due_at is None


def test_reply_after_due_is_breached(org: Organization) -> None:
    ticket = _ticket(org, minutes_ago=90)
    timer = sla_fulfil_first_response(ticket=ticket, at=timezone.now())
    assert timer is not None and timer.state == TimerState.BREACHED
    assert timer.breached_at == timer.due_at
    assert ticket.events.filter(kind=SlaEventKind.SLA_BREACHED).count() == 1


def test_sweep_breaches_overdue_timers_once(org: Organization) -> None:
    late = _ticket(org, minutes_ago=61)
    on_time = _ticket(org, minutes_ago=5)
    assert sla_sweep_breaches() == 1
    assert sla_sweep_breaches() == 0  # fires once
    assert late.sla_timers.get().state == TimerState.BREACHED
    assert on_time.sla_timers.get().state == TimerState.ACTIVE
    assert late.events.filter(kind=SlaEventKind.SLA_BREACHED).count() == 1
    # A reply after the breach records when it came but stays breached, with no second event.
    timer = sla_fulfil_first_response(ticket=late, at=timezone.now())
    assert timer is not None and timer.state == TimerState.BREACHED and timer.fulfilled_at
    assert late.events.filter(kind=SlaEventKind.SLA_BREACHED).count() == 1


def test_second_reply_does_not_touch_a_fulfilled_timer(org: Organization) -> None:
    ticket = _ticket(org, minutes_ago=1)
    first = sla_fulfil_first_response(ticket=ticket, at=timezone.now())
    assert first is not None
    assert sla_fulfil_first_response(ticket=ticket, at=timezone.now() + timedelta(hours=3)) is None
    assert SlaTimer.objects.get(pk=first.pk).state == TimerState.MET


@pytest.mark.parametrize("minutes", [0, 60 * 24 * 15])
def test_policy_bounds_are_validated(org: Organization, minutes: int) -> None:
    from django.core.exceptions import ValidationError

    policy = SlaPolicy.for_org(org)
    policy.first_response_minutes = minutes
    with pytest.raises(ValidationError):
        policy.full_clean()


def test_a_reply_in_time_recorded_after_the_sweep_is_met(org: Organization) -> None:
    ticket = _ticket(org, minutes_ago=61)
    due = ticket.sla_timers.get().due_at
    sla_sweep_breaches()  # runs just after the due time ...
    timer = sla_fulfil_first_response(ticket=ticket, at=due - timedelta(seconds=5))  # ... sent
    assert timer is not None and timer.state == TimerState.MET and timer.breached_at is None
    met = ticket.events.get(kind=SlaEventKind.SLA_MET)
    assert met.data["corrects_breach"] is True
