"""The escalation engine: through the event seam and the sweep, once per level, no storm,
cleared when the conditions stop holding, the dry run's set equal to what fires, each condition
kind, and a fixed number of queries whatever the number of open tickets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import IntegrityError, transaction

from careinbox.accounts.models import Organization, Role, Team
from careinbox.notifications.models import Notification
from channels_social.models import Platform
from monitoring.escalation.conditions import bulk_reply_facts, condition_kinds
from monitoring.escalation.engine import (
    escalation_run_actions,
    escalation_sweep,
    matching_tickets,
)
from monitoring.models import (
    EscalationEventKind,
    EscalationFiring,
    EscalationMatch,
    EscalationRule,
    Metric,
)
from monitoring.services import sla_start, sla_sweep
from tests.conftest import Persona
from tests.factories import BrandFactory, InboundMessageFactory, TicketFactory
from tickets.models import MessageKind, Priority, Ticket, TicketEvent
from tickets.services.outbox import reply_facts

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _rule(
    org: Organization, conditions: list[dict[str, Any]], *levels: dict[str, Any]
) -> EscalationRule:
    return EscalationRule.objects.create(
        organization=org,
        name=f"Rule {EscalationRule.objects.count() + 1}",
        conditions=conditions,
        levels=list(levels),
    )


def _ticket(org: Organization, **fields: Any) -> Ticket:
    return TicketFactory(social_account__brand__organization=org, **fields)


def _fired(rule: EscalationRule, ticket: Ticket | None = None) -> list[int]:
    firings = EscalationFiring.objects.filter(rule=rule)
    if ticket is not None:
        firings = firings.filter(ticket=ticket)
    return list(firings.order_by("pk").values_list("level", flat=True))


def _run_all() -> int:
    """What the queued ``run_escalation_actions`` tasks do (run by hand, as the outbox tests
    send their items)."""
    pending = EscalationFiring.objects.filter(actions_done_at__isnull=True).values_list(
        "pk", flat=True
    )
    return escalation_run_actions(firing_ids=list(pending))


def test_two_levels_fire_once_each_through_the_event_seam_and_the_sweep(
    org: Organization,
    agent: Persona,
    manager: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    agent.user.email = "alice@example.com"
    agent.user.save()
    rule = _rule(
        org,
        [{"kind": "sla", "metric": Metric.FIRST_RESPONSE, "state": "warning"}],
        {
            "after_minutes": 0,
            "actions": {"notify_roles": [Role.AGENT], "email": True, "add_tag": "at-risk"},
        },
        {
            "after_minutes": 10,
            "actions": {"notify_roles": [Role.MANAGER], "raise_priority": Priority.URGENT},
        },
    )
    with time_machine.travel(T0, tick=False):
        ticket = _ticket(org, opened_at=T0)
        sla_start(ticket=ticket)  # the default policy: 60 min, warned at 75%
        assert escalation_sweep().fired == []

    # 46 minutes in, the SLA sweep warns: its event reaches escalation's handler after commit.
    with time_machine.travel(T0 + timedelta(minutes=46), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert sla_sweep().warned == 1
        assert _fired(rule, ticket) == [1]
        assert _run_all() == 1
        for _ in range(3):  # beat again and again: no storm
            escalation_sweep()
        assert _run_all() == 0
    assert _fired(rule, ticket) == [1]
    ticket.refresh_from_db()
    assert list(ticket.tags.values_list("name", flat=True)) == ["at-risk"]
    [note] = Notification.objects.filter(recipient=agent.user)
    assert note.kind == "escalation" and note.url == f"/tickets/{ticket.pk}/"
    assert not Notification.objects.filter(recipient=manager.user).exists()
    [email] = mail.outbox
    assert email.to == ["alice@example.com"] and f"ticket #{ticket.pk}" in email.subject

    with time_machine.travel(T0 + timedelta(minutes=56, seconds=30), tick=False):
        assert len(escalation_sweep().fired) == 1
        _run_all()
        escalation_sweep()
    assert _fired(rule, ticket) == [1, 2]
    ticket.refresh_from_db()
    assert ticket.priority == Priority.URGENT
    assert Notification.objects.filter(recipient=manager.user).count() == 1
    assert Notification.objects.filter(recipient=agent.user).count() == 1
    timeline = list(
        ticket.events.filter(kind=EscalationEventKind.ESCALATED).values_list("data", flat=True)
    )
    assert [data["level"] for data in timeline] == [1, 2]
    assert timeline[0]["rule"] == rule.name


def test_clearing_stops_the_next_level_and_a_new_episode_fires_again(
    org: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    rule = _rule(
        org,
        [{"kind": "priority", "at_least": Priority.HIGH}],
        {"after_minutes": 0, "actions": {"add_tag": "vip"}},
        {"after_minutes": 10, "actions": {"require_approval": True}},
    )
    with time_machine.travel(T0, tick=False):
        ticket = _ticket(org, priority=Priority.HIGH)
        escalation_sweep()
    assert _fired(rule, ticket) == [1]

    # An agent lowers the priority: the event clears the match at once.
    with (
        time_machine.travel(T0 + timedelta(minutes=5), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        ticket.change_priority(Priority.NORMAL, by=None, reason="not that urgent")
    match = EscalationMatch.objects.get(rule=rule, ticket=ticket)
    assert match.cleared_at == T0 + timedelta(minutes=5)
    assert ticket.events.filter(kind=EscalationEventKind.ESCALATION_CLEARED).count() == 1

    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        escalation_sweep()  # level 2's time has come, but the conditions no longer hold
    assert _fired(rule, ticket) == [1]

    # It comes back: a new episode, whose levels fire again from its own start.
    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        ticket.change_priority(Priority.HIGH, by=None, reason="again")
        escalation_sweep()
    with time_machine.travel(T0 + timedelta(minutes=41), tick=False):
        escalation_sweep()
        escalation_sweep()
    assert _fired(rule, ticket) == [1, 1, 2]
    assert EscalationMatch.objects.filter(rule=rule, ticket=ticket).count() == 2


def test_a_closed_ticket_clears_and_a_disabled_rule_does_nothing(org: Organization) -> None:
    rule = _rule(
        org,
        [{"kind": "followers", "at_least": 0}],
        {"after_minutes": 5, "actions": {"add_tag": "x"}},
    )
    off = _rule(
        org,
        [{"kind": "followers", "at_least": 0}],
        {"after_minutes": 0, "actions": {"add_tag": "y"}},
    )
    off.enabled = False
    off.save()
    ticket = _ticket(org)
    escalation_sweep()
    Ticket.objects.filter(pk=ticket.pk).update(status="closed")
    escalation_sweep(now=datetime.now(UTC) + timedelta(minutes=6))
    assert _fired(rule) == [] and _fired(off) == []
    assert EscalationMatch.objects.get(rule=rule).cleared_at is not None


def test_a_level_fires_once_per_match_even_if_two_passes_race(org: Organization) -> None:
    """The constraint, not the code path, is what stops a second worker: a second firing of the
    same match and level cannot be written, and a pass over work already done adds nothing."""
    rule = _rule(org, [{"kind": "followers", "at_least": 0}], {"after_minutes": 0, "actions": {}})
    ticket = _ticket(org)
    escalation_sweep()
    firing = EscalationFiring.objects.get(rule=rule)
    with pytest.raises(IntegrityError), transaction.atomic():
        EscalationFiring.objects.create(
            organization=org,
            match=firing.match,
            rule=rule,
            ticket=ticket,
            level=1,
            fired_at=firing.fired_at,
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        EscalationMatch.objects.create(
            organization=org, rule=rule, ticket=ticket, since=firing.fired_at
        )
    assert escalation_sweep().fired == []


def test_the_dry_run_matches_exactly_what_fires(org: Organization) -> None:
    other_brand = BrandFactory(organization=org)
    wanted = [
        _ticket(org, customer_followers=5000),
        _ticket(org, customer_followers=12000),
    ]
    InboundMessageFactory(ticket=wanted[0], text="I want a REFUND now")
    InboundMessageFactory(ticket=wanted[1], text="#refund please")
    loud_elsewhere = _ticket(org, customer_followers=9000, social_account__brand=other_brand)
    InboundMessageFactory(ticket=loud_elsewhere, text="refund")
    quiet = _ticket(org, customer_followers=10)
    InboundMessageFactory(ticket=quiet, text="refund")
    no_word = _ticket(org, customer_followers=50000)
    InboundMessageFactory(ticket=no_word, text="hello")
    brand = wanted[0].brand
    Ticket.objects.filter(pk=wanted[1].pk).update(brand=brand)
    conditions = [
        {"kind": "followers", "at_least": 1000},
        {"kind": "keyword", "words": ["refund", "#chargeback"]},
        {"kind": "channel", "brands": [brand.pk], "platforms": [Platform.X]},
    ]
    dry = set(matching_tickets(org.pk, conditions).values_list("pk", flat=True))
    assert dry == {ticket.pk for ticket in wanted}
    rule = _rule(org, conditions, {"after_minutes": 0, "actions": {}})
    escalation_sweep()
    assert (
        set(EscalationFiring.objects.filter(rule=rule).values_list("ticket_id", flat=True)) == dry
    )


def test_unassigned_counts_from_the_last_unassignment(org: Organization, agent: Persona) -> None:
    conditions = [{"kind": "unassigned", "minutes": 30}]
    with time_machine.travel(T0, tick=False):
        never = _ticket(org, opened_at=T0)
        taken = _ticket(org, opened_at=T0)
        taken.assign(agent.user, by=None)
        dropped = _ticket(org, opened_at=T0)
        dropped.assign(agent.user, by=None)
    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        dropped.assign(None, by=None)
    with time_machine.travel(T0 + timedelta(minutes=31), tick=False):
        assert set(matching_tickets(org.pk, conditions).values_list("pk", flat=True)) == {never.pk}
    with time_machine.travel(T0 + timedelta(minutes=51), tick=False):
        assert set(matching_tickets(org.pk, conditions).values_list("pk", flat=True)) == {
            never.pk,
            dropped.pk,
        }
    assert taken.pk not in set(matching_tickets(org.pk, conditions).values_list("pk", flat=True))


def test_sla_breach_is_narrower_than_warning(org: Organization) -> None:
    with time_machine.travel(T0, tick=False):
        warned, breached, fine = (
            _ticket(org, opened_at=T0 + timedelta(minutes=m)) for m in (0, -30, 30)
        )
        for ticket in (warned, breached, fine):
            sla_start(ticket=ticket)
    now = T0 + timedelta(minutes=50)
    with time_machine.travel(now, tick=False):
        sla_sweep()
        warning = [{"kind": "sla", "metric": Metric.FIRST_RESPONSE, "state": "warning"}]
        breach = [{"kind": "sla", "metric": Metric.FIRST_RESPONSE, "state": "breach"}]
        assert set(matching_tickets(org.pk, warning).values_list("pk", flat=True)) == {
            warned.pk,
            breached.pk,
        }
        assert set(matching_tickets(org.pk, breach).values_list("pk", flat=True)) == {breached.pk}


def _facebook_ticket(org: Organization, last_messenger_at: datetime) -> Ticket:
    ticket = _ticket(
        org,
        platform=Platform.FACEBOOK,
        social_account__platform=Platform.FACEBOOK,
        is_public=False,
    )
    InboundMessageFactory(
        ticket=ticket,
        platform=Platform.FACEBOOK,
        kind=MessageKind.MESSENGER,
        is_public=False,
        created_at=last_messenger_at,
    )
    return ticket


def test_a_closing_reply_window_comes_from_the_adapter(org: Organization) -> None:
    now = T0
    closing = _facebook_ticket(org, now - timedelta(hours=23, minutes=50))  # 24 h closes in 10 min
    later = _facebook_ticket(org, now - timedelta(hours=20))
    human_agent_closing = _facebook_ticket(org, now - timedelta(days=7) + timedelta(minutes=5))
    for minutes in (90, 30):  # two comments: the latest is the one a private reply answers
        InboundMessageFactory(
            ticket=later,
            platform=Platform.FACEBOOK,
            kind=MessageKind.COMMENT,
            created_at=now - timedelta(minutes=minutes),
        )
    x_ticket = _ticket(org)
    InboundMessageFactory(ticket=x_ticket, kind=MessageKind.DM, is_public=False)
    conditions = [{"kind": "reply_window", "within_minutes": 15}]
    with time_machine.travel(now, tick=False):
        found = set(matching_tickets(org.pk, conditions).values_list("pk", flat=True))
        assert found == {closing.pk, human_agent_closing.pk}
        # The bulk facts are the ones the outbox gathers for one ticket.
        tickets = Ticket.objects.filter(pk__in=[closing.pk, later.pk, human_agent_closing.pk])
        bulk = bulk_reply_facts(tickets, now)
        assert bulk[later.pk][1].reply_to is not None
        for ticket in tickets:
            one = reply_facts(ticket)
            assert bulk[ticket.pk][1] == one.__class__(**{**one.__dict__, "now": now})


@pytest.mark.parametrize("open_tickets", [3, 40])
def test_the_sweep_runs_a_fixed_number_of_queries(
    org: Organization, agent: Persona, open_tickets: int, django_assert_num_queries: Any
) -> None:
    """Every condition kind in one rule, plus a second rule: the same statements at 3 open
    tickets as at 40, all of them matching and firing (the actions run later, in a task).
    Absolute baselines: one for the rules, then per rule its savepoint and release, what
    matches now, its live matches, the levels they fired (and the inserts when something
    changed)."""
    team = Team.objects.create(organization=org, name="Tier 2")
    conditions = [
        {"kind": "followers", "at_least": 0},
        {"kind": "priority", "at_least": Priority.LOW},
        {"kind": "keyword", "words": ["late"]},
        {"kind": "channel", "brands": [], "platforms": [Platform.X]},
        {"kind": "unassigned", "minutes": 0},
        {"kind": "promise_overdue", "minutes": 0},
        {"kind": "sentiment", "is": "negative"},
        {"kind": "awaiting_approval", "minutes": 0},
        {"kind": "sla", "metric": Metric.FIRST_RESPONSE, "state": "warning"},
        {"kind": "reply_window", "within_minutes": 60 * 24 * 8},
    ]
    assert {c["kind"] for c in conditions} == {kind.key for kind in condition_kinds()}
    # The reply window never closes on X: the rule with every kind matches nothing, the
    # second one everything.
    _rule(org, conditions, {"after_minutes": 0, "actions": {"assign_team": team.pk}})
    broad = _rule(
        org,
        [{"kind": "keyword", "words": ["late"]}],
        {"after_minutes": 0, "actions": {"notify_roles": [Role.AGENT]}},
        {"after_minutes": 0, "actions": {"add_tag": "late"}},
    )
    for _ in range(open_tickets):
        InboundMessageFactory(ticket=_ticket(org), text="my parcel is late")
    with django_assert_num_queries(12):
        result = escalation_sweep()
    assert len(result.fired) == 2 * open_tickets
    assert EscalationFiring.objects.filter(rule=broad).count() == 2 * open_tickets
    with django_assert_num_queries(10):
        assert escalation_sweep().fired == []
    assert (
        TicketEvent.objects.filter(kind=EscalationEventKind.ESCALATED).count() == 2 * open_tickets
    )


def test_actions_assign_and_survive_a_second_run(org: Organization, agent: Persona) -> None:
    team = Team.objects.create(organization=org, name="Tier 2")
    rule = _rule(
        org,
        [{"kind": "followers", "at_least": 0}],
        {
            "after_minutes": 0,
            "actions": {
                "assign_team": team.pk,
                "assign_user": agent.user.pk,
                "notify_assignee": True,
            },
        },
    )
    ticket = _ticket(org)
    escalation_sweep()
    [firing] = EscalationFiring.objects.filter(rule=rule)
    assert escalation_run_actions(firing_ids=[firing.pk]) == 1
    firing.refresh_from_db()
    assert firing.outcome == ["assigned", "notified 1 of 1"]
    EscalationFiring.objects.filter(pk=firing.pk).update(actions_done_at=None)  # a crash
    assert escalation_run_actions(firing_ids=[firing.pk]) == 1
    ticket.refresh_from_db()
    assert (ticket.assigned_to, ticket.team) == (agent.user, team)
    assert ticket.events.filter(kind="assigned").count() == 1
    assert Notification.objects.filter(recipient=agent.user).count() == 1
    firing.refresh_from_db()
    assert firing.actions_done_at is not None
    assert firing.outcome == ["already assigned", "notified 0 of 1"]


def test_the_demo_rule_is_seeded_once_and_matches_a_warned_ticket() -> None:
    from careinbox.demo import seed_demo
    from monitoring.escalation.demo import DEMO_RULE_NAME

    org, account = seed_demo()
    seed_demo()
    [rule] = EscalationRule.objects.filter(organization=org)
    assert rule.name == DEMO_RULE_NAME and len(rule.levels) == 2
    with time_machine.travel(T0, tick=False):
        ticket = TicketFactory(
            social_account=account, organization=org, brand=account.brand, priority=Priority.URGENT
        )
        sla_start(ticket=ticket)
    with time_machine.travel(T0 + timedelta(minutes=12), tick=False):
        sla_sweep()
        escalation_sweep()
        _run_all()
    ticket.refresh_from_db()
    assert _fired(rule, ticket) == [1]
    assert list(ticket.tags.values_list("name", flat=True)) == ["at-risk"]


def test_an_event_checks_only_its_own_ticket(
    org: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    rule = _rule(
        org, [{"kind": "priority", "at_least": Priority.HIGH}], {"after_minutes": 0, "actions": {}}
    )
    quiet = _ticket(org, priority=Priority.HIGH)
    loud = _ticket(org, priority=Priority.NORMAL)
    with django_capture_on_commit_callbacks(execute=True):
        loud.change_priority(Priority.URGENT, by=None, reason="a journalist")
    assert set(EscalationFiring.objects.filter(rule=rule).values_list("ticket_id", flat=True)) == {
        loud.pk
    }
    escalation_sweep()  # beat's pass finds the other
    assert set(EscalationFiring.objects.filter(rule=rule).values_list("ticket_id", flat=True)) == {
        loud.pk,
        quiet.pk,
    }


def test_a_rule_naming_an_unknown_condition_matches_nothing(
    org: Organization, caplog: pytest.LogCaptureFixture
) -> None:
    rule = _rule(org, [{"kind": "mood", "below": -0.5}], {"after_minutes": 0, "actions": {}})
    # A known kind whose stored params it cannot read is no better: nothing, and logged.
    garbled = _rule(
        org, [{"kind": "sentiment", "below": -0.5}], {"after_minutes": 0, "actions": {}}
    )
    _ticket(org)
    assert escalation_sweep().fired == []
    assert "matches nothing" in caplog.text and _fired(rule) == [] and _fired(garbled) == []


def test_a_promise_overdue_matches_until_it_is_kept(org: Organization, agent: Persona) -> None:
    from tickets.models import Promise, PromiseState

    conditions = [{"kind": "promise_overdue", "minutes": 15}]
    with time_machine.travel(T0, tick=False):
        promised = _ticket(org, opened_at=T0)
        other = _ticket(org, opened_at=T0)
        promise = Promise.objects.create(
            organization=org,
            ticket=promised,
            text="Call back by 11:00",
            due_at=T0 + timedelta(hours=1),
            remind_at=T0 + timedelta(minutes=30),
        )
    matched = lambda: set(matching_tickets(org.pk, conditions).values_list("pk", flat=True))  # noqa: E731
    with time_machine.travel(T0 + timedelta(minutes=70), tick=False):
        assert matched() == set()  # 10 min overdue: not yet
    with time_machine.travel(T0 + timedelta(minutes=76), tick=False):
        assert matched() == {promised.pk}
        Promise.objects.filter(pk=promise.pk).update(state=PromiseState.BROKEN, broken_at=T0)
        assert matched() == {promised.pk}  # broken and still not kept
        Promise.objects.filter(pk=promise.pk).update(
            state=PromiseState.KEPT, kept_at=T0 + timedelta(minutes=76)
        )
        assert matched() == set()
    assert other.pk not in matched()


def test_sentiment_and_a_reply_awaiting_approval(org: Organization, agent: Persona) -> None:
    from tickets.models import ApprovalRequest, Sentiment, Step

    with time_machine.travel(T0, tick=False):
        angry = _ticket(org, opened_at=T0, sentiment=Sentiment.NEGATIVE)
        calm = _ticket(org, opened_at=T0, sentiment=Sentiment.NEUTRAL)
        ApprovalRequest.objects.create(
            organization=org,
            ticket=calm,
            step=Step.ACKNOWLEDGE,
            text="We will refund you.",
            requested_by=agent.user,
        )
    negative = [{"kind": "sentiment", "is": Sentiment.NEGATIVE}]
    waiting = [{"kind": "awaiting_approval", "minutes": 30}]

    def matched(conditions: list[dict[str, Any]]) -> set[int]:
        return set(matching_tickets(org.pk, conditions).values_list("pk", flat=True))

    assert matched(negative) == {angry.pk}
    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        assert matched(waiting) == set()
    with time_machine.travel(T0 + timedelta(minutes=31), tick=False):
        assert matched(waiting) == {calm.pk}
        ApprovalRequest.objects.filter(ticket=calm).update(state="approved")
        assert matched(waiting) == set()
