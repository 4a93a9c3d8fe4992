"""SLA timers driven by ticket events alone, as in production: the handlers run after commit.

Transactional, so each ``Ticket.record`` commits and its event reaches monitoring's handlers.
Time is frozen and moved with time-machine, so every due time and figure is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from careinbox.accounts.models import Organization
from channels_social.models import SocialAccount
from channels_social.services import account_poll
from monitoring.calendars import BusinessCalendar
from monitoring.handlers import REOPENED
from monitoring.models import Metric, SlaEventKind, SlaPolicy, SlaTimer, TimerState
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory, next_platform_id
from tests.sandbox_fixtures import XSandbox
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
from tickets.services import outbox_send, ticket_take_step

pytestmark = pytest.mark.django_db(transaction=True)

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _every_target(org: Organization, **fields: Any) -> SlaPolicy:
    calendar = fields.pop("calendar", BusinessCalendar.always_open("UTC"))
    values = {
        "name": "Care",
        "first_response_minutes": 30,
        "next_response_minutes": 20,
        "take_offline_minutes": 60,
        "resolution_minutes": 8 * 60,
        "close_out_minutes": 24 * 60,
        **fields,
    }
    return SlaPolicy.objects.create(
        organization=org, calendar=calendar.to_config(), time_zone=calendar.time_zone, **values
    )


def _open(org: Organization, text: str = "My parcel is lost @AcmeCare") -> Ticket:
    now = timezone.now()
    ticket = TicketFactory(social_account__brand__organization=org, opened_at=now)
    root = InboundMessageFactory(ticket=ticket, text=text, created_at=now)
    Ticket.objects.filter(pk=ticket.pk).update(root_message=root)
    ticket.record(EventKind.OPENED, at=now)
    ticket.record(EventKind.MESSAGE_RECEIVED, message=root, at=now)
    return ticket


def _customer_writes(ticket: Ticket, text: str, *, public: bool = True) -> Message:
    message = InboundMessageFactory(
        ticket=ticket,
        text=text,
        is_public=public,
        kind=MessageKind.POST if public else MessageKind.DM,
        created_at=timezone.now(),
    )
    ticket.record(EventKind.MESSAGE_RECEIVED, message=message, at=message.created_at)
    return message


def _deliver(ticket: Ticket, step: str, text: str) -> Message:
    """The step taken and its reply accepted by the platform now (the outbox's outcome)."""
    ticket.refresh_from_db()
    public = ticket.check_step(step)
    message = Message.objects.create(
        organization=ticket.organization,
        ticket=ticket,
        platform=ticket.platform,
        kind=MessageKind.REPLY if public else MessageKind.DM,
        direction=Direction.OUTBOUND,
        is_public=public,
        external_id=next_platform_id(),
        step=step,
        text=text,
        created_at=timezone.now(),
    )
    ticket.take_step(step, by=None, message=message)  # type: ignore[arg-type]
    ticket.record(EventKind.REPLY_SENT, message=message, at=timezone.now())
    return message


def _timers(ticket: Ticket, metric: str) -> list[SlaTimer]:
    return list(SlaTimer.objects.filter(ticket=ticket, metric=metric).order_by("started_at", "pk"))


def _state(ticket: Ticket) -> dict[str, str]:
    """The latest timer's state per metric."""
    return {
        metric: timers[-1].state for metric in Metric.values if (timers := _timers(ticket, metric))
    }


def test_a_ticket_walks_its_targets_from_the_events_alone(
    org: Organization, time_machine: Any
) -> None:
    time_machine.move_to(MONDAY, tick=False)
    _every_target(org)
    ticket = _open(org)
    assert _state(ticket) == {
        Metric.FIRST_RESPONSE: TimerState.RUNNING,
        Metric.RESOLUTION: TimerState.RUNNING,
        Metric.CLOSE_OUT: TimerState.RUNNING,
    }  # the root post is no "next" message: the brand has not replied yet
    ticket.refresh_from_db()
    assert ticket.sla_due_at == MONDAY + timedelta(minutes=30)

    time_machine.move_to(MONDAY + timedelta(minutes=12), tick=False)
    _deliver(ticket, Step.ACKNOWLEDGE, "So sorry! We're on it.")
    [first] = _timers(ticket, Metric.FIRST_RESPONSE)
    assert first.state == TimerState.MET and first.elapsed == timedelta(minutes=12)
    [take_offline] = _timers(ticket, Metric.TAKE_OFFLINE)  # from the acknowledgement
    assert take_offline.due_at == MONDAY + timedelta(minutes=72)

    # Two customer messages before the next reply: one next-response timer, from the first.
    time_machine.move_to(MONDAY + timedelta(minutes=20), tick=False)
    asked = _customer_writes(ticket, "Any news? It was a gift")
    time_machine.move_to(MONDAY + timedelta(minutes=25), tick=False)
    _customer_writes(ticket, "Hello??")
    [waiting] = _timers(ticket, Metric.NEXT_RESPONSE)
    assert waiting.message == asked and waiting.due_at == MONDAY + timedelta(minutes=40)

    # The DM that takes it offline asks a question: it answers the customer and meets take
    # offline; resolution and close-out wait on the customer.
    time_machine.move_to(MONDAY + timedelta(minutes=30), tick=False)
    _deliver(ticket, Step.TAKE_OFFLINE, "Could you DM us your order number?")
    assert _state(ticket) == {
        Metric.FIRST_RESPONSE: TimerState.MET,
        Metric.NEXT_RESPONSE: TimerState.MET,
        Metric.TAKE_OFFLINE: TimerState.MET,
        Metric.RESOLUTION: TimerState.PAUSED,
        Metric.CLOSE_OUT: TimerState.PAUSED,
    }
    paused = ticket.events.get(kind=SlaEventKind.SLA_PAUSED)
    assert paused.data["metrics"] == ["close_out", "resolution"]
    ticket.refresh_from_db()
    assert ticket.sla_due_at is None  # nothing is counting: it sinks in the inbox

    # The customer answers two hours later: the clocks resume, two hours later due.
    time_machine.move_to(MONDAY + timedelta(hours=2, minutes=30), tick=False)
    _customer_writes(ticket, "It is 12345", public=False)
    [resolution] = _timers(ticket, Metric.RESOLUTION)
    assert resolution.state == TimerState.RUNNING
    assert resolution.paused_for == timedelta(hours=2)
    assert resolution.due_at == MONDAY + timedelta(hours=10)
    assert ticket.events.filter(kind=SlaEventKind.SLA_RESUMED).count() == 1
    assert len(_timers(ticket, Metric.NEXT_RESPONSE)) == 2  # a new message awaits a reply

    time_machine.move_to(MONDAY + timedelta(hours=2, minutes=40), tick=False)
    _deliver(ticket, Step.RESOLVE, "A new parcel is on its way, arriving Wednesday.")
    time_machine.move_to(MONDAY + timedelta(hours=4), tick=False)
    _deliver(ticket, Step.CLOSE_OUT, "All sorted by DM. Thanks for your patience!")
    assert set(_state(ticket).values()) == {TimerState.MET}
    [resolution] = _timers(ticket, Metric.RESOLUTION)
    assert resolution.business_time == timedelta(minutes=40)  # 2 h 40, 2 h of it paused
    ticket.refresh_from_db()
    assert ticket.sla_due_at is None and ticket.closed_at is not None

    # Reopened the next day: resolution and close-out start again; history stays.
    time_machine.move_to(MONDAY + timedelta(days=1), tick=False)
    ticket.record(REOPENED, reason="The new parcel is damaged too")
    ticket.record(REOPENED, reason="The new parcel is damaged too")  # a second reopen event
    resolutions = _timers(ticket, Metric.RESOLUTION)
    assert [t.state for t in resolutions] == [TimerState.MET, TimerState.RUNNING]
    assert resolutions[1].started_at == MONDAY + timedelta(days=1)
    assert [t.state for t in _timers(ticket, Metric.CLOSE_OUT)] == [
        TimerState.MET,
        TimerState.RUNNING,
    ]
    assert len(_timers(ticket, Metric.FIRST_RESPONSE)) == 1

    # Every event delivered again changes nothing (handlers are idempotent).
    before = list(SlaTimer.objects.filter(ticket=ticket).order_by("pk").values())
    TicketEvent.objects.filter(ticket=ticket).update(
        dispatched_at=None, recorded_at=timezone.now() - timedelta(minutes=5)
    )
    events.dispatch_pending()
    assert list(SlaTimer.objects.filter(ticket=ticket).order_by("pk").values()) == before


def test_a_reply_that_never_went_out_fulfils_nothing(org: Organization, time_machine: Any) -> None:
    time_machine.move_to(MONDAY, tick=False)
    _every_target(org)
    ticket = _open(org)
    ticket.refresh_from_db()
    message = Message.objects.create(
        organization=org,
        ticket=ticket,
        platform=ticket.platform,
        kind=MessageKind.REPLY,
        direction=Direction.OUTBOUND,
        step=Step.ACKNOWLEDGE,
        text="Sorry!",
        created_at=timezone.now(),
    )
    ticket.take_step(Step.ACKNOWLEDGE, by=None, message=message)  # type: ignore[arg-type]
    ticket.record(EventKind.REPLY_REFUSED, message=message, error="duplicate content")
    ticket.reopen_step(Step.ACKNOWLEDGE, message=message, reason="dup", cause="reply_refused")
    [first] = _timers(ticket, Metric.FIRST_RESPONSE)
    assert first.state == TimerState.RUNNING and first.fulfilled_at is None
    assert not _timers(ticket, Metric.TAKE_OFFLINE)
    # A customer message now is not a "next" one: the brand has not replied yet.
    _customer_writes(ticket, "Hello?")
    assert not _timers(ticket, Metric.NEXT_RESPONSE)


def test_any_ticket_event_checks_that_tickets_timers_at_once(
    org: Organization, time_machine: Any
) -> None:
    time_machine.move_to(MONDAY, tick=False)
    _every_target(org, warning_percent=50)
    ticket = _open(org)
    time_machine.move_to(MONDAY + timedelta(minutes=16), tick=False)
    _customer_writes(ticket, "Hello?")  # no beat sweep: the event's own check warns
    assert ticket.events.filter(kind=SlaEventKind.SLA_WARNING).count() == 1
    time_machine.move_to(MONDAY + timedelta(minutes=31), tick=False)
    _customer_writes(ticket, "Anyone there?")
    assert ticket.events.filter(kind=SlaEventKind.SLA_BREACHED).count() == 1
    [first] = _timers(ticket, Metric.FIRST_RESPONSE)
    assert first.state == TimerState.BREACHED and first.breached_at == MONDAY + timedelta(
        minutes=30
    )
    _customer_writes(ticket, "...")
    assert ticket.events.filter(kind=SlaEventKind.SLA_BREACHED).count() == 1  # once


def test_an_agents_priority_change_moves_the_due_times(
    org: Organization, time_machine: Any
) -> None:
    time_machine.move_to(MONDAY, tick=False)
    _every_target(org, name="Everyone", position=2)
    _every_target(
        org, name="Urgent", position=1, priority=Priority.URGENT, first_response_minutes=10
    )
    ticket = _open(org)
    ticket.refresh_from_db()
    time_machine.move_to(MONDAY + timedelta(minutes=2), tick=False)
    ticket.change_priority(Priority.URGENT, by=None, reason="A safety problem")
    [first] = _timers(ticket, Metric.FIRST_RESPONSE)
    assert first.due_at == MONDAY + timedelta(minutes=10) and first.policy is not None
    assert first.policy.name == "Urgent"
    ticket.refresh_from_db()
    assert ticket.sla_due_at == MONDAY + timedelta(minutes=10)
    assert ticket.sla_risk_at == MONDAY - timedelta(minutes=50)
    changed = ticket.events.filter(kind=SlaEventKind.SLA_DUE_CHANGED)
    assert {e.data["metric"] for e in changed} == {"first_response"}  # the rest: same targets
    assert ticket.events.filter(kind=EventKind.PRIORITY_CHANGED).get().data == {
        "before": Priority.NORMAL,
        "after": Priority.URGENT,
        "reason": "A safety problem",
    }


def test_a_replayed_conversation_gives_back_its_real_first_response_delay(
    agent: Persona,
    make_account: Callable[..., SocialAccount],
    x_sandbox_clean: XSandbox,
    time_machine: Any,
) -> None:
    """A real exchange's timing: the customer posted at 16:58:07 on a Friday (as X reports
    it), we saw it 9 seconds later, the agent answered at 17:41:36, and X accepted the reply
    at 17:41:39: the first reply time is 43 min 32 s, to the second, whatever the poll lag."""
    time_machine.move_to(datetime(2026, 3, 27, 16, 0, tzinfo=UTC), tick=False)
    office = BusinessCalendar.weekly("Europe/London", {"mon-fri": "09:00-17:00"})
    SlaPolicy.objects.create(
        organization=agent.organization,
        name="Office",
        first_response_minutes=60,
        calendar=office.to_config(),
        time_zone="Europe/London",
    )
    account = make_account(
        external_id="1000", username="AcmeCare", api_base_url=x_sandbox_clean.url
    )
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    x_sandbox_clean.control.post_mention(
        "AcmeCare", "2001", "jo", 4200, "Where is my parcel?", created_at="2026-03-27T16:58:07Z"
    )
    time_machine.move_to(datetime(2026, 3, 27, 16, 58, 16, tzinfo=UTC), tick=False)
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    assert ticket.opened_at == datetime(2026, 3, 27, 16, 58, 7, tzinfo=UTC)

    time_machine.move_to(datetime(2026, 3, 27, 17, 41, 36, tzinfo=UTC), tick=False)
    reply = ticket_take_step(
        ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Sorry Jo, looking now!"
    )
    time_machine.move_to(datetime(2026, 3, 27, 17, 41, 39, tzinfo=UTC), tick=False)
    outbox_send(item_id=reply.outbox.pk)
    reply.refresh_from_db()
    posted = x_sandbox_clean.control.get_tweet(reply.external_id)
    assert posted["created_at"].startswith("2026-03-27T17:41:39")  # as X reports it

    [first] = _timers(ticket, Metric.FIRST_RESPONSE)
    assert first.state == TimerState.MET
    assert first.elapsed == timedelta(minutes=43, seconds=32)
    # On the office calendar only the 1 min 53 s before 17:00 counted (GMT, 09:00-17:00).
    assert first.business_time == timedelta(minutes=1, seconds=53)
    met = ticket.events.get(kind=SlaEventKind.SLA_MET)
    assert met.data["elapsed_seconds"] == 43 * 60 + 32
    assert met.data["business_seconds"] == 113


def test_a_private_ticket_first_response_is_its_first_dm_and_a_question_pauses(
    org: Organization, time_machine: Any
) -> None:
    """A conversation begun by DM has no public thread: its first response is the first DM
    the platform accepted, and a DM that asks the customer something pauses the clocks that
    wait on them, until they write back."""
    time_machine.move_to(MONDAY, tick=False)
    _every_target(org)
    ticket = _open(org, text="Hi, my card was charged twice")
    Ticket.objects.filter(pk=ticket.pk).update(is_public=False)
    time_machine.move_to(MONDAY + timedelta(minutes=8), tick=False)
    _deliver(ticket, Step.ACKNOWLEDGE, "Sorry about that! Which card ends in which digits?")
    [first] = _timers(ticket, Metric.FIRST_RESPONSE)
    assert first.state == TimerState.MET and first.elapsed == timedelta(minutes=8)
    assert _state(ticket)[Metric.RESOLUTION] == TimerState.PAUSED
    time_machine.move_to(MONDAY + timedelta(minutes=68), tick=False)
    _customer_writes(ticket, "The one ending 4242", public=False)
    [resolution] = _timers(ticket, Metric.RESOLUTION)
    assert resolution.state == TimerState.RUNNING and resolution.paused_for == timedelta(hours=1)
    assert resolution.due_at == MONDAY + timedelta(hours=9)


def test_first_response_counts_the_first_reply_the_platform_accepted(
    agent: Persona,
    make_account: Callable[..., SocialAccount],
    x_sandbox_clean: XSandbox,
    time_machine: Any,
) -> None:
    """X refused the agent's first reply (403): that reply never reached the customer, so it
    is no first response. The second attempt X accepted is, to the second, from the post
    time as X reports it (not from when CareInbox first read it)."""
    time_machine.move_to(datetime(2026, 10, 23, 14, 0, tzinfo=UTC), tick=False)
    SlaPolicy.objects.create(
        organization=agent.organization,
        name="Berlin office",
        first_response_minutes=30,
        calendar=BusinessCalendar.weekly("Europe/Berlin", {"mon-fri": "09:00-17:00"}).to_config(),
        time_zone="Europe/Berlin",
    )
    account = make_account(
        external_id="1000", username="AcmeCare", api_base_url=x_sandbox_clean.url
    )
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    x_sandbox_clean.control.post_mention(
        "AcmeCare", "2001", "jo", 4200, "Charged twice!", created_at="2026-10-23T14:41:05Z"
    )
    time_machine.move_to(datetime(2026, 10, 23, 14, 43, 0, tzinfo=UTC), tick=False)
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()

    time_machine.move_to(datetime(2026, 10, 23, 14, 50, 0, tzinfo=UTC), tick=False)
    refused = ticket_take_step(
        ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="So sorry, checking now"
    )
    x_sandbox_clean.control.inject_faults(403)
    outbox_send(item_id=refused.outbox.pk)
    assert ticket.events.filter(kind=EventKind.REPLY_REFUSED).count() == 1
    [first] = _timers(ticket, Metric.FIRST_RESPONSE)
    assert first.state == TimerState.RUNNING  # a refused reply meets nothing

    time_machine.move_to(datetime(2026, 10, 23, 15, 2, 11, tzinfo=UTC), tick=False)
    sent = ticket_take_step(
        ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="So sorry Jo, checking now!"
    )
    time_machine.move_to(datetime(2026, 10, 23, 15, 2, 13, tzinfo=UTC), tick=False)
    outbox_send(item_id=sent.outbox.pk)
    sent.refresh_from_db()
    assert x_sandbox_clean.control.get_tweet(sent.external_id)["created_at"].startswith(
        "2026-10-23T15:02:13"
    )
    [first] = _timers(ticket, Metric.FIRST_RESPONSE)
    assert first.elapsed == timedelta(minutes=21, seconds=8)  # 14:41:05 to 15:02:13
    assert first.business_time == timedelta(minutes=18, seconds=55)  # 16:41:05-17:00 CEST
    assert first.state == TimerState.MET  # 30 business minutes: due Monday 09:11:05 CET
    assert first.due_at == datetime(2026, 10, 26, 8, 11, 5, tzinfo=UTC)


def test_a_skipped_step_and_a_close_without_close_out_stop_what_they_no_longer_owe(
    org: Organization, agent: Persona, time_machine: Any
) -> None:
    """Skipping the acknowledgement (e.g. a duplicate) stops the first-response timer; closing
    without a public close-out stops every timer; nothing breaches afterwards; all recorded."""
    from monitoring.services import sla_sweep_breaches
    from tickets.services.teamwork import ticket_close_without_close_out, ticket_skip_step

    _every_target(org)
    time_machine.move_to(MONDAY, tick=False)
    ticket = _open(org)

    def states() -> dict[str, str]:
        return dict(SlaTimer.objects.filter(ticket=ticket).values_list("metric", "state"))

    assert states()[Metric.FIRST_RESPONSE] == TimerState.RUNNING
    time_machine.move_to(MONDAY + timedelta(minutes=10), tick=False)
    ticket_skip_step(ticket=ticket, step=Step.ACKNOWLEDGE, reason="duplicate", by=agent.user)
    assert states()[Metric.FIRST_RESPONSE] == TimerState.STOPPED
    assert states()[Metric.RESOLUTION] == TimerState.RUNNING
    time_machine.move_to(MONDAY + timedelta(minutes=20), tick=False)
    ticket.refresh_from_db()
    ticket_close_without_close_out(ticket=ticket, reason="duplicate", by=agent.user)
    assert set(states().values()) == {TimerState.STOPPED}
    time_machine.move_to(MONDAY + timedelta(days=3), tick=False)
    sla_sweep_breaches()
    assert set(states().values()) == {TimerState.STOPPED}
    ticket.refresh_from_db()
    assert ticket.sla_due_at is None
    stopped = ticket.events.filter(kind=SlaEventKind.SLA_STOPPED).count()
    assert stopped == SlaTimer.objects.filter(ticket=ticket).count()
