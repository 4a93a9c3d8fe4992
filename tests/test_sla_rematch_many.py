"""Priority changes rematched together (``sla_rematch_many``, the many form of monitoring's
``priority_changed`` handler) end exactly as rematching them one by one (``sla_rematch``):
the same timers, due times, breaches, warnings, started and stopped targets, events and the
tickets' due and risk times, over tickets that each change at their own instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from careinbox.accounts.models import Organization
from monitoring.calendars import BusinessCalendar
from monitoring.models import Metric, SlaPolicy, SlaTimer, TimerState
from monitoring.services import (
    Rematch,
    sla_pause,
    sla_rematch,
    sla_rematch_many,
    sla_reply_delivered,
    sla_start,
)
from tests.factories import InboundMessageFactory, OrganizationFactory, TicketFactory, UserFactory
from tickets import events
from tickets.models import (
    Direction,
    EventKind,
    Message,
    MessageKind,
    Priority,
    Step,
    Ticket,
    TicketEvent,
)

OFFICE = BusinessCalendar.weekly(
    "Europe/London",
    {"mon-fri": "09:00-17:00"},
    holiday_country="GB",
    holiday_subdivision="ENG",
    closed_dates=[date(2026, 12, 29)],
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _policy(org: Organization, calendar: BusinessCalendar, **fields: Any) -> SlaPolicy:
    return SlaPolicy.objects.create(
        organization=org, calendar=calendar.to_config(), time_zone=calendar.time_zone, **fields
    )


def _reply(ticket: Ticket, at: datetime, step: str, *, public: bool, text: str) -> None:
    """A brand reply delivered at ``at``, as the outbox records it."""
    message = Message.objects.create(
        organization=ticket.organization,
        ticket=ticket,
        platform=ticket.platform,
        kind=MessageKind.REPLY if public else MessageKind.DM,
        direction=Direction.OUTBOUND,
        is_public=public,
        external_id=f"r-{ticket.pk}-{step}",
        step=step,
        text=text,
        created_at=at,
    )
    with time_machine.travel(at, tick=False):
        ticket.record(EventKind.REPLY_SENT, message=message, at=at)
    sla_reply_delivered(ticket=ticket, message=message, at=at)


def _world(org: Organization) -> list[tuple[Ticket, datetime, int | None]]:
    """One organisation's tickets, each with the priority it changes to and when: every path
    of a rematch (a breach first, a warning first, stopped and started targets, paused clocks,
    a reopen, a breached timer whose policy was deleted, nothing to change) at instants
    minutes apart, so a rematch at another ticket's instant would breach or warn wrongly."""
    _policy(
        org,
        BusinessCalendar.always_open("Europe/London"),
        name="Urgent 24/7",
        position=1,
        priority=Priority.URGENT,
        first_response_minutes=15,
        next_response_minutes=30,
        take_offline_minutes=20,
        resolution_minutes=240,
        warning_percent=50,
    )
    office = _policy(
        org,
        OFFICE,
        name="Office",
        position=2,
        first_response_minutes=60,
        next_response_minutes=120,
        take_offline_minutes=90,
        close_out_minutes=600,
        warning_percent=75,
    )
    gone = _policy(org, OFFICE, name="Gone", position=3, priority=Priority.LOW)
    brand = TicketFactory(social_account__brand__organization=org).social_account
    agent = UserFactory(username=f"agent-of-{org.pk}")

    def ticket(opened: str, **fields: Any) -> Ticket:
        made = TicketFactory(
            social_account=brand,
            organization=org,
            brand=brand.brand,
            opened_at=utc(opened),
            **fields,
        )
        sla_start(ticket=made)
        return made

    world: list[tuple[Ticket, datetime, int | None]] = []
    # Monday 23 November 2026, London on GMT: office hours 09:00-17:00 UTC.
    # 1. Past its first-response due time (10:00) when it turns urgent at 10:30: breached at
    #    10:00 first, then the urgent targets it lacked start from the post.
    overdue = ticket("2026-11-23 09:00")
    world.append((overdue, utc("2026-11-23 10:30"), None))
    # 2. Past its warning (09:45) but not due (10:00) at 09:50: warned, then retargeted.
    warned = ticket("2026-11-23 09:00")
    world.append((warned, utc("2026-11-23 09:50"), None))
    # 3. Urgent, lowered to normal at 09:05: its resolution target stops (the office has none),
    #    its close-out starts.
    lowered = ticket("2026-11-23 09:00", priority=Priority.URGENT)
    world.append((lowered, utc("2026-11-23 09:05"), Priority.NORMAL))
    # 4. Acknowledged, then a DM with a question: its clocks are paused when it turns urgent;
    #    take offline runs from the acknowledgement.
    paused = ticket("2026-11-23 09:30")
    _reply(paused, utc("2026-11-23 09:40"), Step.ACKNOWLEDGE, public=True, text="On it")
    _reply(paused, utc("2026-11-23 09:50"), Step.TAKE_OFFLINE, public=False, text="Order no?")
    sla_pause(ticket=paused, at=utc("2026-11-23 09:50"))
    world.append((paused, utc("2026-11-23 10:10"), None))
    # 5. Replied in public, then the customer wrote again: the next response is owed from that
    #    message; it turns urgent at 11:00.
    answered = ticket("2026-11-23 09:00")
    _reply(answered, utc("2026-11-23 09:20"), Step.ACKNOWLEDGE, public=True, text="Sorry!")
    for minute in (25, 35):
        InboundMessageFactory(ticket=answered, created_at=utc(f"2026-11-23 10:{minute}"))
    world.append((answered, utc("2026-11-23 11:00"), None))
    # 6. Reopened at 12:00 (a customer wrote after its close): the case clocks run from the
    #    reopen.
    reopened = ticket("2026-11-23 09:00")
    with time_machine.travel(utc("2026-11-23 12:00"), tick=False):
        reopened.record(EventKind.REOPENED, at=utc("2026-11-23 12:00"))
    world.append((reopened, utc("2026-11-23 12:30"), None))
    # 7. A breached timer whose policy was deleted: it moves to the policy the ticket follows.
    orphan = ticket("2026-11-23 09:00", priority=Priority.LOW)
    SlaTimer.objects.filter(ticket=orphan).update(
        state=TimerState.BREACHED, breached_at=utc("2026-11-23 10:00"), policy=None
    )
    world.append((orphan, utc("2026-11-23 10:40"), Priority.NORMAL))
    # 8. Due at 10:40, rematched at 10:35 (before 1.'s instant, after 7.'s): not breached yet,
    #    but warned (its warning was 10:25).
    early = ticket("2026-11-23 09:40")
    world.append((early, utc("2026-11-23 10:35"), Priority.HIGH))
    # 9. Changed by an agent to a priority of the same policy: nothing to change but the actor.
    same = ticket("2026-11-23 09:00")
    world.append((same, utc("2026-11-23 09:30"), Priority.HIGH))
    # 10. Urgent by an agent, on the office policy until now.
    by_agent = ticket("2026-11-23 14:00")
    world.append((by_agent, utc("2026-11-23 14:20"), -agent.pk))
    gone.delete()  # after 7. (and any ticket) matched it
    assert office.pk
    return world


def _change(world: list[tuple[Ticket, datetime, int | None]]) -> list[Rematch]:
    """Each ticket's priority changed (urgent unless said), as ``change_priority`` records it."""
    rematches = []
    for ticket, at, to in world:
        actor_id = -to if to is not None and to < 0 else None
        level = Priority.URGENT if to is None or to < 0 else to
        Ticket.objects.filter(pk=ticket.pk).update(priority=level)
        rematches.append(Rematch(ticket.pk, at, EventKind.PRIORITY_CHANGED, actor_id))
    return rematches


def _state(org: Organization) -> list[Any]:
    """Everything a rematch may change, per ticket in the order they were made, without ids."""
    out = []
    for ticket in Ticket.objects.filter(organization=org).order_by("pk"):
        timers = sorted(
            (
                timer.metric,
                timer.state,
                timer.policy.name if timer.policy else None,
                timer.target_minutes,
                timer.started_at,
                timer.due_at,
                timer.warn_at,
                timer.warned_at,
                timer.breached_at,
                timer.paused_at,
                timer.paused_for,
                timer.fulfilled_at,
                timer.message.created_at if timer.message else None,
            )
            for timer in SlaTimer.objects.filter(ticket=ticket).select_related("policy", "message")
        )
        # In time order; events of one instant by kind and data: one rematch's changes come
        # in the order the database hands its timers over, which SQL leaves undefined.
        history = sorted(
            (
                (event.at, event.kind, bool(event.actor_id), event.data)
                for event in TicketEvent.objects.filter(ticket=ticket)
            ),
            key=lambda row: (row[0], row[1], repr(sorted(row[3].items()))),
        )
        out.append((ticket.priority, ticket.sla_due_at, ticket.sla_risk_at, timers, history))
    return out


def _both() -> tuple[Organization, Organization, list[Rematch], list[Rematch]]:
    one_by_one, together = OrganizationFactory(), OrganizationFactory()
    return one_by_one, together, _change(_world(one_by_one)), _change(_world(together))


@pytest.mark.django_db
def test_priority_changes_rematched_together_end_as_one_by_one() -> None:
    one_by_one, together, each, batch = _both()
    assert _state(one_by_one) == _state(together)  # the same world before the change
    for rematch in each:
        actor = UserFactory._meta.model.objects.filter(pk=rematch.actor_id).first()
        ticket = Ticket.objects.get(pk=rematch.ticket_id)
        sla_rematch(ticket=ticket, at=rematch.at, cause=rematch.cause, actor=actor)
    sla_rematch_many(batch)
    expected, got = _state(one_by_one), _state(together)
    for n, (want, have) in enumerate(zip(expected, got, strict=True), start=1):
        assert have == want, f"ticket {n} of the world"
    # The world does what it says: a breach first, a warning first, stopped and started
    # targets, the orphan adopted, an agent's change recorded with its actor.
    kinds = [kind for _p, _d, _r, _t, history in got for _at, kind, *_rest in history]
    for kind in ("sla_breached", "sla_warning", "sla_due_changed", "sla_stopped"):
        assert kind in kinds
    assert not SlaTimer.objects.filter(ticket__organization=together, policy=None).exists()
    started = {
        timer.metric
        for timer in SlaTimer.objects.filter(
            ticket__organization=together, policy__name="Urgent 24/7"
        )
    }
    assert {Metric.RESOLUTION, Metric.NEXT_RESPONSE} <= started
    assert any(actor for *_rest, history in got for _a, _k, actor, _d in history)


@pytest.mark.django_db
def test_delivered_again_it_ends_as_one_by_one_delivered_again() -> None:
    """Delivery is at least once: a second rematch of the same changes (the first one's new
    due times may be past by then, and breach) ends as a second one by one."""
    one_by_one, together, each, batch = _both()
    for _round in range(2):
        for rematch in each:
            ticket = Ticket.objects.get(pk=rematch.ticket_id)
            sla_rematch(ticket=ticket, at=rematch.at, cause=rematch.cause)
        sla_rematch_many([rematch._replace(actor_id=None) for rematch in batch])
    assert _state(one_by_one) == _state(together)


def _recorded(world: list[tuple[Ticket, datetime, int | None]]) -> list[int]:
    """Each ticket's priority changed as ``change_priority`` records it: the events' ids."""
    ids = []
    for rematch in _change(world):
        with time_machine.travel(rematch.at, tick=False):
            ticket = Ticket.objects.get(pk=rematch.ticket_id)
            ids.append(ticket.record(EventKind.PRIORITY_CHANGED, before=3, after=1).pk)
    return ids


@pytest.mark.django_db
def test_priority_changes_delivered_together_end_as_delivered_one_at_a_time() -> None:
    """Through the event seam (its many form, and every other handler of the kind)."""
    one_by_one, together = OrganizationFactory(), OrganizationFactory()
    alone, batch = _recorded(_world(one_by_one)), _recorded(_world(together))
    for event_id in alone:
        assert events.dispatch([event_id]) == 1
    assert events.dispatch(batch) == len(batch)
    assert _state(together) == _state(one_by_one)


@pytest.mark.django_db
def test_priority_changes_delivered_together_cost_the_same_for_three_or_ten() -> None:
    """A delivery's ``priority_changed`` events are rematched in one many call: a fixed number
    of statements whatever their number (one by one it was about a dozen per ticket)."""
    counts = []
    for size in (3, 10):
        org = OrganizationFactory()
        _policy(
            org,
            BusinessCalendar.always_open("UTC"),
            name="Urgent",
            position=1,
            priority=Priority.URGENT,
            first_response_minutes=15,
            resolution_minutes=240,
        )
        _policy(org, OFFICE, name="Office", position=2, first_response_minutes=60)
        brand = TicketFactory(social_account__brand__organization=org).social_account
        world = []
        for n in range(size):
            ticket = TicketFactory(
                social_account=brand,
                organization=org,
                brand=brand.brand,
                opened_at=utc("2026-11-23 09:00"),
            )
            sla_start(ticket=ticket)
            world.append((ticket, utc("2026-11-23 09:10") + n * timedelta(seconds=7), None))
        ids = _recorded(world)
        with CaptureQueriesContext(connection) as queries:
            assert events.dispatch(ids) == size
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


@pytest.mark.django_db
def test_one_rematch_per_ticket() -> None:
    twice = Rematch(1, utc("2026-11-23 10:00"), EventKind.PRIORITY_CHANGED)
    with pytest.raises(ValueError):
        sla_rematch_many([twice, twice])
