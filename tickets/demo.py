"""Team work in the demo organisation: one care team that takes new tickets, round-robin."""

from __future__ import annotations

from careinbox.accounts.models import Membership, Organization, Role, Team
from tickets.models import TeamRouting


def seed_demo_teamwork(org: Organization) -> Team:
    """The demo's "Care team" (its agents and managers; ``seed_demo_team`` made it with the
    agents), taking every new ticket and handing each to the next member who is free. Safe to
    run again: routing an admin changed stays."""
    team, _ = Team.objects.get_or_create(organization=org, name="Care team")
    members = Membership.objects.filter(
        organization=org, is_active=True, role__in=[Role.AGENT, Role.MANAGER]
    )
    team.members.add(*members)
    if not TeamRouting.objects.filter(organization=org, takes_new_tickets=True).exists():
        TeamRouting.objects.update_or_create(
            team=team,
            defaults={"organization": org, "auto_assign": True, "takes_new_tickets": True},
        )
    return team
