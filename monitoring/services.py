"""SLA timers: started when a ticket opens, fulfilled by the events that meet them, and swept
for breaches. Driven by ticket events (``monitoring.handlers``); monitoring writes nothing of
the ticket but its SLA due time (``Ticket.set_sla_due``) and events (``Ticket.record``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from monitoring.models import Metric, SlaEventKind, SlaPolicy, SlaTimer, TimerState
from tickets.events import record_events
from tickets.models import TicketEvent

if TYPE_CHECKING:
    from tickets.models import Ticket


def sla_start(*, ticket: Ticket, policy: SlaPolicy | None = None) -> SlaTimer:
    """The ticket's first-response timer, started from the organisation's policy if new."""
    timer = SlaTimer.objects.filter(ticket=ticket, metric=Metric.FIRST_RESPONSE).first()
    if timer is None:
        policy = policy or SlaPolicy.for_org(ticket.organization)
        timer, _ = SlaTimer.objects.get_or_create(
            ticket=ticket,
            metric=Metric.FIRST_RESPONSE,
            defaults={
                "organization_id": ticket.organization_id,
                "target_minutes": policy.first_response_minutes,
                "started_at": ticket.opened_at,
                "due_at": policy.first_response_due(ticket.opened_at),
            },
        )
        if timer.fulfilled_at is None:
            ticket.set_sla_due(timer.due_at)
    return timer


@transaction.atomic
def sla_fulfil_first_response(*, ticket: Ticket, at: datetime) -> SlaTimer | None:
    """The brand's first public reply went out at ``at``: the timer is met or breached."""
    sla_start(ticket=ticket)
    timer = (
        SlaTimer.objects.select_for_update()
        .filter(ticket=ticket, metric=Metric.FIRST_RESPONSE, fulfilled_at__isnull=True)
        .first()
    )
    if timer is None:
        return None  # fulfilled already: a later reply, or this event delivered again
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
            SlaEventKind.SLA_MET if met else SlaEventKind.SLA_BREACHED,
            at=at,
            metric=timer.metric,
            due_at=timer.due_at.isoformat(),
            elapsed_seconds=round((at - timer.started_at).total_seconds()),
            corrects_breach=corrects_breach,
        )
    timer.save(update_fields=fields)
    ticket.set_sla_due(None)
    return timer


def sla_sweep_breaches(*, now: datetime | None = None) -> int:
    """Mark every running timer past its due time as breached, once, with an event each."""
    now = now or timezone.now()
    with transaction.atomic():
        overdue = list(
            # Lock the timers only (not their tickets, which agents are working on).
            SlaTimer.objects.overdue(now).select_for_update(skip_locked=True, of=("self",))
        )
        if not overdue:
            return 0
        record_events(
            [
                TicketEvent(
                    organization_id=timer.organization_id,
                    ticket_id=timer.ticket_id,
                    kind=SlaEventKind.SLA_BREACHED,
                    at=timer.due_at,
                    data={"metric": timer.metric, "due_at": timer.due_at.isoformat()},
                )
                for timer in overdue
            ]
        )
        for timer in overdue:
            timer.state = TimerState.BREACHED
            timer.breached_at = timer.due_at
        SlaTimer.objects.bulk_update(overdue, ["state", "breached_at"])
    return len(overdue)
