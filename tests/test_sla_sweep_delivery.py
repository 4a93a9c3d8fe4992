"""The SLA sweep as beat runs it, delivery included: the sweep's statements, then the one
delivery of its events to every handler (roll-ups, escalation rules, webhooks), each set-based,
so the whole costs the same number of statements for 3 changes as for 12, with every outcome
checked (breaches, warnings, roll-ups, escalations and their notifications, webhooks)."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from careinbox.accounts.models import Organization, Role
from careinbox.notifications.models import Notification
from monitoring.escalation.engine import escalation_run_actions
from monitoring.models import (
    EscalationFiring,
    EscalationRule,
    Metric,
    SlaEventKind,
    SlaFact,
    SlaPolicy,
    SlaTimer,
    TicketFact,
)
from monitoring.services import sla_start, sla_sweep
from monitoring.webhooks.models import WebhookDelivery
from monitoring.webhooks.services import (
    deliveries_for_event,
    deliveries_for_events,
    endpoint_create,
)
from tests.conftest import Persona
from tests.factories import TicketFactory
from tests.webhook_receiver import Receiver
from tickets.models import EventKind, Ticket, TicketEvent

pytestmark = pytest.mark.django_db

SLA_HOOKS = ["sla.warning", "sla.breached"]


def _policy(org: Organization) -> SlaPolicy:
    return SlaPolicy.objects.create(
        organization=org, name="Every target", first_response_minutes=60, warning_percent=75
    )


def _tickets(org: Organization, count: int, opened_at: Any) -> list[Ticket]:
    tickets = []
    for _ in range(count):
        ticket = TicketFactory(social_account__brand__organization=org, opened_at=opened_at)
        sla_start(ticket=ticket)
        tickets.append(ticket)
    return tickets


def _rollup_rows(org: Organization) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    facts = TicketFact.objects.filter(organization=org).order_by("ticket_id")
    sla = SlaFact.objects.filter(organization=org).order_by("timer_id")
    return (
        list(facts.values_list("ticket_id", "is_open", "first_response_at", "priority")),
        list(sla.values_list("timer_id", "outcome", "owed", "due_at")),
    )


@pytest.mark.parametrize("count", [3, 12])
def test_a_sweep_and_its_delivery_are_a_fixed_number_of_statements(
    org_admin: Persona,
    agent: Persona,
    outsider: Persona,
    receiver: Receiver,
    count: int,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """``count`` first responses fall past their warning in one sweep and past due in the
    next, in an organisation with an escalation rule on the breach and a webhook endpoint;
    another organisation's timers too (it has neither). Each sweep, delivery and all, is the
    same number of statements whatever ``count`` (absolute baselines), and everything the
    breaches cause is there, once."""
    org = org_admin.organization
    _policy(org)
    _policy(outsider.organization)
    endpoint, _ = endpoint_create(
        organization=org, by=org_admin.user, name="CRM", url=receiver.url, events=SLA_HOOKS
    )
    rule = EscalationRule.objects.create(
        organization=org,
        name="Breached",
        conditions=[{"kind": "sla", "metric": Metric.FIRST_RESPONSE, "state": "breach"}],
        levels=[{"after_minutes": 0, "actions": {"notify_roles": [Role.AGENT]}}],
    )
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        mine = _tickets(org, count, now - timedelta(minutes=50))  # warned at 45, due at 60
        theirs = _tickets(outsider.organization, count, now - timedelta(minutes=50))
    assert WebhookDelivery.objects.count() == 0

    statements: list[int] = []
    for at in (now, now + timedelta(minutes=11)):
        with (
            CaptureQueriesContext(connection) as queries,
            django_capture_on_commit_callbacks(execute=True),
        ):
            result = sla_sweep(now=at)
        statements.append(len(queries.captured_queries))
        sqls = [q["sql"] for q in queries.captured_queries]
        # No statement per change: no table is written or read once per ticket.
        assert sum("webhooks_webhookendpoint" in sql for sql in sqls) == 1
        assert sum("monitoring_escalationrule" in sql for sql in sqls) == 1
        if at == now:
            assert result == (2 * count, 0)
            # A warning moves no roll-up row: the roll-ups are not refreshed for it.
            assert not [sql for sql in sqls if "_slafact" in sql or "_ticketfact" in sql]
        else:
            assert result == (0, 2 * count)
            assert sum("INSERT INTO" in sql and "_slafact" in sql for sql in sqls) == 1
    # Absolute baselines, for 3 tickets as for 12. The warning sweep (25): the sweep's 6 (its
    # savepoint pair, 2 claims, 1 update, 1 insert of events); the delivery's own 6 (read the
    # events, its savepoint pair, one lock per organisation, mark dispatched); escalation 7
    # (savepoint pair, the rules, the rule's savepoint pair, what matches, its live matches);
    # webhooks 6 (savepoint pair, endpoints, deliveries made, insert, their ids). The breach
    # sweep (38) adds the roll-ups' 10 (their six and two savepoint pairs) and escalation's
    # 3 inserts (match, firing, its events).
    # The breach sweep's roll-ups also read the old facts (2) and move the daily sums (2
    # upserts), and, these tickets' facts being made in this sweep, the responsiveness
    # histograms and the open counts (2 upserts; none when the facts were there and only
    # their timers moved). After the commit, each organisation's inbox counts token is replaced (2).
    # The organisations' locks are PostgreSQL advisory locks (none on SQLite).
    locks = 2 if connection.vendor == "postgresql" else 0
    stamps = 2
    assert statements == [23 + stamps + locks, 42 + stamps + locks], statements

    # The breaches, once each, in both organisations.
    for ticket in [*mine, *theirs]:
        kinds = list(ticket.events.values_list("kind", flat=True))
        assert kinds.count(SlaEventKind.SLA_WARNING) == 1
        assert kinds.count(SlaEventKind.SLA_BREACHED) == 1
    # Webhooks: one warning and one breach per ticket of the organisation that listens.
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert deliveries.filter(event_type="sla.warning").count() == count
    assert deliveries.filter(event_type="sla.breached").count() == count
    assert WebhookDelivery.objects.count() == 2 * count
    # Escalation: the rule fired once per breached ticket of its organisation; its action
    # (run by its task) notifies the agent once per ticket.
    assert set(EscalationFiring.objects.filter(rule=rule).values_list("ticket_id", flat=True)) == {
        ticket.pk for ticket in mine
    }
    assert EscalationFiring.objects.count() == count
    firing_ids = list(EscalationFiring.objects.values_list("pk", flat=True))
    assert escalation_run_actions(firing_ids=firing_ids) == count
    assert Notification.objects.filter(recipient=agent.user).count() == count
    # Roll-ups: the breached outcomes, and the same rows a rebuild makes.
    incremental = _rollup_rows(org)
    assert [outcome for _t, outcome, _o, _d in incremental[1]] == ["breached"] * count
    SlaFact.objects.all().delete()
    TicketFact.objects.all().delete()
    call_command("rebuild_rollups", stdout=io.StringIO())
    assert _rollup_rows(org) == incremental


def test_the_batch_makes_the_same_deliveries_as_one_event_at_a_time(
    org_admin: Persona, outsider: Persona, receiver: Receiver
) -> None:
    """``deliveries_for_events`` (a delivery's events at once) and ``deliveries_for_event``
    (one by one) give the same rows and bodies; a second pass adds nothing; another
    organisation's endpoint gets none of them."""
    org = org_admin.organization
    endpoint_create(
        organization=org, by=org_admin.user, name="A", url=receiver.url, events=SLA_HOOKS
    )
    endpoint_create(
        organization=org, by=org_admin.user, name="B", url=receiver.url, events=["ticket.closed"]
    )
    endpoint_create(
        organization=outsider.organization,
        by=outsider.user,
        name="Theirs",
        url=receiver.url,
        events=SLA_HOOKS,
    )
    tickets = [TicketFactory(social_account__brand__organization=org) for _ in range(3)]
    due = {"metric": "first_response", "due_at": "2026-12-01T10:00:00+00:00"}
    recorded = [
        ticket.record(
            kind, actor=org_admin.user if kind == EventKind.CLOSED_AS_SPAM else None, **due
        )
        for ticket in tickets
        for kind in (SlaEventKind.SLA_WARNING, SlaEventKind.SLA_BREACHED, EventKind.CLOSED_AS_SPAM)
    ]

    def rows() -> list[tuple[Any, ...]]:
        return list(
            WebhookDelivery.objects.order_by("endpoint_id", "event_id").values_list(
                "organization_id", "endpoint_id", "event_id", "event_type", "ticket_event_id"
            )
        )

    def bodies() -> list[dict[str, Any]]:
        import json

        found = []
        for body in WebhookDelivery.objects.order_by("endpoint_id", "event_id").values_list(
            "body", flat=True
        ):
            envelope = json.loads(body)
            envelope.pop("created_at")
            found.append(envelope)
        return found

    events = list(
        TicketEvent.objects.filter(pk__in=[e.pk for e in recorded])
        .select_related("ticket", "message")
        .order_by("pk")
    )
    WebhookDelivery.objects.all().delete()
    assert deliveries_for_events(events) == 9
    batched, batched_bodies = rows(), bodies()
    assert deliveries_for_events(events) == 0  # delivered at least once: the repeat is a no-op
    assert rows() == batched
    WebhookDelivery.objects.all().delete()
    for event in events:
        deliveries_for_event(event)
    assert rows() == batched and bodies() == batched_bodies
    assert {organization for organization, *_ in batched} == {org.pk}
    closed = [b for b in batched_bodies if b["type"] == "ticket.closed"]
    assert len(closed) == 3 and {b["data"]["event"]["actor"] for b in closed} == {
        org_admin.user.username
    }
    assert SlaTimer.objects.count() == 0  # nothing else was touched
