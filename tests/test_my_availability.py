"""An agent marks themselves away from their own menu: round-robin gives them nothing new, the
change is in the audit trail, and they may hand their open tickets to their team at once."""

from __future__ import annotations

from django.urls import reverse

from careinbox.accounts.models import AuditEntry, Membership, Organization, Team
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, MembershipFactory, TicketFactory, UserFactory
from tickets.models import EventKind, Status, TeamRouting, Ticket
from tickets.services.teamwork import ticket_assign

URL = reverse("tickets:my-availability")


def _ticket(organization: Organization, **kwargs: object) -> Ticket:
    ticket = TicketFactory(social_account__brand__organization=organization, **kwargs)
    InboundMessageFactory(ticket=ticket)
    return ticket


def _membership(persona: Persona) -> Membership:
    return Membership.objects.get(user=persona.user, organization=persona.organization)


def test_an_agent_sets_themselves_away_and_back_from_their_menu(
    agent: Persona, manager: Persona
) -> None:
    client = agent.client()
    inbox = client.get(reverse("tickets:inbox")).content.decode()
    assert f'action="{URL}"' in inbox and "Set me away" in inbox

    response = client.post(URL, {"action": "away"}, follow=True)
    page = response.content.decode()
    assert "You are away: round-robin gives you nothing new." in page
    assert 'class="badge away">Away<' in page  # the menu says so on every page
    assert _membership(agent).is_away is True
    entry = AuditEntry.objects.get(object_type="member", actor=agent.user)
    assert entry.before == {"is_away": False}
    assert entry.after == {"is_away": True}

    client.post(URL, {"action": "back"})
    assert _membership(agent).is_away is False
    assert AuditEntry.objects.filter(object_type="member", actor=agent.user).count() == 2
    # A manager's routing page agrees.
    routing = manager.client().get(reverse("tickets:routing")).content.decode()
    assert "alice" not in routing.split("Away members", 1)[1]


def test_away_agents_get_nothing_new_from_round_robin(agent: Persona, manager: Persona) -> None:
    org = agent.organization
    colleague = MembershipFactory(user=UserFactory(username="carol"), organization=org)
    team = Team.objects.create(organization=org, name="Care")
    team.members.set([_membership(agent), colleague])
    TeamRouting.objects.create(organization=org, team=team, auto_assign=True)
    agent.client().post(URL, {"action": "away"})
    given = []
    for _ in range(3):
        ticket = _ticket(org)
        ticket_assign(
            ticket=ticket,
            by=_membership(manager),
            assignee_id=None,
            change_team=True,
            team_id=team.pk,
        )
        ticket.refresh_from_db()
        given.append(ticket.assigned_to.username if ticket.assigned_to else None)
    assert given == ["carol", "carol", "carol"]


def test_away_they_are_offered_to_hand_their_open_tickets_to_the_team(agent: Persona) -> None:
    org = agent.organization
    colleague = MembershipFactory(user=UserFactory(username="carol"), organization=org)
    team = Team.objects.create(organization=org, name="Care")
    team.members.set([_membership(agent), colleague])
    TeamRouting.objects.create(organization=org, team=team, auto_assign=True)
    mine = [_ticket(org, assigned_to=agent.user, team=team) for _ in range(2)]
    _ticket(org, assigned_to=agent.user, team=team, status=Status.CLOSED)
    client = agent.client()

    available = client.get(URL).content.decode()
    assert "You are available" in available and "Hand my" not in available
    # Not away: their tickets stay with them.
    refused = client.post(URL, {"action": "redistribute"})
    assert refused.status_code == 422 and "is not away" in refused.content.decode()

    page = client.post(URL, {"action": "away"}, follow=True).content.decode()
    assert "You still have 2 open tickets" in page
    assert "Hand my 2 open tickets to my team" in page
    done = client.post(URL, {"action": "redistribute"}, follow=True).content.decode()
    assert "2 handed to colleagues, 0 back in the team queue" in done
    for ticket in mine:
        ticket.refresh_from_db()
        assert ticket.assigned_to_id == colleague.user_id
        event = ticket.events.get(kind=EventKind.ASSIGNED)
        assert event.actor == agent.user and "is away" in event.data["reason"]
    assert "You have no open tickets." in client.get(URL).content.decode()


def test_the_page_is_for_members_only(outsider: Persona) -> None:
    from django.test import Client

    assert Client().get(URL).status_code == 302  # to the login
    # Another organisation's member sets only themselves.
    outsider.client().post(URL, {"action": "away"})
    assert Membership.objects.get(user=outsider.user).is_away is True
    assert Membership.objects.filter(is_away=True).count() == 1
