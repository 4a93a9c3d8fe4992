"""SLA timers: started when a ticket opens, fulfilled by the events that meet them, and swept
for breaches."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from monitoring.models import Metric, SlaPolicy, SlaTimer, TimerState

if TYPE_CHECKING:
    from tickets.models import Ticket


def sla_start(*, ticket: Ticket, policy: SlaPolicy | None = None) -> SlaTimer:
    """Start the new ticket's first-response timer from the organisation's policy."""
    policy = policy or SlaPolicy.for_org(ticket.organization)
    timer = SlaTimer.objects.create(
        organization_id=ticket.organization_id,
        ticket=ticket,
        metric=Metric.FIRST_RESPONSE,
        target_minutes=policy.first_response_minutes,
        started_at=ticket.opened_at,
        due_at=policy.first_response_due(ticket.opened_at),
    )
    if ticket.first_response_due_at != timer.due_at:
        ticket.first_response_due_at = timer.due_at
        ticket.save(update_fields=["first_response_due_at"])
    return timer


@transaction.atomic
def sla_fulfil_first_response(*, ticket: Ticket, at: datetime) -> SlaTimer | None:
    """The brand's first public reply went out at ``at``: the timer is met or breached."""
    from tickets.models import EventKind

    timer = (
        SlaTimer.objects.select_for_update()
        .filter(ticket=ticket, metric=Metric.FIRST_RESPONSE, fulfilled_at__isnull=True)
        .first()
    )
    if timer is None:
        return None
    timer.fulfilled_at = at
    fields = ["fulfilled_at"]
    met = at <= timer.due_at
    # A breached timer turns met when the sweep ran after the due time but before this
    # in-time reply was recorded; otherwise a timer settles once.
    corrects_breach = timer.state == TimerState.BREACHED and met
    if timer.state == TimerState.ACTIVE or corrects_breach:
        timer.state = TimerState.MET if met else TimerState.BREACHED
        timer.breached_at = None if met else timer.due_at
        fields += ["state", "breached_at"]
        ticket.record(
            EventKind.SLA_MET if met else EventKind.SLA_BREACHED,
            at=at,
            metric=timer.metric,
            due_at=timer.due_at.isoformat(),
            elapsed_seconds=round((at - timer.started_at).total_seconds()),
            corrects_breach=corrects_breach,
        )
    timer.save(update_fields=fields)
    ticket.first_response_due_at = None
    ticket.save(update_fields=["first_response_due_at"])
    return timer


def sla_sweep_breaches(*, now: datetime | None = None) -> int:
    """Mark every running timer past its due time as breached, once, with an event each."""
    from tickets.models import EventKind, TicketEvent

    now = now or timezone.now()
    with transaction.atomic():
        overdue = list(
            # Lock the timers only (not their tickets, which agents are working on).
            SlaTimer.objects.overdue(now).select_for_update(skip_locked=True, of=("self",))
        )
        if not overdue:
            return 0
        TicketEvent.objects.bulk_create(
            TicketEvent(
                organization_id=timer.organization_id,
                ticket_id=timer.ticket_id,
                kind=EventKind.SLA_BREACHED,
                at=timer.due_at,
                data={"metric": timer.metric, "due_at": timer.due_at.isoformat()},
            )
            for timer in overdue
        )
        for timer in overdue:
            timer.state = TimerState.BREACHED
            timer.breached_at = timer.due_at
        SlaTimer.objects.bulk_update(overdue, ["state", "breached_at"])
    return len(overdue)
