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


def test_a_batch_is_delivered_in_one_transaction_and_batch_handlers_run_once(
    org: Organization, seen: list
) -> None:
    batches: list[list[int]] = []

    def one(event: TicketEvent) -> None:
        raise AssertionError("a batch of several goes to the batch handler")

    def many(batch: list[TicketEvent]) -> None:
        batches.append(sorted(event.ticket_id for event in batch))

    events.subscribe(one, kinds=[EventKind.OPENED], batch=many)
    try:
        tickets = [_ticket(org) for _ in range(3)]
        with transaction.atomic(), events.published_together():
            recorded = [ticket.record(EventKind.OPENED) for ticket in tickets]
        # The per-event handlers ran per event, in order; the batch handler once, after them.
        assert seen == [(EventKind.OPENED, ticket.pk) for ticket in tickets]
        assert batches == [sorted(ticket.pk for ticket in tickets)]
        assert (
            TicketEvent.objects.filter(
                pk__in=[event.pk for event in recorded], dispatched_at__isnull=True
            ).count()
            == 0
        )
        assert SlaTimer.objects.filter(ticket__in=tickets).count() == 3
    finally:
        events._subscriptions[:] = [s for s in events._subscriptions if s.handler is not one]


def test_a_failing_batch_handler_is_retried_per_event_and_only_its_failures_wait(
    org: Organization, seen: list
) -> None:
    poisoned: set[int] = set()

    def one(event: TicketEvent) -> None:
        if event.ticket_id in poisoned:
            raise ConnectionError("this ticket's endpoint is down")

    def many(batch: list[TicketEvent]) -> None:
        for event in batch:
            one(event)

    events.subscribe(one, kinds=[EventKind.OPENED], batch=many)
    try:
        good, bad = _ticket(org), _ticket(org)
        poisoned.add(bad.pk)
        with transaction.atomic(), events.published_together():
            kept = good.record(EventKind.OPENED)
            waiting = bad.record(EventKind.OPENED)
        kept.refresh_from_db()
        waiting.refresh_from_db()
        assert kept.dispatched_at is not None
        assert waiting.dispatched_at is None  # left for dispatch_pending
        # The other handlers ran once each for both, the failure rolled back alone.
        assert seen == [(EventKind.OPENED, good.pk), (EventKind.OPENED, bad.pk)]
        assert SlaTimer.objects.filter(ticket__in=[good, bad]).count() == 2
    finally:
        events._subscriptions[:] = [s for s in events._subscriptions if s.handler is not one]


def test_batch_handlers_run_in_the_order_they_subscribed_whichever_event_came_first(
    org: Organization, seen: list
) -> None:
    """The roll-ups (subscribed after the SLA check) must see what the check changed, even in a
    delivery whose first event only the later handler wants."""
    ran: list[str] = []

    def early(event: TicketEvent) -> None:
        raise AssertionError("a delivery goes to the batch handler")

    def early_batch(batch: list[TicketEvent]) -> None:
        ran.append("early")

    def late(event: TicketEvent) -> None:
        raise AssertionError("a delivery goes to the batch handler")

    def late_batch(batch: list[TicketEvent]) -> None:
        ran.append("late")

    events.subscribe(early, kinds=[EventKind.STEP_REOPENED], batch=early_batch)
    events.subscribe(late, kinds=[EventKind.OPENED, EventKind.STEP_REOPENED], batch=late_batch)
    try:
        ticket = _ticket(org)
        with transaction.atomic(), events.published_together():
            ticket.record(EventKind.OPENED)  # only the later handler wants this one
            ticket.record(EventKind.STEP_REOPENED)
        assert ran == ["early", "late"]
    finally:
        events._subscriptions[:] = [
            s for s in events._subscriptions if s.handler not in (early, late)
        ]
