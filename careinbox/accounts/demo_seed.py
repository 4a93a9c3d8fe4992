"""The demo organisation's team (``seed_demo`` calls this; safe to run again)."""

from __future__ import annotations

from careinbox.accounts.models import Membership, Organization, Role, Team

DEMO_TEAM_NAME = "Care team"


def seed_demo_team(organization: Organization) -> Team:
    """A "Care team" holding the organisation's active agents; members an admin added stay."""
    team, _ = Team.objects.get_or_create(organization=organization, name=DEMO_TEAM_NAME)
    agents = Membership.objects.filter(organization=organization, role=Role.AGENT, is_active=True)
    team.members.add(*agents)
    return team
