"""Outbound webhooks subscribe to the ticket event seam (ticket and SLA kinds alike)."""

from __future__ import annotations

from monitoring.webhooks.models import WebhookEndpoint
from monitoring.webhooks.services import SUBSCRIBED_KINDS, deliveries_for_event, webhook_types
from tickets import events
from tickets.models import TicketEvent


def on_ticket_event(event: TicketEvent) -> None:
    deliveries_for_event(event)


def on_ticket_events(batch: list[TicketEvent]) -> None:
    """A delivery's events at once: one look for the organisations that have an endpoint at
    all (most have none: an SLA sweep's hundreds of events then cost one statement), then each
    of their events as ``on_ticket_event`` would."""
    organizations = {event.organization_id for event in batch if webhook_types(event.kind)}
    if not organizations:
        return
    listening = set(
        WebhookEndpoint.objects.filter(organization_id__in=organizations, enabled=True)
        .values_list("organization_id", flat=True)
        .distinct()
    )
    for event in batch:
        if event.organization_id in listening:
            deliveries_for_event(event)


def register() -> None:
    events.subscribe(
        on_ticket_event, kinds=[str(kind) for kind in SUBSCRIBED_KINDS], batch=on_ticket_events
    )
