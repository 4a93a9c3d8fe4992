"""Monitoring listens to the ticket event log: timers start, are met, pause and resume, and
follow priority changes, from events alone.

Every handler is idempotent (events are delivered at least once, see ``tickets.events``), and
after each ticket event the ticket's own timers are checked for a warning or breach at once
(``on_ticket_event``), so an agent never waits for beat's next sweep to see one.
"""

from __future__ import annotations

from monitoring.models import Metric, SlaEventKind
from monitoring.services import (
    SKIPPED_STEP_METRICS,
    Rematch,
    brand_first_replied,
    sla_customer_wrote,
    sla_rematch,
    sla_rematch_many,
    sla_reply_delivered,
    sla_restart,
    sla_start_timers,
    sla_start_timers_many,
    sla_stop,
    sla_sweep,
)
from tickets import events
from tickets.models import Direction, EventKind, TicketEvent

# Recorded by tickets when a customer's message opens a recently closed ticket again.
REOPENED = EventKind.REOPENED


def on_ticket_opened(event: TicketEvent) -> None:
    sla_start_timers(ticket=event.ticket)


def on_tickets_opened(batch: list[TicketEvent]) -> None:
    """``on_ticket_opened`` for a delivery's new tickets at once (its many form): a poll's
    timers in one INSERT."""
    sla_start_timers_many([event.ticket for event in batch])


def on_message_received(event: TicketEvent) -> None:
    """A customer message: once the brand has replied, it awaits a reply of its own."""
    if event.message is not None and event.message.direction == Direction.INBOUND:
        sla_customer_wrote(ticket=event.ticket, message=event.message, at=event.at)


def on_messages_received(batch: list[TicketEvent]) -> None:
    """``on_message_received`` for several messages (its many form): whether the brand had
    replied is read once for all their tickets; most of a storm's have no reply yet, and cost
    nothing more."""
    inbound = [
        event
        for event in batch
        if event.message is not None and event.message.direction == Direction.INBOUND
    ]
    replied = brand_first_replied({event.ticket_id for event in inbound}) if inbound else {}
    for event in inbound:
        first = replied.get(event.ticket_id)
        if first is not None and first <= event.at:
            assert event.message is not None
            sla_customer_wrote(
                ticket=event.ticket, message=event.message, at=event.at, brand_replied=True
            )


def on_reply_sent(event: TicketEvent) -> None:
    """A brand reply the platform accepted: the targets it meets are met (the first public one
    is the first response, as Zendesk counts first reply time)."""
    if event.message is not None and event.message.direction == Direction.OUTBOUND:
        sla_reply_delivered(ticket=event.ticket, message=event.message, at=event.at)


def on_priority_changed(event: TicketEvent) -> None:
    sla_rematch(ticket=event.ticket, at=event.at, cause=event.kind, actor=event.actor)


def on_priorities_changed(batch: list[TicketEvent]) -> None:
    """``on_priority_changed`` for several tickets at once (its many form): a poll's follow-ups
    that raised priorities are rematched in a dozen statements for all of them."""
    sla_rematch_many(
        [Rematch(event.ticket_id, event.at, event.kind, event.actor_id) for event in batch]
    )


def on_step_skipped(event: TicketEvent) -> None:
    """A step skipped with a reason owes its target no longer (and a next response waiting on
    the same reply is not owed either)."""
    metrics = SKIPPED_STEP_METRICS.get(event.data.get("step", ""), ())
    if metrics:
        sla_stop(
            ticket=event.ticket,
            metrics=[*metrics, Metric.NEXT_RESPONSE],
            at=event.at,
            reason=f"step skipped: {event.data.get('reason', '')}",
        )


def on_closed_without_close_out(event: TicketEvent) -> None:
    sla_stop(
        ticket=event.ticket,
        metrics=Metric.values,
        at=event.at,
        reason=f"closed without a public close-out: {event.data.get('reason', '')}",
    )


def on_reopened(event: TicketEvent) -> None:
    sla_restart(ticket=event.ticket, at=event.at)


def on_closed_without_reply(event: TicketEvent) -> None:
    """Closed as spam or as a duplicate, as recorded before every close without a reply became
    ``closed_without_close_out`` (events of that time still undelivered): the targets stop."""
    sla_stop(ticket=event.ticket, metrics=Metric.values, at=event.at, reason=event.kind)


def on_merged_into(event: TicketEvent) -> None:
    """The ticket was merged into another: its messages, and what is owed on them, moved
    there; its own timers stop."""
    sla_stop(ticket=event.ticket, metrics=Metric.values, at=event.at, reason=event.kind)


# ``step_reopened`` needs no handler: it means the step's reply never went out, so no
# ``reply_sent`` was recorded and no timer was met by it; the timers simply run on.


def on_ticket_event(event: TicketEvent) -> None:
    """After any ticket event, the cheap per-ticket check for warnings and breaches."""
    sla_sweep(ticket_id=event.ticket_id)


def on_ticket_events(batch: list[TicketEvent]) -> None:
    """The same check once for every ticket of a batch of events (two queries, not two per
    event)."""
    sla_sweep(ticket_ids={event.ticket_id for event in batch})


# The kinds after which the ticket's timers are checked at once: every kind tickets records
# (never monitoring's own, which the sweep writes in bulk).
CHECKED_KINDS = list(EventKind.values)


def register() -> None:
    events.register_kinds(SlaEventKind)
    events.subscribe(on_ticket_opened, kinds=[EventKind.OPENED], many=on_tickets_opened)
    events.subscribe(
        on_message_received, kinds=[EventKind.MESSAGE_RECEIVED], many=on_messages_received
    )
    events.subscribe(on_reply_sent, kinds=[EventKind.REPLY_SENT])
    events.subscribe(
        on_priority_changed, kinds=[EventKind.PRIORITY_CHANGED], many=on_priorities_changed
    )
    events.subscribe(on_reopened, kinds=[REOPENED])
    events.subscribe(on_step_skipped, kinds=[EventKind.STEP_SKIPPED])
    events.subscribe(on_closed_without_close_out, kinds=[EventKind.CLOSED_WITHOUT_CLOSE_OUT])
    events.subscribe(
        on_closed_without_reply,
        kinds=[EventKind.CLOSED_AS_SPAM, EventKind.CLOSED_AS_DUPLICATE],
    )
    events.subscribe(on_merged_into, kinds=[EventKind.MERGED_INTO])
    # Last: it sees what the handlers above changed.
    events.subscribe(on_ticket_event, kinds=CHECKED_KINDS, batch=on_ticket_events)
