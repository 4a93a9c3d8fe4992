"""The reporting roll-ups (``TicketFact``, ``SlaFact``), kept from the ticket event log.

After every ticket event (the handler registered here runs after monitoring's own SLA handlers,
so it sees the timers they changed) the ticket's rows are recomputed whole from its events and
timers: ``refresh_ticket_rollup`` is a pure function of what is stored, so delivering an event
twice, or rebuilding everything (``rebuild_rollups``), gives the same rows. A delivery's events
are taken together: each ticket once, and an SLA sweep's warnings and breaches (which only move
the SLA rows) for all its tickets in four statements (``refresh_sla_facts``). Times come from the
events (the first delivered reply, the delivered resolution, the last close and how it was
closed, promises kept and broken); dimensions (brand, handle, team, agent, priority, sentiment)
are the ticket's as they are now; days and hours are in the organisation's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from monitoring.models import SlaEventKind, SlaFact, SlaOutcome, SlaTimer, TicketFact, TimerState
from tickets import events
from tickets.closing import CLOSING_KINDS, closing_of
from tickets.models import Direction, EventKind, Step, Ticket, TicketEvent

# The events that end a ticket (tickets.closing), and the ones that open it again.
REOPENING_KINDS = {EventKind.REOPENED}
READ_KINDS = [
    EventKind.REPLY_SENT,
    EventKind.PROMISE_KEPT,
    EventKind.PROMISE_BROKEN,
    EventKind.STEP_REOPENED,
    *CLOSING_KINDS,
    *REOPENING_KINDS,
]

_OUTCOME = {
    TimerState.MET: SlaOutcome.MET,
    TimerState.BREACHED: SlaOutcome.BREACHED,
    TimerState.RUNNING: SlaOutcome.RUNNING,
    TimerState.PAUSED: SlaOutcome.PAUSED,
}


def _seconds(start: datetime, end: datetime | None) -> int | None:
    return max(round((end - start).total_seconds()), 0) if end is not None else None


@transaction.atomic
def refresh_ticket_rollup(ticket_id: int) -> None:
    """Recompute the report rows of one ticket from its events and timers (idempotent)."""
    ticket = (
        Ticket.objects.select_related("organization")
        .select_for_update(of=("self",))
        .filter(pk=ticket_id)
        .first()
    )
    if ticket is None:
        return  # deleted: its rows went with it (cascade)
    zone = ZoneInfo(ticket.organization.time_zone or "UTC")
    first_response_at = resolved_at = closed_at = None
    closed_publicly: bool | None = None
    closed_kind = closed_reason = ""
    kept = broken = 0
    rows = (
        TicketEvent.objects.filter(ticket_id=ticket.pk, kind__in=READ_KINDS)
        .order_by("at", "pk")
        .values_list(
            "kind", "at", "message__direction", "message__is_public", "message__step", "data"
        )
    )
    for kind, at, direction, is_public, step, data in rows:
        if kind == EventKind.REPLY_SENT and direction == Direction.OUTBOUND:
            # The first response is the first public reply (any reply on a private ticket).
            if first_response_at is None and (is_public or not ticket.is_public):
                first_response_at = at
            if resolved_at is None and step == Step.RESOLVE:
                resolved_at = at
        elif kind == EventKind.PROMISE_KEPT:
            kept += 1
        elif kind == EventKind.PROMISE_BROKEN:
            broken += 1
        elif (closing := closing_of(kind, data)) is not None:
            closed_at, closed_publicly, closed_kind = at, closing.publicly, kind
            closed_reason = closing.reason
        elif kind in REOPENING_KINDS or (kind == EventKind.STEP_REOPENED and closed_at):
            closed_at, closed_publicly, closed_kind, closed_reason = None, None, "", ""
    if ticket.is_open:
        closed_at, closed_publicly, closed_kind, closed_reason = None, None, "", ""
    opened_local = ticket.opened_at.astimezone(zone)
    dimensions = _dimensions(ticket)
    TicketFact.objects.update_or_create(
        ticket_id=ticket.pk,
        defaults={
            **dimensions,
            "platform": ticket.platform,
            "sentiment": ticket.sentiment or "",
            "opened_at": ticket.opened_at,
            "opened_day": opened_local.date(),
            "opened_hour": opened_local.hour,
            "opened_weekday": opened_local.weekday(),
            "first_response_at": first_response_at,
            "first_response_seconds": _seconds(ticket.opened_at, first_response_at),
            "resolved_at": resolved_at,
            "resolution_seconds": _seconds(ticket.opened_at, resolved_at),
            "is_open": ticket.is_open,
            "closed_at": closed_at,
            "closed_day": closed_at.astimezone(zone).date() if closed_at else None,
            "closed_publicly": closed_publicly,
            "closed_kind": closed_kind,
            "closed_reason": closed_reason,
            "promises_kept": kept,
            "promises_broken": broken,
            "refreshed_at": timezone.now(),
        },
    )
    timers = SlaTimer.objects.filter(ticket_id=ticket.pk).exclude(state=TimerState.STOPPED)
    SlaFact.objects.filter(ticket_id=ticket.pk).delete()
    SlaFact.objects.bulk_create([_sla_fact(ticket, timer) for timer in timers.order_by("pk")])


def _dimensions(ticket: Ticket) -> dict[str, object]:
    return {
        "organization_id": ticket.organization_id,
        "brand_id": ticket.brand_id,
        "social_account_id": ticket.social_account_id,
        "team_id": ticket.team_id,
        "agent_id": ticket.assigned_to_id,
        "priority": ticket.priority,
    }


def _sla_fact(ticket: Ticket, timer: SlaTimer) -> SlaFact:
    zone = ZoneInfo(ticket.organization.time_zone or "UTC")
    return SlaFact(
        **_dimensions(ticket),
        ticket_id=ticket.pk,
        timer_id=timer.pk,
        metric=timer.metric,
        started_at=timer.started_at,
        started_day=timer.started_at.astimezone(zone).date(),
        due_at=timer.due_at,
        outcome=_OUTCOME[TimerState(timer.state)],
        owed=timer.fulfilled_at is None,
        elapsed_seconds=_seconds(timer.started_at, timer.fulfilled_at),
    )


@transaction.atomic
def refresh_sla_facts(ticket_ids: Iterable[int]) -> None:
    """Recompute the SLA rows of these tickets from their timers, in four statements whatever
    their number: what a sweep's warnings and breaches change (a ticket's own row reads no SLA
    event). The same rows ``refresh_ticket_rollup`` writes."""
    tickets = {
        ticket.pk: ticket
        for ticket in Ticket.objects.select_related("organization")
        .select_for_update(of=("self",))
        .filter(pk__in=sorted(set(ticket_ids)))
        .order_by("pk")
    }
    if not tickets:
        return
    timers = (
        SlaTimer.objects.filter(ticket_id__in=list(tickets))
        .exclude(state=TimerState.STOPPED)
        .order_by("ticket_id", "pk")
    )
    SlaFact.objects.filter(ticket_id__in=list(tickets)).delete()
    SlaFact.objects.bulk_create([_sla_fact(tickets[timer.ticket_id], timer) for timer in timers])


def rebuild_rollups(*, organization_ids: Iterable[int] | None = None) -> int:
    """Recompute every report row (of the given organisations) from the events. Returns the
    number of tickets."""
    tickets = Ticket.objects.all()
    if organization_ids is not None:
        tickets = tickets.filter(organization_id__in=list(organization_ids))
    count = 0
    for ticket_id in tickets.order_by("pk").values_list("pk", flat=True).iterator():
        refresh_ticket_rollup(ticket_id)
        count += 1
    return count


# While set (``deferred``), the handler only notes which tickets changed; they are refreshed
# once each when the block ends. For bulk writers such as the demo's week of history.
_deferred: set[int] | None = None


@contextmanager
def deferred() -> Iterator[None]:
    """Refresh each touched ticket's rows once, at the end, instead of after every event."""
    global _deferred
    if _deferred is not None:  # nested: the outer block refreshes
        yield
        return
    _deferred = set()
    try:
        yield
    finally:
        touched, _deferred = _deferred, None
        for ticket_id in sorted(touched):
            refresh_ticket_rollup(ticket_id)


def on_ticket_event(event: TicketEvent) -> None:
    if _deferred is not None:
        _deferred.add(event.ticket_id)
        return
    refresh_ticket_rollup(event.ticket_id)


_SLA_KINDS = frozenset(SlaEventKind.values)


def on_ticket_events(batch: list[TicketEvent]) -> None:
    """A delivery's events at once: each ticket refreshed once; a ticket whose events are all
    SLA warnings and breaches (an SLA sweep's) only has its SLA rows recomputed, set-based."""
    whole = {event.ticket_id for event in batch if event.kind not in _SLA_KINDS}
    if _deferred is not None:
        _deferred.update(event.ticket_id for event in batch)
        return
    for ticket_id in sorted(whole):
        refresh_ticket_rollup(ticket_id)
    refresh_sla_facts({event.ticket_id for event in batch} - whole)


# Every kind tickets and monitoring record: any of them may move a figure (an assignment moves
# the agent's load, a priority change the per-priority figures, a sweep's breach compliance).
ROLLUP_KINDS = [*EventKind.values, *SlaEventKind.values]


def register() -> None:
    """Called after ``monitoring.handlers.register``: it must see the timers they changed."""
    events.subscribe(on_ticket_event, kinds=ROLLUP_KINDS, batch=on_ticket_events)
