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


def test_a_delivery_goes_in_rounds_each_ticket_s_events_in_order_and_a_many_form_once_per_round(
    org: Organization,
) -> None:
    """Each ticket's events reach the handlers in the order recorded, every handler of one
    event before the next event of the same ticket; a handler's many form gets one call per
    round (at most one event per ticket), in one savepoint, instead of a call per event."""
    calls: list[tuple[str, str, int]] = []
    many_calls: list[list[tuple[str, int]]] = []

    def first(event: TicketEvent) -> None:
        calls.append(("first", event.kind, event.ticket_id))

    def first_many(batch: list[TicketEvent]) -> None:
        many_calls.append([(event.kind, event.ticket_id) for event in batch])
        for event in batch:
            first(event)

    def second(event: TicketEvent) -> None:
        calls.append(("second", event.kind, event.ticket_id))

    kinds = [EventKind.OPENED, EventKind.STEP_REOPENED]
    events.subscribe(first, kinds=kinds, many=first_many)
    events.subscribe(second, kinds=kinds)
    try:
        a, b = _ticket(org), _ticket(org)
        with transaction.atomic(), events.published_together():
            a.record(EventKind.OPENED)
            a.record(EventKind.STEP_REOPENED)
            b.record(EventKind.OPENED)
        # Round one: each ticket's first event; round two: a's second.
        assert many_calls == [[(EventKind.OPENED, a.pk), (EventKind.OPENED, b.pk)]]
        assert calls == [
            ("first", EventKind.OPENED, a.pk),
            ("first", EventKind.OPENED, b.pk),
            ("second", EventKind.OPENED, a.pk),
            ("second", EventKind.OPENED, b.pk),
            ("first", EventKind.STEP_REOPENED, a.pk),  # a round of one: the handler itself
            ("second", EventKind.STEP_REOPENED, a.pk),
        ]
        assert not TicketEvent.objects.filter(dispatched_at__isnull=True).exists()
    finally:
        events._subscriptions[:] = [
            s for s in events._subscriptions if s.handler not in (first, second)
        ]


def test_a_many_form_that_raises_is_rolled_back_and_retried_per_event(org: Organization) -> None:
    """The many form's work is undone when it raises; the handler then runs per event, each in
    a savepoint, so only the event it fails on waits for dispatch_pending."""
    poisoned: set[int] = set()

    def start_timer(event: TicketEvent) -> None:
        if event.ticket_id in poisoned:
            raise ConnectionError("this ticket's endpoint is down")
        Ticket.objects.filter(pk=event.ticket_id).update(customer_followers=7)

    def start_timers(batch: list[TicketEvent]) -> None:
        for event in batch:
            Ticket.objects.filter(pk=event.ticket_id).update(customer_followers=99)
        raise ConnectionError("the batch endpoint is down")

    events.subscribe(start_timer, kinds=[EventKind.OPENED], many=start_timers)
    try:
        good, bad = _ticket(org), _ticket(org)
        poisoned.add(bad.pk)
        with transaction.atomic(), events.published_together():
            kept = good.record(EventKind.OPENED)
            waiting = bad.record(EventKind.OPENED)
        good.refresh_from_db()
        bad.refresh_from_db()
        assert good.customer_followers == 7  # the per-event handler's work, not the many form's
        assert bad.customer_followers != 99  # the many form's write was rolled back
        kept.refresh_from_db()
        waiting.refresh_from_db()
        assert kept.dispatched_at is not None
        assert waiting.dispatched_at is None
        # The other handlers (monitoring's timer start) did their work for both.
        assert SlaTimer.objects.filter(ticket__in=[good, bad]).count() == 2
    finally:
        events._subscriptions[:] = [
            s for s in events._subscriptions if s.handler is not start_timer
        ]


def test_events_the_handlers_record_are_delivered_together_after_the_delivery(
    org: Organization,
) -> None:
    """A handler that records an event (priority, sentiment) does not start a delivery of its
    own per event: the delivery's new events go together, once it committed."""
    deliveries: list[list[int]] = []
    real_dispatch = events.dispatch

    def note(event: TicketEvent) -> None:
        event.ticket.record(EventKind.STEP_REOPENED)

    def spy(event_ids: list[int]) -> int:
        deliveries.append(sorted(event_ids))
        return real_dispatch(event_ids)

    events.subscribe(note, kinds=[EventKind.OPENED])
    events.dispatch = spy  # type: ignore[assignment]
    try:
        tickets = [_ticket(org) for _ in range(3)]
        with transaction.atomic(), events.published_together():
            opened = [ticket.record(EventKind.OPENED) for ticket in tickets]
        recorded = list(
            TicketEvent.objects.filter(kind=EventKind.STEP_REOPENED)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        assert len(recorded) == 3
        assert deliveries == [sorted(event.pk for event in opened), recorded]
        assert not TicketEvent.objects.filter(dispatched_at__isnull=True).exists()
    finally:
        events.dispatch = real_dispatch  # type: ignore[assignment]
        events._subscriptions[:] = [s for s in events._subscriptions if s.handler is not note]
