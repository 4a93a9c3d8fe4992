"""Team work: assign, claim, reassign; round-robin within a team's capacity and availability;
redistributing an away member's tickets; routing settings; notes with @mentions; tags."""

from __future__ import annotations

import pytest
from django.urls import reverse

from careinbox.accounts.models import AuditEntry, Membership, Organization, Role, Team
from careinbox.notifications.models import Notification
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, MembershipFactory, TicketFactory, UserFactory
from tickets.events import dispatch
from tickets.models import EventKind, Note, OutboxItem, Status, TeamRouting, Ticket
from tickets.services.teamwork import (
    TeamworkError,
    mentioned_members,
    note_add,
    redistribute_open_tickets,
    ticket_assign,
)


def _ticket(organization: Organization, **kwargs: object) -> Ticket:
    ticket = TicketFactory(social_account__brand__organization=organization, **kwargs)
    InboundMessageFactory(ticket=ticket)
    return ticket


def _membership(persona: Persona) -> Membership:
    return Membership.objects.get(user=persona.user, organization=persona.organization)


def _member(org: Organization, username: str, **kwargs: object) -> Membership:
    return MembershipFactory(user=UserFactory(username=username), organization=org, **kwargs)


def _team(org: Organization, *members: Membership, auto_assign: bool = True) -> Team:
    team = Team.objects.create(organization=org, name="Care")
    team.members.set(members)
    TeamRouting.objects.create(organization=org, team=team, auto_assign=auto_assign)
    return team


# --- Assign, claim, reassign ------------------------------------------------------------------


def test_an_agent_claims_an_unassigned_ticket_and_it_is_recorded(agent: Persona) -> None:
    ticket = _ticket(agent.organization)
    ticket_assign(ticket=ticket, by=_membership(agent), assignee_id=agent.user.pk)
    ticket.refresh_from_db()
    assert ticket.assigned_to == agent.user and ticket.assigned_at is not None
    event = ticket.events.get(kind=EventKind.ASSIGNED)
    assert event.actor == agent.user and event.data["reason"] == "claimed"


def test_an_agent_cannot_take_a_colleagues_ticket_but_a_manager_can(
    agent: Persona, manager: Persona
) -> None:
    colleague = _member(agent.organization, "carol")
    ticket = _ticket(agent.organization, assigned_to=colleague.user)
    with pytest.raises(TeamworkError, match="colleague's"):
        ticket_assign(ticket=ticket, by=_membership(agent), assignee_id=agent.user.pk)
    ticket.refresh_from_db()
    assert ticket.assigned_to == colleague.user
    assert not ticket.events.filter(kind=EventKind.ASSIGNED).exists()

    ticket_assign(ticket=ticket, by=_membership(manager), assignee_id=agent.user.pk)
    ticket.refresh_from_db()
    assert ticket.assigned_to == agent.user
    assert ticket.events.get(kind=EventKind.ASSIGNED).data["reason"] == "reassigned"
    # The new assignee hears of it, linking to the ticket.
    notice = Notification.objects.get(recipient=agent.user)
    assert notice.url == reverse("tickets:detail", args=[ticket.pk])


def test_an_agent_hands_their_own_ticket_to_a_colleague(agent: Persona) -> None:
    colleague = _member(agent.organization, "carol")
    ticket = _ticket(agent.organization, assigned_to=agent.user)
    ticket_assign(ticket=ticket, by=_membership(agent), assignee_id=colleague.user_id)
    ticket.refresh_from_db()
    assert ticket.assigned_to_id == colleague.user_id


def test_an_agent_cannot_assign_an_unassigned_ticket_to_someone_else(agent: Persona) -> None:
    colleague = _member(agent.organization, "carol")
    ticket = _ticket(agent.organization)
    with pytest.raises(TeamworkError, match="claim a ticket for yourself"):
        ticket_assign(ticket=ticket, by=_membership(agent), assignee_id=colleague.user_id)


def test_nobody_away_and_nobody_outside_the_org_is_given_a_ticket(
    manager: Persona, outsider: Persona
) -> None:
    away = _member(manager.organization, "carol", is_away=True)
    ticket = _ticket(manager.organization)
    with pytest.raises(TeamworkError, match="away"):
        ticket_assign(ticket=ticket, by=_membership(manager), assignee_id=away.user_id)
    with pytest.raises(TeamworkError, match="not an active member"):
        ticket_assign(ticket=ticket, by=_membership(manager), assignee_id=outsider.user.pk)
    ticket.refresh_from_db()
    assert ticket.assigned_to is None


# --- Round-robin ---------------------------------------------------------------------------------


def test_round_robin_takes_turns_skipping_the_away_and_the_full(manager: Persona) -> None:
    org = manager.organization
    ann = _member(org, "ann")
    away = _member(org, "bob", is_away=True)
    cat = _member(org, "cat", capacity=1)
    dan = _member(org, "dan")
    team = _team(org, ann, away, cat, dan)
    given = []
    for _ in range(5):
        ticket = _ticket(org)
        ticket_assign(
            ticket=ticket,
            by=_membership(manager),
            assignee_id=None,
            change_team=True,
            team_id=team.pk,
        )
        ticket.refresh_from_db()
        assert ticket.team == team
        given.append(ticket.assigned_to.username if ticket.assigned_to else None)
    # Bob is away: nothing; Cat's capacity is one open ticket: one, then she is skipped.
    assert given == ["ann", "cat", "dan", "ann", "dan"]
    event = Ticket.objects.filter(team=team).last().events.get(kind=EventKind.ASSIGNED)  # type: ignore[union-attr]
    assert "round-robin" in event.data["reason"]


def test_a_closed_ticket_frees_capacity(manager: Persona) -> None:
    org = manager.organization
    ann = _member(org, "ann", capacity=1)
    team = _team(org, ann)
    first = _ticket(org)
    ticket_assign(
        ticket=first, by=_membership(manager), assignee_id=None, change_team=True, team_id=team.pk
    )
    second = _ticket(org)
    ticket_assign(
        ticket=second, by=_membership(manager), assignee_id=None, change_team=True, team_id=team.pk
    )
    second.refresh_from_db()
    assert second.assigned_to is None and second.team == team  # in the team's queue
    assert "nobody in the team is free" in second.events.get(kind=EventKind.ASSIGNED).data["reason"]
    Ticket.objects.filter(pk=first.pk).update(status=Status.CLOSED)
    third = _ticket(org)
    ticket_assign(
        ticket=third, by=_membership(manager), assignee_id=None, change_team=True, team_id=team.pk
    )
    third.refresh_from_db()
    assert third.assigned_to == ann.user


def test_auto_assign_off_leaves_tickets_in_the_team_queue(manager: Persona) -> None:
    org = manager.organization
    team = _team(org, _member(org, "ann"), auto_assign=False)
    ticket = _ticket(org)
    ticket_assign(
        ticket=ticket, by=_membership(manager), assignee_id=None, change_team=True, team_id=team.pk
    )
    ticket.refresh_from_db()
    assert ticket.team == team and ticket.assigned_to is None


def test_a_new_ticket_goes_to_the_intake_team_round_robin_once(manager: Persona) -> None:
    org = manager.organization
    ann, ben = _member(org, "ann"), _member(org, "ben")
    team = _team(org, ann, ben)
    TeamRouting.objects.filter(team=team).update(takes_new_tickets=True)
    tickets = [_ticket(org) for _ in range(2)]
    for ticket in tickets:
        opened = ticket.record(EventKind.OPENED)
        dispatch([opened.pk])
        dispatch([opened.pk])  # delivered again: nothing changes
    assignees = [Ticket.objects.get(pk=t.pk).assigned_to for t in tickets]
    assert assignees == [ann.user, ben.user]
    assert all(t.events.filter(kind=EventKind.ASSIGNED).count() == 1 for t in tickets)


def test_redistributing_an_away_members_tickets(manager: Persona) -> None:
    org = manager.organization
    ann = _member(org, "ann")
    ben = _member(org, "ben", capacity=1)
    cat = _member(org, "cat")
    team = _team(org, ann, ben, cat)
    mine = [_ticket(org, assigned_to=ann.user, team=team) for _ in range(3)]
    closed = _ticket(org, assigned_to=ann.user, team=team, status=Status.CLOSED)
    with pytest.raises(TeamworkError, match="not away"):
        redistribute_open_tickets(membership=ann, by=manager.user)
    Membership.objects.filter(pk=ann.pk).update(is_away=True)
    ann.refresh_from_db()
    result = redistribute_open_tickets(membership=ann, by=manager.user)
    holders = [Ticket.objects.get(pk=t.pk).assigned_to for t in mine]
    # Ben takes one (his capacity), Cat the rest; nothing stays with Ann, the closed one does.
    assert holders.count(ben.user) == 1 and holders.count(cat.user) == 2
    assert (result.reassigned, result.queued) == (3, 0)
    assert Ticket.objects.get(pk=closed.pk).assigned_to == ann.user
    for ticket in mine:
        assert "ann is away" in ticket.events.get(kind=EventKind.ASSIGNED).data["reason"]


# --- The web views -------------------------------------------------------------------------------


def test_claim_and_assign_views(agent: Persona, manager: Persona, outsider: Persona) -> None:
    ticket = _ticket(agent.organization)
    response = agent.client().post(reverse("tickets:claim", args=[ticket.pk]))
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.assigned_to == agent.user
    page = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "(you)" in page

    carol = _member(agent.organization, "carol")
    handed = agent.client().post(
        reverse("tickets:assign", args=[ticket.pk]),
        {"assignee": str(carol.user_id)},
        HTTP_HX_REQUEST="true",
    )
    assert handed.status_code == 200  # Alice may hand her own ticket over
    ticket.refresh_from_db()
    assert ticket.assigned_to == carol.user
    refused = agent.client().post(
        reverse("tickets:assign", args=[ticket.pk]),
        {"assignee": str(agent.user.pk)},
        HTTP_HX_REQUEST="true",
    )
    assert refused.status_code == 422
    assert "ask a manager" in refused.content.decode()
    ok = manager.client().post(
        reverse("tickets:assign", args=[ticket.pk]), {"assignee": str(agent.user.pk)}
    )
    assert ok.status_code == 302
    assert Ticket.objects.get(pk=ticket.pk).assigned_to == agent.user
    for name in ("tickets:claim", "tickets:assign"):
        assert outsider.client().post(reverse(name, args=[ticket.pk])).status_code == 404


def test_routing_page_is_for_managers_audited_and_redistributes(
    agent: Persona, manager: Persona
) -> None:
    org = manager.organization
    ann = _member(org, "ann")
    team = _team(org, ann, _member(org, "ben"), auto_assign=False)
    url = reverse("tickets:routing")
    assert agent.client().get(url).status_code == 404
    client = manager.client()
    assert "Care" in client.get(url).content.decode()
    response = client.post(
        url, {"action": "routing", "team": team.pk, "auto_assign": "on", "takes_new_tickets": "on"}
    )
    assert response.status_code == 302
    routing = TeamRouting.objects.get(team=team)
    assert routing.auto_assign and routing.takes_new_tickets
    entry = AuditEntry.objects.get(object_type="Team routing")
    assert entry.actor == manager.user
    assert entry.before == {"auto_assign": False, "takes_new_tickets": False}
    assert entry.after == {"auto_assign": True, "takes_new_tickets": True}

    ticket = _ticket(org, assigned_to=ann.user, team=team)
    refused = client.post(url, {"action": "redistribute", "member": ann.pk})
    assert refused.status_code == 422 and "not away" in refused.content.decode()
    away = client.post(url, {"action": "availability", "member": ann.pk, "is_away": "on"})
    assert away.status_code == 302
    assert Membership.objects.get(pk=ann.pk).is_away
    audit = AuditEntry.objects.get(object_type="Membership")
    assert (audit.before, audit.after) == ({"is_away": False}, {"is_away": True})
    assert client.post(url, {"action": "redistribute", "member": ann.pk}).status_code == 302
    assert Ticket.objects.get(pk=ticket.pk).assigned_to.username == "ben"  # type: ignore[union-attr]


def test_routing_page_of_another_org_is_404(manager: Persona, outsider: Persona) -> None:
    team = _team(manager.organization, _membership(manager))
    other_manager = _member(outsider.organization, "oscar", role=Role.MANAGER)
    client = Persona(other_manager.user, outsider.organization, Role.MANAGER).client()
    response = client.post(reverse("tickets:routing"), {"action": "routing", "team": team.pk})
    assert response.status_code == 404
    assert not TeamRouting.objects.get(team=team).takes_new_tickets


# --- Notes and @mentions --------------------------------------------------------------------------


def test_a_note_notifies_the_mentioned_colleagues_once(agent: Persona, manager: Persona) -> None:
    _member(manager.organization, "away.one", is_away=True)  # away still hears of a mention
    _member(manager.organization, "gone", is_active=False)
    ticket = _ticket(agent.organization)
    note = note_add(
        ticket=ticket,
        by=agent.user,
        body="@Mark can we refund? cc @away.one. @alice @gone @olga @nobody mark@example.com",
    )
    assert sorted(u.username for u in note.mentions.all()) == ["alice", "away.one", "mark"]
    told = Notification.objects.filter(kind="mention")
    # Not Alice herself, not a deactivated member, not an outsider, not an e-mail address.
    assert sorted(n.recipient.username for n in told) == ["away.one", "mark"]
    assert told.first().url == reverse("tickets:detail", args=[ticket.pk]) + f"#note-{note.pk}"  # type: ignore[union-attr]
    event = ticket.events.get(kind=EventKind.NOTE_ADDED)
    assert event.actor == agent.user and event.data["note_id"] == note.pk
    assert not OutboxItem.objects.exists()  # notes never leave the app


def test_mentions_do_not_reach_another_organisation(agent: Persona, outsider: Persona) -> None:
    assert mentioned_members(agent.organization.pk, "@olga") == []


def test_note_view_escapes_and_refuses_empty(agent: Persona, outsider: Persona) -> None:
    ticket = _ticket(agent.organization)
    client = agent.client()
    url = reverse("tickets:note", args=[ticket.pk])
    empty = client.post(url, {"body": "   "}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 422 and "cannot be empty" in empty.content.decode()
    client.post(url, {"body": "<script>alert(1)</script> hello"})
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hello" in page
    assert "<script>alert(1)" not in page
    assert outsider.client().post(url, {"body": "hi"}).status_code == 404
    assert Note.objects.count() == 1


# --- Tags ----------------------------------------------------------------------------------------


def test_tags_are_added_and_removed_from_the_ticket_page(agent: Persona, outsider: Persona) -> None:
    ticket = _ticket(agent.organization)
    client = agent.client()
    response = client.post(
        reverse("tickets:tag-add", args=[ticket.pk]), {"name": "#Refund"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and 'class="badge tag">refund<' in response.content.decode()
    client.post(reverse("tickets:tag-remove", args=[ticket.pk]), {"name": "refund"})
    assert list(ticket.tags.all()) == []
    kinds = list(ticket.events.values_list("kind", flat=True))
    assert kinds == [EventKind.TAGGED, EventKind.UNTAGGED]
    blank = client.post(reverse("tickets:tag-add", args=[ticket.pk]), {"name": "#"})
    assert blank.status_code == 422
    assert (
        outsider.client()
        .post(reverse("tickets:tag-add", args=[ticket.pk]), {"name": "x"})
        .status_code
        == 404
    )


# --- Query counts --------------------------------------------------------------------------------

# The whole ticket page's queries (conversation, live sections, composer and canned responses,
# customer panel, and the team-work side panel: notes, promises, tags, members, teams), exactly:
# a new query per note, promise or tag fails the equality check below at once, and any new query
# at all fails the count (20 allowed before the page read each of its rows once).
TICKET_PAGE_QUERIES = 14


def test_ticket_page_queries_do_not_grow_with_notes_promises_tags(
    agent: Persona, django_assert_num_queries: object
) -> None:
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from tickets.services.promises import promise_make

    ticket = _ticket(agent.organization)
    client = agent.client()
    url = reverse("tickets:detail", args=[ticket.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(6):
        note_add(ticket=ticket, by=agent.user, body=f"note {n} @alice")
        promise_make(
            ticket=ticket,
            by=agent.user,
            text=f"call back {n}",
            due_at=timezone.now() + timedelta(hours=n + 1),
        )
        ticket.add_tag(f"tag{n}", by=agent.user)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert len(response.context["notes"]) == 6 and len(response.context["promises"]) == 6
    assert len(many) == len(few)
    with django_assert_num_queries(TICKET_PAGE_QUERIES):  # type: ignore[operator]
        client.get(url)


ROUTING_PAGE_QUERIES = 9


def test_routing_page_queries_do_not_grow_with_teams_and_members(
    manager: Persona, django_assert_max_num_queries: object
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    org = manager.organization
    client = manager.client()
    url = reverse("tickets:routing")
    _team(org, _member(org, "ann"))
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(4):
        team = Team.objects.create(organization=org, name=f"Tier {n}")
        team.members.set([_member(org, f"member{n}{m}", is_away=m == 0) for m in range(3)])
        TeamRouting.objects.create(organization=org, team=team, auto_assign=True)
        _ticket(org, assigned_to=team.members.first().user)  # type: ignore[union-attr]
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert len(response.context["rows"]) == 5 and len(response.context["away"]) == 4
    assert len(many) == len(few)
    with django_assert_max_num_queries(ROUTING_PAGE_QUERIES):  # type: ignore[operator]
        client.get(url)
