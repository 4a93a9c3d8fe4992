"""Every HTML view (and its htmx partials) renders in the same number of queries with 3 or 30
tickets, messages, notes, promises, approvals, customers' tickets, members, teams,
notifications, audit entries, canned responses and rules (issue #8: "no view's query count
grows with the number of tickets or messages").

One world is built small, every view is measured, the world grows tenfold, and every view is
measured again; the test lists each view whose count moved. Each view is asked once before it
is measured, so a row a view makes on first use (an organisation's settings) is not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.models import AuditEntry, Membership, Organization, Role, Team
from careinbox.notifications.models import Notification
from channels_social.models import SocialAccount
from monitoring.models import EscalationRule
from monitoring.services import sla_start
from tests.conftest import Persona
from tests.factories import (
    CustomerFactory,
    CustomerIdentityFactory,
    InboundMessageFactory,
    MembershipFactory,
    TicketFactory,
    UserFactory,
)
from tickets.models import (
    ApprovalRequest,
    CannedResponse,
    Customer,
    Direction,
    EventKind,
    Message,
    MessageKind,
    Note,
    OutboxItem,
    OutboxState,
    Promise,
    Status,
    Step,
    Tag,
    TeamRouting,
    Ticket,
)

pytestmark = pytest.mark.django_db


@dataclass
class World:
    """An organisation with ``size`` of everything a page lists."""

    org: Organization
    admin: Persona
    account: SocialAccount
    customer: Customer
    detail: Ticket
    team: Team
    size: int = 0
    tickets: list[Ticket] = field(default_factory=list)

    def grow(self, size: int) -> None:
        now = timezone.now()
        for i in range(self.size, size):
            # An open ticket of the customer, assigned to the admin, in the team, tagged, with
            # its post, an SLA timer, a promise and a reply waiting for approval.
            ticket = TicketFactory(
                social_account=self.account,
                customer=self.customer,
                assigned_to=self.admin.user if i % 3 else None,
                team=self.team,
                status=Status.OFFLINE if i % 2 else Status.NEW,
                opened_at=now - timedelta(minutes=5 + i),
            )
            InboundMessageFactory(ticket=ticket, text=f"parcel {i} late again")
            if i % 2:  # the brand spoke last: "waiting on customer"
                Message.objects.create(
                    organization=self.org,
                    ticket=ticket,
                    platform=ticket.platform,
                    kind=MessageKind.DM,
                    direction=Direction.OUTBOUND,
                    is_public=False,
                    author_username=self.account.username,
                    text="Could you DM us your order number?",
                    created_at=timezone.now() + timedelta(seconds=1),
                )
                ticket.refresh_last_message_direction()  # as every write site does
            if i % 2 == 0:
                ticket.require_approval("escalated", by=None)
            sla_start(ticket=ticket)
            ticket.set_sla_due(now + timedelta(minutes=10 + i))  # "breaching soon" lists it
            ticket.add_tag(f"tag{i % 7}", by=None)
            Promise.objects.create(
                organization=self.org,
                ticket=ticket,
                text=f"Call back {i}",
                due_at=now + timedelta(hours=3),
                remind_at=now + timedelta(hours=2),
            )
            ApprovalRequest.objects.create(
                organization=self.org,
                ticket=ticket,
                step=Step.ACKNOWLEDGE,
                text=f"Sorry about that {i}",
                reasons=["VIP author"],
                requested_by=self.admin.user,
            )
            self.tickets.append(ticket)
            # A closed one too, for the archive view.
            closed = TicketFactory(social_account=self.account, customer=self.customer)
            InboundMessageFactory(ticket=closed)
            closed.close_without_reply(reason="spam", note=f"bot {i}", by=None)
            # The ticket page's ticket: messages both ways, notes, promises, events.
            InboundMessageFactory(ticket=self.detail, text=f"follow-up {i}")
            reply = Message.objects.create(
                organization=self.org,
                ticket=self.detail,
                platform=self.detail.platform,
                kind=MessageKind.REPLY,
                direction=Direction.OUTBOUND,
                is_public=True,
                external_id=f"99{i:05}",
                author_username=self.account.username,
                sent_by=self.admin.user,
                text=f"We are on it ({i})",
                created_at=now,
            )
            OutboxItem.objects.create(organization=self.org, message=reply, state=OutboxState.SENT)
            self.detail.refresh_last_message_direction()
            self.detail.record(EventKind.REPLY_SENT, message=reply, external_id=reply.external_id)
            Note.objects.create(
                organization=self.org, ticket=self.detail, author=self.admin.user, body=f"n{i}"
            )
            Promise.objects.create(
                organization=self.org,
                ticket=self.detail,
                text=f"Refund {i}",
                due_at=now + timedelta(days=1),
                remind_at=now + timedelta(hours=20),
            )
            self.detail.tags.add(Tag.objects.get_or_create(organization=self.org, name=f"d{i}")[0])
            # People, teams, the bell, the audit trail, canned responses, rules.
            member = MembershipFactory(
                user=UserFactory(username=f"agent{i}"), organization=self.org, role=Role.AGENT
            )
            self.team.members.add(member)
            other_team = Team.objects.create(organization=self.org, name=f"Team {i}")
            other_team.members.add(member)
            TeamRouting.objects.create(organization=self.org, team=other_team)
            Notification.objects.create(
                organization=self.org, recipient=self.admin.user, title=f"Hi {i}", url="/"
            )
            AuditEntry.objects.create(
                organization=self.org,
                actor=self.admin.user,
                action="updated",
                object_type="member",
                object_id=str(member.pk),
                object_repr=str(member.user),
                before={"is_away": False},
                after={"is_away": True},
            )
            CannedResponse.objects.create(
                organization=self.org, title=f"Canned {i}", variants=[f"Hello {i}", f"Hi {i}"]
            )
            EscalationRule.objects.create(
                organization=self.org,
                name=f"Rule {i}",
                position=i,
                conditions=[{"kind": "priority", "at_least": 2}],
                levels=[
                    {"after_minutes": 0, "actions": {"add_tag": "hot", "notify_roles": ["manager"]}}
                ],
            )
            other = CustomerFactory(organization=self.org, display_name=f"Person {i}")
            CustomerIdentityFactory(customer=other, username=f"person{i}")
        self.size = size


@pytest.fixture
def world(org_admin: Persona, make_account: Callable[..., SocialAccount]) -> World:
    org = org_admin.organization
    account = make_account(username="AcmeCare")
    customer = CustomerFactory(organization=org, display_name="Dana Lee")
    CustomerIdentityFactory(customer=customer, username="dana", external_id="4242")
    detail = TicketFactory(
        social_account=account,
        customer=customer,
        customer_external_id="4242",
        customer_username="dana",
        assigned_to=org_admin.user,
    )
    root = InboundMessageFactory(ticket=detail, text="My parcel never arrived")
    Ticket.objects.filter(pk=detail.pk).update(root_message=root)
    detail.refresh_from_db()
    sla_start(ticket=detail)
    team = Team.objects.create(organization=org, name="Care")
    team.members.add(Membership.objects.get(user=org_admin.user, organization=org))
    TeamRouting.objects.create(organization=org, team=team, auto_assign=True)
    return World(org, org_admin, account, customer, detail, team)


HX = {"HTTP_HX_REQUEST": "true"}


def _pages(world: World) -> dict[str, tuple[str, dict[str, Any], dict[str, str]]]:
    """Every HTML page and htmx partial, by a name: (path, query, headers)."""
    detail, customer = world.detail.pk, world.customer.pk
    canned = CannedResponse.objects.filter(organization=world.org).order_by("pk").first()
    rule = EscalationRule.objects.filter(organization=world.org).order_by("pk").first()
    pages: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
        "inbox": (reverse("tickets:inbox"), {}, {}),
        "inbox search": (reverse("tickets:inbox"), {"view": "open", "q": "parcel"}, {}),
        "inbox filtered": (
            reverse("tickets:inbox"),
            {"view": "open", "tag": "", "priority": "3", "sort": "opened"},
            {},
        ),
        "inbox live": (reverse("tickets:inbox"), {"live": "1", "token": "lost"}, HX),
        "ticket": (reverse("tickets:detail", args=[detail]), {}, {}),
        "ticket live": (reverse("tickets:detail", args=[detail]), {"live": "1", "h": ""}, HX),
        "ticket customer sidebar": (reverse("tickets:customer-sidebar", args=[detail]), {}, HX),
        "customer profile": (reverse("tickets:customer", args=[customer]), {}, {}),
        "customer list": (reverse("tickets:customers"), {}, {}),
        "customer search": (reverse("tickets:customers"), {"q": "person"}, {}),
        "approvals": (reverse("tickets:approvals"), {}, {}),
        "routing": (reverse("tickets:routing"), {}, {}),
        "my availability": (reverse("tickets:my-availability"), {}, {}),
        "canned responses": (reverse("tickets:canned-list"), {}, {}),
        "priority rules": (reverse("tickets:priority-rules"), {}, {}),
        "threading settings": (reverse("tickets:settings-threading"), {}, {}),
        "dashboard": (reverse("monitoring:dashboard"), {}, {}),
        "dashboard figures": (reverse("monitoring:dashboard"), {}, HX),
        "sla policies": (reverse("monitoring:settings-policies"), {}, {}),
        "escalation rules": (reverse("escalation:rules"), {}, {}),
        "settings home": (reverse("accounts:settings"), {}, {}),
        "members": (reverse("accounts:members"), {}, {}),
        "teams": (reverse("accounts:teams"), {}, {}),
        "team": (reverse("accounts:team", args=[world.team.pk]), {}, {}),
        "organisation": (reverse("accounts:organization"), {}, {}),
        "audit trail": (reverse("accounts:audit"), {}, {}),
        "notifications": (reverse("notifications:list"), {}, {}),
        "channels": (reverse("channels_social:settings-channels"), {}, {}),
        "api tokens": (reverse("api:tokens"), {}, {}),
    }
    for view in ("mine", "unassigned", "open", "breaching", "waiting", "approval", "closed"):
        pages[f"inbox {view}"] = (reverse("tickets:inbox"), {"view": view}, {})
    if canned is not None:
        pages["canned response"] = (reverse("tickets:canned-edit", args=[canned.pk]), {}, {})
    if rule is not None:
        pages["escalation rule"] = (reverse("escalation:edit", args=[rule.pk]), {}, {})
    return pages


def _measure(
    client: Client, pages: dict[str, tuple[str, dict[str, Any], dict[str, str]]]
) -> dict[str, int]:
    counts = {}
    for name, (path, query, headers) in pages.items():
        client.get(path, query, **headers)  # first use: rows a view makes once
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, query, **headers)
        assert response.status_code in (200, 204), f"{name}: {response.status_code}"
        counts[name] = len(queries)
        if name.startswith("inbox ") and "live" not in name and "search" not in name:
            # Each view is measured with rows in it (an empty list skips its prefetches).
            assert response.context["tickets"], f"{name} is empty"
    return counts


# Absolute baselines (NetBox keeps one per view): a new query on these pages fails at once,
# not only one that grows with the data. The ticket page reads each of the ticket's rows once
# (its messages serve the reply windows, the sidebar's splittable posts and the opening post;
# its events the merge offers; the request's membership "is a manager"), 24 queries before.
BASELINES = {
    "ticket": 16,
    "ticket live": 14,
    "ticket customer sidebar": 8,
}


def test_no_view_costs_more_queries_with_ten_times_the_data(world: World) -> None:
    client = world.admin.client()
    world.grow(3)
    pages = _pages(world)
    few = _measure(client, pages)
    world.grow(30)
    many = _measure(client, pages)
    grew = {name: (few[name], many[name]) for name in pages if few[name] != many[name]}
    assert grew == {}, f"queries at 3 → 30 of everything: {grew}"
    moved = {name: many[name] for name in BASELINES if many[name] != BASELINES[name]}
    assert moved == {}, f"queries now (baseline {BASELINES}): {moved}"
    # Every page was measured with something on it.
    assert Ticket.objects.filter(organization=world.org).count() == 61
    assert world.detail.messages.count() == 61
