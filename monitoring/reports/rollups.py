"""The reporting roll-ups (``TicketFact``, ``SlaFact``), kept from the ticket event log.

After every ticket event (the handler registered here runs after monitoring's own SLA handlers,
so it sees the timers they changed) the ticket's rows are recomputed whole from its events and
timers: ``refresh_ticket_rollup`` is a pure function of what is stored, so delivering an event
twice, or rebuilding everything (``rebuild_rollups``), gives the same rows. A delivery's events
are taken together: all its tickets' rows in six statements (``refresh_ticket_rollups``), so an
SLA sweep's hundreds of breaches or a poll's batch cost what one ticket does. Times come from the
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
from monitoring.reports import backlog, daily, histograms, responsiveness, running
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


TICKET_FACT_FIELDS = [
    "organization",
    "brand",
    "social_account",
    "team",
    "agent",
    "priority",
    "platform",
    "sentiment",
    "opened_at",
    "opened_day",
    "opened_hour",
    "opened_weekday",
    "first_response_at",
    "first_response_seconds",
    "resolved_at",
    "resolution_seconds",
    "is_open",
    "closed_at",
    "closed_day",
    "closed_publicly",
    "closed_kind",
    "closed_reason",
    "promises_kept",
    "promises_broken",
    "refreshed_at",
]


def refresh_ticket_rollup(ticket_id: int) -> None:
    """Recompute the report rows of one ticket from its events and timers (idempotent)."""
    refresh_ticket_rollups([ticket_id])


@transaction.atomic
def refresh_ticket_rollups(ticket_ids: Iterable[int]) -> None:
    """Recompute the report rows of these tickets from their events and timers (idempotent):
    the same rows as ``refresh_ticket_rollup`` one by one, in ten statements for any number
    of tickets (the tickets locked, their events, their timers, their old facts read; the
    ticket rows upserted, the timer rows replaced; the daily sums moved by the difference,
    ``monitoring.reports.daily``)."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return
    tickets = list(
        Ticket.objects.select_related("organization")
        .select_for_update(of=("self",))
        .filter(pk__in=ids)
        .order_by("pk")  # locked in one order, as every other writer of several does
    )
    if not tickets:
        return  # deleted: their rows went with them (cascade)
    found = [ticket.pk for ticket in tickets]
    events_of: dict[int, list[tuple[str, datetime, str | None, bool | None, str | None, object]]]
    events_of = {pk: [] for pk in found}
    for ticket_id, *row in (
        TicketEvent.objects.filter(ticket_id__in=found, kind__in=READ_KINDS)
        .order_by("ticket_id", "at", "pk")
        .values_list(
            "ticket_id",
            "kind",
            "at",
            "message__direction",
            "message__is_public",
            "message__step",
            "data",
        )
    ):
        events_of[ticket_id].append(tuple(row))  # type: ignore[arg-type]
    timers_of: dict[int, list[SlaTimer]] = {pk: [] for pk in found}
    for timer in (
        SlaTimer.objects.filter(ticket_id__in=found)
        .exclude(state=TimerState.STOPPED)
        .order_by("pk")
    ):
        timers_of[timer.ticket_id].append(timer)
    now = timezone.now()
    facts: list[TicketFact] = []
    sla_facts: list[SlaFact] = []
    for ticket in tickets:
        fact, timer_facts = _rows(ticket, events_of[ticket.pk], timers_of[ticket.pk], now)
        facts.append(fact)
        sla_facts.extend(timer_facts)
    # The dashboard's daily sums move by (new facts - old facts), in this transaction: the old
    # ones read while the tickets are locked (every writer of their facts locks them first).
    # The time histograms (``TimeDayStat``, ``ResponseDayStat``), the open counts
    # (``OpenHourStat``) and the running timers' (``RunningDueStat``) move the same way, in
    # the same statement set.
    ticket_deltas: daily.Deltas = {}
    sla_deltas: daily.Deltas = {}
    time_deltas: daily.Deltas = {}
    response_deltas: daily.Deltas = {}
    open_deltas: daily.Deltas = {}
    running_deltas: daily.Deltas = {}
    for old in TicketFact.objects.filter(ticket_id__in=found).values(*daily.TICKET_FACT_COLUMNS):
        daily.add_ticket_fact(ticket_deltas, old, -1)
        histograms.add_ticket_fact(time_deltas, old, -1)
        responsiveness.add_ticket_fact(response_deltas, old, -1)
        backlog.add_ticket_fact(open_deltas, old, -1)
    for old in SlaFact.objects.filter(ticket_id__in=found).values(*daily.SLA_FACT_COLUMNS):
        daily.add_sla_fact(sla_deltas, old, -1)
        running.add_sla_fact(running_deltas, old, -1)
    for fact in facts:
        values = daily.fact_values(fact, daily.TICKET_FACT_COLUMNS)
        daily.add_ticket_fact(ticket_deltas, values, 1)
        histograms.add_ticket_fact(time_deltas, values, 1)
        responsiveness.add_ticket_fact(response_deltas, values, 1)
        backlog.add_ticket_fact(open_deltas, values, 1)
    for sla_fact in sla_facts:
        values = daily.fact_values(sla_fact, daily.SLA_FACT_COLUMNS)
        daily.add_sla_fact(sla_deltas, values, 1)
        running.add_sla_fact(running_deltas, values, 1)
    # One upsert on the ticket's own unique row (the constraint is the guarantee).
    TicketFact.objects.bulk_create(
        facts, update_conflicts=True, unique_fields=["ticket"], update_fields=TICKET_FACT_FIELDS
    )
    SlaFact.objects.filter(ticket_id__in=found).delete()
    SlaFact.objects.bulk_create(sla_facts)
    daily.apply(
        ticket_deltas, sla_deltas, time_deltas, response_deltas, open_deltas, running_deltas
    )


def _rows(
    ticket: Ticket,
    rows: list[tuple[str, datetime, str | None, bool | None, str | None, object]],
    timers: list[SlaTimer],
    now: datetime,
) -> tuple[TicketFact, list[SlaFact]]:
    """One ticket's report rows, from its events (``READ_KINDS``, in order) and timers."""
    zone = ZoneInfo(ticket.organization.time_zone or "UTC")
    first_response_at = resolved_at = closed_at = None
    closed_publicly: bool | None = None
    closed_kind = closed_reason = ""
    kept = broken = 0
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
    dimensions = {
        "organization_id": ticket.organization_id,
        "brand_id": ticket.brand_id,
        "social_account_id": ticket.social_account_id,
        "team_id": ticket.team_id,
        "agent_id": ticket.assigned_to_id,
        "priority": ticket.priority,
    }
    fact = TicketFact(
        ticket_id=ticket.pk,
        **dimensions,
        platform=ticket.platform,
        sentiment=ticket.sentiment or "",
        opened_at=ticket.opened_at,
        opened_day=opened_local.date(),
        opened_hour=opened_local.hour,
        opened_weekday=opened_local.weekday(),
        first_response_at=first_response_at,
        first_response_seconds=_seconds(ticket.opened_at, first_response_at),
        resolved_at=resolved_at,
        resolution_seconds=_seconds(ticket.opened_at, resolved_at),
        is_open=ticket.is_open,
        closed_at=closed_at,
        closed_day=closed_at.astimezone(zone).date() if closed_at else None,
        closed_publicly=closed_publicly,
        closed_kind=closed_kind,
        closed_reason=closed_reason,
        promises_kept=kept,
        promises_broken=broken,
        refreshed_at=now,
    )
    timer_facts = [
        SlaFact(
            **dimensions,
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
        for timer in timers
    ]
    return fact, timer_facts


def rebuild_rollups(*, organization_ids: Iterable[int] | None = None) -> int:
    """Recompute every report row (of the given organisations) from the events. Returns the
    number of tickets."""
    organization_ids = list(organization_ids) if organization_ids is not None else None
    tickets = Ticket.objects.all()
    if organization_ids is not None:
        tickets = tickets.filter(organization_id__in=list(organization_ids))
    count = 0
    for ticket_id in tickets.order_by("pk").values_list("pk", flat=True).iterator():
        refresh_ticket_rollup(ticket_id)
        count += 1
    # The daily sums made again from the facts too (set-based): they equal the incremental
    # ones, and this also mends any a write outside the handler left behind.
    with transaction.atomic():
        daily.rebuild_daily(organization_ids=organization_ids)
    return count


# While set (``deferred``), the handler only notes which tickets changed; they are refreshed
# once each when the block ends. For bulk writers such as the demo's week of history.
_deferred: set[int] | None = None
DEFERRED_CHUNK = 500  # tickets refreshed per statement set when a deferred block ends


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
        ordered = sorted(touched)
        for start in range(0, len(ordered), DEFERRED_CHUNK):
            refresh_ticket_rollups(ordered[start : start + DEFERRED_CHUNK])


def on_ticket_event(event: TicketEvent) -> None:
    if _deferred is not None:
        _deferred.add(event.ticket_id)
        return
    refresh_ticket_rollup(event.ticket_id)


def on_ticket_events(batch: list[TicketEvent]) -> None:
    """The rows of every ticket of a batch of events, refreshed once each after the whole
    delivery (a pure function of what is stored: once at the end equals once per event)."""
    if _deferred is not None:
        _deferred.update(event.ticket_id for event in batch)
        return
    refresh_ticket_rollups(event.ticket_id for event in batch)


# Every kind tickets and monitoring record that may move a figure (an assignment moves the
# agent's load, a priority change the per-priority figures, a sweep's breach compliance). Not
# ``sla_warning``: a warning sets only the timer's ``warned_at``, which no row reads, so its
# refresh rewrote every row unchanged (half of an SLA sweep's events, docs/benchmarks.md).
ROLLUP_KINDS = [
    *EventKind.values,
    *(k for k in SlaEventKind.values if k != SlaEventKind.SLA_WARNING),
]


def register() -> None:
    """Called after ``monitoring.handlers.register``: it must see the timers they changed."""
    events.subscribe(on_ticket_event, kinds=ROLLUP_KINDS, batch=on_ticket_events)
