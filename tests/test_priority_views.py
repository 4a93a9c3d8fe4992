"""Priority on the web: each factor on the ticket page, the agent's override (recorded), and the
"Priority and approval rules" settings section (admins, audited)."""

from __future__ import annotations

from django.urls import reverse

from careinbox.accounts.models import AuditEntry
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.models import ApprovalRules, EventKind, Priority, PriorityRules, Ticket


def _ticket(agent: Persona) -> Ticket:
    ticket = TicketFactory(
        social_account__brand__organization=agent.organization,
        priority=Priority.HIGH,
        priority_score=41,
        priority_factors=[
            {"factor": "sentiment", "points": 25, "reason": "reads as a complaint (still waiting)"},
            {"factor": "reach", "points": 16, "reason": "4,200 followers"},
        ],
        priority_reasons=["reads as a complaint (still waiting)", "4,200 followers"],
    )
    InboundMessageFactory(ticket=ticket)
    return ticket


def test_the_ticket_shows_each_factor_with_its_points(agent: Persona) -> None:
    ticket = _ticket(agent)
    body = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert '<span class="points">+25</span> reads as a complaint (still waiting)' in body
    assert '<span class="points">+16</span> 4,200 followers' in body
    assert ticket.main_priority_reason == "reads as a complaint (still waiting)"
    # Found walking the demo: the priority and status badges stood twice in the header (the
    # live badges and again above the factors); once now, in the live ones.
    assert body.count(f'class="badge prio-{Priority.HIGH}"') == 1
    assert body.count('<span class="status">') == 1


def test_an_agent_overrides_the_priority_with_a_reason(agent: Persona, outsider: Persona) -> None:
    ticket = _ticket(agent)
    url = reverse("tickets:priority", args=[ticket.pk])
    assert outsider.client().post(url, {"priority": "1", "reason": "x"}).status_code == 404
    missing = agent.client().post(url, {"priority": "1", "reason": ""})
    assert missing.status_code == 422 and "Say why" in missing.content.decode()
    assert agent.client().post(url, {"priority": "1", "reason": "Press enquiry"}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.priority == Priority.URGENT
    event = ticket.events.get(kind=EventKind.PRIORITY_CHANGED)
    assert event.actor == agent.user
    assert event.data == {
        "before": Priority.HIGH,
        "after": Priority.URGENT,
        "reason": "Press enquiry",
    }


def test_priority_and_approval_rules_are_saved_and_audited(org_admin: Persona, org) -> None:  # type: ignore[no-untyped-def]
    client = org_admin.client()
    url = reverse("tickets:priority-rules")
    page = client.get(url)
    assert page.status_code == 200 and "lawyer" in page.content.decode()  # the default list
    response = client.post(
        url,
        {
            "priority-keywords": "Recall\nrefund, refund",
            "priority-hashtags": "#AcmeFail",
            "priority-vip_handles": "@BigCo",
            "approval-legal_keywords": "lawyer\nombudsman",
            "approval-vip_authors": "on",
            "approval-min_followers": "50000",
        },
    )
    assert response.status_code == 302
    rules = PriorityRules.objects.get(organization=org)
    assert (rules.keywords, rules.hashtags, rules.vip_handles) == (
        ["recall", "refund"],
        ["acmefail"],
        ["bigco"],
    )
    approvals = ApprovalRules.objects.get(organization=org)
    assert approvals.legal_keywords == ["lawyer", "ombudsman"] and approvals.min_followers == 50_000
    entries = {
        e.object_type: e for e in AuditEntry.objects.filter(organization=org, action="updated")
    }
    assert entries["Priority rules"].after["keywords"] == ["recall", "refund"]
    assert entries["Approval rules"].before["min_followers"] is None
    assert entries["Approval rules"].after["min_followers"] == 50_000


def test_bad_hashtags_are_refused_and_nothing_changes(org_admin: Persona, org) -> None:  # type: ignore[no-untyped-def]
    response = org_admin.client().post(
        reverse("tickets:priority-rules"),
        {"priority-hashtags": "not a tag!", "approval-vip_authors": "on"},
    )
    assert response.status_code == 422 and "Not a hashtag" in response.content.decode()
    assert PriorityRules.objects.get(organization=org).hashtags == []
    assert not AuditEntry.objects.filter(organization=org).exists()


def test_rules_are_for_admins(agent: Persona, manager: Persona) -> None:
    assert agent.client().get(reverse("tickets:priority-rules")).status_code == 404
    assert manager.client().get(reverse("tickets:priority-rules")).status_code == 404
