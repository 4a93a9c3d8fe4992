"""Outbound webhooks subscribe to the ticket event seam (ticket and SLA kinds alike)."""

from __future__ import annotations

from monitoring.webhooks.services import SUBSCRIBED_KINDS, deliveries_for_event
from tickets import events
from tickets.models import TicketEvent


def on_ticket_event(event: TicketEvent) -> None:
    deliveries_for_event(event)


def register() -> None:
    events.subscribe(on_ticket_event, kinds=[str(kind) for kind in SUBSCRIBED_KINDS])
