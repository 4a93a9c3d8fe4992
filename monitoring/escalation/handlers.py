"""Escalation on the event seam: each ticket event re-checks the ticket against its
organisation's rules at once (the sweep catches the rest: time passing, rules edited)."""

from __future__ import annotations

from careinbox.settings_area import SettingsSection, register_section
from monitoring.escalation.engine import escalation_sweep
from monitoring.models import EscalationEventKind, EscalationRule, SlaEventKind
from tickets import events
from tickets.models import EventKind, TicketEvent

# Every kind tickets and the SLA engine record ("reopened" is the care workflow's), never
# escalation's own: its events come from a pass already made.
CHECKED_KINDS = [*EventKind.values, *SlaEventKind.values, "reopened"]


def on_ticket_event(event: TicketEvent) -> None:
    escalation_sweep(ticket_id=event.ticket_id, organization_id=event.organization_id)


def on_ticket_events(batch: list[TicketEvent]) -> None:
    """The same pass once per organisation for every ticket of a batch of events, the rules
    of every organisation in the batch read at once (an SLA sweep's events span many
    organisations, most with no rule: they cost nothing more)."""
    by_org: dict[int, set[int]] = {}
    for event in batch:
        by_org.setdefault(event.organization_id, set()).add(event.ticket_id)
    rules_of: dict[int, list[EscalationRule]] = {}
    for rule in EscalationRule.objects.filter(
        enabled=True, organization_id__in=list(by_org)
    ).order_by("organization_id", "position", "pk"):
        rules_of.setdefault(rule.organization_id, []).append(rule)
    for organization_id, rules in rules_of.items():
        escalation_sweep(
            ticket_ids=by_org[organization_id], organization_id=organization_id, rules=rules
        )


def register() -> None:
    from monitoring.escalation import tasks  # noqa: F401  (the worker learns the tasks)

    events.register_kinds(EscalationEventKind)
    # After monitoring's SLA handlers (registered first): it sees the timers they changed.
    events.subscribe(on_ticket_event, kinds=CHECKED_KINDS, batch=on_ticket_events)
    register_section(
        SettingsSection(
            "escalation",
            "Escalation rules",
            "escalation:rules",
            order=50,
            description="Who is told, and what changes, when a ticket is at risk: levels, "
            "conditions, a dry run.",
        )
    )
