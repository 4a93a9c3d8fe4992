"""Which SLA policy a ticket follows: the one place that decides.

An organisation's policies are read once per call site (``org_policies``) and matched in memory
(``policy_for``), so ingest, the handlers and a policy change never query per ticket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from monitoring.models import SlaPolicy

if TYPE_CHECKING:
    from tickets.models import Ticket


def org_policies(organization_id: int) -> list[SlaPolicy]:
    """The organisation's policies in the order they are tried; the default one (24/7, a
    60-minute first response) is made for an organisation that has none."""
    policies = list(
        SlaPolicy.objects.filter(organization_id=organization_id).order_by("position", "pk")
    )
    if not policies:
        policy = SlaPolicy.default_for_id(organization_id)
        policy.save()
        policies = [policy]
    return policies


def policy_for(ticket: Ticket, policies: Sequence[SlaPolicy] | None = None) -> SlaPolicy | None:
    """The first of the organisation's policies that matches the ticket's brand, platform,
    handle and priority; None when none does (the ticket has no SLA: the settings keep a
    catch-all at the end of the list)."""
    if policies is None:
        policies = org_policies(ticket.organization_id)
    for policy in policies:
        if policy.matches(
            brand_id=ticket.brand_id,
            platform=ticket.platform,
            priority=ticket.priority,
            social_account_id=ticket.social_account_id,
        ):
            return policy
    return None
