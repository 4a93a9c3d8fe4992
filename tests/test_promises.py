"""Promises: recorded with a due time, the ticket cannot close while one is open, a reminder
before it is due, broken once due and unkept, kept by the agent; every change an event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.models import Organization
from careinbox.notifications.models import Notification
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.models import (
    EventKind,
    OutboxItem,
    Promise,
    PromiseState,
    SkipReason,
    Status,
    Step,
    StepError,
    Ticket,
)
from tickets.services import ticket_take_step
from tickets.services.promises import promise_keep, promise_make, promise_sweep
from tickets.services.teamwork import TeamworkError, ticket_close_without_close_out


@pytest.fixture
def ticket(agent: Persona) -> Ticket:
    ticket = TicketFactory(
        social_account__brand__organization=agent.organization, assigned_to=agent.user
    )
    InboundMessageFactory(ticket=ticket)
    return ticket


def _promise(ticket: Ticket, agent: Persona, hours: float = 2, **kwargs: object) -> Promise:
    return promise_make(
        ticket=ticket,
        by=agent.user,
        text=kwargs.pop("text", "Call back by 17:00"),  # type: ignore[arg-type]
        due_at=timezone.now() + timedelta(hours=hours),
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_promise_is_recorded_with_its_reminder_time(ticket: Ticket, agent: Persona) -> None:
    promise = _promise(ticket, agent)
    promise.refresh_from_db()
    assert promise.state == PromiseState.OPEN and promise.made_by == agent.user
    assert promise.due_at - promise.remind_at == timedelta(minutes=30)  # the default lead
    event = ticket.events.get(kind=EventKind.PROMISE_MADE)
    assert event.actor == agent.user and event.data["promise_id"] == promise.pk
    later = _promise(ticket, agent, hours=0.2, remind_before=timedelta(hours=1))
    assert later.remind_at <= timezone.now()  # the lead is longer than the time left: at once


@pytest.mark.parametrize(
    ("text", "due_in", "message"),
    [
        ("  ", timedelta(hours=1), "Say what was promised"),
        ("x" * 301, timedelta(hours=1), "at most 300"),
        ("Refund", timedelta(minutes=-1), "has passed already"),
    ],
)
def test_bad_promises_are_refused_and_nothing_is_kept(
    ticket: Ticket, agent: Persona, text: str, due_in: timedelta, message: str
) -> None:
    with pytest.raises(TeamworkError, match=message):
        promise_make(ticket=ticket, by=agent.user, text=text, due_at=timezone.now() + due_in)
    assert not Promise.objects.exists()
    assert not ticket.events.exists()


def test_the_ticket_cannot_close_while_a_promise_is_open(ticket: Ticket, agent: Persona) -> None:
    Ticket.objects.filter(pk=ticket.pk).update(status=Status.RESOLVED)
    ticket.refresh_from_db()
    promise = _promise(ticket, agent, text="Refund within 3 days")
    with pytest.raises(StepError, match="Refund within 3 days"):
        ticket_take_step(ticket=ticket, step=Step.CLOSE_OUT, by=agent.user, text="All sorted!")
    with pytest.raises(StepError, match="promise is still open"):
        ticket_close_without_close_out(ticket=ticket, by=agent.user, reason=SkipReason.SPAM)
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED and not OutboxItem.objects.exists()

    promise_keep(ticket=ticket, promise_id=promise.pk, by=agent.user)
    promise.refresh_from_db()
    assert promise.state == PromiseState.KEPT and promise.kept_by == agent.user
    assert ticket.events.get(kind=EventKind.PROMISE_KEPT).actor == agent.user
    ticket_take_step(ticket=ticket, step=Step.CLOSE_OUT, by=agent.user, text="All sorted!")
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    with pytest.raises(TeamworkError, match="closed"):
        _promise(ticket, agent)


def test_the_sweep_reminds_once_then_marks_broken_once(ticket: Ticket, agent: Persona) -> None:
    promise = _promise(ticket, agent, hours=1)
    now = timezone.now()
    assert promise_sweep(now=now).reminded == 0  # 60 minutes ahead, lead 30: not yet
    at_lead = promise.remind_at + timedelta(seconds=1)
    assert promise_sweep(now=at_lead).reminded == 1
    assert promise_sweep(now=at_lead + timedelta(minutes=1)).reminded == 0
    reminder = Notification.objects.get(kind="promise", recipient=agent.user)
    assert "Call back by 17:00" in reminder.body
    assert reminder.url.endswith(f"#promise-{promise.pk}")
    assert ticket.events.filter(kind=EventKind.PROMISE_REMINDER).count() == 1

    past_due = promise.due_at + timedelta(minutes=1)
    assert promise_sweep(now=past_due).broken == 1
    assert promise_sweep(now=past_due).broken == 0
    promise.refresh_from_db()
    assert promise.state == PromiseState.BROKEN and promise.broken_at == promise.due_at
    broken = ticket.events.get(kind=EventKind.PROMISE_BROKEN)
    assert broken.at == promise.due_at
    assert Notification.objects.filter(title__startswith="Promise broken").count() == 1


def test_a_broken_promise_can_be_kept_late_and_no_longer_blocks_closing(
    ticket: Ticket, agent: Persona
) -> None:
    promise = _promise(ticket, agent, hours=1)
    promise_sweep(now=promise.due_at + timedelta(seconds=1))
    Ticket.objects.filter(pk=ticket.pk).update(status=Status.RESOLVED)
    ticket.refresh_from_db()
    ticket.check_step(Step.CLOSE_OUT)  # broken is not open: it does not hold the ticket
    promise_keep(ticket=ticket, promise_id=promise.pk, by=agent.user)
    promise.refresh_from_db()
    assert promise.kept_late
    assert ticket.events.get(kind=EventKind.PROMISE_KEPT).data["late"] is True
    with pytest.raises(TeamworkError, match="kept already"):
        promise_keep(ticket=ticket, promise_id=promise.pk, by=agent.user)


def test_promise_views_read_the_due_time_in_the_orgs_time_zone(
    ticket: Ticket, agent: Persona, outsider: Persona
) -> None:
    Organization.objects.filter(pk=agent.organization.pk).update(time_zone="Europe/Berlin")
    tomorrow = timezone.now().astimezone(UTC) + timedelta(days=1)
    local = tomorrow.replace(hour=17, minute=0, second=0, microsecond=0, tzinfo=None)
    client = agent.client()
    url = reverse("tickets:promise", args=[ticket.pk])
    response = client.post(
        url,
        {
            "promise": "Call back",
            "due_at": local.strftime("%Y-%m-%dT%H:%M"),
            "remind_minutes_before": "15",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200, response.content.decode()[:300]
    promise = Promise.objects.get()
    # 17:00 in Berlin (winter, UTC+1) is 16:00 UTC.
    assert promise.due_at == datetime(local.year, local.month, local.day, 16, 0, tzinfo=UTC)
    assert promise.due_at - promise.remind_at == timedelta(minutes=15)
    assert f'id="promise-{promise.pk}"' in response.content.decode()

    bad = client.post(url, {"promise": "x", "due_at": "tomorrow", "remind_minutes_before": "5"})
    assert bad.status_code == 422 and "Due time" in bad.content.decode()
    assert outsider.client().post(url, {"promise": "x"}).status_code == 404
    kept = reverse("tickets:promise-kept", args=[ticket.pk, promise.pk])
    assert outsider.client().post(kept).status_code == 404
    assert client.post(kept).status_code == 302
    promise.refresh_from_db()
    assert promise.state == PromiseState.KEPT
