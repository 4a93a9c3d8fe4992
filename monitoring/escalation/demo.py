"""The demo organisation's escalation rule (``seed_demo`` calls this)."""

from __future__ import annotations

from careinbox.accounts.models import Organization, Role
from monitoring.models import EscalationRule, Metric
from tickets.models import Priority

DEMO_RULE_NAME = "First response at risk"


def seed_demo_escalation(org: Organization) -> EscalationRule:
    """A two-level rule that fires in a demo left running: at the first-response warning
    (75% of the target: after about 11 minutes on the Urgent policy's 15, 45 on office hours'
    60) the agents are told and the ticket tagged "at-risk"; 15 minutes later, the
    office-hours target breached by then, the managers are told and the priority raised to
    Urgent. Safe to run again: an admin's edits to the rule are kept."""
    rule, _ = EscalationRule.objects.get_or_create(
        organization=org,
        name=DEMO_RULE_NAME,
        defaults={
            "position": 0,
            "conditions": [{"kind": "sla", "metric": Metric.FIRST_RESPONSE, "state": "warning"}],
            "levels": [
                {
                    "after_minutes": 0,
                    "actions": {"notify_roles": [Role.AGENT], "add_tag": "at-risk"},
                },
                {
                    "after_minutes": 15,
                    "actions": {
                        "notify_roles": [Role.MANAGER],
                        "raise_priority": int(Priority.URGENT),
                    },
                },
            ],
        },
    )
    return rule
