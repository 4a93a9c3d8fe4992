"""The event seam: events reach the handlers other apps register only once their transaction
commits, at least once, and handlers are idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from careinbox.accounts.models import Organization
from monitoring.models import SlaEventKind, SlaTimer
from tests.factories import TicketFactory
from tickets import events
from tickets.models import EventKind, Ticket, TicketEvent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def seen() -> Iterator[list[tuple[str, int]]]:
    calls: list[tuple[str, int]] = []

    def remember(event: TicketEvent) -> None:
        calls.append((event.kind, event.ticket_id))

    events.subscribe(remember, kinds=[EventKind.OPENED, EventKind.STEP_REOPENED])
    yield calls
    events._subscriptions[:] = [s for s in events._subscriptions if s.handler is not remember]


def _ticket(org: Organization) -> Ticket:
    return TicketFactory(social_account__brand__organization=org)


def test_handlers_run_after_commit_not_before(org: Organization, seen: list) -> None:
    ticket = _ticket(org)
    with transaction.atomic():
        event = ticket.record(EventKind.OPENED)
        assert seen == []  # not yet: the transaction may still roll back
    assert seen == [(EventKind.OPENED, ticket.pk)]
    event.refresh_from_db()
    assert event.dispatched_at is not None
    # The SLA timer was started by monitoring's handler, from the event alone.
    assert SlaTimer.objects.filter(ticket=ticket).count() == 1


def test_a_rolled_back_event_reaches_no_handler(org: Organization, seen: list) -> None:
    ticket = _ticket(org)
    with pytest.raises(RuntimeError), transaction.atomic():
        ticket.record(EventKind.OPENED)
        raise RuntimeError("the service failed after recording")
    assert seen == []
    assert not TicketEvent.objects.exists()


def test_an_event_nobody_listens_to_is_dispatched_as_written(org: Organization) -> None:
    event = _ticket(org).record(EventKind.MESSAGE_RECEIVED)
    event.refresh_from_db()
    assert event.dispatched_at is not None


def test_a_failing_handler_leaves_the_event_for_the_sweep_and_others_still_run(
    org: Organization, seen: list
) -> None:
    broken = {"on": True}

    def flaky(event: TicketEvent) -> None:
        if broken["on"]:
            raise ConnectionError("webhook endpoint down")

    events.subscribe(flaky, kinds=[EventKind.OPENED])
    try:
        ticket = _ticket(org)
        event = ticket.record(EventKind.OPENED)
        assert seen == [(EventKind.OPENED, ticket.pk)]  # the other handler ran
        event.refresh_from_db()
        assert event.dispatched_at is None
        assert events.dispatch_pending() == 0  # too fresh: its own delivery may still run
        TicketEvent.objects.filter(pk=event.pk).update(
            recorded_at=timezone.now() - timedelta(minutes=1)
        )
        broken["on"] = False
        assert events.dispatch_pending() == 1
        event.refresh_from_db()
        assert event.dispatched_at is not None
        # Delivered twice to the handlers that had succeeded: idempotent, one timer.
        assert SlaTimer.objects.filter(ticket=ticket).count() == 1
    finally:
        events._subscriptions[:] = [s for s in events._subscriptions if s.handler is not flaky]


def test_a_lost_delivery_is_made_by_the_sweep(org: Organization) -> None:
    """The process died between commit and delivery: the event waits undispatched."""
    ticket = _ticket(org)
    event = ticket.record(EventKind.OPENED)
    SlaTimer.objects.all().delete()
    TicketEvent.objects.filter(pk=event.pk).update(
        dispatched_at=None, recorded_at=timezone.now() - timedelta(minutes=1)
    )
    assert events.dispatch_pending() == 1
    assert SlaTimer.objects.filter(ticket=ticket).count() == 1


def test_the_sweep_publishes_its_bulk_events(org: Organization, seen: list) -> None:
    from monitoring.services import sla_sweep_breaches

    breached: list[int] = []

    def on_breach(event: TicketEvent) -> None:
        breached.append(event.ticket_id)

    events.subscribe(on_breach, kinds=[SlaEventKind.SLA_BREACHED])
    try:
        ticket = TicketFactory(social_account__brand__organization=org)
        ticket.record(EventKind.OPENED)  # monitoring starts the 60-minute timer
        # Two hours on (an overdue timer would be breached by the check after its own event).
        assert sla_sweep_breaches(now=timezone.now() + timedelta(hours=2)) == 1
        assert breached == [ticket.pk]
    finally:
        events._subscriptions[:] = [s for s in events._subscriptions if s.handler is not on_breach]
