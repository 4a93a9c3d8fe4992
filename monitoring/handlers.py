"""Monitoring listens to the ticket event log: timers start, and are met, from events.

Every handler is idempotent (events are delivered at least once, see ``tickets.events``).
"""

from __future__ import annotations

from monitoring.models import SlaEventKind
from monitoring.services import sla_fulfil_first_response, sla_start
from tickets import events
from tickets.models import EventKind, TicketEvent


def on_ticket_opened(event: TicketEvent) -> None:
    sla_start(ticket=event.ticket)


def on_reply_sent(event: TicketEvent) -> None:
    """The brand's first public reply the platform accepted fulfils the first response."""
    if event.message is not None and event.message.is_public:
        sla_fulfil_first_response(ticket=event.ticket, at=event.at)


def register() -> None:
    events.register_kinds(SlaEventKind)
    events.subscribe(on_ticket_opened, kinds=[EventKind.OPENED])
    events.subscribe(on_reply_sent, kinds=[EventKind.REPLY_SENT])
