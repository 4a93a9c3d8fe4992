"""Outbound webhooks subscribe to the ticket event seam (ticket and SLA kinds alike)."""

from __future__ import annotations

from monitoring.webhooks.services import (
    SUBSCRIBED_KINDS,
    deliveries_for_event,
    deliveries_for_events,
)
from tickets import events
from tickets.models import TicketEvent


def on_ticket_event(event: TicketEvent) -> None:
    deliveries_for_event(event)


def on_ticket_events(batch: list[TicketEvent]) -> None:
    """A delivery's events at once, set-based (``deliveries_for_events``): a few statements
    however many events (most organisations have no endpoint: an SLA sweep's hundreds of
    events then cost one)."""
    deliveries_for_events(batch)


def register() -> None:
    events.subscribe(
        on_ticket_event, kinds=[str(kind) for kind in SUBSCRIBED_KINDS], batch=on_ticket_events
    )
